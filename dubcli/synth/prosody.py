"""Prosody styles: the numbers every SynthDub utterance records (DESIGN 6).

The face generator couples expressions (brows, eyes, smile, head motion) to these numbers, so
each utterance stores the numeric parameters it was rendered with, not only the style's name.
Every style is a centre; `sample_style` jitters it per utterance so the values are continuous.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProsodyStyle:
    name: str  # neutral | excited | calm | sad: the centre this instance was drawn around
    pitch_level: float  # semitones added to the voice's F0 contour (0 = the voice's own level)
    pitch_range: float  # factor on log-F0 excursions around the utterance mean (1 = unchanged)
    rate: float  # speaking rate factor: phone durations are divided by it (>1 = faster)
    energy: float  # loudness in dB relative to the reference level (speech RMS at -26 dBFS)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProsodyStyle:
        return cls(
            name=str(d["name"]),
            pitch_level=float(d["pitch_level"]),
            pitch_range=float(d["pitch_range"]),
            rate=float(d["rate"]),
            energy=float(d["energy"]),
        )


# The centres. Directions follow the usual acoustic correlates of arousal/valence: excited is
# higher, wider, faster and louder; sad lower, flatter, slower and softer; calm in between.
STYLES: dict[str, ProsodyStyle] = {
    "neutral": ProsodyStyle("neutral", 0.0, 1.0, 1.0, 0.0),
    "excited": ProsodyStyle("excited", 3.0, 1.5, 1.15, 4.0),
    "calm": ProsodyStyle("calm", -1.0, 0.75, 0.88, -3.0),
    "sad": ProsodyStyle("sad", -2.5, 0.55, 0.8, -6.0),
}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)


def sample_style(name: str, rng: np.random.Generator, spread: float = 1.0) -> ProsodyStyle:
    """A per-utterance instance of style `name`: the centre plus small seeded jitter.

    The jitter (about a third of the gap between neighbouring centres) keeps styles separable
    while giving the face generator a continuous signal; spread=0 returns the centre.
    """
    c = STYLES[name]
    j = rng.normal(size=4) * spread
    return ProsodyStyle(
        name=name,
        pitch_level=round(c.pitch_level + 0.5 * j[0], 3),
        pitch_range=round(c.pitch_range * math.exp(0.08 * j[1]), 3),
        rate=round(c.rate * math.exp(0.03 * j[2]), 3),
        energy=round(c.energy + 0.8 * j[3], 3),
    )
