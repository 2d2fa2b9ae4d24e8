"""Round-trip quality of a codec: mel-cepstral distortion, F0 error, voicing error.

Dimensions: t frames on the token grid (both signals analysed by WORLD the same way, so frames
are time-aligned: a codec keeps timing, no DTW needed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dubcli.audio.codec.features import WorldFrames, analyze, sp_to_mcep

MCD_ORDER = 24  # c1..c24, the usual MCD range
MCD_ALPHA = 0.42
MCD_SPEECH_RANGE_DB = 40.0  # frames this far below the loudest are silence: not scored
_DB = 10.0 / np.log(10.0)


class RoundTrip(NamedTuple):
    mcd_db: float  # mean over speech frames of 10/ln10 sqrt(2 sum_{d=1..24} dc_d^2)
    f0_rmse_cents: float  # over frames voiced in both
    gross_pitch_error: float  # fraction of those off by more than 20 % (GPE)
    f0_fine_rmse_cents: float  # RMSE over the frames without a gross error
    vuv_error: float  # fraction of speech frames whose voicing decision differs
    n_frames: int  # speech frames scored


def compare(
    reference: np.ndarray | WorldFrames, test: np.ndarray | WorldFrames, f0_method: str = "harvest"
) -> RoundTrip:
    """Score `test` (n,) against `reference` (n,) (either may be pre-analysed WorldFrames)."""
    ref = reference if isinstance(reference, WorldFrames) else analyze(reference, method=f0_method)
    tst = test if isinstance(test, WorldFrames) else analyze(test, method=f0_method)
    t = min(len(ref.f0), len(tst.f0))
    speech = ref.level_db[:t] >= ref.level_db[:t].max(initial=-np.inf) - MCD_SPEECH_RANGE_DB
    c_ref = sp_to_mcep(ref.sp[:t], MCD_ORDER, MCD_ALPHA)[:, 1:]
    c_tst = sp_to_mcep(tst.sp[:t], MCD_ORDER, MCD_ALPHA)[:, 1:]
    mcd = _DB * np.sqrt(2.0 * np.sum((c_ref - c_tst) ** 2, axis=1))
    v_ref, v_tst = ref.f0[:t] > 0, tst.f0[:t] > 0
    both = v_ref & v_tst
    cents = 1200.0 * np.log2(tst.f0[:t][both] / ref.f0[:t][both]) if both.any() else np.zeros(1)
    gross = np.abs(2.0 ** (cents / 1200.0) - 1.0) > 0.2
    return RoundTrip(
        mcd_db=float(mcd[speech].mean()) if speech.any() else float("nan"),
        f0_rmse_cents=float(np.sqrt(np.mean(cents**2))),
        gross_pitch_error=float(np.mean(gross)),
        f0_fine_rmse_cents=float(np.sqrt(np.mean(cents[~gross] ** 2))) if (~gross).any() else 0.0,
        vuv_error=float(np.mean(v_ref[speech] != v_tst[speech])) if speech.any() else float("nan"),
        n_frames=int(speech.sum()),
    )
