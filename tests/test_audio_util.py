"""dubcli/audio/util.py's sliding-window filters: scipy.ndimage's results without its import."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import median_filter, minimum_filter1d, uniform_filter1d

from dubcli.audio.util import running_mean, running_median, running_min

SIZES = [1, 2, 3, 4, 5, 11, 12, 959]
LENGTHS = [0, 1, 2, 13, 3000]


def _signals(seed: int):
    rng = np.random.default_rng(seed)
    for n in LENGTHS:
        x = rng.standard_normal(n)
        x[::7] = x[0] if n else 0.0  # ties
        yield x
        yield x.astype(np.float32)


@pytest.mark.parametrize("size", SIZES)
def test_running_median_is_median_filter_to_the_bit(size):
    for x in _signals(size):
        assert np.array_equal(running_median(x, size), median_filter(x, size=size, mode="nearest"))


@pytest.mark.parametrize("size", SIZES)
def test_running_min_is_minimum_filter1d_to_the_bit(size):
    for x in _signals(size + 1):
        got = running_min(x, size)
        assert got.dtype == x.dtype
        assert np.array_equal(got, minimum_filter1d(x, size, mode="nearest"))


@pytest.mark.parametrize("size", SIZES)
def test_running_mean_is_uniform_filter1d(size):
    for x in _signals(size + 2):
        want = uniform_filter1d(x, size, mode="nearest")
        tol = 1e-9 if x.dtype == np.float64 else 1e-6
        assert np.allclose(running_mean(x, size), want, rtol=0, atol=tol)


def test_sizes_below_one_are_refused():
    for fn in (running_median, running_min, running_mean):
        with pytest.raises(ValueError):
            fn(np.zeros(3), 0)
