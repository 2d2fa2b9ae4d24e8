"""What goes into and out of inference.Dubber: requests, outputs, oracles, phoneme checking.

Dimensions: nt phonemes, nv video frames (25 fps), n speech tokens (80/s), Dl / Df lip / face
widths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubcli.errors import InputError
from dubcli.reference import Prompt
from dubcli.text.phonemes import SILENCE, SYMBOL_TO_ID, PhonemeSequence, decode
from dubcli.timing import SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class Oracle:
    """Ground truth put in place of a model's own predictions, so an evaluation can say where
    an error comes from (`dubcli eval --oracles`). Empty: the model as it is."""

    durations_frames: Sequence[int] | None = None  # (nt,) video frames per phoneme (MAS's job)
    content: np.ndarray | None = None  # (2, n) content tokens (the content head's job)

    def frame_durations(self, nt: int, nv: int):
        """(nt,) long tensor or None; InputError when they do not fit the phonemes/frames."""
        if self.durations_frames is None:
            return None
        import torch

        dur = np.asarray(self.durations_frames, dtype=np.int64)
        if dur.shape != (nt,) or int(dur.sum()) != nv or (dur < 0).any():
            raise InputError(f"oracle durations: {dur.shape[0]} phonemes summing to "
                             f"{int(dur.sum())} frames, expected {nt} and {nv}")  # fmt: skip
        return torch.from_numpy(dur)


@dataclass(frozen=True, eq=False)
class DubOutput:
    wav: np.ndarray  # (nv * 640,) float32 at 16 kHz (tts without a length: n * 200)
    tokens: Any  # CodecTokens of the generated speech (n tokens, the prompt's speaker)
    phonemes: tuple[str, ...]  # (nt,) the symbols the model got (with the <sil> edges)
    durations: np.ndarray  # (nt,) int64 tokens per phoneme
    durations_frames: np.ndarray | None  # (nt,) int64 video frames per phoneme (stage 2)
    attn_video: np.ndarray | None  # (nv, nt) float32 lip->phoneme attention (stage 2)
    attn_speech: np.ndarray | None  # (n, nt) float32 speech->phoneme attention (stage 2)
    seconds_model: float  # wall time of the model's generate (GPU synchronized)
    seconds_decode: float  # wall time of the codec's decode
    text_only: bool = False  # timing came from text (no face), see the module doc

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.n_tokens)

    @property
    def seconds(self) -> float:
        return len(self.wav) / SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class DubRequest:
    """One cue for `Dubber.dub_many`: a face (lip and face given) or text-only timing."""

    phonemes: Any  # PhonemeSequence | symbols | ids
    lip: np.ndarray | None  # (nv, Dl), None: no face (text-only timing)
    face: np.ndarray | None  # (nv, Df)
    prompt: Prompt
    seed: int | None = 0
    n_tokens: int | None = None  # text-only: tokens to make (None: the predicted length)


def phoneme_symbols(phonemes: Any) -> tuple[str, ...]:
    """PhonemeSequence | symbols | ids -> symbols with a <sil> at both ends (see module doc)."""
    if isinstance(phonemes, PhonemeSequence):
        symbols = list(phonemes.symbols)
    else:
        seq = list(np.asarray(phonemes).tolist()) if not isinstance(phonemes, str) else None
        if seq is None:
            raise InputError(f"phonemes: expected symbols or ids, got the string {phonemes!r}")
        try:
            symbols = decode(seq) if seq and isinstance(seq[0], int) else [str(s) for s in seq]
        except ValueError as exc:
            raise InputError(f"phonemes: {exc}") from None
    bad = [s for s in symbols if s not in SYMBOL_TO_ID or s in ("<pad>", "<blank>")]
    if bad:
        raise InputError(f"phonemes: symbols outside the model's vocabulary: {bad[:5]}")
    if not [s for s in symbols if not s.startswith("<")]:
        raise InputError("phonemes: nothing to say (no spoken phoneme)")
    if symbols[0] != SILENCE:
        symbols.insert(0, SILENCE)
    if symbols[-1] != SILENCE:
        symbols.append(SILENCE)
    return tuple(symbols)
