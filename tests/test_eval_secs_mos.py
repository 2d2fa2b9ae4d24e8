"""Speaker similarity (resemblyzer), DNSMOS (speechmos models) and the RTF helpers."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from dubcli.errors import InputError
from dubcli.eval import rtf

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")

SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the children watch from the garden.",
    "Please set the green box by the window and bring me a glass of water soon.",
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """{(voice, sentence index): 16 kHz float audio} for three mbrola voices (~4 s each)."""
    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        pytest.skip("no espeak-ng")
    d = tmp_path_factory.mktemp("speech")
    out = {}
    for voice in ("mb-us1", "mb-us2", "mb-us3"):
        for k, text in enumerate(SENTENCES):
            path = d / f"{voice}_{k}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
            wav, sr = sf.read(path, dtype="float32")
            assert sr == 16000
            out[voice, k] = wav
    return out


# ---------------------------------------------------------------------------------------------
# Mel spectrogram (librosa-compatible, computed without numba)


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")  # filters only: no numba kernels to compile
    from dubcli.eval.secs import mel_filters

    for n_fft, n_mels in ((400, 40), (321, 120)):
        ref = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(mel_filters(16000, n_fft, n_mels), ref, atol=1e-7)


def test_melspectrogram_frames_and_tone():
    from dubcli.eval.secs import mel_filters, melspectrogram

    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    m = melspectrogram(tone, sr=16000, n_fft=400, hop=160, n_mels=40)
    assert m.shape == (40, 101)  # centred frames: 1 + 16000 // 160
    fb = mel_filters(16000, 400, 40)
    assert np.argmax(m[:, 50]) == np.argmax(fb[:, 25])  # the band whose filter peaks at 1 kHz
    # an interior frame equals the plain numpy STFT (periodic Hann, frame centred on 160 t)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frame = tone[50 * 160 - 200 : 50 * 160 + 200] * w
    ref = fb @ np.abs(np.fft.rfft(frame)) ** 2
    np.testing.assert_allclose(m[:, 50], ref, rtol=1e-4, atol=1e-5 * ref.max())


# ---------------------------------------------------------------------------------------------
# SECS


@pytest.fixture(scope="module")
def embeddings(speech):
    from dubcli.eval.secs import speaker_embedding

    return {key: speaker_embedding(wav) for key, wav in speech.items()}


def test_secs_identical_audio(speech, embeddings):
    from dubcli.eval.secs import speaker_embedding

    e = embeddings["mb-us1", 0]
    assert e.shape == (256,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert float(e @ speaker_embedding(speech["mb-us1", 0].copy())) > 0.999


def test_secs_same_voice_beats_different_voice(embeddings):
    voices = ("mb-us1", "mb-us2", "mb-us3")
    e = embeddings
    same = np.array([e[v, 0] @ e[v, 1] for v in voices])
    diff = np.array(
        [e[a, i] @ e[b, j] for a in voices for b in voices if a < b for i in (0, 1) for j in (0, 1)]
    )
    # measured: same voice, different sentence 0.927-0.940; different voices 0.72-0.83
    assert same.min() > 0.88, same
    assert diff.max() < 0.87, diff
    assert same.min() - diff.max() > 0.05


def test_secs_batch_embeds_each_array_once(monkeypatch):
    from dubcli.eval import secs

    calls = []

    def fake_embedding(x, **kw):  # a unit vector that identifies the array's content
        calls.append(kw["name"])
        v = np.array([x[0], x[1], 1.0])
        return v / np.linalg.norm(v)

    monkeypatch.setattr(secs, "speaker_embedding", fake_embedding)
    ref, a, b = np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])
    out = secs.secs_batch([(a, ref), (b, ref), (a, b)])
    np.testing.assert_allclose(out, [1.0, 0.5, 0.5])
    assert calls == ["pair 0 generated", "pair 0 reference", "pair 1 generated"]


def test_secs_bad_audio():
    from dubcli.eval.secs import speaker_embedding

    with pytest.raises(InputError, match="ref.wav: audio is silent"):
        speaker_embedding(np.zeros(16000, np.float32), name="ref.wav")
    with pytest.raises(InputError, match="1-D"):
        speaker_embedding(np.zeros((2, 16000), np.float32))


# ---------------------------------------------------------------------------------------------
# DNSMOS


def test_dnsmos_clean_beats_noisy(speech):
    from dubcli.eval.mos import dnsmos

    # 4.8 s: speechmos doubles clips shorter than 9.01 s, so this is one model window (fast)
    clean = np.concatenate([speech["mb-us1", 1], speech["mb-us1", 0]])[: int(4.8 * 16000)]
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))  # 0 dB SNR
    noisy = clean + noise
    noisy /= max(1.0, float(np.abs(noisy).max()))
    a, b = dnsmos(clean), dnsmos(noisy)
    # measured (mbrola us1): clean OVRL 2.6-2.7, BAK 3.7; noisy OVRL 1.6, BAK 1.3
    assert a.ovrl > b.ovrl + 0.5, (a, b)
    assert a.bak > b.bak + 1.0
    assert all(1.0 <= v <= 5.0 for v in (a.ovrl, a.sig, a.bak, a.p808))


def test_dnsmos_bad_audio():
    from dubcli.eval.mos import dnsmos

    with pytest.raises(InputError, match="x.wav: samples exceed"):
        dnsmos(np.full(16000, 1.5, np.float32), name="x.wav")
    with pytest.raises(InputError, match="non-empty"):
        dnsmos(np.zeros(0, np.float32))


# ---------------------------------------------------------------------------------------------
# RTF helpers


def test_timer_and_rtf():
    calls = []
    with rtf.Timer(sync=lambda: calls.append(1)) as t:
        time.sleep(0.05)
    assert 0.045 < t.seconds < 1.0 and len(calls) == 2
    r = rtf.RealTimeFactor(seconds_audio=4.0, seconds_compute=1.0, device="cpu", nfe=8, n_params=10)
    assert r.rtf == 0.25
    total = rtf.total_rtf([r, rtf.RealTimeFactor(6.0, 4.0, "cpu", 8, 10)])
    assert total.rtf == pytest.approx(0.5) and total.as_dict()["nfe"] == 8
    with pytest.raises(ValueError, match="different setups"):
        rtf.total_rtf([r, rtf.RealTimeFactor(6.0, 4.0, "cpu", 16, 10)])
    assert rtf.RealTimeFactor(0.0, 1.0).rtf == float("inf")


def test_count_parameters():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[1].weight.requires_grad_(False)
    assert rtf.count_parameters(model) == 8 + 3
    assert rtf.count_parameters(model, trainable_only=True) == 8 + 1
    assert rtf.device_name("cpu") == "cpu"
