"""WORLD analysis and synthesis on the token grid, and the cepstral coding of WORLD envelopes.

Dimensions: t frames (= tokens, 80/s), f linear-frequency bins (fft_size // 2 + 1), m cepstral
coefficients (order + 1).

Frame t describes token t, i.e. samples [200 t, 200 t + 200), so it is analysed at the span's
centre (200 t + 100). Then a phone that starts at token t in the model's alignment (paper B.1:
durations x 80 tokens/s) starts at the same sample in the decoded audio, with no half-hop skew.

Envelopes are coded as mel-cepstra: the log amplitude sampled on the all-pass-warped frequency
axis (alpha 0.42 approximates the mel scale at 16 kHz) and cosine-transformed, in the SPTK
convention log|H(w)| = c0 + sum_m c_m cos(m w~). Encoding and decoding are two fixed matrices,
and MCD computed on these coefficients is the usual 10/ln10 * sqrt(2 sum dc^2).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dubcli.timing import HOP, SAMPLE_RATE

HALF_HOP = HOP // 2
FRAME_PERIOD_MS = 1000.0 * HOP / SAMPLE_RATE  # 12.5 ms
SP_FLOOR = 1e-10  # power floor (-100 dB re full scale): digital silence has no envelope
AP_FLOOR = 1e-3  # aperiodicity floor (-60 dB) before taking logs
MIN_ANALYSIS_SAMPLES = 8 * HOP  # WORLD's F0 trackers need some context; shorter input is padded


class WorldFrames(NamedTuple):
    f0: np.ndarray  # (t,) Hz, 0 where unvoiced
    sp: np.ndarray  # (t, f) power spectral envelope
    ap: np.ndarray  # (t, f) aperiodicity in [0, 1]
    level_db: np.ndarray  # (t,) RMS of the token's 200 samples, dB re full scale


def frame_times(n_frames: int) -> np.ndarray:
    """(t,) seconds: the centre of each token's span."""
    return (np.arange(n_frames) * HOP + HALF_HOP) / SAMPLE_RATE


def frame_level_db(wav: np.ndarray, n_frames: int) -> np.ndarray:
    """(t,) RMS level of each token's 200 samples in dB (floor -120)."""
    x = np.asarray(wav, dtype=np.float64)[: n_frames * HOP].reshape(n_frames, HOP)
    return 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-12)


def estimate_f0(
    wav: np.ndarray, n_frames: int, *, method: str, f0_floor: float, f0_ceil: float
) -> np.ndarray:
    """(t,) F0 in Hz at the token centres: harvest or dio, then StoneMask refinement."""
    import pyworld

    x = _analysis_signal(wav, n_frames)
    # The tracker runs on the signal shifted by half a hop, so its frames land on token centres.
    tracker = {"harvest": pyworld.harvest, "dio": pyworld.dio}[method]
    f0, _ = tracker(
        np.ascontiguousarray(x[HALF_HOP:]),
        SAMPLE_RATE,
        f0_floor=f0_floor,
        f0_ceil=f0_ceil,
        frame_period=FRAME_PERIOD_MS,
    )
    f0 = _fit_length(f0, n_frames)
    f0 = pyworld.stonemask(x, np.ascontiguousarray(f0), frame_times(n_frames), SAMPLE_RATE)
    return np.where(f0 > 0, f0, 0.0)


def analyze(
    wav: np.ndarray,
    *,
    method: str = "harvest",
    f0_floor: float = 60.0,
    f0_ceil: float = 600.0,
    fft_size: int = 1024,
) -> WorldFrames:
    """WORLD analysis of a 16 kHz waveform (n,) -> t = n // 200 frames on token centres."""
    import pyworld

    n_frames = len(wav) // HOP
    bins = fft_size // 2 + 1
    if n_frames == 0:
        empty = np.zeros((0, bins))
        return WorldFrames(np.zeros(0), empty, empty.copy(), np.zeros(0))
    x = _analysis_signal(wav, n_frames)
    f0 = estimate_f0(x, n_frames, method=method, f0_floor=f0_floor, f0_ceil=f0_ceil)
    times = frame_times(n_frames)
    sp = pyworld.cheaptrick(x, f0, times, SAMPLE_RATE, fft_size=fft_size)
    ap = pyworld.d4c(x, f0, times, SAMPLE_RATE, fft_size=fft_size)
    return WorldFrames(f0, np.maximum(sp, SP_FLOOR), ap, frame_level_db(wav, n_frames))


def synthesize(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray) -> np.ndarray:
    """WORLD synthesis of t frames on token centres -> exactly t * 200 samples (float64)."""
    import pyworld

    n_frames = len(f0)
    if n_frames == 0:
        return np.zeros(0)
    # WORLD puts frame k at sample 200 k; our frame k sits at 200 k + 100. Prepend a copy of the
    # first frame (at -100), synthesize, and drop the first half hop.
    f0 = np.concatenate([f0[:1], f0]).astype(np.float64)
    sp = np.concatenate([sp[:1], sp]).astype(np.float64)
    ap = np.concatenate([ap[:1], ap]).astype(np.float64)
    y = pyworld.synthesize(
        np.ascontiguousarray(f0),
        np.ascontiguousarray(sp),
        np.ascontiguousarray(ap),
        SAMPLE_RATE,
        FRAME_PERIOD_MS,
    )
    return _fit_length(y[HALF_HOP:], n_frames * HOP)


