"""What a person watching training sees: per-window loss averages and a rich progress bar.

Losses are summed on the device between metrics lines (no host sync per step) and averaged
over every rank when a line is written. torch is imported where it is used, so that
`rich_progress` (also the bar of `dubcli prepare`) does not pull torch into the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dubcli.console import console

if TYPE_CHECKING:
    from rich.progress import Progress
    from torch import Tensor


class LossWindow:
    """Sums of the losses since the last metrics line."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.n = 0
        self.tokens = 0
        self.items = 0
        self.gnorm = 0.0

    def add(self, total: Tensor, parts: dict[str, Any], gnorm: Tensor, tokens: int, items: int):
        import torch

        vals = {"loss": total.detach().float()}
        for k, v in parts.items():
            vals[k] = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
        for k, v in vals.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.gnorm += float(gnorm)
        self.n += 1
        self.tokens += tokens
        self.items += items

    def flush(self, step: int, lr: float, seconds: float, epoch: int) -> dict[str, Any]:
        """A metrics record averaged over the window and the ranks; then reset. Collective."""
        import torch

        from dubcli.train import distributed as D

        names = sorted(self.sums)
        stacked = torch.stack([self.sums[k].to(torch.float64).cpu() for k in names])
        counts = torch.tensor([float(self.n), float(self.tokens), float(self.items)])
        summed = D.all_reduce_sum(torch.cat([stacked, counts]))
        world = torch.distributed.get_world_size() if D.active() else 1
        n_steps = float(summed[len(names)]) or 1.0
        rec: dict[str, Any] = {"step": step, "split": "train", "epoch": epoch, "lr": lr}
        for i, k in enumerate(names):
            rec[k] = float(summed[i]) / n_steps
        rec["grad_norm"] = self.gnorm / max(1, self.n)
        rec["tokens_per_s"] = float(summed[len(names) + 1]) / max(seconds, 1e-9)
        rec["steps_per_s"] = n_steps / world / max(seconds, 1e-9)
        self.reset()
        return rec


def rich_progress(
    label: str = "{task.description}", *, info: bool = False, enabled: bool = True
) -> Progress:
    """A rich Progress on the stderr console: label, bar, m/n, [the task's `info` field],
    elapsed, remaining. Not started; `enabled=False` shows nothing."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    extra = [TextColumn("{task.fields[info]}")] if info else []
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=False,
        disable=not enabled,
    )


class ProgressBar:
    """A rich bar on stderr: step m/n, the latest train / valid loss, lr, elapsed, remaining."""

    def __init__(self, total: int, start: int, title: str = "train"):
        self.p = rich_progress(title, info=True)
        self.p.start()
        self.task = self.p.add_task(title, total=total, completed=start, info="")

    def update(self, step: int, loss: float, valid: float | None, lr: float) -> None:
        text = f"loss {loss:.4f}" + (f" valid {valid:.4f}" if valid is not None else "")
        self.p.update(self.task, completed=step, info=f"{text} lr {lr:.2e}")

    def close(self) -> None:
        self.p.stop()
