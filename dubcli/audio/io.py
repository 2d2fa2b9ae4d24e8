"""Audio files in and out: load any format at 16 kHz mono, save without silent clipping, and load
reference voices (mono, resampled, silence-trimmed, checked for silence, shortness and clipping).

Dimension legend: n samples, c channels. Waveforms are float32 in [-1, 1].
Resampling is soxr "VHQ" (ffmpeg's soxr at precision 28 is the same filter, so both load paths
give identical samples). soundfile reads what libsndfile can (wav, flac, ogg); everything else
(mp3, m4a, opus, video containers) goes through ffmpeg (dubcli.media).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from dubcli import media
from dubcli.console import get_logger
from dubcli.errors import InputError, OutputError, ProcessingError
from dubcli.fsutil import atomic_path
from dubcli.timing import SAMPLE_RATE

log = get_logger(__name__)

_SOUNDFILE_EXTS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64", ".caf"}
_FFMPEG_ENCODE = {  # save_audio formats soundfile cannot write, by extension
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "192k"],
    ".m4a": ["-c:a", "aac", "-b:a", "192k"],
    ".aac": ["-c:a", "aac", "-b:a", "192k"],
    ".opus": ["-c:a", "libopus", "-b:a", "96k"],
    ".ogg": ["-c:a", "libvorbis", "-q:a", "6"],
}
SILENCE_DBFS = -60.0  # a reference whose loudest 20 ms frame is below this is "silent"
TRIM_BELOW_PEAK_DB = 40.0  # trim edge frames quieter than (loudest frame - 40 dB)
TRIM_PAD_S = 0.05  # keep 50 ms around the speech so onsets/decays are not cut
CLIP_LEVEL = 0.999  # |x| at or above this counts as full scale
CLIP_FRACTION = 1e-3  # more than 0.1 % of samples at full scale -> "clipped" warning


def rms_dbfs(wav: np.ndarray) -> float:
    """RMS level in dBFS (a full-scale sine is -3 dB); -inf for digital silence."""
    wav = np.asarray(wav, np.float64)
    rms = float(np.sqrt(np.mean(wav**2))) if wav.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def peak_dbfs(wav: np.ndarray) -> float:
    peak = float(np.max(np.abs(wav))) if np.size(wav) else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def frame_dbfs(wav: np.ndarray, sample_rate: int, frame_s: float = 0.02, hop_s: float = 0.01):
    """(frames,) RMS level in dBFS of frame_s windows every hop_s (floor -120 dB)."""
    frame, hop = max(1, int(frame_s * sample_rate)), max(1, int(hop_s * sample_rate))
    if len(wav) < frame:
        wav = np.pad(wav, (0, frame - len(wav)))
    idx = np.arange(0, len(wav) - frame + 1, hop)[:, None] + np.arange(frame)[None, :]
    power = np.mean(np.asarray(wav, np.float64)[idx] ** 2, axis=1)
    return 10 * np.log10(np.maximum(power, 1e-12))


def _read_soundfile(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int] | None:
    """(n, c) float32 and rate via libsndfile (the first max_seconds only), or None when it
    cannot read the file."""
    if path.suffix.lower() not in _SOUNDFILE_EXTS:
        return None
    import soundfile as sf

    try:
        frames = -1
        if max_seconds is not None:
            frames = int(max_seconds * sf.info(str(path)).samplerate)
        wav, sr = sf.read(path, frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError):  # e.g. wav with an mp3 payload
        return None
    if len(wav) == 0:
        raise InputError(f"{path}: contains no audio samples")
    return wav, int(sr)


def _read_native(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(n, c) float32 at the file's own rate: what clipping checks must look at. max_seconds:
    only the start of the file is decoded (ffmpeg -t), never the whole of a long one."""
    media.check_readable(path)
    got = _read_soundfile(path, max_seconds)
    if got is not None:
        return got
    info = media.probe(path)
    sr = info.audio_streams[0].sample_rate if info.has_audio else 0
    end = max_seconds if max_seconds is not None and info.duration > max_seconds else None
    wav = media.decode_audio(path, sample_rate=sr or SAMPLE_RATE, end=end, mono=False)
    return wav, sr or SAMPLE_RATE


def _to_mono_resampled(wav: np.ndarray, sr: int, sample_rate: int, mono: bool) -> np.ndarray:
    import soxr

    if mono:
        wav = wav.mean(axis=1)
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate, quality="VHQ")
    return np.clip(wav, -1.0, 1.0).astype(np.float32, copy=False)


