"""SynthDub speech generation: phone maps, speakers/splits, specs, and real renders (a few).

Renders use the real espeak-ng/mbrola/festival programs (skipped with a reason if a machine lacks
them; .ci/system-deps.sh installs them).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import warnings

import numpy as np
import pytest

from dubcli.errors import DependencyError, InputError
from dubcli.synth import festival as festival_mod
from dubcli.synth import mbrola as mbrola_mod
from dubcli.synth import speech as synth_mod
from dubcli.synth.engines import REFERENCE_RMS_DB, normalize_loudness
from dubcli.synth.mbrola import FALLBACK
from dubcli.synth.perturb import measure_f0, warp_envelope, world_perturb
from dubcli.synth.phonesets import FLAP, PHONE_SETS, label_word
from dubcli.synth.prosody import STYLES, ProsodyStyle
from dubcli.synth.sentences import GRID_GRAMMAR, engine_words, text_split, words_of
from dubcli.synth.speech import (
    UtteranceSpec,
    check_synth_dependencies,
    make_specs,
    synthesize,
)
from dubcli.synth.timeline import Segment
from dubcli.synth.voices import VOICES, Speaker, speakers
from dubcli.synth.wordlist import load_wordlist
from dubcli.text.phonemes import CONSONANTS, SILENCE, SYMBOL_TO_ID, VOWELS

HAVE_MBROLA = shutil.which("espeak-ng") is not None and shutil.which("mbrola") is not None
HAVE_FESTIVAL = shutil.which("festival") is not None
needs_mbrola = pytest.mark.skipif(not HAVE_MBROLA, reason="espeak-ng/mbrola not installed")
needs_festival = pytest.mark.skipif(not HAVE_FESTIVAL, reason="festival not installed")


def _spec(text="place red at a one soon", voice="us2", speaker=None, style="neutral", seed=7):
    return UtteranceSpec(
        id=f"t-{voice}-{style}",
        text=text,
        voice=voice,
        speaker=speaker or voice,
        style=STYLES[style] if isinstance(style, str) else style,
        seed=seed,
        kind="grid",
    )


def _check_timeline(utt):
    n = len(utt.wav)
    assert utt.wav.dtype == np.float32 and utt.wav.ndim == 1 and utt.sample_rate == 16000
    assert utt.phones[0].start == 0.0
    for a, b in zip(utt.phones, utt.phones[1:], strict=False):
        assert a.end == b.start and a.end > a.start
    # the last phone ends on the last sample (within one sample), every boundary on a sample
    assert abs(utt.phones[-1].end * 16000 - n) < 1.0
    assert all(abs(p.end * 16000 - round(p.end * 16000)) < 1e-6 for p in utt.phones)
    assert utt.phones[0].symbol == SILENCE and utt.phones[-1].symbol == SILENCE
    assert all(p.symbol in SYMBOL_TO_ID for p in utt.phones)
    assert [w.text for w in utt.words] == [w.lower() for w in words_of(utt.spec.text)]
    for a, b in zip(utt.words, utt.words[1:], strict=False):
        assert a.end <= b.start
    bounds = {round(p.start * 16000) for p in utt.phones} | {n}
    assert all(
        round(w.start * 16000) in bounds and round(w.end * 16000) in bounds for w in utt.words
    )
    assert np.max(np.abs(utt.wav)) <= 1.0


# --- phone sets ------------------------------------------------------------------------------


def test_every_phone_set_maps_into_the_vocabulary():
    for name, table in PHONE_SETS.items():
        for phone, base in table.items():
            assert base in (SILENCE, FLAP) or base in VOWELS or base in CONSONANTS, (name, phone)
        assert any(b == SILENCE for b in table.values()), name
    for name, fallback in FALLBACK.items():  # a fallback phone is a phone of the same set
        assert set(fallback) | set(fallback.values()) <= set(PHONE_SETS[name]), name


def test_a_diphthong_spelt_as_vowel_and_glide_takes_the_diphthong_stress():
    # French voices say EY as "E j": the EH aligns with CMUdict's EY1 (not AH0 of "a")
    assert label_word("a", ["EH", "Y"]) == ["EH1", "Y"]
    assert label_word("like", ["L", "AE", "Y", "K"]) == ["L", "AE1", "Y", "K"]
    assert label_word("house", ["HH", "AE", "UW", "S"]) == ["HH", "AE1", "UW0", "S"]


def test_label_word_takes_stress_and_flaps_from_cmudict():
    assert label_word("water", ["W", "AO", FLAP, "ER"]) == ["W", "AO1", "T", "ER0"]
    assert label_word("ladder", ["L", "AE", FLAP, "ER"]) == ["L", "AE1", "D", "ER0"]
    # the letter "a" is spoken EY: the alignment picks CMUdict's EY1 pronunciation
    assert label_word("a", ["EY"]) == ["EY1"]
    assert label_word("the", ["DH", "AH"]) == ["DH", "AH0"]
    # festival collapses secondary stress to 1; CMUdict's IH2 wins
    info = ["IH", "N", "F", "ER", "M", "EY", "SH", "AH", "N"]
    assert label_word("information", info, [1, 1, 0, 0, 1, 1, 0, 0, 0]) == [
        "IH2", "N", "F", "ER0", "M", "EY1", "SH", "AH0", "N",
    ]  # fmt: skip
    # unknown word: source stress, else the only vowel is stressed
    assert label_word("zzyzxq", ["Z", "IH", "K"]) == ["Z", "IH1", "K"]
    assert label_word("zzyzxq", ["Z", "IH", "K", "AH"], [None, 1, None, 0]) == [
        "Z", "IH1", "K", "AH0",
    ]  # fmt: skip


# --- voices, speakers, splits ----------------------------------------------------------------


def test_speaker_ids_round_trip_and_reject_garbage():
    s = Speaker("us2", 1.1, 0.9)
    assert s.id == "us2+vtl1.1+f0x0.9"
    assert Speaker.parse(s.id) == s
    assert Speaker.parse("kal") == Speaker("kal")
    for bad in ("xx1", "us2+vtl", "us2+pitch2", "us2+vtl9"):
        with pytest.raises(InputError, match="speaker id"):
            Speaker.parse(bad)


def test_test_speakers_are_unseen_in_training():
    train, valid, test = (set(speakers(s)) for s in ("train", "valid", "test"))
    assert train == valid and train and test and not train & test
    test_only = {v for v, i in VOICES.items() if i.test_only}
    assert test_only == {"us3", "ked", "de5", "fr4", "ro1"}
    assert not {s.voice for s in train} & test_only
    assert test_only <= {s.voice for s in test}
    # every training voice also appears in test, but only with perturbations unseen in train
    assert {s.voice for s in train} < {s.voice for s in test}


def test_voice_roster_is_broad_and_the_test_voices_are_mixed():
    assert len(VOICES) >= 15
    train_voices = {s.voice for s in speakers("train")}
    test_only = [i for i in VOICES.values() if i.test_only]
    assert len(train_voices) + len(test_only) == len(VOICES)
    assert 0.15 <= len(test_only) / len(VOICES) <= 0.3  # about 1 in 5 base voices
    # the test-only voices mix genders, engines and accents, and so do the training voices
    for group in (test_only, [VOICES[v] for v in train_voices]):
        assert {i.gender for i in group} == {"f", "m"}
        assert {i.engine for i in group} == {"mbrola", "festival"}
        assert len({i.accent for i in group}) >= 3
    assert {i.accent for i in test_only} - {VOICES[v].accent for v in train_voices}  # one unseen
    for info in VOICES.values():
        assert info.phone_set in PHONE_SETS and info.gender in ("f", "m"), info
        assert info.engine in ("mbrola", "festival"), info


def test_make_specs_draws_the_base_voice_uniformly():
    from collections import Counter

    specs = make_specs(1500, seed=1, split="train")
    counts = Counter(s.voice for s in specs)
    train_voices = {s.voice for s in speakers("train")}
    assert set(counts) == train_voices
    mean = len(specs) / len(train_voices)
    assert all(0.6 * mean < c < 1.4 * mean for c in counts.values()), counts


# --- texts and specs -------------------------------------------------------------------------


def test_wordlist_is_shipped_and_clean():
    words = load_wordlist()
    assert 2000 <= len(words) <= 5000 and len(set(words)) == len(words)
    assert words[:3] == ("the", "to", "i")
    assert all(w.isalpha() and w.islower() for w in words)
    assert not {"fuck", "kill", "usa"} & set(words)


def test_make_specs_is_deterministic_and_respects_the_split():
    a = make_specs(30, seed=3, split="test")
    assert a == make_specs(30, seed=3, split="test")
    assert a != make_specs(30, seed=4, split="test")
    assert len({s.id for s in a}) == 30
    test_ids = {s.id for s in speakers("test")}
    for s in a:
        assert s.speaker in test_ids and Speaker.parse(s.speaker).voice == s.voice
        assert text_split(s.text) == "test"
        assert s.style.name in STYLES and s.kind in ("grid", "free")
        if s.kind == "grid":
            words = s.text.split()
            assert all(w in opts for w, opts in zip(words, GRID_GRAMMAR.values(), strict=True))
        assert UtteranceSpec.from_dict(s.as_dict()) == s
    assert {s.kind for s in a} == {"grid", "free"}
    assert len({s.style.name for s in a}) == 4
    assert set(make_specs(5, 0, "train", voices=["slt"])[i].voice for i in range(5)) == {"slt"}
    with pytest.raises(InputError):
        make_specs(3, 0, split="dev")


def test_grid_letter_a_is_spoken_as_a_letter():
    assert engine_words("bin blue at a one now", "grid", "mbrola")[3] == "[['eI]]"
    assert engine_words("bin blue at a one now", "grid", "festival")[3] == "A"
    assert engine_words("a cat at a house", "free", "mbrola") == "a cat at a house".split()


# --- WORLD perturbation and loudness (no synthesizer needed) ---------------------------------


def _pulse_train(f0: float, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 30) if f0 * k < sr / 2)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def test_world_perturb_scales_f0_and_keeps_length():
    x = _pulse_train(120.0)
    y = world_perturb(x, 16000, f0_scale=1.5, pitch_level=2.0)
    assert len(y.wav) == len(x)
    expected = 120.0 * 1.5 * 2 ** (2 / 12)
    assert abs(np.median(measure_f0(y.wav, 16000)) / expected - 1) < 0.03


def test_warp_envelope_moves_a_formant_by_the_factor():
    env = np.full((2, 513), 1e-4)
    env[:, 100] = 1.0
    assert np.argmax(warp_envelope(env, 1.2)[0]) == 120
    assert np.argmax(warp_envelope(env, 0.9)[0]) == 90


def test_normalize_loudness_hits_the_style_level():
    rng = np.random.default_rng(0)
    wav = np.concatenate([np.zeros(1600), 0.1 * rng.standard_normal(16000)]).astype(np.float32)
    segs = [Segment(SILENCE, 1600, -1), Segment("AA1", 16000, 0)]
    out = normalize_loudness(wav, segs, -6.0)
    rms_db = 20 * math.log10(float(np.sqrt(np.mean(out[1600:] ** 2))))
    assert abs(rms_db - (REFERENCE_RMS_DB - 6.0)) < 0.01
    assert np.all(out[:1600] == 0)


# --- dependencies and bad specs ----------------------------------------------------------------


def test_missing_program_raises_dependency_error(monkeypatch, tmp_path):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda p, *a, **k: None if p == "mbrola" else real_which(p)
    )
    with pytest.raises(DependencyError, match=r"mbrola.*system-deps\.sh"):
        check_synth_dependencies(["us1"])
    # programs vanish after the check: running them is still a DependencyError
    monkeypatch.setattr(shutil, "which", real_which)
    monkeypatch.setattr(synth_mod, "_verified", {"us1", "kal"})
    monkeypatch.setattr(festival_mod, "_FESTIVAL", festival_mod.FestivalProcess())  # not started
    monkeypatch.setenv("PATH", str(tmp_path))
    for voice in ("us1", "kal"):
        with pytest.raises(DependencyError, match=r"system-deps\.sh"):
            synthesize(_spec(voice=voice))
    with pytest.raises(DependencyError, match="festival"):
        check_synth_dependencies(["kal"])


def test_bad_specs_raise_input_error_naming_the_utterance():
    with pytest.raises(InputError, match="t-us2-neutral"):
        synthesize(_spec(speaker="us1+vtl1.1"))
    with pytest.raises(InputError, match="t-us2-neutral.*text"):
        synthesize(_spec(text='say "[[h@]]"'))
    with pytest.raises(InputError, match="unknown SynthDub voice"):
        check_synth_dependencies(["nope"])


# --- real renders ------------------------------------------------------------------------------


@needs_mbrola
def test_mbrola_render_has_an_exact_timeline_and_is_deterministic():
    spec = _spec(speaker="us2+vtl1.1+f0x0.9", seed=11)
    a, b = synthesize(spec), synthesize(spec)
    _check_timeline(a)
    assert np.array_equal(a.wav, b.wav) and a.phones == b.phones and a.words == b.words
    # GRID letter "a" is the letter name
    letter = a.words[3]
    assert [p.symbol for p in a.phones if letter.start <= p.start < letter.end] == ["EY1"]
    # the .pho pitch targets lie inside the audio and carry the speaker's F0 scale
    assert a.f0_targets is not None and a.f0_targets.shape[1] == 2
    assert 0 < a.f0_targets[0, 0] and a.f0_targets[-1, 0] < a.duration
    assert a.spec.seed == 11 and not np.array_equal(a.wav, synthesize(_spec(seed=12)).wav)


def _envelope_centroids(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 5 ms frame: centroid (Hz) of the WORLD envelope in 250-3000 Hz (formant region), F0."""
    with warnings.catch_warnings():  # pyworld imports pkg_resources
        warnings.simplefilter("ignore")
        import pyworld as pw

    x = wav.astype(np.float64)
    f0, t = pw.dio(x, 16000, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, 16000)
    env = pw.cheaptrick(x, f0, t, 16000)
    freqs = np.linspace(0, 8000, env.shape[1])
    band = (freqs > 250) & (freqs < 3000)
    return (env[:, band] * freqs[band]).sum(1) / env[:, band].sum(1), f0


