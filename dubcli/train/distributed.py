"""Where a training process runs: its device, its rank under torchrun, the collectives we use.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; with WORLD_SIZE > 1 the loop wraps the model in
DistributedDataParallel (gloo on CPU, nccl on CUDA). Only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from dubcli.device import resolve_device as resolve_device  # noqa: F401 (D.resolve_device)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=world,
    )


def init_distributed(info: DistInfo, device: torch.device) -> bool:
    """Start the process group when needed; True when this call started it."""
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return True


def shutdown_distributed(started: bool) -> None:
    if started and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum a float tensor over ranks (in place on a copy); identity without a process group."""
    out = values.detach().clone()
    if active():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def gather_tensors(local: dict[str, Tensor], device: torch.device) -> list[dict[str, Tensor]]:
    """Every rank's tensors (same names and shapes on all ranks) -> list by rank, on CPU."""
    if not active():
        return [{k: v.cpu() for k, v in local.items()}]
    world = dist.get_world_size()
    out: list[dict[str, Tensor]] = [{} for _ in range(world)]
    for name in sorted(local):
        # gloo/nccl need a supported dtype on the backend's device: send raw bytes as uint8.
        t = local[name].contiguous()
        raw = t.view(torch.uint8).reshape(-1) if t.dim() else t.reshape(1).view(torch.uint8)
        raw = raw.to(device)
        parts = [torch.empty_like(raw) for _ in range(world)]
        dist.all_gather(parts, raw)
        for r, p in enumerate(parts):
            out[r][name] = p.cpu().view(t.dtype).reshape(t.shape)
    return out


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's boolean on every rank (e.g. 'stop now')."""
    if not active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
