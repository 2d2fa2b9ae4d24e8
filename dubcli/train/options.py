"""TrainOptions: what one `train()` call is asked, built once (by `dubcli train` or a caller)
and passed down whole, frozen. The hyperparameters themselves stay in the presets
(dubcli.config's ModelConfig / TrainConfig); these say which preset, what to start from, and
the few values the command line puts over it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainOptions:
    config: str | os.PathLike | None = None  # model preset (tiny | small | paper) or a TOML file
    init_from: str | os.PathLike | None = None  # stage dub: a stage-1 run or checkpoint
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    steps: int | None = None  # over the preset; only steps given: no epoch limit
    epochs: int | None = None  # over the preset; only epochs given: no step limit
    batch_tokens: int | None = None  # over the preset: token budget per batch and rank
    lr: float | None = None  # over the preset: peak learning rate
    seed: int | None = None  # over the preset
    resume: bool = False  # continue RUN exactly where it stopped
    force: bool = False  # start RUN over (only dubcli's files in it are removed)
    export: str | os.PathLike | None = None  # also write an inference checkpoint here
    model_overrides: Mapping[str, Any] | None = None  # ModelConfig fields over the preset
    train_overrides: Mapping[str, Any] | None = None  # TrainConfig fields over the preset

    @classmethod
    def of(cls, options: TrainOptions | None = None, **fields: Any) -> TrainOptions:
        """`options` (default: the defaults) with `fields` put in place; an unknown name is a
        TypeError, as a wrong keyword argument would be."""
        return dataclasses.replace(options or cls(), **fields)
