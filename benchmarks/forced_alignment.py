"""Forced-alignment accuracy and speed against exact phone timings (dubcli/align/forced.py).

    nice python benchmarks/forced_alignment.py [--n 21] [--voices us1,us2,us3] [--seed 0]
    nice python benchmarks/forced_alignment.py --synth [--voices kal,slt]   # SynthDub utterances

Default source: GRID-grammar sentences rendered by mbrola from `espeak-ng --pho`; mbrola plays
a .pho file exactly, so its phone durations are the ground truth. The PhonemeSequence is mbrola's
own phones mapped to ARPAbet (one-to-one with the truth), words split by each word's phone count,
<sil> at the start, the end and at a comma. Some utterances get extra leading silence.
Prints mean / median / 90th-percentile absolute boundary error (ms), the mean signed error, the
failures, and the alignment speed as a multiple of real time. With --negatives it also aligns
corrupted phoneme sequences (last word dropped, a middle word dropped, a word replaced) and
prints how many of them force_align rejects (ok=False) - the rest would be silent garbage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np
import soundfile as sf

from dubcli.align.forced import SPECIAL, boundary_errors, force_align
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, PhonemeSequence, WordSpan, normalize_symbol
from dubcli.timing import SAMPLE_RATE

GRID = [
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
]

# mbrola us1/us2/us3 phone names (SAMPA-like) -> ARPAbet; the flap "4" counts as T.
MBROLA_US = {
    "p": "P", "p_h": "P", "t": "T", "t_h": "T", "4": "T", "k": "K", "k_h": "K", "b": "B",
    "d": "D", "g": "G", "f": "F", "s": "S", "S": "SH", "tS": "CH", "T": "TH", "v": "V", "z": "Z",
    "Z": "ZH", "dZ": "JH", "D": "DH", "m": "M", "n": "N", "N": "NG", "l": "L", "l=": "L",
    "r": "R", "j": "Y", "w": "W", "h": "HH", "r=": "ER", "i": "IY", "A": "AA", "O": "AO",
    "u": "UW", "I": "IH", "E": "EH", "{": "AE", "V": "AH", "U": "UH", "@": "AH", "EI": "EY",
    "AI": "AY", "OI": "OY", "@U": "OW", "aU": "AW",
}  # fmt: skip


@dataclass(frozen=True)
class Utterance:
    id: str
    wav: np.ndarray  # (T,) float32 16 kHz
    phonemes: PhonemeSequence
    truth: list[tuple[str, float, float]]  # spoken phones: (symbol, start, end) seconds


def _pho(text: str, voice: str) -> list[tuple[str, int]]:
    out = subprocess.run(
        ["espeak-ng", "-v", f"mb-{voice}", "-q", "--pho", text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [(ln.split()[0], int(ln.split()[1])) for ln in out.splitlines() if ln.strip()]


def mbrola_utterance(text: str, voice: str, lead_ms: int, uid: str, tmp: Path) -> Utterance:
    """Render `text` with mbrola `voice`; truth and PhonemeSequence from the same .pho."""
    pho = _pho(text, voice)
    if lead_ms:
        pho = [("_", lead_ms), *pho]
    words = [w.strip(",.") for w in text.split()]
    counts = [sum(p != "_" for p, _ in _pho(w, voice)) for w in words]
    spoken = [(p, d) for p, d in pho if p != "_"]
    if sum(counts) != len(spoken):
        raise ValueError(f"{uid}: per-word phone counts {counts} != {len(spoken)} phones")
    (tmp / f"{uid}.pho").write_text("".join(f"{p} {d}\n" for p, d in pho))
    wav_path = tmp / f"{uid}.wav"
    subprocess.run(
        ["mbrola", "-e", f"/usr/share/mbrola/{voice}/{voice}", tmp / f"{uid}.pho", wav_path],
        check=True,
        capture_output=True,
    )
    wav, sr = sf.read(wav_path, dtype="float32")
    assert sr == SAMPLE_RATE, sr

    symbols: list[str] = [SILENCE]
    truth, spans, t, k, left = [], [], 0.0, 0, 0
    for p, d in pho:
        if p == "_":
            if symbols[-1] != SILENCE and truth:
                symbols.append(SILENCE)
        else:
            if left == 0:  # a new word starts
                if truth and symbols[-1] != SILENCE:
                    symbols.append(WORD_BOUNDARY)
                spans.append([words[k], len(symbols), len(symbols)])
                left, k = counts[k], k + 1
            sym = normalize_symbol(MBROLA_US[p])
            symbols.append(sym)
            truth.append((sym, t, t + d / 1000))
            spans[-1][2] = len(symbols)
            left -= 1
        t += d / 1000
    if symbols[-1] != SILENCE:
        symbols.append(SILENCE)
    seq = PhonemeSequence(tuple(symbols), tuple(WordSpan(w, s, e) for w, s, e in spans))
    return Utterance(uid, wav, seq, truth)


def mbrola_corpus(n: int, voices: list[str], seed: int) -> list[Utterance]:
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(prefix="fa-bench-"))
    out: list[Utterance] = []
    while len(out) < n:
        i = len(out)
        words = [opts[rng.integers(len(opts))] for opts in GRID]
        if i % 3 == 2:
            words[1] += ","  # a pause after the colour: exercises <sil> mid-sentence
        voice = voices[i % len(voices)]
        lead = int(rng.choice([0, 0, 150, 400]))
        try:
            out.append(mbrola_utterance(" ".join(words), voice, lead, f"{voice}-{i:03d}", tmp))
        except ValueError:  # cross-word sandhi (e.g. a linking r): words cannot be split
            continue
    return out


def synth_corpus(n: int, seed: int, voices: list[str] | None) -> list[Utterance]:
    """SynthDub utterances (dubcli.synth.speech): its exact phone timeline is the truth."""
    from dubcli.synth import speech as synth

    out = []
    for spec in synth.make_specs(n, seed=seed, split="train", voices=voices):
        utt = synth.synthesize(spec)
        symbols: list[str] = []
        spans: list[list] = []
        truth = []
        for p in utt.phones:
            if p.symbol == SILENCE:
                if not symbols or symbols[-1] != SILENCE:
                    symbols.append(SILENCE)
                continue
            mid = (p.start + p.end) / 2
            k = next(i for i, w in enumerate(utt.words) if w.start <= mid <= w.end)
            if not spans or spans[-1][0] != k:  # a new word
                if spans and symbols[-1] != SILENCE:
                    symbols.append(WORD_BOUNDARY)
                spans.append([k, len(symbols), len(symbols)])
            symbols.append(p.symbol)
            spans[-1][2] = len(symbols)
            truth.append((p.symbol, p.start, p.end))
        words = tuple(WordSpan(utt.words[k].text, s, e) for k, s, e in spans)
        seq = PhonemeSequence(tuple(symbols), words)
        out.append(Utterance(f"{spec.voice}-{spec.id}", utt.wav, seq, truth))
    return out


def _corrupt(seq: PhonemeSequence, kind: str) -> PhonemeSequence:
    """Drop the last word, drop the 4th (letter), or replace the 4th by 'why' (W AY1)."""
    s, w = seq.symbols, seq.words
    if kind == "drop last":
        return PhonemeSequence((*s[: w[-2].end], SILENCE))
    if kind == "drop middle":
        return PhonemeSequence(s[: w[3].start] + s[w[4].start :])
    return PhonemeSequence(s[: w[3].start] + ("W", "AY1") + s[w[3].end :])


def negatives(corpus: list[Utterance]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for kind in ("drop last", "drop middle", "replace"):
        for utt in corpus:
            if len(utt.phonemes.words) < 5:
                continue
            al = force_align(utt.wav, _corrupt(utt.phonemes, kind), name=utt.id)
            out.setdefault(kind, []).append(not al.ok)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=21)
    ap.add_argument("--voices", default=None, help="mbrola: us1,us2,us3; --synth: all voices")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synth", action="store_true", help="use dubcli.synth.speech utterances")
    ap.add_argument("--negatives", action="store_true", help="also align corrupted sequences")
    args = ap.parse_args()

    voices = args.voices.split(",") if args.voices else None
    corpus = (
        synth_corpus(args.n, args.seed, voices)
        if args.synth
        else mbrola_corpus(args.n, voices or ["us1", "us2", "us3"], args.seed)
    )
    errors, signed, failures, audio_s, align_s = [], [], [], 0.0, 0.0
    per_voice: dict[str, list[float]] = {}
    for utt in corpus:
        t0 = time.perf_counter()
        al = force_align(utt.wav, utt.phonemes, name=utt.id)
        align_s += time.perf_counter() - t0
        audio_s += len(utt.wav) / SAMPLE_RATE
        if not al.ok:
            failures.append(f"{utt.id}: {al.reason}")
            continue
        e = boundary_errors(al, utt.truth) * 1000
        errors.extend(e)
        per_voice.setdefault(utt.id.split("-")[0], []).extend(e)
        spoken = [p for p in al.phones if p.symbol not in SPECIAL]
        signed.extend((p.start - s) * 1000 for p, (_, s, _) in zip(spoken, utt.truth, strict=True))
    err = np.array(errors)
    print(f"utterances {len(corpus)}  aligned {len(corpus) - len(failures)}  boundaries {len(err)}")
    if len(err):
        print(
            f"boundary error ms: mean {err.mean():.1f}  median {np.median(err):.1f}  "
            f"p90 {np.percentile(err, 90):.1f}  max {err.max():.1f}  "
            f"signed mean (start) {np.mean(signed):+.1f}"
        )
        for v, e in sorted(per_voice.items()):
            print(f"  {v}: mean {np.mean(e):.1f}  median {np.median(e):.1f}  n {len(e)}")
    print(
        f"speed: {audio_s:.1f} s of audio in {align_s:.2f} s = {audio_s / align_s:.0f}x real time"
    )
    for f in failures:
        print("FAILED", f)
    if args.negatives:
        for kind, rejected in negatives(corpus).items():
            print(f"corrupted ({kind}): {sum(rejected)}/{len(rejected)} rejected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
