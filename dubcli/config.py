"""Model and training configurations: frozen dataclasses, named presets, TOML overrides.

DESIGN 5 and 10: `tiny` (tests, < 1M parameters), `small` (the CPU-trainable default),
`paper` (papers/diflowdubber.txt B.2). Files and command lines only override fields of a preset;
every override is applied by key presence (`dataclasses.replace`), never by `a or b`, so a
falsy value (0, 0.0, False, "") is kept as given.

Values the text extraction of the paper lost are marked "lost" with the default we chose.
A config file is TOML: top-level keys are fields, `preset = "small"` picks the base (default
"small" / "tts-small"); a file may instead hold `[model]` and `[train]` tables (one run file).
Nothing heavy is imported here: the CLI imports this module at startup.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from dubcli.errors import InputError
from dubcli.text.phonemes import VOCAB_SIZE

# The sampler's temperature when the caller gives none (`--temperature`): softmax(logits / T) at
# every unmasking step of generation; 0 = argmax. Chosen by measurement: README "The default model".
DEFAULT_TEMPERATURE = 1.0

T = TypeVar("T")

DFPA_LATENTS = ("ccta", "text")  # ModelConfig.dfpa_latent choices


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, loss weights and ablation switches of DiFlowTTS (stage 1) + DiFlowDubber."""

    name: str = "paper"  # preset this config started from (the class defaults are B.2's values)

    # --- speech tokens (3.2, B.1) and other inputs -------------------------------------------
    n_prosody: int = 1  # prosody codebooks N_p (B.1)
    n_content: int = 2  # content codebooks N_c
    n_acoustic: int = 3  # acoustic codebooks N_a
    vocab: int = 1024  # codes per codebook V (B.1); the DFM MASK id is V
    speaker_dim: int = 256  # codec speaker embedding width D (B.2.1: 256 for FACodec)
    phoneme_vocab: int = VOCAB_SIZE  # dubcli.text.phonemes ids (PAD 0, CTC blank 1)
    lip_dim: int = 100  # Dl, dubcli.vision.features.LIP_DIM for the landmark extractor
    face_dim: int = 30  # Df, dubcli.vision.features.FACE_DIM

    # --- content model (3.3, B.2.1): FFT blocks of width 256, filter 1024, 4 heads ------------
    text_dim: int = 256  # FFT hidden width (phoneme encoder, decoder, content predictor)
    text_heads: int = 4  # FFT attention heads
    text_ff: int = 1024  # FFT conv filter width
    text_kernels: tuple[int, int] = (9, 1)  # FFT conv kernels: lost, FastSpeech 2's (9, 1)
    encoder_layers: int = 4  # phoneme encoder FFT blocks: not given, FastSpeech 2's 4
    decoder_layers: int = 2  # FFT blocks after the length regulator (B.2.1: 2)
    content_dim: int = 768  # content latent z_c width (B.2.1 "output dimension of 768")
    duration_filter: int = 256  # duration predictor conv width (FastSpeech 2 [49])
    duration_kernel: int = 3  # duration predictor conv kernel (FastSpeech 2)
    duration_dropout: float = 0.5  # duration predictor dropout (FastSpeech 2)
    dropout: float = 0.2  # FFT / cross-attention block dropout (B.2.1: 0.2)

    # --- DFPA denoiser (3.3, B.2.1): DiT 8 x 768 x 8 heads, RoPE, adaLN-zero, long skip -------
    dit_dim: int = 768  # DiT width d
    dit_layers: int = 8  # DiT blocks
    dit_heads: int = 8  # DiT attention heads
    dit_mlp_ratio: float = 4.0  # DiT MLP width / d (DiT default)
    dit_dropout: float = 0.1  # not given; F5-TTS's DiT uses 0.1
    token_emb_dim: int = 256  # width e of each per-codebook token embedder (not given)
    dfm_exponent: float = 1.0  # kappa_t = t^n; the paper's n is lost ("we set ."): linear
    prompt_min_frac: float = 0.15  # training prompt length / target length, lower bound
    prompt_max_frac: float = 0.4  # ... upper bound (see model/batch.py make_prompt)

    # --- FaPro (3.4.1, B.2.2) ------------------------------------------------------------------
    fapro_dim: int = 256  # shared space / upsampler / ConvNeXt width (B.2.2: 256)
    fapro_convnext_layers: int = 8  # ConvNeXt V2 blocks (B.2.2: 8)
    fapro_convnext_inter: int = 1024  # ConvNeXt V2 intermediate width (B.2.2: 1024)
    fapro_heads: int = 4  # prosody predictor FFT heads (B.2.2: 4)
    fapro_ff: int = 1024  # prosody predictor FFT filter (B.2.2: expansion ratio 4)
    upsample_convs: int = 4  # interp-conv upsampler conv sets (B.2.2: 4)
    video_conv_kernel: int = 3  # 1D conv mapping lip/face feats to the shared space (3.2)

    # --- Synchronizer (3.4.2, B.2.2): 8 + 8 blocks, width 256, 4 heads, intermediate 1024 -----
    sync_dim: int = 256  # Synchronizer width
    sync_video_layers: int = 8  # lip -> phoneme cross-attention blocks
    sync_speech_layers: int = 8  # speech -> phoneme cross-attention blocks
    sync_heads: int = 4  # cross-attention heads
    sync_ff: int = 1024  # block intermediate width
    sync_convnext_layers: int = 8  # refinement ConvNeXt V2 blocks (as FaPro's)
    sync_convnext_inter: int = 1024  # refinement ConvNeXt V2 intermediate width
    tau_video: float = 1.0  # eq. 2 temperature: lost; 1 keeps the attention's own logits
    tau_speech: float = 1.0  # eq. 4 temperature: lost; 1 as above

    # --- stage-1 loss weights (eq. 9; values lost, plain sum) ----------------------------------
    w1_duration: float = 1.0  # log-duration MSE
    w1_content: float = 1.0  # content CE
    w1_dfm: float = 1.0  # DFM CE (eq. 1)

    # --- stage-2 loss weights (eq. 7; values lost) ---------------------------------------------
    w2_dfm: float = 1.0  # DFM CE (eq. 1)
    w2_content: float = 1.0  # content CE (eq. 6)
    w2_distill: float = 1.0  # cosine distillation (eq. 5)
    w2_align_video: float = 1.0  # lip-phoneme contrastive alignment (eq. 2)
    w2_align_speech: float = 1.0  # speech-phoneme contrastive alignment (eq. 4)
    w2_ctc: float = 0.1  # auxiliary CTC on the Synchronizer output (3.5)
    w2_prosody_prior: float = 0.0  # NOT in eq. 7: prosody CE on FaPro's prior (small/tiny: 0.1)

    # --- ablations (Table 3; all False = row 1) ------------------------------------------------
    no_pretraining: bool = False  # row 2: stage 2 from scratch (no teacher, no distillation)
    no_alignment_losses: bool = False  # row 3: neither eq. 2 nor eq. 4
    no_video_text_loss: bool = False  # row 4/5: drop eq. 2
    no_speech_text_loss: bool = False  # row 4/5: drop eq. 4
    no_distillation: bool = False  # row 6: drop eq. 5
    no_ctc: bool = False  # row 7 (its symbol is lost; the text describes the CTC term)
    no_content_ce: bool = False  # drop eq. 6 (not a Table 3 row; for completeness)
    no_prosody_fusion: bool = False  # row 8: CCTA does not fuse the global prosody prior
    no_fapro: bool = False  # row 9: no FaPro at all (no prior in CCTA nor in DFPA)

    # --- stage-2 DFPA condition (a deviation for short schedules; "ccta" = the paper) --------
    # "ccta": the DFPA is conditioned on the CCTA student's z_c (3.4.3). "text": on the frozen
    # stage-1 content model's z_c, length-regulated by ground-truth token durations in training
    # and by the Synchronizer's MAS spans at generation, so the DFPA keeps the condition it was
    # pre-trained on; the lips still set the timing. With a few hundred CPU steps the student's
    # z_c drifts from the teacher's and intelligibility drops (README "The default model").
    dfpa_latent: str = "ccta"

    def __post_init__(self):
        for k in ("text_dim", "text_heads"), ("dit_dim", "dit_heads"), ("sync_dim", "sync_heads"):
            width, heads = getattr(self, k[0]), getattr(self, k[1])
            if heads < 1 or width % heads:
                raise ValueError(f"{k[0]}={width} is not divisible by {k[1]}={heads}")
        if (self.dit_dim // self.dit_heads) % 2:
            raise ValueError(f"DiT head width {self.dit_dim // self.dit_heads} must be even (RoPE)")
        if self.fapro_dim % self.fapro_heads:
            raise ValueError(f"fapro_dim={self.fapro_dim} not divisible by {self.fapro_heads}")
        if (self.sync_dim // self.sync_heads) % 2:
            raise ValueError("Synchronizer head width must be even (RoPE in its self-attention)")
        for name in ("n_prosody", "n_content", "n_acoustic", "vocab", "speaker_dim",
                     "phoneme_vocab", "lip_dim", "face_dim", "encoder_layers", "decoder_layers",
                     "dit_layers", "sync_video_layers", "sync_speech_layers", "token_emb_dim"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.prompt_min_frac <= self.prompt_max_frac < 1:
            raise ValueError("need 0 < prompt_min_frac <= prompt_max_frac < 1")
        if self.dfm_exponent <= 0 or self.tau_video <= 0 or self.tau_speech <= 0:
            raise ValueError("dfm_exponent, tau_video and tau_speech must be > 0")
        if self.dfpa_latent not in DFPA_LATENTS:
            raise ValueError(f"dfpa_latent must be one of {DFPA_LATENTS}, got {self.dfpa_latent!r}")
        if self.dfpa_latent == "text" and self.no_pretraining:
            raise ValueError("dfpa_latent='text' needs the stage-1 content model (no_pretraining)")
        if any(k % 2 == 0 for k in self.text_kernels):
            raise ValueError(f"text_kernels must be odd, got {self.text_kernels}")

    @property
    def n_dfm_streams(self) -> int:
        """Streams the DFPA generates: prosody + acoustic (B.2.1: 1 + 3)."""
        return self.n_prosody + self.n_acoustic

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        return _from_dict(cls, data, "model config")


def _model_presets() -> dict[str, ModelConfig]:
    paper = ModelConfig()
    small = ModelConfig(
        name="small", text_dim=128, text_heads=2, text_ff=512, text_kernels=(5, 1),
        encoder_layers=3, content_dim=256, duration_filter=128, dropout=0.1,
        dit_dim=256, dit_layers=5, dit_heads=4, token_emb_dim=128, fapro_dim=128,
        fapro_convnext_layers=3, fapro_convnext_inter=384, fapro_heads=2, fapro_ff=512,
        sync_dim=128, sync_video_layers=3, sync_speech_layers=3, sync_heads=2, sync_ff=512,
        sync_convnext_layers=3, sync_convnext_inter=384, w2_prosody_prior=0.1,
    )  # fmt: skip
    tiny = ModelConfig(
        name="tiny", vocab=32, speaker_dim=16, text_dim=32, text_heads=2, text_ff=64,
        text_kernels=(3, 1), encoder_layers=1, content_dim=32, duration_filter=32,
        duration_dropout=0.0, dropout=0.0, dit_dim=64, dit_layers=2, dit_heads=2,
        dit_dropout=0.0, token_emb_dim=16, fapro_dim=32, fapro_convnext_layers=1,
        fapro_convnext_inter=64, fapro_heads=2, fapro_ff=64, upsample_convs=2, sync_dim=32,
        sync_video_layers=1, sync_speech_layers=1, sync_heads=2, sync_ff=64,
        sync_convnext_layers=1, sync_convnext_inter=64, w2_prosody_prior=0.1,
    )  # fmt: skip
    return {"tiny": tiny, "small": small, "paper": paper}


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, batching and bookkeeping for one training stage (B.3)."""

    name: str = "tts-small"  # preset this config started from
    stage: str = "tts"  # "tts" (stage 1, eq. 9) or "dub" (stage 2, eq. 7)
    lr: float = 3e-4  # peak AdamW learning rate (B.3's values are lost)
    warmup_ratio: float = 0.10  # linear warm-up share of the total steps (B.3: 10% / 5%)
    min_lr_ratio: float = 0.1  # cosine decay floor after warm-up, as a share of lr
    weight_decay: float = 0.01  # AdamW decoupled weight decay (B.3)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (not given; transformer-TTS usual)
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping
    batch_tokens: int = 4000  # max summed target tokens per batch (dynamic batching)
    max_batch_items: int = 16  # max utterances per batch (B.3: 16; GRID stage 2: 64)
    steps: int = 20_000  # optimizer steps; 0 = no step limit (then epochs must be > 0)
    epochs: int = 0  # passes over the data; 0 = no epoch limit (then steps must be > 0)
    eval_every: int = 1000  # steps between validation runs; 0 = never
    ckpt_every: int = 1000  # steps between checkpoints; 0 = only at the end
    keep_last_k: int = 3  # step checkpoints kept on disk (the best and final are extra)
    log_every: int = 50  # steps between log lines
    amp: str = "bf16"  # "bf16" autocast where the device supports it, or "none"
    ema_decay: float = 0.0  # EMA of weights for evaluation/export; 0 = off
    seed: int = 0  # global seed (data order, prompt cutting, DFM noise)
    num_workers: int = 2  # data loader worker processes

    def __post_init__(self):
        if self.stage not in ("tts", "dub"):
            raise ValueError(f"stage must be 'tts' or 'dub', got {self.stage!r}")
        if self.amp not in ("bf16", "none"):
            raise ValueError(f"amp must be 'bf16' or 'none', got {self.amp!r}")
        if self.steps < 0 or self.epochs < 0 or (self.steps == 0 and self.epochs == 0):
            raise ValueError("set steps > 0 or epochs > 0 (0 means no limit for that one)")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("warmup_ratio and ema_decay must lie in [0, 1)")
        if self.lr <= 0 or self.batch_tokens < 1 or self.max_batch_items < 1:
            raise ValueError("lr, batch_tokens and max_batch_items must be positive")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        return _from_dict(cls, data, "train config")


def _train_presets() -> dict[str, TrainConfig]:
    return {
        # B.3 stage 1: LibriTTS, batch 16, 300k steps, 10% warm-up, weight decay 0.01.
        "tts": TrainConfig(name="tts", stage="tts", lr=1e-4, warmup_ratio=0.10, steps=300_000,
                           batch_tokens=8000, max_batch_items=16, eval_every=5000,
                           ckpt_every=5000),
        # B.3 stage 2: Chem batch 16 x 150 epochs, GRID batch 64 x 200 epochs, 5% warm-up.
        "dub-chem": TrainConfig(name="dub-chem", stage="dub", lr=1e-4, warmup_ratio=0.05,
                                steps=0, epochs=150, batch_tokens=8000, max_batch_items=16),
        "dub-grid": TrainConfig(name="dub-grid", stage="dub", lr=1e-4, warmup_ratio=0.05,
                                steps=0, epochs=200, batch_tokens=16000, max_batch_items=64),
        # Sized for the `small` model on SynthDub: a stage in a few CPU hours / GPU minutes.
        "tts-small": TrainConfig(name="tts-small", stage="tts"),
        "dub-small": TrainConfig(name="dub-small", stage="dub", warmup_ratio=0.05, lr=2e-4,
                                 steps=10_000),
        # Tests and smoke runs.
        "tiny": TrainConfig(name="tiny", stage="tts", lr=1e-3, warmup_ratio=0.0, steps=20,
                            batch_tokens=2000, max_batch_items=4, eval_every=10, ckpt_every=10,
                            log_every=5, amp="none", num_workers=0),
    }  # fmt: skip


MODEL_PRESETS = tuple(_model_presets())  # ("tiny", "small", "paper")
TRAIN_PRESETS = tuple(_train_presets())


def model_preset(name: str) -> ModelConfig:
    presets = _model_presets()
    if name not in presets:
        raise InputError(f"unknown model preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]


def train_preset(name: str) -> TrainConfig:
    presets = _train_presets()
    if name not in presets:
        raise InputError(f"unknown train preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]


Overrides = Mapping[str, Any] | Sequence[str] | None


def load_config(name_or_path: str | Path, overrides: Overrides = None) -> ModelConfig:
    """A model preset name or a TOML file, then `overrides` (a mapping, or "key=value" strings).

    The file may hold fields at top level or in a [model] table; `preset` names its base.
    """
    return _load(ModelConfig, _model_presets(), "small", "model", name_or_path, overrides)


def load_train_config(name_or_path: str | Path, overrides: Overrides = None) -> TrainConfig:
    """A train preset name or a TOML file ([train] table or top level), then `overrides`."""
    return _load(TrainConfig, _train_presets(), "tts-small", "train", name_or_path, overrides)


# --- helpers ----------------------------------------------------------------------------------


def _to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON/TOML-able dict (tuples become lists)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in fields(cfg)}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The dataclass's resolved annotations, once per class: get_type_hints compiles every
    string annotation on each call (0.35 s of a model load for the ~130 config fields, 2 loads,
    measured under cProfile)."""
    return typing.get_type_hints(cls)


def _coerce(cls: type, key: str, value: Any, where: str) -> Any:
    """Check/convert one value against the field's annotation; errors name `where` and key."""
    hints = _field_types(cls)
    if key not in hints:
        known = ", ".join(sorted(hints))
        raise InputError(f"{where}: unknown field {key!r} (known: {known})")
    typ = hints[key]
    origin = typing.get_origin(typ)
    try:
        if origin is tuple:
            args = typing.get_args(typ)
            if not isinstance(value, (list, tuple)) or len(value) != len(args):
                raise TypeError(f"expected a list of {len(args)} values")
            return tuple(_scalar(a, v) for a, v in zip(args, value, strict=True))
        if origin in (typing.Union, types.UnionType):
            raise TypeError("union fields are not supported")
        return _scalar(typ, value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: field {key!r} = {value!r}: {e}") from None


def _scalar(typ: Any, value: Any) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("expected true or false")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("expected a number")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    raise TypeError(f"unsupported field type {typ}")


def _from_dict(cls: type[T], data: Mapping[str, Any], where: str, base: T | None = None) -> T:
    """Build cls from `base` (default: the class defaults) with `data` applied by key presence."""
    values = {k: _coerce(cls, k, v, where) for k, v in data.items()}
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def _parse_overrides(overrides: Overrides, where: str) -> dict[str, Any]:
    """A mapping as is; "key=value" strings parsed as TOML values (bare words as strings)."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    tomllib = _tomllib()
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise InputError(f"{where}: override {item!r} is not key=value")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out


def _load(cls, presets, default_preset, table, name_or_path, overrides):
    source = str(name_or_path)
    if source in presets:
        base, data, where = presets[source], {}, f"{table} preset {source!r}"
    else:
        path = Path(source)
        if not path.suffix == ".toml" and not path.exists():
            known = ", ".join(presets)
            raise InputError(f"{source}: not a {table} preset ({known}) nor a TOML file")
        data, where = _read_toml(path, table), str(path)
        preset = data.pop("preset", default_preset)
        if preset not in presets:
            raise InputError(
                f"{path}: unknown preset {preset!r}; choose one of {', '.join(presets)}"
            )
        base = presets[preset]
    cfg = _from_dict(cls, data, where, base)
    over = _parse_overrides(overrides, "overrides")
    return _from_dict(cls, over, "overrides", cfg) if over else cfg


def _read_toml(path: Path, table: str) -> dict[str, Any]:
    tomllib = _tomllib()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read config file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML ({e})") from None
    if "model" in data or "train" in data:  # a run file with tables: take ours only
        section = data.get(table, {})
        if not isinstance(section, dict):
            raise InputError(f"{path}: [{table}] must be a table")
        return dict(section)
    return data


def _tomllib():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib
