"""Round-trip benchmark of the `world` codec on held-out SynthDub speakers (DESIGN 2, 6).

Codebooks are trained on SynthDub TRAIN utterances (dubcli.synth.speech: GRID and free text); the
scores come from TEST utterances, whose speakers are never in train (voices.py: us3 and ked with
every perturbation, and the extreme VTL / F0 perturbations of the other voices, are test-only).
Only GRID-text test utterances are scored, so that the grammar-constrained pocketsphinx WER
(dubcli.eval.wer, grammar="grid") is meaningful.

Systems: `original`; `world`, plain WORLD analysis-resynthesis on the 12.5 ms token grid (the
codec's own analysis, unquantized: the codec's ceiling); `codec`, encode + decode; with
--world-5ms also pyworld's default 5 ms analysis-resynthesis.
Metrics, against the original's analysis (time-aligned frames): MCD (dB, c1..c24, speech frames)
of the re-analysed output; quantization-only MCD (the encoder's cepstra vs the decoder's, no
resynthesis); F0 RMSE in cents and the fine RMSE without gross errors, gross pitch error (GPE,
> 20 %), V/UV error; corpus WER; encode / decode real-time factors (wall clock, single process).

    nice python benchmarks/codec_roundtrip.py --n-train 200 --n-test 60 [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from _tree import ROOT  # this checkout's dubcli, not the installed one

from dubcli.audio.codec.features import synthesize as world_synthesize  # noqa: E402
from dubcli.audio.codec.kmeans import rvq_decode  # noqa: E402
from dubcli.audio.codec.metrics import (  # noqa: E402
    MCD_ALPHA,
    MCD_ORDER,
    MCD_SPEECH_RANGE_DB,
    compare,
)
from dubcli.audio.codec.train import train_world_codec  # noqa: E402
from dubcli.audio.codec.world import (  # noqa: E402
    WorldCodecConfig,
    analyze_for,
    utterance_features,
)
from dubcli.eval.wer import PocketsphinxRecognizer, corpus_wer  # noqa: E402
from dubcli.fsutil import atomic_write_text  # noqa: E402
from dubcli.synth import speech as synth  # noqa: E402
from dubcli.synth.voices import VOICES  # noqa: E402
from dubcli.timing import HOP, SAMPLE_RATE  # noqa: E402

METRICS = ("mcd_db", "f0_rmse_cents", "f0_fine_rmse_cents", "gross_pitch_error", "vuv_error")
_DB = 10.0 / np.log(10.0)


def grid_test_specs(n: int, seed: int) -> list[synth.UtteranceSpec]:
    """The first n GRID-text TEST specs (make_specs draws spec i the same for any n >= i)."""
    m = 2 * n + 8
    while True:
        specs = [s for s in synth.make_specs(m, seed, "test") if s.kind == "grid"]
        if len(specs) >= n:
            return specs[:n]
        m *= 2


def _synth_version() -> str:
    """Hash of the SynthDub sources: a cached waveform is reused only while they are unchanged."""
    h = hashlib.sha1()
    for p in sorted((ROOT / "dubcli" / "data").glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def render(specs: Sequence[synth.UtteranceSpec], cache: Path | None) -> list[np.ndarray]:
    """(n,) float64 16 kHz waveform per spec, cut to whole tokens; optionally cached as wavs."""
    version = _synth_version() if cache else ""
    wavs = []
    for spec in specs:
        path = None
        if cache is not None:
            key = hashlib.sha1((version + json.dumps(spec.as_dict(), sort_keys=True)).encode())
            path = cache / f"{spec.id}-{key.hexdigest()[:12]}.wav"
        if path is not None and path.is_file():
            wav, _ = sf.read(path, dtype="float32")
        else:
            wav = synth.synthesize(spec).wav
            if path is not None:
                cache.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
                sf.write(tmp, wav, SAMPLE_RATE, subtype="FLOAT", format="WAV")
                os.replace(tmp, path)
        wav = np.asarray(wav, dtype=np.float64)
        wavs.append(wav[: len(wav) // HOP * HOP])
    return wavs


def world_5ms(wav: np.ndarray) -> np.ndarray:
    """Plain WORLD analysis-resynthesis with pyworld's defaults (harvest, 5 ms frames)."""
    import pyworld

    f0, t = pyworld.harvest(wav, SAMPLE_RATE)
    sp = pyworld.cheaptrick(wav, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(wav, f0, t, SAMPLE_RATE)
    y = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, 5.0)
    return np.pad(y, (0, max(0, len(wav) - len(y))))[: len(wav)]


