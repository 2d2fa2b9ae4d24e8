"""Inference checkpoints: one self-contained file that rebuilds the model with no outside config.

`export_inference(run_or_ckpt, path)` writes (DESIGN 7; kind "diflowdubber"):
    model/<name>    fp16 weights (EMA weights when the run kept an EMA; the frozen stage-2
                    teacher, a training-only target, is left out)
    codec/<name>    the codec's tensors (codebooks, stats), copied so the file stands alone
and JSON metadata: stage, model config, the codec's metadata, phoneme vocabulary (version and
symbols), visual features version and dims, training step, the run it came from. The dubcli
version is added by dubcli.checkpoint.

Reading, verifying and rebuilding live in dubcli.model.loading (`load_model`), which inference
uses too; the names below are re-exported from there for training code and older callers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.model.loading import (  # noqa: F401 (re-exported)
    CODEC_COPY,
    EXPORT_KIND,
    MAX_SIZE,
    InferenceModel,
    check_model_config,
    check_weights,
    export_tensors,
    load_inference_model,
    rebuild_model,
    training_export,
)


def export_model(
    model,
    path: str | os.PathLike,
    *,
    stage: str,
    model_config: dict[str, Any],
    codec_file: str | os.PathLike,
    features: dict[str, Any],
    step: int,
    extra: dict[str, Any] | None = None,
    weights: dict[str, Any] | None = None,
) -> Path:
    """Write an inference checkpoint for `model` (or `weights`, e.g. EMA weights, in its
    state_dict layout). `features`: {"version", "lip_dim", "face_dim"}."""
    codec = load_checkpoint(codec_file)  # torch tensors; refuses a missing or foreign file
    state = weights if weights is not None else model.state_dict()
    tensors, meta = export_tensors(state, stage=stage, model_config=model_config, codec=codec,
                                   features=features, step=step, extra=extra)  # fmt: skip
    return save_checkpoint(path, tensors, meta)


def export_inference(
    source: str | os.PathLike, path: str | os.PathLike, *, use_ema: bool = True
) -> Path:
    """Export the model of a training run (its last.safetensors) or training checkpoint."""
    return save_checkpoint(path, *training_export(source, use_ema=use_ema))