@needs_mbrola
def test_vtl_warp_keeps_the_timeline_and_moves_formants():
    plain = synthesize(_spec(seed=5))
    c0, f0 = _envelope_centroids(plain.wav)
    for vtl, lo, hi in ((1.15, 1.06, 1.2), (0.9, 0.9, 0.98)):
        warped = synthesize(_spec(speaker=f"us2+vtl{vtl}", seed=5))
        assert plain.phones == warped.phones and len(plain.wav) == len(warped.wav)
        c1, f1 = _envelope_centroids(warped.wav)
        voiced = (f0 > 0) & (f1 > 0)
        assert lo < float(np.median(c1[voiced] / c0[voiced])) < hi, vtl


@needs_mbrola
def test_a_diphone_the_voice_lacks_still_renders_on_time():
    # us3 has no h-j diphone ("human"): mbrola -e fills that one transition, timing kept
    spec = dataclasses.replace(_spec(text="human nature", voice="us3"), kind="free")
    utt = synthesize(spec)
    _check_timeline(utt)
    assert [p.symbol for p in utt.phones][1:4] == ["HH", "Y", "UW1"]


def _raw_vs_timeline(monkeypatch) -> list[int]:
    """Record, per render, (engine audio samples) - (samples the phone timeline covers), taken
    before fit_edges pads or trims the final pause to make them equal."""
    out = []
    for mod in (mbrola_mod, festival_mod):
        real = mod.fit_edges

        def fit(wav, segs, lead, trail, real=real):
            out.append(len(wav) - sum(s.n for s in segs))
            return real(wav, segs, lead, trail)

        monkeypatch.setattr(mod, "fit_edges", fit)
    return out


