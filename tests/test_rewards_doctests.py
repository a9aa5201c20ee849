"""Every docstring example in rewards/ runs as a test."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rewards

MODULES = sorted(m.name for m in pkgutil.iter_modules(rewards.__path__, "rewards.") if m.name != "rewards._worker")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
