"""Phone durations from (audio, transcript): forced alignment with pocketsphinx 5 (DESIGN 2).

Duration targets for the content model (paper 3.3) and frame-phoneme alignments for the
Synchronizer (3.4.2, eq. 2) come from pocketsphinx's bundled en-us model (10 ms frames) aligning
OUR pronunciation: each run of spoken phones between specials becomes a word `u<k>` with exactly
those phones (stress stripped) in a fresh decoder whose dictionary holds nothing else. Two
passes: words (`set_align_text`), then phones (`set_alignment`). Mapped back one-to-one:
- spoken phones get their aligned spans; `<wb>` has zero duration;
- `<sil>` gets the pause the aligner found between its neighbouring words (possibly 0); a pause
  where our sequence has no `<sil>` is split at its midpoint between the phones either side;
- leading / trailing silence goes to a `<sil>` at the start / end of the sequence; without one it
  is reported as `leading_silence` / `trailing_silence` and counted in the first / last spoken
  phone's `frame_durations` and `token_durations` (the phone spans stay as aligned).
Durations in video frames (25 fps) and tokens (80/s) round the cumulative boundary times, never
per-phone durations, so they sum exactly to `frames_for_seconds(duration)` and
`tokens_for_samples(len(wav))`. A failed or implausible alignment comes back with ok=False and a
reason, never as plausible-looking numbers. Accuracy: benchmarks/forced_alignment.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError
from dubcli.text.phonemes import (
    SILENCE,
    SYMBOL_TO_ID,
    UNK,
    WORD_BOUNDARY,
    PhonemeSequence,
    WordSpan,
    strip_stress,
)
from dubcli.timing import SAMPLE_RATE, TOKEN_RATE, VIDEO_FPS, frames_for_seconds, tokens_for_samples

log = get_logger(__name__)

SPECIAL = (WORD_BOUNDARY, SILENCE)
ALIGNABLE = (WORD_BOUNDARY, SILENCE, UNK)  # the only <...> symbols a sequence to align may hold
MIN_PHONE_FRAMES = 3  # 3-state left-to-right HMMs without skips: 30 ms per phone at least
SILENT_RMS = 10 ** (-60 / 20)  # below -60 dBFS there is nothing to align
# Rejection thresholds, measured with benchmarks/forced_alignment.py: correct phonemes gave a
# word mismatch <= 190 on 30 mbrola GRID sentences (mbrola's or CMUdict's pronunciations) and
# <= 266 on 40 SynthDub utterances (7 voices, perturbed); about two thirds of the sequences with
# one word replaced or dropped scored 400-3600. Correct pauses held <= 5 speech-loud frames, a
# dropped final word 21-31.
MISMATCH_FLOOR = 30  # per-frame score shortfall a well-matched phone may have
MAX_MISMATCH = 400.0
LOUD_PAUSE_DB = 12.0  # "loud": within this many dB of the median speech frame
LOUD_PAUSE_FRAMES = 15  # 150 ms of loud frames in one pause


@dataclass(frozen=True)
class AlignedPhone:
    symbol: str  # vocabulary symbol, as in the PhonemeSequence
    id: int  # its vocabulary id
    start: float  # seconds from the start of the audio
    end: float  # seconds; == start for <wb> and for a <sil> with no pause


@dataclass(frozen=True)
class AlignedWord:
    text: str
    start: float  # seconds: start of its first phone
    end: float  # seconds: end of its last phone


@dataclass(frozen=True)
class Alignment:
    """Result of `force_align`; when `ok` is False every tuple is empty and `reason` says why."""

    ok: bool
    reason: str | None  # why the alignment was rejected; None when ok
    duration: float  # seconds of audio (len(wav) / 16000)
    phones: tuple[AlignedPhone, ...] = ()  # one per element of the PhonemeSequence
    words: tuple[AlignedWord, ...] = ()  # one per WordSpan of the PhonemeSequence
    leading_silence: float = 0.0  # seconds before the first phone not owned by a <sil>
    trailing_silence: float = 0.0  # seconds after the last phone not owned by a <sil>
    frame_durations: tuple[int, ...] = ()  # per element, 25 fps video frames; sums to the total
    token_durations: tuple[int, ...] = ()  # per element, 80/s speech tokens; sums to the total
    mismatch: float | None = None  # worst word's acoustic mismatch (see _mismatch); 0 = none


class _Phone(NamedTuple):
    name: str  # model phone, e.g. "AH"; "SIL" in pauses
    start: int  # first 10 ms frame
    end: int  # frame after the last one
    score: int  # pocketsphinx acoustic score of the whole phone (log domain, <= 0)


@dataclass(frozen=True)
class _Word:
    name: str  # "u<k>" for our units; "<sil>" (or another filler) for pauses
    phones: tuple[_Phone, ...]
    start: int
    end: int


def force_align(
    wav: np.ndarray,
    phonemes: PhonemeSequence,
    *,
    name: str = "audio",
    max_mismatch: float | None = MAX_MISMATCH,
) -> Alignment:
    """Align `phonemes` to `wav` (T,) 16 kHz mono float in [-1, 1] (int16 is accepted too).

    `name` (e.g. an utterance id or file name) is used in error messages. `max_mismatch` rejects
    alignments whose acoustic mismatch (`Alignment.mismatch`) exceeds it; None disables that
    check. Raises InputError for inputs that cannot be aligned by construction (empty or
    non-finite audio, symbols outside the vocabulary, <pad>/<blank> in the sequence); returns
    ok=False with a reason when the aligner fails or its output is implausible.
    """
    samples = _check_wav(wav, name)
    symbols = tuple(phonemes.symbols)
    _check_sequence(phonemes, name)
    duration = len(samples) / SAMPLE_RATE

    def fail(reason: str) -> Alignment:
        log.debug("forced alignment of %s failed: %s", name, reason)
        return Alignment(ok=False, reason=reason, duration=duration)

    units = _spoken_units(symbols)
    if not units:
        return fail("the phoneme sequence has no spoken phones")
    if UNK in symbols:
        return fail(f"the phoneme sequence contains {UNK} (a word the G2P could not spell)")
    n_spoken = sum(e - s for s, e in units)
    if duration < n_spoken * MIN_PHONE_FRAMES / 100:
        return fail(f"{duration:.2f} s of audio is too short for {n_spoken} phones")
    if float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) < SILENT_RMS:
        return fail("the audio is silent (below -60 dBFS)")

    pron = [[strip_stress(symbols[i]).upper() for i in range(s, e)] for s, e in units]
    try:
        words = _pocketsphinx_align(samples, pron)
    except RuntimeError as exc:
        return fail(f"pocketsphinx failed: {exc}")
    if words is None:
        return fail("no alignment found: the audio does not match the phonemes (or is noise)")

    ours = [w for w in words if w.name.startswith("u")]
    if [w.name for w in ours] != [f"u{k}" for k in range(len(units))]:
        return fail(f"aligned words {[w.name for w in ours]} do not match the {len(units)} units")
    for w, p in zip(ours, pron, strict=True):
        if [ph.name for ph in w.phones] != p:
            return fail(f"aligned phones {[ph.name for ph in w.phones]} != expected {p}")
    mismatch = _mismatch(words)
    reason = _implausible([ph.end - ph.start for w in ours for ph in w.phones])
    if reason := reason or _loud_pause(samples, words):
        return fail(reason)
    if max_mismatch is not None and mismatch > max_mismatch:
        return fail(
            f"the audio matches the phonemes poorly (word mismatch {mismatch:.0f} > "
            f"{max_mismatch:.0f}): a word differs or is missing"
        )

    frame_s = 1.0 / 100  # pocketsphinx frame rate (frate 100)
    spans: list[list[float]] = [[0.0, 0.0] for _ in symbols]
    for (s, _), w in zip(units, ours, strict=True):
        for k, ph in enumerate(w.phones):
            spans[s + k] = [min(ph.start * frame_s, duration), min(ph.end * frame_s, duration)]
    lead, trail = _assign_gaps(symbols, units, spans, duration)

    # Cumulative boundaries: leading / trailing silence not owned by a <sil> is counted in the
    # first / last spoken phone, so the specials outside the speech keep zero length.
    first, last = units[0][0], units[-1][1] - 1
    ends = np.array([sp[1] for sp in spans])
    if lead > 0:
        ends[:first] = 0.0
    if trail > 0:
        ends[last:] = duration
    ends[-1] = duration
    bounds = np.concatenate([[0.0], ends])
    frame_durs = _quantize(bounds, VIDEO_FPS, frames_for_seconds(duration))
    token_durs = _quantize(bounds, TOKEN_RATE, tokens_for_samples(len(samples)))

    phones = tuple(
        AlignedPhone(sym, SYMBOL_TO_ID[sym], round(a, 6), round(b, 6))
        for sym, (a, b) in zip(symbols, spans, strict=True)
    )
    aligned_words = tuple(_word_span(w, phones) for w in phonemes.words)
    return Alignment(
        ok=True,
        reason=None,
        duration=duration,
        phones=phones,
        words=aligned_words,
        leading_silence=round(lead, 6),
        trailing_silence=round(trail, 6),
        frame_durations=frame_durs,
        token_durations=token_durs,
        mismatch=mismatch,
    )


def _check_wav(wav: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(wav)
    if arr.ndim != 1:
        raise InputError(f"{name}: audio must be mono 1-D samples, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: audio is empty")
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: audio must be float (or int16) samples, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: audio contains NaN or infinite samples")
    return arr.astype(np.float32, copy=False)


def _check_sequence(phonemes: PhonemeSequence, name: str) -> None:
    symbols = phonemes.symbols
    bad = sorted(
        {s for s in symbols if s not in SYMBOL_TO_ID or (s.startswith("<") and s not in ALIGNABLE)}
    )
    if bad:
        raise InputError(f"{name}: phoneme sequence has symbols that cannot be aligned: {bad}")
    for w in phonemes.words:
        if not 0 <= w.start <= w.end <= len(symbols):
            raise InputError(
                f"{name}: word {w.text!r} spans [{w.start}, {w.end}) outside the "
                f"{len(symbols)} phonemes"
            )


def _spoken_units(symbols: Sequence[str]) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of spoken phones between specials: one aligner word each."""
    units, start = [], None
    for i, sym in enumerate((*symbols, WORD_BOUNDARY)):
        if sym in SPECIAL:
            if start is not None:
                units.append((start, i))
            start = None
        elif start is None:
            start = i
    return units


