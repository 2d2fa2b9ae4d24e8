"""One cue's work: its video frames -> landmarks -> lip/face features -> engine -> speech, cached.

Dimensions: nv video frames (25 fps), n samples (16 kHz).

Memory is bounded by the cue: frames stream from ffmpeg straight into the face tracker (one frame
at a time), and only the window's landmarks (nv x 478 x 3 floats) are kept. Each finished cue is
written to the run's work folder (`.<stem>.dubwork/` next to the outputs) as one atomic .npz,
keyed by everything that changes its audio; a rerun after a kill (or with other mixing options)
reuses them and only redoes what is missing. The pipeline deletes the folder when the outputs are
complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.dubbing.config import DubConfig
from dubcli.dubbing.cueframes import CueDecoder, SpanDecoder
from dubcli.dubbing.loudness import integrated_loudness
from dubcli.dubbing.plan import MAX_WIDEN, CueWindow, lip_activity, widen_to_activity
from dubcli.dubbing.report import CueRecord
from dubcli.dubbing.voices import Voice
from dubcli.engines.base import CueJob, Engine
from dubcli.engines.sync import sync_estimate
from dubcli.fsutil import atomic_path
from dubcli.timing import SAMPLE_RATE, Timer, frames_for_seconds
from dubcli.vision.landmarks import FaceTracker, track_faces

log = get_logger(__name__)

CUE_LUFS = -20.0  # every cue's speech is levelled to this before mixing (consistent voice level)
MAX_TRACK_SIDE = 640  # frames are scaled so the longer side is at most this (FaceMesh input)
SPEECH_BELOW_PEAK_DB = 35.0  # speech extent: 10 ms frames within this of the cue's loudest


@dataclass
class Timers:
    """Seconds spent per stage (decode, landmarks, features, engine, ...), accumulated; cue
    preparation threads add to it beside the engine's thread."""

    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, dt: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    @contextlib.contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        """`with timers.stage("mux"): ...`: the block's wall time counts for `stage`."""
        with Timer() as t:
            yield
        self.add(stage, t.seconds)

    def timed(self, stage: str, it: Iterator) -> Iterator:
        """Wrap an iterator so the time spent producing its items counts for `stage`."""
        while True:
            with self.stage(stage):
                item = next(it, None)
            if item is None:
                return
            yield item


_QUIET_LOCK = threading.Lock()
_QUIET: dict[str, tuple[int, int]] = {}  # logger name -> (holders, its level before the first)


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Only errors from logger `name` meanwhile (debug output with -v stays). Threads may
    nest it: the first one in sets the level, the last one out restores it."""
    logger = logging.getLogger(name)
    with _QUIET_LOCK:
        holders, before = _QUIET.get(name, (0, logger.level))
        if holders == 0 and logger.getEffectiveLevel() <= logging.DEBUG:
            before = -1  # verbose: leave it alone
        elif holders == 0:
            logger.setLevel(logging.ERROR)
        _QUIET[name] = (holders + 1, before)
    try:
        yield
    finally:
        with _QUIET_LOCK:
            holders, before = _QUIET.pop(name)
            if holders > 1:
                _QUIET[name] = (holders - 1, before)
            elif before >= 0:
                logger.setLevel(before)


def cue_key(window: CueWindow, voice: Voice, engine: Engine, *, seed: int, nfe: int,
            widen: bool, video_id: str) -> str:  # fmt: skip
    """Hash of everything that changes a cue's audio."""
    blob = json.dumps([window.index, window.text, round(window.start, 4), round(window.end, 4),
                       voice.ident, engine.fingerprint(), seed, nfe, widen, video_id])  # fmt: skip
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_path(work: Path, index: int, key: str) -> Path:
    return work / f"cue{index:05d}.{key}.npz"


