"""The dub timeline: each cue's speech placed at its window, rendered block by block.

Dimensions: n samples at the timeline's rate (the mix rate, 48 kHz).

Rules (DESIGN 3, "timeline"):
- a cue's audio starts at its window start; its slot runs to the next cue's window start (or the
  end of the video), so speech that is a little longer than its window may use the pause after
  it, but two cues never overlap;
- audio longer than its slot is cut at the slot's end; every placed piece gets 10 ms raised-cosine
  fades at both edges so a cut never clicks;
- rendering is per block: only the cues that touch the block are loaded (`load(index)` returns a
  cue's samples at the timeline rate), so memory is one block plus the longest cue.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

FADE_S = 0.010  # edge fades: long enough to avoid clicks, short enough to keep onsets


@dataclass(frozen=True)
class Placement:
    """Where one cue's audio sits on the timeline (samples at the timeline rate)."""

    index: int  # cue number
    start: int  # first sample of the cue's audio (= its window start)
    length: int  # samples placed (after cutting to the slot)
    slot_end: int  # first sample of the next cue's slot (or the end of the timeline)
    cut: int  # samples cut off because the audio was longer than its slot

    @property
    def end(self) -> int:
        return self.start + self.length


def place(cues: Sequence[tuple[int, float, int]], rate: int, total: int) -> list[Placement]:
    """cues: (index, window start seconds, audio length in samples at `rate`), in time order.

    Returns non-overlapping placements: each cue's audio cut to [start, next start)."""
    starts = [min(int(round(s * rate)), total) for _, s, _ in cues]
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        raise ValueError("cues must be in time order")
    out = []
    for i, (index, _, length) in enumerate(cues):
        slot_end = starts[i + 1] if i + 1 < len(cues) else total
        placed = max(0, min(int(length), slot_end - starts[i]))
        out.append(Placement(index, starts[i], placed, slot_end, int(length) - placed))
    return out


def fade_edges(wav: np.ndarray, rate: int, fade_s: float = FADE_S) -> np.ndarray:
    """A copy of (n,) `wav` with raised-cosine fades of fade_s (at most n/2) at both ends."""
    wav = np.array(wav, dtype=np.float32, copy=True)
    k = min(int(round(fade_s * rate)), len(wav) // 2)
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
        wav[:k] *= ramp
        wav[-k:] *= ramp[::-1]
    return wav


class TimelineRenderer:
    """Renders [b0, b1) of the dub track from placements, loading cue audio on demand."""

    def __init__(
        self,
        placements: Sequence[Placement],
        load: Callable[[int], np.ndarray],
        rate: int,
        cache_size: int = 2,
    ):
        self.placements = sorted((p for p in placements if p.length > 0), key=lambda p: p.start)
        self._load, self.rate = load, rate
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _audio(self, p: Placement) -> np.ndarray:
        if p.index not in self._cache:
            wav = np.asarray(self._load(p.index), np.float32).reshape(-1)[: p.length]
            self._cache[p.index] = fade_edges(wav, self.rate)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(p.index)
        return self._cache[p.index]

    def render(self, b0: int, b1: int) -> np.ndarray:
        """(b1 - b0,) float32 dub samples of the block."""
        out = np.zeros(b1 - b0, np.float32)
        for p in self.placements:
            if p.end <= b0:
                continue
            if p.start >= b1:
                break
            wav = self._audio(p)
            lo, hi = max(p.start, b0), min(p.end, b1)
            out[lo - b0 : hi - b0] += wav[lo - p.start : hi - p.start]
        return out

    def speech_intervals(self) -> list[tuple[int, int]]:
        """(start, end) samples of every placed cue: where the dub speaks (for ducking)."""
        return [(p.start, p.end) for p in self.placements]
