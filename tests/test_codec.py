"""The `world` codec: token layout and rates, determinism, round-trip quality, checkpoints."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dubcli.audio.codec import (
    Codec,
    CodecTokens,
    GeneratedDecode,
    WorldCodec,
    WorldCodecConfig,
    load_codec,
)
from dubcli.audio.codec.features import analyze
from dubcli.audio.codec.kmeans import kmeans, nearest, rvq_decode, rvq_encode, train_rvq
from dubcli.audio.codec.metrics import compare
from dubcli.audio.codec.phonetic import BASE_INDEX, UNIT_INDEX, PhoneLabels
from dubcli.audio.codec.train import train_world_codec
from dubcli.audio.codec.world import CODEC_VERSION, f0_to_prosody, prosody_to_f0
from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError, InputError
from dubcli.prepare.layouts import LabelledAudio
from dubcli.text.phonemes import strip_stress
from dubcli.timing import HOP, SAMPLE_RATE, tokens_for_samples

VOCAB = 72  # small codebooks (>= the 70 stressed phones of the content streams): fast tests


def harmonic(f0: np.ndarray, amp: float = 0.3) -> np.ndarray:
    """A vowel-like harmonic signal with a known per-sample F0 (0 = silence)."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = np.zeros(len(f0))
    for k in range(1, 40):
        x += np.where(k * f0 < 7000, np.sin(k * phase) / k, 0.0)
    return amp * x * (f0 > 0)


def synth_speech(n: int, seed: int, split: str, voices: list[str]) -> list[LabelledAudio]:
    """SynthDub utterances with their exact phone labels (mbrola timings)."""
    from dubcli.prepare.layouts import Item
    from dubcli.prepare.layouts.synth import SynthLayout
    from dubcli.synth.speech import make_specs

    lay = SynthLayout(n=1)
    specs = make_specs(n, seed, split, voices=voices)
    return [lay.labelled_audio(Item(s.id, split, s.speaker, {"spec": s.as_dict()}), None)
            for s in specs]  # fmt: skip


def labels_of(utts: list[LabelledAudio]) -> list[PhoneLabels]:
    return [PhoneLabels(u.phonemes, u.durations_tokens) for u in utts]


def fit(utts: list[LabelledAudio], seed: int = 0) -> WorldCodec:
    return train_world_codec([u.wav for u in utts], labels_of(utts), seed=seed, iters=10,
                             config=WorldCodecConfig(vocab=VOCAB), classifier_epochs=6)  # fmt: skip


@pytest.fixture(scope="module")
def speech():
    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
        pytest.skip("espeak-ng + mbrola (system packages) are not installed")
    train = synth_speech(8, 0, "train", ["us1", "us2"])
    held_out = synth_speech(2, 0, "test", ["us3"])  # a voice never trained on
    return train, held_out


@pytest.fixture(scope="module")
def codec(speech) -> WorldCodec:
    return fit(speech[0])


def test_token_layout_and_rates(codec):
    assert isinstance(codec, Codec)
    assert (codec.sample_rate, codec.frame_rate, codec.vocab) == (16000, 80, VOCAB)
    assert codec.streams == {"prosody": 1, "content": 2, "acoustic": 3}
    rng = np.random.default_rng(1)
    wav = harmonic(np.full(SAMPLE_RATE + 150, 140.0)) + 0.01 * rng.standard_normal(16150)
    tok = codec.encode(wav)
    assert tok.prosody.shape == (1, 80) and tok.content.shape == (2, 80)
    assert tok.acoustic.shape == (3, 80) and tok.stacked().shape == (6, 80)
    assert tok.speaker.shape == (codec.speaker_dim,) and tok.speaker.dtype == np.float32
    for arr in (tok.prosody, tok.content, tok.acoustic):
        assert arr.dtype == np.int64 and arr.min() >= 0 and arr.max() < VOCAB
    out = codec.decode(tok)
    assert out.shape == (80 * HOP,) and out.dtype == np.float32
    # Lengths below a hop: zero tokens, zero samples; one hop: one token.
    assert codec.encode(np.zeros(199)).n_tokens == 0
    assert codec.decode(codec.encode(np.zeros(199))).shape == (0,)
    assert codec.decode(codec.encode(wav[:450])).shape == (2 * HOP,)
    silent = codec.encode(np.zeros(1000))  # digital silence: all unvoiced, decodes to ~silence
    assert np.all(silent.prosody == 0) and np.abs(codec.decode(silent)).max() < 1e-3


