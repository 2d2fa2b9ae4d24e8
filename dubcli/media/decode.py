"""Decoding through ffmpeg pipes: video frames and audio samples, streamed.

Memory is bounded by one frame or one audio block, never the whole file; ffmpeg is killed and
reaped when the consumer stops early. Audio is resampled by ffmpeg's soxr at precision 28
(sample-identical to python-soxr "VHQ"), and channels are mixed with the matrix normalized to
gain 1 (stereo -> (L+R)/2, so a mono mix never clips).

Dimensions: N frames, H height, W width, n samples.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError, ProcessingError
from dubcli.media.ffmpeg import INSTALL_HINT, _error_line, _ffmpeg, _url
from dubcli.media.probe import probe
from dubcli.procs import child_options
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

log = get_logger(__name__)

_RESAMPLE = "aresample=resampler=soxr:precision=28:rematrix_maxval=1"
# stderr markers of a file that ends early (probe catches most of these up front)
_TRUNCATED = ("partial file", "ended prematurely", "moov atom not found", "truncated")


def _check_range(path: Path, start: float | None, end: float | None) -> None:
    if start is not None and start < 0:
        raise ValueError(f"{path}: start must be >= 0, got {start}")
    if end is not None and end <= (start or 0.0):
        raise ValueError(f"{path}: end ({end}) must be after start ({start or 0.0})")


def _finish(proc: subprocess.Popen, errfile, path: Path, what: str) -> None:
    """Reap ffmpeg and turn a failure into the right DubcliError."""
    rc = proc.wait()
    errfile.seek(0)
    err = errfile.read().decode("utf-8", "replace")
    if any(m in err for m in _TRUNCATED):
        raise InputError(f"{path}: file is truncated or corrupt ({_error_line(err)})")
    if rc != 0:
        raise ProcessingError(f"{path}: ffmpeg failed to decode {what} ({_error_line(err)})")
    if err.strip():
        log.debug("%s: ffmpeg reported while decoding %s: %s", path, what, _error_line(err))


def _stream(cmd: list[str], chunk_bytes: int, path: Path, what: str) -> Iterator[bytearray]:
    """Run ffmpeg and yield its stdout in chunks of exactly `chunk_bytes` (the last may be short).

    The finally clause kills and reaps ffmpeg when the consumer stops early (generator close).
    """
    errfile = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errfile,
            **child_options(),
        )
    except OSError as exc:
        errfile.close()
        raise DependencyError(
            f"{cmd[0]}: cannot run ({exc.strerror or exc}; {INSTALL_HINT})"
        ) from None
    try:
        while True:
            buf = bytearray(chunk_bytes)
            view, got = memoryview(buf), 0
            while got < chunk_bytes and (k := proc.stdout.readinto(view[got:])):
                got += k
            if got:
                yield buf if got == chunk_bytes else buf[:got]
            if got < chunk_bytes:
                break
        _finish(proc, errfile, path, what)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        errfile.close()


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = VIDEO_FPS,
    start: float = 0.0,
    end: float | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 RGB at `fps` (None: the file's rate) from [start, end) seconds.

    Frame k shows time start + k/fps (the first source frame at or after `start`; seeking is
    exact). With `end`, exactly round((end - start) * fps) frames when the video covers the range.
    size=(width, height) scales. Memory: one frame; ffmpeg is killed if iteration stops early.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise InputError(f"{path}: has no video stream")
    _check_range(path, start, end)
    w, h = size or (info.width, info.height)
    rate = fps or info.fps or VIDEO_FPS
    cmd = _ffmpeg("-v", "error")
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    # scale even at the native size: a stream that changes resolution mid-way stays (h, w)
    vf = ([f"fps={rate:.6f}"] if fps else []) + [f"scale={w}:{h}"]
    cmd += ["-i", _url(path), "-map", "0:V:0", "-vf", ",".join(vf), "-an", "-sn"]
    if end is not None:
        cmd += ["-frames:v", str(int(round((end - start) * rate)))]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    return _frames(_stream(cmd, w * h * 3, path, "video"), h, w)


def _frames(chunks: Iterator[bytearray], h: int, w: int) -> Iterator[np.ndarray]:
    try:
        for c in chunks:
            if len(c) == h * w * 3:  # a partial last frame is dropped
                yield np.frombuffer(c, np.uint8).reshape(h, w, 3)
    finally:
        chunks.close()  # stops ffmpeg now, not whenever the garbage collector gets to it


def read_frames(path, fps=VIDEO_FPS, start=0.0, end=None, size=None) -> np.ndarray:
    """All frames of a (short) range at once: (N, H, W, 3) uint8."""
    frames = list(iter_frames(path, fps, start, end, size))
    if frames:
        return np.stack(frames)
    info = probe(path)
    w, h = size or (info.width, info.height)
    return np.zeros((0, h, w, 3), np.uint8)


def _audio_cmd(path, sample_rate, start, end, mono, stream) -> tuple[list[str], int, int]:
    path = Path(path)
    info = probe(path)
    if not info.has_audio:
        raise InputError(f"{path}: has no audio stream")
    k = stream or 0
    if not 0 <= k < len(info.audio_streams):
        raise InputError(f"{path}: has no audio stream {k} (it has {len(info.audio_streams)})")
    _check_range(path, start, end)
    st = info.audio_streams[k]
    sr = int(sample_rate or st.sample_rate or SAMPLE_RATE)
    ch = 1 if mono else (st.channels or 2)
    cmd = _ffmpeg("-v", "error")
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    cmd += ["-i", _url(path), "-map", f"0:a:{k}", "-vn", "-sn", "-dn"]
    if end is not None:
        cmd += ["-t", f"{end - (start or 0.0):.6f}"]
    cmd += ["-af", _RESAMPLE, "-ac", str(ch), "-ar", str(sr), "-f", "f32le", "pipe:1"]
    return cmd, ch, sr


def decode_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    mono: bool = True,
    stream: int | None = None,
) -> np.ndarray:
    """Audio of any container/codec as float32 in [-1, 1]: (n,) if mono else (n, channels).

    sample_rate=None keeps the stream's rate. `stream` picks the n-th audio stream (default 0).
    With `end`, the length is exactly round((end - start) * sample_rate) if the file covers it.
    """
    cmd, ch, sr = _audio_cmd(path, sample_rate, start, end, mono, stream)
    data = b"".join(_stream(cmd, 1 << 22, Path(path), "audio"))
    wav = np.frombuffer(data, np.float32)[: len(data) // 4 // ch * ch].reshape(-1, ch)
    if end is not None:
        wav = wav[: int(round((end - (start or 0.0)) * sr))]
    wav = np.clip(wav, -1.0, 1.0)  # lossy decoders overshoot full scale slightly
    return wav.reshape(-1) if mono else wav


def iter_audio_blocks(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 30.0,
    *,
    mono: bool = True,
    stream: int | None = None,
) -> Iterator[np.ndarray]:
    """decode_audio for long files: float32 blocks of block_seconds (the last may be shorter)."""
    cmd, ch, sr = _audio_cmd(path, sample_rate, None, None, mono, stream)
    block = max(1, int(round(block_seconds * sr))) * ch * 4
    for chunk in _stream(cmd, block, Path(path), "audio"):
        wav = np.clip(np.frombuffer(chunk, np.float32).reshape(-1, ch), -1.0, 1.0)
        yield wav[:, 0] if mono else wav
