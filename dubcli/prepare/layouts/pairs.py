"""The `pairs` layout: the user's own videos, each with a same-stem transcript.

    DATA/
      speakers.tsv            optional: "<stem or relative path without suffix>\t<speaker>"
      alice/intro.mp4         + alice/intro.txt   -> one utterance (the whole video)
      alice/talk.mkv          + alice/talk.srt    -> one utterance per spoken cue
      train/ valid/ test/     optional: with --splits folders (or auto, when they exist), the
                              first folder level gives the split

Transcripts: .txt (the whole clip says this text), or subtitles .srt/.vtt/.ass (each cue with
speech is a clip [start, end); sound-only cues are skipped). Videos: mp4 mkv mov avi webm mpg
m4v. A video without a transcript is skipped with a warning.
Speaker, first that applies: --speaker; speakers.tsv; the cue's speaker tag; the folder holding
the video (below the split folder); DATA's own name.
Split: from folders (see above), else a seeded hash of the item id (80/10/10).
Item ids: the relative path without suffix, '/' -> '__', plus '-<cue>' for subtitle cues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dubcli.console import get_logger
from dubcli.data.manifest import SPLITS
from dubcli.errors import InputError
from dubcli.prepare.layouts import VIDEO_EXTS, Item, ItemFailed, safe_id
from dubcli.prepare.layouts.clip import FolderLayout

log = get_logger(__name__)
TEXT_EXTS = (".txt", ".srt", ".vtt", ".ass", ".ssa")
SPLIT_MODES = ("auto", "folders", "hash")


def read_speakers_tsv(path: Path) -> dict[str, str]:
    """'key<TAB>speaker' lines ('#' comments, blank lines ignored; a header 'stem speaker' ok)."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the speaker map ({exc})") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts if p.strip()]
        if len(parts) != 2:
            raise InputError(f"{path}:{lineno}: expected '<stem>\\t<speaker>', got {line!r}")
        if lineno == 1 and parts[0].lower() in ("stem", "file", "video", "id"):
            continue
        out[parts[0]] = parts[1]
    return out


def read_text_file(path: Path) -> str:
    """A .txt transcript as one line; ItemFailed when unreadable or empty."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ItemFailed(f"{path}: cannot read the transcript ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    text = " ".join(text.split())
    if not text:
        raise ItemFailed(f"{path}: the transcript is empty")
    return text


class PairsLayout(FolderLayout):
    name = "pairs"
    needs = "a folder of videos with transcripts"

    def __init__(
        self,
        data: Any,
        *,
        n: int | None = None,
        seed: int = 0,
        speaker: str | None = None,
        splits: str = "auto",
    ):
        super().__init__(data, n=n, seed=seed)
        if splits not in SPLIT_MODES:
            raise InputError(f"--splits {splits!r}: expected one of {', '.join(SPLIT_MODES)}")
        self.speaker, self.splits = speaker, splits

    def describe(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "splits": self.splits}

    def _split_mode(self) -> str:
        if self.splits != "auto":
            return self.splits
        return "folders" if any((self.root / s).is_dir() for s in SPLITS) else "hash"

    def items(self) -> list[Item]:
        tsv = self.root / "speakers.tsv"
        spk_map = read_speakers_tsv(tsv) if tsv.is_file() else {}
        mode = self._split_mode()
        videos = sorted(
            p
            for p in self.root.rglob("*")
            if p.suffix.lower() in VIDEO_EXTS
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )
        items: list[Item] = []
        missing = 0
        for video in videos:
            text_file = next(
                (video.with_suffix(e) for e in TEXT_EXTS if video.with_suffix(e).is_file()), None
            )
            if text_file is None:
                missing += 1
                continue
            rel = video.relative_to(self.root).with_suffix("")
            parts = rel.parts
            if mode == "folders":
                if parts[0] not in SPLITS or len(parts) < 2:
                    raise InputError(
                        f"{video}: not under train/, valid/ or test/ (splits come from folders; "
                        "use --splits hash to assign them by hash)"
                    )
                split, inner = parts[0], parts[1:]
            else:
                split, inner = None, parts
            folder = inner[-2] if len(inner) > 1 else self.root.resolve().name
            fixed = self.speaker or spk_map.get(rel.as_posix()) or spk_map.get(video.stem)
            base = safe_id(rel.as_posix())
            data = {"video": str(video), "text_file": str(text_file)}
            for uid, spk, extra in self._clips(base, text_file, data):
                speaker = fixed or spk or folder
                items.append(self.item(uid, speaker, {**data, **extra}, split))
        if missing:
            log.warning(
                "%s: %d video(s) without a same-stem transcript skipped", self.root, missing
            )
        if not items:
            raise InputError(
                f"{self.root}: no videos with a same-stem transcript ({', '.join(TEXT_EXTS)})"
            )
        return self.first_n(items)

    def _clips(self, base: str, text_file: Path, data: dict):
        """(id, speaker or None, payload) per utterance of one transcript."""
        if text_file.suffix.lower() == ".txt":
            return [(base, None, {})]
        from dubcli.text.subtitles import read_cues

        try:
            cues = read_cues(text_file)
        except InputError as exc:  # a broken subtitle file fails its item, not the run
            return [(base, None, {"error": exc.message})]
        out = []
        for cue in cues:
            text = cue.speech_text.strip()
            if text:
                extra = {"text": text, "start": cue.start, "end": cue.end}
                out.append((f"{base}-{cue.index:04d}", cue.speaker, extra))
        return out or [(base, None, {"error": f"{text_file}: no cue with speech"})]

    def _text(self, item: Item) -> str:
        if "error" in item.data:
            raise ItemFailed(item.data["error"], "text")
        if "text" in item.data:
            return item.data["text"]
        return read_text_file(Path(item.data["text_file"]))

    def clip_inputs(self, item: Item) -> dict[str, Any]:
        d = item.data
        return {
            "text": self._text(item),
            "start": d.get("start"),
            "end": d.get("end"),
            "source": {"text": d["text_file"]},
        }
