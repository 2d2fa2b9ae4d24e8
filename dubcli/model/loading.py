"""Model loading, in one place: `load_model(spec, device)` for every way a user names a model.

    loaded = load_model("runs/dub", device="cpu")   # registry name | path | hf:// | run | ckpt
    loaded.model, loaded.codec, loaded.metadata

A spec is resolved (`resolve_model`), then the checkpoint is verified and the model rebuilt from
its own metadata (DESIGN 7: no outside config):
  - a registry name, a .safetensors path or hf://org/repo[@rev]/file: an inference checkpoint
    (kind "diflowdubber", written by `export_checkpoint`), resolved and sha256-verified by
    dubcli.hub;
  - a training run folder (its last.safetensors) or a training checkpoint (kind "dubcli-train"):
    exported on the fly, in memory (EMA weights when the run kept them, the codec from the run's
    codec.safetensors), exactly what `dubcli train --export` would write but without the fp16
    rounding, so a user who just trained can dub with the run itself.
Before anything is built, the metadata is checked (`check_model_config`: types, then sane
ranges; then the model is built on torch's meta device, which allocates nothing, and its tensor
shapes must equal the file's: model/shapes.py); the phoneme vocabulary and visual features
versions must be this dubcli's, and the codec must agree with the model (vocabulary, speaker
width). Any problem is a CheckpointError (exit 5), never a torch error.

Training writes with `export_checkpoint`; inference and evaluation read with `load_model`. This
module imports neither dubcli.train nor dubcli.eval.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from dubcli.checkpoint import load_checkpoint, read_metadata
from dubcli.errors import CheckpointError, InputError

MAX_SIZE = 1 << 16  # widths, vocabularies, heads, kernels, layers: nothing real is larger
EXPORT_KIND = "diflowdubber"  # an inference checkpoint
TRAIN_KIND = "dubcli-train"  # a training checkpoint (dubcli.train.state)
LAST = "last.safetensors"  # a run folder's newest training checkpoint
CODEC_COPY = "codec.safetensors"  # the run folder's copy of the dataset's codec


class InferenceModel(NamedTuple):
    model: Any  # DiFlowTTS (stage "tts") or DiFlowDubber (stage "dub"), eval mode
    metadata: dict[str, Any]
    codec: Any  # dubcli.audio.codec.base.Codec


@dataclass(frozen=True)
class ResolvedModel:
    path: Path  # the local .safetensors file to read
    source: str  # reproducible origin: absolute path, or hf://org/repo@<commit>/file
    sha256: str | None  # verified hash (registry entry or #sha256=), None if unchecked
    training: bool  # a training checkpoint (exported in memory on load)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    model: Any  # DiFlowTTS or DiFlowDubber in eval mode, on the device asked for
    codec: Any  # the checkpoint's own codec (dubcli.audio.codec.base.Codec)
    metadata: dict[str, Any]  # the inference metadata (an on-the-fly export's for a run)
    path: Path  # the file read
    source: str
    sha256: str | None
    device: Any  # torch.device


def resolve_model(spec: str | os.PathLike | None, *, offline: bool = False) -> ResolvedModel:
    """NAME | PATH | hf://... | RUN folder | training checkpoint (None: the registry default) ->
    the local file to read, without reading its tensors."""
    from dubcli.hub import HF_SCHEME, resolve_checkpoint

    spec = None if spec is None else str(spec)
    if spec is not None and not spec.startswith(HF_SCHEME):
        folder = Path(os.path.expandvars(spec)).expanduser()
        if folder.is_dir():
            if not (folder / LAST).is_file():
                raise CheckpointError(
                    f"{spec}: a folder without {LAST}, so not a training run; pass a run "
                    "folder, a .safetensors checkpoint, a registry name or hf://..."
                )
            spec = str(folder / LAST)
    resolved = resolve_checkpoint(spec, offline=offline)
    training = read_metadata(resolved.path).get("kind") == TRAIN_KIND
    return ResolvedModel(resolved.path, resolved.source, resolved.sha256, training)


def load_model(
    spec: str | os.PathLike | None, device: Any = "cpu", *, offline: bool = False
) -> LoadedModel:
    """Resolve, verify and rebuild a model (see the module doc). `device`: auto | cpu | cuda
    | cuda:N | a torch.device."""
    from dubcli.device import resolve_device

    dev = device if not isinstance(device, str) else resolve_device(device)
    resolved = resolve_model(spec, offline=offline)
    if resolved.training:
        tensors, meta = training_export(resolved.path, half=False)
    else:
        tensors, meta = load_checkpoint(resolved.path, expect_kind=EXPORT_KIND)
    model, codec = build_from_tensors(tensors, meta, str(resolved.path))
    return LoadedModel(model.to(dev).eval(), codec, meta, resolved.path, resolved.source,
                       resolved.sha256, dev)  # fmt: skip


def load_inference_model(path: str | os.PathLike, device: Any = "cpu") -> InferenceModel:
    """An inference checkpoint file -> (model in eval mode, metadata, codec)."""
    path = Path(path)
    tensors, meta = load_checkpoint(path, expect_kind=EXPORT_KIND)
    model, codec = build_from_tensors(tensors, meta, str(path))
    return InferenceModel(model.to(device).eval(), meta, codec)


# -- export -------------------------------------------------------------------------------------


def export_tensors(
    state: dict[str, Any], *, stage: str, model_config: dict[str, Any], codec: Any,
    features: dict[str, Any], step: int, extra: dict[str, Any] | None = None, half: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """(tensors, metadata) of an inference checkpoint: `state` (a state_dict, e.g. EMA weights)
    as model/<name> (fp16 when `half`; training-only parts left out), the codec checkpoint's
    tensors as codec/<name>. `codec`: a LoadedCheckpoint of the codec file."""
    import torch

    from dubcli.config import ModelConfig
    from dubcli.model.dubber import training_only_prefixes
    from dubcli.text.phonemes import SYMBOLS, VOCAB_VERSION

    skip = training_only_prefixes(ModelConfig.from_dict(model_config))
    tensors: dict[str, Any] = {}
    for k, v in state.items():
        if k.startswith(skip):
            continue
        v = v.detach().cpu()
        tensors[f"model/{k}"] = v.half() if half and v.is_floating_point() else v.clone()
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
        "weights_dtype": "float16" if half else "float32",
    }
    return tensors, meta


def training_export(
    source: str | os.PathLike, *, use_ema: bool = True, half: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, metadata) of the inference checkpoint a training run (its last.safetensors) or
    training checkpoint makes: EMA weights when kept, the codec from the run's codec copy."""
    path = training_file(source, "nothing to export")
    ck = load_checkpoint(path, expect_kind=TRAIN_KIND)
    meta = ck.metadata
    run = path.parent
    codec_file = run / CODEC_COPY
    if not codec_file.is_file():
        raise CheckpointError(f"{run}: no {CODEC_COPY} in the run folder (needed to export)")
    check_model_config(meta.get("stage"), meta.get("model_config"), str(path))
    weights = {k[len("model/") :]: v for k, v in ck.tensors.items() if k.startswith("model/")}
    ema = {k[len("ema/") :]: v for k, v in ck.tensors.items() if k.startswith("ema/")}
    if use_ema and ema:
        weights.update(ema)  # EMA shadows cover the float tensors; the rest stay as trained
    return export_tensors(
        weights,
        stage=meta["stage"],
        model_config=meta["model_config"],
        codec=load_checkpoint(codec_file),  # refuses a missing or foreign file
        features=meta.get("features", {}),
        step=int(meta.get("step", 0)),
        extra={"source_run": str(run), "ema": bool(use_ema and ema)},
        half=half,
    )


