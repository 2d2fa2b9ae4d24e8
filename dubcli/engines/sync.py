"""Landmark lip sync, without weights: the mouth aperture against the speech envelope (DESIGN 2).

The measurement: the mouth aperture (25 fps, from face landmarks) against the log RMS envelope
of the audio, cross-correlated over +-15 frames. It plays the role of SyncNet's AV offset and
confidence (paper 4.2: LSE-C / LSE-D) where no SyncNet weights are available: the offset says
how far the sound is shifted against the mouth, the confidence how clearly one shift wins.
`dubcli eval` reports it (dubcli.eval.sync summarizes it over a split) and every dub report
carries it per cue (`sync_estimate`), so a dub report and an eval table agree. It lives in the
engines layer because both dubbing/ and eval/ use it and neither may import the other.

`sync_estimate` adapts it to a cue: a validity mask instead of NaNs, lags of at most +-MAX_LAG
frames (fewer for a short cue), and None instead of an error when nothing can be measured (a
face that does not move, too few face frames, silence); confidence = peak - median correlation
over the lags (SyncNet's confidence idea, on landmark geometry instead of learned embeddings).

Dimension legend: nv video frames (25 fps), n audio samples (16 kHz), k offsets (2*max_offset+1).

Sign convention: `offset_frames > 0` (and `offset_s > 0`) means the audio LAGS the video (a
sound comes that many frames after the mouth movement that makes it); < 0 means the audio
leads. Note that SyncNet's AV offset (dubcli.eval.syncnet) has the opposite sign, as in
syncnet_python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubcli.errors import InputError
from dubcli.timing import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS

MAX_OFFSET = 15  # frames either way, as in the SyncNet evaluation protocol
MIN_OVERLAP = 10  # frames: fewer overlapping pairs give no usable correlation
ENVELOPE_FLOOR_DB = 60.0  # the log envelope is floored this far below its peak (silence)
MAX_LAG = 10  # frames (0.4 s)
MIN_FRAMES = 12  # frames with landmarks: MIN_OVERLAP (10) + at least +-2 lags
MIN_APERTURE_STD = 0.01  # cm: below this the mouth does not move


@dataclass(frozen=True)
class SyncEstimate:
    offset_s: float  # > 0: the audio lags the lips
    confidence: float  # peak - median correlation, 0..~2
    correlation: float  # peak correlation, -1..1


@dataclass(frozen=True, eq=False)
class SyncResult:
    offset_frames: int  # argmax of the correlation; > 0: audio lags video (module docstring)
    confidence: float  # peak minus median of the correlation curve
    correlations: np.ndarray  # (k,) Pearson r for offsets -max_offset..max_offset (NaN: too short)
    n_frames: int  # video frames with both an aperture value and audio

    @property
    def offsets(self) -> np.ndarray:
        """(k,) the offset of each entry of `correlations`."""
        m = (len(self.correlations) - 1) // 2
        return np.arange(-m, m + 1)

    @property
    def peak(self) -> float:
        return float(np.nanmax(self.correlations))


def speech_envelope(wav: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """(nv,) log RMS energy (dB) of the audio in one 40 ms window per video frame.

    Frame t covers samples [640 t, 640 (t+1)), the span during which video frame t is shown (the
    same 640-sample chunking as SyncNet's evaluation). Floored 60 dB below the loudest frame so
    silence does not dominate the correlation with its arbitrarily low values.
    """
    wav = np.asarray(wav, dtype=np.float64)
    whole = len(wav) // SAMPLES_PER_FRAME
    n = whole if n_frames is None else min(int(n_frames), whole)
    if n <= 0:
        return np.zeros(0)
    chunks = wav[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
    rms = np.sqrt(np.mean(chunks**2, axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return np.maximum(db, db.max() - ENVELOPE_FLOOR_DB)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_OVERLAP:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def offset_correlations(
    video: np.ndarray, audio: np.ndarray, max_offset: int = MAX_OFFSET
) -> np.ndarray:
    """(k,) Pearson correlation of video[t] with audio[t + d] for d = -max_offset..max_offset.

    Each offset is normalized over its own overlapping part only, so a shift does not lower the
    correlation just by shrinking the overlap. NaN entries (the video) are skipped.
    """
    out = np.full(2 * max_offset + 1, np.nan)
    nv, na = len(video), len(audio)
    for i, d in enumerate(range(-max_offset, max_offset + 1)):
        t0, t1 = max(0, -d), min(nv, na - d)
        if t1 - t0 >= MIN_OVERLAP:
            out[i] = _pearson(video[t0:t1], audio[t0 + d : t1 + d])
    return out


def landmark_sync(
    mouth_aperture: np.ndarray,
    wav: np.ndarray,
    *,
    max_offset: int = MAX_OFFSET,
    name: str = "utterance",
) -> SyncResult:
    """AV offset + confidence of speech vs mouth opening (see the module docstring).

    mouth_aperture: (nv,) at 25 fps (NaN for frames without a face); wav: (n,) 16 kHz mono.
    Both signals are z-normalized (Pearson correlation); the audio side is `speech_envelope`.
    """
    ap = np.asarray(mouth_aperture, dtype=np.float64)
    wav = np.asarray(wav)
    if ap.ndim != 1 or wav.ndim != 1:
        raise InputError(
            f"{name}: expected a 1-D mouth aperture and 1-D audio, got shapes {ap.shape} "
            f"and {wav.shape}"
        )
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    env = speech_envelope(wav)
    n = min(len(ap), len(env))
    valid = int(np.isfinite(ap[:n]).sum())
    if valid < MIN_OVERLAP + max_offset:
        raise InputError(
            f"{name}: too short for landmark sync: {valid} usable frames (need at least "
            f"{MIN_OVERLAP + max_offset} at 25 fps for offsets up to +-{max_offset})"
        )
    if np.nanstd(ap) == 0 or np.std(env) == 0:
        # A closed mouth or silent audio: no offset can be measured, say so instead of guessing.
        raise InputError(f"{name}: mouth aperture or audio envelope is constant; nothing to sync")
    corr = offset_correlations(_zscore(ap), _zscore(env), max_offset)
    best = int(np.nanargmax(corr))
    return SyncResult(
        offset_frames=best - max_offset,
        confidence=float(corr[best] - np.nanmedian(corr)),
        correlations=corr,
        n_frames=n,
    )


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - np.nanmean(x)) / (np.nanstd(x) + 1e-12)


def sync_estimate(
    aperture: np.ndarray, valid: np.ndarray, wav: np.ndarray, rate: int = SAMPLE_RATE
) -> SyncEstimate | None:
    """aperture (nv,) mouth opening; valid (nv,) frames with landmarks; wav the cue's dub audio
    aligned so sample 0 is frame 0's time. None when no estimate is meaningful."""
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
