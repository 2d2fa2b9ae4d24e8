"""Reference voices: `--ref voice.wav`, `--ref NAME=voice.wav` per speaker, or the video's own speech.

Dimensions: n samples (16 kHz mono float32), f analysis frames (100 per second).

Matching: a cue whose speaker is NAME (case-insensitive) uses `--ref NAME=...`; any other cue
uses the unnamed `--ref`; with a single --ref of any kind, every cue uses it. A cue that matches
nothing is an InputError before any work starts; cues that borrow another speaker's named voice
get one warning per speaker, with their count.

A --ref file is read from its start only (REF_READ_S, ffmpeg -t: an hour-long file is never
decoded whole) and its first REF_MAX_S * 2 seconds of sound are kept; a reference in which the
voice-activity detector below finds little speech (noise, music, a steady tone) is a warning.

Without --ref, the reference comes from the source video's own audio (the original actor's voice):
a simple voice-activity detector (`speech_frames`) finds speech, and `pick_regions` keeps the
cleanest ~3-10 s. Preferably from the cue windows of the speaker being dubbed (the original
speech is under its own subtitles), else from anywhere in the video.

The VAD, per 20 ms frame every 10 ms, on 16 kHz audio:
- energy: frame RMS in dB must be >= -50 dBFS and >= the noise floor (the 10th percentile of
  frame energies) + 6 dB;
- spectral flatness (geometric / arithmetic mean of the 100-4000 Hz power spectrum) must be
  <= 0.35: voiced speech has harmonic, peaky spectra (flatness ~0.01-0.2), noise is flat (~0.5+);
- decisions are smoothed: gaps <= 150 ms inside speech are filled, runs < 200 ms dropped;
- a region must also move like speech: its frame energies vary by >= 3 dB (standard deviation,
  syllables come ~4 times a second); a steady tone or hum has low flatness but does not vary.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import InputError
from dubcli.timing import SAMPLE_RATE

log = get_logger(__name__)

HOP_S, FRAME_S = 0.01, 0.02
ENERGY_FLOOR_DBFS = -50.0
ENERGY_ABOVE_NOISE_DB = 6.0
FLATNESS_MAX = 0.35
MIN_REGION_S = 0.2
BRIDGE_S = 0.15
MIN_VARIATION_DB = 3.0
REF_MIN_S, REF_MAX_S = 3.0, 10.0
REF_GAP_S = 0.1  # silence put between concatenated regions
REF_READ_S = 60.0  # a --ref file is decoded up to here (leading silence is trimmed after)
REF_SPEECH_MIN = 0.25  # below this fraction of speech-like sound, a reference warns


@dataclass(frozen=True)
class Voice:
    name: str | None  # speaker name it was given for (None: the unnamed / default voice)
    wav: np.ndarray  # (n,) float32, 16 kHz mono
    source: str  # a path, or "video:PATH@a-b,c-d" for speech taken from the video
    ident: str  # stable short hash of the audio (cache key for per-cue results)


def _ident(wav: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(wav, np.float32).tobytes()).hexdigest()[:16]


def parse_ref(value: str) -> tuple[str | None, Path]:
    """'voice.wav' -> (None, path); 'NAME=voice.wav' -> ('NAME', path). A value whose whole text
    is an existing file is a path even if it contains '='."""
    name, eq, rest = value.partition("=")
    if not eq or Path(value).exists() or not name or "/" in name or os.sep in name:
        return None, Path(value)
    if not rest:
        raise InputError(f"--ref {value}: no file after '{name}='")
    return name.strip(), Path(rest)


class VoiceBank:
    """The voices of a run and the rule that picks one for each cue speaker."""

    def __init__(self, voices: Sequence[Voice]):
        self.voices = list(voices)
        self._named = {v.name.casefold(): v for v in self.voices if v.name}
        self._default = next((v for v in self.voices if v.name is None), None)
        if self._default is None and len(self.voices) == 1:
            self._default = self.voices[0]

    def for_speaker(self, speaker: str | None) -> Voice:
        if speaker and speaker.casefold() in self._named:
            return self._named[speaker.casefold()]
        if self._default is not None:
            return self._default
        names = ", ".join(sorted(v.name for v in self.voices if v.name))
        who = f"speaker {speaker!r}" if speaker else "cues without a speaker"
        raise InputError(
            f"no --ref voice for {who} (given: {names}); add --ref {speaker or 'voice'}=FILE "
            "or an unnamed --ref FILE for everyone else"
        )

    def check(self, speakers: Sequence[str | None]) -> list[str]:
        """InputError now (before any synthesis) if some cue speaker has no voice; warnings,
        one per speaker, for cues that get another speaker's named voice."""
        counts: dict[str | None, int] = {}
        for s in speakers:
            counts[s] = counts.get(s, 0) + 1
        out = []
        for s, n in counts.items():
            v = self.for_speaker(s)
            if v.name is None or (s and s.casefold() == v.name.casefold()):
                continue
            cues = f"{n} cue{'s' if n > 1 else ''}"
            who = f"speaker {s!r} has no --ref {s}=FILE: its {cues}" if s else (
                f"{cues} without a speaker")  # fmt: skip
            out.append(f"{who} use {v.name}'s voice ({v.source})")
        return out


