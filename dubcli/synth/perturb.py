"""WORLD-domain voice perturbation: new speakers and pitch styles on a fixed timeline (DESIGN 6).

WORLD (pyworld) splits speech into F0, spectral envelope and aperiodicity on a 5 ms grid. We
  - warp the envelope's frequency axis by `vtl` (vocal-tract-length change: formants x vtl),
  - reshape log-F0 around its utterance mean: range factor, level shift (semitones), F0 scale,
and resynthesize on the same frames, so every phone keeps its samples: the timeline is unchanged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from dubcli.audio.util import warp_envelope

FRAME_MS = 5.0
F0_FLOOR, F0_CEIL = 50.0, 600.0


@dataclass(frozen=True, eq=False)
class WorldResult:
    wav: np.ndarray  # (n,) float32, same length as the input
    f0: np.ndarray  # (k, 2): seconds, Hz of the voiced frames after the change


def _pyworld():
    with warnings.catch_warnings():  # pyworld imports pkg_resources (DESIGN 8)
        warnings.simplefilter("ignore")
        import pyworld

    return pyworld


def reshape_f0(
    f0: np.ndarray, level_st: float = 0.0, range_factor: float = 1.0, scale: float = 1.0
) -> np.ndarray:
    """Voiced frames: log f0' = mu + (log f0 - mu) * range + level*ln2/12 + ln scale."""
    out = f0.copy()
    voiced = f0 > 0
    if voiced.any():
        logf = np.log(f0[voiced])
        mu = float(np.mean(logf))
        shift = level_st * math.log(2) / 12 + math.log(scale)
        out[voiced] = np.clip(np.exp(mu + (logf - mu) * range_factor + shift), F0_FLOOR, F0_CEIL)
    return out


def world_perturb(
    wav: np.ndarray,
    sr: int,
    *,
    vtl: float = 1.0,
    f0_scale: float = 1.0,
    pitch_level: float = 0.0,
    pitch_range: float = 1.0,
) -> WorldResult:
    """Analyse (dio + stonemask, cheaptrick, d4c), change, resynthesize; wav (n,) -> (n,)."""
    pw = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, t = pw.dio(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, sr)
    sp = pw.cheaptrick(x, f0, t, sr, f0_floor=F0_FLOOR)
    ap = pw.d4c(x, f0, t, sr)
    f0_new = reshape_f0(f0, pitch_level, pitch_range, f0_scale)
    # aperiodicity follows the same warp so noisy bands move with their formants
    y = pw.synthesize(
        f0_new,
        np.ascontiguousarray(warp_envelope(sp, vtl)),
        np.ascontiguousarray(np.clip(warp_envelope(ap, vtl), 0.0, 1.0)),
        sr,
        FRAME_MS,
    )
    y = y[: len(x)]
    y = np.concatenate([y, np.zeros(len(x) - len(y))])
    voiced = f0_new > 0
    track = np.stack([t[voiced], f0_new[voiced]], axis=1)
    return WorldResult(y.astype(np.float32), track)


def measure_f0(wav: np.ndarray, sr: int) -> np.ndarray:
    """F0 (Hz) of the voiced 5 ms frames (harvest: slower than dio, fewer octave errors)."""
    pw = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, _ = pw.harvest(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    return f0[f0 > 0]
