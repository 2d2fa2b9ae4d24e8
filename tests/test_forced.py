"""Forced alignment: mbrola speech with exact phone timings, and the mapping logic in isolation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubcli.align import forced
from dubcli.align.forced import Alignment, _Phone, _Word, boundary_errors, force_align
from dubcli.errors import InputError
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, PhonemeSequence, WordSpan
from dubcli.timing import tokens_for_samples

VOICE = Path("/usr/share/mbrola/us1/us1")
TEXT = "bin blue, at f two now"
WORDS = [  # ARPAbet per word, and mbrola us1's names for the same phones
    ("bin", ["B", "IH1", "N"], ["b", "I", "n"]),
    ("blue", ["B", "L", "UW1"], ["b", "l", "u"]),
    ("at", ["AE1", "T"], ["{", "4"]),  # "4": flapped t
    ("f", ["EH1", "F"], ["E", "f"]),
    ("two", ["T", "UW1"], ["t_h", "u"]),
    ("now", ["N", "AW1"], ["n", "aU"]),
]
LEAD = 0.2  # seconds of silence added before the speech

needs_mbrola = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("mbrola") is None or not VOICE.exists(),
    reason="espeak-ng and mbrola us1 are needed to render speech with exact timings",
)


def _sequence(sil_edges: bool, sil_comma: bool = True) -> PhonemeSequence:
    symbols, spans = [SILENCE] if sil_edges else [], []
    for k, (text, phones, _) in enumerate(WORDS):
        if k:
            symbols.append(SILENCE if (k == 2 and sil_comma) else WORD_BOUNDARY)
        spans.append(WordSpan(text, len(symbols), len(symbols) + len(phones)))
        symbols += phones
    if sil_edges:
        symbols.append(SILENCE)
    return PhonemeSequence(tuple(symbols), tuple(spans))


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(wav, truth spans of the spoken phones, pause (start, end) at the comma)."""
    tmp = tmp_path_factory.mktemp("mbrola")
    out = subprocess.run(
        ["espeak-ng", "-v", "mb-us1", "-q", "--pho", TEXT], capture_output=True, text=True
    )
    pho = [(ln.split()[0], int(ln.split()[1])) for ln in out.stdout.splitlines() if ln.strip()]
    pho = [("_", int(LEAD * 1000)), *pho]
    expected = [m for _, _, mb in WORDS for m in mb]
    assert [p for p, _ in pho if p != "_"] == expected, "espeak-ng's phones changed"
    (tmp / "x.pho").write_text("".join(f"{p} {d}\n" for p, d in pho))
    subprocess.run(["mbrola", str(VOICE), tmp / "x.pho", tmp / "x.wav"], check=True)
    wav, sr = sf.read(tmp / "x.wav", dtype="float32")
    assert sr == 16000
    arpa = [p for _, phones, _ in WORDS for p in phones]
    truth, t, pauses = [], 0.0, []
    for p, d in pho:
        if p == "_":
            pauses.append((t, t + d / 1000))
        else:
            truth.append((arpa[len(truth)], t, t + d / 1000))
        t += d / 1000
    comma = next((a, b) for a, b in pauses if 0 < a < truth[-1][1] and b - a > 0.05)
    return wav, truth, comma


def _check_sums(al: Alignment, wav: np.ndarray, n: int) -> None:
    assert len(al.phones) == len(al.frame_durations) == len(al.token_durations) == n
    assert sum(al.frame_durations) == round(len(wav) / 16000 * 25)
    assert sum(al.token_durations) == tokens_for_samples(len(wav))
    assert min(al.frame_durations) >= 0 and min(al.token_durations) >= 0


