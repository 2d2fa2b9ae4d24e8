"""Phone classifier: content codes for audio that comes without phone labels.

Dimensions: t frames (80/s), f per-frame features, w = 2 * context + 1 frames per input,
h hidden width, u = len(phonetic.UNITS).

Prepared training data has labels (SynthDub timings, forced alignments), so its content codes are
exact. A reference voice or a user's video has none: this MLP reads a window of speaker-
normalized frames (cepstra z-scored per utterance, energy, voicing, aperiodicity) and gives
per-frame log-posteriors over stressed phones; a Viterbi pass with a switch penalty turns them
into phone runs (no one-frame flicker), the shape labelled codes have. Inference is numpy (no
torch import at dub time); training (`train_classifier`) uses torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dubcli.audio.codec.phonetic import N_UNITS

# A phone change must beat staying by this many nats (~log of the mean phone length in frames).
SWITCH_PENALTY = 2.5


def frame_inputs(z: np.ndarray, energy: np.ndarray, voiced: np.ndarray, apc: np.ndarray,
                 context: int) -> np.ndarray:  # fmt: skip
    """Per-frame features (t, f) stacked over +-context frames -> (t, w * f) float32."""
    x = np.concatenate(
        [z, energy[:, None] / 3.0, voiced[:, None].astype(np.float64), apc / 3.0], axis=1
    ).astype(np.float32)
    pad = np.pad(x, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([pad[i : i + len(x)] for i in range(2 * context + 1)], axis=1)


class PhoneClassifier:
    """A 2-hidden-layer GELU MLP; weights as numpy arrays (stored in the codec checkpoint)."""

    def __init__(self, weights: dict[str, np.ndarray], context: int):
        self.context = int(context)
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        shapes = [self.weights[f"w{i}"].shape for i in range(3)]
        if shapes[2][1] != N_UNITS or shapes[0][1] != shapes[1][0] or shapes[1][1] != shapes[2][0]:
            raise ValueError(f"phone classifier layers {shapes} do not chain to {N_UNITS} phones")

    @property
    def input_dim(self) -> int:
        return int(self.weights["w0"].shape[0])

    def log_posteriors(self, inputs: np.ndarray) -> np.ndarray:
        """(t, w * f) -> (t, u) log-probabilities."""
        h = inputs
        for i in range(2):
            h = _gelu(h @ self.weights[f"w{i}"] + self.weights[f"b{i}"])
        logits = h @ self.weights["w2"] + self.weights["b2"]
        logits = logits - logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def units(self, inputs: np.ndarray) -> np.ndarray:
        """(t, w * f) -> (t,) UNITS indices, smoothed into runs."""
        if len(inputs) == 0:
            return np.zeros(0, dtype=np.int64)
        return viterbi_runs(self.log_posteriors(inputs), SWITCH_PENALTY)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": v for k, v in self.weights.items()}

    @classmethod
    def from_state(cls, tensors: dict[str, Any], prefix: str, context: int) -> PhoneClassifier:
        names = [f"{p}{i}" for i in range(3) for p in ("w", "b")]
        return cls({k: np.asarray(tensors[prefix + k]) for k in names}, context)


def viterbi_runs(logp: np.ndarray, penalty: float) -> np.ndarray:
    """Best label path (t, u) -> (t,) where every change of label costs `penalty` nats."""
    t, u = logp.shape
    back = np.zeros((t, u), dtype=np.int64)
    score = logp[0].astype(np.float64)
    for i in range(1, t):
        best = int(score.argmax())
        switch = score[best] - penalty
        stay = score >= switch
        back[i] = np.where(stay, np.arange(u), best)
        score = np.where(stay, score, switch) + logp[i]
    path = np.zeros(t, dtype=np.int64)
    path[-1] = int(score.argmax())
    for i in range(t - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def train_classifier(inputs: np.ndarray, units: np.ndarray, *, context: int, hidden: int = 384,
                     epochs: int = 8, seed: int = 0) -> PhoneClassifier:  # fmt: skip
    """Fit the MLP on labelled frames: inputs (n, w * f) float32, units (n,) UNITS indices."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    net = nn.Sequential(
        nn.Linear(inputs.shape[1], hidden), nn.GELU(approximate="tanh"), nn.Dropout(0.2),
        nn.Linear(hidden, hidden), nn.GELU(approximate="tanh"), nn.Dropout(0.2),
        nn.Linear(hidden, N_UNITS),
    )  # fmt: skip
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    y = torch.from_numpy(np.asarray(units, dtype=np.int64))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    steps = epochs * max(1, -(-len(x) // 512))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(perm), 512):
            b = perm[i : i + 512]
            loss = nn.functional.cross_entropy(net(x[b]), y[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    weights = {}
    for i, lin in enumerate(linears):
        weights[f"w{i}"] = lin.weight.detach().numpy().T.copy()
        weights[f"b{i}"] = lin.bias.detach().numpy().copy()
    return PhoneClassifier(weights, context)
