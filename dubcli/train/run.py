"""A training run, from command-line choices to a finished run folder (DESIGN 4, 9; paper B.3).

`train(stage, data, output, TrainOptions(...))` is what `dubcli train` calls:
- stage "tts" (stage 1, DiFlowTTS) trains from scratch; stage "dub" (stage 2, DiFlowDubber)
  starts from a stage-1 run or checkpoint (`init_from`) via DiFlowDubber.from_tts, except the
  `no_pretraining` ablation.
- configs: a model preset (tiny | small | paper) or a TOML file, with the matching train preset
  (tiny, tts-small / dub-small, tts / dub-grid) unless the file has a [train] table; the
  command-line values (steps, epochs, batch tokens, lr, seed) override both. Fields that
  describe the data (token vocabulary, speaker / lip / face widths) are taken from the dataset.
- RUN holds run.json (what was asked), codec.safetensors (the dataset's codec, so an export
  from the run stands alone), metrics.jsonl, loss.png, ckpt-<step>.safetensors, last/best.
  An existing RUN needs `resume` (continue exactly where it stopped) or `force` (start over).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dubcli.console import get_logger
from dubcli.errors import CheckpointError, InputError, OutputError
from dubcli.train.options import TrainOptions

log = get_logger(__name__)

STAGES = ("tts", "dub")
RUN_JSON = "run.json"
MAX_ITEM_TOKENS = 1600  # items are cropped to 20 s (and to the batch budget)
# Which train preset goes with a model preset, per stage.
TRAIN_PRESET_FOR = {
    ("tiny", "tts"): "tiny",
    ("tiny", "dub"): "tiny",
    ("small", "tts"): "tts-small",
    ("small", "dub"): "dub-small",
    ("paper", "tts"): "tts",
    ("paper", "dub"): "dub-grid",
}
_RUN_FILES = ("metrics.jsonl", "loss.png", "last.safetensors", "best.safetensors", RUN_JSON,
              "codec.safetensors")  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    run: Path
    stage: str
    step: int  # optimizer steps done
    checkpoint: Path | None  # last training checkpoint written
    export: Path | None  # inference checkpoint, when asked for
    train_loss: float
    valid_loss: float | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def train(
    stage: str,
    data: str | os.PathLike,
    output: str | os.PathLike,
    options: TrainOptions | None = None,
    *,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
    **fields: Any,
) -> TrainResult:
    """Train one stage into the run folder `output` as `options` say (a TrainOptions; `fields`
    are its fields put in place, e.g. config="tiny", steps=100); see the module docstring.
    on_step(step, record) runs after each step; progress: show the bar."""
    import torch

    from dubcli.config import TrainConfig
    from dubcli.data.dataset import DatasetOptions, DubDataset, collate
    from dubcli.data.manifest import load_split
    from dubcli.train import distributed as D
    from dubcli.train.export import export_inference
    from dubcli.train.loop import FitData, LoopConfig, fit
    from dubcli.train.state import load_train_checkpoint

    if stage not in STAGES:
        raise InputError(f"--stage {stage}: choose tts or dub")
    options = TrainOptions.of(options, **fields)
    config, init_from, resume = options.config, options.init_from, options.resume
    info = D.dist_info_from_env()
    dev = D.resolve_device(options.device, info.local_rank)
    started = D.init_distributed(info, dev)
    try:
        run = Path(output)
        _check_output(run, resume, options.force)
        D.barrier()  # every rank has looked before rank 0 changes anything
        root, utts = load_split(data)
        splits = {s: [u for u in utts if u.split == s] for s in ("train", "valid")}
        if not splits["train"]:
            raise InputError(f"{data}: the dataset has no 'train' utterances")
        spec = _data_spec(root, splits["train"], stage)
        if resume:
            ck = load_train_checkpoint(run)
            if ck.metadata.get("stage") != stage:
                raise InputError(f"{run}: is a '{ck.metadata.get('stage')}' run, not '{stage}'")
            from dubcli.model.loading import rebuild_model

            model = rebuild_model(stage, ck.metadata.get("model_config"), str(ck.path))
            loop = _with_limits(LoopConfig(**_tuples(ck.metadata["loop"])), options.steps,
                                options.epochs)  # fmt: skip
            opts = DatasetOptions(**ck.metadata["dataset_options"])
            meta = {k: ck.metadata[k] for k in _META_KEYS if k in ck.metadata}
        else:
            ck = None
            model_cfg, tcfg = _configs(stage, config, init_from, spec, options.model_overrides)
            if options.train_overrides:
                tcfg = TrainConfig.from_dict({**tcfg.to_dict(), **options.train_overrides})
            tcfg = _cli_overrides(tcfg, options)
            loop = dataclasses.replace(_loop_config(tcfg), find_unused=stage == "dub")
            opts = DatasetOptions(
                video=stage == "dub",
                max_tokens=min(MAX_ITEM_TOKENS, tcfg.batch_tokens),
                prompt_min_frac=model_cfg.prompt_min_frac,
                prompt_max_frac=model_cfg.prompt_max_frac,
                seed=tcfg.seed,
            )
            torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
            model = _initial_model(stage, model_cfg, init_from)
            meta = {
                "stage": stage,
                "model_config": model_cfg.to_dict(),
                "train_config": tcfg.to_dict(),
                "dataset_options": dataclasses.asdict(opts),
                "features": {
                    "version": spec.features_version,
                    "lip_dim": spec.lip_dim,
                    "face_dim": spec.face_dim,
                },  # fmt: skip
                "data": str(root),
                "init_from": str(init_from) if init_from is not None else None,
            }
            if info.is_main:
                _start_run(run, root, meta, options.force)
        D.barrier()
        train_set = DubDataset(root, splits["train"], opts)
        valid_set = None
        if splits["valid"]:
            valid_opts = dataclasses.replace(opts, random_crop=False)
            valid_set = DubDataset(root, splits["valid"], valid_opts)
        res = fit(model, FitData(train_set, collate, valid_set), run, loop, device=dev, resume=ck,
                  metadata=meta, on_step=on_step, progress=progress)  # fmt: skip
        exported = None
        if options.export is not None and info.is_main:
            exported = export_inference(run, options.export)
            log.info("exported %s", exported)
        D.barrier()
        return TrainResult(run, stage, res.step, res.checkpoint, exported, res.train_loss,
                           res.valid_loss, res.seconds)  # fmt: skip
    finally:
        D.shutdown_distributed(started)


_META_KEYS = ("stage", "model_config", "train_config", "dataset_options", "features", "data",
              "init_from")  # fmt: skip


def _check_output(run: Path, resume: bool, force: bool) -> None:
    if run.exists() and not run.is_dir():
        raise OutputError(f"{run}: exists and is not a folder")
    if resume:
        if not (run / "last.safetensors").is_file():
            raise CheckpointError(
                f"{run}: nothing to resume (no last.safetensors); drop --resume or use --force"
            )
        return
    if run.is_dir() and any(run.iterdir()) and not force:
        raise OutputError(
            f"{run}: already exists (use --resume to continue it or --force to start over)"
        )


def _start_run(run: Path, root: Path, meta: dict[str, Any], force: bool) -> None:
    """Clear a forced-over run's files (ours only), copy the codec, write run.json."""
    from dubcli import __version__
    from dubcli.data.manifest import CODEC_FILE
    from dubcli.fsutil import atomic_path, atomic_write_text

    try:
        run.mkdir(parents=True, exist_ok=True)
        if force:
            for p in list(run.glob("ckpt-*.safetensors")) + [run / f for f in _RUN_FILES]:
                p.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"{run}: cannot prepare the run folder ({exc.strerror or exc})") from exc
    if (root / CODEC_FILE).is_file():
        with atomic_path(run / CODEC_FILE) as tmp:
            shutil.copyfile(root / CODEC_FILE, tmp)
    else:
        log.warning("%s: no %s; this run cannot be exported", root, CODEC_FILE)
    body = {**meta, "dubcli_version": __version__}
    atomic_write_text(run / RUN_JSON, json.dumps(body, indent=2, sort_keys=True) + "\n")


