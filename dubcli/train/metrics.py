"""Training metrics: RUN/metrics.jsonl (one JSON object a line) and the loss curve RUN/loss.png.

Lines are {"step", "split": "train"|"valid", "loss", <parts>, "lr", ...}. On resume, lines past
the resumed step (written after the checkpoint, before the kill) are dropped, so the file reads
like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from dubcli.fsutil import atomic_path, atomic_write_text

METRICS = "metrics.jsonl"
LOSS_PNG = "loss.png"


class MetricsLog:
    def __init__(self, run: str | os.PathLike):
        self.path = Path(run) / METRICS

    def truncate_after(self, step: int) -> None:
        """Keep only the lines with step <= `step` (atomic rewrite)."""
        if not self.path.is_file():
            return
        kept = [r for r in self.read() if int(r.get("step", 0)) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: _jsonable(v) for k, v in record.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean, sort_keys=True) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return out


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def plot_losses(records: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Train (thin) and validation (markers) total loss against step, log-scaled when positive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(split: str) -> tuple[list[int], list[float]]:
        pts = [
            (int(r["step"]), float(r["loss"]))
            for r in records
            if r.get("split") == split and isinstance(r.get("loss"), (int, float))
        ]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        sx, sy = series("train")
        vx, vy = series("valid")
        if sx:
            ax.plot(sx, sy, lw=0.8, label="train")
        if vx:
            ax.plot(vx, vy, "o-", ms=3, label="valid")
        if all(y > 0 for y in sy + vy) and (sy or vy):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if sx or vx:
            ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