def training_file(path: str | os.PathLike, missing: str) -> Path:
    """A training checkpoint file as given, or a run folder's LAST; `missing` says what a folder
    without one means (e.g. "nothing to resume")."""
    path = Path(path)
    if path.is_dir():
        if not (path / LAST).is_file():
            raise CheckpointError(f"{path}: run folder without {LAST} ({missing})")
        path = path / LAST
    return path


# -- verification and rebuilding ----------------------------------------------------------------


def build_from_tensors(tensors: dict[str, Any], meta: dict[str, Any], where: str):
    """(model on CPU, codec) from an inference checkpoint's tensors and metadata, verified."""
    from dubcli.audio.codec.base import load_codec
    from dubcli.text.phonemes import VOCAB_VERSION
    from dubcli.vision.features import FEATURES_VERSION

    vocab = (meta.get("phoneme_vocab") or {}).get("version")
    if vocab != VOCAB_VERSION:
        raise CheckpointError(
            f"{where}: trained with phoneme vocabulary '{vocab}', this dubcli uses '{VOCAB_VERSION}'"
        )
    feats = (meta.get("features") or {}).get("version")
    if meta.get("stage") == "dub" and feats != FEATURES_VERSION:
        raise CheckpointError(
            f"{where}: trained on visual features '{feats}', this dubcli extracts "
            f"'{FEATURES_VERSION}'; use a matching dubcli or retrain"
        )
    cfg = check_model_config(meta.get("stage"), meta.get("model_config"), where)
    check_weights(cfg, meta["stage"], tensors, where)
    if not isinstance(meta.get("codec") or {}, dict):
        raise CheckpointError(f"{where}: the codec metadata is not a table")
    try:
        model = rebuild_model(meta.get("stage"), meta.get("model_config"), where)
        state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        model.load_state_dict(state, strict=False)  # names and shapes were checked above
        model.drop_training_parts()  # not in the file: see training_only_prefixes
        codec_t = {k[len("codec/") :]: v.numpy() for k, v in tensors.items()
                   if k.startswith("codec/")}  # fmt: skip
        codec = load_codec((codec_t, dict(meta.get("codec") or {})))
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, InputError) as exc:
        raise CheckpointError(f"{where}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if codec.vocab != model.cfg.vocab or codec.speaker_dim != model.cfg.speaker_dim:
        raise CheckpointError(
            f"{where}: the codec ({codec.vocab} codes, speaker {codec.speaker_dim}) "
            f"does not match the model ({model.cfg.vocab}, {model.cfg.speaker_dim})"
        )
    return model, codec


def check_model_config(stage: Any, config: Any, where: str):
    """The stored model config as a ModelConfig, or a CheckpointError naming what is wrong:
    types (ModelConfig.from_dict), then ranges: sizes are integers in 1..MAX_SIZE (layer and conv
    counts may be 0), floats are finite, dropouts in [0, 1), the rest positive or >= 0."""
    cfg = _stored_config(stage, config, where)
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
    Built on the meta device (model/shapes.py): no memory is allocated, however large the config
    claims to be."""
    from dubcli.model.dubber import training_only_prefixes
    from dubcli.model.shapes import state_shapes

    skip = training_only_prefixes(cfg)
    try:
        shapes = {k: v for k, v in state_shapes(cfg, stage).items() if not k.startswith(skip)}
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


def rebuild_model(stage: Any, config: Any, where: str):
    """A freshly built model of `stage` from a stored config dict (no outside config)."""
    from dubcli.model.dubber import build_model

    return build_model(_stored_config(stage, config, where), stage)


def _stored_config(stage: Any, config: Any, where: str):
    """The stored model config as a ModelConfig (types checked), or a CheckpointError."""
    from dubcli.config import ModelConfig

    if stage not in ("tts", "dub") or not isinstance(config, dict):
        raise CheckpointError(f"{where}: no stage/model config in the metadata")
    try:
        return ModelConfig.from_dict(config)
    except InputError as exc:
        raise CheckpointError(f"{where}: stored model config is not valid here ({exc})") from exc
