"""Which engine dubs, and making one (engines are made once per process and reused).

Engines by name (`--engine`):
- diflow: DiFlowDubber (paper section 3): speech tokens fixed by the window's video frames
  (n = tokens_for_frames(nv), timing.py), lips -> phoneme timing, face -> prosody. Needs a
  checkpoint (dubcli/weights/registry.toml default or --checkpoint).
- baseline: espeak-ng speech fitted into the window by WORLD time-stretching and converted toward
  the reference voice's pitch and spectral envelope; the practical tools' approach, kept as a
  comparison point and a fallback that needs no model.
Default (no --engine): diflow when a checkpoint is given or registered as the default, else
baseline with a message saying why. A registry that exists but is invalid (a `default` that
names no entry, bad TOML) is a CheckpointError, not a quiet fall-back to the baseline.
"""

from __future__ import annotations

from dubcli.config import DEFAULT_TEMPERATURE
from dubcli.engines.base import Engine
from dubcli.errors import CheckpointError, InputError

ENGINES = ("diflow", "baseline")  # dubcli.engines.diflow, dubcli.engines.baseline


def available_engines() -> list[str]:
    """Engine names this install has (both ship with dubcli; kept for callers that ask)."""
    return list(ENGINES)


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
    if name == "diflow" or has_default:
        return "diflow", None
    return "baseline", (
        f"no DiFlowDubber checkpoint is registered yet ({registry_file()} has no default): "
        "using the baseline engine (espeak-ng + WORLD). Pass --engine diflow --checkpoint "
        "NAME|PATH|hf://... to dub with a model."
    )


def engine_identity(name: str, *, checkpoint: str | None = None, offline: bool = False,
                    device: str = "auto", temperature: float = DEFAULT_TEMPERATURE) -> dict:  # fmt: skip
    """What of the engine changes a dub, known without building it: {"engine", "engine_id"} and
    for diflow the device type (the sampler's random numbers differ between CPU and CUDA).
    Resolving a diflow checkpoint hashes it (CheckpointError as create_engine would raise)."""
    if name == "baseline":
        from dubcli.engines.baseline import BaselineEngine

        return {"engine": name, "engine_id": BaselineEngine().fingerprint()}
    from dubcli.device import resolve_device
    from dubcli.engines.diflow import checkpoint_identity

    ident = checkpoint_identity(checkpoint, offline=offline, temperature=temperature)
    return {"engine": name, "engine_id": ident, "device": resolve_device(device).type}


def create_engine(name: str, *, checkpoint: str | None = None, offline: bool = False,
                  device: str = "auto", temperature: float = DEFAULT_TEMPERATURE) -> Engine:  # fmt: skip
    """Instantiate an engine; dependency/checkpoint problems raise their DubcliError here."""
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    key = (name, checkpoint, offline, device, temperature if name == "diflow" else None)
    if key not in _ENGINES_MADE:  # one per process: a batch loads a checkpoint once
        if name == "baseline":
            from dubcli.engines.baseline import BaselineEngine

            _ENGINES_MADE[key] = BaselineEngine()
        else:
            from dubcli.engines.diflow import DiFlowEngine

            _ENGINES_MADE[key] = DiFlowEngine(checkpoint=checkpoint, offline=offline, device=device,
                                              temperature=temperature)  # fmt: skip
    return _ENGINES_MADE[key]


_ENGINES_MADE: dict[tuple, Engine] = {}
