"""Random number generators for reproducible, exactly resumable training.

Every RNG a training step may touch (torch CPU and CUDA, numpy's global MT19937, python's
`random`) is captured as plain tensors, so a checkpoint stores it without pickles, and restored
on resume. Validation runs inside `isolated_rng`, with fixed seeds, so it neither moves the
training streams nor depends on when it runs.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Tensor]:
    """This process's torch / numpy / python RNG states as tensors (no pickles)."""
    out = {"torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s.clone()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    out["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    out["numpy_rest"] = torch.tensor([pos, has_gauss, cached], dtype=torch.float64)
    version, words, gauss = random.getstate()
    out["python_words"] = torch.tensor(words, dtype=torch.int64)
    out["python_rest"] = torch.tensor(
        [version, gauss is not None, gauss or 0.0], dtype=torch.float64
    )
    return out


def set_rng_state(state: dict[str, Tensor]) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        n = torch.cuda.device_count()
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda[:n]])
    pos, has_gauss, cached = state["numpy_rest"].tolist()
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), float(cached)))
    version, has, gauss = state["python_rest"].tolist()
    words = tuple(int(w) for w in state["python_words"].tolist())
    random.setstate((int(version), words, float(gauss) if has else None))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run with fixed seeds, then put every RNG back as it was."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        seed_everything(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
