"""Speed of monotonic alignment search (dubcli/align/mas.py) on random scores.

    nice python benchmarks/mas_speed.py [--repeats 7]

Prints the fastest and the median wall time per call (ms) for a few (batch, phonemes, frames)
sizes, numpy and torch input; on a shared machine the fastest run is the uncontended figure.
The Synchronizer calls MAS once per training batch on (b, nt, nv) attention scores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np

from dubcli.align.mas import monotonic_alignment_search

SIZES = [(16, 100, 800), (16, 50, 250), (64, 60, 300), (1, 200, 2000)]


def _times_ms(fn, repeats: int) -> str:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return f"{min(times):6.1f} /{statistics.median(times):6.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    import torch

    rng = np.random.default_rng(0)
    print(f"{'batch':>5} {'phonemes':>8} {'frames':>6}  numpy ms min/median  torch ms min/median")
    for b, nt, nv in SIZES:
        s = rng.normal(size=(b, nt, nv)).astype(np.float32)
        # ragged lengths, as in a real batch
        t_len = rng.integers(nt // 2, nt + 1, size=b)
        f_len = np.maximum(rng.integers(nv // 2, nv + 1, size=b), t_len)
        args_np = (s, t_len, f_len)
        args_pt = tuple(torch.from_numpy(x) for x in args_np)
        t_np = _times_ms(lambda a=args_np: monotonic_alignment_search(*a), args.repeats)
        t_pt = _times_ms(lambda a=args_pt: monotonic_alignment_search(*a), args.repeats)
        print(f"{b:>5} {nt:>8} {nv:>6}  {t_np:>19}  {t_pt:>19}")


if __name__ == "__main__":
    main()
