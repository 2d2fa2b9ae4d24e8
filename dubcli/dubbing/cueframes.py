"""The cues' video frames: one ffmpeg decode per cue, or one per span of nearby cues.

Every cue's frames sit on the video's 25 fps grid (frame k shows k / 25 s): a range [a, b)
starts at grid frame round(a * 25) and holds round((b - a) * 25) frames, whichever way it is
decoded.

A decode per cue (`CueDecoder`) restarts ffmpeg for every cue, and ffmpeg's seek decodes again
from the keyframe before the cue: measured on a 60 s 1080p clip (x264, 10 s GOP, 33 cues) 1.0 s
a cue, 33.6 s in all, against 11.0 s for the same cues read through one decode. `SpanDecoder`
therefore reads cues that follow each other closely through one decode (a span), discarding the
frames between them, and seeks only across a long gap. It serves the cues in order, on one
thread: schedule.run_cues gives each preparing lane one (the model on the CPU; one lane with
--widen-to-lips), and `CueDecoder` when a pool of threads prepares cues beside the engine.

The spans are planned from all the cues' ranges before any is read (`plan_spans`), never from
which cues a rerun still has to do, so a cue gets the same frames in a full run and after a
resume. A source on the grid (25 fps) gives the same frames either way. Off the grid, ffmpeg's
fps filter maps source frames to grid frames counted from the decode's first frame: through a
span that is the source frame nearest each grid time; a decode per cue starts at the first
source frame at or after the cue, so it can show each grid time up to one source frame late
(measured on 30 and 23.976 fps sources), and where the source lacks the cue's first frame
(a dropped frame) it shows the next one where a span repeats the one before.

Dimensions: H height, W width (after scaling).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dubcli.timing import VIDEO_FPS

# a decode starts this far before its first grid frame: ffmpeg's exact seek drops every frame
# stamped before the seek time, so a frame stamped a hair before its grid time (re-encoded or
# looped files) would be dropped and the whole range shifted by a frame (measured)
SEEK_LEAD = 0.1 / VIDEO_FPS
SPAN_GAP = 3.0  # seconds of frames read through (and dropped) rather than seeking past them
SPAN_MAX = 60.0  # seconds a span lasts at most: a resume never re-reads more than this to a cue


def grid_range(start: float, end: float, fps: float = VIDEO_FPS) -> tuple[int, int]:
    """[start, end) seconds -> (first grid frame, frame count)."""
    return int(round(start * fps)), max(0, int(round((end - start) * fps)))


def plan_spans(ranges: list[tuple[int, int]], gap: int, longest: int) -> list[tuple[int, int]]:
    """Grid ranges (first, count), in order of their first frame -> spans (first, end) that
    cover them, one per ffmpeg decode: a range joins the span before it unless it starts more
    than `gap` frames after that span's end or would take the span past `longest` frames."""
    spans: list[tuple[int, int]] = []
    for first, count in ranges:
        end = first + count
        if spans:
            s0, s1 = spans[-1]
            if first <= s1 + gap and max(s1, end) - s0 <= longest:
                spans[-1] = (s0, max(s1, end))
                continue
        spans.append((first, end))
    return spans


def _decode(
    video: Path, size: tuple[int, int] | None, first: int, end: int
) -> Iterator[np.ndarray]:
    """Grid frames [first, end) of `video`, streamed from one ffmpeg."""
    from dubcli import media

    t0 = max(0.0, first / VIDEO_FPS - SEEK_LEAD)
    return media.iter_frames(video, VIDEO_FPS, t0, t0 + (end - first) / VIDEO_FPS, size)


class CueDecoder:
    """One ffmpeg decode per cue (thread-safe: it keeps no state)."""

    def __init__(self, video: Path, size: tuple[int, int] | None) -> None:
        self.video, self.size = video, size

    def frames(self, start: float, end: float) -> tuple[float, Iterator[np.ndarray]]:
        """(time of the first frame, frames (H, W, 3) uint8) of [start, end) on the grid."""
        first, count = grid_range(start, end)
        return first / VIDEO_FPS, _decode(self.video, self.size, first, first + count)

    def close(self) -> None:
        pass


class SpanDecoder:
    """The frames of known cue ranges, asked for in order, read through one decode per span.

    ranges: every cue's [start, end) seconds, in order of start (a rerun's finished cues too:
    the spans must not depend on them). Ranges may overlap (widened windows): the frames the
    next range may need again are kept (at most the largest overlap).
    """

    def __init__(
        self,
        video: Path,
        size: tuple[int, int] | None,
        ranges: list[tuple[float, float]],
        *,
        gap: float = SPAN_GAP,
        longest: float = SPAN_MAX,
    ) -> None:
        self.video, self.size = video, size
        grid = [grid_range(a, b) for a, b in ranges]
        self._spans = plan_spans(grid, round(gap * VIDEO_FPS), round(longest * VIDEO_FPS))
        read_to = list(itertools.accumulate((a + n for a, n in grid), max))
        # frames the next range may need again: how far it starts before the furthest read
        self._keep = max(
            [0, *(end - a for end, (a, _) in zip(read_to[:-1], grid[1:], strict=True))]
        )
        self._stream: Iterator[np.ndarray] | None = None
        self._span = -1  # index of the span being read
        self._next = 0  # grid frame the stream gives next
        self._kept: collections.deque[tuple[int, np.ndarray]] = collections.deque(
            maxlen=self._keep or None
        )  # the last frames read, as (grid frame, frame)

    def frames(self, start: float, end: float) -> tuple[float, Iterator[np.ndarray]]:
        """(time of the first frame, frames (H, W, 3) uint8) of [start, end) on the grid. The
        range must be one of those given, asked for after the ones before it."""
        first, count = grid_range(start, end)
        return first / VIDEO_FPS, self._serve(first, first + count)

    def _span_of(self, first: int, end: int) -> int:
        for k, (s0, s1) in enumerate(self._spans):
            if s0 <= first and end <= s1:
                return k
        raise ValueError(f"frames {first}-{end} are not in a planned span")

    def _open(self, k: int) -> None:
        self.close()
        s0, s1 = self._spans[k]
        self._stream = _decode(self.video, self.size, s0, s1)
        self._span, self._next = k, s0

    def _serve(self, first: int, end: int) -> Iterator[np.ndarray]:
        k = self._span_of(first, end)
        if (
            k != self._span
            or (self._kept and first < self._kept[0][0])
            or (not self._kept and first < self._next)
        ):
            if k < self._span:
                raise ValueError(f"frames {first}-{end} asked for after later ones")
            self._open(k)
        for index, frame in list(self._kept):  # the overlap with the range before
            if first <= index < end:
                yield frame
        while self._next < end:
            frame = next(self._stream, None)
            if frame is None:  # the video ends before the span does
                self._next = end
                return
            index, self._next = self._next, self._next + 1
            if self._keep:
                self._kept.append((index, frame))
            if index >= first:
                yield frame

    def close(self) -> None:
        """Stop the decode being read (ffmpeg is killed and reaped)."""
        if self._stream is not None:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        self._stream, self._span = None, -1
        self._kept.clear()
