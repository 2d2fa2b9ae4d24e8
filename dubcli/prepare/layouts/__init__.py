"""Dataset layouts: how `dubcli prepare` finds utterances in raw data and extracts their features.

Dimensions: nt phonemes, nv video frames (25 fps), n samples (16 kHz).

A layout turns DATA into a deterministic list of `Item`s (id, split, speaker, a small picklable
payload) and extracts one item at a time (`Layout.extract` -> `Extracted`: waveform, phonemes
with durations, lip/face features). The codec, shards and manifest are prepare/run.py's business, so
a layout never writes dataset files (except media it renders under OUT/media with --render).
Layout objects are pickled to worker processes: keep their state small and picklable.

Phoneme convention of every prepared dataset ("phoneme_edges": "sil" in dataset.json): a
sequence starts and ends with `<sil>` (possibly of zero duration) so leading and trailing
silence is owned by a silence symbol, never absorbed into the first/last phone; inside, words
are separated by exactly one `<wb>` (zero duration) or `<sil>` (a pause), as the g2p frontend
spells them (text/g2p.py). `sil_wrapped` applies it to a g2p sequence.

Layouts: synth (SynthDub, generated), pairs (videos + same-stem transcripts), grid (the GRID
corpus), chem (a clip list: Chem / V2C style). `make_layout(name, data, **options)` builds one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dubcli.errors import InputError
from dubcli.hashing import seeded_hash
from dubcli.text.phonemes import SILENCE, PhonemeSequence, WordSpan

LAYOUTS: dict[str, str] = {
    "synth": "dubcli.prepare.layouts.synth:SynthLayout",
    "pairs": "dubcli.prepare.layouts.pairs:PairsLayout",
    "grid": "dubcli.prepare.layouts.grid:GridLayout",
    "chem": "dubcli.prepare.layouts.chem:ChemLayout",
}
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / valid / test share when a layout assigns splits
MIN_FACE_RATE = 0.5  # real video: fewer frames with a face than this fails the item
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".m4v")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class Item:
    """One utterance to prepare: what is known before any media is read."""

    id: str  # unique, file-name safe (no '/': shard keys are "<id>/<field>")
    split: str  # train | valid | test
    speaker: str
    data: dict[str, Any] = field(default_factory=dict)  # layout payload (paths, times, spec)


@dataclass(frozen=True, eq=False)
class Extracted:
    """What a layout extracts from one item; prepare adds the codec tokens."""

    wav: np.ndarray  # (n,) float32 16 kHz, n = nv * 640 for real video (its exact length)
    text: str
    phonemes: tuple[str, ...]  # vocabulary symbols, <sil> first and last
    durations_frames: tuple[int, ...]  # (nt,) sums to nv
    durations_tokens: tuple[int, ...]  # (nt,) sums to n // 200
    lip: np.ndarray  # (nv, LIP_DIM) float32
    face: np.ndarray  # (nv, FACE_DIM) float32
    valid: np.ndarray  # (nv,) bool: a face was seen (or is known, for synthetic faces)
    style: dict[str, Any] | None = None
    source: dict[str, str] = field(default_factory=dict)
    align_ok: bool = True
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds


class LabelledAudio(NamedTuple):
    """A waveform with its phonemes and their durations in tokens (codec fitting)."""

    wav: np.ndarray  # (n,) float32 16 kHz
    phonemes: tuple[str, ...]  # vocabulary symbols
    durations_tokens: tuple[int, ...]  # (nt,) sums to n // 200


class ItemFailed(Exception):
    """An item cannot be prepared (alignment rejected, no face, unreadable media): it is
    written to failures.jsonl with `reason` and the run goes on."""

    def __init__(self, reason: str, stage: str = "extract"):
        super().__init__(" ".join(str(reason).split()))
        self.reason = str(self)
        self.stage = stage


@dataclass(frozen=True)
class Context:
    """Run-wide facts an extraction may need."""

    out: Path  # the prepared dataset folder (media go under out/media)
    render: bool = False  # synth: also render mp4s


class Layout:
    """Base class. Subclasses set `name` and implement items / audio / extract."""

    name = "?"

    def items(self) -> list[Item]:
        """Every utterance of DATA in a fixed order (the same list on every machine)."""
        raise NotImplementedError

    def audio(self, item: Item) -> np.ndarray:
        """(n,) 16 kHz waveform of an item (the ground truth `dubcli eval` scores against)."""
        raise NotImplementedError

    def labelled_audio(self, item: Item, ctx: Context) -> LabelledAudio:
        """An item's waveform and phone labels, for fitting the codec (its content tokens are
        a function of the phones). By default the whole extraction; layouts with a cheaper
        way to the labels override it."""
        ex = self.extract(item, ctx)
        if not ex.align_ok:
            raise ItemFailed("its alignment was rejected: not used to fit the codec", "alignment")
        return LabelledAudio(ex.wav, ex.phonemes, ex.durations_tokens)

    def extract(self, item: Item, ctx: Context) -> Extracted:
        """Features of one item; raise ItemFailed (or a DubcliError) when it cannot be used."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Layout options recorded in dataset.json (a resumed run must match them)."""
        return {}

    def check(self) -> None:
        """Raise DependencyError early when a program the layout needs is missing."""


def make_layout(name: str, data: str | Path | None, **options: Any) -> Layout:
    target = LAYOUTS.get(name)
    if target is None:
        raise InputError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(data, **options)


def safe_id(text: str) -> str:
    """A file-name safe item id ('alice/clip 1' -> 'alice__clip_1')."""
    return _SAFE_ID.sub("_", str(text).replace("/", "__").replace("\\", "__")).strip("_") or "item"


def hash_split(key: str, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """Seeded, order-independent split of `key`: the same key always lands in the same split."""
    u = seeded_hash(key, seed) / 2**64
    train, valid = fractions[0], fractions[0] + fractions[1]
    return "train" if u < train else "valid" if u < valid else "test"


def sil_wrapped(seq: PhonemeSequence) -> PhonemeSequence:
    """The g2p sequence with <sil> added at the start and (unless there is one) the end."""
    symbols = list(seq.symbols)
    shift = 0
    if not symbols or symbols[0] != SILENCE:
        symbols.insert(0, SILENCE)
        shift = 1
    if symbols[-1] != SILENCE or len(symbols) == 1:
        symbols.append(SILENCE)
    words = tuple(WordSpan(w.text, w.start + shift, w.end + shift) for w in seq.words)
    return PhonemeSequence(tuple(symbols), words)


def quantize(bounds: Sequence[float], rate: float, total: int) -> tuple[int, ...]:
    """Cumulative boundaries (seconds, nt + 1) -> nt integer durations at `rate` summing to
    `total`. Rounding the cumulative times (not each duration) keeps errors from adding up."""
    b = np.rint(np.asarray(bounds, dtype=np.float64) * rate).astype(np.int64)
    b = np.clip(np.maximum.accumulate(b), 0, total)
    b[0], b[-1] = 0, total
    return tuple(int(d) for d in np.diff(b))
