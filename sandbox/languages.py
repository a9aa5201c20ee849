"""Languages a program may be written in. Compiled ones are built inside a sandbox too:
a compiler fed hostile source (`#include "/dev/zero"`, template explosions) is untrusted work.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Compiler:
    executable: str
    flags: tuple[str, ...]
    libs: tuple[str, ...]  # after the source, as the linker wants
    source_name: str
    time_limit: float = 10.0
    memory_mb: int = 1024

    def argv(self) -> list[str]:
        path = shutil.which(self.executable)
        if path is None:
            raise FileNotFoundError(f"{self.executable} is not installed")
        return [path, *self.flags, "-o", "prog", self.source_name, *self.libs]


PYTHON = "python"
COMPILED: dict[str, Compiler] = {
    "cpp": Compiler("g++", ("-O2", "-std=c++17", "-pipe"), ("-lm",), "main.cpp"),
    "c": Compiler("gcc", ("-O2", "-std=c11", "-pipe"), ("-lm",), "main.c"),
}
_ALIASES = {
    "python": PYTHON,
    "python3": PYTHON,
    "py": PYTHON,
    "cpp": "cpp",
    "c++": "cpp",
    "cxx": "cpp",
    "c": "c",
}


def canonical(language: str) -> str:
    try:
        return _ALIASES[language.lower()]
    except KeyError:
        raise ValueError(
            f"unknown language {language!r}; choose one of {sorted(set(_ALIASES))}"
        ) from None