def load_voices(values: Sequence[str]) -> VoiceBank:
    """--ref values -> voices (load_reference: any format/rate/channels; InputError if silent or
    too short)."""
    from dubcli.audio.io import load_reference

    voices, seen = [], set()
    for value in values:
        name, path = parse_ref(value)
        key = name.casefold() if name else None
        if key in seen:
            raise InputError(f"--ref {value}: {'speaker ' + name if name else 'unnamed voice'} "
                             "given twice")  # fmt: skip
        seen.add(key)
        wav = load_reference(path, min_seconds=0.5, max_seconds=REF_READ_S)
        wav = wav[: int(REF_MAX_S * 2 * SAMPLE_RATE)]
        _check_reference(path, wav)
        voices.append(Voice(name, wav, str(path), _ident(wav)))
    return VoiceBank(voices)


def _check_reference(path: Path, wav: np.ndarray) -> None:
    """One warning line each: a long file (only its start is used), little sound, little speech."""
    from dubcli import media

    seconds = len(wav) / SAMPLE_RATE
    try:
        total = media.probe(path).duration
    except Exception:  # noqa: BLE001 - the audio was read already; the length is only a hint
        total = 0.0
    if total > REF_READ_S:
        log.warning("%s: the reference lasts %.0f min; only its first %.0f s of sound are used "
                    "(%.0f-%.0f s of one voice is best)", path, total / 60, seconds, REF_MIN_S,
                    REF_MAX_S)  # fmt: skip
    if seconds < REF_MIN_S:
        log.warning("%s: reference holds %.1f s of sound; %.0f-%.0f s clone a voice better",
                    path, seconds, REF_MIN_S, REF_MAX_S)  # fmt: skip
    speech = sum(r.end - r.start for r in speech_regions(frame_stats(wav)))
    if speech < REF_SPEECH_MIN * seconds:
        log.warning("%s: the reference does not sound like speech (%.1f of its %.1f s; noise, "
                    "music or a steady tone?): the voice copied from it will be poor", path,
                    speech, seconds)  # fmt: skip


# --- voice activity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameStats:
    energy_db: np.ndarray  # (f,) frame RMS, dBFS
    flatness: np.ndarray  # (f,) spectral flatness of 100-4000 Hz, 0..1