@pytest.mark.parametrize("voice", list(VOICES))
def test_every_voice_renders_with_phone_timings_that_match_the_audio(voice, monkeypatch):
    info = VOICES[voice]
    if not (HAVE_MBROLA if info.engine == "mbrola" else HAVE_FESTIVAL):
        pytest.skip(f"{info.engine} not installed")
    raw = _raw_vs_timeline(monkeypatch)
    utt = synthesize(_spec(text="lay green by a zero please", voice=voice, seed=4))
    _check_timeline(utt)
    assert [w.text for w in utt.words] == "lay green by a zero please".split()
    assert [p.symbol for p in utt.phones if p.symbol != SILENCE][0] == "L"
    # The engine's own audio ends where the phones say, before any padding: mbrola realizes the
    # .pho boundaries pitch-synchronously (it stops within one pitch period of the last one),
    # festival's diphone voices leave 20-30 ms of the final diphone after the last segment end.
    (diff,) = raw
    lo, hi = (-0.02, 0.0) if info.engine == "mbrola" else (0.0, 0.04)
    assert lo * 16000 - 1 <= diff <= hi * 16000 + 1, (voice, diff / 16)
    # speech, at about the pitch it was given
    speech = np.concatenate(
        [utt.wav[round(p.start * 16000) : round(p.end * 16000)] for p in utt.phones[1:-1]]
    )
    assert np.sqrt(np.mean(speech**2)) > 0.02
    track = measure_f0(utt.wav, 16000)
    f0 = float(np.median(track[track > 0]))
    if utt.f0_targets is not None:  # mbrola's .pho targets (festival unperturbed: none)
        assert abs(math.log(f0 / np.median(utt.f0_targets[:, 1]))) < math.log(1.3), voice
    assert 70 < f0 < 300, voice


