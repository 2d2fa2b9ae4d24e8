"""Encoding through ffmpeg: mux a dub track into a video, encode frames, make test clips.

Every output is written via temp + rename (fsutil.atomic_path).

Dimensions: H height, W width, n samples.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import InputError, OutputError, ProcessingError
from dubcli.fsutil import atomic_path
from dubcli.media.ffmpeg import _error_line, _ffmpeg, _url, run_ffmpeg
from dubcli.media.probe import probe
from dubcli.procs import child_options
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

log = get_logger(__name__)

_AUDIO_CODECS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}
_COPYABLE = {  # original-track codecs each container takes as is (else re-encoded)
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
    ".webm": {"opus", "vorbis"},
}
_ENCODER_ARGS = {"aac": ["-b:a", "192k"], "libopus": ["-b:a", "128k"], "opus": ["-b:a", "128k"]}
# ffmpeg's AAC encoder searches longer the more bits a channel gets: a minute of mono speech
# took 3.8-4.1 s at 192k and 1.2 s at 160k, SNR 41.4 against 41.0 dB (a stereo track at 192k:
# 2.4 s, 38.1 dB); a minute of the benchmark dub's track 3.1-3.3 s against 1.7-2.0 s
# (benchmarks/aac_rate.py, issue 15)
_MONO_AAC_ARGS = ["-b:a", "160k"]


def _encoder_args(codec: str, channels: int) -> list[str]:
    """Bitrate arguments of `codec` for a track of `channels` channels (0: unknown)."""
    if codec == "aac" and channels == 1:
        return _MONO_AAC_ARGS
    return _ENCODER_ARGS.get(codec, [])


def mux_audio(
    video: str | os.PathLike,
    audio_wav: str | os.PathLike,
    out: str | os.PathLike,
    *,
    keep_original: bool = False,
    language: str = "eng",
    title: str = "Dub",
    original_title: str = "Original",
    force: bool = False,
    audio_codec: str | None = None,
) -> Path:
    """`video` with `audio_wav` as its (default) audio track; the video stream is copied.

    Containers by extension: .mp4/.m4v/.mov (aac), .mkv (aac, or audio_codec="opus"), .webm
    (opus). keep_original keeps the source's audio tracks after the dub, not default, titled
    `original_title`, their language kept.
    """
    video, audio_wav, out = Path(video), Path(audio_wav), Path(out)
    ext = out.suffix.lower()
    if ext not in _AUDIO_CODECS:
        raise OutputError(f"{out}: unsupported container {ext!r} (use .mp4, .mov, .mkv or .webm)")
    vinfo, ainfo = probe(video), probe(audio_wav)
    if not vinfo.has_video:
        raise InputError(f"{video}: has no video stream")
    if not ainfo.has_audio:
        raise InputError(f"{audio_wav}: has no audio stream")
    if ext == ".webm" and vinfo.video_codec not in ("vp8", "vp9", "av1"):
        raise OutputError(
            f"{out}: WebM holds only VP8/VP9/AV1 video, {video.name} is {vinfo.video_codec}"
            " (use .mkv or .mp4 to keep the video stream as is)"
        )
    if abs(ainfo.duration - vinfo.duration) > 0.5:
        log.warning(
            "%s: audio lasts %.2f s, video %.2f s", audio_wav, ainfo.duration, vinfo.duration
        )
    if audio_codec not in (None, "aac", "opus") or (ext == ".webm" and audio_codec == "aac"):
        raise OutputError(f"{out}: audio codec {audio_codec!r} not offered for {ext} (aac, opus)")
    codec = "libopus" if audio_codec == "opus" else _AUDIO_CODECS[ext]
    originals = vinfo.audio_streams if keep_original else ()
    cmd = ["-i", _url(video), "-i", _url(audio_wav)]
    cmd += ["-map", "0:V", "-map", "1:a:0"] + [
        a for s in originals for a in ("-map", f"0:a:{s.index}")
    ]
    dub_args = _encoder_args(codec, ainfo.audio_streams[0].channels)
    cmd += ["-c:v", "copy", "-c:a:0", codec, *dub_args, "-ar:a:0", "48000"]
    cmd += ["-metadata:s:a:0", f"language={language}", "-disposition:a:0", "default"]
    cmd += ["-metadata:s:a:0", f"title={title}", "-metadata:s:a:0", f"handler_name={title}"]
    for i, s in enumerate(originals, start=1):
        name = original_title if len(originals) == 1 else f"{original_title} {i}"
        if ext in _COPYABLE and s.codec not in _COPYABLE[ext]:
            cmd += [f"-c:a:{i}", codec, *_ENCODER_ARGS.get(codec, [])]
        else:
            cmd += [f"-c:a:{i}", "copy"]
        cmd += [f"-metadata:s:a:{i}", f"title={name}", f"-metadata:s:a:{i}", f"handler_name={name}"]
        cmd += [f"-disposition:a:{i}", "0"]
    same_family = ("matroska" in vinfo.format_name) == (ext in (".mkv", ".webm"))
    if vinfo.subtitle_streams and same_family and ext != ".webm":
        cmd += ["-map", "0:s", "-c:s", "copy"]  # subtitle codecs only fit their own family
    if ext in (".mp4", ".m4v", ".mov"):
        cmd += ["-movflags", "+faststart"]
    with atomic_path(out, force=force) as tmp:
        run_ffmpeg(*cmd, "-y", _url(tmp), target=out, what="mux the audio")
    return out


def write_video(
    frames: Iterable[np.ndarray],
    out: str | os.PathLike,
    fps: float = VIDEO_FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
    *,
    force: bool = True,
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames: h264 yuv420p (.mp4/.mov/.mkv) or vp9 (.webm).

    Odd sizes are padded to even ones (yuv420p). `audio`: float (n,) or (n, channels) at
    `sample_rate`, encoded as aac (opus for .webm). Frames stream to ffmpeg one at a time.
    """
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in _AUDIO_CODECS:
        raise OutputError(f"{out}: unsupported container {ext!r} (use .mp4, .mov, .mkv or .webm)")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError(f"{out}: no frames to write")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"{out}: frames must be (H, W, 3) RGB, got {first.shape}")
    h, w = first.shape[:2]
    with tempfile.TemporaryDirectory(prefix="dubcli-") as td, atomic_path(out, force=force) as tmp:
        cmd = _ffmpeg("-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}")
        cmd += ["-framerate", f"{fps}", "-i", "pipe:0"]
        if audio is not None:
            import soundfile as sf

            wav_path = Path(td) / "audio.wav"
            sf.write(wav_path, np.asarray(audio, np.float32), int(sample_rate), subtype="FLOAT")
            cmd += ["-i", _url(wav_path), "-map", "0:v", "-map", "1:a"]
            cmd += ["-c:a", _AUDIO_CODECS[ext], *_ENCODER_ARGS[_AUDIO_CODECS[ext]]]
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"]
        if ext == ".webm":
            cmd += ["-c:v", "libvpx-vp9", "-crf", str(crf + 12), "-b:v", "0", "-deadline", "good"]
            cmd += ["-cpu-used", "4", "-row-mt", "1"]
        else:
            cmd += ["-c:v", "libx264", "-crf", str(crf), "-preset", "fast"]
        if ext in (".mp4", ".m4v", ".mov"):
            cmd += ["-movflags", "+faststart"]
        cmd += ["-y", _url(tmp)]
        _pipe_frames(cmd, first, it, (h, w), out)
    return out


