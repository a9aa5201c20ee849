"""Atomic writes for files and directories that a killed process must never leave half
written: the new content is written beside the target (synced, for files) and renamed over it,
so a reader sees the old version or the new one, never a mix."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def replace_dir(staging: Path, final: Path) -> None:
    """Move a finished directory into place, replacing an older one of the same name."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        remove(old)
        os.replace(final, old)
        os.replace(staging, final)
        remove(old)
    else:
        os.replace(staging, final)


def remove(path: Path) -> None:
    """Delete a file or a directory tree; nothing if it is absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
