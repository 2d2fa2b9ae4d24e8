"""The typed records a dub run hands to its report: `CueRecord` per cue, `DubReport` per run.

`<base>.report.json` is `DubReport.to_json()`; the work folder's cached cues hold
`CueRecord.to_json()` next to their audio. Field order is the JSON's key order. Nested parts
that are plain JSON objects in the report (a cue's fit and sync, the run's input, engine,
voices, background, loudness) stay small dicts built here by one function each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubcli.timing import SAMPLE_RATE


@dataclass(frozen=True)
class CueRecord:
    """One dubbed cue: what was asked, what the engine made, and where the timeline put it."""

    index: int  # the cue's number in the subtitles
    text: str  # the text spoken (normalized)
    display_text: str  # the text as the subtitles show it (for the dub's .srt)
    speaker: str | None  # the cue's speaker, if the subtitles name one
    cue: tuple[float, float]  # the subtitle's own (start, end), seconds
    window: tuple[float, float]  # the (possibly widened) window dubbed, seconds
    fit: dict[str, Any]  # status, words_per_second, phones_per_second, words, phones
    engine: str  # diflow | baseline
    seed: int  # the cue's seed (run seed + cue number)
    nfe: int  # flow-matching steps asked for
    stretch: float | None  # baseline: speed factor applied
    tokens: int | None  # diflow: speech tokens generated
    natural_seconds: float | None  # baseline: espeak's own length before fitting
    model_seconds: float | None  # diflow: token generation alone
    audio_seconds: float  # length of the cue's audio
    audio_samples: int  # the same in samples at 16 kHz
    speech: tuple[float, float]  # audible speech (onset, offset), seconds from the window start
    level_gain_db: float  # gain that levelled the cue to CUE_LUFS
    video_frames: int  # nv: frames of the window (fixes diflow's token count)
    face_frames_rate: float  # fraction of the window's frames with a face
    faces_in_clip: int  # faces the tracker saw in the window's frames
    sync: dict[str, float] | None  # landmark lip-sync estimate: offset_s, confidence, correlation
    voice: str  # where the reference voice came from
    notes: tuple[str, ...]  # what the user should know about this cue
    placed: tuple[float, float] | None = None  # on the timeline (start, end); None before
    cut_seconds: float | None = None  # speech cut at the next cue / the video's end

    def to_json(self) -> dict[str, Any]:
        d = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if self.placed is None:  # not placed yet (a cached cue): no placement keys
            del d["placed"], d["cut_seconds"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CueRecord:
        """The record of `to_json` (TypeError / KeyError / ValueError when it is not one)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
                      if k in names})  # fmt: skip


@dataclass(frozen=True)
class DubReport:
    """A finished dub run, as `<base>.report.json` records it (with "complete": true)."""

    input: dict[str, Any]  # video, subtitles, duration, has_audio, size, fps
    outputs: dict[str, str]  # kind -> path
    engine: dict[str, Any]  # name, fingerprint, checkpoint
    seed: int
    nfe: int
    widen_to_lips: bool
    keep_original: bool
    voices: tuple[dict[str, Any], ...]  # speaker, source, seconds
    background: dict[str, Any]  # requested, mode, note, source/output channels
    loudness: dict[str, Any]  # target, before, gain_db, after, peak_dbfs, limited_samples
    timings: dict[str, float]  # seconds per stage (stages overlap: schedule.run_cues)
    real_time_factor: float  # the run's wall seconds (up to the report) / the video's
    warnings: tuple[str, ...]
    skipped: tuple[dict[str, Any], ...]  # cues not dubbed: index, text, reason
    cues: tuple[CueRecord, ...]
    identity: dict[str, Any] | None  # what outputs.run_identity recorded (a rerun compares it)
    redone_because: tuple[str, ...]  # why earlier outputs were redone
    files: dict[str, Any]  # each output's size and time (outputs.file_stats)

    def to_json(self) -> dict[str, Any]:
        from dubcli.dubbing.outputs import GENERATOR, REPORT_VERSION

        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        body["cues"] = [c.to_json() for c in self.cues]
        body = {k: (v if k == "cues" else _plain(v)) for k, v in body.items()}
        return {"generator": GENERATOR, "version": REPORT_VERSION, "complete": True, **body}


def input_json(video, subtitles, info) -> dict[str, Any]:
    return {"video": str(video), "subtitles": str(subtitles), "duration": round(info.duration, 3),
            "has_audio": info.has_audio, "size": [info.width, info.height],
            "fps": round(info.fps, 3)}  # fmt: skip


def voices_json(voices) -> tuple[dict[str, Any], ...]:
    return tuple({"speaker": v.name, "source": v.source,
                  "seconds": round(len(v.wav) / SAMPLE_RATE, 2)} for v in voices.voices)  # fmt: skip


def background_json(bg) -> dict[str, Any]:
    return {"requested": bg.requested, "mode": bg.mode, "note": bg.note,
            "source_channels": bg.channels_in, "output_channels": bg.channels_out}  # fmt: skip


def loudness_json(target: float | None, mix) -> dict[str, Any]:
    return {"target": target, "before": _round(mix.loudness_before), "gain_db": _round(mix.gain_db),
            "after": _round(mix.loudness_after), "peak_dbfs": _round(mix.peak_dbfs),
            "limited_samples": mix.limited_samples}  # fmt: skip


def skipped_json(plan) -> tuple[dict[str, Any], ...]:
    return tuple({"index": s.index, "text": s.text, "reason": s.reason} for s in plan.skipped)


def _round(x, nd: int = 2) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _plain(v: Any) -> Any:
    """Tuples as lists, as json.loads gives them back (so a report compares equal to its file)."""
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v
