"""Read a data source into rows, with every failure one ConfigError line that names the file
and, for text formats, the line.

JSONL and CSV are read here line by line, so an error says `data.jsonl:7: ...` (CSV values stay
strings, as written). JSON, Parquet, dataset directories and hub names go through `datasets`;
a hub name is looked up first, so no network fails in a second instead of after retries.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError

FORMATS = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: str, split: str) -> list[dict[str, Any]]:
    """Rows of a local file or directory, or of hub dataset `path` (split `split`)."""
    local = Path(path).expanduser()
    if local.is_file():
        if local.suffix not in FORMATS:
            raise ConfigError(
                f"data {path}: unsupported file type {local.suffix or '(none)'}; "
                f"use one of {', '.join(FORMATS)}"
            )
        readers = {".jsonl": _read_jsonl, ".csv": _read_csv}
        return readers.get(local.suffix, _read_with_datasets)(local, split)
    if local.is_dir():
        return _read_with_datasets(local, split)
    if path.startswith((".", "/", "~")) or local.suffix in FORMATS:
        raise ConfigError(
            f"data {path} does not exist; give an existing file or a hub dataset name"
        )
    _check_hub_dataset(path)
    return _read_with_datasets(path, split)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"data {path} cannot be read: {exc}") from exc


def _read_jsonl(path: Path, split: str) -> list[dict[str, Any]]:
    rows = []
    for line_no, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"data {path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from exc
        if not isinstance(row, dict):
            raise ConfigError(
                f"data {path}:{line_no}: expected a JSON object per line, got {type(row).__name__}"
            )
        rows.append(row)
    return rows


def _read_csv(path: Path, split: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(_text(path).splitlines(keepends=True), strict=True)
    rows = []
    try:
        for row in reader:
            if None in row or None in row.values():  # DictReader's marks of extra / missing fields
                count = "more" if None in row else "fewer"
                raise ConfigError(
                    f"data {path}:{reader.line_num}: {count} fields than the header's "
                    f"{len(reader.fieldnames or [])}; check the quoting and commas"
                )
            rows.append(row)
    except csv.Error as exc:  # raised before line_num counts the row that broke
        raise ConfigError(
            f"data {path}:{reader.line_num + 1}: malformed CSV ({exc}); check the "
            "quoting of the row that starts on this line"
        ) from exc
    return rows


def _read_with_datasets(path: str | Path, split: str) -> list[dict[str, Any]]:
    import datasets

    local = Path(path)
    try:
        if local.is_file():
            ds = datasets.load_dataset(
                "json" if local.suffix == ".json" else local.suffix[1:],
                data_files=str(local),
                split="train",
            )
        elif local.is_dir() and (local / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(local))
        else:
            ds = datasets.load_dataset(str(path), split=split)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ConfigError(f"data {path}: no split {split!r}; it has {', '.join(ds)}")
            ds = ds[split]
        return list(ds)
    except ConfigError:
        raise
    except Exception as exc:  # datasets raises many types; the cause is in the message
        cause = exc.__cause__ or exc
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(
            f"data {path} cannot be loaded: {type(cause).__name__}: {detail}"
        ) from exc


def _check_hub_dataset(name: str) -> None:
    """Fail at once when hub dataset `name` does not exist or the hub cannot be reached (with
    HF_HUB_OFFLINE set, `datasets` reads its cache instead)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().dataset_info(name, timeout=10)
    except RepositoryNotFoundError as exc:
        raise ConfigError(
            f"data {name}: no such file, and no such dataset on the Hugging Face hub"
        ) from exc
    except Exception as exc:  # no connection, DNS, timeout
        raise ConfigError(
            f"data {name}: not a local file, and the hub cannot be reached ({type(exc).__name__}); "
            "give a local .jsonl/.csv/.parquet file, or set HF_HUB_OFFLINE=1 to use a "
            "cached copy"
        ) from exc
