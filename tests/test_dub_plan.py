"""Planning (clip/skip/overlap/fit/widen), the timeline, the VAD and voice matching, the sync
estimate, engine choice and the baseline's WORLD pieces: pure functions with known answers."""

import numpy as np
import pytest

from dubcli.dubbing import plan as P
from dubcli.dubbing import timeline as T
from dubcli.dubbing import voices as V
from dubcli.engines import baseline as B
from dubcli.engines.choose import choose_engine, create_engine
from dubcli.engines.sync import sync_estimate
from dubcli.errors import CheckpointError, DependencyError, InputError
from dubcli.text.phonemes import PhonemeSequence
from dubcli.text.subtitles import Cue


def fake_g2p(text):
    # 3 phones per word, <wb> between words: enough for rate arithmetic
    symbols = []
    for i, _ in enumerate(text.split()):
        symbols += (["<wb>"] if i else []) + ["HH", "AH0", "L"]
    return PhonemeSequence(tuple(symbols))


def plan(cues, duration=10.0):
    return P.plan_cues(cues, duration, phonemize=fake_g2p)


def test_clip_skip_and_sound_only():
    cues = [
        Cue(1, 1.0, 2.0, "hello there"),
        Cue(2, 3.0, 4.0, "[music]"),  # sound only: nothing to speak
        Cue(3, 9.5, 12.0, "past the end a bit"),
        Cue(4, 10.5, 11.0, "after the end"),
        Cue(5, 9.95, 10.4, "tiny"),
    ]
    p = plan(cues)
    assert [w.index for w in p.windows] == [1, 3]
    assert p.windows[1].end == 10.0 and "clipped" in p.windows[1].notes[0]
    assert {s.index for s in p.skipped} == {2, 4, 5}
    text = " ".join(p.warnings)
    assert "cue 2" in text and "cue 4" in text and "clipped" in text


def test_overlaps_resolved_without_overlap():
    cues = [Cue(1, 1.0, 3.0, "one two three"), Cue(2, 2.5, 4.0, "four five"),
            Cue(3, 2.6, 2.7, "six")]  # fmt: skip
    p = plan(cues)
    ws = p.windows
    assert [w.index for w in ws] == [1, 2]
    assert ws[0].end == pytest.approx(2.5) and ws[1].start == pytest.approx(2.5)
    assert all(a.end <= b.start for a, b in zip(ws, ws[1:], strict=False))
    assert any("overlaps" in w for w in p.warnings) and p.skipped[0].index == 3


def test_fit_estimate():
    assert P.estimate_fit(3, 12, 1.0).status == "ok"  # 12 phones/s: typical
    assert P.estimate_fit(10, 30, 1.0).status == "too-long"  # 2.5x typical
    assert P.estimate_fit(1, 3, 2.0).status == "too-short"
    f = P.estimate_fit(6, 0, 1.0)  # no phonemes known: words/s decide
    assert f.status == "too-long" and f.wps == 6.0
    p = plan([Cue(1, 0.0, 0.5, "this has far too many words for half a second")])
    assert p.windows[0].fit.status == "too-long" and "too-long" in p.warnings[-1]


def test_plan_table_renders_text_literally():
    from rich.console import Console

    p = plan([Cue(1, 0.0, 2.0, "say this"), Cue(2, 3, 4, "[music]")])
    console = Console(record=True, width=200)
    console.print(P.plan_table(p))
    out = console.export_text()
    assert "[music]" in out and "skipped" in out and "too-short" in out


def test_widen_to_lip_activity():
    w = plan([Cue(1, 2.0, 3.0, "hello there")]).windows[0]
    active = np.zeros(100, bool)  # frames from t0 = 1.0 s
    active[int(0.8 * 25) : int(2.3 * 25)] = True  # lips move 1.8 .. 2.3+1.0 = 3.3 s
    wide = P.widen_to_activity(w, active, t0=1.0, lo=0.0, hi=10.0)
    assert wide.start == pytest.approx(1.8) and wide.end == pytest.approx(3.32, abs=0.05)
    assert "widened" in wide.notes[-1]
    # limits: neighbours and MAX_WIDEN
    capped = P.widen_to_activity(w, active, t0=1.0, lo=1.9, hi=3.1)
    assert capped.start == pytest.approx(1.9) and capped.end == pytest.approx(3.1)
    active[:] = True
    far = P.widen_to_activity(w, active, t0=1.0, lo=0.0, hi=10.0)
    assert far.start == pytest.approx(2.0 - P.MAX_WIDEN) and far.end == pytest.approx(
        3.0 + P.MAX_WIDEN
    )
    # no activity at the edges: unchanged
    assert P.widen_to_activity(w, np.zeros(100, bool), 1.0, 0.0, 10.0) is w


def test_lip_activity_bridges_short_closures():
    ap = np.zeros(50)
    ap[10:20] = 0.5
    ap[23:30] = 0.5  # a 3-frame closure (a /p/) inside speech
    act = P.lip_activity(ap, np.ones(50, bool))
    assert act[10:30].all() and not act[:9].any() and not act[32:].any()


