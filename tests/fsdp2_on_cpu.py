"""`python -m tests.fsdp2_on_cpu MODULE ARGS...`: run MODULE's main with accelerate in FSDP2 mode
on CPU (gloo), one process per torchrun rank.

accelerate 1.15 turns its FSDP plugin on only for accelerator devices (CUDA, XPU, ...); on CPU
the same launch silently becomes DDP. torch's FSDP2 itself runs on CPU over gloo, so this
launcher sets accelerate's FSDP2 settings (as `recipes/accelerate/fsdp.yaml` does) and, once
accelerate has built its state, switches the distributed type to FSDP with that plugin. Every
FSDP2 code path then runs for real: accelerate's `fsdp2_prepare_model`, DTensor parameters,
sharded optimizer state, per-parameter gathers.
"""

from __future__ import annotations

import os
import runpy
import sys

for key, value in {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
    "FSDP_RESHARD_AFTER_FORWARD": "true",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    "FSDP_SYNC_MODULE_STATES": "false",
}.items():
    os.environ.setdefault(
        key, value
    )  # FSDP_STATE_DICT_TYPE=SHARDED_STATE_DICT: sharded checkpoints


def _fsdp_on_cpu() -> None:
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.fsdp_plugin = plugin
            self.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = init


if __name__ == "__main__":
    _fsdp_on_cpu()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
