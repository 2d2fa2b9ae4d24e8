"""Real-time factor (paper 4.2 and Table 4): compute seconds per second of generated audio.

RTF = seconds_compute / seconds_audio; below 1 is faster than real time. The paper measures it
on one A100, excluding video preprocessing, at a given NFE; we record the device, the NFE and
the parameter count with every number so tables say what they compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dubcli.device import device_name as device_name  # noqa: F401 (re-exported)
from dubcli.timing import Timer as Timer  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class RealTimeFactor:
    seconds_audio: float  # generated audio
    seconds_compute: float  # wall clock spent generating it (video preprocessing excluded)
    device: str = "cpu"  # e.g. "cpu", "cuda:0 (NVIDIA A100)"
    nfe: int | None = None  # function evaluations of the DFM sampler (paper Table 4)
    n_params: int | None = None  # model parameters

    @property
    def rtf(self) -> float:
        if self.seconds_audio <= 0:
            return float("inf")
        return self.seconds_compute / self.seconds_audio

    def __add__(self, other: RealTimeFactor) -> RealTimeFactor:
        """Totals over utterances (the RTF of a test set is total compute / total audio)."""
        return RealTimeFactor(
            self.seconds_audio + other.seconds_audio,
            self.seconds_compute + other.seconds_compute,
            self.device,
            self.nfe,
            self.n_params,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rtf": self.rtf,
            "seconds_audio": self.seconds_audio,
            "seconds_compute": self.seconds_compute,
            "device": self.device,
            "nfe": self.nfe,
            "n_params": self.n_params,
        }


def total_rtf(items: Iterable[RealTimeFactor]) -> RealTimeFactor:
    """Sum of several measurements (must share device / NFE / model to be meaningful)."""
    items = list(items)
    if not items:
        raise ValueError("no RTF measurements")
    keys = {(r.device, r.nfe, r.n_params) for r in items}
    if len(keys) > 1:
        raise ValueError(
            f"RTF measurements from different setups cannot be summed: {sorted(keys, key=str)}"
        )
    total = items[0]
    for r in items[1:]:
        total = total + r
    return total


def count_parameters(model: Any, *, trainable_only: bool = False) -> int:
    """Number of parameters of a torch module (all, or only those requiring grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
