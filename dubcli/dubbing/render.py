"""The body of a dub run once inputs are checked and the plan is made: voices, cues, mix, outputs.

Order of writes (each atomic): cue results into the work folder as they finish, then the report
with "complete": false (it claims the outputs about to be written), the audio track, the
subtitles, the muxed video, and the report again last, with "complete": true and each output's
size and time (the marker outputs.decide trusts). Killed anywhere, a rerun redoes only what is
missing. A write that fails for the disk's sake (full, read-only, denied, quota) is an
OutputError (exit 6) naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.dubbing import cuework
from dubcli.dubbing.config import DubConfig
from dubcli.dubbing.plan import DubPlan, summarize
from dubcli.errors import raise_if_interrupted
from dubcli.fsutil import remove_workdir

log = get_logger(__name__)


def run_dub(
    video: Path,
    subtitles: Path,
    info,
    plan: DubPlan,
    outputs,
    config: DubConfig,
    *,
    progress,
    timers: cuework.Timers | None = None,
    identity: dict | None = None,
    redo: Sequence[str] = (),
) -> dict:
    """Everything after planning; returns the report (also written to outputs.report).
    identity: what outputs.run_identity recorded for this run; redo: why it redoes old outputs."""
    from dubcli import media
    from dubcli.dubbing.mix import MIX_RATE, render_mix, resolve_background
    from dubcli.dubbing.outputs import file_stats, pending_report
    from dubcli.dubbing.timeline import TimelineRenderer, place
    from dubcli.dubbing.voices import load_voices, video_voices
    from dubcli.engines.choose import create_engine
    from dubcli.fsutil import atomic_write_text, is_write_error, write_error
    from dubcli.text.subtitles import Cue, write_srt

    engine_name, checkpoint, offline, device = (config.engine, config.checkpoint, config.offline,
                                                config.device)  # fmt: skip
    refs, background, lufs, keep_original = (config.refs, config.background, config.lufs,
                                             config.keep_original)  # fmt: skip
    widen, nfe, seed = config.widen_to_lips, config.nfe, config.seed
    timers = timers or cuework.Timers()
    warnings = list(plan.warnings)
    with timers.stage("voices"):
        engine = create_engine(engine_name, checkpoint=checkpoint, offline=offline, device=device)
        if refs:
            voices = load_voices(refs)
        else:
            voices = video_voices(video, [(w.speaker, w.start, w.end) for w in plan.windows])
        for msg in voices.check([w.speaker for w in plan.windows]):
            log.warning("%s: %s", video, msg)
            warnings.append(msg)

    work = outputs.work
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(work, exc) from exc
    video_id = f"{video.resolve()}:{video.stat().st_size}:{video.stat().st_mtime_ns}"
    records, paths, reused = [], {}, 0
    windows = list(plan.windows)
    # issue 15: cues reach the engine in groups (cuework.run_cues: one batched model pass per
    # group); each cue's audio is what it gets alone, so the work-folder cache stays valid
    for i, record, path, was_cached in cuework.run_cues(
        video, info, windows, work, voices=voices, engine=engine, seed=seed, nfe=nfe,
        widen=widen, timers=timers, video_id=video_id,
    ):  # fmt: skip
        raise_if_interrupted()
        reused += was_cached
        records.append(record)
        paths[record["index"]] = path
        if progress:
            progress("cues", i + 1, len(windows))
    if reused:
        log.info("%s: %d of %d cues reused from an earlier, unfinished run", video, reused,
                 len(windows))  # fmt: skip
    run_notes = [("face", r["index"], f"cue {r['index']}: {n}", n) for r in records
                 for n in r["notes"] if n.startswith("no face")]  # fmt: skip

    # timeline at the mix rate: speech placed at each (final) window start
    total = int(round(info.duration * MIX_RATE))
    ratio = MIX_RATE // cuework.SAMPLE_RATE
    lengths = {r["index"]: r["audio_samples"] * ratio for r in records}
    placements = place([(r["index"], r["window"][0], lengths[r["index"]]) for r in records],
                       MIX_RATE, total)  # fmt: skip

    def load(index: int) -> np.ndarray:
        import soxr

        wav = cuework.load_cached(paths[index])[0]
        up = soxr.resample(wav, cuework.SAMPLE_RATE, MIX_RATE, quality="HQ")
        n = lengths[index]
        return np.pad(up, (0, max(0, n - len(up))))[:n]

    timeline = TimelineRenderer(placements, load, MIX_RATE)
    by_index = {p.index: p for p in placements}
    intervals = []
    for r in records:
        p = by_index[r["index"]]
        s = p.start + int(r["speech"][0] * MIX_RATE)
        e = min(p.end, p.start + int(r["speech"][1] * MIX_RATE))
        if e > s:
            intervals.append((s, e))
        r["placed"] = [round(p.start / MIX_RATE, 3), round(p.end / MIX_RATE, 3)]
        r["cut_seconds"] = round(p.cut / MIX_RATE, 3)
        if p.cut > 0:
            msg = f"{p.cut / MIX_RATE:.2f} s of speech cut at the next cue / the video's end"
            r["notes"].append(msg)
            run_notes.append(("cut", r["index"], f"cue {r['index']}: {msg}",
                              "speech cut at the next cue / the video's end"))  # fmt: skip
    for msg in summarize(run_notes):  # one line per kind when many cues share it
        log.info("%s: %s", video, msg)
        warnings.append(msg)

    channels_in = (info.audio_streams[0].channels or 2) if info.has_audio else 0
    bg = resolve_background(background, channels_in)
    if bg.note:
        log.warning("%s: %s", video, bg.note)
        warnings.append(bg.note)
    raise_if_interrupted()
    try:  # the writes: a failure for the disk's sake is an OutputError naming the file
        if identity is not None:
            claim = pending_report(video, subtitles, outputs, identity)
            atomic_write_text(
                outputs.report, json.dumps(claim, indent=2, ensure_ascii=False) + "\n"
            )
        source = None
        if bg.mode != "drop":
            source = media.iter_audio_blocks(video, MIX_RATE, block_seconds=10.0, mono=False)
        try:  # its first pass writes a float temporary the size of the track
            with timers.stage("mix"):
                mix = render_mix(
                    outputs.wav, total=total, dub=timeline.render, background=source, bg=bg,
                    intervals=intervals, lufs=lufs, force=True, tmp_dir=work,
                    progress=(lambda d, n: progress("mix", d, n)) if progress else None,
                )  # fmt: skip
        except Exception as exc:
            if is_write_error(exc):
                raise write_error(outputs.wav, exc) from exc
            raise

        srt_cues = []
        for r in records:
            p = by_index[r["index"]]
            s = p.start / MIX_RATE + r["speech"][0]
            e = min(p.end / MIX_RATE, p.start / MIX_RATE + r["speech"][1])
            if e - s > 0.01:
                srt_cues.append(Cue(len(srt_cues) + 1, s, e, r["display_text"], r["speaker"]))
        if srt_cues:
            write_srt(srt_cues, outputs.srt, with_speakers=any(c.speaker for c in srt_cues))
        else:
            atomic_write_text(outputs.srt, "\n")
        raise_if_interrupted()
        with timers.stage("mux"):
            if progress:
                progress("mux", 0, 1)
            media.mux_audio(video, outputs.wav, outputs.video, keep_original=keep_original,
                            force=True)  # fmt: skip
        if progress:
            progress("mux", 1, 1)

        report = _report(video, subtitles, info, plan, outputs, engine, checkpoint, voices, bg, mix,
                         records, timers, warnings, seed=seed, nfe=nfe, lufs=lufs, widen=widen,
                         keep_original=keep_original)  # fmt: skip
        report["identity"] = identity
        report["redone_because"] = list(redo)
        report["files"] = file_stats(outputs)
        atomic_write_text(outputs.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    except Exception as exc:
        if is_write_error(exc):
            raise write_error(getattr(exc, "filename", None) or outputs.report.parent,
                              exc) from exc  # fmt: skip
        raise

    remove_workdir(work)
    return report


def _report(video, subtitles, info, plan, outputs, engine, checkpoint, voices, bg, mix, records,
            timers, warnings, *, seed, nfe, lufs, widen, keep_original) -> dict:  # fmt: skip
    def r(x, nd=2):
        return None if x is None or not np.isfinite(x) else round(float(x), nd)

    from dubcli.dubbing.outputs import GENERATOR, REPORT_VERSION

    stages = {k: round(v, 3) for k, v in timers.seconds.items()}
    return {
        "generator": GENERATOR,
        "version": REPORT_VERSION,
        "complete": True,
        "input": {
            "video": str(video),
            "subtitles": str(subtitles),
            "duration": round(info.duration, 3),
            "has_audio": info.has_audio,
            "size": [info.width, info.height],
            "fps": round(info.fps, 3),
        },  # fmt: skip
        "outputs": outputs.as_dict(),
        "engine": {
            "name": engine.name,
            "fingerprint": engine.fingerprint(),
            "checkpoint": checkpoint,
        },  # fmt: skip
        "seed": seed,
        "nfe": nfe,
        "widen_to_lips": widen,
        "keep_original": keep_original,
        "voices": [
            {
                "speaker": v.name,
                "source": v.source,
                "seconds": round(len(v.wav) / cuework.SAMPLE_RATE, 2),
            }
            for v in voices.voices
        ],  # fmt: skip
        "background": {
            "requested": bg.requested,
            "mode": bg.mode,
            "note": bg.note,
            "source_channels": bg.channels_in,
            "output_channels": bg.channels_out,
        },  # fmt: skip
        "loudness": {
            "target": lufs,
            "before": r(mix.loudness_before),
            "gain_db": r(mix.gain_db),
            "after": r(mix.loudness_after),
            "peak_dbfs": r(mix.peak_dbfs),
            "limited_samples": mix.limited_samples,
        },  # fmt: skip
        "timings": stages,
        "real_time_factor": round(sum(stages.values()) / max(info.duration, 1e-3), 3),
        "warnings": warnings,
        "skipped": [{"index": s.index, "text": s.text, "reason": s.reason} for s in plan.skipped],
        "cues": records,
    }
