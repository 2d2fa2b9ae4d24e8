"""Small waveform and spectrum helpers shared by inference, the engines, prepare and eval."""

from __future__ import annotations

import numpy as np


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """(n,) float32: the waveform cropped, or zero-padded at the end, to exactly n samples."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if len(wav) >= n:
        return wav[:n]
    return np.concatenate([wav, np.zeros(n - len(wav), dtype=np.float32)])


def warp_envelope(env: np.ndarray, factor: float) -> np.ndarray:
    """env (..., bins) over 0..Nyquist -> the envelope with formants moved by `factor` (> 1
    raises them): out(f) = env(f / factor), interpolated in the log domain; beyond the top bin
    the edge value. Used for SynthDub's vocal-tract-length perturbation and by the baseline
    engine to move a voice toward the reference's formants."""
    if factor == 1.0:
        return env
    bins = env.shape[-1]
    src = np.arange(bins) / factor
    i0 = np.clip(np.floor(src).astype(int), 0, bins - 2)
    frac = np.clip(src - i0, 0.0, 1.0)
    log_env = np.log(np.maximum(env, 1e-16))
    return np.exp(log_env[..., i0] * (1 - frac) + log_env[..., i0 + 1] * frac)
