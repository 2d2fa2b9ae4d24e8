"""dubcli.media on generated clips: probe, frame and audio decoding, mux, encode, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubcli import media
from dubcli.errors import DependencyError, InputError, OutputError, ProcessingError
from dubcli.media import decode as media_decode
from dubcli.media import ffmpeg as media_ffmpeg

CONTAINERS = [".mp4", ".mkv", ".webm", ".mov"]
AUDIO_ONLY = [".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """2 s clips: testsrc 160x120 @ 25 fps + a 440 Hz tone at 44.1 kHz (opus: 48 kHz)."""
    d = tmp_path_factory.mktemp("clips")
    out = {ext: media.make_test_video(d / f"clip{ext}", 2.0) for ext in CONTAINERS + AUDIO_ONLY}
    out["stereo.mp3"] = media.make_test_video(d / "stereo.mp3", 2.0, channels=2)
    out["silent.mp4"] = media.make_test_video(d / "silent.mp4", 1.0, audio=False)
    out["dub.wav"] = media.make_test_video(d / "dub.wav", 2.0, tone_hz=300, sample_rate=16000)
    return out


def _peak_hz(wav: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spec) * sr / len(wav))


def _video_md5(path) -> str:
    cmd = [media.find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy"]
    return subprocess.run([*cmd, "-f", "md5", "-"], capture_output=True, text=True).stdout


def _code_frame(i: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A solid frame whose colour spells i: red = 25 * (i % 10), green = 25 * (i // 10)."""
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0], f[..., 1], f[..., 2] = 25 * (i % 10), 25 * (i // 10), 128
    return f


def _decode_code(f: np.ndarray) -> int:
    return int(round(f[..., 0].mean() / 25)) + 10 * int(round(f[..., 1].mean() / 25))


# ---------------------------------------------------------------------------- finding ffmpeg


def test_find_ffmpeg_env_and_missing(monkeypatch, tmp_path):
    assert os.access(media.find_ffmpeg(), os.X_OK)
    monkeypatch.setenv("DUBCLI_FFMPEG", str(tmp_path / "no-ffmpeg"))
    with pytest.raises(DependencyError, match="DUBCLI_FFMPEG"):
        media.find_ffmpeg()
    monkeypatch.delenv("DUBCLI_FFMPEG")
    monkeypatch.setattr(media_ffmpeg.shutil, "which", lambda name: None)
    monkeypatch.setitem(__import__("sys").modules, "imageio_ffmpeg", None)
    media_ffmpeg._find_ffmpeg.cache_clear()
    try:
        with pytest.raises(DependencyError, match="pip install imageio-ffmpeg"):
            media.find_ffmpeg()
    finally:
        media_ffmpeg._find_ffmpeg.cache_clear()


# ---------------------------------------------------------------------------- probe


@pytest.mark.parametrize("ext", CONTAINERS)
def test_probe_video_containers(clips, ext):
    info = media.probe(clips[ext])
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.fps) == (160, 120, 25.0)
    assert info.video_codec == ("vp9" if ext == ".webm" else "h264")
    assert abs(info.duration - 2.0) < 0.05 and abs(info.n_frames - 50) <= 1
    (a,) = info.audio_streams
    assert a.codec == ("opus" if ext == ".webm" else "aac") and a.channels == 1
    assert a.sample_rate == (48000 if ext == ".webm" else 44100)


@pytest.mark.parametrize("name", [".wav", ".mp3", "stereo.mp3", ".opus"])
def test_probe_audio_files(clips, name):
    info = media.probe(clips[name])
    assert not info.has_video and info.width == 0 and info.n_frames == 0
    (a,) = info.audio_streams
    assert a.channels == (2 if name == "stereo.mp3" else 1)
    assert a.sample_rate == (48000 if name == ".opus" else 44100)
    assert abs(info.duration - 2.0) < 0.05


def test_probe_rotation_swaps_frame_size(clips, tmp_path):
    out = tmp_path / "rot.mp4"
    cmd = [media.find_ffmpeg(), "-v", "error", "-display_rotation:v:0", "90", "-i"]
    subprocess.run([*cmd, str(clips[".mp4"]), "-c", "copy", str(out)], check=True)
    info = media.probe(out)
    assert (info.width, info.height, abs(info.rotation)) == (120, 160, 90)
    assert media.read_frames(out, end=0.2).shape == (5, 160, 120, 3)


