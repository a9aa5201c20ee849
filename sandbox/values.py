"""Plain-data encoding of values returned by sandboxed functions.

Inside the sandbox a returned value is turned into JSON made only of plain types, tagging
what JSON cannot say (tuples, sets, dicts with non-string keys, non-finite floats, bytes).
Outside, `decode` rebuilds builtin values from that text. Whatever the program does to
its own interpreter (an `__eq__` that always returns True, a patched `json`), the
supervisor compares values it built itself from bytes, so a forged object cannot pass.
"""

from __future__ import annotations

import base64
import math
import operator
from typing import Any

_MAX_DEPTH = 100


class Unencodable(TypeError):
    """The returned value has no plain-data form (e.g. a custom object)."""


def encode(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise Unencodable("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind in (list, tuple):
        items = [encode(v, depth + 1) for v in value]
        return items if kind is list else {"$tuple": items}
    if kind in (set, frozenset):
        return {"$set": [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind in (bytes, bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    return _encode_foreign(value)


def _encode_foreign(value: Any) -> Any:
    """Numbers from other libraries (numpy scalars, Fraction-free ints) become plain numbers.

    A subclass of int/str/... is converted to its base value, never passed through: its
    overridden methods must not reach the comparison.
    """
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return encode(base(value))
    try:
        return operator.index(value)
    except TypeError:
        pass
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return encode(value.tolist())
    raise Unencodable(f"cannot return a {type(value).__name__} as plain data")


def decode(data: Any) -> Any:
    """Rebuild the value from parsed JSON; only builtin types come out."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        raise ValueError("malformed encoded value")
    ((tag, body),) = data.items()
    if tag == "$tuple":
        return tuple(decode(v) for v in body)
    if tag == "$set":
        items = [decode(v) for v in body]
        try:
            return frozenset(items)
        except TypeError:
            return items  # unhashable elements: cannot be a real set, will not compare equal
    if tag == "$dict":
        try:
            return {_hashable(decode(k)): decode(v) for k, v in body}
        except TypeError as exc:
            raise ValueError("unhashable dict key") from exc
    if tag == "$float":
        return float(body)
    if tag == "$bytes":
        return base64.b64decode(body)
    raise ValueError(f"unknown tag {tag!r}")


def _hashable(value: Any) -> Any:
    hash(value)
    return value
