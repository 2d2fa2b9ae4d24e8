"""WER scoring (order, corpus level) and the offline recognizers."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from dubcli.errors import DependencyError, InputError
from dubcli.eval import wer as W


def test_wer_reference_first_asymmetric():
    r = W.corpus_wer(["a b c d"], ["a b"])
    # the recognizer missed two of four reference words: 2 deletions / 4
    assert (r.wer, r.deletions, r.insertions, r.substitutions, r.n_ref) == (0.5, 2, 0, 0, 4)
    swapped = W.corpus_wer(["a b"], ["a b c d"])
    assert (swapped.wer, swapped.insertions, swapped.deletions) == (1.0, 2, 0)


def test_wer_identical_and_mixed_edits():
    assert W.corpus_wer(["bin blue at f two now"], ["bin blue at f two now"]).wer == 0.0
    r = W.corpus_wer(["the cat sat"], ["the bat sat down"])
    assert (r.substitutions, r.deletions, r.insertions) == (1, 0, 1)
    assert r.wer == pytest.approx(2 / 3)
    e = W.word_errors(list("abcdef"), list("axcef"))  # one substitution, one deletion
    assert (e.substitutions, e.deletions, e.insertions, e.n_ref) == (1, 1, 0, 6)


def test_corpus_level_differs_from_utterance_mean():
    refs = ["a b c d e f g h i j", "x"]
    hyps = ["a b c d e f g h i j", "y"]
    r = W.corpus_wer(refs, hyps)
    assert r.wer == pytest.approx(1 / 11)  # total errors / total reference words
    assert r.mean_utterance_wer == pytest.approx(0.5)
    assert [u.wer for u in r.utterances] == [0.0, 1.0]


def test_wer_normalization_and_errors():
    # default normalization: case and punctuation do not count
    assert W.corpus_wer(["Hello, World!"], ["hello world"]).wer == 0.0
    upper = lambda t: t.upper().split()  # noqa: E731
    assert W.corpus_wer(["a b"], ["A B"], normalize=upper).wer == 0.0
    with pytest.raises(ValueError, match="2 references vs 1"):
        W.corpus_wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words"):
        W.corpus_wer([""], ["a"])
    assert W.word_errors([], ["a"]).wer == float("inf")


def test_grid_grammar_words():
    g = W.grid_grammar()
    assert "public <sentence> = <command> <colour> <preposition> <letter> <digit> <adverb>;" in g
    assert len(W.GRID_SLOTS["letter"]) == 25 and "w" not in W.GRID_SLOTS["letter"]
    assert W._grammar_words(g) == {w for v in W.GRID_SLOTS.values() for w in v}


def _say(text: str, voice: str, tmp_path) -> np.ndarray:
    import soundfile as sf
    import soxr

    out = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True)
    wav, sr = sf.read(out, dtype="float32")
    return soxr.resample(wav, sr, 16000) if sr != 16000 else wav


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")


@needs_espeak
def test_grid_recognition_mbrola(tmp_path):
    rec = W.PocketsphinxRecognizer(grammar="grid")
    rnd = random.Random(3)
    sents = [" ".join(rnd.choice(v) for v in W.GRID_SLOTS.values()) for _ in range(4)]
    refs, hyps = [], []
    for voice in ("mb-us1", "mb-us2"):
        for s in sents:
            refs.append(s)
            hyps.append(rec.transcribe(_say(s, voice, tmp_path)))
    r = W.corpus_wer(refs, hyps)
    # measured: 1.4-2.8% on 12 random sentences per mbrola voice (us1/us2/us3); espeak 18%
    assert r.wer <= 0.15, list(zip(refs, hyps, strict=True))


@needs_espeak
def test_vocabulary_recognition_with_oov_word(tmp_path):
    said = []
    vocab = "the man went to market buy some bread she said that water was cold zyxt".split()

    def pronounce(word):
        said.append(word)
        return ["Z", "IH", "K", "S", "T"]

    rec = W.PocketsphinxRecognizer(vocabulary=vocab, pronounce=pronounce)
    assert said == ["zyxt"]  # only the word missing from the dictionary needs a pronunciation
    refs = ["the man went to the market to buy some bread", "she said that the water was cold"]
    hyps = [rec.transcribe(_say(s, "mb-us2", tmp_path)) for s in refs]
    r = W.corpus_wer(refs, hyps)
    assert r.wer <= 0.4, hyps  # measured 0.10 (us2), 0.16 (us1) on a slightly larger set


def test_recognizer_bad_grammar():
    with pytest.raises(InputError, match="not in the pocketsphinx dictionary: \\['qqxq'\\]"):
        W.PocketsphinxRecognizer(grammar="#JSGF V1.0;\ngrammar g;\npublic <s> = hello | qqxq;\n")
    with pytest.raises(InputError, match="cannot parse"):
        W.PocketsphinxRecognizer(grammar="#JSGF V1.0;\ngrammar g;\npublic <s> = (hello;\n")
    with pytest.raises(InputError, match="letters/digits"):
        W.PocketsphinxRecognizer(vocabulary=["ok", "two words"])
    with pytest.raises(ValueError):
        W.PocketsphinxRecognizer()
    rec = W.PocketsphinxRecognizer(grammar="grid")
    with pytest.raises(InputError, match="1-D"):
        rec.transcribe(np.zeros((2, 100)))
    assert isinstance(rec.transcribe(np.zeros(1600, np.float32)), str)


def test_whisper_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    monkeypatch.setitem(sys.modules, "whisper", None)
    with pytest.raises(DependencyError, match="never downloads"):
        W.WhisperRecognizer("large-v3")


def test_faster_whisper_uses_local_files_only(monkeypatch):
    calls = {}

    class Model:
        def __init__(self, name, **kw):
            calls.update(kw, name=name)

        def transcribe(self, wav, **kw):
            calls["language"] = kw["language"]
            seg = types.SimpleNamespace
            return iter([seg(text=" Bin blue"), seg(text=" at F two now. ")]), None

    monkeypatch.setitem(sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=Model))
    rec = W.WhisperRecognizer("small.en")
    assert calls["local_files_only"] is True and calls["name"] == "small.en"
    assert rec.transcribe(np.zeros(1600, np.float32)) == "Bin blue at F two now."

    class NotCached:
        def __init__(self, *a, **kw):
            raise FileNotFoundError("not in cache")

    monkeypatch.setitem(
        sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=NotCached)
    )
    with pytest.raises(DependencyError, match="'small.en' is not available locally"):
        W.WhisperRecognizer("small.en")


def test_openai_whisper_needs_cached_file(monkeypatch, tmp_path):
    loaded = []
    fake = types.SimpleNamespace(
        _MODELS={"base.en": "https://example.invalid/abc/base.en.pt"},
        load_model=lambda path, device: loaded.append(path) or object(),
    )
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    monkeypatch.setitem(sys.modules, "whisper", fake)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(DependencyError, match="'base.en' is not in"):
        W.WhisperRecognizer("base.en")
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "base.en.pt").write_bytes(b"x")
    W.WhisperRecognizer("base.en")
    assert loaded == [str(tmp_path / "whisper" / "base.en.pt")]  # a path: never re-downloads
