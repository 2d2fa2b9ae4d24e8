"""dubcli.audio.io: loading any format at 16 kHz mono, saving without clipping, reference voices."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from dubcli import media
from dubcli.audio.io import load_audio, load_reference, peak_dbfs, rms_dbfs, save_audio
from dubcli.errors import InputError, OutputError, ProcessingError

SR = 16000


def _tone(seconds: float, sr: int = SR, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _peak_hz(wav: np.ndarray, sr: int = SR) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(wav * np.hanning(len(wav))))) * sr / len(wav))


@pytest.fixture
def warnings_seen(caplog, monkeypatch):
    # the CLI's setup_logging turns propagation off; tests need the records at the root
    monkeypatch.setattr(logging.getLogger("dubcli"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="dubcli")
    return caplog


def test_levels():
    assert rms_dbfs(np.ones(100)) == pytest.approx(0.0)
    assert rms_dbfs(_tone(1.0, amp=1.0)) == pytest.approx(-3.01, abs=0.01)
    assert peak_dbfs(np.full(10, 0.1)) == pytest.approx(-20.0)
    assert rms_dbfs(np.zeros(10)) == float("-inf")


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".mp4"])
def test_load_audio_any_format_at_16k_mono(tmp_path, ext):
    path = media.make_test_video(tmp_path / f"x{ext}", 1.5, channels=2, sample_rate=44100)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert 24000 <= len(wav) <= 24000 + 400  # lossy codecs may keep a little padding
    assert _peak_hz(wav) == pytest.approx(440, abs=1)
    assert 0.1 < np.abs(wav).max() < 0.15  # both channels carry the 1/8 tone: the mean is too
    assert load_audio(path, sample_rate=8000, mono=False).shape[1] == 2


def test_soundfile_and_ffmpeg_paths_agree(tmp_path):
    # both resample with soxr "VHQ": the two load paths give the same samples
    path = tmp_path / "t.wav"
    sf.write(path, np.stack([_tone(1.0, 44100), _tone(1.0, 44100, 660)], 1), 44100)
    a, b = load_audio(path), media.decode_audio(path)
    assert a.shape == b.shape == (16000,)
    assert np.abs(a - b).max() < 1e-4


def test_save_audio_roundtrip_and_formats(tmp_path):
    x = _tone(1.0)
    out = save_audio(tmp_path / "a.wav", x)
    y, sr = sf.read(out, dtype="float32")
    assert sr == SR and np.abs(y - x).max() < 1e-4 and sf.info(out).subtype == "PCM_16"
    for ext in (".flac", ".mp3", ".m4a", ".ogg", ".opus"):
        p = save_audio(tmp_path / f"a{ext}", x)
        back = load_audio(p)
        assert abs(len(back) - SR) < 400 and _peak_hz(back) == pytest.approx(440, abs=1)
    stereo = save_audio(tmp_path / "s.wav", np.stack([x, -x], 1))
    assert sf.info(stereo).channels == 2
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_save_audio_never_clips_silently(tmp_path, warnings_seen):
    loud = _tone(0.5, amp=1.6)
    y, _ = sf.read(save_audio(tmp_path / "loud.wav", loud), dtype="float32")
    assert "scaled down" in warnings_seen.text
    assert np.abs(y).max() <= 1.0
    # scaled, not clipped: the waveform keeps its shape (a clipped sine would not correlate 1.0)
    assert np.corrcoef(y, loud)[0, 1] > 0.9999
    f, _ = sf.read(save_audio(tmp_path / "f.wav", loud, subtype="FLOAT"), dtype="float32")
    assert np.abs(f).max() == pytest.approx(1.6, abs=1e-3)


def test_save_audio_refusals(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"keep")
    with pytest.raises(OutputError, match="e.wav: already exists"):
        save_audio(tmp_path / "e.wav", _tone(0.1), force=False)
    assert (tmp_path / "e.wav").read_bytes() == b"keep"
    with pytest.raises(OutputError, match="unsupported audio format '.xyz'"):
        save_audio(tmp_path / "a.xyz", _tone(0.1))
    bad = _tone(0.1)
    bad[5] = np.nan
    with pytest.raises(ProcessingError, match="n.wav: audio contains NaN"):
        save_audio(tmp_path / "n.wav", bad)
    assert not (tmp_path / "n.wav").exists()


def _speech_like(sr, channels=1, lead=0.5, body=1.0, tail=0.5):
    """Silence, a 1 s tone with a noise floor at -70 dBFS, silence: written at `sr`."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(int(lead * sr)), _tone(body, sr, 220), np.zeros(int(tail * sr))])
    x = x + 10 ** (-70 / 20) * rng.standard_normal(len(x))
    x = np.repeat(x[:, None], channels, 1) if channels > 1 else x
    return x


def test_reference_44k_stereo_mp3_is_trimmed_16k_mono(tmp_path):
    wav = tmp_path / "src.wav"
    sf.write(wav, _speech_like(44100, channels=2), 44100, subtype="FLOAT")
    mp3 = save_audio(tmp_path / "voice.mp3", sf.read(wav, dtype="float32")[0], 44100)
    info = media.probe(mp3)
    assert (info.audio_streams[0].sample_rate, info.audio_streams[0].channels) == (44100, 2)
    ref = load_reference(mp3)
    assert ref.ndim == 1 and ref.dtype == np.float32
    # 1 s of sound plus 50 ms kept on each side (the tone's onset is within a frame or two)
    assert len(ref) / SR == pytest.approx(1.1, abs=0.03)
    assert _peak_hz(ref) == pytest.approx(220, abs=2)


def test_reference_silent_and_too_short(tmp_path):
    silent = tmp_path / "voice.wav"
    sf.write(silent, np.zeros(SR), SR)
    with pytest.raises(InputError, match="voice.wav: reference is silent"):
        load_reference(silent)
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, 1e-4 * np.random.default_rng(1).standard_normal(SR), SR)  # -80 dBFS
    with pytest.raises(InputError, match="hiss.wav: reference is silent"):
        load_reference(hiss)
    short = tmp_path / "short.wav"
    sf.write(short, _speech_like(SR, lead=0.4, body=0.1, tail=0.4), SR)
    with pytest.raises(InputError, match=r"short.wav: reference is too short \(0.1\d s"):
        load_reference(short)
    assert len(load_reference(short, min_seconds=0.05)) / SR == pytest.approx(0.2, abs=0.03)


def test_reference_clipping_warns(tmp_path, warnings_seen):
    ok = tmp_path / "ok.wav"
    sf.write(ok, _tone(1.0, amp=0.9), SR)
    load_reference(ok)
    assert "clipped" not in warnings_seen.text
    clipped = tmp_path / "hot.wav"
    sf.write(clipped, np.clip(_tone(1.0, amp=3.0), -1, 1), SR)
    load_reference(clipped)
    assert "hot.wav: reference looks clipped" in warnings_seen.text


def test_reference_bad_paths(tmp_path):
    with pytest.raises(InputError, match="nope.wav: file not found"):
        load_reference(tmp_path / "nope.wav")
    with pytest.raises(InputError, match="is a directory"):
        load_audio(tmp_path)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file at all")
    with pytest.raises(InputError, match="junk.wav: not a media file"):
        load_reference(junk)
    video = media.make_test_video(tmp_path / "mute.mp4", 0.5, audio=False)
    with pytest.raises(InputError, match="mute.mp4: has no audio stream"):
        load_reference(video)
