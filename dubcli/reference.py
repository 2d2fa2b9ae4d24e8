"""The reference voice -> the prompt the model continues [paper 3.3, B.2.1 "Contextual Modeling"].

The whole reference (its cleanest MAX_REFERENCE_S when longer) is encoded once; the speaker
embedding comes from that segment and the prompt tokens from its cleanest PROMPT_S window (most
tokens within 35 dB of the loudest, no clipping). s = samples at 16 kHz, np = prompt tokens (80/s).

Why 2 s: training prompts are whole reference utterances of the same speaker (data/dataset.py,
capped at 5 s; SynthDub's median is 2.2 s), and the prompt is part of the DiT's sequence at every
flow step (~60% of it for a 1.3 s cue with 4 s). With a long voice sample (the speaker's other
utterances, ~7 s), 4 / 2.5 / 2 s gave WER GRID 29.2 / 29.2 / 28.7% and SECS 0.661 / 0.657 / 0.657
on 36 unseen-voice GRID sentences with the ccta model, and 4 / 2 s 26.4 / 25.9% and 0.689 /
0.690 with the default (text) model, whose dubs took 24% less time with 2 s
(benchmarks/prompt_length.py, benchmarks/generate_batch.py --prompt-seconds). The speaker
embedding, which carries most of the timbre, still comes from the whole reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubcli.errors import InputError
from dubcli.timing import HOP, SAMPLE_RATE, TOKEN_RATE

PROMPT_S = 2.0  # prompt window cut from the reference (module doc)
MAX_REFERENCE_S = 12.0  # longer references: only their cleanest 12 s are analysed
MIN_REFERENCE_S = 0.5  # below this there is no voice to copy
ACTIVE_BELOW_PEAK_DB = 35.0  # a token frame is speech when within this of the loudest frame
SILENT_DBFS = -60.0  # ... and above this absolute level
CLIP_LEVEL = 0.999  # samples at/above this count as clipped


@dataclass(frozen=True, eq=False)
class Prompt:
    """A reference voice as the model consumes it."""

    prosody: np.ndarray  # (1, np) int64 prompt prosody tokens
    acoustic: np.ndarray  # (3, np) int64 prompt acoustic tokens
    speaker: np.ndarray  # (D,) float32 speaker embedding (codec decode restores the voice)
    start_s: float  # where the prompt window starts in the reference, seconds
    seconds: float  # prompt length, seconds (np / 80)
    reference_s: float  # length of the reference given, seconds


def token_levels(wav: np.ndarray) -> np.ndarray:
    """(s,) -> (s // 200,) RMS level in dBFS of each token frame."""
    from dubcli.audio.codec.features import frame_level_db

    return frame_level_db(wav, len(wav) // HOP)


def cleanest_window(wav: np.ndarray, n: int) -> int:
    """Start token of the n-token window with the most speech frames and no clipping (ties:
    the earliest). wav (s,) 16 kHz; n >= the audio's tokens gives 0."""
    levels = token_levels(wav)
    total = len(levels)
    if n >= total:
        return 0
    active = (levels >= levels.max() - ACTIVE_BELOW_PEAK_DB) & (levels >= SILENT_DBFS)
    clipped = np.abs(np.asarray(wav[: total * HOP])).reshape(total, HOP).max(axis=1) >= CLIP_LEVEL
    score = active.astype(np.float64) - 4.0 * clipped
    sums = np.concatenate([[0.0], np.cumsum(score)])
    return int(np.argmax(sums[n:] - sums[:-n]))


def encode_reference(codec, wav: np.ndarray, *, prompt_s: float = PROMPT_S,
                     name: str = "reference") -> Prompt:  # fmt: skip
    """(s,) 16 kHz mono reference voice -> Prompt, with `codec` (see the module doc)."""
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise InputError(f"{name}: expected finite mono 16 kHz audio, got shape {x.shape}")
    if len(x) < MIN_REFERENCE_S * SAMPLE_RATE or token_levels(x).max() < SILENT_DBFS:
        raise InputError(f"{name}: silent, or shorter than {MIN_REFERENCE_S} s: no voice to "
                         "copy")  # fmt: skip
    cap = int(MAX_REFERENCE_S * TOKEN_RATE)
    seg0 = cleanest_window(x, cap)  # 0 when the reference is shorter than the cap
    seg = x[seg0 * HOP : (seg0 + cap) * HOP]
    tokens = codec.encode(seg)
    n = max(1, min(tokens.n_tokens, int(round(prompt_s * TOKEN_RATE))))
    start = cleanest_window(seg, n)
    cut = tokens.slice(start, start + n)
    return Prompt(
        prosody=np.asarray(cut.prosody, np.int64),
        acoustic=np.asarray(cut.acoustic, np.int64),
        speaker=np.asarray(tokens.speaker, np.float32),
        start_s=(seg0 + start) / TOKEN_RATE,
        seconds=n / TOKEN_RATE,
        reference_s=len(x) / SAMPLE_RATE,
    )