@needs_mbrola
def test_boundaries_match_exact_timings(speech):
    wav, truth, comma = speech
    seq = _sequence(sil_edges=True)
    al = force_align(wav, seq, name="x.wav")
    assert al.ok, al.reason
    err = boundary_errors(al, truth)
    assert err.mean() < 0.030 and np.median(err) < 0.025, err
    _check_sums(al, wav, len(seq))
    # <wb> has zero duration everywhere; <sil>s own the leading, comma and trailing pauses.
    for p, f, t in zip(al.phones, al.frame_durations, al.token_durations, strict=True):
        if p.symbol == WORD_BOUNDARY:
            assert p.start == p.end and f == 0 and t == 0
    sils = [p for p in al.phones if p.symbol == SILENCE]
    assert sils[0].start == 0 and abs(sils[0].end - LEAD) < 0.05
    assert abs(sils[1].start - comma[0]) < 0.04 and abs(sils[1].end - comma[1]) < 0.04
    assert sils[2].end == pytest.approx(len(wav) / 16000) and al.leading_silence == 0
    assert al.trailing_silence == 0
    # Durations come from rounded cumulative times: every boundary is the rounded phone end.
    cum = np.cumsum(al.frame_durations)
    assert list(cum[:-1]) == [round(p.end * 25) for p in al.phones[:-1]]
    assert [(w.text, w.start) for w in al.words][0] == ("bin", al.phones[1].start)
    assert al.words[-1].end == al.phones[-2].end


@needs_mbrola
def test_silence_without_sil_tokens_is_reported(speech):
    wav, truth, comma = speech
    seq = _sequence(sil_edges=False, sil_comma=False)
    al = force_align(wav, seq)
    assert al.ok, al.reason
    _check_sums(al, wav, len(seq))
    assert abs(al.leading_silence - LEAD) < 0.05 and al.trailing_silence > 0.2
    assert al.phones[0].start == pytest.approx(al.leading_silence)
    # the first / last phone's durations include the leading / trailing silence
    assert al.frame_durations[0] == round(al.phones[0].end * 25)
    assert al.token_durations[-1] == tokens_for_samples(len(wav)) - round(al.phones[-2].end * 80)
    # the unmarked comma pause is split between its neighbours, the <wb> sits at the split
    wb = al.phones[len(WORDS[0][1]) + len(WORDS[1][1]) + 1]
    assert wb.symbol == WORD_BOUNDARY and comma[0] - 0.04 < wb.start < comma[1] + 0.04
    assert boundary_errors(al, truth).mean() < 0.040


@needs_mbrola
@pytest.mark.parametrize("case", ["zeros", "noise", "wrong text"])
def test_mismatch_is_flagged(speech, case):
    wav, _, _ = speech
    seq = _sequence(sil_edges=True)
    if case == "zeros":
        wav = np.zeros_like(wav)
    elif case == "noise":
        wav = np.random.default_rng(0).normal(0, 0.1, len(wav)).astype(np.float32)
    else:
        words = [["P", "L", "EY1", "S"], ["G", "R", "IY1", "N"], ["W", "IH1", "DH"], ["K", "Y"]]
        words += [["S", "EH1", "V", "AH0", "N"], ["S", "UW1", "N"]]
        symbols = [s for w in words for s in (*w, WORD_BOUNDARY)][:-1]
        seq = PhonemeSequence(tuple(symbols))
    al = force_align(wav, seq)
    assert not al.ok and al.reason
    assert al.phones == () and al.frame_durations == () and al.token_durations == ()


# --- the mapping from aligner output onto our sequence, with a fake aligner ----------------


def _fake(monkeypatch, words):
    monkeypatch.setattr(forced, "_pocketsphinx_align", lambda samples, pron: words)


def _w(name, *phones, score_per_frame=-5):
    ph = tuple(_Phone(p, s, e, score_per_frame * (e - s)) for p, s, e in phones)
    return _Word(name, ph, ph[0].start, ph[-1].end)


BIN = ("u0", ("B", 10, 15), ("IH", 15, 20), ("N", 20, 30))
BLUE = ("u1", ("B", 40, 45), ("L", 45, 50), ("UW", 50, 60))
AT = ("u2", ("AE", 60, 70), ("T", 70, 80))
ALIGNED = [  # pauses at 0-10, 30-40 and 80-100 frames
    _w("<sil>", ("SIL", 0, 10)),
    _w(*BIN),
    _w("<sil>", ("SIL", 30, 40)),
    _w(*BLUE),
    _w(*AT),
    _w("<sil>", ("SIL", 80, 100)),
]


