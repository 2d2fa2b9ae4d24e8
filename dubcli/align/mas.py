"""Monotonic Alignment Search (Glow-TTS, Kim et al. 2020), used by the Synchronizer (paper 3.4.2).

The Synchronizer's lip->phoneme attention is turned into hard phoneme durations by MAS: the
monotonic path through a (phoneme x frame) score matrix with the largest total score, in which
every frame belongs to exactly one phoneme, phonemes are visited in order and each phoneme gets
at least one frame. Dynamic programme (as in Glow-TTS):

    Q[i, j] = max(Q[i, j-1], Q[i-1, j-1]) + S[i, j],   Q[0, 0] = S[0, 0]

then backtrack from (n_phonemes-1, n_frames-1). Vectorized over the batch and the phoneme axis
with numpy, one loop step per frame (numba is not a dependency): batch 16 x 100 phonemes x 800
frames takes ~11 ms on one CPU core (benchmarks/mas_speed.py). Torch input is moved to the CPU
and back; MAS has no gradient.

An item with fewer frames than phonemes has no such path. By default that is an error; with
`on_short="skip"` such items instead get the best path in which phonemes may receive zero frames
(every frame still belongs to one phoneme and the phoneme index never decreases), so training
on a cue that is too short for its text degrades gracefully instead of stopping.

Dimension legend: b batch, nt phonemes (text), nv frames (video frames or speech tokens).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["durations_from_alignment", "monotonic_alignment_search"]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        return x.detach().to("cpu").double().numpy()
    return np.asarray(x)


def _lengths(
    name: str, value: Any, default: int, batch: int, limit: int
) -> np.ndarray:  # (b,) int64
    if value is None:
        return np.full(batch, default, dtype=np.int64)
    arr = _to_numpy(value).astype(np.int64).reshape(-1)
    if arr.shape != (batch,):
        raise ValueError(f"MAS: {name} has shape {arr.shape}, expected ({batch},)")
    if (arr < 1).any() or (arr > limit).any():
        raise ValueError(f"MAS: {name} must lie in [1, {limit}], got {arr.tolist()}")
    return arr


def _lengths_from_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(b, nt, nv) prefix-rectangle mask -> (text_lengths (b,), frame_lengths (b,))."""
    mask = mask.astype(bool)
    t_len = mask.any(axis=2).sum(axis=1)
    f_len = mask.any(axis=1).sum(axis=1)
    nt, nv = mask.shape[1:]
    rect = (np.arange(nt)[None, :, None] < t_len[:, None, None]) & (
        np.arange(nv)[None, None, :] < f_len[:, None, None]
    )
    if not np.array_equal(rect, mask):
        raise ValueError("MAS: mask must be a rectangle of valid phonemes x valid frames per item")
    return t_len, f_len


def monotonic_alignment_search(
    scores: Any,
    text_lengths: Any = None,
    frame_lengths: Any = None,
    *,
    mask: Any = None,
    on_short: Literal["error", "skip"] = "error",
) -> Any:
    """Hard monotonic alignment maximizing the summed score.

    scores: (b, nt, nv) log-probabilities or similarities (numpy array or torch tensor); -inf
        marks a forbidden cell (a path is still returned if every path is forbidden).
    text_lengths, frame_lengths: (b,) valid phonemes / frames per item (default: all), or
    mask: (b, nt, nv) bool, True on the valid rectangle (instead of the lengths).
    on_short: what to do with an item whose frame length is below its text length: "error"
        raises ValueError; "skip" lets phonemes get zero frames (see the module docstring).
    Returns path (b, nt, nv): 1 where frame j belongs to phoneme i, 0 elsewhere and in padding;
    a numpy float array, or a torch tensor with the dtype and device of `scores`.
    """
    s = _to_numpy(scores)
    if s.ndim != 3:
        raise ValueError(f"MAS: scores must be (batch, n_phonemes, n_frames), got shape {s.shape}")
    b, nt, nv = s.shape
    if mask is not None:
        if text_lengths is not None or frame_lengths is not None:
            raise ValueError("MAS: give either mask or lengths, not both")
        m = _to_numpy(mask)
        if m.shape != s.shape:
            raise ValueError(f"MAS: mask shape {m.shape} != scores shape {s.shape}")
        t_len, f_len = _lengths_from_mask(m)
        if (t_len < 1).any() or (f_len < 1).any():
            raise ValueError("MAS: every item needs at least one valid phoneme and frame")
    else:
        t_len = _lengths("text_lengths", text_lengths, nt, b, nt)
        f_len = _lengths("frame_lengths", frame_lengths, nv, b, nv)

    short = f_len < t_len
    if short.any() and on_short != "skip":
        items = np.flatnonzero(short).tolist()
        raise ValueError(
            f"MAS: items {items} have fewer frames than phonemes "
            f"(frames {f_len[short].tolist()} < phonemes {t_len[short].tolist()}); "
            "pass on_short='skip' to let phonemes get zero frames"
        )

    # Frame-major (nv, b, nt) so each DP step reads one contiguous slab; float64 so sums over
    # thousands of frames keep their precision (one pass does the transpose and the cast).
    s_t = np.empty((nv, b, nt), dtype=np.float64)
    s_t[...] = np.moveaxis(s, 2, 0)
    if not np.isfinite(s_t).all():
        # NaN would break max(): it counts as forbidden; +inf becomes a huge finite score.
        np.nan_to_num(s_t, copy=False, nan=-np.inf, posinf=1e200, neginf=-np.inf)
    if not short.any():
        path = _mas(s_t, t_len, f_len)
    else:
        path = np.zeros((b, nt, nv), dtype=np.float32)
        ok = np.flatnonzero(~short)
        if ok.size:
            path[ok] = _mas(s_t[:, ok], t_len[ok], f_len[ok])
        for k in np.flatnonzero(short):
            path[k] = _mas_skip(s_t[:, k].T, int(t_len[k]), int(f_len[k]))

    if _is_torch(scores):
        import torch

        dtype = scores.dtype if scores.is_floating_point() else torch.float32
        return torch.from_numpy(path).to(device=scores.device, dtype=dtype)
    return path


