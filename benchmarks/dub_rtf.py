"""Issue 15: dub speed per stage, real-time factor and peak memory, default model vs baseline.

    nice python benchmarks/dub_rtf.py                          # both engines, quiet
    nice python benchmarks/dub_rtf.py --contended              # + one CPU-bound competitor
    nice python benchmarks/dub_rtf.py --engines diflow --compare /work/main   # A/B two trees

Peak memory against input length (1 vs 20 minutes): benchmarks/dub_speed.py --skip-speed
(--engine diflow for the default model).

The clip: examples/clip.mp4 (5.45 s, 3 cues) looped 11 times = 60 s, 33 cues, its subtitles
shifted per loop; voice examples/voice.wav; default model, NFE 8 (`--nfe 8 4`: a row per
value; `--checkpoint` another model). Every dub runs in a fresh interpreter (imports and model
load count), with --force, and reports the report's per-stage seconds, the wall time, start-up
(process start to the first cue's work: imports + plan + voices, which holds the engine's load)
and peak RSS (ru_maxrss of that process). `--compare
TREE` runs the same children with PYTHONPATH=TREE too, alternating, so two code versions are
measured back to back on the same (possibly loaded) machine. `--contended` runs each dub again
next to `python -c "while True: pass"`. Token generation per second of speech: the sum of the
cues' model_seconds over the cues' audio seconds. The per-stage seconds overlap: cues are
prepared (decode, landmarks, features) on other threads, beside the engine or between its
calls (dubbing/schedule.py); `cue wait` is the engine's time waiting for them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOPS = 11


def loop_clip(root: Path, loops: int = LOOPS) -> tuple[Path, Path]:
    """examples/clip.mp4 + .srt looped `loops` times -> (video, subtitles) in root."""
    from dubcli.media import probe, run_ffmpeg
    from dubcli.text.subtitles import Cue, read_cues, write_srt

    src = ROOT / "examples" / "clip.mp4"
    dur = probe(src).duration
    out = root / f"loop{loops}.mp4"
    run_ffmpeg("-stream_loop", str(loops - 1), "-i", str(src), "-c:v", "libx264", "-preset",
               "ultrafast", "-c:a", "aac", "-y", str(out), target=out, what="loop the clip")  # fmt: skip
    cues = read_cues(ROOT / "examples" / "clip.srt")
    looped = [Cue(k * len(cues) + c.index, c.start + k * dur, c.end + k * dur, c.text)
              for k in range(loops) for c in cues]  # fmt: skip
    subs = root / f"loop{loops}.srt"
    write_srt(looped, subs)
    return out, subs


def child(spec: dict) -> None:
    """One dub in this fresh process; prints timings, start-up and peak memory as JSON."""
    t_imp = time.time()
    from dubcli.dubbing.pipeline import dub_video

    t0 = time.time()
    res = dub_video(spec["video"], spec["subs"], refs=[spec["ref"]], out_dir=spec["out"],
                    engine=spec["engine"], nfe=spec.get("nfe", 8), force=True,
                    **({"checkpoint": spec["checkpoint"]} if spec.get("checkpoint") else {}))  # fmt: skip
    wall = time.time() - t0
    rep = res.report  # a DubReport (older trees: its JSON dict)
    rep = rep.to_json() if hasattr(rep, "to_json") else rep
    tim = rep["timings"]
    cues = rep["cues"]
    model_s = sum(c["model_seconds"] or 0.0 for c in cues)
    speech_s = sum(c["audio_seconds"] for c in cues)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "wall": wall, "process": time.time() - spec["t_launch"], "timings": tim,
        "duration": rep["input"]["duration"], "cues": len(cues), "speech_s": speech_s,
        "model_s": model_s, "maxrss_mb": kb / 1024, "imports": t0 - spec["t_launch"],
        "import_dubcli": t0 - t_imp,
        "startup": t0 - spec["t_launch"] + tim.get("plan", 0) + tim.get("voices", 0),
    }))  # fmt: skip


# The passive OpenMP waiting that dubcli's CLI set before torch loaded until CpuShare replaced it
# (dubcli/device.py); the children call dub_video, not the CLI, so it is applied here:
# `--policies cli` (default) as each tree's CLI would (the trees that define CPU_THREAD_ENV),
# `on` / `off` to every tree.
POLICY_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def cli_policy(tree: Path) -> bool:
    """Whether `tree`'s CLI sets POLICY_ENV (its dubcli/device.py defines CPU_THREAD_ENV)."""
    return "CPU_THREAD_ENV" in (tree / "dubcli" / "device.py").read_text()


def run_child(spec: dict, tree: Path, policy: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in POLICY_ENV}
    env |= {"PYTHONPATH": str(tree), **(POLICY_ENV if policy else {})}
    spec = {**spec, "t_launch": time.time()}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(label: str, r: dict) -> None:
    d = r["duration"]
    print(f"\n{label}: {r['cues']} cues, {r['speech_s']:.1f} s speech, clip {d:.1f} s")
    print(f"  process wall {r['process']:.1f} s (RTF {r['process'] / d:.3f}), dub_video "
          f"{r['wall']:.1f} s (RTF {r['wall'] / d:.3f}), peak RSS {r['maxrss_mb']:.0f} MB")  # fmt: skip
    print(f"  start-up to first cue {r['startup']:.2f} s (imports {r['imports']:.2f} s)")
    if r["model_s"]:
        print(f"  token generation {r['model_s']:.2f} s = "
              f"{r['model_s'] / max(r['speech_s'], 1e-9):.3f} s per s of speech")  # fmt: skip
    print("  " + "  ".join(f"{k} {v:.2f} ({v / d:.3f}x)" for k, v in r["timings"].items()))


class Competitor:
    """`python -c "while True: pass"` for the duration of a with block."""

    def __enter__(self):
        self.p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child")
    ap.add_argument("--engines", nargs="+", default=["diflow", "baseline"])
    ap.add_argument("--compare", type=Path, help="another checkout to measure back to back")
    ap.add_argument("--contended", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--nfe", type=int, nargs="+", default=[8], help="flow steps (diflow rows)")
    ap.add_argument("--checkpoint", help="the diflow rows' model (default: the bundled one)")
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["cli"],
        choices=["cli", "on", "off"],
        help="passive OpenMP waiting (POLICY_ENV): as each tree's CLI sets it / on / off",
    )
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))

    trees = [("this", ROOT)] + ([("compare", args.compare.resolve())] if args.compare else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="dubrtf-") as td:
        root = Path(td)
        video, subs = loop_clip(root)
        ref = ROOT / "examples" / "voice.wav"
        for rep in range(args.repeats):
            for load in ["quiet"] + (["contended"] if args.contended else []):
                runs = [(e, n) for e in args.engines for n in (args.nfe if e == "diflow" else [8])]
                for engine, nfe in runs:
                    for (name, tree), pol in itertools.product(trees, args.policies):
                        spec = {"video": str(video), "subs": str(subs), "ref": str(ref),
                                "out": str(root / "o"), "engine": engine, "nfe": nfe,
                                "checkpoint": args.checkpoint if engine == "diflow" else None}  # fmt: skip
                        with Competitor() if load == "contended" else contextlib.nullcontext():
                            on = cli_policy(tree) if pol == "cli" else pol == "on"
                            r = run_child(spec, tree, on)
                        steps = f" NFE {nfe}" if engine == "diflow" else ""
                        label = f"[{rep}] {engine}{steps} {name} ({tree}) policy {pol}, {load}"
                        show(label, r)
                        results.append({"label": label, **r})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
