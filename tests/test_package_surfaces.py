"""Each package declares its public names, they all resolve, and no package reaches into
another package's private modules or names."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grpo", "rewards", "sandbox", "pipelines")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_declared_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} declares no __all__"
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert not missing


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_package_imports_another_packages_private_parts():
    crossings = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for module, names in _imports(path):
                top = module.split(".")[0]
                if top not in PACKAGES or top == package:
                    continue
                private = [p for p in module.split(".")[1:] if p.startswith("_")]
                private += [n for n in names if n.startswith("_")]
                if private:
                    crossings.append(f"{path.relative_to(ROOT)}: {module} {private}")
    assert not crossings


def test_importing_the_packages_does_not_import_torch():
    code = "import sys, grpo, rewards, pipelines; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"
