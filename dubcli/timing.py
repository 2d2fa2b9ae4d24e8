"""Rates shared by every stage, and the conversions between them (paper 3.2, DESIGN section 3).

Speech tokens run at 80/s on 16 kHz audio (a 200-sample hop, 12.5 ms); video at 25 fps. So five
video frames span exactly sixteen tokens: the token count of a dub is fixed by the video.
`Timer` measures the wall time of a block (model, codec and RTF timings).
"""

from __future__ import annotations

import time
from typing import Any

SAMPLE_RATE = 16_000  # Hz, all internal audio
TOKEN_RATE = 80  # speech tokens per second
HOP = SAMPLE_RATE // TOKEN_RATE  # 200 samples per token
VIDEO_FPS = 25  # frames per second for all visual features
TOKENS_PER_5_FRAMES = 16  # 80 / 25 * 5
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 samples per video frame (40 ms)


def tokens_for_samples(n_samples: int) -> int:
    """Tokens a codec emits for `n_samples` of 16 kHz audio: whole hops only (the tail is dropped)."""
    return int(n_samples) // HOP


def tokens_for_frames(n_frames: int) -> int:
    """Tokens for `n_frames` video frames at 25 fps: n * 16 / 5, rounded half up."""
    return (int(n_frames) * TOKENS_PER_5_FRAMES + 2) // 5


def frames_for_seconds(seconds: float) -> int:
    """Video frames (25 fps) in a span, rounded to the nearest frame."""
    return int(round(seconds * VIDEO_FPS))


class Timer:
    """`with Timer() as t: ...; t.seconds` (wall clock, perf_counter).

    Pass `sync=torch.cuda.synchronize` (or any callable) to wait for queued GPU work at both
    ends, otherwise asynchronous kernels are not counted.
    """

    def __init__(self, sync: Any = None):
        self._sync = sync
        self.seconds = 0.0
        self._t0: float | None = None

    def __enter__(self) -> Timer:
        if self._sync is not None:
            self._sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self._sync is not None:
            self._sync()
        self.seconds = time.perf_counter() - (self._t0 or 0.0)
