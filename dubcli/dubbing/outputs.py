"""Who owns the files a dub writes, and whether a rerun may skip, must redo, or must refuse.

Names. An input's outputs are `<base>.dubbed.<ext>`, `<base>.dub.wav`, `<base>.dub.srt` and
`<base>.report.json`, plus hidden helpers while it runs: `.<base>.dublock` (the lock) and
`.<base>.dubwork/` (finished cues, kept only for a rerun after an interruption). `<base>` is the
input's stem, or its whole file name when its folder holds another video with the same stem
(`clip.mp4` and `clip.mkv` -> `clip.mp4.dub.wav`, `clip.mkv.dub.wav`): names are unique per input.

Identity. The report records what made the result: the input video (path, size, modification
time), the subtitles (sha256 of their bytes), and every option that changes the result (engine and
its model's hash, references by path/size/mtime, background, loudness target, keep-original,
widen-to-lips, and for diflow nfe, seed and device type); and, per output file, its size and
modification time as written.

Decision (`decide`), before any work, under the output's lock:
- skip: the report is dubcli's, complete, for this input, with the same identity, and every
  output exists;
- redo (with the reasons): something in the identity differs, an output is missing, or an
  earlier run stopped before it finished (its report says "complete": false);
- refuse (OutputError, exit 6), unless --force: a file in the way was not written by dubcli
  (no report claims it), was changed after dubcli wrote it, or the report holds another input's
  dub (two inputs with the same name dubbed into one folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dubcli.errors import InputError, OutputError
from dubcli.hashing import sha256_file

MUXABLE = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv")
GENERATOR = "dubcli"
REPORT_VERSION = 2


@dataclass(frozen=True)
class DubOutputs:
    video: Path
    wav: Path
    srt: Path
    report: Path

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}

    def files(self) -> dict[str, Path]:
        """The three result files (the report is the record, not a result)."""
        return {"video": self.video, "wav": self.wav, "srt": self.srt}

    @property
    def base(self) -> str:
        return self.report.name[: -len(".report.json")]

    @property
    def lock(self) -> Path:
        return self.report.parent / f".{self.base}.dublock"

    @property
    def work(self) -> Path:
        return self.report.parent / f".{self.base}.dubwork"


def output_base(video: str | os.PathLike) -> str:
    """The input's stem, or its file name when a sibling video shares the stem (module doc)."""
    video = Path(video)
    try:
        siblings = [p for p in video.parent.iterdir()
                    if p.name != video.name and p.stem == video.stem
                    and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith(".")]  # fmt: skip
    except OSError:
        siblings = []
    return video.name if siblings else video.stem


def output_paths(
    video: str | os.PathLike, out_dir: str | os.PathLike, base: str | None = None
) -> DubOutputs:
    video, out_dir = Path(video), Path(out_dir)
    ext = video.suffix.lower() if video.suffix.lower() in MUXABLE else ".mkv"
    base = base or output_base(video)
    return DubOutputs(out_dir / f"{base}.dubbed{ext}", out_dir / f"{base}.dub.wav",
                      out_dir / f"{base}.dub.srt", out_dir / f"{base}.report.json")  # fmt: skip


# --- identity ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _file_id(path: Path, what: str) -> dict:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def run_identity(video: Path, subtitles: Path, out_dir: Path, settings: dict) -> dict:
    """What made a result (module doc): input, subtitles' hash, settings (already plain data)."""
    src = _file_id(video, "video")
    src["relative"] = os.path.relpath(src["path"], Path(out_dir).resolve())
    return {
        "input": src,
        "subtitles": {"path": str(subtitles.resolve()), "sha256": _sha256(subtitles)},
        "settings": settings,
    }


def reference_ids(refs) -> list[dict] | str:
    """--ref values -> [{name, path, size, mtime_ns}] (sorted by name); none: the video's own."""
    from dubcli.dubbing.voices import parse_ref

    if not refs:
        return "the video's own speech"
    out = []
    for value in refs:
        name, path = parse_ref(value)
        out.append({"name": name.casefold() if name else None, **_file_id(path, "reference")})
    return sorted(out, key=lambda r: (r["name"] or "", r["path"]))