def _pocketsphinx_align(samples: np.ndarray, pron: list[list[str]]) -> list[_Word] | None:
    """Run both alignment passes; words (incl. <sil>) with frame spans, or None if no path."""
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DependencyError("pocketsphinx is missing: pip install 'pocketsphinx>=5'") from exc

    # A fresh decoder per call (~10 ms with an empty dictionary): reusing one and reloading its
    # dictionary after a failed alignment of a longer text crashes pocketsphinx 5.0 (measured).
    decoder = pocketsphinx.Decoder(lm=None, dict=os.devnull, loglevel="FATAL")
    for k, phones in enumerate(pron):
        # update=True only on the last word: it rebuilds the dictionary index once
        decoder.add_word(f"u{k}", " ".join(phones), k == len(pron) - 1)
    raw = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    decoder.set_align_text(" ".join(f"u{k}" for k in range(len(pron))))
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return None
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    alignment = decoder.get_alignment()
    if alignment is None:
        return None
    words = []
    for w in alignment:
        phones = tuple(_Phone(p.name, p.start, p.start + p.duration, p.score) for p in w)
        words.append(_Word(w.name, phones, w.start, w.start + w.duration))
    return words


def _implausible(frames: list[int]) -> str | None:
    """Reject alignments that squeeze phones to the HMM minimum (transcript longer than speech)."""
    at_min = [f <= MIN_PHONE_FRAMES for f in frames]
    tail = len(at_min) - next((i + 1 for i in range(len(at_min) - 1, -1, -1) if not at_min[i]), 0)
    if tail >= 4:
        return f"the last {tail} phones all have the minimum duration (squeezed alignment)"
    if len(frames) >= 4 and sum(at_min) > len(frames) / 2:
        return f"{sum(at_min)} of {len(frames)} phones have the minimum duration"
    return None