@needs_mbrola
def test_german_v_before_a_consonant_falls_back_to_f_there_only():
    # the German databases have no v-k diphone (German devoices a final v): "of course" says
    # [f k] and is labelled F, while the v of "very" keeps V
    spec = dataclasses.replace(_spec(text="of course it is very good", voice="de1"), kind="free")
    syms = [p.symbol for p in synthesize(spec).phones]
    assert syms[1:4] == ["AO1", "F", "K"] and "V" in syms
    _check_timeline(synthesize(spec))


def _style_measures(voice: str) -> dict[str, tuple[float, float]]:
    """style -> (duration of the speech, median F0) for the same text, voice and seed."""
    out = {}
    for name in ("sad", "neutral", "excited"):
        utt = synthesize(_spec(voice=voice, style=name, seed=3))
        _check_timeline(utt)
        speech = utt.phones[-1].start - utt.phones[0].end
        out[name] = (speech, float(np.median(measure_f0(utt.wav, 16000))))
    return out


@needs_mbrola
def test_styles_move_duration_and_pitch_the_expected_way_mbrola():
    m = _style_measures("us2")
    assert m["excited"][0] < m["neutral"][0] < m["sad"][0]
    assert m["excited"][1] > m["neutral"][1] > m["sad"][1]
    # +3 semitones centre vs neutral: the measured median moves by about that much
    assert 1.5 < 12 * math.log2(m["excited"][1] / m["neutral"][1]) < 5


