"""torch's CPU thread count for the length of a run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on `threads` torch CPU threads (None: leave the count alone), then restore it.

    On a small shared CPU, 1 thread is often fastest for a small model: 2 threads on 2 busy
    cores oversubscribe them.
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
