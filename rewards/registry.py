"""Name -> reward registry. ``register("name")`` decorates a reward function or class;
``get("name", **params)`` returns a ready callable. Custom rewards may be named as
``"package.module:function"`` without registering them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from grpo.reward import RewardFn

_REGISTRY: dict[str, Any] = {}
# Built-in rewards live in modules that import heavy packages lazily; importing the modules
# on first lookup fills the registry without slowing ``import rewards``.
_BUILTIN_MODULES = (
    "rewards.math",
    "rewards.format",
    "rewards.language",
    "rewards.length",
    "rewards.reward_model",
    "rewards.code",
)


def register(name: str) -> Callable[[Any], Any]:
    """Register a reward function (no params) or callable class (params go to ``__init__``).

    >>> @register("always_one")
    ... def always_one(completions, *, prompts, **columns):
    ...     return [1.0] * len(completions)
    >>> get("always_one")(["a", "b"], prompts=["p", "p"])
    [1.0, 1.0]
    """

    def decorator(obj: Any) -> Any:
        if name in _REGISTRY and _REGISTRY[name] is not obj:
            raise ValueError(f"reward '{name}' is already registered by {_REGISTRY[name]!r}")
        _REGISTRY[name] = obj
        return obj

    return decorator


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    """Every registered reward name, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def resolve(name: str) -> Any:
    """The registered object (function or class) for ``name`` or ``module:function``."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load custom reward '{name}': {err}") from err
    if name not in _REGISTRY:
        _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown reward '{name}'; valid names: {', '.join(sorted(_REGISTRY))} "
            f"(or 'module:function')"
        )
    return _REGISTRY[name]


def get(name: str, **params: Any) -> RewardFn:
    """A callable reward for ``name``: classes are built with ``params``; plain functions
    take no params.

    >>> get("format")(["<think>a</think><answer>1</answer>"], prompts=["q"])
    [1.0]
    """
    obj = resolve(name)
    if inspect.isclass(obj):
        try:
            return obj(**params)
        except TypeError as err:
            raise ValueError(f"reward '{name}': bad params {sorted(params)}: {err}") from err
    if params:
        raise ValueError(f"reward '{name}' is a function and takes no params, got {sorted(params)}")
    return obj
