"""SynthDub voices and speakers, and the fixed speaker split (DESIGN 6: test voices unseen).

A *voice* is a synthesizer voice (mbrola us1/us2/us3/en1, festival kal/ked/slt). A *speaker* is a
voice plus a WORLD-domain perturbation: a vocal-tract-length warp of the spectral envelope and an
F0 scale. Speaker ids spell both: "us2" (unperturbed) or "us2+vtl1.05+f0x0.9".

The split is fixed here, not drawn: us3 and ked (and every perturbation of them) appear only in
test, and so do the extreme warp/scale values on the training voices. Train and valid share the
training speakers (valid holds out text, not voices).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from dubcli.errors import InputError


@dataclass(frozen=True)
class VoiceInfo:
    name: str  # short voice name used in speaker ids
    engine: str  # "mbrola" | "festival"
    program_voice: str  # espeak-ng voice (mb-us1) or festival voice (kal_diphone)
    phone_set: str  # key of phonesets.PHONE_SETS
    gender: str  # "f" | "m" (of the unperturbed voice)
    accent: str  # "us" | "gb"
    test_only: bool  # reserved for the test split


VOICES: dict[str, VoiceInfo] = {
    v.name: v
    for v in (
        VoiceInfo("us1", "mbrola", "mb-us1", "mbrola-us", "f", "us", False),
        VoiceInfo("us2", "mbrola", "mb-us2", "mbrola-us", "m", "us", False),
        VoiceInfo("us3", "mbrola", "mb-us3", "mbrola-us", "m", "us", True),
        VoiceInfo("en1", "mbrola", "mb-en1", "mbrola-en1", "m", "gb", False),
        VoiceInfo("kal", "festival", "kal_diphone", "festival-radio", "m", "us", False),
        VoiceInfo("ked", "festival", "ked_diphone", "festival-radio", "m", "us", True),
        VoiceInfo("slt", "festival", "cmu_us_slt_arctic_hts", "festival-radio", "f", "us", False),
    )
}

# Perturbation grids. vtl > 1 shortens the vocal tract (formants move up); f0x scales F0.
TRAIN_VTL = (0.9, 0.95, 1.0, 1.05, 1.1)
TRAIN_F0X = (0.9, 1.0, 1.12)
TEST_VTL = (0.86, 1.15)  # only in test
TEST_F0X = (0.82, 1.25)  # only in test

_ID_RE = re.compile(r"^([a-z0-9]+)((?:\+(?:vtl|f0x)[0-9.]+)*)$")


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Speaker:
    voice: str  # key of VOICES
    vtl: float = 1.0  # frequency-axis warp factor of the spectral envelope
    f0x: float = 1.0  # F0 scale factor

    @property
    def id(self) -> str:
        parts = [self.voice]
        if self.vtl != 1.0:
            parts.append(f"vtl{_fmt(self.vtl)}")
        if self.f0x != 1.0:
            parts.append(f"f0x{_fmt(self.f0x)}")
        return "+".join(parts)

    @property
    def info(self) -> VoiceInfo:
        return VOICES[self.voice]

    @classmethod
    def parse(cls, speaker_id: str) -> Speaker:
        """'us2+vtl1.05+f0x0.9' -> Speaker; InputError for anything malformed."""
        m = _ID_RE.match(speaker_id.strip())
        if not m or m.group(1) not in VOICES:
            raise InputError(
                f"speaker id {speaker_id!r}: expected VOICE[+vtlX][+f0xY] with VOICE one of "
                f"{', '.join(VOICES)}"
            )
        vals = {"vtl": 1.0, "f0x": 1.0}
        for part in m.group(2).split("+")[1:]:
            key, num = part[:3], part[3:]
            try:
                vals[key] = float(num)
            except ValueError:
                raise InputError(f"speaker id {speaker_id!r}: bad number {num!r}") from None
        if not (0.7 <= vals["vtl"] <= 1.4 and 0.5 <= vals["f0x"] <= 2.0):
            raise InputError(f"speaker id {speaker_id!r}: vtl or f0x outside 0.7-1.4 / 0.5-2.0")
        return cls(m.group(1), vals["vtl"], vals["f0x"])


def speakers(split: str) -> tuple[Speaker, ...]:
    """The fixed speaker list of a split ('train' and 'valid' share it; 'test' is disjoint)."""
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be train|valid|test, got {split!r}")
    train_grid = list(itertools.product(TRAIN_VTL, TRAIN_F0X))
    full_grid = list(itertools.product(TRAIN_VTL + TEST_VTL, TRAIN_F0X + TEST_F0X))
    out = []
    for v in VOICES.values():
        if split == "test":
            grid = full_grid if v.test_only else [g for g in full_grid if g not in train_grid]
        else:
            grid = [] if v.test_only else train_grid
        out += [Speaker(v.name, vtl, f0x) for vtl, f0x in sorted(grid)]
    return tuple(out)
