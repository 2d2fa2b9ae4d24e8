"""The systems an evaluation compares, and their names in tables (runner and report share them).

gt: the ground-truth audio; codec: it through the codec (the ceiling); baseline: the espeak-ng +
WORLD engine; model (or model-nfe<N>, one per NFE): DiFlowDubber; the oracles: the model with
ground truth put in place of its own predictions (`dubcli eval --oracles`).
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEMS = ("gt", "codec", "baseline", "model")
ORACLES = ("oracle-dur", "oracle-content")
LABELS = {"gt": "Ground truth", "codec": "Codec (ceiling)", "baseline": "Baseline",
          "model": "DiFlowDubber", "oracle-dur": "Oracle: GT durations",
          "oracle-content": "Oracle: GT durations + content"}  # fmt: skip
MODEL_PREFIX = "model-nfe"  # the model's system name per NFE when several are evaluated


def model_systems(nfes: Sequence[int]) -> tuple[str, ...]:
    """("model",) for one NFE, else ("model-nfe8", "model-nfe32", ...)."""
    return ("model",) if len(nfes) == 1 else tuple(f"{MODEL_PREFIX}{n}" for n in nfes)


def label(system: str) -> str:
    if system.startswith(MODEL_PREFIX):
        return f"{LABELS['model']} NFE {system[len(MODEL_PREFIX) :]}"
    return LABELS.get(system, system)


def is_model(system: str) -> bool:
    return system == "model" or system.startswith(MODEL_PREFIX)
