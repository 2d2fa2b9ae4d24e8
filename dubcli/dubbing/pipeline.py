"""`dub_video`: one clip + its subtitles + a voice -> the dubbed clip, its track, subtitles, report.

DESIGN 3's flow, per cue: frames for the window (media.iter_frames) -> track_faces ->
visual_features -> engine -> speech (cuework.py); then the timeline places the cues, the mix adds
the background and normalizes loudness (mix.py), and the outputs are written next to each other
in out_dir (default: the video's folder):

    <stem>.dubbed.<ext>   the video stream copied, the dub as the default audio track
                          (ext: the input's if it can hold it, else .mkv)
    <stem>.dub.wav        the final audio track (dub + background, loudness-normalized), 48 kHz
    <stem>.dub.srt        the cues at the times the dub speaks them
    <stem>.report.json    per cue: window, text, speaker, fit, engine, seed, stretch/tokens,
                          face frames, lip-sync estimate; the run's settings, loudness, timings

Every file is written atomically, the report last: a report with "complete": true means all four
exist and are finished; such an item is skipped unless force. Memory is bounded by the longest
cue (frames stream per cue; finished cues wait on disk in the work folder; the mix streams in
blocks), never by the video's length.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dubcli.console import get_logger
from dubcli.dubbing.plan import DubPlan
from dubcli.errors import InputError, OutputError

log = get_logger(__name__)

MUXABLE = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class DubOutputs:
    video: Path
    wav: Path
    srt: Path
    report: Path

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class DubResult:
    video: Path
    subtitles: Path
    status: str  # "done" | "skipped" (outputs were complete) | "planned" (dry run)
    outputs: DubOutputs
    engine: str
    plan: DubPlan | None = None
    report: dict | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        out = {"input": str(self.video), "subtitles": str(self.subtitles), "status": self.status,
               "engine": self.engine, "outputs": self.outputs.as_dict(),
               "seconds": round(self.seconds, 3), "warnings": list(self.warnings)}  # fmt: skip
        if self.plan is not None:
            out["cues"] = len(self.plan.windows)
            out["skipped_cues"] = len(self.plan.skipped)
            out["plan"] = [{"index": w.index, "window": [round(w.start, 3), round(w.end, 3)],
                            "text": w.text, "speaker": w.speaker, "fit": w.fit.status,
                            "words_per_second": w.fit.wps} for w in self.plan.windows]  # fmt: skip
        if self.report is not None:
            out["loudness_lufs"] = self.report["loudness"]["after"]
        return out


def output_paths(video: str | os.PathLike, out_dir: str | os.PathLike) -> DubOutputs:
    video, out_dir = Path(video), Path(out_dir)
    ext = video.suffix.lower() if video.suffix.lower() in MUXABLE else ".mkv"
    stem = video.stem
    return DubOutputs(out_dir / f"{stem}.dubbed{ext}", out_dir / f"{stem}.dub.wav",
                      out_dir / f"{stem}.dub.srt", out_dir / f"{stem}.report.json")  # fmt: skip


def is_complete(outputs: DubOutputs) -> bool:
    """True when the report says complete and every output it lists exists."""
    try:
        report = json.loads(outputs.report.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    files = (outputs.video, outputs.wav, outputs.srt)
    return bool(report.get("complete")) and all(p.is_file() for p in files)


def _ensure_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise OutputError(
            f"{out_dir}: output folder cannot be written ({exc.strerror or exc})"
        ) from None


def dub_video(
    video: str | os.PathLike,
    subtitles: str | os.PathLike,
    *,
    refs: Sequence[str] = (),
    engine: str | None = None,
    checkpoint: str | None = None,
    offline: bool = False,
    out_dir: str | os.PathLike | None = None,
    background: str = "duck",
    lufs: float | None = -16.0,
    keep_original: bool = False,
    widen_to_lips: bool = False,
    nfe: int = 8,
    seed: int = 0,
    device: str = "auto",
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> DubResult:
    """Dub one video (see module doc). refs: '--ref' values, 'voice.wav' or 'NAME=voice.wav';
    none = the video's own speech. engine None = the default rule of dubbing.engine.
    Raises InputError / DependencyError / CheckpointError / OutputError / ProcessingError."""
    from dubcli import media
    from dubcli.dubbing.engine import choose_engine
    from dubcli.dubbing.plan import plan_cues
    from dubcli.text.subtitles import read_cues

    t_start = time.perf_counter()
    video, subtitles = Path(video), Path(subtitles)
    info = media.probe(video)  # InputError: missing, truncated, not media
    if not info.has_video:
        raise InputError(f"{video}: has no video stream to dub")
    cues = read_cues(subtitles)  # InputError: missing, unreadable, no cues
    out_dir = Path(out_dir) if out_dir is not None else video.parent
    outputs = output_paths(video, out_dir)
    if outputs.video.resolve() == video.resolve():
        raise OutputError(f"{outputs.video}: the output would overwrite the input")
    engine_name, why = choose_engine(engine, checkpoint)
    if why:
        log.info("%s", why)
    if not force and not dry_run and is_complete(outputs):
        log.info("%s: already dubbed (%s); skipped (use --force to redo)", video, outputs.report)
        return DubResult(video, subtitles, "skipped", outputs, engine_name,
                         seconds=time.perf_counter() - t_start)  # fmt: skip
    from dubcli.dubbing.cuework import Timers

    timers = Timers()
    t_plan = time.perf_counter()
    plan = plan_cues(cues, info.duration)
    timers.add("plan", time.perf_counter() - t_plan)
    if dry_run:
        return DubResult(video, subtitles, "planned", outputs, engine_name, plan,
                         seconds=time.perf_counter() - t_start, warnings=plan.warnings)  # fmt: skip
    if not plan.windows:
        raise InputError(f"{subtitles}: no cue can be dubbed ({len(plan.skipped)} skipped)")
    _ensure_writable(out_dir)
    from dubcli.dubbing.render import run_dub

    report = run_dub(video, subtitles, info, plan, outputs, engine_name=engine_name,
                     checkpoint=checkpoint, offline=offline, refs=refs, background=background,
                     lufs=lufs, keep_original=keep_original, widen=widen_to_lips, nfe=nfe,
                     seed=seed, device=device, progress=progress, timers=timers)  # fmt: skip
    seconds = time.perf_counter() - t_start
    return DubResult(video, subtitles, "done", outputs, engine_name, plan, report, seconds,
                     tuple(report["warnings"]))  # fmt: skip


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
