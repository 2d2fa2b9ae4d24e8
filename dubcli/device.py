"""Where a model runs: `--device auto|cpu|cuda|cuda:N` to a torch device, and its printable name.

A base module: inference, training and evaluation all use it (none imports the others for it).
"""

from __future__ import annotations

from typing import Any


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
