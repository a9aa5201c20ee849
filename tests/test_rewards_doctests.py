"""Every docstring example in rewards/ (and grpo.reward, the contract it builds on) runs as a
test."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rewards

MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(rewards.__path__, "rewards.")
    if m.name != "rewards._worker"
)
MODULES.append("grpo.reward")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