def file_stats(outputs: DubOutputs) -> dict[str, dict]:
    """{video|wav|srt: {size, mtime_ns}} of the files as written (recorded in the report)."""
    out = {}
    for key, path in outputs.files().items():
        st = path.stat()
        out[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return out


_LABELS = {
    "engine": "--engine",
    "engine_id": "the engine's model or version",
    "refs": "--ref",
    "background": "--background",
    "lufs": "--lufs",
    "keep_original": "--keep-original",
    "widen_to_lips": "--widen-to-lips",
    "nfe": "--nfe",
    "seed": "--seed",
    "device": "the device type",
}


def differences(old: dict, new: dict) -> list[str]:
    """Why a recorded identity does not match the current one (empty: it matches)."""
    out = []
    a, b = old.get("input") or {}, new["input"]
    if (a.get("size"), a.get("mtime_ns")) != (b["size"], b["mtime_ns"]):
        out.append("the video changed since it was dubbed")
    if (old.get("subtitles") or {}).get("sha256") != new["subtitles"]["sha256"]:
        out.append("the subtitles changed")
    sa, sb = old.get("settings") or {}, new["settings"]
    for key in sorted(set(sa) | set(sb), key=lambda k: list(_LABELS).index(k)
                      if k in _LABELS else len(_LABELS)):  # fmt: skip
        if sa.get(key) != sb.get(key):
            label = _LABELS.get(key, key)
            if key == "refs":
                out.append("--ref changed (another file, or the file changed)")
            elif key in sa and key in sb:
                out.append(f"{label} changed ({_show(sa[key])} -> {_show(sb[key])})")
            else:
                out.append(f"{label} changed")
    return out


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


# --- reports and the decision --------------------------------------------------------------------


def read_report(path: Path) -> tuple[dict | None, str | None]:
    """(dubcli's report, None) | (None, why the file there is not one) | (None, None): none."""
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None, "exists and is not a dubcli report"
    ours = isinstance(data, dict) and (
        data.get("generator") == GENERATOR
        or (data.get("version") == 1 and "cues" in data and "engine" in data)  # dubcli <= 0.1
    )
    return (data, None) if ours else (None, "exists and is not a dubcli report")


def _same_input(report: dict, identity: dict) -> bool:
    new = identity["input"]
    old = (report.get("identity") or {}).get("input")
    if old is None:  # an older report: the video's path as it was given
        given = Path(str((report.get("input") or {}).get("video", "")))
        return given.name == Path(new["path"]).name
    if old.get("path") == new["path"]:
        return True
    # the same file after the folder holding it and its outputs moved
    return (old.get("relative"), old.get("size"), old.get("mtime_ns")) == (
        new["relative"], new["size"], new["mtime_ns"])  # fmt: skip


def report_input(report: dict) -> str:
    old = (report.get("identity") or {}).get("input") or {}
    return str(old.get("path") or (report.get("input") or {}).get("video") or "another input")


@dataclass(frozen=True)
class Decision:
    action: str  # "new" | "skip" | "redo"
    reasons: tuple[str, ...] = ()


def _refuse(path: Path, why: str) -> OutputError:
    return OutputError(f"{path}: {why}; not replaced (use --force to replace it, or another "
                       "--output-dir)")  # fmt: skip


def decide(outputs: DubOutputs, identity: dict, *, force: bool) -> Decision:
    """skip | redo | new for these outputs (module doc); OutputError when a file is in the way."""
    files = outputs.files()
    exists = {k: p for k, p in files.items() if p.exists()}
    if force:
        anything = exists or outputs.report.exists()
        return Decision("redo" if anything else "new", ("--force",) if anything else ())
    report, problem = read_report(outputs.report)
    if report is None:
        if problem:
            raise _refuse(outputs.report, problem)
        for path in exists.values():
            raise _refuse(path, "exists and was not written by dubcli (no report claims it)")
        return Decision("new")
    if not _same_input(report, identity):
        raise _refuse(outputs.report, f"holds the dub of {report_input(report)}, not of "
                      f"{identity['input']['path']}")  # fmt: skip
    if report.get("complete") is not True:
        return Decision("redo", ("an earlier run stopped before it finished",))
    recorded = report.get("identity")
    if recorded is None:
        reasons = ["it was made by an older dubcli that did not record its options"]
    else:
        reasons = differences(recorded, identity)
    missing = [p for k, p in files.items() if k not in exists]
    if not reasons and not missing:
        return Decision("skip")
    stats = report.get("files") or {}
    for key, path in exists.items():
        st, rec = path.stat(), stats.get(key)
        if rec is not None and (st.st_size, st.st_mtime_ns) != (rec["size"], rec["mtime_ns"]):
            raise _refuse(path, "was changed after dubcli wrote it")
    reasons += [f"{p.name} is missing" for p in missing]
    return Decision("redo", tuple(reasons))


def pending_report(video: Path, subtitles: Path, outputs: DubOutputs, identity: dict) -> dict:
    """The report written before the outputs: it claims them, and says the run is unfinished."""
    return {
        "generator": GENERATOR,
        "version": REPORT_VERSION,
        "complete": False,
        "input": {"video": str(video), "subtitles": str(subtitles)},
        "outputs": outputs.as_dict(),
        "identity": identity,
    }


def make_folder(out_dir: Path) -> list[Path]:
    """Create out_dir (and missing parents); the folders created, deepest first. OutputError if
    it cannot be made or written."""
    created, p = [], out_dir
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        remove_empty(created)
        raise OutputError(
            f"{out_dir}: output folder cannot be written ({exc.strerror or exc})"
        ) from None
    return created


def remove_empty(folders: list[Path]) -> None:
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return  # not empty (or gone): leave it and its parents
