"""Lip-sync metrics over a split, that need no weights (DESIGN 2, "lip-sync (eval)").

1. Landmark sync: dubcli.engines.sync.landmark_sync per utterance (the same number every dub
   report carries per cue; it lives in the engines layer, which dubbing and eval share), summed
   up here over utterances (`summarize_sync`).
2. Phone-boundary error: generated and ground-truth audio are force-aligned to the SAME phoneme
   sequence; the mean absolute difference of their internal phone boundaries (ms) says how well
   the dub reproduces the timing of the original (the Synchronizer's job, paper 3.4.2).

Sign convention: `offset_frames > 0` means the audio LAGS the video (dubcli.engines.sync).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubcli.engines.sync import (  # noqa: F401 (re-exported: the eval API)
    MAX_OFFSET,
    MIN_OVERLAP,
    SyncResult,
    landmark_sync,
    offset_correlations,
    speech_envelope,
)

# Zero-duration word-boundary markers carry no boundary of their own.
_WORD_BOUNDARY = "<wb>"
_SILENCE = "<sil>"


@dataclass(frozen=True)
class SyncSummary:
    n: int  # utterances
    mean_offset: float  # frames, signed (> 0: audio lags)
    mean_abs_offset: float  # frames
    mean_confidence: float
    in_sync: float  # fraction of utterances whose offset is within +-1 frame
    pooled_offset: int  # argmax of the mean correlation curve (robust for short utterances)


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
