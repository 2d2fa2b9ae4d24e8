"""dubcli/audio/iir.py: the block state-space biquad cascade gives scipy.signal.sosfilt's output."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from dubcli.audio.iir import SosFilter
from dubcli.dubbing.loudness import k_weighting_sos


def _streamed(f: SosFilter, x: np.ndarray, sizes) -> np.ndarray:
    """x (n, c) through `f` in pieces of `sizes` (then the rest) -> (n, c)."""
    state, out, i = f.initial_state(x.shape[1]), [], 0
    for size in sizes:
        y, state = f.filter(x[i : i + size].T, state)
        out.append(y)
        i += size
    y, state = f.filter(x[i:].T, state)
    out.append(y)
    return np.concatenate(out, axis=1).T


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_k_weighting_streamed_matches_sosfilt(rate, channels):
    rng = np.random.default_rng(rate + channels)
    x = rng.standard_normal((3 * rate + 77, channels))
    sos = k_weighting_sos(rate)
    want = sosfilt(sos, x, axis=0)
    # pieces shorter than a block, across block and group edges, one sample, empty
    sizes = [1, 0, 63, 64, 65, 4095, 4096, 4097, int(rng.integers(1, rate)), 1]
    got = _streamed(SosFilter(sos), x, sizes)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-9 * np.abs(want).max()


@pytest.mark.parametrize("block,group", [(64, 64), (8, 3), (1, 1)])
def test_any_stable_cascade_any_block_sizes(block, group):
    sos = butter(6, [300, 3000], btype="bandpass", fs=16_000, output="sos")  # 6 sections
    x = np.random.default_rng(1).standard_normal((5000, 2))
    want = sosfilt(sos, x, axis=0)
    got = _streamed(SosFilter(sos, block, group), x, [block * group, 7, block * group * 2 + 1])
    assert np.abs(got - want).max() < 1e-9 * np.abs(want).max()


def test_state_carries_over_and_empty_input_keeps_it():
    f = SosFilter(k_weighting_sos(48_000))
    x = np.random.default_rng(2).standard_normal((1, 1000))
    y, state = f.filter(x, f.initial_state(1))
    y0, same = f.filter(np.zeros((1, 0)), state)
    assert y0.shape == (1, 0) and np.array_equal(same, state)
    tail, _ = f.filter(np.zeros((1, 500)), state)  # the filter rings on after the input stops
    zi = np.zeros((2, 2, 1))
    want = sosfilt(k_weighting_sos(48_000), np.concatenate([x, np.zeros((1, 500))], axis=1).T,
                   axis=0, zi=zi)[0][1000:].T  # fmt: skip
    assert np.allclose(tail, want, atol=1e-12) and np.abs(tail).max() > 1e-6