@needs_festival
def test_festival_render_timeline_and_styles():
    m = _style_measures("kal")
    assert m["excited"][0] < m["neutral"][0] < m["sad"][0]
    assert m["excited"][1] > m["neutral"][1] > m["sad"][1]


@needs_festival
def test_festival_hts_voice_renders_with_words():
    style = dataclasses.replace(STYLES["calm"], rate=0.9)
    spec = _spec(text="lay green by a zero please", voice="slt", style=style)
    utt = synthesize(spec)
    _check_timeline(utt)
    assert np.array_equal(utt.wav, synthesize(spec).wav)  # the reused festival process
    assert isinstance(utt.spec.style, ProsodyStyle) and utt.f0_targets is not None
    letter = utt.words[3]
    assert [p.symbol for p in utt.phones if letter.start <= p.start < letter.end] == ["EY1"]


def test_eval_splits_repeat_speakers_for_setting2_references():
    from collections import Counter

    from dubcli.synth.speech import UTTS_PER_EVAL_SPEAKER, make_specs

    for split in ("valid", "test"):
        specs = make_specs(4 * UTTS_PER_EVAL_SPEAKER, seed=3, split=split)
        counts = Counter(s.speaker for s in specs)
        assert min(counts.values()) >= 2, counts  # every speaker has a reference utterance
