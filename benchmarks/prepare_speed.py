"""`dubcli prepare` throughput per stage: seconds of processing per second of video (DESIGN 9).

    nice python benchmarks/prepare_speed.py --n 8          # table on stderr
    nice python benchmarks/prepare_speed.py --n 8 --json   # one JSON object on stdout

Two runs, single process, full-size `world` codec (1024 codes, harvest F0):
1. synth layout with --render: stages synth (speech), face (landmark trajectories), features,
   render (mp4 writing, only with --render), codec (encode). The codebooks are fit first on the
   same utterances; that one-off cost is reported apart ("codec_setup"), not per second.
2. pairs layout over the rendered mp4s + .txt transcripts, reusing those codebooks: stages
   decode (ffmpeg frames + audio), landmarks (FaceMesh tracking), features, alignment (g2p +
   pocketsphinx), codec.
A number below 1.0 is faster than real time on one core of this machine. Process start-up and
model loading (mediapipe, pocketsphinx, CMUdict) fall in the first item's stages, as they would
in any real run of a few items; with many items they amortize.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)

from dubcli.data.manifest import read_manifest
from dubcli.prepare.run import prepare


def _per_video_second(res) -> dict[str, float]:
    secs = max(res.audio_seconds, 1e-9)
    stages = {k: v / secs for k, v in res.stage_seconds.items() if k != "codec_setup"}
    stages["total (wall)"] = (res.seconds - res.stage_seconds.get("codec_setup", 0.0)) / secs
    return {k: round(v, 4) for k, v in stages.items()}


def bench(n: int, seed: int, root: Path) -> dict:
    t = time.perf_counter()
    synth = prepare("synth", None, root / "synth", n=n, seed=seed, render=True, codec_items=n)
    out = {
        "n": n,
        "video_seconds": synth.audio_seconds,
        "codec_fit_seconds": synth.stage_seconds.get("codec_setup", 0.0),
        "synth": _per_video_second(synth),
    }
    pairs = root / "pairs"
    pairs.mkdir()
    for u in read_manifest(root / "synth/manifest.jsonl"):
        shutil.copy(root / "synth" / u.source["video"], pairs / f"{u.id}.mp4")
        (pairs / f"{u.id}.txt").write_text(u.text + "\n", encoding="utf-8")
    res = prepare("pairs", pairs, root / "pairs_out", codec=root / "synth/codec.safetensors")
    out["pairs"] = _per_video_second(res)
    out["pairs_failed"] = len(res.failures)
    out["wall_seconds"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="SynthDub utterances")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="prepare_speed.") as tmp:
        res = bench(args.n, args.seed, Path(tmp))
    if args.json:
        print(json.dumps(res))
        return
    err = sys.stderr
    print(f"{res['n']} utterances, {res['video_seconds']:.1f} s of video; codebook fit "
          f"{res['codec_fit_seconds']:.1f} s (once)", file=err)  # fmt: skip
    for layout in ("synth", "pairs"):
        print(f"\n{layout}: seconds of processing per second of video", file=err)
        for stage, v in res[layout].items():
            print(f"  {stage:<14} {v:8.3f}", file=err)
    if res["pairs_failed"]:
        print(f"\n(pairs: {res['pairs_failed']} items failed)", file=err)


if __name__ == "__main__":
    main()
