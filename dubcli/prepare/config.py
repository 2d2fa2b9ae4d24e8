"""PrepareConfig: how `prepare` runs, built once (by `dubcli prepare` or a caller) and passed
down whole, frozen, instead of a dozen keyword arguments at every level. What is prepared (the
layout, DATA, OUT) stays with the call, as a video and its subtitles do with `dub_video`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CODEC_ITEMS = 200  # train utterances the codebooks are fit on (~8 min of speech for SynthDub)
SHARD_SIZE = 64  # utterances per shard file


@dataclass(frozen=True)
class PrepareConfig:
    n: int | None = None  # synth: utterances to generate; others: only the first n items
    seed: int = 0  # generation, splits, reference pairing, the codebooks' training items
    workers: int = 1  # worker processes (spawn); results are written in item order
    shard: str = "1/1"  # "i/n": items i-1, i-1+n, ... of the full list
    codec: str | Path | None = None  # a codec .safetensors to reuse; None = OUT's, else fit one
    render: bool = False  # synth: also render mp4s to OUT/media
    force: bool = False  # start over: delete what an earlier prepare wrote to OUT
    layout_options: Mapping[str, Any] = field(default_factory=dict)  # make_layout's options
    codec_config: Mapping[str, Any] = field(default_factory=dict)  # WorldCodecConfig fields
    codec_items: int = CODEC_ITEMS  # train utterances the codebooks are fit on
    shard_size: int = SHARD_SIZE  # utterances per shard file
    only_splits: tuple[str, ...] = ()  # prepare only these splits' items; () = all

    @classmethod
    def of(cls, config: PrepareConfig | None = None, **options: Any) -> PrepareConfig:
        """`config` (default: the defaults) with `options` (field names) put in place; an
        unknown name is a TypeError, as a wrong keyword argument would be."""
        for name in ("layout_options", "codec_config"):
            if name in options and options[name] is None:
                options[name] = {}
        return dataclasses.replace(config or cls(), **options)
