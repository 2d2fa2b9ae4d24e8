"""The engine contract: one cue in (text, phonemes, window, visual features, voice), speech out.

Dimensions: n samples (16 kHz mono), nv video frames in the window (25 fps), Dl lip feature width
(vision.features.LIP_DIM), Df face feature width (FACE_DIM).

Engines by name (`--engine`):
- diflow: DiFlowDubber (paper section 3): speech tokens fixed by the window's video frames
  (n = tokens_for_frames(nv), timing.py), lips -> phoneme timing, face -> prosody. Needs a
  checkpoint (weights/registry.toml default or --checkpoint).
- baseline: espeak-ng speech fitted into the window by WORLD time-stretching and converted toward
  the reference voice's pitch and spectral envelope; the practical tools' approach, kept as a
  comparison point and a fallback that needs no model.
Default (no --engine): diflow when a checkpoint is given or registered as the default, else
baseline with a message saying why. A registry that exists but is invalid (a `default` that
names no entry, bad TOML) is a CheckpointError, not a quiet fall-back to the baseline.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from dubcli.errors import CheckpointError, InputError

ENGINES: dict[str, str] = {
    "diflow": "dubcli.dubbing.diflow:DiFlowEngine",
    "baseline": "dubcli.dubbing.baseline:BaselineEngine",
}


@dataclass(frozen=True)
class CueJob:
    index: int  # the cue's number in the subtitle file
    text: str  # what to say
    phonemes: tuple[str, ...]  # text/phonemes.py symbols for `text`
    start: float  # window, seconds in the video
    end: float
    nv: int  # video frames in the window at 25 fps
    lip: np.ndarray | None  # (nv, Dl) float32, None when no face was found in the window
    face: np.ndarray | None  # (nv, Df) float32, None when no face was found
    reference: np.ndarray  # (n_ref,) float32 16 kHz mono: the voice to speak in
    reference_id: str  # stable identity of `reference` (engines may cache per voice)
    speaker: str | None = None
    seed: int = 0
    nfe: int = 8  # flow-matching steps (diflow)
    meta: dict = field(default_factory=dict, compare=False)  # anything engine-specific

    def __post_init__(self):
        for name, arr in (("lip", self.lip), ("face", self.face)):
            if arr is not None:
                assert arr.ndim == 2 and arr.shape[0] == self.nv, (
                    f"cue {self.index}: {name} is {arr.shape}, expected ({self.nv}, D)"
                )

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class CueAudio:
    wav: np.ndarray  # (n,) float32 at 16 kHz, starting at the window start
    stretch: float | None = None  # baseline: speed factor applied (> 1 = faster than espeak's)
    tokens: int | None = None  # diflow: speech tokens generated
    natural_seconds: float | None = None  # baseline: espeak's own length before fitting
    model_seconds: float | None = None  # diflow: token generation alone (the paper's RTF basis)
    notes: tuple[str, ...] = ()


@runtime_checkable
class Engine(Protocol):
    name: str

    def fingerprint(self) -> str:
        """What makes this engine's output differ (version, checkpoint hash): cache key part."""
        ...

    def synthesize_cue(self, job: CueJob) -> CueAudio: ...


def available_engines() -> list[str]:
    """Engine names whose module is present in this install."""
    out = []
    for name, target in ENGINES.items():
        module = target.partition(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def choose_engine(name: str | None, checkpoint: str | None) -> tuple[str, str | None]:
    """(engine name, message for the user or None). See module doc for the default rule."""
    from dubcli.hub import list_registry, registry_file

    if name is not None and name not in ENGINES:
        raise InputError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    if name == "baseline" or checkpoint is not None:
        return name or "diflow", None
    if not registry_file().exists():
        has_default = False
    else:
        try:
            has_default = any(e.default for e in list_registry())
        except CheckpointError as exc:
            raise CheckpointError(f"{exc.message}; fix the registry, pass --checkpoint, or use "
                                  "--engine baseline") from exc  # fmt: skip
    if name == "diflow" and not has_default:
        raise CheckpointError(
            f"--engine diflow: no default checkpoint is registered yet ({registry_file()}); "
            "pass --checkpoint NAME|PATH|hf://org/repo/file.safetensors"
        )
    if name == "diflow" or (has_default and "diflow" in available_engines()):
        return "diflow", None
    return "baseline", (
        f"no DiFlowDubber checkpoint is registered yet ({registry_file()} has no default): "
        "using the baseline engine (espeak-ng + WORLD). Pass --engine diflow --checkpoint "
        "NAME|PATH|hf://... to dub with a model."
    )


def engine_identity(
    name: str, *, checkpoint: str | None = None, offline: bool = False, device: str = "auto"
) -> dict:
    """What of the engine changes a dub, known without building it: {"engine", "engine_id"} and
    for diflow the device type (the sampler's random numbers differ between CPU and CUDA).
    Resolving a diflow checkpoint hashes it (CheckpointError as create_engine would raise)."""
    if name == "baseline":
        from dubcli.dubbing.baseline import BaselineEngine

        return {"engine": name, "engine_id": BaselineEngine().fingerprint()}
    from dubcli.dubbing.diflow import checkpoint_identity
    from dubcli.inference import resolve_device

    return {"engine": name, "engine_id": checkpoint_identity(checkpoint, offline=offline),
            "device": resolve_device(device).type}  # fmt: skip


def create_engine(
    name: str, *, checkpoint: str | None = None, offline: bool = False, device: str = "auto"
) -> Engine:
    """Instantiate an engine; dependency/checkpoint problems raise their DubcliError here."""
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    module, _, cls = ENGINES[name].partition(":")
    if importlib.util.find_spec(module) is None:
        raise CheckpointError(
            f"engine {name!r} is not available in this install (no {module}); use --engine baseline"
        )
    key = (name, checkpoint, offline, device)
    if key not in _ENGINES_MADE:  # one per process: a batch loads a checkpoint once
        engine_cls = getattr(importlib.import_module(module), cls)
        if name == "baseline":
            _ENGINES_MADE[key] = engine_cls()
        else:
            _ENGINES_MADE[key] = engine_cls(checkpoint=checkpoint, offline=offline, device=device)
    return _ENGINES_MADE[key]


_ENGINES_MADE: dict[tuple, Engine] = {}
