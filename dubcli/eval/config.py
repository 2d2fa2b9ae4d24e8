"""EvalConfig: how `evaluate` runs, built once (by `dubcli eval` or a caller) and passed down
whole, frozen. What is evaluated (the checkpoint, the split) and where the results go (out_dir)
stay with the call, as a video and its subtitles do with `dub_video`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dubcli.config import DEFAULT_TEMPERATURE


@dataclass(frozen=True)
class EvalConfig:
    setting: int = 1  # reference Setting (paper B.2.1): 1 own audio, 2 same speaker, 3 unseen
    nfe: int | tuple[int, ...] = 8  # flow-matching steps; several = one model system per NFE
    limit: int | None = None  # the first N pairs of the split; None = all
    audio_dir: str | os.PathLike | None = None  # score <id>.wav found here instead of a model
    compare: bool = False  # also gt, codec and baseline, in table order
    oracles: bool = False  # also the oracle-dur and oracle-content rows after the model's
    plots: bool = False  # mel and attention PNGs and OUT/index.html
    seed: int = 0  # pairing, and per utterance seed + its number
    temperature: float = DEFAULT_TEMPERATURE  # the sampler's noise scale (0 = argmax)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    offline: bool = False  # never touch the network
    syncnet: str | None = None  # SyncNet weights for LSE-C/D; None = LSE not computed
    pairs: str | os.PathLike | None = None  # a pairs file; None = the dataset's or derived ones
    metrics: str | Sequence[str] | None = None  # metric groups; None = every available one

    @classmethod
    def of(cls, config: EvalConfig | None = None, **options: Any) -> EvalConfig:
        """`config` (default: the defaults) with `options` (field names) put in place; an
        unknown name is a TypeError, as a wrong keyword argument would be."""
        if isinstance(options.get("nfe"), Sequence):
            options["nfe"] = tuple(options["nfe"])
        return dataclasses.replace(config or cls(), **options)