def _mismatch(words: list[_Word]) -> float:
    """The largest, over aligned words and pauses, of frames x per-frame score shortfall below
    MISMATCH_FLOOR summed over the word's phones.

    pocketsphinx scores each frame relative to the best-matching senone, so a phone whose audio
    fits its model scores near 0 per frame; audio forced onto the wrong phones falls far below.
    A wrong or missing word is local, so the worst word (not the sum, which grows with length)
    separates it from a long correct utterance.
    """
    worst = 0.0
    for w in words:
        total = 0.0
        for ph in w.phones:
            n = max(ph.end - ph.start, 1)
            total += n * max(0.0, -ph.score / n - MISMATCH_FLOOR)
        worst = max(worst, total)
    return worst


def _loud_pause(samples: np.ndarray, words: list[_Word]) -> str | None:
    """A pause (aligner silence) with >= 150 ms of speech-loud frames hides a missing word."""
    n = len(samples) // 160
    frame_db = 10 * np.log10(
        np.mean(samples[: n * 160].astype(np.float64).reshape(n, 160) ** 2, axis=1) + 1e-12
    )
    speech = [frame_db[p.start : p.end] for w in words if w.name.startswith("u") for p in w.phones]
    speech_db = np.concatenate(speech) if speech else np.zeros(0)
    if speech_db.size == 0:
        return None
    loud = float(np.median(speech_db)) - LOUD_PAUSE_DB
    for w in words:
        if not w.name.startswith("u"):
            n_loud = int((frame_db[w.start : w.end] > loud).sum())
            if n_loud >= LOUD_PAUSE_FRAMES:
                return (
                    f"the pause at {w.start / 100:.2f}-{w.end / 100:.2f} s sounds like speech "
                    f"({n_loud * 10} ms as loud as the phones): is a word missing?"
                )
    return None


