"""The fixed phoneme vocabulary: ARPAbet with stress plus a few special symbols.

Ids are part of every checkpoint and manifest, so they never change: new symbols may only be
appended at the end (and VOCAB_VERSION bumped). Layout:

    0 <pad>    padding (masked everywhere)
    1 <blank>  CTC blank (Synchronizer CTC loss, paper eq. 7)
    2 <unk>    a grapheme/phone the frontend could not map
    3 <wb>     word boundary (zero-duration marker between words)
    4 <sil>    pause, from punctuation (, ; : . ! ? -- ...) and leading/trailing silence
    5..7       reserved
    8..        ARPAbet vowels with lexical stress 0/1/2, then consonants
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

VOCAB_VERSION = "arpabet-v1"

PAD, BLANK, UNK, WORD_BOUNDARY, SILENCE = "<pad>", "<blank>", "<unk>", "<wb>", "<sil>"
SPECIALS = [PAD, BLANK, UNK, WORD_BOUNDARY, SILENCE, "<r5>", "<r6>", "<r7>"]

VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
CONSONANTS = [
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG",
    "P", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
]  # fmt: skip

SYMBOLS: list[str] = SPECIALS + [v + s for v in VOWELS for s in "012"] + CONSONANTS
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
PAD_ID, BLANK_ID, UNK_ID, WORD_BOUNDARY_ID, SILENCE_ID = range(5)
VOCAB_SIZE = len(SYMBOLS)


def strip_stress(symbol: str) -> str:
    """'AH0' -> 'AH'; consonants and specials unchanged."""
    return symbol[:-1] if symbol and symbol[-1] in "012" else symbol


def is_vowel(symbol: str) -> bool:
    return strip_stress(symbol) in VOWELS


def normalize_symbol(symbol: str) -> str:
    """Map a phone as aligners/lexicons spell it onto our vocabulary.

    Vowels without stress get stress 1 (CMUdict's convention for the primary form); 'SIL', 'SP',
    'SPN' and '' become <sil>; anything unknown becomes <unk>.
    """
    s = symbol.strip().upper()
    if s in ("", "SIL", "SP", "SPN", "<SIL>", "PAU", "_"):
        return SILENCE
    if s in VOWELS:
        return s + "1"
    if s in SYMBOL_TO_ID and s not in SPECIALS:
        return s
    if symbol in SYMBOL_TO_ID:
        return symbol
    return UNK


def encode(symbols: Iterable[str]) -> list[int]:
    """Symbols -> ids (unknown symbols -> <unk>)."""
    return [SYMBOL_TO_ID.get(s, UNK_ID) for s in symbols]


def decode(ids: Sequence[int]) -> list[str]:
    """Ids -> symbols; raises ValueError for ids outside the vocabulary."""
    out = []
    for i in ids:
        if not 0 <= int(i) < VOCAB_SIZE:
            raise ValueError(f"phoneme id {i} outside the vocabulary (size {VOCAB_SIZE})")
        out.append(SYMBOLS[int(i)])
    return out


@dataclass(frozen=True)
class WordSpan:
    """A word of the text and the half-open range [start, end) of its phonemes in the sequence."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class PhonemeSequence:
    """What the text frontend hands to the aligner and the model.

    `symbols[i]` is a vocabulary symbol; `<wb>` separates words, `<sil>` marks a pause (from
    punctuation); `words` lists the spoken words with their phoneme ranges (no specials inside,
    except a single <unk> for a word the G2P cannot read).
    """

    symbols: tuple[str, ...]
    words: tuple[WordSpan, ...] = field(default_factory=tuple)

    @property
    def ids(self) -> list[int]:
        return encode(self.symbols)

    def __len__(self) -> int:
        return len(self.symbols)
