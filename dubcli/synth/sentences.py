"""SynthDub texts: GRID-grammar sentences and free word sequences (DESIGN 6).

GRID (Cooke et al. 2006): command colour preposition letter digit adverb, 4*4*4*25*10*4 = 64000
sentences; a grammar-constrained recognizer gives an offline WER on them. Free sequences draw
3-10 words from the shipped frequency list (wordlist.py), with an occasional comma (a pause).

Texts are assigned to splits by a hash of the text, so a sentence is in exactly one split no
matter which seed drew it: test and valid text is never trained on.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from dubcli.synth.wordlist import load_wordlist

GRID_GRAMMAR: dict[str, tuple[str, ...]] = {
    "command": ("bin", "lay", "place", "set"),
    "colour": ("blue", "green", "red", "white"),
    "preposition": ("at", "by", "in", "with"),
    "letter": tuple("abcdefghijklmnopqrstuvxyz"),  # a-z minus w
    "digit": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "adverb": ("again", "now", "please", "soon"),
}
LETTER_SLOT = 3  # index of the letter in a GRID sentence

# Hash buckets (of 20) per split: 5% test, 5% valid, 90% train.
_SPLIT_BUCKETS = {"test": (0,), "valid": (1,), "train": tuple(range(2, 20))}
_WORD_RE = re.compile(r"[A-Za-z']+")


def text_split(text: str) -> str:
    """The split a text belongs to: 'train' | 'valid' | 'test' (stable hash of the words)."""
    key = " ".join(words_of(text)).lower().encode("utf-8")
    bucket = int(hashlib.sha1(key).hexdigest()[:8], 16) % 20
    return next(s for s, b in _SPLIT_BUCKETS.items() if bucket in b)


def words_of(text: str) -> list[str]:
    """The spoken words of a text, punctuation dropped ("set red, at a" -> [set, red, at, a])."""
    return _WORD_RE.findall(text)


def grid_sentence(rng: np.random.Generator) -> str:
    return " ".join(opts[rng.integers(len(opts))] for opts in GRID_GRAMMAR.values())


def free_sentence(rng: np.random.Generator, min_words: int = 3, max_words: int = 10) -> str:
    """Words drawn with a mild frequency bias (weight ~ rank^-0.5) so rare words still occur."""
    words = load_wordlist()
    weights = 1.0 / np.sqrt(np.arange(len(words)) + 10.0)
    n = int(rng.integers(min_words, max_words + 1))
    picks = rng.choice(len(words), size=n, p=weights / weights.sum())
    out = [words[i] for i in picks]
    if n >= 5 and rng.random() < 0.3:  # a comma somewhere in the middle: a pause phone
        k = int(rng.integers(2, n - 1))
        out[k - 1] += ","
    return " ".join(out)


def sample_text(kind: str, split: str, rng: np.random.Generator) -> str:
    """A text of `kind` ('grid' | 'free') whose hash puts it in `split` (rejection sampling)."""
    make = grid_sentence if kind == "grid" else free_sentence
    for _ in range(10_000):
        text = make(rng)
        if text_split(text) == split:
            return text
    raise RuntimeError(
        f"no {kind} text for split {split} in 10000 draws"
    )  # unreachable in practice


def engine_words(text: str, kind: str, engine: str) -> list[str]:
    """The words as handed to a synthesizer: a GRID letter must be read as a letter name.

    Both espeak-ng and festival read a lone "a" as the article; GRID's "a" is the letter (EY).
    espeak-ng takes inline phonemes [[...]], festival reads a capital "A" as the letter.
    """
    words = text.split()
    if kind == "grid" and len(words) > LETTER_SLOT and words[LETTER_SLOT].lower() == "a":
        words[LETTER_SLOT] = "[['eI]]" if engine == "mbrola" else "A"
    return words
