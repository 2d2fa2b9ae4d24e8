"""The `chem` layout: a clip list in the style of Chem / V2C (one row per spoken line).

DATA is the list file, or a folder holding one named clips.{csv,tsv,json,jsonl} or
metadata.{csv,tsv,json,jsonl}. Formats: CSV (comma), TSV (tab), JSON (a list of objects, or
{"clips": [...]}), JSON Lines (one object a line). Columns / keys (case-insensitive; the first
alias present is used):

    video    video | clip | path | file | video_path    required: the clip (or the full video)
    text     text | transcript | sentence | subtitle     required: what is said
    speaker  speaker | character | spk                    optional (default: --speaker, else
                                                          the list file's folder name)
    start    start | start_time | begin                   optional, seconds (or HH:MM:SS.mmm)
    end      end | end_time | stop                        optional, seconds (or HH:MM:SS.mmm)
    split    split | subset                               optional: train | valid (val, dev) |
                                                          test; else a seeded hash of the id
    id       id | utt_id | name                           optional (default: the video's stem,
                                                          plus -<start ms> when start is given)
    audio    audio | wav | audio_path                     optional: a separate audio file

Relative paths are resolved against the list file's folder. A row with a bad value (a number
that is not one, an unknown split) fails that item with a reason; a list without the required
columns, or with duplicate ids, is an InputError for the whole run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.errors import InputError
from dubcli.prepare.layouts import Context, Extracted, Item, ItemFailed, Layout, hash_split, safe_id

COLUMNS: dict[str, tuple[str, ...]] = {
    "video": ("video", "clip", "path", "file", "video_path"),
    "text": ("text", "transcript", "sentence", "subtitle"),
    "speaker": ("speaker", "character", "spk"),
    "start": ("start", "start_time", "begin"),
    "end": ("end", "end_time", "stop"),
    "split": ("split", "subset"),
    "id": ("id", "utt_id", "name"),
    "audio": ("audio", "wav", "audio_path"),
}
LIST_NAMES = [f"{stem}.{ext}" for stem in ("clips", "metadata") for ext in ("csv", "tsv", "json", "jsonl")]  # fmt: skip
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid",
                  "validation": "valid", "test": "test"}  # fmt: skip


def find_list(data: Path) -> Path:
    if data.is_dir():
        found = next((data / n for n in LIST_NAMES if (data / n).is_file()), None)
        if found is None:
            raise InputError(f"{data}: no clip list here (expected one of {', '.join(LIST_NAMES)})")
        return found
    if not data.is_file():
        raise InputError(f"{data}: clip list not found")
    return data


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV/JSON/JSONL list as dicts with lower-case keys."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the clip list ({exc})") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif suffix == ".json":
            data = json.loads(text)
            rows = data.get("clips") if isinstance(data, dict) else data
        elif suffix in (".csv", ".tsv"):
            rows = list(
                csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
            )
        else:
            raise InputError(f"{path}: unknown clip list format (use .csv .tsv .json .jsonl)")
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: bad JSON ({exc})") from exc
    except csv.Error as exc:
        raise InputError(f"{path}: bad CSV ({exc})") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path}: expected a list of clip objects")
    return [{str(k).strip().lower(): v for k, v in r.items() if k is not None} for r in rows]


def _column(keys: set[str], field: str) -> str | None:
    return next((a for a in COLUMNS[field] if a in keys), None)


def _seconds(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        from dubcli.text.subtitles import parse_timestamp

        try:
            return parse_timestamp(text)
        except (ValueError, InputError):
            raise ItemFailed(f"{what}: {text!r} is not a time in seconds", "text") from None


class ChemLayout(Layout):
    name = "chem"

    def __init__(
        self, data: Any, *, n: int | None = None, seed: int = 0, speaker: str | None = None
    ):
        if data is None:
            raise InputError("the chem layout needs DATA: a clip list (.csv .tsv .json .jsonl)")
        self.list = find_list(Path(data))
        self.n, self.seed, self.speaker = n, int(seed), speaker

    def describe(self) -> dict[str, Any]:
        return {"speaker": self.speaker}

    def items(self) -> list[Item]:
        rows = read_rows(self.list)
        if not rows:
            raise InputError(f"{self.list}: the clip list is empty")
        keys = set().union(*(r.keys() for r in rows))
        cols = {f: _column(keys, f) for f in COLUMNS}
        for need in ("video", "text"):
            if cols[need] is None:
                raise InputError(
                    f"{self.list}: no {need} column (one of {', '.join(COLUMNS[need])})"
                )
        base = self.list.parent
        items, seen = [], {}
        for k, row in enumerate(rows, 1):
            where = f"{self.list} row {k}"
            get = {f: (row.get(c) if c else None) for f, c in cols.items()}
            data: dict[str, Any] = {"row": k}
            try:
                video = str(get["video"] or "").strip()
                if not video:
                    raise ItemFailed(f"{where}: no video path")
                data["video"] = str(base / video)
                data["text"] = " ".join(str(get["text"] or "").split())
                start, end = _seconds(get["start"], where), _seconds(get["end"], where)
                if start is not None:
                    data["start"] = start
                if end is not None:
                    data["end"] = end
                if get["audio"]:
                    data["audio"] = str(base / str(get["audio"]).strip())
                split = str(get["split"] or "").strip().lower()
                if split and split not in _SPLIT_ALIASES:
                    raise ItemFailed(f"{where}: split {split!r} is not train, valid or test")
            except ItemFailed as exc:
                data["error"] = exc.reason
                video, start, split = str(get["video"] or f"row{k}"), None, ""
            uid = str(get["id"] or "").strip() or Path(video).stem + (
                f"-{int(round(start * 1000))}" if start is not None else ""
            )
            uid = safe_id(uid)
            if uid in seen:
                raise InputError(f"{self.list}: rows {seen[uid]} and {k} have the same id {uid!r}")
            seen[uid] = k
            speaker = str(get["speaker"] or "").strip() or self.speaker or base.resolve().name
            split = _SPLIT_ALIASES.get(split) or hash_split(uid, self.seed)
            items.append(Item(uid, split, speaker, data))
        return items[: self.n] if self.n is not None else items

    def audio(self, item: Item) -> np.ndarray:
        from dubcli.media import decode_audio

        d = item.data
        if "error" in d:
            raise ItemFailed(d["error"], "text")
        return decode_audio(d.get("audio") or d["video"], start=d.get("start"), end=d.get("end"))

    def extract(self, item: Item, ctx: Context) -> Extracted:
        from dubcli.prepare.layouts.clip import extract_clip

        d = item.data
        if "error" in d:
            raise ItemFailed(d["error"], "text")
        if not d["text"]:
            raise ItemFailed(f"{self.list} row {d['row']}: empty text", "text")
        audio = Path(d["audio"]) if "audio" in d else None
        return extract_clip(
            Path(d["video"]),
            name=item.id,
            text=d["text"],
            start=d.get("start"),
            end=d.get("end"),
            audio=audio,
            source={"list": f"{self.list}:{d['row']}"},
        )