class CepstralWarp(NamedTuple):
    """The fixed linear maps between a log-amplitude envelope and its mel-cepstrum."""

    encoder: np.ndarray  # (m, f): log_amp (t, f) @ encoder.T -> cep (t, m)
    decoder: np.ndarray  # (f, m): cep (t, m) @ decoder.T -> log_amp (t, f)

    def encode(self, log_amp: np.ndarray) -> np.ndarray:
        return log_amp @ self.encoder.T

    def decode(self, cep: np.ndarray) -> np.ndarray:
        return cep @ self.decoder.T


@functools.lru_cache(maxsize=16)
def cepstral_warp(order: int, alpha: float, fft_size: int, grid: int = 1024) -> CepstralWarp:
    """Matrices for an order-`order` mel-cepstrum with all-pass constant `alpha`."""
    bins = fft_size // 2 + 1
    omega = np.linspace(0.0, np.pi, bins)  # linear-frequency bins
    phi = np.linspace(0.0, np.pi, grid)  # uniform grid on the warped axis
    # Linear frequency of each warped grid point (the inverse warp is the warp with -alpha).
    omega_at_phi = _warp(phi, -alpha)
    pos = omega_at_phi / np.pi * (bins - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, bins - 2)
    frac = pos - lo
    interp = np.zeros((grid, bins))
    interp[np.arange(grid), lo] = 1.0 - frac
    interp[np.arange(grid), lo + 1] += frac
    m = np.arange(order + 1)[:, None]
    weights = np.full(grid, np.pi / (grid - 1))
    weights[[0, -1]] *= 0.5  # trapezoid rule
    scale = np.where(m == 0, 1.0, 2.0) / np.pi  # c0 = mean, c_m = 2 x cosine projection
    project = scale * np.cos(m * phi[None, :]) * weights[None, :]  # (m, grid)
    encoder = project @ interp  # (m, f)
    decoder = np.cos(_warp(omega, alpha)[:, None] * np.arange(order + 1)[None, :])  # (f, m)
    return CepstralWarp(encoder, decoder)


def sp_to_mcep(sp: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """(t, f) power envelope -> (t, order + 1) mel-cepstrum of the log amplitude."""
    warp = cepstral_warp(order, alpha, 2 * (sp.shape[-1] - 1))
    return warp.encode(0.5 * np.log(np.maximum(sp, SP_FLOOR)))


def mcep_to_sp(mcep: np.ndarray, alpha: float, fft_size: int) -> np.ndarray:
    """(t, m) mel-cepstrum -> (t, f) power envelope."""
    warp = cepstral_warp(mcep.shape[-1] - 1, alpha, fft_size)
    return np.exp(2.0 * warp.decode(mcep))


def ap_to_cep(ap: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """(t, f) aperiodicity -> (t, order + 1) smooth cepstral code of its log."""
    warp = cepstral_warp(order, alpha, 2 * (ap.shape[-1] - 1))
    return warp.encode(np.log(np.clip(ap, AP_FLOOR, 1.0)))


def cep_to_ap(cep: np.ndarray, alpha: float, fft_size: int) -> np.ndarray:
    """(t, m) aperiodicity code -> (t, f) aperiodicity in [AP_FLOOR, 1]."""
    warp = cepstral_warp(cep.shape[-1] - 1, alpha, fft_size)
    return np.clip(np.exp(warp.decode(cep)), AP_FLOOR, 1.0)


def warp_vocal_tract(sp: np.ndarray, factor: float) -> np.ndarray:
    """(t, f) envelope with formants moved by `factor` (> 1: shorter vocal tract), for
    training-time speaker augmentation (DESIGN 6: VTL perturbation in the WORLD domain)."""
    bins = sp.shape[-1]
    src = np.arange(bins) / factor
    lo = np.clip(np.floor(src).astype(int), 0, bins - 2)
    frac = np.clip(src - lo, 0.0, 1.0)
    return sp[:, lo] * (1.0 - frac) + sp[:, lo + 1] * frac


def _warp(omega: np.ndarray, alpha: float) -> np.ndarray:
    """First-order all-pass frequency warping."""
    return omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))


def _analysis_signal(wav: np.ndarray, n_frames: int) -> np.ndarray:
    x = np.asarray(wav, dtype=np.float64)
    need = max(MIN_ANALYSIS_SAMPLES, n_frames * HOP + HOP)
    if len(x) < need:  # zero context past the end: the tracker sees the real signal's edge
        x = np.concatenate([x, np.zeros(need - len(x))])
    return np.ascontiguousarray(x)


def _fit_length(a: np.ndarray, n: int) -> np.ndarray:
    if len(a) >= n:
        return np.ascontiguousarray(a[:n])
    pad = np.repeat(a[-1:], n - len(a), axis=0) if len(a) else np.zeros(n)
    return np.ascontiguousarray(np.concatenate([a, pad]))
