"""Inference checkpoints: one self-contained file that rebuilds the model with no outside config.

`export_inference(run_or_ckpt, path)` writes (DESIGN 7; kind "diflowdubber"):
    model/<name>    fp16 weights (EMA weights when the run kept an EMA; the frozen stage-2
                    teacher, a training-only target, is left out)
    codec/<name>    the codec's tensors (codebooks, stats), copied so the file stands alone
and JSON metadata: stage, model config, the codec's metadata, phoneme vocabulary (version and
symbols), visual features version and dims, training step, the run it came from. The dubcli
version is added by dubcli.checkpoint.

`load_inference_model(path)` -> (model in eval mode, metadata, codec). It refuses files of
another kind, a phoneme vocabulary or visual features version other than this dubcli's. The
metadata is validated before anything is built (`check_model_config`: types, then sane ranges;
then the model is built on torch's meta device, which allocates nothing, and its tensor shapes
must equal the file's): malformed metadata is a CheckpointError (exit 5), never a torch error.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError, InputError

MAX_SIZE = 1 << 16  # widths, vocabularies, heads, kernels, layers: nothing real is larger
EXPORT_KIND = "diflowdubber"
CODEC_COPY = "codec.safetensors"  # the run folder's copy of the dataset's codec
TRAINING_ONLY = ("teacher.",)  # state_dict prefixes inference never uses


class InferenceModel(NamedTuple):
    model: nn.Module  # DiFlowTTS (stage "tts") or DiFlowDubber (stage "dub"), eval mode
    metadata: dict[str, Any]
    codec: Any  # dubcli.audio.codec.base.Codec


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    stage: str,
    model_config: dict[str, Any],
    codec_file: str | os.PathLike,
    features: dict[str, Any],
    step: int,
    extra: dict[str, Any] | None = None,
    weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write an inference checkpoint for `model` (or `weights`, e.g. EMA weights, in its
    state_dict layout). `features`: {"version", "lip_dim", "face_dim"}."""
    from dubcli.text.phonemes import SYMBOLS, VOCAB_VERSION

    codec = load_checkpoint(codec_file)  # torch tensors; refuses a missing or foreign file
    state = weights if weights is not None else model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith(TRAINING_ONLY):
            continue
        v = v.detach().cpu()
        tensors[f"model/{k}"] = v.half() if v.is_floating_point() else v.clone()
    for k, v in codec.tensors.items():
        tensors[f"codec/{k}"] = torch.as_tensor(v).clone()
    meta = {
        **(extra or {}),
        "kind": EXPORT_KIND,
        "stage": stage,
        "model_config": model_config,
        "codec": {k: v for k, v in codec.metadata.items() if k != "dubcli_version"},
        "phoneme_vocab": {"version": VOCAB_VERSION, "symbols": SYMBOLS},
        "features": features,
        "step": int(step),
        "weights_dtype": "float16",
    }
    return save_checkpoint(path, tensors, meta)


def export_inference(
    source: str | os.PathLike, path: str | os.PathLike, *, use_ema: bool = True
) -> Path:
    """Export the model of a training run (its last.safetensors) or training checkpoint."""
    from dubcli.train.state import load_train_checkpoint

    ck = load_train_checkpoint(source)
    meta = ck.metadata
    run = ck.path.parent
    codec_file = run / CODEC_COPY
    if not codec_file.is_file():
        raise CheckpointError(f"{run}: no {CODEC_COPY} in the run folder (needed to export)")
    model = rebuild_model(meta.get("stage"), meta.get("model_config"), str(ck.path))
    weights = dict(ck.model)
    if use_ema and ck.ema:
        weights.update(ck.ema)  # EMA shadows cover the float tensors; the rest stay as trained
    return export_model(
        model,
        path,
        stage=meta["stage"],
        model_config=meta["model_config"],
        codec_file=codec_file,
        features=meta.get("features", {}),
        step=ck.step,
        extra={"source_run": str(run), "ema": bool(use_ema and ck.ema)},
        weights=weights,
    )


def check_model_config(stage: Any, config: Any, where: str):
    """The stored model config as a ModelConfig, or a CheckpointError naming what is wrong:
    types (ModelConfig.from_dict), then ranges: sizes are integers in 1..MAX_SIZE (layer and conv
    counts may be 0), floats are finite, dropouts in [0, 1), the rest positive or >= 0."""
    from dubcli.config import ModelConfig

    if stage not in ("tts", "dub") or not isinstance(config, dict):
        raise CheckpointError(f"{where}: no stage/model config in the metadata")
    try:
        cfg = ModelConfig.from_dict(config)
    except InputError as exc:
        raise CheckpointError(f"{where}: stored model config is not valid here ({exc})") from exc
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        problem = _range_problem(f.name, value)
        if problem:
            raise CheckpointError(f"{where}: stored model config: {f.name} = {value!r} {problem}")
    return cfg


