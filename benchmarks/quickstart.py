"""The README quickstart, timed the way a user meets it (issue 8): a fresh process runs

    dubcli dub examples/clip.mp4 --text examples/clip.srt --ref examples/voice.wav

on copies of the examples (so examples/ stays clean), with the bundled default model and no
network (HF_HUB_OFFLINE=1). Reports the wall time of the whole command (interpreter start,
imports, model load, everything), the stage timings from the report, and two real-time factors
over the clip's length: end to end (wall) and generation alone (the model's token sampling, the
paper's RTF basis, summed over cues from `model_seconds`).

    nice python benchmarks/quickstart.py [--runs 3] [--nfe 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def one_run(nfe: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("clip.mp4", "clip.srt", "voice.wav"):
            shutil.copy(EXAMPLES / name, tmp)
        cmd = [sys.executable, "-m", "dubcli", "-q", "dub", f"{tmp}/clip.mp4", "--text",
               f"{tmp}/clip.srt", "--ref", f"{tmp}/voice.wav", "--nfe", str(nfe)]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("DUBCLI_REGISTRY", None)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - t
        report = json.loads((Path(tmp) / "clip.report.json").read_text())
    duration = report["input"]["duration"]
    model = sum(c["model_seconds"] or 0.0 for c in report["cues"])
    speech = sum(c["audio_seconds"] for c in report["cues"])
    return {"wall_s": wall, "duration_s": duration, "engine": report["engine"]["name"],
            "checkpoint": report["engine"]["checkpoint"], "timings": report["timings"],
            "model_s": model, "speech_s": speech, "rtf_e2e": wall / duration,
            "rtf_gen": model / speech}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nfe", type=int, default=8)
    args = ap.parse_args()
    runs = [one_run(args.nfe) for _ in range(args.runs)]
    for k, r in enumerate(runs, 1):
        stages = ", ".join(f"{s} {v:.2f}" for s, v in r["timings"].items())
        print(f"run {k}: wall {r['wall_s']:.1f} s for a {r['duration_s']:.1f} s clip "
              f"(RTF e2e {r['rtf_e2e']:.2f}); generation {r['model_s']:.2f} s for "
              f"{r['speech_s']:.2f} s of speech (RTF gen {r['rtf_gen']:.3f}); stages: {stages}")  # fmt: skip
    best = min(runs, key=lambda r: r["wall_s"])
    print(f"engine {best['engine']} ({best['checkpoint'] or 'registry default'}), NFE {args.nfe}; "
          f"best wall {best['wall_s']:.1f} s, median "
          f"{sorted(r['wall_s'] for r in runs)[len(runs) // 2]:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
