"""The body of a dub run once inputs are checked and the plan is made: voices, cues, mix, outputs.

Order of writes (each atomic): cue results into the work folder as they finish, then the audio
track, the subtitles, the muxed video, and the report last (its "complete": true is the marker
pipeline.is_complete trusts). Killed anywhere, a rerun redoes only what is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.dubbing import cuework
from dubcli.dubbing.plan import DubPlan

log = get_logger(__name__)

REPORT_VERSION = 1


def run_dub(
    video: Path,
    subtitles: Path,
    info,
    plan: DubPlan,
    outputs,
    *,
    engine_name: str,
    checkpoint: str | None,
    offline: bool,
    refs: Sequence[str],
    background: str,
    lufs: float | None,
    keep_original: bool,
    widen: bool,
    nfe: int,
    seed: int,
    device: str,
    progress,
    timers: cuework.Timers | None = None,
) -> dict:
    """Everything after planning; returns the report (also written to outputs.report)."""
    from dubcli import media
    from dubcli.dubbing.engine import create_engine
    from dubcli.dubbing.mix import MIX_RATE, render_mix, resolve_background
    from dubcli.dubbing.timeline import TimelineRenderer, place
    from dubcli.dubbing.voices import load_voices, video_voices
    from dubcli.fsutil import atomic_write_text
    from dubcli.text.subtitles import Cue, write_srt

    timers = timers or cuework.Timers()
    warnings = list(plan.warnings)
    t = time.perf_counter()
    engine = create_engine(engine_name, checkpoint=checkpoint, offline=offline, device=device)
    if refs:
        voices = load_voices(refs)
    else:
        voices = video_voices(video, [(w.speaker, w.start, w.end) for w in plan.windows])
    voices.check([w.speaker for w in plan.windows])
    timers.add("voices", time.perf_counter() - t)

    work = outputs.report.parent / f".{video.stem}.dubwork"
    work.mkdir(parents=True, exist_ok=True)
    video_id = f"{video.resolve()}:{video.stat().st_size}:{video.stat().st_mtime_ns}"
    records, paths, reused = [], {}, 0
    windows = list(plan.windows)
    lo = 0.0
    for i, window in enumerate(windows):
        hi = windows[i + 1].start if i + 1 < len(windows) else info.duration
        voice = voices.for_speaker(window.speaker)
        key = cuework.cue_key(window, voice, engine, seed=seed, nfe=nfe, widen=widen,
                              video_id=video_id)  # fmt: skip
        path = cuework.cached_path(work, window.index, key)
        cached = cuework.load_cached(path)
        if cached is not None:
            record = cached[1]
            reused += 1
        else:
            _, wav, record = cuework.synthesize_cue(
                video, info, window, lo=lo, hi=hi, voice=voice, engine=engine, seed=seed,
                nfe=nfe, widen=widen, timers=timers,
            )  # fmt: skip
            cuework.save_cached(path, wav, record)
        warnings += [f"cue {window.index}: {n}" for n in record["notes"]
                     if n.startswith("no face")]  # fmt: skip
        lo = record["window"][1]
        records.append(record)
        paths[window.index] = path
        if progress:
            progress("cues", i + 1, len(windows))
    if reused:
        log.info("%s: %d of %d cues reused from an earlier, unfinished run", video, reused,
                 len(windows))  # fmt: skip

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
            warnings.append(f"cue {r['index']}: {msg}")

    channels_in = (info.audio_streams[0].channels or 2) if info.has_audio else 0
    bg = resolve_background(background, channels_in)
    if bg.note:
        log.warning("%s: %s", video, bg.note)
        warnings.append(bg.note)
    source = None
    if bg.mode != "drop":
        source = media.iter_audio_blocks(video, MIX_RATE, block_seconds=10.0, mono=False)
    t = time.perf_counter()
    mix = render_mix(
        outputs.wav, total=total, dub=timeline.render, background=source, bg=bg,
        intervals=intervals, lufs=lufs, force=True, tmp_dir=work,
        progress=(lambda d, n: progress("mix", d, n)) if progress else None,
    )  # fmt: skip
    timers.add("mix", time.perf_counter() - t)

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
    t = time.perf_counter()
    if progress:
        progress("mux", 0, 1)
    media.mux_audio(video, outputs.wav, outputs.video, keep_original=keep_original, force=True)
    timers.add("mux", time.perf_counter() - t)
    if progress:
        progress("mux", 1, 1)

    report = _report(video, subtitles, info, plan, outputs, engine, checkpoint, voices, bg, mix,
                     records, timers, warnings, seed=seed, nfe=nfe, lufs=lufs, widen=widen,
                     keep_original=keep_original)  # fmt: skip
    atomic_write_text(outputs.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    from dubcli.dubbing.pipeline import remove_workdir

    remove_workdir(work)
    return report


def _report(video, subtitles, info, plan, outputs, engine, checkpoint, voices, bg, mix, records,
            timers, warnings, *, seed, nfe, lufs, widen, keep_original) -> dict:  # fmt: skip
    def r(x, nd=2):
        return None if x is None or not np.isfinite(x) else round(float(x), nd)

    stages = {k: round(v, 3) for k, v in timers.seconds.items()}
    return {
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
