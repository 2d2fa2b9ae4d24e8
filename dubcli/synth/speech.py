"""SynthDub speech: utterances with exact phone timelines, deterministic from a seed (DESIGN 6).

    specs = make_specs(100, seed=0, split="train")   # text, voice, speaker, style, seed
    utt = synthesize(specs[0])                        # wav (16 kHz), phones, words, f0 targets

An utterance is rendered by espeak-ng + mbrola (us1 us2 us3 en1 and the foreign-database voices
de1..ro1 of voices.py: an edited .pho) or by festival (kal ked slt rab: segment timings from the
utterance structure), then perturbed in the WORLD domain (vocal-tract length, F0 scale and, for
festival, the pitch style), then set to the style's loudness. `phones` covers [0, len(wav)/16000] contiguously; every start/end is a whole sample.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError, ProcessingError
from dubcli.synth.engines import INSTALL_HINT, normalize_loudness, run_program
from dubcli.synth.prosody import STYLE_NAMES, ProsodyStyle, sample_style
from dubcli.synth.sentences import engine_words, sample_text, words_of
from dubcli.synth.timeline import PhoneSpan, WordTiming, build_timeline, total_samples
from dubcli.synth.voices import VOICES, Speaker, speakers
from dubcli.timing import SAMPLE_RATE

__all__ = [
    "PhoneSpan",
    "WordTiming",
    "ProsodyStyle",
    "UtteranceSpec",
    "SynthUtterance",
    "make_specs",
    "synthesize",
    "check_synth_dependencies",
]

log = get_logger(__name__)
SPLITS = ("train", "valid", "test")
KINDS = ("grid", "free")
_TEXT_RE = re.compile(r"^[A-Za-z' ,.?!]+$")
_verified: set[str] = set()  # voices whose programs and files were found in this process


@dataclass(frozen=True)
class UtteranceSpec:
    id: str  # unique utterance id, e.g. "synth-train-s0-000012"
    text: str  # what is said (GRID letters as lowercase letters)
    voice: str  # base voice (voices.VOICES key)
    speaker: str  # speaker id: voice + perturbation, e.g. "us2+vtl1.05+f0x0.9"
    style: ProsodyStyle  # numeric prosody parameters of this utterance
    seed: int  # drives duration/pitch jitter and pause lengths
    kind: str  # "grid" | "free"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UtteranceSpec:
        return cls(
            id=str(d["id"]),
            text=str(d["text"]),
            voice=str(d["voice"]),
            speaker=str(d["speaker"]),
            style=ProsodyStyle.from_dict(d["style"]),
            seed=int(d["seed"]),
            kind=str(d["kind"]),
        )


@dataclass(frozen=True, eq=False)
class SynthUtterance:
    spec: UtteranceSpec
    wav: np.ndarray  # (n,) float32 mono
    sample_rate: int  # 16000
    phones: tuple[PhoneSpan, ...]  # contiguous from 0 to n / sample_rate; pauses are <sil>
    words: tuple[WordTiming, ...]  # one per spoken word of spec.text, in order
    # (k, 2) seconds, Hz: the pitch the audio was made with. mbrola voices: the .pho targets
    # (mbrola interpolates linearly between them); festival voices: the voiced 5 ms frames of
    # the WORLD F0 they were resynthesized with.
    f0_targets: np.ndarray | None = None

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate


UTTS_PER_EVAL_SPEAKER = 4  # valid/test utterances per drawn speaker (see make_specs)


def make_specs(
    n: int, seed: int, split: str = "train", *, voices: Sequence[str] | None = None
) -> list[UtteranceSpec]:
    """`n` utterance specs of `split`, the same for the same (n, seed, split, voices).

    Base voice uniform over the split's voices (optionally only `voices`), then a perturbation
    of it; text GRID or free (half each) from the split's share of texts; style uniform.
    valid/test draw a speaker for every UTTS_PER_EVAL_SPEAKER consecutive utterances, so that
    Setting 2 evaluation (reference = another utterance of the same speaker) has references:
    with one draw per utterance, most of the many unseen test speakers would occur only once.
    """
    if split not in SPLITS:
        raise InputError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    pool = [s for s in speakers(split) if voices is None or s.voice in voices]
    if not pool:
        raise InputError(f"no {split} speakers for voices {list(voices or [])}")
    by_voice: dict[str, list[Speaker]] = {}
    for s in pool:
        by_voice.setdefault(s.voice, []).append(s)
    names = sorted(by_voice)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])
    specs = []
    for i in range(int(n)):
        kind = KINDS[int(rng.integers(2))]
        text = sample_text(kind, split, rng)
        if split == "train" or i % UTTS_PER_EVAL_SPEAKER == 0:
            group = by_voice[names[int(rng.integers(len(names)))]]
            spk = group[int(rng.integers(len(group)))]
        style = sample_style(STYLE_NAMES[int(rng.integers(len(STYLE_NAMES)))], rng)
        specs.append(
            UtteranceSpec(
                id=f"synth-{split}-s{seed}-{i:06d}",
                text=text,
                voice=spk.voice,
                speaker=spk.id,
                style=style,
                seed=int(rng.integers(2**31 - 1)),
                kind=kind,
            )
        )
    return specs


def check_synth_dependencies(voices: Iterable[str] | None = None) -> None:
    """Raise DependencyError naming the first missing program or voice (all voices by default)."""
    from dubcli.synth.festival import festival_voice_dir
    from dubcli.synth.mbrola import MBROLA_DIRS, mbrola_database

    names = list(VOICES) if voices is None else list(voices)
    for name in names:
        if name not in VOICES:
            raise InputError(f"unknown SynthDub voice {name!r}; known: {', '.join(VOICES)}")
        info = VOICES[name]
        programs = ["espeak-ng", "mbrola"] if info.engine == "mbrola" else ["festival"]
        for prog in programs:
            if shutil.which(prog) is None:
                raise DependencyError(
                    f"{prog} not found on PATH (SynthDub voice {name}); {INSTALL_HINT}"
                )
        if info.engine == "mbrola":
            if mbrola_database(name) is None:
                raise DependencyError(
                    f"mbrola voice {name} not found in {', '.join(MBROLA_DIRS)}; {INSTALL_HINT}"
                )
            res = run_program(["espeak-ng", "--voices=mb"], f"voice {name}")
            if info.program_voice not in res.stdout:
                raise DependencyError(
                    f"espeak-ng has no {info.program_voice} voice; {INSTALL_HINT}"
                )
        elif festival_voice_dir(info.program_voice) is None:
            raise DependencyError(
                f"festival voice {info.program_voice} not installed; {INSTALL_HINT}"
            )
    _verified.update(names)


def synthesize(spec: UtteranceSpec) -> SynthUtterance:
    """Render one utterance. Same spec -> same samples (all randomness comes from spec.seed)."""
    from dubcli.synth.festival import synthesize_festival
    from dubcli.synth.mbrola import synthesize_mbrola
    from dubcli.synth.perturb import world_perturb

    where = f"utterance {spec.id}"
    speaker = Speaker.parse(spec.speaker)
    if speaker.voice != spec.voice:
        raise InputError(
            f"{where}: speaker {spec.speaker} is not a perturbation of voice {spec.voice}"
        )
    if spec.kind not in KINDS:
        raise InputError(f"{where}: kind {spec.kind!r}, expected grid or free")
    if not _TEXT_RE.match(spec.text) or not words_of(spec.text):
        raise InputError(f"{where}: text {spec.text!r} must be English words and , . ? ! '")
    if spec.style.rate <= 0 or spec.style.pitch_range < 0:
        raise InputError(f"{where}: style rate must be > 0 and pitch range >= 0")
    if spec.voice not in _verified:
        check_synth_dependencies([spec.voice])
    info = VOICES[spec.voice]
    words = [w.lower() for w in words_of(spec.text)]
    rng = np.random.default_rng(spec.seed)
    lead, trail = (int(rng.uniform(0.15, 0.35) * SAMPLE_RATE) for _ in range(2))
    ew = engine_words(spec.text, spec.kind, info.engine)
    if info.engine == "mbrola":
        out = synthesize_mbrola(words, ew, info, spec.style, speaker.f0x, rng, lead, trail, where)
        pitch = {"pitch_level": 0.0, "pitch_range": 1.0, "f0_scale": 1.0}  # already in the .pho
    else:
        out = synthesize_festival(words, ew, info, spec.style, rng, lead, trail, where)
        pitch = {
            "pitch_level": spec.style.pitch_level,
            "pitch_range": spec.style.pitch_range,
            "f0_scale": speaker.f0x,
        }
    wav, f0 = out.wav, out.f0_targets
    if speaker.vtl != 1.0 or pitch != {"pitch_level": 0.0, "pitch_range": 1.0, "f0_scale": 1.0}:
        res = world_perturb(wav, SAMPLE_RATE, vtl=speaker.vtl, **pitch)
        wav = res.wav
        f0 = f0 if f0 is not None else res.f0
    if total_samples(out.segments) != len(wav):
        raise ProcessingError(
            f"{where}: timeline has {total_samples(out.segments)} samples, audio {len(wav)}"
        )
    wav = normalize_loudness(wav, out.segments, spec.style.energy)
    phones, timings = build_timeline(out.segments, words, where)
    return SynthUtterance(spec, wav, SAMPLE_RATE, phones, timings, f0)