def _pipe_frames(cmd, first, rest, hw, out: Path) -> None:
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errfile,
                            **child_options())  # fmt: skip
    try:
        for i, frame in enumerate(itertools.chain([first], rest)):
            frame = np.asarray(frame)
            if frame.shape != (*hw, 3):
                raise ValueError(f"{out}: frame {i} is {frame.shape}, expected {(*hw, 3)}")
            if frame.dtype != np.uint8:
                frame = np.clip(frame, 0, 255).astype(np.uint8)
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # ffmpeg died: its stderr says why
    finally:
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        if proc.wait() != 0:
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
            raise ProcessingError(f"{out}: ffmpeg failed to encode video ({_error_line(err)})")
        errfile.close()


_TEST_CODECS = {
    ".mp4": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".mov": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".mkv": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".webm": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        ["-c:a", "libopus"],
    ),
    ".wav": ([], ["-c:a", "pcm_s16le"]),
    ".flac": ([], ["-c:a", "flac"]),
    ".mp3": ([], ["-c:a", "libmp3lame", "-b:a", "128k"]),
    ".m4a": ([], ["-c:a", "aac"]),
    ".ogg": ([], ["-c:a", "libvorbis"]),
    ".opus": ([], ["-c:a", "libopus"]),
}


def make_test_video(
    path: str | os.PathLike,
    seconds: float,
    fps: float = VIDEO_FPS,
    size: tuple[int, int] = (160, 120),
    audio: bool = True,
    tone_hz: float = 440.0,
    sample_rate: int = 44100,
    channels: int = 1,
) -> Path:
    """A lavfi test clip (testsrc pattern + sine tone) for tests and examples; codecs by suffix.

    Audio-only suffixes (.wav .flac .mp3 .m4a .ogg .opus) give just the tone.
    """
    path = Path(path)
    vargs, aargs = _TEST_CODECS[path.suffix.lower()]
    cmd = []
    if vargs:
        w, h = size
        cmd += ["-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio or not vargs:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate={sample_rate}"]
        # pan copies the tone at full level into every channel (-ac would scale it by 1/sqrt 2)
        pan = f"pan={channels}c|" + "|".join(f"c{i}=c0" for i in range(channels))
        cmd += ["-t", str(seconds), *aargs, "-af", pan]
    if vargs:
        cmd += [*vargs, "-pix_fmt", "yuv420p"]
    with atomic_path(path) as tmp:
        run_ffmpeg(*cmd, "-y", _url(tmp), target=path, what="make a test clip")
    return path