def test_timeline_places_without_overlap_and_fades():
    rate = 1000
    ps = T.place([(1, 0.0, 1500), (2, 1.0, 500), (3, 3.0, 400)], rate, total=3200)
    assert [(p.start, p.length, p.cut) for p in ps] == [(0, 1000, 500), (1000, 500, 0),
                                                          (3000, 200, 200)]  # fmt: skip
    tl = T.TimelineRenderer(ps, lambda i: np.ones({1: 1500, 2: 500, 3: 400}[i]), rate)
    full = tl.render(0, 3200)
    pieces = np.concatenate([tl.render(a, min(a + 700, 3200)) for a in range(0, 3200, 700)])
    assert np.allclose(full, pieces)
    assert full[0] < 0.1 and full[500] == 1.0 and full[999] < 0.1  # 10 ms fades at both edges
    assert np.all(full[1500:3000] == 0) and full.max() <= 1.0


def test_vad_finds_speechlike_regions_not_tones():
    sr = 16_000
    wav = B.espeak_wav("This is a sentence spoken for the detector to find.", "en-us")
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)
    rng = np.random.default_rng(0)
    noise = 0.003 * rng.normal(size=sr)
    signal = np.concatenate([noise, wav, noise, tone, noise]).astype(np.float32)
    regions = V.speech_regions(V.frame_stats(signal))
    speech_span = (1.0, 1.0 + len(wav) / sr)
    assert regions, "speech not found"
    assert all(speech_span[0] - 0.1 <= r.start and r.end <= speech_span[1] + 0.1 for r in regions)
    covered = sum(r.end - r.start for r in regions)
    assert covered > 0.6 * (speech_span[1] - speech_span[0])
    picked = V.pick_regions(regions, within=[(speech_span[0], speech_span[0] + 1.0)])
    assert sum(r.end - r.start for r in picked) <= 1.0 + 1e-6


def test_voice_bank_matching():
    wav = np.zeros(10, np.float32)
    anna, default = V.Voice("Anna", wav, "a.wav", "a"), V.Voice(None, wav, "d.wav", "d")
    bank = V.VoiceBank([anna, default])
    assert bank.for_speaker("ANNA") is anna and bank.for_speaker("Bob") is default
    assert bank.for_speaker(None) is default
    only_named = V.VoiceBank([anna, V.Voice("Bob", wav, "b.wav", "b")])
    with pytest.raises(InputError, match="Carl"):
        only_named.check(["Anna", "Carl"])
    assert V.VoiceBank([anna]).for_speaker("Zed") is anna  # a single voice serves everyone
    assert V.parse_ref("voice.wav") == (None, V.Path("voice.wav"))
    assert V.parse_ref("Anna=dir/v.wav") == ("Anna", V.Path("dir/v.wav"))


def test_sync_estimate_recovers_a_known_lag():
    rng = np.random.default_rng(1)
    nv, sr, lag = 100, 16_000, 3  # audio 3 frames (120 ms) after the lips
    ap = np.convolve(rng.random(nv + lag), np.ones(3) / 3, mode="same")
    env = np.repeat(ap[:nv], sr // 25)  # amplitude follows the aperture
    wav = np.concatenate([np.zeros(lag * sr // 25), env])[: nv * sr // 25]
    wav = wav * np.sin(2 * np.pi * 200 * np.arange(len(wav)) / sr)
    est = sync_estimate(ap[:nv], np.ones(nv, bool), wav)
    assert est.offset_s == pytest.approx(lag / 25) and est.confidence > 0.3
    assert sync_estimate(np.zeros(nv), np.ones(nv, bool), wav) is None  # a still mouth


def test_engine_choice(monkeypatch):
    name, why = choose_engine(None, None)
    assert name == "baseline" and "no DiFlowDubber checkpoint" in why
    assert choose_engine(None, "model.safetensors")[0] == "diflow"
    assert choose_engine("baseline", None) == ("baseline", None)
    with pytest.raises(CheckpointError, match="no default checkpoint is registered"):
        choose_engine("diflow", None)
    with pytest.raises(InputError):
        choose_engine("magic", None)
    with pytest.raises(InputError, match="unknown engine"):
        create_engine("magic")


def test_missing_espeak_is_a_dependency_error(monkeypatch):
    monkeypatch.setattr(B.shutil, "which", lambda name: None)
    with pytest.raises(DependencyError, match="espeak-ng not found: install it"):
        B.BaselineEngine()
    with pytest.raises(DependencyError, match="system-deps.sh"):
        B.espeak_wav("hello")


def test_world_stretch_and_conversion():
    wav = B.espeak_wav("Good morning to you all.")
    w = B.analyze(wav)
    for speed in (0.7, 1.0, 1.5):
        s = B.stretch(w, speed)
        assert len(s.f0) == pytest.approx(len(w.f0) / speed, abs=1)
        voiced_frac = (s.f0 > 0).mean()
        assert voiced_frac == pytest.approx((w.f0 > 0).mean(), abs=0.05)  # voicing preserved
    src = B.voice_stats(w)
    ref = B.VoiceStats(src.log_f0_mean + np.log(2.0), src.log_f0_std, src.ltas)  # one octave up
    f0 = B.convert_f0(w.f0, src, ref)
    voiced = w.f0 > 0
    assert np.median(f0[voiced] / w.f0[voiced]) == pytest.approx(2.0, rel=1e-6)
    assert np.all(f0[~voiced] == 0)
    # envelope warp: a reference whose LTAS is the source's warped by 1.1 is recovered
    warped = np.log(B.warp_envelope(np.exp(src.ltas), 1.1))
    band = B._band(len(warped), 16_000)
    target = B.VoiceStats(0.0, 1.0, warped - warped[band].mean())
    assert B.estimate_warp(src, target) == pytest.approx(1.1, abs=0.02)