def _assign_gaps(
    symbols: Sequence[str], units: list[tuple[int, int]], spans: list[list[float]], total: float
) -> tuple[float, float]:
    """Place specials and give the non-speech gaps to <sil> tokens (see the module docstring).

    Edits `spans` in place; returns (leading, trailing) silence not owned by a <sil>.
    """
    lead = trail = 0.0
    for k in range(len(units) + 1):
        lo = units[k - 1][1] if k > 0 else 0  # specials between the units: [lo, hi)
        hi = units[k][0] if k < len(units) else len(symbols)
        g0 = spans[lo - 1][1] if k > 0 else 0.0
        g1 = spans[hi][0] if k < len(units) else total
        g1 = max(g1, g0)
        sil = next((i for i in range(lo, hi) if symbols[i] == SILENCE), None)
        if sil is not None:
            cut = sil
            spans[sil] = [g0, g1]
        elif k == 0:
            lead, cut = g1 - g0, lo  # zero-length specials at the first phone's start
        elif k == len(units):
            trail, cut = g1 - g0, hi  # zero-length specials at the last phone's end
        else:
            mid = (g0 + g1) / 2
            spans[lo - 1][1] = spans[hi][0] = mid
            g0 = g1 = mid
            cut = hi
        for i in range(lo, hi):
            if i != sil:
                t = g0 if i < cut else g1
                spans[i] = [t, t]
    return lead, trail


def _quantize(bounds: np.ndarray, rate: float, total: int) -> tuple[int, ...]:
    """Cumulative boundaries (seconds, N+1) -> N integer durations at `rate` summing to `total`."""
    b = np.rint(bounds * rate).astype(np.int64)  # round cumulative times: errors never add up
    b = np.clip(np.maximum.accumulate(b), 0, total)
    b[0], b[-1] = 0, total
    return tuple(int(d) for d in np.diff(b))


def _word_span(word: WordSpan, phones: tuple[AlignedPhone, ...]) -> AlignedWord:
    inside = phones[word.start : word.end]
    if not inside:  # an empty span: a point where the next phone starts
        t = phones[min(word.start, len(phones) - 1)].start
        return AlignedWord(word.text, t, t)
    return AlignedWord(word.text, inside[0].start, inside[-1].end)


def boundary_errors(alignment: Alignment, truth: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """Absolute phone-boundary errors (seconds) of an alignment against reference phone spans.

    truth: (symbol, start, end) for each spoken phone, in order (no silences). Boundaries are
    every phone start plus the end of each phone not followed directly by the next one (before a
    pause, and the last). Raises ValueError when the spoken phone counts differ.
    """
    spoken = [p for p in alignment.phones if p.symbol not in SPECIAL]
    if len(spoken) != len(truth):
        raise ValueError(f"{len(spoken)} aligned phones vs {len(truth)} reference phones")
    errors = []
    for k, (p, (_, t0, t1)) in enumerate(zip(spoken, truth, strict=True)):
        errors.append(abs(p.start - t0))
        if k + 1 == len(truth) or abs(truth[k + 1][1] - t1) > 1e-6:
            errors.append(abs(p.end - t1))
    return np.array(errors)
