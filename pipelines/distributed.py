"""Runs launched as several processes (torchrun, accelerate launch), on one node or several.

Every process must write to and read from the same output directory: checkpoints a rank cannot
see are a run that silently restarts on that rank while the others resume. So the directory is
made absolute once, on rank 0 (relative to rank 0's working directory, which other nodes may not
share), handed to every process, and checked: each process writes a token there and every
process must read all of them.

The helpers below let the pipeline and stages behave as one process: rank 0 writes and
reports, work is sharded and gathered, ids minted once are broadcast. Outside a process group
they are no-ops.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError


def launched_processes() -> int:
    """How many processes the launcher started (1 without torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def shared_output_dir(output_dir: str | Path) -> Path:
    """Rank 0's absolute `output_dir`, checked to be the same directory on every process."""
    if launched_processes() == 1:
        return Path(output_dir).resolve()
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    # Joins the launcher's process group, as the stages' accelerators will (on CPU accelerate
    # must be told, or it runs each process alone).
    PartialState(cpu=not torch.cuda.is_available())
    rank, world = dist.get_rank(), dist.get_world_size()
    shared = [str(Path(output_dir).resolve()), uuid.uuid4().hex] if rank == 0 else [None, None]
    dist.broadcast_object_list(shared, src=0)
    root, nonce = Path(shared[0]), shared[1]
    check = root / ".r1kit-shared-check"
    check.mkdir(parents=True, exist_ok=True)
    (check / f"{nonce}.{rank}").write_text(socket.gethostname())
    dist.barrier()
    missing = [r for r in range(world) if not (check / f"{nonce}.{r}").exists()]
    reports: list = [None] * world
    dist.all_gather_object(reports, (rank, socket.gethostname(), missing))
    dist.barrier()
    if rank == 0:
        shutil.rmtree(check, ignore_errors=True)
    blind = [(rank, host, gone) for rank, host, gone in reports if gone]
    if blind:
        rank, host, gone = blind[0]
        raise ConfigError(
            f"output_dir {root} is not shared by all processes: rank {rank} on {host} cannot see "
            f"the files of rank(s) {', '.join(map(str, gone))}; put output_dir on a filesystem "
            "every node mounts (NFS, Lustre, a cloud bucket mount)"
        )
    return root


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    import torch.distributed as dist

    if rank_and_world()[1] > 1:
        dist.barrier()


def gather_lists(local: list) -> list:
    """Every process's list, concatenated in rank order, on every process."""
    import torch.distributed as dist

    world = rank_and_world()[1]
    if world == 1:
        return list(local)
    parts: list = [None] * world
    dist.all_gather_object(parts, local)
    return [item for part in parts for item in part]


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every process (e.g. an id minted once for the whole run)."""
    import torch.distributed as dist

    if rank_and_world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
