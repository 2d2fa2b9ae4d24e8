"""Lip-sync metrics: landmark sync, phone-boundary error, and the SyncNet (LSE) port."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from dubcli.errors import CheckpointError, InputError
from dubcli.eval import syncnet as sn
from dubcli.eval.sync import boundary_error_ms, landmark_sync, summarize_sync

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# Landmark sync on synthetic signals with a known lag


def _aperture(nv: int, rng=RNG) -> np.ndarray:
    raw = (rng.random(nv) < 0.35).astype(float)  # syllable-like open/close pattern
    return np.convolve(raw, np.hanning(5) / np.hanning(5).sum(), mode="same")


def _audio(env_frames: np.ndarray, lag: int, rng=RNG) -> np.ndarray:
    """Voiced-ish audio whose per-frame loudness follows env delayed by `lag` frames."""
    env = np.zeros_like(env_frames)
    if lag >= 0:
        env[lag:] = env_frames[: len(env) - lag]
    else:
        env[:lag] = env_frames[-lag:]
    e = np.repeat(env, 640)
    t = np.arange(len(e)) / 16000
    carrier = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    return (0.3 * (e + 0.01) * (carrier + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


@pytest.mark.parametrize("lag", [-6, 0, 4, 9])
def test_landmark_sync_recovers_lag_with_sign(lag):
    ap = _aperture(150)
    r = landmark_sync(ap, _audio(ap, lag))
    # positive = audio lags video: the audio was built as the aperture delayed by `lag` frames
    assert r.offset_frames == lag
    assert r.correlations.shape == (31,)
    assert r.offsets[np.nanargmax(r.correlations)] == lag
    assert r.confidence > 0.5
    assert r.n_frames == 150


def test_landmark_sync_unrelated_audio_has_low_confidence():
    ap = _aperture(150)
    aligned = landmark_sync(ap, _audio(ap, 0))
    unrelated = landmark_sync(ap, _audio(_aperture(150), 0))
    assert unrelated.confidence < 0.4 < aligned.confidence


def test_landmark_sync_skips_frames_without_face():
    ap = _aperture(150)
    wav = _audio(ap, 3)
    holed = ap.copy()
    holed[20:35] = np.nan  # face lost for 15 frames
    assert landmark_sync(holed, wav).offset_frames == 3


def _mbrola(text: str, voice: str, tmp_path):
    """Speech and a phone-class mouth aperture at 25 fps from espeak-ng's exact .pho timings."""
    pho = subprocess.run(
        ["espeak-ng", "-v", voice, "-q", "--pho", text], capture_output=True, text=True, check=True
    ).stdout
    out = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True)
    import soundfile as sf

    wav, sr = sf.read(out, dtype="float32")
    assert sr == 16000
    spans, t = [], 0.0
    for line in pho.splitlines():
        f = line.split()
        if len(f) >= 2:
            spans.append((f[0], t, t + int(f[1]) / 1000))
            t += int(f[1]) / 1000
    ap = np.zeros(len(wav) // 640)
    for k in range(len(ap)):
        tc = (k + 0.5) / 25
        ph = next((p for p, a, b in spans if a <= tc < b), "_")
        # vowels open, bilabials closed, other consonants half-open, pauses closed
        ap[k] = (
            0 if ph == "_" else 1 if ph[0] in "aeiouAEIOUV{@3" else 0.05 if ph in "pbm" else 0.35
        )
    return np.convolve(ap, [0.25, 0.5, 0.25], mode="same"), wav


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_landmark_sync_on_speech(tmp_path):
    ap, wav = _mbrola(
        "Please set the green box by the window and bring me a glass of water soon.",
        "mb-us2",
        tmp_path,
    )
    r0 = landmark_sync(ap, wav)
    late = landmark_sync(ap, np.concatenate([np.zeros(5 * 640, np.float32), wav]))
    early = landmark_sync(ap, wav[3 * 640 :])
    # measured: offsets 0 / 5 / -3 with confidence 0.57-0.70 (mbrola us1-us3, two sentences)
    assert (r0.offset_frames, late.offset_frames, early.offset_frames) == (0, 5, -3)
    assert min(r0.confidence, late.confidence, early.confidence) > 0.4


def test_landmark_sync_bad_inputs():
    ap = _aperture(150)
    wav = _audio(ap, 0)
    with pytest.raises(InputError, match="clip7: too short"):
        landmark_sync(ap[:20], wav, name="clip7")
    with pytest.raises(InputError, match="1-D"):
        landmark_sync(ap[:, None], wav)
    with pytest.raises(InputError, match="constant"):
        landmark_sync(ap, np.zeros_like(wav))


def test_summarize_sync():
    ap = _aperture(150)
    rs = [landmark_sync(ap, _audio(ap, lag)) for lag in (0, 2, -1)]
    s = summarize_sync(rs)
    assert s.n == 3
    assert s.mean_offset == pytest.approx(1 / 3)
    assert s.mean_abs_offset == pytest.approx(1.0)
    assert s.in_sync == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        summarize_sync([])


# ---------------------------------------------------------------------------------------------
# Phone-boundary error


@dataclass(frozen=True)
class Ph:
    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class Al:
    phones: tuple
    ok: bool = True
    reason: str | None = None


def _seq(bounds, symbols=("HH", "AH0", "<wb>", "L", "OW1")):
    """Contiguous phones; <wb> gets zero length at its position."""
    out, k = [], 0
    for s in symbols:
        if s == "<wb>":
            out.append(Ph(s, bounds[k], bounds[k]))
        else:
            out.append(Ph(s, bounds[k], bounds[k + 1]))
            k += 1
    return out


def test_boundary_error_known_value():
    ref = _seq([0.0, 0.10, 0.20, 0.30, 0.45])
    hyp = _seq([0.02, 0.11, 0.18, 0.30, 0.40])
    # internal boundaries 0.10/0.20/0.30 vs 0.11/0.18/0.30: (10 + 20 + 0) / 3 ms; ends ignored
    assert boundary_error_ms(ref, hyp) == pytest.approx(10.0)
    assert boundary_error_ms(Al(tuple(ref)), Al(tuple(hyp))) == pytest.approx(10.0)
    assert boundary_error_ms(ref, ref) == 0.0


def test_boundary_error_empty_silence_skipped_and_errors():
    syms = ("HH", "<sil>", "AH0")
    ref = [Ph("HH", 0, 0.1), Ph("<sil>", 0.1, 0.1), Ph("AH0", 0.1, 0.2)]
    hyp = [Ph("HH", 0, 0.12), Ph("<sil>", 0.12, 0.12), Ph("AH0", 0.12, 0.2)]
    assert boundary_error_ms(ref, hyp) == pytest.approx(20.0)  # one boundary, not two
    with pytest.raises(ValueError, match="3 reference phones vs 2"):
        boundary_error_ms(ref, hyp[:2])
    with pytest.raises(ValueError, match="differs"):
        boundary_error_ms(ref, [Ph("HH", 0, 0.1), Ph("<sil>", 0.1, 0.1), Ph("OW1", 0.1, 0.2)])
    with pytest.raises(ValueError, match="failed: no path"):
        boundary_error_ms(Al(tuple(ref)), Al((), ok=False, reason="no path"))
    assert syms  # symbols used above


# ---------------------------------------------------------------------------------------------
# SyncNet port

# python_speech_features 0.6 mfcc(int16 chirp, 16000), frames 5, 30, 48 (computed once offline)
PSF_GOLDEN = np.array([
    [19.2223, 26.7957, 11.9806, -3.3940, -17.7209, -27.5785, -29.3652, -24.8281, -14.9211,
     -4.0534, 5.7747, 10.5840, 10.7812],
    [21.3370, 9.4325, -27.4480, -31.1126, 1.3180, 28.5442, 17.1531, -17.5142, -30.1726, -8.1894,
     17.6222, 14.8978, -7.3464],
    [21.8581, -5.2003, -36.3939, -5.4927, 30.6800, 6.6510, -28.7098, -9.5956, 23.8968, 8.2225,
     -21.1192, -10.2916, 14.0179],
])  # fmt: skip


def test_mfcc_matches_python_speech_features():
    t = np.arange(8000) / 16000
    x = np.round(0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) * 32767) / 32768
    m = sn.mfcc(x)
    assert m.shape == (49, 13)  # 1 + ceil((8000 - 400) / 160)
    np.testing.assert_allclose(m[[5, 30, 48]], PSF_GOLDEN, atol=2e-4)


