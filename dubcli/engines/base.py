"""The engine contract: one cue in (text, phonemes, window, visual features, voice), speech out.

Dimensions: n samples (16 kHz mono), nv video frames in the window (25 fps), Dl lip feature width
(vision.features.LIP_DIM), Df face feature width (FACE_DIM).

The engines (diflow.py, baseline.py) and the choice between them (choose.py) build on this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


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


def uses_all_cores(engine: Engine) -> bool:
    """True when the engine's own work keeps every CPU core busy (the model on the CPU), so cue
    preparation beside it should take one thread, not one per core. Engines say so with a
    `uses_all_cores` attribute; without one, False (e.g. the baseline: one process at a time)."""
    return bool(getattr(engine, "uses_all_cores", False))


def synthesize_many(engine: Engine, jobs: Sequence[CueJob]) -> list[CueAudio]:
    """The engine's `synthesize_many` (batched: one cue's audio must not depend on the others
    in its batch) when it has one, else one `synthesize_cue` per job."""
    many = getattr(engine, "synthesize_many", None)
    if many is not None:
        return list(many(list(jobs)))
    return [engine.synthesize_cue(j) for j in jobs]
