"""Monotonic alignment search against brute-force enumeration of every monotonic path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dubcli.align.mas import durations_from_alignment, monotonic_alignment_search


def _all_paths(nt: int, nv: int):
    """Every monotonic path with >= 1 frame per phoneme, as a phoneme index per frame."""
    for cuts in itertools.combinations(range(1, nv), nt - 1):
        bounds = (0, *cuts, nv)
        yield np.repeat(np.arange(nt), np.diff(bounds))


def _all_skip_paths(nt: int, nv: int):
    """Every non-decreasing phoneme index per frame (phonemes may get zero frames)."""
    for combo in itertools.combinations_with_replacement(range(nt), nv):
        yield np.array(combo)


def _best(s: np.ndarray, paths) -> tuple[float, np.ndarray]:
    best, arg = -np.inf, None
    for p in paths:
        total = s[p, np.arange(s.shape[1])].sum()
        if arg is None or total > best:
            best, arg = total, p
    return best, arg


def _as_index(path: np.ndarray) -> np.ndarray:
    """(nt, nv) 0/1 -> phoneme per frame, checking exactly one phoneme per frame."""
    assert set(np.unique(path)) <= {0.0, 1.0}
    assert (path.sum(axis=0) == 1).all(), "every frame must belong to exactly one phoneme"
    return path.argmax(axis=0)


@pytest.mark.parametrize(
    "nt,nv", [(1, 1), (1, 6), (2, 2), (3, 3), (2, 7), (3, 8), (4, 9), (5, 10), (6, 6)]
)
def test_matches_brute_force(nt, nv):
    rng = np.random.default_rng(nt * 100 + nv)
    for _ in range(5):
        s = rng.normal(size=(nt, nv))
        path = monotonic_alignment_search(s[None])[0]
        idx = _as_index(path)
        best, arg = _best(s, _all_paths(nt, nv))
        np.testing.assert_array_equal(idx, arg)
        assert np.isclose(s[idx, np.arange(nv)].sum(), best)
        assert (np.diff(idx) >= 0).all() and (np.diff(idx) <= 1).all()


def test_equal_lengths_is_the_diagonal():
    s = np.random.default_rng(1).normal(size=(2, 7, 7)) * 10
    path = monotonic_alignment_search(s)
    np.testing.assert_array_equal(path, np.broadcast_to(np.eye(7), (2, 7, 7)))
    np.testing.assert_array_equal(durations_from_alignment(path), np.ones((2, 7)))


def test_batch_with_padding_matches_items():
    rng = np.random.default_rng(2)
    t_len = np.array([3, 5, 1, 4, 5])
    f_len = np.array([8, 5, 4, 10, 9])
    s = rng.normal(size=(5, 5, 10))
    # Huge scores in the padding must not pull the path there.
    pad = (np.arange(5)[None, :, None] >= t_len[:, None, None]) | (
        np.arange(10)[None, None, :] >= f_len[:, None, None]
    )
    s[pad] = 1e6
    path = monotonic_alignment_search(s, t_len, f_len)
    assert path.shape == (5, 5, 10)
    assert (path[pad] == 0).all()
    dur = durations_from_alignment(path)
    np.testing.assert_array_equal(dur.sum(axis=1), f_len)
    for k in range(5):
        crop = s[k, : t_len[k], : f_len[k]]
        _, arg = _best(crop, _all_paths(t_len[k], f_len[k]))
        np.testing.assert_array_equal(_as_index(path[k, : t_len[k], : f_len[k]]), arg)
        assert (dur[k, : t_len[k]] >= 1).all() and (dur[k, t_len[k] :] == 0).all()

    mask = ~pad
    np.testing.assert_array_equal(monotonic_alignment_search(s, mask=mask), path)


def test_forbidden_cells_and_all_forbidden():
    s = np.zeros((1, 3, 6))
    s[0, 1, :4] = -np.inf  # phoneme 1 may only take frames 4..
    idx = _as_index(monotonic_alignment_search(s)[0])
    assert idx.tolist()[:4] == [0, 0, 0, 0] and idx[4] == 1 and idx[5] == 2
    # Every path forbidden: the result is still a valid monotonic path, not garbage.
    idx = _as_index(monotonic_alignment_search(np.full((1, 4, 6), -np.inf))[0])
    assert idx[0] == 0 and idx[-1] == 3 and set(np.diff(idx)) <= {0, 1}
    assert sorted(set(idx)) == [0, 1, 2, 3]


def test_torch_in_torch_out():
    s = torch.randn(2, 4, 9, dtype=torch.float32)
    path = monotonic_alignment_search(s, torch.tensor([4, 2]), torch.tensor([9, 5]))
    assert isinstance(path, torch.Tensor) and path.dtype == torch.float32
    ref = monotonic_alignment_search(s.numpy(), np.array([4, 2]), np.array([9, 5]))
    np.testing.assert_array_equal(path.numpy(), ref)
    dur = durations_from_alignment(path)
    assert dur.dtype == torch.long and dur.sum(dim=1).tolist() == [9, 5]


def test_too_few_frames_errors_or_skips():
    s = np.random.default_rng(3).normal(size=(2, 5, 6))
    with pytest.raises(ValueError, match="fewer frames than phonemes"):
        monotonic_alignment_search(s, np.array([5, 5]), np.array([6, 3]))
    path = monotonic_alignment_search(s, np.array([5, 5]), np.array([6, 3]), on_short="skip")
    # the feasible item is untouched by the fallback
    np.testing.assert_array_equal(path[0], monotonic_alignment_search(s[:1])[0])
    idx = _as_index(path[1, :, :3])
    _, arg = _best(s[1, :, :3], _all_skip_paths(5, 3))
    np.testing.assert_array_equal(idx, arg)
    assert durations_from_alignment(path)[1].sum() == 3


def test_bad_inputs():
    with pytest.raises(ValueError, match="batch, n_phonemes, n_frames"):
        monotonic_alignment_search(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="text_lengths"):
        monotonic_alignment_search(np.zeros((1, 3, 4)), np.array([0]))
    with pytest.raises(ValueError, match="frame_lengths"):
        monotonic_alignment_search(np.zeros((1, 3, 4)), None, np.array([5]))
    bad = np.ones((1, 3, 4), dtype=bool)
    bad[0, 0, 3] = False
    with pytest.raises(ValueError, match="rectangle"):
        monotonic_alignment_search(np.zeros((1, 3, 4)), mask=bad)
