"""Speech codecs: waveform <-> factorized tokens (prosody 1, content 2, acoustic 3) + speaker.

`load_codec(path)` builds whichever backend a checkpoint names; `train_world_codec` fits the
embedded `world` codec (DESIGN 2). Names resolve lazily: importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CodecTokens": "dubcli.audio.codec.base",
    "Codec": "dubcli.audio.codec.base",
    "GeneratedDecode": "dubcli.audio.codec.base",
    "STREAMS": "dubcli.audio.codec.base",
    "load_codec": "dubcli.audio.codec.base",
    "WorldCodec": "dubcli.audio.codec.world",
    "WorldCodecConfig": "dubcli.audio.codec.world",
    "train_world_codec": "dubcli.audio.codec.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
