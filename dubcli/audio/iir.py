"""A cascade of biquads (second-order sections) run exactly, in blocks, with numpy alone.

Dimensions: n samples, c channels, k = 2 states per section, N samples a block, G blocks a group.

Why not scipy.signal.sosfilt: importing scipy.signal costs 1.0-1.4 s of CPU (its package imports
scipy.stats and the array-API backends; measured on this project's 2-core machine), and a dub's
only filter is the loudness meter's K-weighting, two fixed biquads (dubbing/loudness.py). In the
dub that import ran beside the first cues' FaceMesh lanes and cost ~0.9 s of wall time (issue 15).

Method: the cascade as one linear state-space system, s[t+1] = A s[t] + B x[t], y[t] = C s[t] +
D x[t] (each section in transposed direct form II). For a block of N samples entered in state s:

    y = H x + O s,    s_next = A^N s + R x

with H (N, N) the lower-triangular Toeplitz matrix of the impulse response (h[0] = D, h[m] =
C A^(m-1) B), O[i] = C A^i and R[:, j] = A^(N-1-j) B. Nothing is truncated inside a block, so the
output is the sample-by-sample recursion's up to float rounding (tested against scipy's sosfilt).
All blocks of a call are done as one matrix product; the block-to-block recursion of the states
(s_(b+1) = A^N s_b + R x_b) is solved the same way one level up, G blocks at a time, which leaves
a Python loop over groups of N * G samples only. Cost: ~N + G + k multiply-adds a sample.
"""

from __future__ import annotations

import numpy as np

BLOCK = 64  # N
GROUP = 64  # G


def _state_space(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(sections, 6) [b0 b1 b2 a0 a1 a2] rows -> (A (k, k), B (k,), C (k,), D) of the cascade."""
    A = np.zeros((0, 0))
    B = C = np.zeros(0)
    D = 1.0
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, np.float64):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        # transposed direct form II: y = z1 + b0 x; z1' = z2 - a1 y + b1 x; z2' = -a2 y + b2 x
        As = np.array([[-a1, 1.0], [-a2, 0.0]])
        Bs = np.array([b1 - a1 * b0, b2 - a2 * b0])
        Cs = np.array([1.0, 0.0])
        # this section after the cascade so far: its input is y_prev = C s + D x
        k = len(B)
        A2 = np.zeros((k + 2, k + 2))
        A2[:k, :k] = A
        A2[k:, :k] = np.outer(Bs, C)
        A2[k:, k:] = As
        A, B = A2, np.concatenate([B, Bs * D])
        C = np.concatenate([b0 * C, Cs])
        D = b0 * D
    return A, B, C, D


class SosFilter:
    """`filter(x (c, n), state (c, k)) -> (y (c, n), state)`: scipy.signal.sosfilt(sos, x,
    axis=-1) carried across calls, for a fixed `sos` (module doc). `initial_state(c)`: at rest."""

    def __init__(self, sos: np.ndarray, block: int = BLOCK, group: int = GROUP):
        A, B, C, D = _state_space(sos)
        self.k, self.block, self.group = len(B), int(block), int(group)
        N, G, k = self.block, self.group, self.k
        pw = [np.eye(k)]
        for _ in range(N):
            pw.append(A @ pw[-1])
        self._pow = np.stack(pw)  # A^0 .. A^N
        h = np.array([D] + [C @ pw[m - 1] @ B for m in range(1, N)])
        idx = np.arange(N)[:, None] - np.arange(N)[None, :]
        self._H = np.where(idx >= 0, h[np.clip(idx, 0, N - 1)], 0.0)  # (N, N)
        self._O = np.stack([C @ pw[i] for i in range(N)])  # (N, k)
        self._R = np.stack([pw[N - 1 - j] @ B for j in range(N)], axis=1)  # (k, N)
        self._W = np.concatenate([self._H.T, self._O.T])  # (N + k, N): [x s] -> y
        # one level up: block states s_(b+1) = P s_b + u_b, P = A^N, u_b = R x_b
        ppw = [np.eye(k)]
        for _ in range(G):
            ppw.append(pw[N] @ ppw[-1])
        self._ppow = np.stack(ppw)  # P^0 .. P^G
        self._ppow_t = np.concatenate([p.T for p in ppw[:G]], axis=1)  # (k, G * k): S -> P^j S
        M = np.zeros((G + 1, k, G, k))  # state entering block j of a group from its inputs
        for j in range(1, G + 1):
            for i in range(j):
                M[j, :, i, :] = ppw[j - 1 - i]
        self._M = M.reshape((G + 1) * k, G * k)

    def initial_state(self, channels: int) -> np.ndarray:
        return np.zeros((channels, self.k))

    def filter(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (c, n) (channel-major: a (n, c) signal's `.T` is fine), state (c, k) -> (y (c, n),
        the state after the last sample)."""
        x = np.asarray(x, np.float64)
        c, n = x.shape
        if n == 0:
            return x.copy(), state
        N, G, k = self.block, self.group, self.k
        ng = -(-n // (N * G))
        # every block of N samples a row, with k more columns for the state entering it, so one
        # product gives y = H x + O s (module doc)
        rows = np.empty((c * ng * G, N + k))
        blocks = rows.reshape(c, ng * G, N + k)[:, :, :N]  # a view
        q, r = divmod(n, N)  # whole blocks, samples of a last partial one
        blocks[:, :q] = x[:, : q * N].reshape(c, q, N)
        blocks[:, q:] = 0.0  # the padding after the signal
        if r:
            blocks[:, q, :r] = x[:, q * N :]
        X = rows[:, :N]
        U = (X @ self._R.T).reshape(c * ng, G * k)  # each block's input to the state
        Z = (U @ self._M.T).reshape(c, ng, G + 1, k)  # block states from a group's own inputs
        S = np.empty((c, ng + 1, k))  # the state entering each group
        S[:, 0] = state
        PG = self._ppow[G].T
        for g in range(ng):
            S[:, g + 1] = S[:, g] @ PG + Z[:, g, G]
        s = (S[:, :ng] @ self._ppow_t).reshape(c, ng, G, k) + Z[:, :, :G]  # entering each block
        rows[:, N:] = s.reshape(-1, k)
        y = (rows @ self._W).reshape(c, ng * G * N)[:, :n]
        # the state after sample n: from the state entering its block and the block's samples
        entering = S[:, ng] if q == ng * G else s.reshape(c, ng * G, k)[:, q]
        after = entering @ self._pow[r].T
        if r:
            after = after + x[:, q * N :] @ self._R[:, N - r :].T
        return y, after
