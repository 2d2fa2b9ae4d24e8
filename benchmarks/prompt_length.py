"""Issue 15: what the reference prompt's length costs and buys when the voice sample is long.

    python benchmarks/prompt_length.py SPLIT [--checkpoint C] [--lengths 4,2.5,2] [--limit K]

A real dub's voice sample is usually longer than the prompt window (reference.PROMPT_S), while
`dubcli eval`'s Setting 2 references are single utterances (SynthDub: 2.2 s median), so eval
does not see the window's length. Here every GRID sentence of SPLIT is dubbed with a long
reference, the speaker's OTHER utterances of the split concatenated (SynthDub test splits: 3 x
~2.3 s), cut to each prompt length in turn: WER GRID (pocketsphinx, GRID grammar), SECS against
that reference, and the seconds `Dubber.dub` took (one cue at a time, generation + decode).
Same seeds for every length, so the rows differ only by the prompt.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def main() -> None:
    from dubcli.data.manifest import load_split
    from dubcli.eval.groundtruth import GroundTruth
    from dubcli.eval.scoring import is_grid_sentence
    from dubcli.eval.secs import secs_batch
    from dubcli.eval.wer import PocketsphinxRecognizer, corpus_wer
    from dubcli.inference import Dubber
    from dubcli.timing import SAMPLE_RATE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", help="prepared split with several utterances per speaker")
    ap.add_argument("--checkpoint", default=None, help="default: the registry default")
    ap.add_argument("--lengths", default="4,2.5,2", help="prompt lengths in seconds")
    ap.add_argument("--limit", type=int, default=None, help="first K GRID sentences")
    args = ap.parse_args()

    root, utts = load_split(args.split)
    gt = GroundTruth(root, {})
    by_speaker = defaultdict(list)
    for u in utts:
        by_speaker[u.speaker].append(u)
    grid = [u for u in utts if is_grid_sentence(u.text) and len(by_speaker[u.speaker]) > 1]
    grid = grid[: args.limit]
    dubber = Dubber.load(args.checkpoint, offline=True, device="cpu")
    rec = PocketsphinxRecognizer(grammar="grid")
    refs = {u.id: np.concatenate([gt.audio(o) for o in by_speaker[u.speaker] if o.id != u.id])
            for u in grid}  # fmt: skip
    mean_ref = np.mean([len(r) for r in refs.values()]) / SAMPLE_RATE
    print(f"{len(grid)} GRID sentences, references {mean_ref:.1f} s on average", flush=True)
    print("prompt s | WER GRID % | SECS | dub seconds", flush=True)
    for seconds in (float(x) for x in args.lengths.split(",")):
        hyps, pairs, took = [], [], 0.0
        for k, u in enumerate(grid):
            prompt = dubber.reference(refs[u.id], prompt_s=seconds)
            lip, face, _ = gt.features(u)
            t = time.perf_counter()
            out = dubber.dub(u.phonemes, lip, face, prompt, nfe=8, seed=k)
            took += time.perf_counter() - t
            hyps.append(rec.transcribe(out.wav))
            pairs.append((out.wav, refs[u.id]))
        wer = corpus_wer([u.text for u in grid], hyps).wer
        secs = float(secs_batch(pairs).mean())
        print(f"{seconds} | {100 * wer:.1f} | {secs:.3f} | {took:.1f}", flush=True)


if __name__ == "__main__":
    main()
