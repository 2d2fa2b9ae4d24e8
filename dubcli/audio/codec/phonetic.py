"""Phonetic content tokens: the content streams as a function of the phonemes (paper 3.2, B.1).

Dimensions: t tokens (80/s), m = mcep_order, u = len(UNITS), b = len(BASES).

FACodec's content codes are phonetic by construction (a phone classifier on its content
quantizer, gradient reversal against the speaker); DiFlow-TTS calls its content predictor a
"deterministic phoneme-content mapper". The `world` codec gets the same property directly from
phone labels (SynthDub's exact timings, or forced alignments of real data):
- content stage 1 = the phone without stress (a `BASES` index: <sil>, 15 vowels, 24 consonants);
- content stage 2 = the phone with stress (a `UNITS` index), i.e. stage 1 refined.
Both are constant over a phone, so a text-only model predicts them from phonemes + durations.

Decoding turns the code sequence back into speaker-normalized cepstra with a table fit on
training speech: each frame takes the mean cepstrum of its (phone, third of the phone,
neighbour) where the neighbour is the previous phone in the first third, the next phone in the
last third and none in the middle (coarticulation), plus a per-(stressed phone, third) offset.
Thirds and neighbours are read off the runs of the codes themselves, so decode needs nothing but
the tokens. Measured on 20 GRID test utterances of unseen SynthDub speakers (pocketsphinx, GRID
grammar) with the utterance's own F0, aperiodicity and energy: (phone, third) means alone 19%
WER, with neighbours 8.3%, plain WORLD resynthesis 2.5% (benchmarks/codec_content.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from dubcli.errors import InputError
from dubcli.text.phonemes import CONSONANTS, SILENCE, VOWELS, strip_stress

# Stage 1: phones without stress. Index 0 is silence (also <unk>, <wb> and anything unspoken).
BASES: tuple[str, ...] = (SILENCE, *VOWELS, *CONSONANTS)
# Stage 2: phones with stress (vowels x 0/1/2), same order as the phoneme vocabulary.
UNITS: tuple[str, ...] = (SILENCE, *(v + s for v in VOWELS for s in "012"), *CONSONANTS)
BASE_INDEX = {b: i for i, b in enumerate(BASES)}
UNIT_INDEX = {u: i for i, u in enumerate(UNITS)}
UNIT_BASE = np.array([BASE_INDEX[strip_stress(u)] for u in UNITS], dtype=np.int64)  # (u,)
N_BASES, N_UNITS = len(BASES), len(UNITS)
MIN_VOCAB = N_UNITS  # both content stages must fit in the codebook size
NO_NEIGHBOUR = N_BASES  # neighbour slot of a phone's middle third


class PhoneLabels(NamedTuple):
    """Phonemes of one utterance and their lengths in tokens (they sum to its token count)."""

    symbols: Sequence[str]  # vocabulary symbols (dubcli.text.phonemes)
    durations: Sequence[int]  # (nt,) tokens per phoneme


def unit_of(symbol: str) -> int:
    """A vocabulary symbol -> UNITS index (specials are silence; a vowel without stress is 1)."""
    if symbol in UNIT_INDEX:
        return UNIT_INDEX[symbol]
    if symbol in VOWELS:
        return UNIT_INDEX[symbol + "1"]
    return 0


def label_units(labels: PhoneLabels, n_tokens: int, what: str = "phone labels") -> np.ndarray:
    """Per-token UNITS index (t,) from labels; InputError if the durations do not cover t."""
    durations = np.asarray(labels.durations, dtype=np.int64)
    if len(durations) != len(labels.symbols) or (durations < 0).any():
        raise InputError(f"{what}: {len(labels.symbols)} phonemes but {len(durations)} durations")
    if int(durations.sum()) != n_tokens:
        raise InputError(
            f"{what}: durations sum to {int(durations.sum())} tokens, the audio has {n_tokens}"
        )
    units = np.array([unit_of(s) for s in labels.symbols], dtype=np.int64)
    return np.repeat(units, durations)


def content_codes(units: np.ndarray) -> np.ndarray:
    """(t,) UNITS indices -> (2, t) content codes: stage 1 base phone, stage 2 stressed phone."""
    units = np.asarray(units, dtype=np.int64)
    return np.stack([UNIT_BASE[units], units])


class FrameContext(NamedTuple):
    base: np.ndarray  # (t,) BASES index
    unit: np.ndarray  # (t,) UNITS index
    third: np.ndarray  # (t,) 0, 1, 2: position in the phone
    neighbour: np.ndarray  # (t,) previous base (third 0), next base (third 2), NO_NEIGHBOUR


def frame_context(codes: np.ndarray) -> FrameContext:
    """(2, t) content codes -> per-frame phone, third and neighbour, from the runs of the codes.

    A run is a maximal stretch of equal stage-2 codes (one phone); codes out of range are read
    as silence, so decode never fails on a model's output."""
    codes = np.asarray(codes, dtype=np.int64)
    unit = np.where((codes[1] >= 0) & (codes[1] < N_UNITS), codes[1], 0)
    base = UNIT_BASE[unit]
    t = len(unit)
    third = np.zeros(t, dtype=np.int64)
    neighbour = np.full(t, NO_NEIGHBOUR, dtype=np.int64)
    if t == 0:
        return FrameContext(base, unit, third, neighbour)
    starts = np.flatnonzero(np.diff(unit)) + 1
    bounds = np.concatenate([[0], starts, [t]])
    run_base = base[bounds[:-1]]
    for k in range(len(bounds) - 1):
        s, e = int(bounds[k]), int(bounds[k + 1])
        j = np.arange(e - s)
        pos = np.minimum(2, (3 * j) // (e - s))
        third[s:e] = pos
        prev = run_base[k - 1] if k > 0 else 0
        nxt = run_base[k + 1] if k + 1 < len(run_base) else 0
        neighbour[s:e] = np.where(pos == 0, prev, np.where(pos == 2, nxt, NO_NEIGHBOUR))
    return FrameContext(base, unit, third, neighbour)


class ContentTable(NamedTuple):
    """What decode adds up per frame (speaker-normalized cepstra c1..cM)."""

    context: np.ndarray  # (b, 3, b + 1, m): mean per (phone, third, neighbour)
    stress: np.ndarray  # (u, 3, m): offset of a stressed phone from its base

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """(2, t) content codes -> (t, m) normalized cepstra."""
        ctx = frame_context(codes)
        return self.context[ctx.base, ctx.third, ctx.neighbour] + self.stress[ctx.unit, ctx.third]


def fit_content_table(z: np.ndarray, codes: np.ndarray, *, shrink: float = 20.0) -> ContentTable:
    """Fit the table on normalized cepstra z (n, m) of labelled frames with codes (2, n).

    Means per (phone, third, neighbour) are shrunk toward the (phone, third) mean with a prior
    worth `shrink` frames, so rare contexts fall back smoothly and unseen ones exactly."""
    z = np.asarray(z, dtype=np.float64)
    m = z.shape[1]
    ctx = frame_context(codes)
    pt_sum = np.zeros((N_BASES, 3, m))
    pt_n = np.zeros((N_BASES, 3))
    np.add.at(pt_sum, (ctx.base, ctx.third), z)
    np.add.at(pt_n, (ctx.base, ctx.third), 1)
    pt_mean = pt_sum / np.maximum(pt_n, 1)[..., None]
    c_sum = np.zeros((N_BASES, 3, N_BASES + 1, m))
    c_n = np.zeros((N_BASES, 3, N_BASES + 1))
    np.add.at(c_sum, (ctx.base, ctx.third, ctx.neighbour), z)
    np.add.at(c_n, (ctx.base, ctx.third, ctx.neighbour), 1)
    context = (c_sum + shrink * pt_mean[:, :, None, :]) / (c_n + shrink)[..., None]
    residual = z - context[ctx.base, ctx.third, ctx.neighbour]
    s_sum = np.zeros((N_UNITS, 3, m))
    s_n = np.zeros((N_UNITS, 3))
    np.add.at(s_sum, (ctx.unit, ctx.third), residual)
    np.add.at(s_n, (ctx.unit, ctx.third), 1)
    stress = s_sum / (s_n + shrink)[..., None]
    return ContentTable(context.astype(np.float32), stress.astype(np.float32))
