"""Inference (dubcli.inference) and the `diflow` engine on a real inference checkpoint made here:
a tiny world codec fitted on a few seconds of espeak-ng speech and a tiny random-weight
DiFlowDubber (and DiFlowTTS), exported with the trainer's export_model. Random weights say
nothing about quality; these tests pin the contracts: exact lengths, determinism, the prompt
window, text-only timing, device and input errors, and a clip dubbed end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
import torch

from dubcli import media
from dubcli.config import model_preset
from dubcli.errors import CheckpointError, DependencyError, InputError
from dubcli.inference import PROMPT_S, Dubber, cleanest_window, phoneme_symbols
from dubcli.text.phonemes import SILENCE, encode, is_vowel
from dubcli.timing import tokens_for_frames
from dubcli.vision.features import FACE_DIM, FEATURES_VERSION, LIP_DIM

torch.set_num_threads(1)
SR = 16_000
PHONES = ("HH", "AH0", "L", "OW1", "<wb>", "W", "ER1", "L", "D")  # "hello world", no <sil> edges


def _tone_speech(seconds: float, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like buzz with syllable-rate amplitude modulation (cheap stand-in for speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    src = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t) ** 2
    return (0.2 * src * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def export_tiny(root, codec_path, stage: str = "dub", **overrides):
    """A tiny random-weight model of `stage` exported with the trainer's export function."""
    from dubcli.audio.codec import load_codec
    from dubcli.model.dubber import DiFlowDubber, DiFlowTTS
    from dubcli.train.export import export_model

    codec = load_codec(codec_path)
    cfg = dataclasses.replace(model_preset("tiny"), vocab=codec.vocab,
                              speaker_dim=codec.speaker_dim, **overrides)  # fmt: skip
    torch.manual_seed(0)
    tts = DiFlowTTS(cfg)
    model = DiFlowDubber.from_tts(tts) if stage == "dub" else tts
    feats = {"version": FEATURES_VERSION, "lip_dim": LIP_DIM, "face_dim": FACE_DIM}
    name = "-".join([f"tiny-{stage}", *map(str, overrides.values())])
    return export_model(model, root / f"{name}.safetensors", stage=stage,
                        model_config=cfg.to_dict(), codec_file=codec_path, features=feats,
                        step=0)  # fmt: skip