def test_syncnet_shapes_random_weights():
    torch.manual_seed(0)
    model = sn.SyncNet().eval()
    with torch.no_grad():
        assert model.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
        assert model.forward_lip(torch.randn(2, 3, 5, 224, 224)).shape == (2, 1024)
    frames = RNG.integers(0, 255, (8, 224, 224, 3), dtype=np.uint8)
    wav = (0.1 * RNG.standard_normal(8 * 640)).astype(np.float32)
    s = sn.syncnet_scores(model, frames, wav)
    assert s.n_frames == 3 and s.mean_dists.shape == (31,)
    assert s.lse_c >= 0 and s.lse_d == pytest.approx(float(s.mean_dists.min()))


class _EventNet(torch.nn.Module):
    """Stand-in with SyncNet's interface whose embeddings can be matched exactly: the lip stream
    reports each of the 5 frames' brightness, the audio stream whether each of the 5 frames' first
    MFCC frame (4 v + 1: inside the frame, clear of the
    pre-emphasis click where the loudness steps at 640 v) is loud. Any mistake in windowing, stride or offset sign breaks it."""

    def forward_lip(self, x):
        return (x.mean(dim=(1, 3, 4)) > 127).float()  # (b, 5)

    def forward_aud(self, x):
        return (x[:, 0, 0, 1::4] > 14.0).float()  # c0 = log energy, (b, 5)


