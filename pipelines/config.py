"""Typed configuration: frozen dataclasses built from YAML recipes and `key=value` overrides.

Every component owns a frozen dataclass that validates itself in `__post_init__`. This module
turns plain dicts (from YAML) into those dataclasses with strict checks, so that an unknown key,
a wrong type or a bad value fails before any work starts, with one line that names the key,
the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, reported as one line naming the key and the fix."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r}; each key may appear once per mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text as plain data; a syntax error or duplicate key raises one ConfigError line that
    names `where`, the line and the column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{at}: invalid YAML: {problem}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; pass the path of a YAML recipe file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path} cannot be read: {exc}") from exc
    data = parse_yaml(text, f"recipe {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a YAML mapping at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with dotted `key=value` overrides applied (values parsed as YAML).

    >>> apply_overrides({"grpo": {"learning_rate": 1e-6}}, ["grpo.learning_rate=3e-6", "seed=1"])
    {'grpo': {'learning_rate': 3e-06}, 'seed': 1}
    >>> apply_overrides({"rewards": [{"name": "format"}]}, ["rewards.0.weight=0.5"])
    {'rewards': [{'name': 'format', 'weight': 0.5}]}
    """
    out = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not key=value; write e.g. grpo.learning_rate=3e-6"
            )
        set_dotted(out, key, _parse_scalar(raw))
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """`data[a][b][c] = value` for key "a.b.c"; numeric parts index lists (`rewards.0.weight`)."""
    node: Any = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = _child(node, part, key)
    if isinstance(node, list):
        node[_index(node, parts[-1], key)] = value
    else:
        node[parts[-1]] = value


def _child(node: Any, part: str, key: str) -> Any:
    """Step into a section (dict) or a list item (`rewards.0.weight=2`)."""
    if isinstance(node, list):
        return node[_index(node, part, key)]
    child = node.setdefault(part, {})
    if not isinstance(child, (dict, list)):
        raise ConfigError(f"{key}: {part} is not a section, it holds {child!r}")
    return child


def _index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{key}: {part!r} is not an index of a list of {len(node)} items")
    return int(part)


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # yaml reads "3e-6" as a string (YAML 1.1 wants a dot); users mean a float.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def from_dict(cls: type[T], data: Any, *, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, converting nested sections and checking every key."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(f"{key}: unknown key; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {
        name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(_field_message(str(exc), where, fields)) from exc


def _field_message(message: str, where: str, fields: Any) -> str:
    """Prefix a dataclass's own error with where it sits: `learning_rate=-1.0 must be > 0` in
    section `grpo` reads `grpo.learning_rate=-1.0 must be > 0`."""
    head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", message)
    if where and head and head.group() in fields:
        return f"{where}.{message}"
    return f"{where}: {message}" if where else message


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a config dataclass, ready for YAML or hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise errors[0] if len(errors) == 1 else ConfigError(f"{key}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {allowed}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=key)
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `stop=</answer>` on the command line means a one-item list
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(tp, value, key)


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds; for dataclass `__post_init__` checks."""
    if not condition:
        raise ConfigError(message)
