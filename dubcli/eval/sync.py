"""Lip-sync metrics that need no weights (DESIGN 2, "lip-sync (eval)").

1. Landmark sync: the mouth aperture (25 fps, from face landmarks) against the speech envelope of
   the audio, cross-correlated over +-15 frames. It plays the role of SyncNet's AV offset and
   confidence (paper 4.2: LSE-C / LSE-D) where no SyncNet weights are available: the offset says
   how far the sound is shifted against the mouth, the confidence how clearly one shift wins.
2. Phone-boundary error: generated and ground-truth audio are force-aligned to the SAME phoneme
   sequence; the mean absolute difference of their internal phone boundaries (ms) says how well
   the dub reproduces the timing of the original (the Synchronizer's job, paper 3.4.2).

Dimension legend: nv video frames (25 fps), n audio samples (16 kHz), k offsets (2*max_offset+1).

Sign convention: `offset_frames > 0` means the audio LAGS the video (a sound comes that many
frames after the mouth movement that makes it); < 0 means the audio leads. Note that SyncNet's
AV offset (dubcli.eval.syncnet) has the opposite sign, as in syncnet_python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubcli.errors import InputError
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640: one 40 ms window per video frame
MAX_OFFSET = 15  # frames either way, as in the SyncNet evaluation protocol
MIN_OVERLAP = 10  # frames: fewer overlapping pairs give no usable correlation
ENVELOPE_FLOOR_DB = 60.0  # the log envelope is floored this far below its peak (silence)

# Zero-duration word-boundary markers carry no boundary of their own.
_WORD_BOUNDARY = "<wb>"
_SILENCE = "<sil>"


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


@dataclass(frozen=True)
class SyncSummary:
    n: int  # utterances
    mean_offset: float  # frames, signed (> 0: audio lags)
    mean_abs_offset: float  # frames
    mean_confidence: float
    in_sync: float  # fraction of utterances whose offset is within +-1 frame
    pooled_offset: int  # argmax of the mean correlation curve (robust for short utterances)


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


def summarize_sync(results: Sequence[SyncResult]) -> SyncSummary:
    """Average over utterances; `pooled_offset` is the argmax of the frame-weighted mean curve."""
    if not results:
        raise ValueError("no sync results to summarize")
    offsets = np.array([r.offset_frames for r in results], dtype=np.float64)
    curves = np.stack([r.correlations for r in results])
    weights = np.array([r.n_frames for r in results], dtype=np.float64)[:, None]
    ok = np.isfinite(curves)
    pooled = (np.where(ok, curves, 0) * weights).sum(0) / np.maximum((ok * weights).sum(0), 1e-12)
    m = (curves.shape[1] - 1) // 2
    return SyncSummary(
        n=len(results),
        mean_offset=float(offsets.mean()),
        mean_abs_offset=float(np.abs(offsets).mean()),
        mean_confidence=float(np.mean([r.confidence for r in results])),
        in_sync=float(np.mean(np.abs(offsets) <= 1)),
        pooled_offset=int(np.argmax(pooled)) - m,
    )


# ---------------------------------------------------------------------------------------------
# Phone-boundary error


def boundary_error_ms(ref_phones: Any, hyp_phones: Any) -> float:
    """Mean |ref - hyp| over the internal phone boundaries of two alignments, in milliseconds.

    Both arguments are alignments of the SAME phoneme sequence: `Alignment` objects (their
    `.phones`) or sequences of phones with `.symbol`, `.start`, `.end` (seconds). Zero-length
    `<wb>` markers are skipped, and so is a `<sil>` that is empty in both. The boundary between
    neighbours k and k+1 is the midpoint of k's end and k+1's start (they coincide for
    contiguous alignments). Raises ValueError when the sequences differ or an alignment failed.
    """
    ref = _phones(ref_phones, "reference")
    hyp = _phones(hyp_phones, "hypothesis")
    if len(ref) != len(hyp):
        raise ValueError(f"{len(ref)} reference phones vs {len(hyp)} hypothesis phones")
    for k, (r, h) in enumerate(zip(ref, hyp, strict=True)):
        if r.symbol != h.symbol:
            raise ValueError(f"phone {k} differs: reference {r.symbol!r}, hypothesis {h.symbol!r}")
    keep = [
        k
        for k, (r, h) in enumerate(zip(ref, hyp, strict=True))
        if not (r.symbol == _SILENCE and r.end <= r.start and h.end <= h.start)
    ]
    ref = [ref[k] for k in keep]
    hyp = [hyp[k] for k in keep]
    if len(ref) < 2:
        raise ValueError("need at least two phones to have an internal boundary")
    rb = np.array([(a.end + b.start) / 2 for a, b in zip(ref[:-1], ref[1:], strict=True)])
    hb = np.array([(a.end + b.start) / 2 for a, b in zip(hyp[:-1], hyp[1:], strict=True)])
    return float(np.mean(np.abs(rb - hb)) * 1000.0)


def _phones(x: Any, what: str) -> list[Any]:
    if hasattr(x, "phones"):
        if getattr(x, "ok", True) is False:
            raise ValueError(f"{what} alignment failed: {getattr(x, 'reason', 'unknown reason')}")
        x = x.phones
    return [p for p in x if p.symbol != _WORD_BOUNDARY]
