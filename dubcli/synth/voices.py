"""SynthDub voices and speakers, and the fixed speaker split (DESIGN 6: test voices unseen).

A *voice* is a synthesizer voice: mbrola us1/us2/us3 (American) and en1 (British); English read
by espeak-ng over the diphones of German (de1-de6), French (fr1, fr4), Hungarian (hu1), Polish
(pl1), Swedish (sw1, sw2), Dutch (nl2), Afrikaans (af1) and Romanian (ro1) mbrola databases,
i.e. accented speakers; festival kal/ked/slt (American) and rab (British). A *speaker* is a voice
plus a WORLD-domain perturbation: a vocal-tract-length warp of the spectral envelope and an F0
scale. Speaker ids spell both: "us2" (unperturbed) or "us2+vtl1.05+f0x0.9".

The split is fixed here, not drawn: the test-only voices us3, ked, de5, fr4 and ro1 (2 female,
3 male; 4 mbrola, 1 festival; American, German, French and Romanian accents, the last unseen in
training) and every perturbation of them appear only in test, and so do the extreme warp/scale
values on the 18 training voices. Train and valid share the training speakers (valid holds out
text, not voices). Genders are the databases' own (their READMEs).

Left out: mbrola gr2 (its X and Y units are the clusters [ks] and [ps], with no phone boundary
inside, and English sh comes out as [ts]) and festival don_diphone (its audio ends up to 130 ms
away from its own segment times).
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
    accent: str  # "us" | "gb", or the language of a foreign database read as English ("de", ...)
    test_only: bool  # reserved for the test split


def _mb_en(name: str, phone_set: str, gender: str, test_only: bool = False) -> VoiceInfo:
    """An espeak-ng mb-XX-en voice: English over a foreign mbrola database."""
    accent = phone_set.removeprefix("mbrola-")  # the database language: de, fr, sv, ...
    return VoiceInfo(name, "mbrola", f"mb-{name}-en", phone_set, gender, accent, test_only)


VOICES: dict[str, VoiceInfo] = {
    v.name: v
    for v in (
        VoiceInfo("us1", "mbrola", "mb-us1", "mbrola-us", "f", "us", False),
        VoiceInfo("us2", "mbrola", "mb-us2", "mbrola-us", "m", "us", False),
        VoiceInfo("us3", "mbrola", "mb-us3", "mbrola-us", "m", "us", True),
        VoiceInfo("en1", "mbrola", "mb-en1", "mbrola-en1", "m", "gb", False),
        _mb_en("de1", "mbrola-de", "f"),
        _mb_en("de2", "mbrola-de", "m"),
        _mb_en("de3", "mbrola-de", "f"),
        _mb_en("de4", "mbrola-de", "m"),
        _mb_en("de5", "mbrola-de", "f", test_only=True),
        _mb_en("de6", "mbrola-de", "m"),
        _mb_en("fr1", "mbrola-fr", "m"),
        _mb_en("fr4", "mbrola-fr", "f", test_only=True),
        _mb_en("hu1", "mbrola-hu", "f"),
        _mb_en("pl1", "mbrola-pl", "f"),
        _mb_en("sw1", "mbrola-sv", "m"),
        _mb_en("sw2", "mbrola-sv", "f"),
        _mb_en("nl2", "mbrola-nl", "m"),
        _mb_en("af1", "mbrola-af", "m"),
        _mb_en("ro1", "mbrola-ro", "m", test_only=True),
        VoiceInfo("kal", "festival", "kal_diphone", "festival-radio", "m", "us", False),
        VoiceInfo("ked", "festival", "ked_diphone", "festival-radio", "m", "us", True),
        VoiceInfo("slt", "festival", "cmu_us_slt_arctic_hts", "festival-radio", "f", "us", False),
        VoiceInfo("rab", "festival", "rab_diphone", "festival-mrpa", "m", "gb", False),
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