def _data_spec(root: Path, utts, stage: str):
    from dubcli.data.dataset import describe_data
    from dubcli.text.phonemes import VOCAB_VERSION
    from dubcli.vision.features import check_features_version

    spec = describe_data(root, utts)
    if spec.phoneme_vocab_version not in (None, VOCAB_VERSION):
        raise InputError(
            f"{root}: phonemes are '{spec.phoneme_vocab_version}', this dubcli uses "
            f"'{VOCAB_VERSION}'; re-run dubcli prepare"
        )
    if stage == "dub":
        if spec.lip_dim is None or spec.face_dim is None:
            raise InputError(f"{root}: no lip/face features; stage dub needs a video dataset")
        check_features_version(str(spec.features_version), str(root / "dataset.json"))
    return spec


def _fit_data(cfg, spec, where: str):
    """The model config with the data's token vocabulary and feature widths."""
    data = {"vocab": spec.vocab, "speaker_dim": spec.speaker_dim}
    if spec.lip_dim is not None:
        data.update(lip_dim=spec.lip_dim, face_dim=spec.face_dim)
    changed = {k: v for k, v in data.items() if getattr(cfg, k) != v}
    if changed:
        log.info("%s: model sized to the data: %s", where, changed)
    return dataclasses.replace(cfg, **changed)


def _configs(stage, config, init_from, spec, overrides):
    from dubcli.config import ModelConfig, load_config, load_train_config, train_preset

    if stage == "dub" and config is None and init_from is not None:
        base = _stage1_meta(init_from)["model_config"]
        try:
            model_cfg = ModelConfig.from_dict({**base, **dict(overrides or {})})
        except InputError as exc:
            raise CheckpointError(f"{init_from}: stage-1 model config: {exc}") from exc
    else:
        model_cfg = load_config("small" if config is None else config, overrides)
    model_cfg = _fit_data(model_cfg, spec, str(config or model_cfg.name))
    if stage == "dub" and init_from is None and not model_cfg.no_pretraining:
        raise InputError("--stage dub needs --init-from (a stage-1 run or checkpoint)")
    path = Path(str(config)) if config is not None else None
    if path is not None and path.suffix == ".toml" and _has_train_table(path):
        tcfg = load_train_config(path)
    else:
        name = TRAIN_PRESET_FOR.get((model_cfg.name, stage), f"{stage}-small")
        tcfg = train_preset(name)
    return model_cfg, dataclasses.replace(tcfg, stage=stage)


