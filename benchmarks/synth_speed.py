"""SynthDub speech generation speed per voice family (DESIGN 6).

    nice python benchmarks/synth_speed.py --n 12          # table on stderr
    nice python benchmarks/synth_speed.py --n 12 --json   # one JSON object on stdout

Each family renders `n` specs from make_specs (its voices, train and test splits mixed, so the
speakers include WORLD perturbations as in a real corpus) after one warm-up utterance (imports,
CMUdict, the festival process). Reports utterances/s and seconds of audio per second of wall time
(the real-time factor's inverse), single process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)

from dubcli.synth.speech import make_specs, synthesize
from dubcli.synth.voices import VOICES

FAMILIES = {
    "mbrola (us1 us2 us3 en1)": ["us1", "us2", "us3", "en1"],
    "festival diphone (kal ked)": ["kal", "ked"],
    "festival HTS (slt)": ["slt"],
}


def bench(voices: list[str], n: int, seed: int) -> dict:
    train = [v for v in voices if not VOICES[v].test_only]
    test = [v for v in voices if VOICES[v].test_only]
    specs = []
    if train:
        specs += make_specs(n - n // 3 if test else n, seed, "train", voices=train)
    if test:
        specs += make_specs(n // 3 if train else n, seed, "test", voices=test)
    synthesize(specs[0])  # warm-up
    t0 = time.perf_counter()
    audio = 0.0
    perturbed = 0
    for spec in specs:
        audio += synthesize(spec).duration
        perturbed += "+vtl" in spec.speaker
    wall = time.perf_counter() - t0
    return {
        "utterances": len(specs),
        "with_vtl_warp": perturbed,
        "wall_s": round(wall, 3),
        "audio_s": round(audio, 3),
        "utt_per_s": round(len(specs) / wall, 3),
        "audio_s_per_wall_s": round(audio / wall, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="utterances per family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args(argv)
    results = {name: bench(voices, args.n, args.seed) for name, voices in FAMILIES.items()}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'family':28} {'utts':>5} {'utt/s':>7} {'audio s / wall s':>17}", file=sys.stderr)
        for name, r in results.items():
            print(
                f"{name:28} {r['utterances']:>5} {r['utt_per_s']:>7.2f} "
                f"{r['audio_s_per_wall_s']:>17.2f}",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
