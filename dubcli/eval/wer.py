"""Word error rate and the offline recognizers behind it (paper 4.2 "WER"; DESIGN 2).

WER = (S + D + I) / N over the whole corpus: substitutions, deletions and insertions of a
minimum-edit (Levenshtein) alignment of the hypothesis words against the N reference words. The
order matters: words the recognizer MISSED are deletions, extra words are insertions, and N
counts reference words only. Corpus WER sums errors and words over utterances (long utterances
weigh more); `WerResult.mean_utterance_wer` is the plain average, reported separately.

Normalization (both sides): dubcli.text.normalize.words_for_wer: normalize_text (numbers,
symbols and abbreviations to words), lower case, hyphens split words, punctuation removed,
in-word apostrophes kept. Pass `normalize=` to use another.

Recognizers (`Recognizer.transcribe(wav) -> str`, 16 kHz mono float):
- PocketsphinxRecognizer: pocketsphinx 5 with its bundled en-us acoustic model, constrained by a
  JSGF grammar (the GRID grammar, grammar="grid", or any JSGF string) or by a vocabulary: a
  uniform unigram language model over the eval split's words (an ARPA file; pocketsphinx's n-gram
  search takes ~0.2 s per utterance on an 800-word vocabulary, where the same word loop as a
  JSGF grammar took minutes). The free en-us LM gives 19-86% WER on clean synthetic speech; a
  grammar makes WER meaningful (DESIGN 2, OFFLINE.md).
- WhisperRecognizer: faster-whisper or openai-whisper (paper: Whisper-V3), only when the package
  is installed AND the model is already cached locally; it never downloads.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class WordErrors:
    substitutions: int
    deletions: int  # reference words missing from the hypothesis
    insertions: int  # hypothesis words not in the reference
    n_ref: int  # reference words

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """errors / n_ref; an empty reference gives 0 (empty hypothesis) or inf."""
        if self.n_ref == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.n_ref


@dataclass(frozen=True)
class WerResult:
    wer: float  # corpus level: sum of errors / sum of reference words
    substitutions: int
    deletions: int
    insertions: int
    n_ref: int
    utterances: tuple[WordErrors, ...]  # per (reference, hypothesis) pair, in order

    @property
    def mean_utterance_wer(self) -> float:
        """Unweighted mean of per-utterance WER (not the paper's number; shown for contrast)."""
        return float(np.mean([u.wer for u in self.utterances]))


def word_errors(ref: Sequence[str], hyp: Sequence[str]) -> WordErrors:
    """S, D, I of the minimum-edit alignment of hyp against ref (unit costs).

    Among alignments with the same number of edits the backtrace prefers a match/substitution,
    then a deletion, then an insertion, so counts are deterministic.
    """
    n, m = len(ref), len(hyp)
    # cost[i, j]: edits turning ref[:i] into hyp[:j]
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1])
            cost[i, j] = min(sub, cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    s = d = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            d += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return WordErrors(s, d, ins, n)


def default_normalize(text: str) -> list[str]:
    """The WER normalization of the text frontend (see the module docstring)."""
    from dubcli.text.normalize import words_for_wer

    return words_for_wer(text)


def corpus_wer(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    normalize: Callable[[str], list[str]] | None = None,
) -> WerResult:
    """Corpus WER of hypotheses (recognizer output) against references (the intended text).

    Arguments are in this order: reference first. Raises ValueError when the lists differ in
    length or the references hold no words at all.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references vs {len(hypotheses)} hypotheses")
    norm = normalize or default_normalize
    utts = tuple(word_errors(norm(r), norm(h)) for r, h in zip(references, hypotheses, strict=True))
    n_ref = sum(u.n_ref for u in utts)
    if n_ref == 0:
        raise ValueError("the references hold no words; WER is undefined")
    s, d, i = (
        sum(getattr(u, f) for u in utts) for f in ("substitutions", "deletions", "insertions")
    )
    return WerResult((s + d + i) / n_ref, s, d, i, n_ref, utts)


# ---------------------------------------------------------------------------------------------
# Recognizers


class Recognizer(Protocol):
    def transcribe(self, wav: np.ndarray) -> str:
        """(n,) 16 kHz mono float audio -> recognized text."""
        ...


GRID_SLOTS: dict[str, tuple[str, ...]] = {
    # GRID corpus sentence grammar (Cooke et al. 2006): command colour preposition letter digit
    # adverb. Letters exclude "w"; pocketsphinx's dictionary spells letter names as the single
    # letters ("b" = B IY, "a" = AH | EY, ...), so the words are the letters themselves.
    "command": ("bin", "lay", "place", "set"),
    "colour": ("blue", "green", "red", "white"),
    "preposition": ("at", "by", "in", "with"),
    "letter": tuple("abcdefghijklmnopqrstuvxyz"),
    "digit": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "adverb": ("again", "now", "please", "soon"),
}


def grid_grammar() -> str:
    """JSGF for GRID sentences: exactly one word from each slot, in order."""
    rules = [f"<{k}> = {' | '.join(v)};" for k, v in GRID_SLOTS.items()]
    top = " ".join(f"<{k}>" for k in GRID_SLOTS)
    return "\n".join(["#JSGF V1.0;", "grammar grid;", f"public <sentence> = {top};", *rules]) + "\n"


_WORD = re.compile(r"^[a-z0-9]+(?:'[a-z0-9]+)*$")


def vocabulary_words(words: Iterable[str]) -> list[str]:
    """The sorted, lower-cased vocabulary; words must be letters/digits/apostrophes."""
    vocab = sorted({w.lower() for w in words})
    bad = [w for w in vocab if not _WORD.match(w)]
    if bad:
        raise InputError(f"vocabulary: words must be letters/digits/apostrophes, got {bad[:5]}")
    if not vocab:
        raise InputError("vocabulary: no words")
    return vocab


def unigram_arpa(vocab: Sequence[str]) -> str:
    """A uniform unigram ARPA language model: every word (and the end of sentence) equally likely,
    any number of words in any order. log10 probabilities; <s> only starts sentences (-99)."""
    p = -math.log10(len(vocab) + 1)
    body = [f"{p:.6f} </s>", "-99.000000 <s>", *(f"{p:.6f} {w}" for w in vocab)]
    return "\n".join(["\\data\\", f"ngram 1={len(vocab) + 2}", "", "\\1-grams:", *body, "",
                      "\\end\\", ""])  # fmt: skip


def _grammar_words(jsgf: str) -> set[str]:
    """The terminal words of a JSGF grammar (roughly: tokens outside <rule> names and headers)."""
    headers = ("#", "grammar", "import")
    body = "\n".join(ln for ln in jsgf.splitlines() if not ln.lstrip().startswith(headers))
    body = re.sub(r"<[^>]*>|/[^/]*/|\{[^}]*\}|\bpublic\b", " ", body)
    return {t for t in re.findall(r"[^\s|()\[\]=;*+]+", body)}


def _g2p_pronounce(word: str) -> list[str]:
    """CMUdict / g2p_en pronunciation in pocketsphinx's phone set (no stress, no specials)."""
    from dubcli.text.g2p import default_g2p
    from dubcli.text.phonemes import strip_stress

    return [strip_stress(p) for p in default_g2p().word(word) if not p.startswith("<")]


class PocketsphinxRecognizer:
    """pocketsphinx 5 (bundled en-us model) decoding over a JSGF grammar.

    Exactly one of: grammar="grid" | a JSGF string, or vocabulary=words (a unigram LM). Words
    missing from pocketsphinx's dictionary are added with `pronounce(word) -> ARPAbet phones`
    (default: dubcli's G2P); a JSGF string may only use dictionary words.
    """

    def __init__(
        self,
        *,
        grammar: str | None = None,
        vocabulary: Iterable[str] | None = None,
        pronounce: Callable[[str], Sequence[str]] | None = None,
    ):
        if (grammar is None) == (vocabulary is None):
            raise ValueError("give exactly one of grammar= or vocabulary=")
        try:
            import pocketsphinx
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise DependencyError("pocketsphinx is missing: pip install 'pocketsphinx>=5'") from exc

        self._decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
        if vocabulary is not None:
            vocab = vocabulary_words(vocabulary)
            self._add_missing(set(vocab), pronounce or _g2p_pronounce)
            with tempfile.TemporaryDirectory() as tmp:
                lm = Path(tmp) / "vocabulary.arpa"
                lm.write_text(unigram_arpa(vocab), encoding="utf-8")
                self._decoder.add_lm_file("vocabulary", str(lm))
            self._decoder.activate_search("vocabulary")
        else:
            jsgf = grid_grammar() if grammar == "grid" else grammar
            missing = sorted(
                w for w in _grammar_words(jsgf) if self._decoder.lookup_word(w) is None
            )
            if missing:
                raise InputError(
                    f"grammar: words not in the pocketsphinx dictionary: {missing[:10]}; use "
                    "vocabulary= to add pronunciations automatically"
                )
            try:
                self._decoder.add_jsgf_string("grammar", jsgf)
            except ValueError as exc:
                raise InputError(f"grammar: pocketsphinx cannot parse the JSGF ({exc})") from exc
            self._decoder.activate_search("grammar")

    def _add_missing(self, words: set[str], pronounce: Callable[[str], Sequence[str]]) -> None:
        missing = sorted(w for w in words if self._decoder.lookup_word(w) is None)
        for k, w in enumerate(missing):
            phones = [p.upper() for p in pronounce(w)]
            if not phones:
                raise InputError(f"vocabulary: no pronunciation for {w!r}")
            self._decoder.add_word(w, " ".join(phones), k == len(missing) - 1)
        if missing:
            log.debug("added %d words to the pocketsphinx dictionary", len(missing))

    def transcribe(self, wav: np.ndarray) -> str:
        pcm = _pcm16(wav)
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def _pcm16(wav: np.ndarray) -> bytes:
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise InputError(f"recognizer: expected 1-D 16 kHz audio, got shape {x.shape}")
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()


class WhisperRecognizer:
    """Whisper (paper 4.2 uses Whisper-V3) from a locally cached model; never downloads.

    Tries faster-whisper (model name or CTranslate2 folder, loaded with local_files_only=True),
    then openai-whisper (a .pt path, or a name whose file is already in ~/.cache/whisper).
    """

    def __init__(self, model: str = "large-v3", *, device: str = "cpu", language: str = "en"):
        self.language = language
        self._kind, self._model = _load_whisper(model, device)

    def transcribe(self, wav: np.ndarray) -> str:
        x = np.asarray(wav, dtype=np.float32)
        if x.ndim != 1:
            raise InputError(f"recognizer: expected 1-D 16 kHz audio, got shape {x.shape}")
        if self._kind == "faster_whisper":
            segments, _ = self._model.transcribe(x, language=self.language, beam_size=5)
            return " ".join(s.text.strip() for s in segments).strip()
        return str(self._model.transcribe(x, language=self.language, fp16=False)["text"]).strip()


_WHISPER_HINT = (
    "install faster-whisper (or openai-whisper) and put the model in the local cache once "
    "while online; dubcli eval never downloads. Offline, use the pocketsphinx recognizer"
)


def _load_whisper(model: str, device: str):
    try:
        import faster_whisper
    except ImportError:
        faster_whisper = None
    if faster_whisper is not None:
        try:
            compute = "int8" if device == "cpu" else "default"
            return "faster_whisper", faster_whisper.WhisperModel(
                model, device=device, compute_type=compute, local_files_only=True
            )
        except Exception as exc:  # huggingface_hub's LocalEntryNotFoundError and friends
            raise DependencyError(
                f"faster-whisper model {model!r} is not available locally ({type(exc).__name__}); "
                + _WHISPER_HINT
            ) from exc
    try:
        import whisper
    except ImportError:
        raise DependencyError(f"Whisper WER needs a Whisper package: {_WHISPER_HINT}") from None
    path = model
    if not os.path.isfile(model):
        url = getattr(whisper, "_MODELS", {}).get(model)
        root = os.path.join(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "whisper")
        path = os.path.join(root, os.path.basename(url)) if url else ""
        if not path or not os.path.isfile(path):
            raise DependencyError(
                f"openai-whisper model {model!r} is not in {root}; " + _WHISPER_HINT
            )
    # A file path (not a name) so whisper never re-downloads on a checksum mismatch.
    return "whisper", whisper.load_model(path, device=device)
