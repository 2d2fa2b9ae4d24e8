"""Where a model runs: `--device auto|cpu|cuda|cuda:N` to a torch device, and its printable name.

A base module: inference, training and evaluation all use it (none imports the others for it).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

# OpenMP settings for CPU inference (issue 15), applied before torch loads its OpenMP runtime
# (which reads them once, at load). With torch's default (active waiting: idle worker threads
# spin for a while between parallel regions), one other CPU-bound process on a 2-core machine
# made a dub 3x slower: each of the model's many small ops ends in a barrier where the spinning
# threads fight the other process for the cores. Passive waiting (threads sleep at once) keeps
# the model's speed under contention. Measured numbers: benchmarks/dub_speed.py --contended.
CPU_THREAD_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",  # GNU and LLVM OpenMP (torch's CPU wheels use GNU libgomp)
    "KMP_BLOCKTIME": "0",  # Intel OpenMP (MKL builds): the same thing, in its spelling
}


def resolve_device(spec: str | None = "auto", local_rank: int = 0):
    """auto | cpu | cuda | cuda:N -> a torch device (auto: this rank's GPU when there is one);
    cuda without CUDA is a DependencyError, anything else an InputError."""
    import torch

    from dubcli.errors import DependencyError, InputError

    spec = str(spec or "auto")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DependencyError("--device cuda: this torch build sees no CUDA device")
        return torch.device(spec if ":" in spec else f"cuda:{local_rank}")
    if spec != "cpu":
        raise InputError(f"--device {spec}: unknown device (auto, cpu, cuda)")
    return torch.device("cpu")


def device_name(device: Any) -> str:
    """'cpu', or 'cuda:0 (NVIDIA A100-SXM4-40GB)' for a CUDA device."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    return str(dev)


def cpu_thread_policy(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put CPU_THREAD_ENV into the environment where the user has not set them; returns what
    was set. Call it before torch is imported (the CLI's main does): later it has no effect on
    an OpenMP runtime already loaded, and `torch_loaded()` says so."""
    env = os.environ if environ is None else environ
    changed = {}
    for k, v in CPU_THREAD_ENV.items():
        if k not in env:
            env[k] = v
            changed[k] = v
    return changed


def torch_loaded() -> bool:
    import sys

    return "torch" in sys.modules