FFMPEG_DUMP = """Input #0, matroska,webm, from 'file:/x/movie.mkv':
  Metadata:
    title           : A movie
  Duration: 01:02:03.50, start: 0.000000, bitrate: 5000 kb/s
  Chapters:
    Chapter #0:0: start 0.000000, end 60.000000
      Metadata:
        title           : Intro
  Stream #0:0: Video: h264 (High), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 29.97 fps, 29.97 tbr, 1k tbn (default)
    Metadata:
      DURATION        : 01:02:03.500000000
  Stream #0:1(eng): Audio: eac3, 48000 Hz, 5.1(side), fltp, 640 kb/s (default)
    Metadata:
      title           : Surround 5.1
  Stream #0:2(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s
    Metadata:
      handler_name    : SoundHandler
  Stream #0:3(spa): Subtitle: subrip
  Stream #0:4: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x800, 90k tbr, 90k tbn (attached pic)
At least one output file must be specified
"""


def test_parse_ffmpeg_stream_dump():
    info = media.info_from_ffmpeg_stderr(Path("movie.mkv"), FFMPEG_DUMP)
    assert info.format_name == "matroska,webm" and info.duration == pytest.approx(3723.5)
    assert (info.video_codec, info.width, info.height) == ("h264", 1920, 1080)  # not the cover
    assert info.fps == pytest.approx(30000 / 1001, abs=1e-9)
    assert info.n_frames == round(3723.5 * 30000 / 1001) and info.subtitle_streams == 1
    a, b = info.audio_streams
    assert (a.index, a.codec, a.sample_rate, a.channels) == (0, "eac3", 48000, 6)
    assert (a.language, a.title, a.default) == ("eng", "Surround 5.1", True)
    assert (b.index, b.codec, b.channels, b.language, b.title, b.default) == (
        1, "aac", 2, None, None, False,
    )  # fmt: skip