def load_audio(
    path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, mono: bool = True
) -> np.ndarray:
    """Any audio (or a video's first audio track) as float32: (n,) if mono else (n, c)."""
    path = Path(path)
    media.check_readable(path)
    got = _read_soundfile(path)
    if got is None:  # ffmpeg decodes, mixes and resamples (soxr) in one streaming pass
        return media.decode_audio(path, sample_rate=sample_rate, mono=mono)
    return _to_mono_resampled(*got, sample_rate, mono)


def save_audio(
    path: str | os.PathLike,
    wav: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    force: bool = True,
    *,
    subtype: str | None = None,
) -> Path:
    """Write (n,) or (n, c) audio atomically: wav/flac by soundfile (16-bit unless `subtype`,
    e.g. "FLOAT"), mp3/m4a/aac/opus/ogg by ffmpeg. Peaks above full scale are scaled down with a
    warning, never clipped silently (float wav keeps them as they are)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".wav", ".flac") and ext not in _FFMPEG_ENCODE:
        raise OutputError(
            f"{path}: unsupported audio format {ext!r} (wav, flac, mp3, m4a, ogg, opus)"
        )
    wav = np.asarray(wav, np.float32)
    if wav.ndim not in (1, 2) or wav.size == 0:
        raise ValueError(f"{path}: audio must be a non-empty (n,) or (n, c) array, got {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ProcessingError(f"{path}: audio contains NaN or infinite samples; nothing written")
    peak = float(np.max(np.abs(wav)))
    if peak > 1.0 and not (subtype or "").upper().startswith(("FLOAT", "DOUBLE")):
        gain = CLIP_LEVEL / peak
        log.warning("%s: peak %.1f dBFS; scaled down %.1f dB to avoid clipping", path,
                    20 * np.log10(peak), -20 * np.log10(gain))  # fmt: skip
        wav = wav * gain
    import soundfile as sf

    with atomic_path(path, force=force) as tmp:
        if ext in (".wav", ".flac"):
            sf.write(
                tmp, wav, int(sample_rate), subtype=subtype or "PCM_16", format=ext[1:].upper()
            )
            return path
        with tempfile.TemporaryDirectory(prefix="dubcli-") as td:
            src = Path(td) / "in.wav"
            sf.write(src, wav, int(sample_rate), subtype="FLOAT")
            args = ["-i", f"file:{src}", *_FFMPEG_ENCODE[ext], "-y", f"file:{tmp}"]
            media.run_ffmpeg(*args, target=path, what="encode audio")
    return path


def load_reference(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = 0.3,
    max_seconds: float | None = None,
) -> np.ndarray:
    """A reference voice as (n,) float32 mono at `sample_rate`, leading/trailing silence trimmed.

    InputError if it is silent or holds less than `min_seconds` of sound; a warning if it looks
    clipped (the clone would copy the distortion). max_seconds: only the file's first
    max_seconds are decoded (memory stays bounded for an hour-long file).
    """
    path = Path(path)
    native, sr = _read_native(path, max_seconds)
    full = np.mean(np.abs(native) >= CLIP_LEVEL)
    if full > CLIP_FRACTION and np.sum(np.abs(native) >= CLIP_LEVEL) >= 10:
        log.warning("%s: reference looks clipped (%.1f%% of samples at full scale); the cloned "
                    "voice may sound distorted", path, 100 * full)  # fmt: skip
    wav = _to_mono_resampled(native, sr, sample_rate, mono=True)
    levels = frame_dbfs(wav, sample_rate)
    loudest = float(levels.max())
    if loudest < SILENCE_DBFS:
        raise InputError(f"{path}: reference is silent (loudest {loudest:.0f} dBFS)")
    voiced = np.flatnonzero(levels >= max(loudest - TRIM_BELOW_PEAK_DB, SILENCE_DBFS))
    hop, frame = int(0.01 * sample_rate), int(0.02 * sample_rate)
    start, stop = voiced[0] * hop, min(len(wav), voiced[-1] * hop + frame)
    seconds = (stop - start) / sample_rate
    if seconds < min_seconds:
        raise InputError(
            f"{path}: reference is too short ({seconds:.2f} s of sound after trimming silence;"
            f" need at least {min_seconds:.2f} s)"
        )
    pad = int(TRIM_PAD_S * sample_rate)
    return wav[max(0, start - pad) : stop + pad].copy()
