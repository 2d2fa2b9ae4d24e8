"""Programme loudness per ITU-R BS.1770-4 / EBU R 128 (integrated loudness, LUFS), streamed.

Dimensions: n samples, c channels (mono or stereo; every channel weight G_i = 1, BS.1770 Table 3
for L/R/C, so surround weights are not needed here).

The measurement (BS.1770-4 Annex 1):
1. K-weighting: a high-shelf pre-filter (+4 dB above ~1.7 kHz, the head's acoustic effect) and
   the RLB high-pass (~38 Hz). BS.1770 tabulates both biquads only at 48 kHz; for other rates we
   design the same analogue prototypes with the bilinear transform (the parameters libebur128
   fitted to the 48 kHz tables), which reproduces the table at 48 kHz to ~1e-9 (tested).
   The two biquads run in dubcli/audio/iir.py (exact, numpy only: scipy.signal's import alone
   cost 1.0-1.4 s of CPU in every dub).
2. Mean square per channel over 400 ms gating blocks overlapping by 75 % (a 100 ms hop), summed
   over channels: l_j = -0.691 + 10 log10(sum_i G_i z_ij).
3. Gating: blocks below -70 LUFS are dropped (absolute gate); then blocks more than 10 LU below
   the loudness of the remaining blocks are dropped (relative gate); the integrated loudness is
   -0.691 + 10 log10 of the mean power of the blocks that pass both.
Known answers (tests): a 0 dBFS 997 Hz sine on one channel reads -3.01 LUFS (BS.1770-4 Annex 1),
and the EBU Tech 3341 cases 1-5 (stereo 1 kHz sines, gated sequences) read -23.0 / -33.0 LUFS.

Streaming: `LoudnessMeter.add` keeps the filter state and a partial-hop remainder, and stores one
float per 100 ms hop (a 20-minute programme is 12,000 floats), so memory never grows with the
samples.

Why our own meter and not pyloudnorm 0.2.0 (measured side by side, benchmarks/loudness_meter.py):
- accuracy: on EBU Tech 3341 cases 1-5 ours is within 0.021 LU of the expected values,
  pyloudnorm within 0.055 LU, always low (-0.035 on case 1, -0.042 on the BS.1770 997 Hz sine).
  Its RLB high-pass is scaled to unity gain (b = 0.995, -1.990, 0.995) where the BS.1770 table
  has b = 1, -2, 1, and the -0.691 offset is calibrated for the table's gain;
- streaming: pyloudnorm measures a whole array, so the mix's two passes over a long programme
  would hold it all in memory; ours keeps one float per 100 ms hop;
- short cues: pyloudnorm raises on anything under 400 ms (cuework measures each generated cue);
- speed: one minute of 48 kHz stereo takes 52-57 ms streamed (71-84 ms one-shot) against
  114-167 ms for pyloudnorm (its gating loops in Python), on 2 shared CPU cores.
Both pass Tech 3341's +-0.1 LU tolerance; ours is closer, and streaming, short cues, speed and
one dependency fewer decide it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dubcli.audio.iir import SosFilter

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_S = 0.4  # gating block (BS.1770-4: 400 ms)
HOP_S = 0.1  # 75 % overlap
_OFFSET = -0.691  # BS.1770: makes a 997 Hz 0 dBFS sine on one channel read -3.01 LUFS


def k_weighting_sos(rate: int) -> np.ndarray:
    """(2, 6) second-order sections of the K-weighting filter at `rate` Hz (pre-filter, RLB)."""
    # Stage 1: high shelf (libebur128's fit of the BS.1770 48 kHz coefficients).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    ]
    shelf_a = [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    # Stage 2: RLB high-pass.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    hp_b = [1.0, -2.0, 1.0]
    hp_a = [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf_b + shelf_a, hp_b + hp_a], dtype=np.float64)


@functools.lru_cache(maxsize=8)
def k_weighting(rate: int) -> SosFilter:
    """The K-weighting filter at `rate` Hz, built once per rate (a few ms; shared, stateless)."""
    return SosFilter(k_weighting_sos(rate))


class LoudnessMeter:
    """Integrated loudness of a stream of (n,) or (n, c) float blocks at `rate` Hz."""

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = int(rate), int(channels)
        self._filter = k_weighting(self.rate)
        self._state = self._filter.initial_state(self.channels)  # starts silent
        self._hop = int(round(HOP_S * self.rate))
        self._pending = np.zeros(0)  # K-weighted power (summed over channels) of a partial hop
        self._hops: list[float] = []  # sum over the hop's samples of sum_i G_i y_i^2
        self.n_samples = 0

    def add(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        if not len(x):
            return
        y, self._state = self._filter.filter(x.T, self._state)  # (c, n)
        power = np.concatenate([self._pending, np.einsum("cn,cn->n", y, y)])
        n_full = len(power) // self._hop
        if n_full:
            sums = power[: n_full * self._hop].reshape(n_full, self._hop).sum(axis=1)
            self._hops.extend(sums.tolist())
        self._pending = power[n_full * self._hop :]
        self.n_samples += len(x)

    def block_loudness(self) -> np.ndarray:
        """(blocks,) loudness of each complete 400 ms gating block, LUFS (-inf for silence)."""
        hops = np.asarray(self._hops)
        per_block = int(round(BLOCK_S / HOP_S))
        if len(hops) < per_block:
            return np.zeros(0)
        sums = np.convolve(hops, np.ones(per_block), mode="valid")
        z = sums / (per_block * self._hop)
        with np.errstate(divide="ignore"):
            return _OFFSET + 10 * np.log10(z)

    def integrated(self) -> float:
        """Gated integrated loudness, LUFS; -inf when nothing passes the absolute gate.

        A stream shorter than one 400 ms block is measured as a single ungated block (outside
        BS.1770, which needs at least one block; used for very short cues)."""
        loud = self.block_loudness()
        if not len(loud):
            total = float(np.sum(self._hops) + np.sum(self._pending))
            if self.n_samples == 0 or total <= 0:
                return float("-inf")
            return _OFFSET + 10 * math.log10(total / self.n_samples)
        power = 10 ** ((loud - _OFFSET) / 10)
        above = loud > ABSOLUTE_GATE_LUFS
        if not above.any():
            return float("-inf")
        relative = _OFFSET + 10 * math.log10(power[above].mean()) + RELATIVE_GATE_LU
        gated = above & (loud > relative)
        return _OFFSET + 10 * math.log10(power[gated].mean())


def integrated_loudness(x: np.ndarray, rate: int) -> float:
    """BS.1770-4 integrated loudness of a whole (n,) or (n, c) signal, LUFS."""
    x = np.asarray(x)
    meter = LoudnessMeter(rate, 1 if x.ndim == 1 else x.shape[1])
    meter.add(x)
    return meter.integrated()
