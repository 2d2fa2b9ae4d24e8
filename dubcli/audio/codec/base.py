"""The codec contract: factorized speech tokens + a speaker embedding (paper 3.2, B.1; DESIGN 7).

Dimensions: t tokens (80 per second of 16 kHz audio, one per 200-sample hop), d speaker width.
Streams, in model order: prosody 1 codebook, content 2, acoustic 3; `vocab` codes each.

A codec lives in one checkpoint file (dubcli.checkpoint format) whose metadata["kind"] names the
backend ("codec/world" now, "codec/facodec" when its weights can be had); `load_codec` dispatches
on that kind, so callers never import a backend module themselves.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from dubcli.checkpoint import LoadedCheckpoint, read_metadata
from dubcli.errors import CheckpointError, InputError

# The stream layout shared by every backend (paper B.1: N_p=1, N_c=2, N_a=3).
STREAMS: dict[str, int] = {"prosody": 1, "content": 2, "acoustic": 3}

# kind -> "module:Class"; each class has `load(path)` and `from_state(tensors, metadata, source)`.
CODEC_KINDS: dict[str, str] = {
    "codec/world": "dubcli.audio.codec.world:WorldCodec",
}


class GeneratedDecode(NamedTuple):
    """How `decode` treats tokens a model sampled rather than ones `encode` made. Each sampled
    token is a plausible value on its own, not the one that goes with its neighbours; the
    frame-to-frame jitter that leaves is noise to a listener and to a recognizer. The values
    inference uses, and their measurements, are in dubcli/inference.py."""

    residual_scale: float = 1.0  # acoustic envelope detail, shrunk toward the content table
    energy_median: int = 1  # running median of the energy track over this many tokens; 1 = off


class CodecTokens(NamedTuple):
    """One utterance as tokens. All token arrays are int64 with the same t."""

    prosody: np.ndarray  # (1, t)
    content: np.ndarray  # (2, t)
    acoustic: np.ndarray  # (3, t)
    speaker: np.ndarray  # (d,) float32: what decode needs to restore the voice

    @property
    def n_tokens(self) -> int:
        return int(self.prosody.shape[-1])

    def stacked(self) -> np.ndarray:
        """(6, t): prosody, content 0-1, acoustic 0-2, the order the model's streams use."""
        return np.concatenate([self.prosody, self.content, self.acoustic], axis=0)

    def with_speaker(self, speaker: np.ndarray) -> CodecTokens:
        """The same tokens with another speaker embedding (voice conversion at decode)."""
        return self._replace(speaker=np.asarray(speaker, dtype=np.float32))

    def slice(self, start: int, stop: int) -> CodecTokens:
        """Tokens [start, stop) of every stream (e.g. a prompt cut from a reference)."""
        return self._replace(
            prosody=self.prosody[:, start:stop],
            content=self.content[:, start:stop],
            acoustic=self.acoustic[:, start:stop],
        )


@runtime_checkable
class Codec(Protocol):
    """What the model, the dubbing pipeline and the data preparation need from a codec."""

    name: str  # backend name, e.g. "world"
    version: str  # feature/codebook version; a checkpoint from another version is refused
    sample_rate: int  # 16000
    frame_rate: int  # 80 tokens per second
    streams: dict[str, int]  # {"prosody": 1, "content": 2, "acoustic": 3}
    vocab: int  # codes per stream (1024 in the paper)
    speaker_dim: int  # d

    def encode(self, wav: np.ndarray, labels: Any = None) -> CodecTokens:
        """wav (n,) float at 16 kHz -> tokens with t = n // 200 exactly. `labels` (phonemes
        and their durations in tokens, when the caller knows them) make content codes exact."""
        ...

    def decode(
        self,
        tokens: CodecTokens,
        speaker: np.ndarray | None = None,
        *,
        generated: GeneratedDecode | None = None,
    ) -> np.ndarray:
        """tokens (t) -> wav (t * 200,) float32; `speaker` (d,) overrides tokens.speaker;
        `generated`: the tokens were sampled by a model, decode them so (None: encoded)."""
        ...

    def save(self, path: str | os.PathLike) -> Path: ...


def check_wav(wav: Any, what: str = "waveform") -> np.ndarray:
    """A mono float64 waveform, or InputError naming `what` (a file name when there is one)."""
    arr = np.asarray(wav)
    if arr.ndim != 1:
        raise InputError(f"{what}: expected a mono waveform of shape (n,), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        # int16 PCM passed as is would be 32768 times too loud: make the caller scale it
        raise InputError(f"{what}: expected float samples in [-1, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what}: waveform contains NaN or infinite samples")
    return np.ascontiguousarray(arr)


def check_tokens(
    tokens: CodecTokens, *, vocab: int, speaker_dim: int, what: str = "tokens"
) -> CodecTokens:
    """Shapes and ranges of a token set, or InputError saying which stream is wrong."""
    if not isinstance(tokens, CodecTokens):
        raise InputError(f"{what}: expected CodecTokens, got {type(tokens).__name__}")
    t = None
    out = {}
    for name, n in STREAMS.items():
        arr = np.asarray(getattr(tokens, name))
        if arr.ndim != 2 or arr.shape[0] != n:
            raise InputError(f"{what}: {name} stream must have shape ({n}, t), got {arr.shape}")
        if t is None:
            t = arr.shape[1]
        elif arr.shape[1] != t:
            raise InputError(f"{what}: {name} stream has {arr.shape[1]} tokens, prosody has {t}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"{what}: {name} tokens must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= vocab):
            raise InputError(
                f"{what}: {name} tokens must lie in [0, {vocab}), got [{arr.min()}, {arr.max()}]"
            )
        out[name] = arr.astype(np.int64)
    spk = np.asarray(tokens.speaker, dtype=np.float32)
    if spk.shape != (speaker_dim,) or not np.all(np.isfinite(spk)):
        raise InputError(
            f"{what}: speaker embedding must be {speaker_dim} finite values, got shape {spk.shape}"
        )
    return CodecTokens(out["prosody"], out["content"], out["acoustic"], spk)


def load_codec(source: str | os.PathLike | LoadedCheckpoint) -> Codec:
    """A codec from its checkpoint file, or from (tensors, metadata) already loaded (e.g. the
    codec part of a model checkpoint). Dispatches on metadata["kind"]."""
    if isinstance(source, LoadedCheckpoint) or (isinstance(source, tuple) and len(source) == 2):
        tensors, metadata = source
        cls = _codec_class(metadata.get("kind"), "codec state")
        return cls.from_state(dict(tensors), dict(metadata), source="codec state")
    path = Path(source)
    cls = _codec_class(read_metadata(path).get("kind"), str(path))
    return cls.load(path)


def _codec_class(kind: Any, where: str) -> type:
    target = CODEC_KINDS.get(kind) if isinstance(kind, str) else None
    if target is None:
        known = ", ".join(sorted(CODEC_KINDS))
        raise CheckpointError(
            f"{where}: '{kind}' is not a codec this dubcli can load (known: {known})"
        )
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
