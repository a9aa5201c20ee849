"""A pipeline recipe read into a plan: its stages in order, each validated, with the
`stage:NAME[.KEY]` references to earlier stages' outputs that are bound just before it runs.
See `pipelines.pipeline` for the recipe format.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    set_dotted,
    to_dict,
)
from pipelines.eval_settings import EvalSettings
from pipelines.recipe import resolve, stage_kind
from pipelines.run_record import config_hash

REF_PREFIX = "stage:"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ENTRY_KEYS = ("name", "recipe", "overrides")
PIPELINE_KEYS = ("pipeline", "output_dir", "seed", "eval", "stages")
RESERVED_NAMES = {"base", "eval", "plots", *PIPELINE_KEYS}  # directories and keys of the run


@dataclass(frozen=True)
class StagePlan:
    name: str
    kind: str
    data: dict[str, Any]  # the stage's config as plain data; `stage:` references not yet bound
    config_hash: str
    refs: tuple[str, ...]  # earlier stages whose outputs this stage reads

    def config_with_outputs(self, outputs: dict[str, dict[str, Any]]) -> Any:
        """The stage's config with every `stage:NAME[.KEY]` replaced by that stage's output."""
        bound = _map_strings(self.data, lambda s: bind_ref(s, outputs, self.name))
        return resolve(bound, where=f"stages.{self.name}")[1]


@dataclass(frozen=True)
class PipelinePlan:
    name: str
    output_dir: Path
    stages: list[StagePlan]
    eval: EvalSettings | None
    eval_hash: str | None

    def stage(self, name: str) -> StagePlan:
        for st in self.stages:
            if st.name == name:
                return st
        raise ConfigError(
            f"--stage {name}: no such stage; this pipeline has {', '.join(self.names)}"
        )

    @property
    def names(self) -> list[str]:
        return [st.name for st in self.stages]

    def base_model(self) -> str | None:
        if self.eval is None or not self.eval.base:
            return None
        if self.eval.base_model:
            return self.eval.base_model
        model = self.stages[0].data.get("model") if self.stages else None
        return model if isinstance(model, str) and not model.startswith(REF_PREFIX) else None


def is_pipeline(data: dict[str, Any]) -> bool:
    return "pipeline" in data or "stages" in data


def load_pipeline(path: str | Path, overrides: list[str] = ()) -> PipelinePlan:
    """Read a pipeline recipe, apply `STAGE.key=value` overrides and validate every stage."""
    path = Path(path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - set(PIPELINE_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} in a pipeline recipe; "
            f"allowed: {', '.join(PIPELINE_KEYS)}"
        )
    name = str(raw.get("pipeline") or path.stem)
    entries = raw.get("stages")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{path}: `stages:` must be a non-empty list of {{name, recipe, overrides}}"
        )
    stage_dicts = {}
    for i, entry in enumerate(entries):
        stage_name, stage_dict = _load_entry(entry, i, path.parent)
        if stage_name in stage_dicts:
            raise ConfigError(
                f"stages[{i}]: the name {stage_name!r} is used twice; stage names must be unique"
            )
        stage_dicts[stage_name] = stage_dict
    top = {
        "output_dir": raw.get("output_dir", f"runs/{name}"),
        "seed": raw.get("seed"),
        "eval": raw.get("eval"),
        **stage_dicts,
    }
    top = apply_overrides(top, _check_override_targets(list(overrides), list(stage_dicts)))
    if top["seed"] is not None:
        for stage_name in stage_dicts:
            top[stage_name] = _seeded(top[stage_name], top["seed"], f"stages.{stage_name}")
    output_dir = Path(str(top["output_dir"]))
    eval_settings = (
        None if top["eval"] is None else from_dict(EvalSettings, top["eval"], where="eval")
    )
    judge = eval_settings.reward_model if eval_settings is not None else None
    if (
        judge is not None
        and judge.startswith(REF_PREFIX)
        and judge.removeprefix(REF_PREFIX) not in stage_dicts
    ):
        raise ConfigError(
            f"eval.reward_model: `{judge}` names no stage; "
            f"this pipeline has {', '.join(stage_dicts)}"
        )
    stages: list[StagePlan] = []
    for stage_name in stage_dicts:
        data = _with_pipeline_eval(top[stage_name], top["eval"])
        stages.append(_plan_stage(stage_name, data, output_dir, [s.name for s in stages]))
    eval_hash = None if eval_settings is None else config_hash(to_dict(eval_settings))
    return PipelinePlan(name, output_dir, stages, eval_settings, eval_hash)


def _load_entry(entry: Any, index: int, base_dir: Path) -> tuple[str, dict[str, Any]]:
    where = f"stages[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where}: expected a mapping with name and recipe (or an inline config), got {entry!r}"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED_NAMES:
        raise ConfigError(
            f"{where}: name {name!r} must be letters, digits, _ or - (not starting with a digit) "
            f"and not one of {', '.join(sorted(RESERVED_NAMES))}"
        )
    data: dict[str, Any] = {}
    if entry.get("recipe") is not None:
        recipe = Path(str(entry["recipe"]))
        data = load_yaml(recipe if recipe.is_absolute() else base_dir / recipe)
    inline = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    data = _deep_merge(data, inline)
    if "stage" not in data:
        raise ConfigError(
            f"{where} ({name}): give `recipe: FILE.yaml` or an inline config with `stage: KIND`"
        )
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{where} ({name}).overrides: expected a mapping of dotted keys to values"
        )
    for key, value in overrides.items():
        _set_dotted(data, str(key), value, f"{where} ({name}).overrides")
    return name, data


def _check_override_targets(overrides: list[str], stage_names: list[str]) -> list[str]:
    for item in overrides:
        head = item.partition("=")[0].split(".")[0]
        if head not in ("output_dir", "seed", "eval", *stage_names):
            raise ConfigError(
                f"override {item!r}: in a pipeline, address a stage as STAGE.key=value; "
                f"stages: {', '.join(stage_names)} (or eval.KEY, output_dir, seed)"
            )
    return overrides


def _seeded(data: dict[str, Any], seed: Any, where: str) -> dict[str, Any]:
    """The stage's config with every seed of its own randomness (sampling, initialisation, data
    order; not which rows its data generator draws) set to the pipeline's `seed`."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: {seed!r} must be an integer (the training seed of every stage)")
    kind = stage_kind(str(data.get("stage")))
    data = copy.deepcopy(data)
    for key in kind.seed_fields if kind is not None else ():
        _set_dotted(data, key, seed, where)
    return data