def tiny_codec(root):
    from dubcli.audio.codec import WorldCodecConfig, train_world_codec
    from dubcli.audio.codec.phonetic import PhoneLabels

    wavs = [_tone_speech(1.5, f0, seed=i) for i, f0 in enumerate((120.0, 180.0))]
    # made-up phone labels: tones have no phones, the tests only need a working codec
    labels = []
    for w in wavs:
        t = len(w) // 200
        labels.append(PhoneLabels(["<sil>", "AA1", "S", "IY1", "<sil>"], [t - 4 * (t // 5)] +
                                  [t // 5] * 4))  # fmt: skip
    codec = train_world_codec(wavs, labels, config=WorldCodecConfig(vocab=72, f0_method="dio"),
                              iters=4, classifier_epochs=1)  # fmt: skip
    return codec.save(root / "codec.safetensors")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    codec = tiny_codec(root)
    return {"dub": export_tiny(root, codec, "dub"), "tts": export_tiny(root, codec, "tts")}


@pytest.fixture(scope="module")
def dubber(ckpts):
    return Dubber.load(str(ckpts["dub"]), device="cpu")


@pytest.fixture(scope="module")
def prompt(dubber):
    return dubber.reference(_tone_speech(3.0, seed=5))


def _video(nv, seed=0):
    rng = np.random.default_rng(seed)
    lip, face = rng.normal(size=(nv, LIP_DIM)), rng.normal(size=(nv, FACE_DIM))
    return lip.astype(np.float32), face.astype(np.float32)


@pytest.mark.parametrize("nv", [10, 12, 23])
def test_dub_lasts_exactly_the_video(dubber, prompt, nv):
    lip, face = _video(nv)
    out = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=3)
    n = tokens_for_frames(nv)
    assert len(out.wav) == nv * 640 and out.wav.dtype == np.float32  # nv / 25 s at 16 kHz
    assert out.n_tokens == n and out.tokens.stacked().shape == (6, n)
    assert out.phonemes == (SILENCE, *PHONES, SILENCE)  # <sil> edges as in prepared data
    assert out.durations.sum() == n and out.durations_frames.sum() == nv
    assert out.attn_video.shape == (nv, len(out.phonemes))
    assert out.attn_speech.shape == (n, len(out.phonemes))
    assert not out.text_only and np.isfinite(out.wav).all()
    assert np.array_equal(out.tokens.speaker, prompt.speaker)  # decoded in the prompt's voice
    # phonetic content: the phonemes laid out on the model's own (MAS) timing
    want = dubber.codec.phonetic_content(out.phonemes, out.durations)
    assert np.array_equal(out.tokens.content, want)


def test_same_seed_same_speech(dubber, prompt):
    lip, face = _video(15, seed=1)
    a = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=7)
    b = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=7)
    c = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=8)
    assert np.array_equal(a.wav, b.wav)
    assert not np.array_equal(a.tokens.acoustic, c.tokens.acoustic)


def test_oracle_durations_and_content_replace_the_models(dubber, prompt):
    from dubcli.inference import Oracle

    nv = 20
    lip, face = _video(nv, seed=2)
    nt = len(PHONES) + 2  # <sil> edges
    dur = np.array([2] + [16 // (nt - 2)] * (nt - 2) + [0])
    dur[-1] = nv - dur.sum()
    out = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=3, oracle=Oracle(tuple(dur)))
    assert out.durations_frames.tolist() == dur.tolist()  # MAS skipped for the given spans
    n = tokens_for_frames(nv)
    content = np.random.default_rng(0).integers(0, dubber.cfg.vocab, (2, n))
    both = dubber.dub(PHONES, lip, face, prompt, nfe=2, seed=3,
                      oracle=Oracle(tuple(dur), content))  # fmt: skip
    assert np.array_equal(both.tokens.content, content)
    assert np.array_equal(both.tokens.acoustic, out.tokens.acoustic)  # only content swapped
    with pytest.raises(InputError, match="oracle durations"):
        dubber.dub(PHONES, lip, face, prompt, nfe=2, oracle=Oracle(tuple(dur[:-1])))


def test_prompt_is_the_cleanest_window(dubber):
    wav = np.concatenate([np.zeros(3 * SR, np.float32), _tone_speech(5.0)])  # 3 s silence first
    p = dubber.reference(wav)
    n = round(PROMPT_S * 80)  # the window (2 s: 160 tokens)
    assert p.seconds == PROMPT_S and p.prosody.shape == (1, n) and p.acoustic.shape == (3, n)
    assert 3.0 - 0.02 <= p.start_s <= 4.0  # inside the speech, not the silence
    assert p.speaker.shape == (dubber.cfg.speaker_dim,) and p.reference_s == 8.0
    short = dubber.reference(_tone_speech(1.0))  # shorter than the window: all of it
    assert short.seconds == 1.0 and short.start_s == 0.0
    levels = np.full(400 * 200, 1e-4, np.float32)
    levels[100 * 200 : 200 * 200] = 0.3
    levels[150 * 200 + 5] = 1.0  # one clipped token: windows avoid it when they can
    assert cleanest_window(levels, 40) == 100
    for bad, why in ((np.zeros(SR, np.float32), "silent"), (_tone_speech(0.2), "shorter"),
                     (np.full(SR, np.nan), "finite")):  # fmt: skip
        with pytest.raises(InputError, match=why):
            dubber.reference(bad, name="voice.wav")


def test_text_only_timing_from_a_stage2_model(dubber, prompt, monkeypatch):
    """No face: the frozen stage-1 durations drive a synthetic face; its mouth opens on the
    vowels of that timeline and the speech has exactly the asked length."""
    seen = {}
    real = Dubber._synthetic_face

    def spy(self, *a, **k):
        lip, face, n = real(self, *a, **k)
        seen["lip"] = lip
        return lip, face, n

    monkeypatch.setattr(Dubber, "_synthetic_face", spy)
    # A known duration prediction (random weights predict anything): 10 tokens per phoneme.
    content = dubber.model.ccta.content
    monkeypatch.setattr(content.duration, "forward", lambda h, m: torch.log1p(10.0 * m.float()))
    n = tokens_for_frames(40)
    out = dubber.tts(PHONES, prompt, n, nfe=2, seed=1)
    assert out.text_only and out.n_tokens == n and len(out.wav) == n * 200
    # the durations the synthetic face was made from, recomputed: vowels open the mouth
    from dubcli.eval.groundtruth import aperture_from_lip
    from dubcli.model.content import durations_from_log

    ph = torch.tensor([encode(out.phonemes)])
    mask = torch.ones_like(ph, dtype=torch.bool)
    with torch.no_grad():
        dur = durations_from_log(content.duration(content.encode(ph, mask), mask), mask, n)[0]
    ap = aperture_from_lip(seen["lip"])
    assert len(ap) == 40
    token = np.arange(40) * 16 // 5  # the token under each video frame
    frame_ph = np.searchsorted(np.cumsum(dur.numpy()), token, side="right")
    vowel = np.array([is_vowel(out.phonemes[i]) for i in frame_ph])
    assert vowel.sum() >= 5 and (~vowel).sum() >= 5, vowel
    assert ap[vowel].mean() > ap[~vowel].mean() + 0.15  # cm: the mouth opens on the vowels
    free = dubber.tts(PHONES, prompt, None, nfe=2)
    assert len(free.wav) == free.n_tokens * 200 and free.n_tokens >= 1


def test_stage1_checkpoint(ckpts, prompt):
    tts = Dubber.load(ckpts["tts"], device="cpu")
    assert tts.stage == "tts"
    out = tts.tts(PHONES, prompt, 37, nfe=2)
    assert out.n_tokens == 37 and len(out.wav) == 37 * 200 and out.durations.sum() == 37
    lip, face = _video(12)
    dub = tts.dub(PHONES, lip, face, prompt, nfe=2)  # no visual path: text timing, video length
    assert dub.text_only and len(dub.wav) == 12 * 640


def test_text_latent_checkpoint_keeps_the_stage1_content_model(ckpts, prompt, tmp_path):
    from dubcli.checkpoint import load_checkpoint

    path = export_tiny(tmp_path, ckpts["dub"].parent / "codec.safetensors", dfpa_latent="text")
    names = load_checkpoint(path).tensors.keys()
    assert any(k.startswith("model/teacher.") for k in names)  # the DFPA's condition
    assert not any(k.startswith("model/teacher.") for k in load_checkpoint(ckpts["dub"]).tensors)
    d = Dubber.load(str(path), device="cpu")
    assert d.cfg.dfpa_latent == "text" and d.model.teacher is not None
    lip, face = _video(20)
    out = d.dub(PHONES, lip, face, prompt, nfe=2, seed=0)
    assert len(out.wav) == 20 * 640 and np.isfinite(out.wav).all()


def test_bad_inputs_and_devices(dubber, prompt, ckpts, tmp_path, monkeypatch):
    lip, face = _video(10)
    with pytest.raises(InputError, match="lip features: expected"):
        dubber.dub(PHONES, lip[:, :50], face, prompt)
    with pytest.raises(InputError, match="face features 9"):
        dubber.dub(PHONES, lip, face[:9], prompt)
    bad = lip.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        dubber.dub(PHONES, bad, face, prompt)
    with pytest.raises(InputError, match="nothing to say"):
        phoneme_symbols(["<sil>", "<wb>"])
    with pytest.raises(InputError, match="outside the model's vocabulary"):
        phoneme_symbols(["HH", "XX"])
    assert phoneme_symbols([4, 21, 4]) == ("<sil>", "AW1", "<sil>")  # ids work too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DependencyError, match="no CUDA device"):
        Dubber.load(ckpts["dub"], device="cuda")
    with pytest.raises(CheckpointError, match="missing.safetensors"):
        Dubber.load(tmp_path / "missing.safetensors", device="cpu")
    with pytest.raises(CheckpointError, match="expected 'diflowdubber'"):
        Dubber.load(ckpts["dub"].parent / "codec.safetensors", device="cpu")


# --- the diflow engine end to end -------------------------------------------------------------


def make_talking_clip(root):
    """2.4 s of a synthetic talking face, then 1.2 s with no face; espeak-ng speech under it.
    Returns (root, video, subtitles, reference voice); cues at 0.2-2.2 s and 2.6-3.4 s."""
    from dubcli.audio.io import save_audio
    from dubcli.engines.baseline import espeak_wav
    from dubcli.synth.face_motion import FaceMotion
    from dubcli.synth.render import render_frames

    syll = ["<sil>", "HH", "AH0", "L", "OW1", "DH", "EH1", "R", "M", "AY1", "F", "R", "EH1", "N",
            "D", "<sil>"]  # fmt: skip
    bounds = np.linspace(0.0, 2.4, len(syll) + 1)
    traj = FaceMotion().generate(list(zip(syll, bounds[:-1], bounds[1:], strict=True)), seed=1,
                                 n_frames=60)  # fmt: skip
    frames = list(render_frames(traj.points)) + [np.full((256, 256, 3), 90, np.uint8)] * 30
    speech = espeak_wav("Hello there my friend. Good bye.")
    audio = np.zeros(int(3.6 * SR), np.float32)
    audio[: min(len(speech), len(audio))] = speech[: len(audio)]
    video = media.write_video(frames, root / "talk.mp4", audio=audio, sample_rate=SR)
    subs = root / "talk.srt"
    subs.write_text("1\n00:00:00,200 --> 00:00:02,200\nHello there, my friend.\n\n"
                    "2\n00:00:02,600 --> 00:00:03,400\nGood bye.\n")  # fmt: skip
    ref = save_audio(root / "ref.wav", _tone_speech(2.5, 200.0, seed=9))
    return root, video, subs, ref


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory):
    return make_talking_clip(tmp_path_factory.mktemp("clip"))


def md5_video(path):
    cmd = [media.find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy",
           "-f", "md5", "-"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def test_diflow_engine_dubs_a_clip(talking_clip, ckpts):
    from dubcli.dubbing.pipeline import dub_video
    from dubcli.engines.choose import create_engine
    from dubcli.engines.diflow import TEXT_ONLY_NOTE

    root, video, subs, ref = talking_clip
    res = dub_video(video, subs, refs=[str(ref)], engine="diflow", checkpoint=str(ckpts["dub"]),
                    out_dir=root / "out", nfe=2, device="cpu", background="drop")  # fmt: skip
    report = json.loads(res.outputs.report.read_text())
    assert report["engine"]["name"] == "diflow"
    engine = create_engine("diflow", checkpoint=str(ckpts["dub"]), device="cpu")
    assert report["engine"]["fingerprint"] == engine.fingerprint()
    assert engine.dubber.sha256[:16] in engine.fingerprint()
    first, second = report["cues"]
    assert first["tokens"] == tokens_for_frames(first["video_frames"])
    assert first["audio_samples"] == first["video_frames"] * 640  # the window, no stretching
    assert 0 < first["model_seconds"] < res.seconds  # the generation alone, timed per cue
    assert first["face_frames_rate"] > 0.9 and TEXT_ONLY_NOTE not in first["notes"]
    assert second["face_frames_rate"] == 0.0 and TEXT_ONLY_NOTE in second["notes"]
    assert second["audio_samples"] == second["video_frames"] * 640
    assert md5_video(res.outputs.video) == md5_video(video)  # video stream copied untouched
    info = media.probe(res.outputs.video)
    assert info.has_video and len(info.audio_streams) == 1


def test_dub_many_equals_one_cue_at_a_time(dubber, prompt):
    """Dubber.dub_many (batched) gives each request what dub / tts give it alone."""
    from dubcli.inference import DubRequest

    videos = [_video(nv, seed=nv) for nv in (10, 23, 17)]
    reqs = [DubRequest(PHONES, lip, face, prompt, seed=4 + k)
            for k, (lip, face) in enumerate(videos)]  # fmt: skip
    reqs.append(DubRequest(PHONES, None, None, prompt, seed=9, n_tokens=tokens_for_frames(15)))
    many = dubber.dub_many(reqs, nfe=2)
    for r, got in zip(reqs, many, strict=True):
        if r.lip is None:
            want = dubber.tts(r.phonemes, prompt, r.n_tokens, nfe=2, seed=r.seed)
        else:
            want = dubber.dub(r.phonemes, r.lip, r.face, prompt, nfe=2, seed=r.seed)
        assert got.text_only == want.text_only and len(got.wav) == len(want.wav)
        agree = (got.tokens.stacked() == want.tokens.stacked()).mean()
        assert agree >= 0.99, agree


def test_batch_decode_runs_on_torch_threads_in_order():
    """The batch's codec decodes run side by side on torch's thread count, results in order."""
    import threading

    import torch

    from dubcli.inference import _each

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = _each(lambda i: (i, threading.current_thread().name), 5)
        assert [i for i, _ in got] == [0, 1, 2, 3, 4]
        assert all(name.startswith("dubcli-decode") for _, name in got)
        torch.set_num_threads(1)  # one thread (or a one-item batch): the caller's thread
        assert {name for _, name in _each(lambda i: (i, threading.current_thread().name), 3)} == {
            threading.current_thread().name
        }
    finally:
        torch.set_num_threads(before)


def test_diflow_engine_batches_like_single_cues(ckpts):
    from dubcli.engines.base import CueJob, synthesize_many
    from dubcli.engines.diflow import TEXT_ONLY_NOTE, DiFlowEngine

    eng = DiFlowEngine(str(ckpts["dub"]), device="cpu")
    ref = _tone_speech(3.0, seed=5)
    jobs = []
    for k, nv in enumerate((12, 20, 8)):
        lip, face = _video(nv, seed=k) if k != 2 else (None, None)
        jobs.append(CueJob(k + 1, "x", PHONES, 0.0, nv / 25, nv, lip, face, ref, "voice",
                           seed=k, nfe=2))  # fmt: skip
    batched = synthesize_many(eng, jobs)
    assert len(eng._prompts) == 1  # the reference is encoded once per voice
    for job, got in zip(jobs, batched, strict=True):
        want = eng.synthesize_cue(job)
        assert len(got.wav) == job.nv * 640 and got.tokens == want.tokens
        assert got.notes == want.notes
        assert (TEXT_ONLY_NOTE in got.notes) == (job.lip is None)
        assert np.corrcoef(got.wav, want.wav)[0, 1] > 0.99


def test_engine_caches_the_reference_prompt_across_runs(ckpts, tmp_path, monkeypatch):
    """The prompt is encoded once per voice and content: a second engine (a later run) reads it
    from the cache dir; other audio or a corrupt file is encoded again."""
    from dubcli.engines import diflow

    monkeypatch.setenv("DUBCLI_CACHE_DIR", str(tmp_path))
    calls = []
    real = Dubber.reference

    def counting(self, wav, **k):
        calls.append(len(wav))
        return real(self, wav, **k)

    monkeypatch.setattr(Dubber, "reference", counting)
    ref = _tone_speech(3.0, seed=5)
    a = diflow.DiFlowEngine(str(ckpts["dub"]), device="cpu")
    p1 = a.prompt("v", ref)
    assert a.prompt("v", ref) is p1 and len(calls) == 1  # in-process
    b = diflow.DiFlowEngine(str(ckpts["dub"]), device="cpu")
    p2 = b.prompt("v", ref)  # a new run: from the cache dir
    assert len(calls) == 1
    for f in ("prosody", "acoustic", "speaker"):
        assert np.array_equal(getattr(p1, f), getattr(p2, f))
    assert (p1.start_s, p1.seconds, p1.reference_s) == (p2.start_s, p2.seconds, p2.reference_s)
    c = diflow.DiFlowEngine(str(ckpts["dub"]), device="cpu")
    c.prompt("w", _tone_speech(3.0, seed=6))  # other audio: a miss
    assert len(calls) == 2
    path = diflow.prompt_cache_path(a.dubber.sha256, ref)
    path.write_bytes(b"not an npz")
    d = diflow.DiFlowEngine(str(ckpts["dub"]), device="cpu")
    p3 = d.prompt("v", ref)  # corrupt: encoded again (and rewritten)
    assert len(calls) == 3 and np.array_equal(p3.prosody, p1.prosody)
    assert diflow.load_prompt(path) is not None
