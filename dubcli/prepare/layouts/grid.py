"""The `grid` layout: the GRID audio-visual corpus (Cooke et al. 2006), as distributed.

    DATA/
      s1/ s2/ ... s34/        one folder per speaker with the videos (*.mpg; any depth; the
                              "normal" and "high" quality archives both unpack this way)
      <alignments>            per video `<stem>.align`, found in the first of:
                              DATA/s1/align/, DATA/align/s1/, DATA/alignments/s1/, DATA/s1/,
                              DATA/align/ (a single-speaker collection)
      <audio, optional>       a separate `<stem>.wav` (the 25/50 kHz audio archives) in
                              DATA/audio/s1/, DATA/audio_25k/s1/, DATA/s1/audio/ or next to the
                              video; otherwise the video's own audio track is used

An .align file has one "start end word" line per word, times in units of 1/25000 s (the
corpus's 25 kHz audio sample index, so 1000 units = one 25 fps video frame), with `sil` at both
ends and `sp` for short pauses, e.g. "0 23750 sil", "23750 29500 bin". The text is the words
without sil/sp; a pause entry between two words becomes a <sil>, touching words get a <wb>.
Phone boundaries come from forced alignment of the whole utterance, then each word's phones
are mapped linearly into the word span the corpus gives (layouts/clip.py `pin_words`): a
per-word alignment inside each span alone was measured to fail on most words (pocketsphinx
needs the surrounding context).

Speaker = the speaker folder name; split by a seeded hash of the item id ("s1-bbaf2n").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dubcli.console import get_logger
from dubcli.errors import InputError
from dubcli.prepare.layouts import VIDEO_EXTS, Item, ItemFailed, safe_id
from dubcli.prepare.layouts.clip import FolderLayout
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, PhonemeSequence, WordSpan

log = get_logger(__name__)
ALIGN_RATE = 25_000.0  # .align time units per second
PAUSES = ("sil", "sp")
_SPEAKER_DIR = re.compile(r"^s\d+$")


def read_align(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, word) per line of a GRID .align file; ItemFailed when malformed."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ItemFailed(f"{path}: cannot read ({exc.strerror or exc})", "text") from exc
    out = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            start, end = int(parts[0]), int(parts[1])
            word = parts[2].lower()
            if len(parts) != 3 or end < start or (out and start < out[-1][1] * ALIGN_RATE - 0.5):
                raise ValueError
        except (ValueError, IndexError):
            raise ItemFailed(
                f"{path}:{lineno}: expected 'start end word' in 1/25000 s, got {line!r}", "text"
            ) from None
        out.append((start / ALIGN_RATE, end / ALIGN_RATE, word))
    if not any(w not in PAUSES for _, _, w in out):
        raise ItemFailed(f"{path}: no words (only {', '.join(PAUSES)})", "text")
    return out


def grid_phonemes(entries: list[tuple[float, float, str]]) -> tuple[PhonemeSequence, list]:
    """GRID entries -> (<sil>-wrapped sequence, (start, end) per word)."""
    from dubcli.text.g2p import default_g2p

    g2p = default_g2p()
    symbols: list[str] = [SILENCE]
    words: list[WordSpan] = []
    times: list[tuple[float, float]] = []
    pause = False
    for start, end, word in entries:
        if word in PAUSES:
            pause = True
            continue
        if words:
            symbols.append(SILENCE if pause else WORD_BOUNDARY)
        phones = g2p.word(word)
        words.append(WordSpan(word, len(symbols), len(symbols) + len(phones)))
        symbols.extend(phones)
        times.append((start, end))
        pause = False
    symbols.append(SILENCE)
    return PhonemeSequence(tuple(symbols), tuple(words)), times


class GridLayout(FolderLayout):
    name = "grid"
    needs = "the GRID folder (s1/ ... + alignments)"
    reads = "the GRID folder"

    def _speaker_dirs(self) -> list[Path]:
        dirs = []
        for parent in (self.root, self.root / "video", self.root / "videos"):
            if parent.is_dir():
                dirs += [d for d in parent.iterdir() if d.is_dir() and _SPEAKER_DIR.match(d.name)]
        return sorted(dirs, key=lambda d: (int(d.name[1:]), str(d)))

    def _find(self, stem: str, places: list[Path]) -> Path | None:
        return next((p / stem for p in places if (p / stem).is_file()), None)

    def items(self) -> list[Item]:
        r = self.root
        items: list[Item] = []
        missing = 0
        for d in self._speaker_dirs():
            spk = d.name
            align_dirs = [d / "align", r / "align" / spk, r / "alignments" / spk, d, r / "align"]
            audio_dirs = [r / "audio" / spk, r / "audio_25k" / spk, r / "audio_50k" / spk,
                          d / "audio"]  # fmt: skip
            videos = sorted(p for p in d.rglob("*") if p.suffix.lower() in VIDEO_EXTS)
            for video in videos:
                align = self._find(video.stem + ".align", align_dirs)
                if align is None:
                    missing += 1
                    continue
                wav = self._find(video.stem + ".wav", [*audio_dirs, video.parent])
                uid = safe_id(f"{spk}-{video.stem}")
                data = {"video": str(video), "align": str(align)}
                if wav is not None:
                    data["audio"] = str(wav)
                items.append(self.item(uid, spk, data))
        if missing:
            log.warning("%s: %d GRID video(s) without an .align file skipped", r, missing)
        if not items:
            raise InputError(
                f"{r}: no GRID videos with alignments (expected s1/*.mpg and align/*.align)"
            )
        return self.first_n(items)

    def clip_inputs(self, item: Item) -> dict[str, Any]:
        d = item.data
        entries = read_align(Path(d["align"]))
        seq, times = grid_phonemes(entries)
        audio = Path(d["audio"]) if "audio" in d else None
        return {
            "text": " ".join(w.text for w in seq.words),
            "phonemes": seq,
            "audio": audio,
            "word_times": times,
            "source": {"align": d["align"], **({"audio": d["audio"]} if audio else {})},
        }
