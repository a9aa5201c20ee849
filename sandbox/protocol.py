"""Length-prefixed JSON messages between the pool (trainer side) and its workers."""

from __future__ import annotations

import json
import os
import struct

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 256 * 1024 * 1024


def send(fd: int, message: object) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv(fd: int) -> object | None:
    """The next message, or None at end of stream."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes exceeds the protocol limit")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)