def _has_train_table(path: Path) -> bool:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return "train" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read the config file ({exc})") from exc


def _cli_overrides(tcfg, options: TrainOptions):
    """Command-line values over the preset. Only --epochs: no step limit; only --steps: none
    on epochs (TrainConfig: 0 = no limit)."""
    steps, epochs = options.steps, options.epochs
    batch_tokens, lr, seed = options.batch_tokens, options.lr, options.seed
    values: dict[str, Any] = {}
    if steps is not None or epochs is not None:
        values["steps"] = 0 if steps is None else steps
        values["epochs"] = 0 if epochs is None else epochs
    for k, v in (("batch_tokens", batch_tokens), ("lr", lr), ("seed", seed)):
        if v is not None:
            values[k] = v
    try:
        return dataclasses.replace(tcfg, **values) if values else tcfg
    except ValueError as exc:
        raise InputError(f"train options: {exc}") from None


def _loop_config(t):
    from dubcli.train.loop import LoopConfig

    return LoopConfig(
        steps=None if t.steps == 0 else t.steps,
        epochs=None if t.epochs == 0 else t.epochs,
        lr=t.lr, weight_decay=t.weight_decay, betas=tuple(t.betas), eps=t.eps,
        warmup_ratio=t.warmup_ratio, schedule="cosine", min_lr_ratio=t.min_lr_ratio,
        grad_clip=t.grad_clip, ema_decay=t.ema_decay, batch_tokens=t.batch_tokens,
        max_items=t.max_batch_items, valid_every=t.eval_every, ckpt_every=t.ckpt_every,
        keep_last=t.keep_last_k, log_every=t.log_every, seed=t.seed, amp=t.amp == "bf16",
        num_workers=t.num_workers,
    )  # fmt: skip


def _with_limits(loop, steps, epochs):
    """On resume the stored loop config rules; new limits extend (or shorten) the run, which
    changes the learning-rate schedule from here on (the same limits given again change
    nothing, and say nothing)."""
    if steps is None and epochs is None:
        return loop
    if (steps, epochs) == (loop.steps, loop.epochs):
        return loop
    log.warning("new step/epoch limits on resume (steps %s -> %s, epochs %s -> %s): the "
                "learning-rate schedule changes", loop.steps, steps, loop.epochs, epochs)  # fmt: skip
    return dataclasses.replace(loop, steps=steps, epochs=epochs)


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}


def _stage1_path(init_from) -> Path:
    p = Path(init_from)
    if p.is_dir():
        p = p / "last.safetensors"
    if not p.is_file():
        raise CheckpointError(f"{init_from}: no stage-1 checkpoint there")
    return p


def _stage1_meta(init_from) -> dict[str, Any]:
    from dubcli.checkpoint import read_metadata

    meta = read_metadata(_stage1_path(init_from))
    if meta.get("stage") != "tts" or not isinstance(meta.get("model_config"), dict):
        raise CheckpointError(f"{init_from}: not a stage-1 (tts) run or checkpoint")
    return meta


def _initial_model(stage: str, cfg, init_from):
    """Stage 1: fresh. Stage 2: DiFlowDubber.from_tts(stage-1 model) (EMA weights if kept)."""
    from dubcli.model.dubber import DiFlowDubber, build_model

    if stage == "tts" or cfg.no_pretraining:
        if init_from is not None:
            log.warning("--init-from is ignored for this stage/config")
        return build_model(cfg, stage)
    path = _stage1_path(init_from)
    meta = _stage1_meta(init_from)
    from dubcli.model.loading import EXPORT_KIND, load_inference_model, rebuild_model
    from dubcli.train.state import load_train_checkpoint

    if meta.get("kind") == EXPORT_KIND:
        tts = load_inference_model(path).model
    else:
        ck = load_train_checkpoint(path)
        tts = rebuild_model("tts", meta["model_config"], str(path))
        tts.load_state_dict({**ck.model, **ck.ema})
    if tts.cfg.vocab != cfg.vocab or tts.cfg.speaker_dim != cfg.speaker_dim:
        raise CheckpointError(
            f"{path}: stage 1 was trained on other tokens (vocab {tts.cfg.vocab}, speaker "
            f"{tts.cfg.speaker_dim}) than this dataset's ({cfg.vocab}, {cfg.speaker_dim})"
        )
    try:
        return DiFlowDubber.from_tts(tts, cfg)
    except ValueError as exc:
        raise CheckpointError(
            f"{path}: stage-1 model '{tts.cfg.name}' does not fit config '{cfg.name}' ({exc}); "
            "leave --config out to use the stage-1 config"
        ) from exc