def _tone_where_phones() -> np.ndarray:
    """1.005 s: a tone where the fake aligner puts phones, near-silence in its pauses."""
    wav = np.full(16080, 1e-3, dtype=np.float32)
    for w in ALIGNED:
        if w.name != "<sil>":
            wav[w.start * 160 : w.end * 160] = 0.3 * np.sin(np.arange((w.end - w.start) * 160))
    return wav


WAV = _tone_where_phones()
PLAIN = ("B", "IH1", "N", "<wb>", "B", "L", "UW1", "<wb>", "AE1", "T")


def test_mapping_without_sil_tokens(monkeypatch):
    _fake(monkeypatch, ALIGNED)
    al = force_align(WAV, PhonemeSequence(PLAIN, (WordSpan("bin", 0, 3),)))
    assert al.ok
    assert al.leading_silence == pytest.approx(0.1) and al.trailing_silence == pytest.approx(0.205)
    spans = [(p.start, p.end) for p in al.phones]
    # the unmarked pause 0.30-0.40 is split at 0.35; the <wb> sits there with zero length
    assert spans[2] == pytest.approx((0.2, 0.35)) and spans[3] == pytest.approx((0.35, 0.35))
    assert spans[4] == pytest.approx((0.35, 0.45)) and spans[7] == pytest.approx((0.6, 0.6))
    # cumulative ends 0.15 .20 .35 .35 .45 .50 .60 .60 .70 1.005, rounded at 25/s and 80/s
    assert al.frame_durations == (4, 1, 4, 0, 2, 1, 3, 0, 3, 7)
    assert al.token_durations == (12, 4, 12, 0, 8, 4, 8, 0, 8, 24)
    assert al.words[0].start == pytest.approx(0.1) and al.words[0].end == pytest.approx(0.35)


def test_mapping_with_sil_tokens(monkeypatch):
    _fake(monkeypatch, ALIGNED)
    symbols = ("<sil>", "B", "IH1", "N", "<sil>", "<wb>", *PLAIN[4:], "<wb>", "<sil>")
    al = force_align(WAV, PhonemeSequence(symbols))
    assert al.ok and al.leading_silence == 0 and al.trailing_silence == 0
    spans = [(p.start, p.end) for p in al.phones]
    assert spans[0] == pytest.approx((0.0, 0.1)) and spans[4] == pytest.approx((0.3, 0.4))
    assert spans[5] == pytest.approx((0.4, 0.4))  # <wb> after the pause
    assert spans[-2] == pytest.approx((0.8, 0.8)) and spans[-1] == pytest.approx((0.8, 1.005))
    # cumulative ends .1 .15 .2 .3 .4 .4 .45 .5 .6 .6 .7 .8 .8 1.005 s -> frames 2 4 5 8 10 10
    # 11 12 15 15 18 20 20 25 (ties round half to even) and tokens 8 12 16 ... 64 64 80
    assert al.frame_durations == (2, 2, 1, 3, 2, 0, 1, 1, 3, 0, 3, 2, 0, 5)
    assert al.token_durations == (8, 4, 4, 8, 8, 0, 4, 4, 8, 0, 8, 8, 0, 16)


@pytest.mark.parametrize(
    "words,reason",
    [
        (None, "no alignment"),
        ([_w(*BIN), _w(*BLUE)], "do not match"),
        ([_w(*BIN), _w("u1", ("B", 40, 45), ("L", 45, 60)), _w(*AT)], "aligned phones"),
        (
            [
                _w("u0", ("B", 0, 40), ("IH", 40, 70), ("N", 70, 83)),
                _w("u1", ("B", 83, 86), ("L", 86, 89), ("UW", 89, 92)),
                _w("u2", ("AE", 92, 95), ("T", 95, 98)),
            ],
            "minimum duration",
        ),
    ],
)
def test_bad_aligner_output_is_rejected(monkeypatch, words, reason):
    _fake(monkeypatch, words)
    al = force_align(WAV, PhonemeSequence(PLAIN))
    assert not al.ok and reason in al.reason and al.frame_durations == ()


