"""k-means codebooks and residual vector quantization (RVQ) in numpy.

Dimensions: n vectors, d width, k codes, s stages.

The `world` codec's token streams are RVQ stages (paper 3.2: FACodec's prosody/content/acoustic
quantizers are RVQ too): stage j quantizes what stages < j left. Training is plain k-means per
stage: k-means++ seeding then Lloyd iterations, deterministic for a given seed (one
numpy Generator drives all sampling; ties and empty clusters are resolved by index).
"""

from __future__ import annotations

import numpy as np

CHUNK = 8192  # rows per distance block: bounds memory at CHUNK * k floats


def nearest(x: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (n, d), codebook (k, d) -> (index (n,) int64, squared distance (n,) float64)."""
    x = np.asarray(x, dtype=np.float32)
    cb = np.asarray(codebook, dtype=np.float32)
    cc = np.einsum("kd,kd->k", cb, cb)
    idx = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        xb = x[start : start + CHUNK]
        d = cc[None, :] - 2.0 * (xb @ cb.T)  # ||x||^2 is constant per row: not needed for argmin
        i = np.argmin(d, axis=1)
        idx[start : start + len(xb)] = i
        xx = np.einsum("nd,nd->n", xb, xb)
        dist[start : start + len(xb)] = np.maximum(d[np.arange(len(xb)), i] + xx, 0.0)
    return idx, dist


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 20) -> np.ndarray:
    """x (n, d) -> codebook (k, d) float32. With n <= k every vector becomes a code (the rest
    repeat the first, so they are never chosen: argmin takes the lowest index)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n == 0:
        return np.zeros((k, d), dtype=np.float32)
    if n <= k:
        return np.concatenate([x, np.repeat(x[:1], k - n, axis=0)]).astype(np.float32)
    rng = np.random.default_rng(seed)
    centroids = _kmeans_pp(x, k, rng)
    assign = None
    for _ in range(iters):
        new_assign, dist = nearest(x, centroids)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        counts = np.bincount(assign, minlength=k)
        sums = np.stack([np.bincount(assign, weights=x[:, j], minlength=k) for j in range(d)], 1)
        empty = np.flatnonzero(counts == 0)
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if len(empty):
            # Re-seed empty clusters on the worst-served vectors (stable order: deterministic).
            worst = np.argsort(-dist, kind="stable")[: len(empty)]
            centroids[empty] = x[worst]
    return centroids


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on at most 64 k sampled vectors."""
    if len(x) > 64 * k:
        x = x[np.sort(rng.choice(len(x), 64 * k, replace=False))]
    xx = np.einsum("nd,nd->n", x, x).astype(np.float64)
    centroids = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(len(x)))
    centroids[0] = x[first]
    d2 = np.maximum(xx - 2.0 * (x @ x[first]) + xx[first], 0.0)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct vectors than codes: repeat (never chosen)
            centroids[j:] = centroids[0]
            break
        pick = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        pick = min(pick, len(x) - 1)
        centroids[j] = x[pick]
        d2 = np.minimum(d2, np.maximum(xx - 2.0 * (x @ x[pick]) + xx[pick], 0.0))
    return centroids


def train_rvq(
    x: np.ndarray, n_stages: int, k: int, *, seed: int = 0, iters: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """x (n, d) -> (codebooks (s, k, d), residual (n, d) after all stages)."""
    seeds = np.random.SeedSequence(seed).generate_state(n_stages)
    residual = np.asarray(x, dtype=np.float32).copy()
    books = []
    for stage in range(n_stages):
        book = kmeans(residual, k, seed=int(seeds[stage]), iters=iters)
        idx, _ = nearest(residual, book)
        residual -= book[idx]
        books.append(book)
    return np.stack(books), residual


def rvq_encode(x: np.ndarray, codebooks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (n, d), codebooks (s, k, d) -> (indices (s, n) int64, residual (n, d))."""
    residual = np.asarray(x, dtype=np.float32).copy()
    out = np.empty((len(codebooks), len(residual)), dtype=np.int64)
    for stage, book in enumerate(codebooks):
        out[stage], _ = nearest(residual, book)
        residual -= book[out[stage]]
    return out, residual


def rvq_decode(indices: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """indices (s, n), codebooks (s, k, d) -> (n, d) sum of the chosen codes."""
    out = np.zeros((indices.shape[1], codebooks.shape[2]), dtype=np.float32)
    for stage, book in enumerate(codebooks):
        out += book[indices[stage]]
    return out
