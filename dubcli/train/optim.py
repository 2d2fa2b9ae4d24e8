"""Optimizer, learning-rate schedule and EMA of weights (paper B.3).

B.3: AdamW, weight decay 0.01, a linear warm-up over 10% of the steps (stage 1) or 5% (stage 2).
After the warm-up the rate decays (cosine or linear) to `min_lr_ratio` of the peak at the last
step. The rate is a pure function of the step, so resuming needs only the step number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

SCHEDULES = ("cosine", "linear", "constant")


def lr_at(
    step: int,
    total_steps: int,
    peak_lr: float,
    *,
    warmup_ratio: float = 0.1,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{schedule}' (known: {', '.join(SCHEDULES)})")
    warmup = int(round(warmup_ratio * total_steps))
    if warmup > 0 and step < warmup:
        return peak_lr * (step + 1) / warmup  # never 0: the first step already learns
    if schedule == "constant":
        return peak_lr
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0 - progress
    return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * factor)


def build_optimizer(
    model: nn.Module,
    lr: float,
    *,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: biases, norm gains and scalars are not decayed
    (decaying them only shrinks the normalization scale). Frozen parameters are left out."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    # foreach=False: the same kernels on every run, so resumed runs match bit for bit.
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class EMA:
    """Exponential moving average of the floating-point weights (kept in fp32).

    The decay ramps up as min(decay, (1 + updates) / (10 + updates)) so early averages are not
    dominated by the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, Tensor] = {
            k: v.detach().float().clone()
            for k, v in model.state_dict().items()
            if v.is_floating_point()
        }

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - d)
        self.updates += 1

    def state_tensors(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_tensors(self, tensors: dict[str, Tensor], updates: int) -> None:
        missing = set(self.shadow) - set(tensors)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(tensors[k])
        self.updates = int(updates)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into `model` (validation, export)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        sd = model.state_dict()
        with torch.no_grad():
            for k, v in self.shadow.items():
                sd[k].copy_(v.to(sd[k].dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    sd[k].copy_(v)
