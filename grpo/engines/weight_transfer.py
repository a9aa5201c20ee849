"""Weight pushes to vLLM servers through vLLM's NCCL weight-transfer engine (GPUs only).

Each server is started with `--weight-transfer-config '{"backend": "nccl"}'` in development
mode. At the first push the trainer's main process joins one NCCL group per server as its
rank 0 (vLLM's `NCCLTrainerWeightTransferEngine.trainer_init`, which drives the server's
`/init_weight_transfer_engine`); every push then broadcasts the tensors
(`send_weights`: `/start_weight_update`, `/update_weights`, `/finish_weight_update`).
The rendezvous address is `engine.nccl_address` (HOST:PORT the servers can reach; server k
uses PORT + k).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def nccl_push(engine, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
    """Broadcast the tensors to every server of `engine` (a VLLMServerEngine); return how many
    were consumed. Processes other than the pusher only take part in the gathers."""
    if not engine.pusher:
        return sum(1 for _ in named_tensors)
    device = torch.device("cuda", torch.cuda.current_device())
    source = _ListSource([(name, t.detach().to(device)) for name, t in named_tensors])
    if engine.transfer is None:
        engine.transfer = [
            _connect(server, k, engine.config.nccl_address, source)
            for k, server in enumerate(engine.servers)
        ]
    for transfer in engine.transfer:
        transfer.source = source
        transfer.send_weights()
    return len(source.pairs)


def _connect(server, index: int, address: str | None, source):
    from vllm.distributed.weight_transfer.clients import HTTPVLLMWeightSyncClient
    from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

    if address is None:
        raise ValueError(
            "engine.weight_sync=nccl needs engine.nccl_address: HOST:PORT of this "
            "trainer that the servers can reach"
        )
    host, port = address.rsplit(":", 1)
    workers = server.call("/get_world_size?include_dp=true", method="GET")["world_size"]
    info = NCCLTrainerInitInfo(
        master_address=host, master_port=int(port) + index, world_size=1 + int(workers), rank=0
    )
    client = HTTPVLLMWeightSyncClient(server.url, timeout=server.timeout)
    return WeightTransferTrainerFactory.trainer_init(info, client=client, source=source)


def _list_source(pairs):
    from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource

    class ListSource(WeightSource):
        """The tensors of one push, described and replayed for vLLM's trainer engine."""

        def __init__(self, items: list[tuple[str, torch.Tensor]]):
            self.pairs = items

        def metadata(self) -> list[ParamMeta]:
            return [ParamMeta(n, t.dtype, tuple(t.shape)) for n, t in self.pairs]

        def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
            return iter(self.pairs)

    return ListSource(pairs)


_ListSource = _list_source