def load_cached(path: Path) -> tuple[np.ndarray, CueRecord] | None:
    """(wav, record) of a finished cue, or None (missing or unreadable: it is redone)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["wav"].astype(np.float32), CueRecord.from_json(json.loads(str(z["record"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("%s: unreadable cached cue (%s); redoing it", path, exc)
        return None


def save_cached(path: Path, wav: np.ndarray, record: CueRecord) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, wav=np.asarray(wav, np.float32), record=np.array(json.dumps(record.to_json())))


def _track_size(width: int, height: int) -> tuple[int, int] | None:
    scale = MAX_TRACK_SIDE / max(width, height, 1)
    if scale >= 1:
        return None
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def frame_range(window: CueWindow, duration: float, widen: bool) -> tuple[float, float]:
    """[start, end) seconds of the frames a cue's preparation reads (with --widen-to-lips, the
    margin the window may grow into)."""
    margin = MAX_WIDEN if widen else 0.0
    return max(0.0, window.start - margin), min(duration, window.end + margin)


def frame_decoder(
    video: Path, info, windows: list[CueWindow], *, widen: bool, threads: int
) -> CueDecoder | SpanDecoder:
    """The cues' frame source: spans read through in order when one thread prepares the cues,
    else a decode per cue (cueframes)."""
    size = _track_size(info.width, info.height)
    if threads > 1:
        return CueDecoder(video, size)
    return SpanDecoder(video, size, [frame_range(w, info.duration, widen) for w in windows])


class Cancelled(Exception):
    """A cue's preparation was stopped half-way (the run it belonged to stopped)."""


