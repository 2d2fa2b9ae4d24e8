"""Landmark lip-sync estimate for one cue: mouth aperture vs the dub's speech envelope.

Dimensions: nv video frames (25 fps), n samples (16 kHz).

The measurement itself is dubcli.eval.sync.landmark_sync (the embedded lip-sync metric of
DESIGN 2, the same number `dubcli eval` reports), so a dub report and an eval table agree. This
module adapts it to a cue: a validity mask instead of NaNs, lags of at most +-MAX_LAG frames
(fewer for a short cue), and None instead of an error when nothing can be measured (a face that
does not move, too few face frames, silence). offset > 0: the audio comes after the lips;
confidence = peak - median correlation over the lags (SyncNet's confidence idea, on landmark
geometry instead of learned embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubcli.errors import InputError
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

MAX_LAG = 10  # frames (0.4 s)
MIN_FRAMES = 12  # frames with landmarks: eval.sync.MIN_OVERLAP (10) + at least +-2 lags
MIN_APERTURE_STD = 0.01  # cm: below this the mouth does not move


@dataclass(frozen=True)
class SyncEstimate:
    offset_s: float  # > 0: the audio lags the lips
    confidence: float  # peak - median correlation, 0..~2
    correlation: float  # peak correlation, -1..1


def audio_envelope(wav: np.ndarray, nv: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(nv,) RMS amplitude of each 25 fps frame of `wav` (zero-padded to nv frames)."""
    hop = rate // VIDEO_FPS
    x = np.zeros(nv * hop, np.float64)
    k = min(len(wav), len(x))
    x[:k] = wav[:k]
    return np.sqrt(np.mean(x.reshape(nv, hop) ** 2, axis=1))


def sync_estimate(
    aperture: np.ndarray, valid: np.ndarray, wav: np.ndarray, rate: int = SAMPLE_RATE
) -> SyncEstimate | None:
    """aperture (nv,) mouth opening; valid (nv,) frames with landmarks; wav the cue's dub audio
    aligned so sample 0 is frame 0's time. None when no estimate is meaningful."""
    from dubcli.eval.sync import MIN_OVERLAP, landmark_sync

    aperture = np.asarray(aperture, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(aperture)
    nv = len(aperture)
    n_valid = int(valid.sum())
    if n_valid < MIN_FRAMES or float(np.std(aperture[valid])) < MIN_APERTURE_STD:
        return None
    wav = np.asarray(wav, np.float64).reshape(-1)
    if rate != SAMPLE_RATE:
        import soxr

        wav = soxr.resample(wav, rate, SAMPLE_RATE)
    hop = SAMPLE_RATE // VIDEO_FPS
    padded = np.zeros(nv * hop, np.float64)  # the landmark metric reads whole 40 ms frames
    padded[: min(len(wav), len(padded))] = wav[: len(padded)]
    max_offset = min(MAX_LAG, n_valid - MIN_OVERLAP)
    try:
        res = landmark_sync(np.where(valid, aperture, np.nan), padded, max_offset=max_offset)
    except InputError:  # silent audio, or too few overlapping frames: nothing to measure
        return None
    if not np.isfinite(res.confidence):
        return None
    return SyncEstimate(
        offset_s=round(res.offset_frames / VIDEO_FPS, 3),
        confidence=round(float(res.confidence), 3),
        correlation=round(res.peak, 3),
    )
