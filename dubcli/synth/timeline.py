"""Phone and word timelines of a synthesized utterance, exact to the sample (16 kHz).

Engines hand back `Segment`s (a vocabulary symbol, a length in samples, the word it belongs to);
`build_timeline` turns them into contiguous `PhoneSpan`s from 0 to len(wav)/16000 and one
`WordTiming` per word. Times are sample counts / 16000, so they convert back to samples exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dubcli.errors import ProcessingError
from dubcli.text.phonemes import SILENCE, SYMBOL_TO_ID
from dubcli.timing import SAMPLE_RATE


@dataclass(frozen=True)
class PhoneSpan:
    symbol: str  # a symbol of our vocabulary (text/phonemes.py); pauses are <sil>
    start: float  # seconds
    end: float  # seconds


@dataclass(frozen=True)
class WordTiming:
    text: str  # the word as written in the utterance text (punctuation dropped)
    start: float  # seconds: start of its first phone
    end: float  # seconds: end of its last phone


@dataclass(frozen=True)
class Segment:
    symbol: str  # vocabulary symbol
    n: int  # length in samples at 16 kHz
    word: int  # index into the utterance's words, -1 for pauses


def build_timeline(
    segments: Sequence[Segment], words: Sequence[str], where: str
) -> tuple[tuple[PhoneSpan, ...], tuple[WordTiming, ...]]:
    """Contiguous phones (adjacent pauses merged, empty phones dropped) and word spans.

    `where` names the utterance in errors. Every word must own at least one phone, in order.
    """
    merged: list[Segment] = []
    for seg in segments:
        if seg.symbol not in SYMBOL_TO_ID:
            raise ProcessingError(f"{where}: phone {seg.symbol!r} is not in the vocabulary")
        if seg.n <= 0:
            continue
        if merged and seg.symbol == SILENCE and merged[-1].symbol == SILENCE:
            merged[-1] = Segment(SILENCE, merged[-1].n + seg.n, -1)
        else:
            merged.append(seg)
    phones, spans = [], {}
    pos = 0
    for seg in merged:
        start, end = pos, pos + seg.n
        phones.append(PhoneSpan(seg.symbol, start / SAMPLE_RATE, end / SAMPLE_RATE))
        if seg.word >= 0:
            first, _ = spans.get(seg.word, (start, end))
            spans[seg.word] = (first, end)
        pos = end
    order = sorted(spans)
    if order != list(range(len(words))):
        raise ProcessingError(
            f"{where}: phones cover words {order}, expected 0..{len(words) - 1} ({' '.join(words)})"
        )
    timings = tuple(
        WordTiming(w, spans[i][0] / SAMPLE_RATE, spans[i][1] / SAMPLE_RATE)
        for i, w in enumerate(words)
    )
    if any(a.end > b.start for a, b in zip(timings, timings[1:], strict=False)):
        raise ProcessingError(f"{where}: word spans overlap ({' '.join(words)})")
    return tuple(phones), timings


def total_samples(segments: Sequence[Segment]) -> int:
    return sum(max(s.n, 0) for s in segments)
