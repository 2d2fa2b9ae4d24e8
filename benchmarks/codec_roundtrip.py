"""Round-trip benchmark of the `world` codec on held-out synthetic voices (DESIGN 2, 6).

Generates GRID-grammar sentences with espeak-ng + mbrola and festival voices, trains codebooks on
some voices, and scores held-out voices against plain WORLD analysis-resynthesis:
MCD (dB, c1..c24, time-aligned speech frames), F0 RMSE (cents, frames voiced in both) and gross
pitch error, V/UV error, grammar-constrained pocketsphinx WER, encode/decode real-time factors.

    nice python benchmarks/codec_roundtrip.py --n-train 200 --n-test 24
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dubcli.audio.codec.features import synthesize  # noqa: E402
from dubcli.audio.codec.metrics import MCD_ALPHA, MCD_ORDER, compare  # noqa: E402
from dubcli.audio.codec.train import train_world_codec  # noqa: E402
from dubcli.audio.codec.world import (  # noqa: E402
    WorldCodecConfig,
    analyze_for,
    utterance_features,
)
from dubcli.timing import HOP, SAMPLE_RATE  # noqa: E402

GRID = {
    "command": "bin lay place set".split(),
    "colour": "blue green red white".split(),
    "preposition": "at by in with".split(),
    "letter": list("abcdefghijklmnopqrstuvxyz"),  # GRID has no w
    "digit": "zero one two three four five six seven eight nine".split(),
    "adverb": "again now please soon".split(),
}
# How each engine must be spelled a letter name (espeak reads "A" as a schwa, festival "A" as
# an article); every other letter is its capital.
LETTER_SPELLING = {"espeak": {"a": "eh"}, "festival": {"a": "ay"}}
TRAIN_VOICES = "mb-us2,mb-en1,en-us+m3,en-us+f2,en-us+f4,fest:kal_diphone,fest:ked_diphone"
TEST_VOICES = "mb-us1,mb-us3,fest:cmu_us_slt_arctic_hts"


def grid_sentences(n: int, rng: np.random.Generator) -> list[list[str]]:
    return [[str(rng.choice(GRID[slot])) for slot in GRID] for _ in range(n)]


def spoken(words: list[str], engine: str) -> str:
    letter = words[3]
    words = list(words)
    words[3] = LETTER_SPELLING[engine].get(letter, letter.upper())
    return " ".join(words)


def render(voice: str, sentences: list[list[str]], out_dir: Path, seed: int):
    """Render sentences with one voice (cached) -> list of 16 kHz float64 waveforms."""
    import soxr

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{i:04d}_{'_'.join(s)}.wav" for i, s in enumerate(sentences)]
    todo = [(p, s) for p, s in zip(paths, sentences, strict=True) if not p.exists()]
    if voice.startswith("fest:") and todo:
        lines = [f"(voice_{voice[5:]})"]
        for p, s in todo:
            text = spoken(s, "festival")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{p}" \'riff)')
        script = out_dir / "render.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
    for p, s in todo if not voice.startswith("fest:") else []:
        # pitch and rate per utterance from its own seed: cached and fresh runs agree
        rng = np.random.default_rng([seed, zlib.crc32(p.name.encode())])
        pitch, speed = int(rng.integers(30, 71)), int(rng.integers(140, 191))
        cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(p)]
        subprocess.run([*cmd, spoken(s, "espeak")], check=True, capture_output=True)
    wavs = []
    for p in paths:
        x, sr = sf.read(p, dtype="float64", always_2d=True)
        x = x.mean(axis=1)
        wavs.append(soxr.resample(x, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else x)
    return wavs


def corpus(voices: list[str], n: int, work: Path, seed: int) -> list[tuple[list[str], np.ndarray]]:
    """n utterances spread over `voices` (round robin)."""
    rng = np.random.default_rng(seed)
    per_voice = [n // len(voices) + (i < n % len(voices)) for i in range(len(voices))]
    items = []
    for voice, k in zip(voices, per_voice, strict=True):
        if k == 0:
            continue
        sents = grid_sentences(k, rng)
        wavs = render(voice, sents, work / voice.replace(":", "_").replace("+", "_"), seed)
        items += list(zip(sents, wavs, strict=True))
    return items


def grammar_decoder(work: Path):
    from pocketsphinx import Decoder

    rules = "\n".join(f"<{slot}> = {' | '.join(words)};" for slot, words in GRID.items())
    body = " ".join(f"<{slot}>" for slot in GRID)
    gram = work / "grid.gram"
    gram.write_text(f"#JSGF V1.0;\ngrammar grid;\npublic <utt> = {body};\n{rules}\n")
    return Decoder(jsgf=str(gram), loglevel="FATAL")


def recognize(decoder, wav: np.ndarray) -> list[str]:
    pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr.split() if hyp is not None else []


def word_errors(ref: list[str], hyp: list[str]) -> int:
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return int(d[-1])


def world_5ms(wav: np.ndarray) -> np.ndarray:
    """Plain WORLD analysis-resynthesis with pyworld's defaults (harvest, 5 ms frames)."""
    import pyworld

    f0, t = pyworld.harvest(wav, SAMPLE_RATE)
    sp = pyworld.cheaptrick(wav, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(wav, f0, t, SAMPLE_RATE)
    y = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, 5.0)
    return np.pad(y, (0, max(0, len(wav) - len(y))))[: len(wav) // HOP * HOP]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-train", type=int, default=200, help="training utterances")
    ap.add_argument("--n-test", type=int, default=24, help="held-out test utterances")
    ap.add_argument("--train-voices", default=TRAIN_VOICES)
    ap.add_argument("--test-voices", default=TEST_VOICES)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--f0-method", default="harvest", choices=["harvest", "dio"])
    ap.add_argument("--vtl", default="0.9,1.0,1.1", help="training VTL warp factors")
    ap.add_argument("--iters", type=int, default=15, help="Lloyd iterations per stage")
    ap.add_argument("--max-frames", type=int, default=120_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "dubcli_codec")
    ap.add_argument("--save-codec", type=Path, help="write the trained codec here")
    ap.add_argument("--save-audio", type=Path, help="write test wavs (orig/world/codec) here")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    train_voices = args.train_voices.split(",")
    test_voices = args.test_voices.split(",")
    if set(train_voices) & set(test_voices):
        ap.error("test voices must be held out of training")

    t0 = time.perf_counter()
    train = corpus(train_voices, args.n_train, args.work_dir / "corpus", args.seed)
    test = corpus(test_voices, args.n_test, args.work_dir / "corpus", args.seed + 1)
    t_corpus = time.perf_counter() - t0
    train_sec = sum(len(w) for _, w in train) / SAMPLE_RATE
    test_sec = sum(len(w) for _, w in test) / SAMPLE_RATE
    print(
        f"corpus: {len(train)} train utts ({train_sec:.0f} s), {len(test)} test utts "
        f"({test_sec:.0f} s) in {t_corpus:.0f} s",
        file=sys.stderr,
    )

    config = WorldCodecConfig(vocab=args.vocab, f0_method=args.f0_method)
    t0 = time.perf_counter()
    codec = train_world_codec(
        [w for _, w in train],
        seed=args.seed,
        config=config,
        iters=args.iters,
        vtl_factors=[float(v) for v in args.vtl.split(",")],
        max_frames=args.max_frames,
    )
    t_train = time.perf_counter() - t0
    print(f"trained in {t_train:.0f} s on {codec.info['frames']} frames", file=sys.stderr)
    if args.save_codec:
        codec.save(args.save_codec)

    decoder = grammar_decoder(args.work_dir)
    systems = ["original", "world-5ms", "world-80Hz", "codec"]
    scores = {
        s: {"mcd": [], "f0": [], "fine": [], "gpe": [], "vuv": [], "err": 0, "words": 0}
        for s in systems
    }
    feat_mcd, t_enc, t_dec = [], 0.0, 0.0
    for i, (words, wav) in enumerate(test):
        wav = wav[: len(wav) // HOP * HOP]
        ref_frames = analyze_for(wav, config)
        t1 = time.perf_counter()
        tokens = codec.encode(wav)
        t2 = time.perf_counter()
        out = codec.decode(tokens).astype(np.float64)
        t_dec += time.perf_counter() - t2
        t_enc += t2 - t1
        feats = utterance_features(ref_frames, config)
        feat_mcd.append(quantization_mcd(codec, feats, tokens))
        outs = {
            "original": wav,
            "world-5ms": world_5ms(wav),
            "world-80Hz": synthesize(ref_frames.f0, ref_frames.sp, ref_frames.ap),
            "codec": out,
        }
        for name, y in outs.items():
            hyp = recognize(decoder, y)
            scores[name]["err"] += word_errors(words, hyp)
            scores[name]["words"] += len(words)
            if name != "original":
                r = compare(ref_frames, analyze_for(y, config))
                scores[name]["mcd"].append(r.mcd_db)
                scores[name]["f0"].append(r.f0_rmse_cents)
                scores[name]["gpe"].append(r.gross_pitch_error)
                scores[name]["fine"].append(r.f0_fine_rmse_cents)
                scores[name]["vuv"].append(r.vuv_error)
            if args.save_audio:
                args.save_audio.mkdir(parents=True, exist_ok=True)
                sf.write(args.save_audio / f"{i:03d}_{name}.wav", y, SAMPLE_RATE)

    result = {
        "n_train": len(train),
        "n_test": len(test),
        "train_voices": train_voices,
        "test_voices": test_voices,
        "vocab": args.vocab,
        "f0_method": args.f0_method,
        "train_seconds": round(t_train, 1),
        "codec_feature_mcd_db": float(np.mean(feat_mcd)),
        "encode_rtf": t_enc / test_sec,
        "decode_rtf": t_dec / test_sec,
        "load_average": os.getloadavg()[0],
        "systems": {
            s: {
                "mcd_db": float(np.mean(v["mcd"])) if v["mcd"] else None,
                "f0_rmse_cents": float(np.mean(v["f0"])) if v["f0"] else None,
                "gross_pitch_error": float(np.mean(v["gpe"])) if v["gpe"] else None,
                "f0_fine_rmse_cents": float(np.mean(v["fine"])) if v["fine"] else None,
                "vuv_error": float(np.mean(v["vuv"])) if v["vuv"] else None,
                "wer": v["err"] / max(v["words"], 1),
            }
            for s, v in scores.items()
        },
    }
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def quantization_mcd(codec, feats, tokens) -> float:
    """MCD between the encoder's unquantized cepstra and the decoder's (no resynthesis)."""
    from dubcli.audio.codec.kmeans import rvq_decode

    m = codec.config.mcep_order
    content = rvq_decode(tokens.content, codec.content_codebooks)
    acoustic = rvq_decode(tokens.acoustic, codec.acoustic_codebooks) / codec.acoustic_weights
    c_hat = content + acoustic[:, :m]
    c_ref = feats.content_input()
    order = min(MCD_ORDER, m)
    diff = (c_hat - c_ref)[:, :order]
    level = feats.mcep[:, 0]
    speech = level >= level.max() - 40.0 / (20.0 / np.log(10.0))
    db = 10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=1))
    assert MCD_ALPHA == codec.config.alpha
    return float(db[speech].mean())