def test_kmeans_known_answers():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + 0.1 * rng.standard_normal((200, 2)) for c in centres])
    book = kmeans(x, 3, seed=0)
    found = book[np.argsort(book[:, 0] + 2 * book[:, 1])]
    assert np.allclose(found, centres, atol=0.05)
    # Fewer vectors than codes: every vector is a code, so coding them is exact.
    few = rng.standard_normal((10, 4)).astype(np.float32)
    book = kmeans(few, 16, seed=0)
    assert book.shape == (16, 4)
    assert np.array_equal(book[nearest(few, book)[0]], few)
    # Residual VQ: each stage lowers the error; decode(encode) equals input minus residual.
    y = rng.standard_normal((500, 6)).astype(np.float32)
    books, _ = train_rvq(y, 3, 16, seed=0)
    errs = [np.mean(rvq_encode(y, books[:s])[1] ** 2) for s in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    idx, res = rvq_encode(y, books)
    assert np.allclose(rvq_decode(idx, books) + res, y, atol=1e-5)


def test_same_seed_same_codec_and_tokens(speech, codec):
    train, held_out = speech
    again = fit(train)
    for x, y in zip(codec.state()[0].values(), again.state()[0].values(), strict=True):
        assert np.array_equal(x, y)
    wav = held_out[0].wav
    a, b = codec.encode(wav), again.encode(wav)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    other = fit(train[:4], seed=1)
    assert not np.array_equal(other.acoustic_codebooks, codec.acoustic_codebooks)


def test_content_tokens_are_the_phones(speech, codec):
    """With labels, content stage 1 is the phone and stage 2 the stressed phone, frame by
    frame, whoever speaks; the acoustic stream carries the rest."""
    _, held_out = speech
    u = held_out[0]
    tok = codec.encode(u.wav, PhoneLabels(u.phonemes, u.durations_tokens))
    frames = np.repeat(np.array(u.phonemes, dtype=object), u.durations_tokens)
    want1 = [BASE_INDEX.get(strip_stress(p), 0) for p in frames]
    want2 = [UNIT_INDEX.get(p, 0) for p in frames]
    assert tok.content[0].tolist() == want1 and tok.content[1].tolist() == want2
    assert tok.n_tokens == tokens_for_samples(len(u.wav))
    with pytest.raises(InputError, match="durations sum to"):
        codec.encode(u.wav, PhoneLabels(u.phonemes, [*u.durations_tokens[:-1], 0]))


def test_content_from_audio_alone_on_an_unseen_voice(speech, codec):
    """Without labels the phone classifier gives the codes: far better than chance (1/70)
    on a voice the codec never heard, in runs (no one-frame flicker)."""
    _, held_out = speech
    hits = total = 0
    for u in held_out:
        truth = codec.encode(u.wav, PhoneLabels(u.phonemes, u.durations_tokens))
        guess = codec.encode(u.wav)
        hits += int((truth.content[0] == guess.content[0]).sum())
        total += truth.n_tokens
        assert np.array_equal(truth.prosody, guess.prosody)
        runs = np.diff(np.flatnonzero(np.diff(guess.content[1])))
        assert runs.size == 0 or runs.min() >= 1
    assert hits / total > 0.25, hits / total


@pytest.mark.parametrize("with_labels", [True, False])
def test_round_trip_quality_on_held_out_voice(speech, codec, with_labels):
    _, held_out = speech
    u = held_out[0]
    wav = u.wav.astype(np.float64)
    tok = codec.encode(wav, PhoneLabels(u.phonemes, u.durations_tokens) if with_labels else None)
    out = codec.decode(tok)
    good = compare(wav, out)
    # Even 72-code books keep the envelope far closer than random tokens of the same stream
    # layout do, and keep voicing.
    rng = np.random.default_rng(0)
    rand = tok._replace(
        content=rng.integers(0, VOCAB, tok.content.shape),
        acoustic=rng.integers(0, VOCAB, tok.acoustic.shape),
    )
    bad = compare(wav, codec.decode(rand))
    assert good.mcd_db < 6.0 and bad.mcd_db > good.mcd_db + 2.0, (good, bad)
    assert good.vuv_error < 0.2 and good.gross_pitch_error < 0.1, good
    # Timing is kept: the level contours line up at lag 0 (token t <-> samples 200t..200t+199).
    lev = [analyze(x, method="dio").level_db for x in (wav, out.astype(np.float64))]
    lags = range(-3, 4)
    corr = [np.corrcoef(np.roll(lev[1], lag), lev[0])[0, 1] for lag in lags]
    assert list(lags)[int(np.argmax(corr))] == 0, corr


def test_residual_scale_shrinks_the_envelope_detail_only(speech, codec):
    u = speech[1][0]
    tok = codec.encode(u.wav, PhoneLabels(u.phonemes, u.durations_tokens))
    full, none, half = (codec.decode(tok, generated=GeneratedDecode(residual_scale=s))
                        for s in (1.0, 0.0, 0.5))  # fmt: skip
    assert np.array_equal(full, codec.decode(tok))  # 1 is the default
    # the same pitch and energy contour; the envelope detail moves toward the table's
    lev = [analyze(x.astype(np.float64), method="dio").level_db for x in (full, none, half)]
    assert np.corrcoef(lev[0], lev[1])[0, 1] > 0.9
    assert compare(full, half).mcd_db < compare(full, none).mcd_db


def test_energy_median_takes_out_sampled_flicker_and_keeps_the_contour(speech, codec):
    # Generated tokens draw each token's energy code on its own: emulate that by re-drawing
    # the acoustic codes of random tokens from their neighbours', then decode with and without
    # the running median of the energy track.
    u = speech[1][0]
    tok = codec.encode(u.wav, PhoneLabels(u.phonemes, u.durations_tokens))
    rng = np.random.default_rng(0)
    aco = tok.acoustic.copy()
    t = aco.shape[1]
    hit = rng.random(t) < 0.3
    aco[:, hit] = aco[:, np.clip(np.flatnonzero(hit) + rng.integers(-12, 13, hit.sum()), 0, t - 1)]
    jittered = tok._replace(acoustic=aco)
    assert np.array_equal(
        codec.decode(jittered), codec.decode(jittered, generated=GeneratedDecode())
    )
    raw, smooth = (
        codec.decode(jittered, generated=GeneratedDecode(energy_median=k)) for k in (1, 9)
    )
    clean = codec.decode(tok)
    lev = [analyze(x.astype(np.float64), method="dio").level_db for x in (clean, raw, smooth)]
    flicker = [np.mean(np.abs(np.diff(x))) for x in lev]
    assert flicker[2] < flicker[1]  # less token-to-token level change
    assert np.corrcoef(lev[0], lev[2])[0, 1] > 0.85  # the utterance's contour is kept


def test_f0_of_a_harmonic_signal(codec):
    # 1.0 s glide 120 -> 180 Hz, 0.3 s of silence, 0.5 s at 220 Hz.
    f0 = np.concatenate([np.linspace(120, 180, SAMPLE_RATE), np.zeros(4800), np.full(8000, 220.0)])
    wav = harmonic(f0)
    tok = codec.encode(wav)
    centres = f0[np.arange(tok.n_tokens) * HOP + HOP // 2]
    interior = np.convolve(centres > 0, np.ones(7), "same") == 7  # away from on/offsets
    silent = np.convolve(centres == 0, np.ones(7), "same") == 7
    assert np.all(tok.prosody[0][silent] == 0)  # the dedicated unvoiced code
    assert np.all(tok.prosody[0][interior] > 0)
    out = analyze(codec.decode(tok).astype(np.float64)).f0
    cents = 1200 * np.log2(out[interior] / centres[interior])
    # Prosody bins are 48 st / 30 = 1.6 st wide at vocab 32: the decoded F0 is within half a
    # bin (80 cents) of the truth, plus analysis error.
    assert np.median(np.abs(cents)) < 60 and np.max(np.abs(cents)) < 120, cents


def test_prosody_quantizer_resolution():
    f0 = np.array([0.0, 100.0, 141.0, 200.0, 400.0, 3000.0])
    mean = float(np.log(200.0))
    codes = f0_to_prosody(f0, mean, 1024, 24.0)
    assert codes[0] == 0 and np.all(codes[1:] > 0) and codes.max() == 1023  # 3 kHz clips
    back = prosody_to_f0(codes, mean, 1024, 24.0)
    cents = 1200 * np.log2(back[1:5] / f0[1:5])
    assert np.all(np.abs(cents) <= 2.4)  # half of a 4.7-cent bin


def test_speaker_swap_moves_the_register(codec):
    low = harmonic(120.0 * (1 + 0.05 * np.sin(np.linspace(0, 6, 24000))))
    high = harmonic(np.full(24000, 240.0))
    tok_low, tok_high = codec.encode(low), codec.encode(high)
    own = analyze(codec.decode(tok_low).astype(np.float64)).f0
    swapped = analyze(codec.decode(tok_low, speaker=tok_high.speaker).astype(np.float64)).f0
    voiced = (own > 0) & (swapped > 0)
    shift = np.median(1200 * np.log2(swapped[voiced] / own[voiced]))
    assert abs(shift - 1200) < 60, shift  # one octave up, the contour kept
    # and the same through with_speaker
    again = codec.decode(tok_low.with_speaker(tok_high.speaker))
    assert np.array_equal(again, codec.decode(tok_low, tok_high.speaker))


def test_save_load_round_trip(codec, speech, tmp_path):
    path = codec.save(tmp_path / "codec.safetensors")
    for loaded in (WorldCodec.load(path), load_codec(path), load_codec(codec.state())):
        assert loaded.config == codec.config and loaded.info == codec.info
        assert np.array_equal(loaded.acoustic_codebooks, codec.acoustic_codebooks)
    wav = speech[1][0].wav
    tok, tok2 = codec.encode(wav), load_codec(path).encode(wav)
    assert all(np.array_equal(x, y) for x, y in zip(tok, tok2, strict=True))
    assert np.array_equal(codec.decode(tok), load_codec(path).decode(tok2))


def test_refuses_other_kinds_and_versions(codec, tmp_path):
    tensors, meta = codec.state()
    other = save_checkpoint(
        tmp_path / "model.safetensors", tensors, {**meta, "kind": "diflowdubber"}
    )
    with pytest.raises(CheckpointError, match="model.safetensors.*expected 'codec/world'"):
        WorldCodec.load(other)
    with pytest.raises(CheckpointError, match="model.safetensors.*not a codec"):
        load_codec(other)
    old = save_checkpoint(
        tmp_path / "old.safetensors", tensors, {**meta, "codec_version": "world-0"}
    )
    with pytest.raises(CheckpointError, match=f"old.safetensors.*'world-0'.*'{CODEC_VERSION}'"):
        load_codec(old)
    cut = {**tensors, "content_context": tensors["content_context"][..., :5]}
    bad = save_checkpoint(tmp_path / "bad.safetensors", cut, meta)
    with pytest.raises(CheckpointError, match="bad.safetensors.*do not match"):
        WorldCodec.load(bad)
    ck = load_checkpoint(bad, framework="numpy")
    assert ck.metadata["kind"] == "codec/world"  # the file itself is readable


def test_bad_inputs(codec):
    with pytest.raises(InputError, match="mono"):
        codec.encode(np.zeros((2, 800)))
    with pytest.raises(InputError, match="float samples"):
        codec.encode(np.zeros(800, dtype=np.int16))
    with pytest.raises(InputError, match="NaN"):
        codec.encode(np.full(800, np.nan))
    tok = codec.encode(harmonic(np.full(2000, 150.0)))
    with pytest.raises(InputError, match=r"content tokens must lie in \[0, 72\)"):
        codec.decode(tok._replace(content=tok.content + VOCAB))
    with pytest.raises(InputError, match="acoustic stream must have shape"):
        codec.decode(tok._replace(acoustic=tok.acoustic[:2]))
    with pytest.raises(InputError, match="speaker embedding"):
        codec.decode(tok, speaker=np.zeros(3))
    with pytest.raises(InputError, match="CodecTokens"):
        codec.decode(tuple(tok)[:3])
    with pytest.raises(InputError, match="no training waveforms"):
        train_world_codec([], [])
    lab = PhoneLabels(["<sil>"], [4])
    with pytest.raises(InputError, match="2 waveforms but 1 phone labels"):
        train_world_codec([np.zeros(800), np.zeros(800)], [lab])
    with pytest.raises(InputError, match="training waveform 1"):
        train_world_codec([np.zeros(800), np.zeros((800, 2))], [lab, lab])


def test_tokens_helpers():
    tok = CodecTokens(
        np.zeros((1, 5), np.int64), np.ones((2, 5), np.int64), np.full((3, 5), 2), np.zeros(4)
    )
    part = tok.slice(1, 3)
    assert part.n_tokens == 2 and part.content.shape == (2, 2)
    assert list(tok.stacked()[:, 0]) == [0, 1, 1, 2, 2, 2]
