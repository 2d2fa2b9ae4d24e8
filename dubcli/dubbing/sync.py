"""Landmark lip-sync estimate for one cue: mouth aperture vs the dub's loudness envelope.

Dimensions: nv video frames (25 fps), n samples (16 kHz).

DESIGN 2's embedded lip-sync measure: both signals at 25 fps (the dub's RMS amplitude in 40 ms
frames), each standardized over the frames that have landmarks, cross-correlated at lags of
+-MAX_LAG frames. offset = the lag of the peak (seconds, > 0: the audio comes after the lips);
confidence = peak correlation - median correlation over the lags (SyncNet's confidence idea,
on landmark geometry instead of learned embeddings). A face that does not move, or too few face
frames, gives no estimate (None) rather than a number that means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

MAX_LAG = 10  # frames (0.4 s)
MIN_FRAMES = 10
MIN_APERTURE_STD = 0.01  # cm: below this the mouth does not move


@dataclass(frozen=True)
class SyncEstimate:
    offset_s: float  # > 0: the audio lags the lips
    confidence: float  # peak - median correlation, 0..~2
    correlation: float  # peak correlation, -1..1


def audio_envelope(wav: np.ndarray, nv: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(nv,) RMS amplitude of each 25 fps frame of `wav` (zero-padded to nv frames). Linear, not
    dB: silent frames (pauses, the window's tail) would be huge outliers on a log scale."""
    hop = rate // VIDEO_FPS
    x = np.zeros(nv * hop, np.float64)
    k = min(len(wav), len(x))
    x[:k] = wav[:k]
    return np.sqrt(np.mean(x.reshape(nv, hop) ** 2, axis=1))


def sync_estimate(
    aperture: np.ndarray, valid: np.ndarray, wav: np.ndarray, rate: int = SAMPLE_RATE
) -> SyncEstimate | None:
    """aperture (nv,) mouth opening; valid (nv,) frames with landmarks; wav the cue's dub audio
    aligned so sample 0 is frame 0's time."""
    aperture = np.asarray(aperture, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(aperture)
    nv = len(aperture)
    if valid.sum() < MIN_FRAMES or float(np.std(aperture[valid])) < MIN_APERTURE_STD:
        return None
    env = audio_envelope(wav, nv, rate)
    a = np.where(valid, (aperture - aperture[valid].mean()) / aperture[valid].std(), 0.0)
    e = (env - env[valid].mean()) / max(float(env[valid].std()), 1e-6)
    lags = range(-MAX_LAG, MAX_LAG + 1)
    corr = []
    for lag in lags:  # audio frame t + lag against lip frame t
        if lag >= 0:
            x, y, m = a[: nv - lag], e[lag:], valid[: nv - lag] & valid[lag:]
        else:
            x, y, m = a[-lag:], e[: nv + lag], valid[-lag:] & valid[: nv + lag]
        corr.append(float(np.mean(x[m] * y[m])) if m.sum() >= MIN_FRAMES else np.nan)
    corr = np.asarray(corr)
    if np.all(np.isnan(corr)):
        return None
    best = int(np.nanargmax(corr))
    return SyncEstimate(
        offset_s=round(list(lags)[best] / VIDEO_FPS, 3),
        confidence=round(float(corr[best] - np.nanmedian(corr)), 3),
        correlation=round(float(corr[best]), 3),
    )