def test_speech_in_a_pause_or_poor_match_is_rejected(monkeypatch):
    _fake(monkeypatch, ALIGNED)
    loud = WAV.copy()
    loud[82 * 160 : 99 * 160] = 0.3  # 170 ms of speech-loud audio in the trailing pause
    al = force_align(loud, PhonemeSequence(PLAIN))
    assert not al.ok and "sounds like speech" in al.reason
    loud[82 * 160 : 95 * 160] = 1e-3  # 40 ms: an onset/decay, not a word
    assert force_align(loud, PhonemeSequence(PLAIN)).ok

    bad = [*ALIGNED[:3], _w(*BLUE, score_per_frame=-100), *ALIGNED[4:]]
    _fake(monkeypatch, bad)
    al = force_align(WAV, PhonemeSequence(PLAIN))
    assert not al.ok and "poorly" in al.reason  # 20 frames x (100 - 30) = 1400 > 400
    al = force_align(WAV, PhonemeSequence(PLAIN), max_mismatch=None)
    assert al.ok and al.mismatch == pytest.approx(1400)


@pytest.mark.parametrize(
    "symbols",
    [
        ("<wb>", *PLAIN, "<wb>"),
        ("<sil>", "<sil>", "<wb>", *PLAIN[:4], "<sil>", "<sil>", *PLAIN[4:], "<wb>"),
        ("<wb>", "<sil>", *PLAIN[:3], "<wb>", "<sil>", "<wb>", *PLAIN[4:], "<sil>", "<wb>"),
    ],
)
def test_odd_sequences_stay_consistent(monkeypatch, symbols):
    _fake(monkeypatch, ALIGNED)
    al = force_align((WAV * 32767).astype(np.int16), PhonemeSequence(symbols))
    assert al.ok and len(al.phones) == len(symbols)
    assert sum(al.frame_durations) == 25 and sum(al.token_durations) == 80
    starts = [p.start for p in al.phones]
    assert starts == sorted(starts) and all(p.end >= p.start for p in al.phones)
    for p, f, t in zip(al.phones, al.frame_durations, al.token_durations, strict=True):
        if p.symbol == WORD_BOUNDARY:
            assert p.start == p.end and f == t == 0
    # the pauses go to <sil> tokens when there are any, and nothing is lost
    sil = sum(p.end - p.start for p in al.phones if p.symbol == SILENCE)
    assert sil + al.leading_silence + al.trailing_silence == pytest.approx(
        1.005 - sum(p.end - p.start for p in al.phones if p.symbol not in (SILENCE, WORD_BOUNDARY))
    )


def test_sequences_that_cannot_align():
    assert "<unk>" in force_align(WAV, PhonemeSequence(("B", "<unk>"))).reason
    assert "no spoken" in force_align(WAV, PhonemeSequence(("<sil>",))).reason
    assert "too short" in force_align(WAV[:800], PhonemeSequence(PLAIN)).reason
    assert "silent" in force_align(np.zeros(16000, np.float32), PhonemeSequence(PLAIN)).reason


def test_bad_inputs_raise_input_error():
    seq = PhonemeSequence(PLAIN)
    with pytest.raises(InputError, match="clip.wav: audio must be mono"):
        force_align(np.zeros((2, 100), np.float32), seq, name="clip.wav")
    with pytest.raises(InputError, match="clip.wav: audio is empty"):
        force_align(np.zeros(0, np.float32), seq, name="clip.wav")
    with pytest.raises(InputError, match="NaN"):
        force_align(np.full(1000, np.nan, np.float32), seq, name="clip.wav")
    with pytest.raises(InputError, match="cannot be aligned"):
        force_align(WAV, PhonemeSequence(("B", "<pad>")), name="clip.wav")
    with pytest.raises(InputError, match="outside"):
        force_align(WAV, PhonemeSequence(("B",), (WordSpan("x", 0, 3),)), name="clip.wav")