@pytest.mark.parametrize("lag", [3, -2])
def test_syncnet_scores_offset_sign_and_windowing(lag):
    rng = np.random.default_rng(1)
    nv = 80
    s = (rng.random(nv + 20) < 0.5).astype(np.float32)
    frames = np.repeat(255 * s[10 : 10 + nv, None, None, None], 224, 1).repeat(224, 2).repeat(3, 3)
    # audio frame t carries event s(t - lag): the sound comes `lag` frames after the picture
    loud = s[10 - lag : 10 - lag + nv]
    t = np.arange(nv * 640) / 16000
    wav = (np.repeat(0.5 * loud + 1e-3, 640) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    scores = sn.syncnet_scores(_EventNet(), frames.astype(np.uint8), wav)
    assert scores.offset == -lag  # syncnet_python's sign: positive = audio leads
    assert scores.lse_d < 0.5 and scores.lse_c > 1.0
    assert int(np.argmin(scores.mean_dists)) == sn.VSHIFT + lag


def test_scores_from_distances_known_curve():
    curve = np.abs(np.arange(31) - 20.0)  # minimum at index 20 -> offset 15 - 20 = -5
    s = sn.scores_from_distances(np.tile(curve, (4, 1)))
    assert (s.offset, s.lse_d, s.lse_c) == (-5, 0.0, float(np.median(curve)))


def test_offset_distances_match_reference_loop():
    v, a = torch.randn(6, 8), torch.randn(6, 8)
    d = sn.offset_distances(v, a, vshift=2)
    ap = torch.nn.functional.pad(a, (0, 0, 2, 2))
    ref = torch.stack(
        [
            torch.nn.functional.pairwise_distance(v[[i]].repeat(5, 1), ap[i : i + 5])
            for i in range(6)
        ]
    )  # syncnet_python's calc_pdist
    torch.testing.assert_close(d, ref)


def test_weights_roundtrip_and_conversion(tmp_path):
    torch.manual_seed(0)
    model = sn.SyncNet().eval()
    state = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    legacy = tmp_path / "syncnet_v2.model"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)  # an old-style pickle
    out = sn.convert_syncnet_weights(legacy, tmp_path / "syncnet.safetensors")
    loaded = sn.load_syncnet(str(out))
    x = torch.randn(2, 1, 13, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_aud(x), model.forward_aud(x))

    # a plain safetensors state dict with syncnet_python's key names also loads
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({f"__S__.{k}": v.contiguous() for k, v in state.items()}, str(plain))
    with torch.no_grad():
        torch.testing.assert_close(sn.load_syncnet(str(plain)).forward_aud(x), model.forward_aud(x))

    bad = tmp_path / "bad.safetensors"
    save_file({"netcnnaud.0.weight": torch.zeros(3)}, str(bad))
    with pytest.raises(CheckpointError, match="bad.safetensors: not a SyncNet"):
        sn.load_syncnet(str(bad))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_conversion_refuses_code_in_pickle(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.model"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="evil.model: cannot read"):
        sn.convert_syncnet_weights(path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(CheckpointError, match="not a .safetensors file"):
        sn.load_syncnet(str(path))  # the pickle itself is never loaded as weights
    with pytest.raises(CheckpointError, match="pickle-based"):
        sn.load_syncnet(str(tmp_path / "syncnet.pt"))


def test_syncnet_input_errors():
    model = _EventNet()
    with pytest.raises(InputError, match="clip3: too short"):
        sn.syncnet_scores(model, np.zeros((5, 224, 224, 3), np.uint8), np.zeros(6400), name="clip3")
    with pytest.raises(InputError, match="224x224"):
        sn.syncnet_scores(model, np.zeros((20, 96, 96, 3), np.uint8), np.zeros(20 * 640))


def test_face_crops_follow_box():
    frames = np.zeros((20, 360, 480, 3), np.uint8)
    frames[:, 100:200, 200:300] = 255  # a white "face" box
    boxes = np.tile([200.0, 100.0, 300.0, 200.0], (20, 1))
    crops = sn.syncnet_face_crops(frames, boxes)
    assert crops.shape == (20, 224, 224, 3)
    # crop spans x in [250 - 70, 250 + 70] and y from 150 - 50 to 150 + 90: face is upper middle
    c = crops[10, :, :, 0].astype(float)
    assert c[:150, 50:170].mean() > 200 and c[200:, :].mean() < 50
