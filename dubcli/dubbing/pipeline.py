"""`dub_video`: one clip + its subtitles + a voice -> the dubbed clip, its track, subtitles, report.

DESIGN 3's flow, per cue: frames for the window (cueframes.py) -> track_faces ->
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

The engine is chosen once per dub (`resolve_engine`: the command, dub_batch, or dub_video when
the config names none) and made once per process (engines.choose.create_engine). Cues travel as
typed `CueRecord`s and the run as a `DubReport` (report.py) to the report file.

Order of writes: finished cues into the work folder, the claim, the track, the subtitles, the
video, the final report (the marker outputs.decide trusts); killed anywhere, a rerun redoes only
what is missing. A write that fails for the disk's sake (full, read-only, denied, quota) is an
OutputError (exit 6) naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dubcli.console import get_logger
from dubcli.dubbing.config import DubConfig
from dubcli.dubbing.outputs import (
    DubOutputs,
    decide,
    file_stats,
    make_folder,
    output_paths,
    pending_report,
    read_report,
    reference_ids,
    remove_empty,
    run_identity,
)
from dubcli.dubbing.plan import DubPlan, no_cue_message, summarize
from dubcli.dubbing.report import (
    CueRecord,
    DubReport,
    background_json,
    input_json,
    loudness_json,
    voices_json,
)
from dubcli.engines.choose import ENGINES, engine_identity
from dubcli.errors import InputError, Interrupted, OutputError, raise_if_interrupted
from dubcli.fsutil import file_lock, remove_workdir, sweep_partials
from dubcli.timing import SAMPLE_RATE

if TYPE_CHECKING:
    from dubcli.dubbing.cuework import Timers
    from dubcli.media.probe import MediaInfo

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
    report: DubReport | None = None
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
            out["loudness_lufs"] = self.report.loudness["after"]
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
    from dubcli.dubbing.cuework import Timers
    from dubcli.dubbing.plan import plan_cues
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
    if config.engine is None:
        config = resolve_engine(config)  # the engine chosen, from here on
    elif config.engine not in ENGINES:
        raise InputError(f"unknown engine {config.engine!r} (choose from {', '.join(ENGINES)})")
    engine_name = config.engine
    timers = Timers()
    if config.dry_run:
        plan = plan_cues(cues, info.duration)
        return DubResult(video, subtitles, "planned", outputs, engine_name, plan,
                         seconds=time.perf_counter() - t_start, warnings=plan.warnings)  # fmt: skip
    settings = {**engine_identity(engine_name, checkpoint=config.checkpoint,
                                  offline=config.offline, device=config.device,
                                  temperature=config.temperature),
                "refs": reference_ids(config.refs), "background": config.background,
                "lufs": config.lufs, "keep_original": config.keep_original,
                "widen_to_lips": config.widen_to_lips}  # fmt: skip
    if engine_name == "diflow":  # the baseline engine draws no random numbers and has no steps
        settings |= {"nfe": config.nfe, "seed": config.seed}

    def waiting(holder: str) -> None:
        log.warning("%s: another dubcli run (%s) is writing these outputs; waiting for it to "
                    "finish", outputs.report, holder)  # fmt: skip

    created = make_folder(out_dir)
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
            job = DubJob(video, subtitles, info, plan, outputs, config, timers, progress,
                         started=t_start)  # fmt: skip
            report = run_dub(job, identity=identity, redo=decision.reasons)
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
            remove_empty(created)
    seconds = time.perf_counter() - t_start
    return DubResult(video, subtitles, "done", outputs, engine_name, plan, report, seconds,
                     report.warnings, decision.reasons)  # fmt: skip


def resolve_engine(config: DubConfig) -> DubConfig:
    """`config` with the engine that dubs: engines.choose's rule and checks (its message logged
    once). Called once per dub: by `dubcli dub`, else by dub_batch / dub_video when the config
    names no engine (a config that names one was resolved by its maker)."""
    from dubcli.engines.choose import choose_engine

    name, why = choose_engine(config.engine, config.checkpoint)
    if why:
        log.info("%s", why)
    return dataclasses.replace(config, engine=name)


@dataclass(frozen=True)
class DubJob:
    """One planned dub run: what the steps after planning share."""

    video: Path
    subtitles: Path
    info: MediaInfo  # the video's probe
    plan: DubPlan
    outputs: DubOutputs
    config: DubConfig  # with the engine chosen
    timers: Timers  # seconds per stage, accumulated over the run (stages overlap: cues are
    # prepared beside the engine or between its calls, schedule.run_cues)
    progress: Progress | None = None
    started: float = field(default_factory=time.perf_counter)  # the run's start (perf_counter)

    def tick(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(stage, done, total)


def run_dub(job: DubJob, *, identity: dict | None = None, redo: Sequence[str] = ()) -> DubReport:
    """Everything after planning: voices, cues, timeline, mix, outputs; returns the report
    (also written to outputs.report). identity: what outputs.run_identity recorded for this run;
    redo: why it redoes old outputs."""
    from dubcli.dubbing.mix import MIX_RATE, resolve_background
    from dubcli.dubbing.report import skipped_json
    from dubcli.dubbing.timeline import place
    from dubcli.fsutil import is_write_error, write_error

    warnings = list(job.plan.warnings)
    engine, voices = _engine_and_voices(job, warnings)
    records, paths = _dub_cues(job, engine, voices)
    run_notes = [("face", r.index, f"cue {r.index}: {n}", n) for r in records
                 for n in r.notes if n.startswith("no face")]  # fmt: skip

    # timeline at the mix rate: speech placed at each (final) window start
    total = int(round(job.info.duration * MIX_RATE))
    ratio = MIX_RATE // SAMPLE_RATE
    lengths = {r.index: r.audio_samples * ratio for r in records}
    placements = place([(r.index, r.window[0], lengths[r.index]) for r in records], MIX_RATE,
                       total)  # fmt: skip
    by_index = {p.index: p for p in placements}
    intervals, placed = [], []
    for r in records:
        p = by_index[r.index]
        s = p.start + int(r.speech[0] * MIX_RATE)
        e = min(p.end, p.start + int(r.speech[1] * MIX_RATE))
        if e > s:
            intervals.append((s, e))
        notes = r.notes
        if p.cut > 0:
            msg = f"{p.cut / MIX_RATE:.2f} s of speech cut at the next cue / the video's end"
            notes = (*notes, msg)
            run_notes.append(("cut", r.index, f"cue {r.index}: {msg}",
                              "speech cut at the next cue / the video's end"))  # fmt: skip
        placed.append(dataclasses.replace(
            r, placed=(round(p.start / MIX_RATE, 3), round(p.end / MIX_RATE, 3)),
            cut_seconds=round(p.cut / MIX_RATE, 3), notes=notes))  # fmt: skip
    for msg in summarize(run_notes):  # one line per kind when many cues share it
        log.info("%s: %s", job.video, msg)
        warnings.append(msg)

    info = job.info
    channels_in = (info.audio_streams[0].channels or 2) if info.has_audio else 0
    bg = resolve_background(job.config.background, channels_in)
    if bg.note:
        log.warning("%s: %s", job.video, bg.note)
        warnings.append(bg.note)
    raise_if_interrupted()
    try:  # the writes: a failure for the disk's sake is an OutputError naming the file
        mix = _write_media(job, placed, paths, by_index, intervals, bg, identity, lengths, total)
        report = DubReport(
            input=input_json(job.video, job.subtitles, info), outputs=job.outputs.as_dict(),
            engine={"name": engine.name, "fingerprint": engine.fingerprint(),
                    "checkpoint": job.config.checkpoint},
            seed=job.config.seed, nfe=job.config.nfe, widen_to_lips=job.config.widen_to_lips,
            keep_original=job.config.keep_original, voices=voices_json(voices),
            background=background_json(bg), loudness=loudness_json(job.config.lufs, mix),
            timings={k: round(v, 3) for k, v in job.timers.seconds.items()},
            real_time_factor=round((time.perf_counter() - job.started) / max(info.duration, 1e-3),
                                   3),
            warnings=tuple(warnings), skipped=skipped_json(job.plan), cues=tuple(placed),
            identity=identity, redone_because=tuple(redo), files=file_stats(job.outputs),
        )  # fmt: skip
        _write_json(job.outputs.report, report.to_json())
    except Exception as exc:
        if is_write_error(exc):
            raise write_error(getattr(exc, "filename", None) or job.outputs.report.parent,
                              exc) from exc  # fmt: skip
        raise
    remove_workdir(job.outputs.work)
    return report


def _engine_and_voices(job: DubJob, warnings: list[str]):
    """The engine (made once per process) and the reference voices, checked against the plan."""
    from dubcli.dubbing.voices import load_voices, video_voices
    from dubcli.engines.choose import create_engine

    c, windows = job.config, job.plan.windows
    with job.timers.stage("voices"):
        engine = create_engine(c.engine, checkpoint=c.checkpoint, offline=c.offline,
                               device=c.device, temperature=c.temperature)  # fmt: skip
        if c.refs:
            voices = load_voices(c.refs)
        else:
            voices = video_voices(job.video, [(w.speaker, w.start, w.end) for w in windows])
        for msg in voices.check([w.speaker for w in windows]):
            log.warning("%s: %s", job.video, msg)
            warnings.append(msg)
    return engine, voices


def _dub_cues(job: DubJob, engine, voices) -> tuple[list[CueRecord], dict[int, Path]]:
    """Every cue's speech, from the work folder when an unfinished run left it there; returns
    the records and the cached file of each cue."""
    from dubcli.dubbing import schedule
    from dubcli.fsutil import write_error

    video, work, config = job.video, job.outputs.work, job.config
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(work, exc) from exc
    video_id = f"{video.resolve()}:{video.stat().st_size}:{video.stat().st_mtime_ns}"
    records, paths, reused = [], {}, 0
    windows = list(job.plan.windows)
    cues = schedule.run_cues(video, job.info, windows, work, voices=voices, engine=engine,
                            config=config, timers=job.timers, video_id=video_id)  # fmt: skip
    with contextlib.closing(cues):  # an error here stops its preparing threads at once
        for i, record, path, was_cached in cues:
            raise_if_interrupted()
            reused += was_cached
            records.append(record)
            paths[record.index] = path
            job.tick("cues", i + 1, len(windows))
    if reused:
        log.info("%s: %d of %d cues reused from an earlier, unfinished run", video, reused,
                 len(windows))  # fmt: skip
    return records, paths


def _write_media(job: DubJob, records, paths, by_index, intervals, bg, identity, lengths, total):
    """The claim (a report with "complete": false), the mixed track, the subtitles and the muxed
    video, in that order; returns the mix's MixStats."""
    import numpy as np

    from dubcli import media
    from dubcli.dubbing import cuework
    from dubcli.dubbing.mix import MIX_RATE, render_mix
    from dubcli.dubbing.timeline import TimelineRenderer
    from dubcli.fsutil import atomic_write_text, is_write_error, write_error
    from dubcli.text.subtitles import Cue, write_srt

    video, outputs, timers = job.video, job.outputs, job.timers

    def load(index: int) -> np.ndarray:
        import soxr

        wav = cuework.load_cached(paths[index])[0]
        up = soxr.resample(wav, SAMPLE_RATE, MIX_RATE, quality="HQ")
        n = lengths[index]
        return np.pad(up, (0, max(0, n - len(up))))[:n]

    timeline = TimelineRenderer(list(by_index.values()), load, MIX_RATE)
    if identity is not None:
        _write_json(outputs.report, pending_report(video, job.subtitles, outputs, identity))
    source = None
    if bg.mode != "drop":
        source = media.iter_audio_blocks(video, MIX_RATE, block_seconds=10.0, mono=False)
    try:  # its first pass writes a float temporary the size of the track
        with timers.stage("mix"):
            mix = render_mix(
                outputs.wav, total=total, dub=timeline.render, background=source, bg=bg,
                intervals=intervals, lufs=job.config.lufs, tmp_dir=outputs.work,
                progress=(lambda d, n: job.tick("mix", d, n)) if job.progress else None,
            )  # fmt: skip
    except Exception as exc:
        if is_write_error(exc):
            raise write_error(outputs.wav, exc) from exc
        raise

    srt_cues = []
    for r in records:
        p = by_index[r.index]
        s = p.start / MIX_RATE + r.speech[0]
        e = min(p.end / MIX_RATE, p.start / MIX_RATE + r.speech[1])
        if e - s > 0.01:
            srt_cues.append(Cue(len(srt_cues) + 1, s, e, r.display_text, r.speaker))
    if srt_cues:
        write_srt(srt_cues, outputs.srt, with_speakers=any(c.speaker for c in srt_cues))
    else:
        atomic_write_text(outputs.srt, "\n")
    raise_if_interrupted()
    with timers.stage("mux"):
        job.tick("mux", 0, 1)
        media.mux_audio(video, outputs.wav, outputs.video, keep_original=job.config.keep_original,
                        force=True)  # fmt: skip
    job.tick("mux", 1, 1)
    return mix


def _write_json(path: Path, doc: dict) -> None:
    from dubcli.fsutil import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