def _range_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or isinstance(value, str):
        return None
    if isinstance(value, tuple):
        return next((p for v in value if (p := _range_problem(name, v))), None)
    if isinstance(value, int):
        low = 0 if name.endswith(("_layers", "_convs")) else 1
        return None if low <= value <= MAX_SIZE else f"is outside {low}..{MAX_SIZE}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "is not a finite number"
        if "dropout" in name:
            return None if 0.0 <= value < 1.0 else "is outside [0, 1)"
        if name.startswith("w") and name[1:2].isdigit():  # loss weights
            return None if value >= 0.0 else "is negative"
        return None if 0.0 < value <= MAX_SIZE else f"is outside (0, {MAX_SIZE}]"
    return None


def check_weights(cfg, stage: str, tensors: dict[str, Any], where: str) -> None:
    """CheckpointError unless the model `cfg` builds has exactly the file's tensors and shapes.
    Built on the meta device: no memory is allocated, however large the config claims to be."""
    from dubcli.model.dubber import build_model

    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(cfg, stage).state_dict().items()
                      if not k.startswith(TRAINING_ONLY)}  # fmt: skip
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{where}: stored model config cannot build a model ({exc})") from exc
    stored = {k[len("model/") :]: tuple(v.shape) for k, v in tensors.items()
              if k.startswith("model/")}  # fmt: skip
    missing = sorted(set(shapes) - set(stored))
    unexpected = sorted(set(stored) - set(shapes))
    wrong = sorted(k for k in set(shapes) & set(stored) if shapes[k] != stored[k])
    if missing or unexpected or wrong:
        detail = (f"{k} is {stored[k]}, the config makes {shapes[k]}" for k in wrong[:1])
        raise CheckpointError(
            f"{where}: weights do not match the stored config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}" + "".join(f"; {d}" for d in detail) + ")"
        )


def rebuild_model(stage: Any, config: Any, where: str) -> nn.Module:
    """A freshly built model of `stage` from a stored config dict (no outside config)."""
    from dubcli.config import ModelConfig
    from dubcli.model.dubber import build_model

    if stage not in ("tts", "dub") or not isinstance(config, dict):
        raise CheckpointError(f"{where}: no stage/model config in the metadata")
    try:
        cfg = ModelConfig.from_dict(config)
    except InputError as exc:
        raise CheckpointError(f"{where}: stored model config is not valid here ({exc})") from exc
    return build_model(cfg, stage)


def load_inference_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> InferenceModel:
    """Rebuild the model (fp32 weights from the fp16 file), its codec and metadata."""
    from dubcli.audio.codec.base import load_codec
    from dubcli.text.phonemes import VOCAB_VERSION
    from dubcli.vision.features import FEATURES_VERSION

    path = Path(path)
    ck = load_checkpoint(path, expect_kind=EXPORT_KIND)
    meta = ck.metadata
    vocab = (meta.get("phoneme_vocab") or {}).get("version")
    if vocab != VOCAB_VERSION:
        raise CheckpointError(
            f"{path}: trained with phoneme vocabulary '{vocab}', this dubcli uses '{VOCAB_VERSION}'"
        )
    feats = (meta.get("features") or {}).get("version")
    if meta.get("stage") == "dub" and feats != FEATURES_VERSION:
        raise CheckpointError(
            f"{path}: trained on visual features '{feats}', this dubcli extracts "
            f"'{FEATURES_VERSION}'; use a matching dubcli or retrain"
        )
    cfg = check_model_config(meta.get("stage"), meta.get("model_config"), str(path))
    check_weights(cfg, meta["stage"], ck.tensors, str(path))
    if not isinstance(meta.get("codec") or {}, dict):
        raise CheckpointError(f"{path}: the codec metadata is not a table")
    try:
        model = rebuild_model(meta.get("stage"), meta.get("model_config"), str(path))
        state = {k[len("model/") :]: v for k, v in ck.tensors.items() if k.startswith("model/")}
        model.load_state_dict(state, strict=False)  # names and shapes were checked above
        codec_t = {k[len("codec/") :]: v.numpy() for k, v in ck.tensors.items()
                   if k.startswith("codec/")}  # fmt: skip
        codec = load_codec((codec_t, dict(meta.get("codec") or {})))
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, InputError) as exc:
        raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    return InferenceModel(model.to(device).eval(), meta, codec)
