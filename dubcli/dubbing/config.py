"""DubConfig: everything that says how to dub, built once (by `dubcli dub` or a caller) and
passed down whole, frozen, instead of a dozen keyword arguments at every level."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dubcli.config import DEFAULT_TEMPERATURE


@dataclass(frozen=True)
class DubConfig:
    refs: tuple[str, ...] = ()  # --ref values: 'voice.wav' or 'NAME=voice.wav'; () = own speech
    engine: str | None = None  # diflow | baseline; None = engines.choose's default rule
    checkpoint: str | None = None  # NAME | PATH | hf://... | RUN (diflow); None = the default
    offline: bool = False  # never touch the network
    background: str = "duck"  # original audio under the dub: keep | duck | remove | drop
    lufs: float | None = -16.0  # target integrated loudness (EBU R 128); None = leave as is
    keep_original: bool = False  # also keep the original audio tracks in the video
    widen_to_lips: bool = False  # widen cue windows to the lip activity around them
    nfe: int = 8  # flow-matching steps (diflow)
    temperature: float = DEFAULT_TEMPERATURE  # the sampler's noise scale (diflow)
    seed: int = 0  # random seed (per cue: seed + cue number)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    force: bool = False  # redo finished outputs, replace what dubcli did not write
    dry_run: bool = False  # plan the cues, write nothing

    @classmethod
    def of(cls, config: DubConfig | None = None, **options: Any) -> DubConfig:
        """`config` (default: the defaults) with `options` (field names) put in place; an
        unknown name is a TypeError, as a wrong keyword argument would be."""
        if "refs" in options:
            options["refs"] = tuple(options["refs"] or ())
        return dataclasses.replace(config or cls(), **options)