def _with_pipeline_eval(data: dict[str, Any], pipeline_eval: Any) -> dict[str, Any]:
    """A stage that evaluates during training (`grpo.eval_every`) and has no `eval:` of its own
    uses the pipeline's eval settings (without the pipeline-only `base` keys)."""
    section = data.get("grpo")
    if not isinstance(section, dict) or section.get("eval_every") is None or "eval" in data:
        return data
    if not isinstance(pipeline_eval, dict):
        return data
    settings = {k: v for k, v in pipeline_eval.items() if k not in ("base", "base_model")}
    return {**data, "eval": settings}


def _plan_stage(name: str, data: dict[str, Any], output_dir: Path, earlier: list[str]) -> StagePlan:
    data = {**data, "output_dir": str(output_dir / name)}  # the pipeline owns where stages write
    refs = sorted({_ref_target(s) for s in config_strings(data) if s.startswith(REF_PREFIX)})
    for ref in refs:
        if ref not in earlier:
            raise ConfigError(
                f"stages.{name}: `stage:{ref}` must name a stage listed before {name} "
                f"(earlier stages: {', '.join(earlier) or 'none'})"
            )
    kind, config = resolve(data, where=f"stages.{name}")  # validates now, before anything runs
    plain = {"stage": kind, **to_dict(config)}
    return StagePlan(name, kind, plain, config_hash(plain), tuple(refs))


def _ref_target(value: str) -> str:
    return value.removeprefix(REF_PREFIX).split(".")[0]


def bind_ref(value: str, outputs: dict[str, dict[str, Any]], stage: str) -> str:
    if not value.startswith(REF_PREFIX):
        return value
    target, _, key = value.removeprefix(REF_PREFIX).partition(".")
    key = key or "model"
    produced = outputs.get(target) or {}
    if key not in produced:
        raise ConfigError(
            f"stages.{stage}: `{value}` needs output {key!r} of stage {target}, which produced "
            f"{', '.join(sorted(produced)) or 'nothing'}"
        )
    return str(produced[key])


def config_strings(data: Any) -> Iterator[str]:
    """Every string in a config (nested mappings and lists included)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for v in data.values():
            yield from config_strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from config_strings(v)


def _map_strings(data: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, dict):
        return {k: _map_strings(v, fn) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_strings(v, fn) for v in data]
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    try:
        set_dotted(data, key, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def describe_pipeline(path: str | Path, overrides: list[str]) -> str:
    """Every stage's resolved config (references to earlier stages shown as `stage:NAME`)."""
    plan = load_pipeline(path, overrides)
    parts = [f"pipeline: {plan.name}\noutput_dir: {plan.output_dir}\n"]
    for i, st in enumerate(plan.stages, 1):
        parts.append(
            f"\n# --- stage {i}/{len(plan.stages)}: {st.name} (config hash {st.config_hash})\n"
        )
        parts.append(dump_yaml(st.data))
    if plan.eval is not None:
        parts.append("\n# --- eval (after each stage)\n" + dump_yaml({"eval": plan.eval}))
    return "".join(parts)