def print_table(r: dict) -> None:
    print(
        f"\nworld codec round trip: {r['n_test']} held-out utts ({', '.join(r['test_voices'])}); "
        f"codebooks {r['vocab']} x 5 trained on {r['n_train']} utts "
        f"({', '.join(r['train_voices'])}); F0 {r['f0_method']}"
    )
    cols = [
        ("MCD dB", "mcd_db", "9.2f"),
        ("F0 RMSE c", "f0_rmse_cents", "11.1f"),
        ("fine c", "f0_fine_rmse_cents", "8.1f"),
        ("GPE", "gross_pitch_error", "7.3f"),
        ("V/UV", "vuv_error", "7.3f"),
        ("WER", "wer", "7.3f"),
    ]
    head = f"{'system':<12}" + "".join(f"{c:>{int(fmt.split('.')[0])}}" for c, _, fmt in cols)
    print(head)
    print("-" * len(head))
    for name, s in r["systems"].items():
        cells = []
        for _, key, fmt in cols:
            width = int(fmt.split(".")[0])
            cells.append(format(s[key], fmt) if s[key] is not None else f"{'-':>{width}}")
        print(f"{name:<12}" + "".join(cells))
    print(f"codec feature-domain MCD (quantization only): {r['codec_feature_mcd_db']:.2f} dB")
    print(
        f"encode RTF {r['encode_rtf']:.3f}, decode RTF {r['decode_rtf']:.3f} "
        f"(wall clock, load average {r['load_average']:.1f}); training {r['train_seconds']} s"
    )


if __name__ == "__main__":
    main()