FFPROBE_JSON = {
    "streams": [
        {
            "index": 0, "codec_type": "video", "codec_name": "h264", "width": 1080,
            "height": 1920, "r_frame_rate": "30/1", "avg_frame_rate": "30/1", "nb_frames": "300",
            "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}],
            "disposition": {"default": 1, "attached_pic": 0},
        },
        {
            "index": 1, "codec_type": "audio", "codec_name": "aac", "sample_rate": "48000",
            "channels": 2, "tags": {"language": "eng", "handler_name": "Core Media Audio"},
            "disposition": {"default": 1},
        },
        {
            "index": 2, "codec_type": "audio", "codec_name": "opus", "sample_rate": "48000",
            "channels": 1, "tags": {"language": "und", "title": "Commentary"},
            "disposition": {"default": 0},
        },
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.000000"},
}  # fmt: skip


def test_probe_uses_ffprobe_json_when_present(clips, tmp_path, monkeypatch):
    # a fake ffprobe next to $DUBCLI_FFMPEG: probe must take its JSON rather than ffmpeg's dump
    (tmp_path / "ffmpeg").symlink_to(media.find_ffmpeg())
    fake = tmp_path / "ffprobe"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(FFPROBE_JSON)}\nEOF\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DUBCLI_FFMPEG", str(tmp_path / "ffmpeg"))
    assert media.find_ffprobe() == str(fake)
    info = media.probe(clips[".mp4"])
    assert (info.width, info.height, info.fps, info.n_frames) == (1920, 1080, 30.0, 300)
    assert info.duration == 10.0 and info.rotation == -90
    a, b = info.audio_streams
    assert (a.codec, a.channels, a.language, a.title, a.default) == ("aac", 2, "eng", None, True)
    assert (b.codec, b.language, b.title, b.default) == ("opus", None, "Commentary", False)


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_file(clips, tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(InputError, match="missing.mp4: file not found"):
        media.probe(missing)
    with pytest.raises(InputError, match="is a directory"):
        media.decode_audio(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(InputError, match=r"notes.mp4: not a media file .*moov atom not found"):
        media.probe(text)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.mkv: is empty"):
        list(media.iter_frames(empty))
    with pytest.raises(InputError, match="silent.mp4: has no audio stream"):
        media.decode_audio(clips["silent.mp4"])
    with pytest.raises(InputError, match="clip.wav: has no video stream"):
        media.iter_frames(clips[".wav"])  # raised at the call, not at the first frame
    with pytest.raises(InputError, match="has no audio stream 1"):
        media.decode_audio(clips[".mp4"], stream=1)


@pytest.mark.parametrize("ext,faststart", [(".mp4", False), (".mp4", True), (".mkv", False)])
def test_truncated_files(clips, tmp_path, ext, faststart):
    src = clips[ext]
    if faststart:  # index first: ffmpeg alone would read half the frames and call it success
        src = tmp_path / "fs.mp4"
        cmd = [media.find_ffmpeg(), "-v", "error", "-i", str(clips[ext]), "-c", "copy"]
        subprocess.run([*cmd, "-movflags", "+faststart", str(src)], check=True)
    half = tmp_path / f"half{ext}"
    half.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"half{ext}: file is truncated"):
        media.probe(half)
    with pytest.raises(InputError, match="truncated"):
        media.decode_audio(half)


# ---------------------------------------------------------------------------- frames


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """3 s at 25 fps whose frame i has the colour code i (75 frames), via write_video."""
    out = tmp_path_factory.mktemp("coded") / "coded.mp4"
    return media.write_video((_code_frame(i) for i in range(75)), out, fps=25)


def test_write_video_then_decode_every_frame(coded):
    frames = media.read_frames(coded)
    assert frames.shape == (75, 120, 160, 3) and frames.dtype == np.uint8
    assert [_decode_code(f) for f in frames] == list(range(75))
    assert np.abs(frames[7].astype(int) - _code_frame(7)).max() <= 6  # crf 18, yuv420p


@pytest.mark.parametrize(
    "start,end,first,count",
    [(0.4, 1.2, 10, 20), (1.0, 1.04, 25, 1), (0.12, 2.0, 3, 47), (1.02, 1.5, 26, 12),
     (2.6, 4.0, 65, 10)],
)  # fmt: skip
def test_frame_range_is_exact(coded, start, end, first, count):
    # [start, end) -> round((end - start) * 25) frames from the first at or after `start`;
    # the last case runs past the end of the video and gets what there is
    got = [_decode_code(f) for f in media.iter_frames(coded, start=start, end=end)]
    assert got == list(range(first, first + count))


def test_frames_resample_and_resize(coded, tmp_path):
    assert media.read_frames(coded, start=1.0, end=2.0, size=(64, 48)).shape == (25, 48, 64, 3)
    assert len(media.read_frames(coded, fps=10, end=2.0)) == 20
    fast = media.write_video((_code_frame(i) for i in range(90)), tmp_path / "30.mp4", fps=30)
    got = [_decode_code(f) for f in media.iter_frames(fast)]
    assert len(got) == 75 and got[0] == 0 and got == sorted(got)  # 30 -> 25 fps drops, in order
    assert media.read_frames(coded, start=5.0, end=6.0).shape == (0, 120, 160, 3)


def test_stopping_early_kills_ffmpeg(coded, monkeypatch):
    procs = []

    class Recording(subprocess.Popen):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            procs.append(self)

    monkeypatch.setattr(media_decode.subprocess, "Popen", Recording)
    frames = media.iter_frames(coded)
    next(frames), next(frames)
    assert procs and procs[0].poll() is None  # still decoding, blocked on the full pipe
    frames.close()
    assert procs[0].returncode is not None  # killed and reaped


def test_write_video_pads_odd_sizes_and_adds_audio(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    frames = [np.full((61, 81, 3), 200, np.uint8)] * 25
    out = media.write_video(frames, tmp_path / "odd.mp4", audio=tone, sample_rate=16000)
    info = media.probe(out)
    assert (info.width, info.height, info.n_frames) == (82, 62, 25)
    assert _peak_hz(media.decode_audio(out)) == pytest.approx(440, abs=2)
    bad = [np.zeros((60, 80, 3), np.uint8), np.zeros((60, 82, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1"):
        media.write_video(bad, tmp_path / "bad.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]  # no temp files left


# ---------------------------------------------------------------------------- audio


@pytest.mark.parametrize("ext", AUDIO_ONLY + CONTAINERS)
def test_decode_audio_any_format(clips, ext):
    wav = media.decode_audio(clips[ext])
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.abs(wav).max() <= 1.0
    # aac in matroska keeps the encoder's tail padding (~20 ms); everything else is exact
    assert 32000 <= len(wav) <= 32000 + 400
    assert _peak_hz(wav) == pytest.approx(440, abs=1)
    assert 0.08 < np.abs(wav).max() < 0.16  # lavfi sine: amplitude 1/8


def test_decode_audio_stereo_rate_and_range(clips):
    st = media.decode_audio(clips["stereo.mp3"], sample_rate=None, mono=False)
    assert st.shape == (88200, 2) and np.allclose(st[:, 0], st[:, 1])
    mono = media.decode_audio(clips["stereo.mp3"], sample_rate=44100)
    assert np.allclose(mono, st[:, 0], atol=1e-5)  # (L + R) / 2, not L + R
    part = media.decode_audio(clips[".wav"], start=0.5, end=1.25)
    assert part.shape == (12000,)


def test_decode_audio_seeks_to_the_sample(tmp_path):
    x = np.zeros(32000, np.float32)
    x[24000] = 0.9  # a click at 1.5 s
    sf.write(tmp_path / "click.wav", x, 16000, subtype="FLOAT")
    wav = media.decode_audio(tmp_path / "click.wav", start=0.5, end=2.0)
    assert len(wav) == 24000 and int(np.argmax(wav)) == 16000


def test_iter_audio_blocks_matches_decode(clips):
    whole = media.decode_audio(clips[".flac"])
    blocks = list(media.iter_audio_blocks(clips[".flac"], 16000, block_seconds=0.75))
    assert [len(b) for b in blocks] == [12000, 12000, 8000]
    assert np.array_equal(np.concatenate(blocks), whole)


# ---------------------------------------------------------------------------- mux


@pytest.mark.parametrize(
    "src,ext,codec",
    [(".mp4", ".mp4", "aac"), (".mp4", ".mov", "aac"), (".mp4", ".mkv", "aac"),
     (".mkv", ".mkv", "opus"), (".webm", ".webm", "opus")],
)  # fmt: skip
@pytest.mark.parametrize("keep", [False, True])
def test_mux_copies_video_and_sets_tracks(clips, tmp_path, src, ext, codec, keep):
    out = tmp_path / f"dubbed{ext}"
    kw = {"audio_codec": "opus"} if (ext == ".mkv" and codec == "opus") else {}
    got = media.mux_audio(clips[src], clips["dub.wav"], out, keep_original=keep, language="spa",
                          title="Doblaje", original_title="Original", **kw)  # fmt: skip
    assert got == out and _video_md5(out) == _video_md5(clips[src])  # bit-identical video
    info = media.probe(out)
    assert [a.index for a in info.audio_streams] == ([0, 1] if keep else [0])
    dub = info.audio_streams[0]
    assert (dub.codec, dub.language, dub.title, dub.default) == (codec, "spa", "Doblaje", True)
    assert _peak_hz(media.decode_audio(out, stream=0)) == pytest.approx(300, abs=1)
    if keep:
        orig = info.audio_streams[1]
        assert (orig.title, orig.default) == ("Original", False)
        assert _peak_hz(media.decode_audio(out, stream=1)) == pytest.approx(440, abs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_mux_aac_bitrate_by_channels():
    # a mono dub track at 192k cost 1.6x the encode time of 160k for no audible gain (issue 15)
    from dubcli.media.encode import _encoder_args

    assert _encoder_args("aac", 1) == ["-b:a", "160k"]
    assert _encoder_args("aac", 2) == _encoder_args("aac", 0) == ["-b:a", "192k"]
    assert _encoder_args("libopus", 1) == ["-b:a", "128k"]


def test_mux_keeps_subtitles_within_a_container_family(clips, tmp_path):
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nHola\n")
    src = tmp_path / "subs.mkv"
    cmd = [media.find_ffmpeg(), "-v", "error", "-i", str(clips[".mp4"]), "-i", str(srt)]
    subprocess.run([*cmd, "-map", "0", "-map", "1", "-c", "copy", str(src)], check=True)
    assert media.probe(src).subtitle_streams == 1
    out = media.mux_audio(src, clips["dub.wav"], tmp_path / "o.mkv")
    assert media.probe(out).subtitle_streams == 1
    out = media.mux_audio(src, clips["dub.wav"], tmp_path / "o.mp4")  # srt cannot go in mp4
    assert media.probe(out).subtitle_streams == 0


def test_mux_refusals_and_failures(clips, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="out.mp4: already exists"):
        media.mux_audio(clips[".mp4"], clips["dub.wav"], out)
    assert out.read_bytes() == b"precious"
    media.mux_audio(clips[".mp4"], clips["dub.wav"], out, force=True)
    assert media.probe(out).has_audio
    with pytest.raises(OutputError, match="unsupported container '.avi'"):
        media.mux_audio(clips[".mp4"], clips["dub.wav"], tmp_path / "out.avi")
    with pytest.raises(OutputError, match="audio codec 'mp3' not offered"):
        media.mux_audio(clips[".mp4"], clips["dub.wav"], tmp_path / "o.mkv", audio_codec="mp3")
    with pytest.raises(OutputError, match="WebM holds only VP8/VP9/AV1"):
        media.mux_audio(clips[".mp4"], clips["dub.wav"], tmp_path / "out.webm")
    with pytest.raises(InputError, match="clip.wav: has no video stream"):
        media.mux_audio(clips[".wav"], clips["dub.wav"], tmp_path / "x.mp4")
    # vp9 cannot go into QuickTime: ffmpeg's own reason comes back, no partial file remains
    with pytest.raises(ProcessingError, match=r"bad.mov: ffmpeg failed to mux .*vp9"):
        media.mux_audio(clips[".webm"], clips["dub.wav"], tmp_path / "bad.mov")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