def _until(stop: threading.Event, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`frames` until `stop` is set, then Cancelled (and the decoder is closed)."""
    try:
        for frame in frames:
            if stop.is_set():
                raise Cancelled
            yield frame
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def speech_extent(wav: np.ndarray, rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """(onset, offset) seconds of the audible speech in a cue's audio ((0, 0) if silent)."""
    hop = int(0.01 * rate)
    n = len(wav) // hop
    if n == 0:
        return 0.0, 0.0
    power = np.mean(np.asarray(wav[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1)
    if power.max() <= 1e-10:
        return 0.0, 0.0
    db = 10 * np.log10(power + 1e-12)
    loud = np.flatnonzero(db >= db.max() - SPEECH_BELOW_PEAK_DB)
    return loud[0] * hop / rate, (loud[-1] + 1) * hop / rate


def level(wav: np.ndarray, target: float = CUE_LUFS) -> tuple[np.ndarray, float]:
    """(wav at `target` LUFS, gain dB applied); silence is returned as is."""
    loud = integrated_loudness(wav, SAMPLE_RATE)
    if not np.isfinite(loud):
        return wav, 0.0
    gain = float(np.clip(target - loud, -30.0, 30.0))
    return (wav * 10 ** (gain / 20)).astype(np.float32), gain


def prepare_cue(
    video: Path,
    info,
    window: CueWindow,
    *,
    bounds: tuple[float, float],
    voice: Voice,
    config: DubConfig,
    timers: Timers,
    decoder: CueDecoder | SpanDecoder,
    tracker: FaceTracker | None = None,
    stop: threading.Event | None = None,
) -> PreparedCue:
    """Frames -> landmarks -> features -> the engine's job for one cue. bounds: (lo, hi)
    seconds a widened window stays within; config: the run's seed, nfe and widen_to_lips;
    decoder: where the frames come from (cueframes); tracker: the FaceMesh graphs that
    tracked the cue before this one (None: graphs of the cue's own); stop: when set (the run
    stopped), the frames stop coming and Cancelled is raised."""
    from dubcli.vision.features import mouth_aperture, visual_features

    lo, hi = bounds
    seed, nfe, widen = config.seed, config.nfe, config.widen_to_lips
    t = time.perf_counter()
    fa, frames = decoder.frames(*frame_range(window, info.duration, widen))  # fa: frame 0's time
    if stop is not None:
        frames = _until(stop, frames)
    decode = Timers()  # this cue's: other threads prepare other cues meanwhile
    with _quiet_logger("dubcli.vision.landmarks"):  # "no face" per cue: one summary line instead
        track = (tracker.track if tracker is not None else track_faces)(
            decode.timed("decode", frames), source=f"{video} (cue {window.index})"
        )
    decode_s = decode.seconds.get("decode", 0.0)
    timers.add("decode", decode_s)
    timers.add("landmarks", time.perf_counter() - t - decode_s)

    t = time.perf_counter()
    aperture = mouth_aperture(track, fill=False) if track.n_frames else np.zeros(0, np.float32)
    valid = track.valid.copy()
    if widen and track.n_frames:
        window = widen_to_activity(window, lip_activity(np.nan_to_num(aperture), valid), fa, lo, hi)
    k0 = max(0, frames_for_seconds(window.start) - frames_for_seconds(fa))  # both on the grid
    nv = max(1, frames_for_seconds(window.duration))
    points = track.points[k0 : k0 + nv]
    if len(points) < nv:  # the video ended a little early: no landmarks for the missing frames
        pad = np.full((nv - len(points), *track.points.shape[1:]), np.nan, np.float32)
        points = np.concatenate([points, pad])
    ap_w = np.pad(aperture[k0 : k0 + nv], (0, max(0, nv - len(aperture[k0 : k0 + nv]))),
                  constant_values=np.nan)  # fmt: skip
    valid_w = np.isfinite(points).all(axis=(1, 2))
    face_rate = float(valid_w.mean())
    lip = face = None
    notes = list(window.notes)
    if valid_w.any():
        feats = visual_features(points)
        lip, face = feats.lip, feats.face
    else:
        notes.append("no face in the window: timing from the text only")
        log.debug("cue %d: no face in its window (%.2f-%.2f s); timing from the text only",
                  window.index, window.start, window.end)  # fmt: skip
    timers.add("features", time.perf_counter() - t)

    job = CueJob(window.index, window.text, window.phonemes, window.start, window.end, nv,
                 lip, face, voice.wav, voice.ident, window.speaker, seed + window.index, nfe)  # fmt: skip
    return PreparedCue(window, job, ap_w, valid_w, face_rate, track.n_faces, notes, voice.source)


@dataclass(frozen=True, eq=False)
class PreparedCue:
    """A cue up to the engine: its final window, the engine's job, what the record needs."""

    window: CueWindow
    job: CueJob
    aperture: np.ndarray  # (nv,) mouth aperture in the window (NaN where no face)
    valid: np.ndarray  # (nv,) bool: landmarks found
    face_rate: float
    n_faces: int
    notes: list[str]
    voice_source: str


def finish_cue(
    cue: PreparedCue, audio, engine_name: str
) -> tuple[CueWindow, np.ndarray, CueRecord]:
    """The engine's audio for a prepared cue -> (window, levelled wav, report record)."""
    window, job = cue.window, cue.job
    wav, gain = level(np.asarray(audio.wav, np.float32).reshape(-1))
    onset, offset = speech_extent(wav)
    sync = sync_estimate(cue.aperture, cue.valid, wav) if job.lip is not None else None
    record = CueRecord(
        index=window.index,
        text=window.text,
        display_text=window.display_text,
        speaker=window.speaker,
        cue=(round(window.cue_start, 3), round(window.cue_end, 3)),
        window=(round(window.start, 3), round(window.end, 3)),
        fit={
            "status": window.fit.status,
            "words_per_second": window.fit.wps,
            "phones_per_second": window.fit.pps,
            "words": window.fit.words,
            "phones": window.fit.phonemes,
        },  # fmt: skip
        engine=engine_name,
        seed=job.seed,
        nfe=job.nfe,
        stretch=audio.stretch,
        tokens=audio.tokens,
        natural_seconds=audio.natural_seconds,
        model_seconds=audio.model_seconds,
        audio_seconds=round(len(wav) / SAMPLE_RATE, 3),
        audio_samples=len(wav),  # at 16 kHz
        speech=(round(onset, 3), round(offset, 3)),  # seconds from the window start
        level_gain_db=round(gain, 2),
        video_frames=job.nv,
        face_frames_rate=round(cue.face_rate, 3),
        faces_in_clip=cue.n_faces,
        sync=None
        if sync is None
        else {
            "offset_s": sync.offset_s,
            "confidence": sync.confidence,
            "correlation": sync.correlation,
        },  # fmt: skip
        voice=cue.voice_source,
        notes=(*cue.notes, *audio.notes),
    )
    return window, wav, record