def _mas(s_t: np.ndarray, t_len: np.ndarray, f_len: np.ndarray) -> np.ndarray:
    """Batched DP for feasible items (f_len >= t_len). s_t (nv, b, nt) -> path (b, nt, nv)."""
    nv, b, nt = s_t.shape
    # Padding cells cannot change Q on the valid rectangle (Q[i, j] depends only on cells
    # i' <= i, j' <= j), so the DP runs over the full padded grid and backtracking starts at
    # each item's own corner (t_len-1, f_len-1).
    q = np.full((b, nt), -np.inf)
    q[:, 0] = s_t[0, :, 0]
    advance = np.zeros((nv, b, nt), dtype=bool)  # Q[i-1, j-1] beat Q[i, j-1] at (i, j)
    shifted = np.full((b, nt), -np.inf)
    for j in range(1, nv):
        shifted[:, 1:] = q[:, :-1]
        np.greater(shifted, q, out=advance[j])
        np.maximum(q, shifted, out=q)
        q += s_t[j]

    # Forced moves keep the path valid even when ties (-inf scores) hide the best one: at
    # i == j the phonemes before i need all the remaining frames; phoneme 0 cannot advance.
    diag = np.arange(min(nt, nv))
    advance[diag, :, diag] = True
    advance[:, :, 0] = False
    active = np.arange(nv)[:, None] < f_len[None, :]  # (nv, b): backtracking runs right to left
    rows = np.arange(b)
    i = t_len - 1
    idx = np.empty((b, nv), dtype=np.int64)  # phoneme of each frame
    for j in range(nv - 1, -1, -1):
        idx[:, j] = i
        i = i - (advance[j, rows, i] & active[j])
    keep = active.T[:, None, :] & (np.arange(nt)[None, :, None] == idx[:, None, :])
    return keep.astype(np.float32)


def _mas_skip(s: np.ndarray, t_len: int, f_len: int) -> np.ndarray:
    """Fallback for one item with f_len < t_len: non-decreasing phoneme per frame, skips allowed.

    Q[i, j] = max_{k <= i} Q[k, j-1] + S[i, j], Q[i, 0] = S[i, 0]; the path ends anywhere in
    the last frame. s (nt, nv) -> path (nt, nv).
    """
    nt, nv = s.shape
    v = s[:t_len, :f_len]
    q = v[:, 0].copy()
    arg = np.zeros((f_len, t_len), dtype=np.int64)  # best predecessor phoneme at (j, i)
    idx = np.arange(t_len)
    for j in range(1, f_len):
        # running argmax of q over k <= i
        run_arg = np.maximum.accumulate(np.where(q == np.maximum.accumulate(q), idx, 0))
        arg[j] = run_arg
        q = q[run_arg] + v[:, j]
    path = np.zeros((nt, nv), dtype=np.float32)
    i = int(np.argmax(q))
    for j in range(f_len - 1, -1, -1):
        path[i, j] = 1.0
        i = int(arg[j, i])
    return path


def durations_from_alignment(path: Any) -> Any:
    """Frames per phoneme: path (b, nt, nv) 0/1 -> durations (b, nt) int (int64 / torch.long)."""
    if _is_torch(path):
        return path.sum(dim=-1).round().long()
    return np.rint(np.asarray(path).sum(axis=-1)).astype(np.int64)