def quantization_mcd(codec, feats, tokens) -> float:
    """MCD between the encoder's unquantized cepstra and the decoder's (no resynthesis)."""
    if codec.config.alpha != MCD_ALPHA:
        raise ValueError(f"codec alpha {codec.config.alpha} != MCD alpha {MCD_ALPHA}")
    m = codec.config.mcep_order
    content = rvq_decode(tokens.content, codec.content_codebooks)
    acoustic = rvq_decode(tokens.acoustic, codec.acoustic_codebooks) / codec.acoustic_weights
    diff = (content + acoustic[:, :m] - feats.content_input())[:, : min(MCD_ORDER, m)]
    level = feats.mcep[:, 0] * (20.0 / np.log(10.0))  # c0 is ln amplitude -> dB
    speech = level >= level.max() - MCD_SPEECH_RANGE_DB
    return float((_DB * np.sqrt(2.0 * np.sum(diff**2, axis=1)))[speech].mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-train", type=int, default=200, help="SynthDub train utterances")
    ap.add_argument("--n-test", type=int, default=60, help="SynthDub test GRID utterances")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--f0-method", default="harvest", choices=["harvest", "dio"])
    ap.add_argument("--vtl", default="0.9,1.0,1.1", help="training VTL warp factors")
    ap.add_argument("--iters", type=int, default=15, help="Lloyd iterations per stage")
    ap.add_argument("--max-frames", type=int, default=120_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world-5ms", action="store_true", help="also score pyworld's 5 ms WORLD")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        help=f"reuse synthesized audio here (e.g. {Path(tempfile.gettempdir()) / 'dubcli_codec'})",
    )
    ap.add_argument("--save-codec", type=Path, help="write the trained codec here")
    ap.add_argument("--save-audio", type=Path, help="write test wavs (per system) here")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    train_specs = synth.make_specs(args.n_train, args.seed, "train")
    test_specs = grid_test_specs(args.n_test, args.seed)
    seen = {s.speaker for s in train_specs} & {s.speaker for s in test_specs}
    if seen:
        raise SystemExit(f"test speakers also in train: {sorted(seen)}")
    train = render(train_specs, args.cache_dir)
    test = render(test_specs, args.cache_dir)
    t_corpus = time.perf_counter() - t0
    train_sec = sum(len(w) for w in train) / SAMPLE_RATE
    test_sec = sum(len(w) for w in test) / SAMPLE_RATE
    print(
        f"corpus: {len(train)} train utts ({train_sec:.0f} s), {len(test)} test utts "
        f"({test_sec:.0f} s) in {t_corpus:.0f} s",
        file=sys.stderr,
    )

    config = WorldCodecConfig(vocab=args.vocab, f0_method=args.f0_method)
    t0 = time.perf_counter()
    codec = train_world_codec(
        train,
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

    recognizer = PocketsphinxRecognizer(grammar="grid")
    systems = ["original", "world", "codec"] + (["world-5ms"] if args.world_5ms else [])
    hyps: dict[str, list[str]] = {s: [] for s in systems}
    trips: dict[str, list] = {s: [] for s in systems if s != "original"}
    feat_mcd, t_enc, t_dec = [], 0.0, 0.0
    t0 = time.perf_counter()
    for i, (spec, wav) in enumerate(zip(test_specs, test, strict=True)):
        ref = analyze_for(wav, config)
        t1 = time.perf_counter()
        tokens = codec.encode(wav)
        t2 = time.perf_counter()
        out = codec.decode(tokens).astype(np.float64)
        t_dec += time.perf_counter() - t2
        t_enc += t2 - t1
        feat_mcd.append(quantization_mcd(codec, utterance_features(ref, config), tokens))
        outs = {"original": wav, "world": world_synthesize(ref.f0, ref.sp, ref.ap), "codec": out}
        if args.world_5ms:
            outs["world-5ms"] = world_5ms(wav)
        for name, y in outs.items():
            hyps[name].append(recognizer.transcribe(y))
            if name != "original":
                trips[name].append(compare(ref, analyze_for(y, config)))
            if args.save_audio:
                args.save_audio.mkdir(parents=True, exist_ok=True)
                sf.write(args.save_audio / f"{i:03d}_{spec.speaker}_{name}.wav", y, SAMPLE_RATE)
    print(f"scored in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    refs = [s.text for s in test_specs]
    result = {
        "n_train": len(train),
        "n_test": len(test),
        "train_audio_seconds": round(train_sec, 1),
        "test_audio_seconds": round(test_sec, 1),
        "train_speakers": len({s.speaker for s in train_specs}),
        "test_speakers": sorted({s.speaker for s in test_specs}),
        "vocab": args.vocab,
        "f0_method": args.f0_method,
        "synth_seconds": round(t_corpus, 1),
        "train_seconds": round(t_train, 1),
        "codec_feature_mcd_db": float(np.mean(feat_mcd)),
        "encode_rtf": t_enc / test_sec,
        "decode_rtf": t_dec / test_sec,
        "load_average": os.getloadavg()[0],
        "systems": {s: score(trips.get(s, []), refs, hyps[s]) for s in systems},
        "by_voice": by_voice(test_specs, trips, hyps, systems),
    }
    print_table(result)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return result


def score(trips: list, refs: list[str], hyps: list[str]) -> dict:
    """Mean round-trip metrics (None for the original) and corpus WER with its S / D / I."""
    w = corpus_wer(refs, hyps)
    out = {k: (float(np.mean([getattr(t, k) for t in trips])) if trips else None) for k in METRICS}
    return {**out, "wer": w.wer, "sub": w.substitutions, "del": w.deletions, "ins": w.insertions}


def by_voice(specs, trips: dict, hyps: dict, systems: list[str]) -> dict:
    """Per base voice: utterances, whether the voice is test-only, codec MCD, WER per system."""
    out = {}
    for voice in sorted({s.voice for s in specs}):
        idx = [i for i, s in enumerate(specs) if s.voice == voice]
        refs = [specs[i].text for i in idx]
        out[voice] = {
            "n": len(idx),
            "unseen_voice": VOICES[voice].test_only,
            "codec_mcd_db": float(np.mean([trips["codec"][i].mcd_db for i in idx])),
            "wer": {s: corpus_wer(refs, [hyps[s][i] for i in idx]).wer for s in systems},
        }
    return out


def print_table(r: dict) -> None:
    print(
        f"\nworld codec round trip: {r['n_test']} SynthDub test GRID utts "
        f"({len(r['test_speakers'])} unseen speakers, {r['test_audio_seconds']:.0f} s); "
        f"codebooks {r['vocab']} x 5 trained on {r['n_train']} train utts "
        f"({r['train_speakers']} speakers, {r['train_audio_seconds']:.0f} s); F0 {r['f0_method']}"
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
    print(head + "   S/D/I")
    print("-" * (len(head) + 8))
    for name, s in r["systems"].items():
        cells = []
        for _, key, fmt in cols:
            width = int(fmt.split(".")[0])
            cells.append(format(s[key], fmt) if s[key] is not None else f"{'-':>{width}}")
        print(f"{name:<12}" + "".join(cells) + f"   {s['sub']}/{s['del']}/{s['ins']}")
    print(f"codec feature-domain MCD (quantization only): {r['codec_feature_mcd_db']:.2f} dB")
    print(
        f"encode RTF {r['encode_rtf']:.3f}, decode RTF {r['decode_rtf']:.3f} "
        f"(wall clock, load average {r['load_average']:.1f}); training {r['train_seconds']} s"
    )
    systems = list(r["systems"])
    print(f"\n{'voice':<8}{'n':>4}  {'codec MCD':>9}  " + "".join(f"{s:>11}" for s in systems))
    for voice, v in r["by_voice"].items():
        name = voice + ("*" if v["unseen_voice"] else "")
        wers = "".join(f"{v['wer'][s]:>11.3f}" for s in systems)
        print(f"{name:<8}{v['n']:>4}  {v['codec_mcd_db']:>9.2f}  {wers}")
    print("(WER per voice; * = voice never in train, others: unseen VTL / F0 perturbations)")


if __name__ == "__main__":
    main()
