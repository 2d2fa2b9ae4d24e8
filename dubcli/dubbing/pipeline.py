"""`dub_video`: one clip + its subtitles + a voice -> the dubbed clip, its track, subtitles, report.

DESIGN 3's flow, per cue: frames for the window (media.iter_frames) -> track_faces ->
visual_features -> engine -> speech (cuework.py); then the timeline places the cues, the mix adds
the background and normalizes loudness (mix.py), and the outputs are written next to each other
in out_dir (default: the video's folder); <base> is the input's stem, or its file name when a
sibling video shares the stem (outputs.py):

    <base>.dubbed.<ext>   the video stream copied, the dub as the default audio track
                          (ext: the input's if it can hold it, else .mkv)
    <base>.dub.wav        the final audio track (dub + background, loudness-normalized), 48 kHz
    <base>.dub.srt        the cues at the times the dub speaks them
    <base>.report.json    per cue: window, text, speaker, fit, engine, seed, stretch/tokens,
                          face frames, lip-sync estimate; the run's settings, loudness, timings,
                          and the identity (input, subtitles' hash, options) a rerun compares

A run holds the output's lock (`.<base>.dublock`; a second run on the same output waits), sweeps
the `.part` temporaries a killed run left, then decides (outputs.decide): skip (same input,
subtitles and options, every output there), redo (and say why), or refuse to replace a file
dubcli did not write (OutputError, exit 6) unless force. Every file is written atomically; the
report is written before the outputs with "complete": false (it claims them) and again last with
"complete": true and each file's size and time. The work folder of finished cues is removed when
the run ends, except after an interruption (Ctrl-C, SIGTERM, kill), where a rerun reuses it; an
output folder the run created is removed again when the run fails before writing into it.
Memory is bounded by the longest cue (frames stream per cue; finished cues wait on disk in the
work folder; the mix streams in blocks), never by the video's length.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dubcli.console import get_logger
from dubcli.dubbing.config import DubConfig
from dubcli.dubbing.outputs import (
    DubOutputs,
    decide,
    output_paths,
    read_report,
    reference_ids,
    run_identity,
)
from dubcli.dubbing.plan import DubPlan
from dubcli.engines.choose import engine_identity
from dubcli.errors import InputError, Interrupted, OutputError
from dubcli.fsutil import file_lock, remove_workdir, sweep_partials

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


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
    redo_reasons: tuple[str, ...] = ()  # why finished outputs were redone (status "done")

    def to_json(self) -> dict:
        out = {"input": str(self.video), "subtitles": str(self.subtitles), "status": self.status,
               "engine": self.engine, "outputs": self.outputs.as_dict(),
               "seconds": round(self.seconds, 3), "warnings": list(self.warnings)}  # fmt: skip
        if self.redo_reasons:
            out["redone_because"] = list(self.redo_reasons)
        if self.plan is not None:
            out["cues"] = len(self.plan.windows)
            out["skipped_cues"] = len(self.plan.skipped)
            out["skipped"] = [{"index": s.index, "text": s.text, "reason": s.reason}
                              for s in self.plan.skipped]  # fmt: skip
            out["plan"] = [{"index": w.index, "window": [round(w.start, 3), round(w.end, 3)],
                            "text": w.text, "speaker": w.speaker, "fit": w.fit.status,
                            "words_per_second": w.fit.wps} for w in self.plan.windows]  # fmt: skip
        if self.report is not None:
            out["loudness_lufs"] = self.report["loudness"]["after"]
        return out


def is_complete(outputs: DubOutputs) -> bool:
    """True when the report says complete and every output it lists exists."""
    report, _ = read_report(outputs.report)
    return bool(report and report.get("complete") is True) and all(
        p.is_file() for p in outputs.files().values()
    )


def dub_video(
    video: str | os.PathLike,
    subtitles: str | os.PathLike,
    config: DubConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    **options,
) -> DubResult:
    """Dub one video (see module doc) as `config` says (a DubConfig; `options` are DubConfig
    fields put in place, e.g. refs=["voice.wav"], engine="baseline"). out_dir None = the
    video's folder. Raises InputError / DependencyError / CheckpointError / OutputError /
    ProcessingError."""
    from dubcli import media
    from dubcli.dubbing.plan import plan_cues
    from dubcli.engines.choose import choose_engine
    from dubcli.text.subtitles import read_cues

    t_start = time.perf_counter()
    config = DubConfig.of(config, **options)
    video, subtitles = Path(video), Path(subtitles)
    info = media.probe(video)  # InputError: missing, truncated, not media
    if not info.has_video:
        raise InputError(f"{video}: has no video stream to dub")
    cues = read_cues(subtitles)  # InputError: missing, unreadable, no cues
    out_dir = Path(out_dir) if out_dir is not None else video.parent
    outputs = output_paths(video, out_dir)
    if outputs.video.resolve() == video.resolve():
        raise OutputError(f"{outputs.video}: the output would overwrite the input")
    engine_name, why = choose_engine(config.engine, config.checkpoint)
    if why:
        log.info("%s", why)
    config = dataclasses.replace(config, engine=engine_name)  # the engine chosen, from here on
    from dubcli.dubbing.cuework import Timers

    timers = Timers()
    if config.dry_run:
        plan = plan_cues(cues, info.duration)
        return DubResult(video, subtitles, "planned", outputs, engine_name, plan,
                         seconds=time.perf_counter() - t_start, warnings=plan.warnings)  # fmt: skip
    settings = {**engine_identity(engine_name, checkpoint=config.checkpoint,
                                  offline=config.offline, device=config.device),
                "refs": reference_ids(config.refs), "background": config.background,
                "lufs": config.lufs, "keep_original": config.keep_original,
                "widen_to_lips": config.widen_to_lips}  # fmt: skip
    if engine_name == "diflow":  # the baseline engine draws no random numbers and has no steps
        settings |= {"nfe": config.nfe, "seed": config.seed}

    def waiting(holder: str) -> None:
        log.warning("%s: another dubcli run (%s) is writing these outputs; waiting for it to "
                    "finish", outputs.report, holder)  # fmt: skip

    created = _make_folder(out_dir)
    done = working = False
    try:
        with file_lock(outputs.lock, on_wait=waiting):
            for path in (*outputs.files().values(), outputs.report):
                for p in sweep_partials(path):
                    log.info("%s: removed, left by a run that was killed", p)
            identity = run_identity(video, subtitles, out_dir, settings)
            decision = decide(outputs, identity, force=config.force)
            if decision.action == "skip":
                remove_workdir(outputs.work)  # a leftover of a run killed after its report
                log.info("%s: already dubbed with these subtitles and options (%s); skipped "
                         "(use --force to redo)", video, outputs.report)  # fmt: skip
                done = True
                return DubResult(video, subtitles, "skipped", outputs, engine_name,
                                 seconds=time.perf_counter() - t_start)  # fmt: skip
            if decision.action == "redo":
                log.info("%s: redoing %s: %s", video, outputs.report.name,
                         "; ".join(decision.reasons))  # fmt: skip
            working = True
            t_plan = time.perf_counter()
            plan = plan_cues(cues, info.duration)
            timers.add("plan", time.perf_counter() - t_plan)
            if not plan.windows:
                raise InputError(no_cue_message(subtitles, plan))
            from dubcli.dubbing.render import run_dub

            report = run_dub(video, subtitles, info, plan, outputs, config, progress=progress,
                             timers=timers, identity=identity, redo=decision.reasons)  # fmt: skip
            done = True
    except (KeyboardInterrupt, Interrupted):
        raise  # the work folder stays: a rerun reuses its finished cues
    except BaseException:
        # a refusal leaves an earlier run's cues alone (--force may reuse them), and so does an
        # error that a library made of a signal's exception (it is an interruption)
        if working and Interrupted.pending is None:
            remove_workdir(outputs.work)
        raise
    finally:
        if not done:
            _remove_empty(created)
    seconds = time.perf_counter() - t_start
    return DubResult(video, subtitles, "done", outputs, engine_name, plan, report, seconds,
                     tuple(report["warnings"]), decision.reasons)  # fmt: skip


def no_cue_message(subtitles: Path, plan: DubPlan) -> str:
    """'no cue can be dubbed' with each skipped cue's reason (the first few, then a count)."""
    reasons = [f"cue {s.index}: {s.reason}" for s in plan.skipped]
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return f"{subtitles}: no cue can be dubbed ({len(reasons)} skipped: {shown})"


def _make_folder(out_dir: Path) -> list[Path]:
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
        _remove_empty(created)
        raise OutputError(
            f"{out_dir}: output folder cannot be written ({exc.strerror or exc})"
        ) from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return  # not empty (or gone): leave it and its parents