def frame_stats(wav: np.ndarray, rate: int = SAMPLE_RATE) -> FrameStats:
    hop, frame = int(HOP_S * rate), int(FRAME_S * rate)
    wav = np.asarray(wav, np.float64)
    if len(wav) < frame:
        return FrameStats(np.zeros(0), np.zeros(0))
    n = 1 + (len(wav) - frame) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(frame)[None, :]
    x = wav[idx]
    energy = 10 * np.log10(np.maximum(np.mean(x * x, axis=1), 1e-12))
    spec = np.abs(np.fft.rfft(x * np.hanning(frame), axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(frame, 1 / rate)
    band = spec[:, (freqs >= 100) & (freqs <= 4000)]
    flat = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)
    return FrameStats(energy, flat)


def speech_frames(stats: FrameStats) -> np.ndarray:
    """(f,) bool speech decision per 10 ms frame (see module doc)."""
    e, fl = stats.energy_db, stats.flatness
    if not len(e):
        return np.zeros(0, bool)
    noise = float(np.percentile(e, 10))
    speech = (e >= ENERGY_FLOOR_DBFS) & (e >= noise + ENERGY_ABOVE_NOISE_DB) & (fl <= FLATNESS_MAX)
    bridge, shortest = int(BRIDGE_S / HOP_S), int(MIN_REGION_S / HOP_S)
    idx = np.flatnonzero(speech)
    for a, b in zip(idx, idx[1:], strict=False):
        if 1 < b - a <= bridge:
            speech[a:b] = True
    for s, t in _runs(speech):
        if t - s < shortest:
            speech[s:t] = False
    return speech


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass(frozen=True)
class Region:
    start: float  # seconds
    end: float
    score: float  # higher is cleaner: level above the noise floor minus a flatness penalty


def speech_regions(stats: FrameStats, offset: float = 0.0) -> list[Region]:
    """Speech runs that vary like speech, scored for cleanliness."""
    speech = speech_frames(stats)
    if not speech.any():
        return []
    noise = float(np.percentile(stats.energy_db, 10))
    out = []
    for s, t in _runs(speech):
        e = stats.energy_db[s:t]
        if float(np.std(e)) < MIN_VARIATION_DB:
            continue
        score = float(np.median(e) - noise) - 20 * float(np.median(stats.flatness[s:t]))
        out.append(Region(offset + s * HOP_S, offset + t * HOP_S + FRAME_S - HOP_S, score))
    return out


def pick_regions(
    regions: Sequence[Region], within: Sequence[tuple[float, float]] | None = None
) -> list[Region]:
    """The cleanest regions (clipped to `within` intervals if given) adding up to <= REF_MAX_S,
    in time order."""
    if within is not None:
        clipped = []
        for r in regions:
            for a, b in within:
                s, e = max(r.start, a), min(r.end, b)
                if e - s >= MIN_REGION_S:
                    clipped.append(Region(s, e, r.score))
        regions = clipped
    chosen, total = [], 0.0
    for r in sorted(regions, key=lambda r: -r.score):
        if total >= REF_MAX_S:
            break
        take = min(r.end - r.start, REF_MAX_S - total)
        chosen.append(Region(r.start, r.start + take, r.score))
        total += take
    return sorted(chosen, key=lambda r: r.start)


def video_voices(
    video: str | os.PathLike, cue_windows: Sequence[tuple[str | None, float, float]]
) -> VoiceBank:
    """Reference voices from the video's own speech: one per named speaker when its cue windows
    hold >= REF_MIN_S of speech, plus a default voice from the whole video.

    cue_windows: (speaker, start, end) per cue. The audio is scanned in blocks (memory is the
    per-frame statistics, 2 floats per 10 ms); only the chosen regions are decoded again."""
    from dubcli import media

    video = Path(video)
    info = media.probe(video)
    if not info.has_audio:
        raise InputError(f"{video}: no --ref given and the video has no audio track to take the "
                         "speaker's voice from; pass --ref voice.wav")  # fmt: skip
    regions, offset = [], 0.0
    for block in media.iter_audio_blocks(video, SAMPLE_RATE, block_seconds=30.0):
        regions += speech_regions(frame_stats(block), offset)
        offset += len(block) / SAMPLE_RATE
    total = sum(r.end - r.start for r in regions)
    if total < 1.0:
        raise InputError(f"{video}: no --ref given and no speech was found in its audio "
                         f"({total:.1f} s) to use as the reference voice; pass --ref voice.wav")  # fmt: skip
    voices = [_voice_from(video, None, pick_regions(regions))]
    for name in sorted({s for s, _, _ in cue_windows if s}):
        mine = [(a, b) for s, a, b in cue_windows if s == name]
        picked = pick_regions(regions, within=mine)
        if sum(r.end - r.start for r in picked) >= REF_MIN_S:
            voices.append(_voice_from(video, name, picked))
        else:
            log.info("%s: too little speech under %s's cues; that speaker uses the video's "
                     "main voice", video, name)  # fmt: skip
    return VoiceBank(voices)


def _voice_from(video: Path, name: str | None, regions: Sequence[Region]) -> Voice:
    from dubcli import media

    gap = np.zeros(int(REF_GAP_S * SAMPLE_RATE), np.float32)
    parts = []
    for r in regions:
        parts += [media.decode_audio(video, SAMPLE_RATE, start=r.start, end=r.end), gap]
    wav = np.concatenate(parts[:-1]).astype(np.float32)
    spans = ",".join(f"{r.start:.2f}-{r.end:.2f}" for r in regions)
    seconds = sum(r.end - r.start for r in regions)
    log.info("%s: reference voice%s from the video's own speech: %.1f s (%s)", video,
             f" for {name}" if name else "", seconds, spans)  # fmt: skip
    if seconds < REF_MIN_S:
        log.warning("%s: only %.1f s of clean speech found for the reference voice", video, seconds)
    return Voice(name, wav, f"video:{video}@{spans}", _ident(wav))
