"""Dubbing speed per stage and peak memory vs input length (issue 6), baseline engine, this CPU.

    nice python benchmarks/dub_speed.py                 # 60 s clip + 1 vs 20 minute memory runs
    nice python benchmarks/dub_speed.py --long-minutes 5 --skip-speed
    nice python benchmarks/dub_speed.py --skip-speed --engine diflow --cues 40   # default model

1. Speed: a 60 s talking clip (skimage's astronaut, jaw opened with a syllable-rate envelope,
   320x240, stereo audio: centre speech + a side tone) with 20 cues of 2 s (40 s of dub), dubbed
   with `--background duck`. Each stage's seconds come from the report (`timings`): decode (video
   frames for the cue windows), landmarks (FaceMesh), features, engine (espeak-ng + WORLD), voices
   (reference analysis), mix (timeline + background + loudness, two passes), mux. RTF = stage
   seconds / clip seconds.
2. Memory: lavfi clips (testsrc 160x120 + stereo sine) of 1 and N minutes with the same cues
   (5, or --cues) spread evenly across each; every dub runs in a fresh subprocess that reports its peak RSS
   (resource.getrusage(RUSAGE_SELF).ru_maxrss), next to a process that only loads what a dub
   loads (g2p, FaceMesh, WORLD). Bounded memory means the two dub peaks are about equal although
   the long input is N times longer. (ffmpeg runs in its own processes, streaming; RUSAGE_CHILDREN
   is not used: a forked child's maxrss starts at the parent's size, so it measures nothing.)
Each child runs in a new interpreter, so import costs (g2p/nltk ~4 s, mediapipe) count once.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)

SENTENCES = [
    "We sailed along the river at dawn.",
    "The market was busy with traders.",
    "Nobody expected the storm that night.",
    "She opened the letter very slowly.",
    "Our team finished the bridge on time.",
]


def srt(cues) -> str:
    def ts(x):
        h, m, s = int(x // 3600), int(x % 3600 // 60), x % 60
        return f"{h:02d}:{m:02d}:{int(s):02d},{round(s % 1 * 1000):03d}"

    return "\n".join(f"{i}\n{ts(a)} --> {ts(b)}\n{t}\n" for i, (a, b, t) in enumerate(cues, 1))


def talking_clip(path: Path, seconds: float) -> Path:
    import cv2
    import numpy as np
    from skimage import data

    from dubcli.engines.baseline import espeak_wav
    from dubcli.media import write_video

    w, h, sr = 320, 240, 16_000
    photo = data.astronaut()
    a = cv2.getRotationMatrix2D((225.0, 125.0), 0, 1.0)
    a[:, 2] += np.array([w / 2, h / 2]) - np.array([225.0, 125.0])
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    weight = np.clip((yy - 141) / 8, 0, 1) * np.clip((215 - yy) / 25, 0, 1)
    weight *= np.exp(-0.5 * ((xx - 223) / 28) ** 2)
    nv = int(seconds * 25)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(nv) / 25)  # 4 syllables per second

    def frames():
        for k in range(nv):
            mouth = cv2.remap(photo, xx, yy - 10 * env[k] * weight, cv2.INTER_LINEAR)
            yield cv2.warpAffine(mouth, a, (w, h))

    speech = espeak_wav(" ".join(SENTENCES))
    voice = np.resize(speech, int(seconds * sr))
    tone = 0.05 * np.sin(2 * np.pi * 1250 * np.arange(len(voice)) / sr)
    audio = np.stack([0.5 * voice + tone, 0.5 * voice - tone], axis=1)
    return write_video(frames(), path, audio=audio, sample_rate=sr)


def lavfi_clip(path: Path, seconds: float) -> Path:
    from dubcli.media import run_ffmpeg

    run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds}",
        "-af", "pan=stereo|c0=c0|c1=-1*c0", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", str(path), target=path, what="make a clip",
    )  # fmt: skip
    return path


def child(spec: dict) -> None:
    """Run one dub in this (fresh) process and print timings + peak memory as JSON.
    spec {"imports_only": true}: load what a dub loads (g2p, FaceMesh, WORLD) and stop."""
    if spec.get("imports_only"):
        import numpy as np

        from dubcli.dubbing.pipeline import dub_video  # noqa: F401
        from dubcli.engines import baseline
        from dubcli.text.g2p import text_to_phonemes
        from dubcli.vision.landmarks import track_faces

        text_to_phonemes("hello")
        track_faces([np.zeros((64, 64, 3), np.uint8)])
        baseline.analyze(baseline.espeak_wav("hello there"))
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"wall": 0.0, "timings": {}, "duration": 0.0, "maxrss_mb": kb / 1024}))
        return
    from dubcli.dubbing.pipeline import dub_video

    t = time.perf_counter()
    res = dub_video(spec["video"], spec["subs"], refs=spec["refs"], out_dir=spec["out"],
                    background=spec["background"], force=True,
                    engine=spec.get("engine"))  # fmt: skip
    wall = time.perf_counter() - t
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "timings": res.report.timings,
                      "duration": res.report.input["duration"], "maxrss_mb": kb / 1024}))  # fmt: skip


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--long-minutes", type=float, default=20.0)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument(
        "--engine",
        choices=["baseline", "diflow"],
        default="baseline",
        help="engine of the memory runs (the speed run uses the default rule)",
    )
    ap.add_argument("--cues", type=int, default=5, help="cues of each memory run")
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))

    from dubcli.audio.io import save_audio
    from dubcli.engines.baseline import espeak_wav

    with tempfile.TemporaryDirectory(prefix="dubbench-") as td:
        root = Path(td)
        ref = save_audio(root / "ref.wav", espeak_wav(" ".join(SENTENCES[:3]), "en-us+f3"))
        if not args.skip_speed:
            t = time.perf_counter()
            clip = talking_clip(root / "talk60.mp4", 60.0)
            print(f"made the 60 s clip in {time.perf_counter() - t:.1f} s")
            cues = [(1.0 + 3 * i, 3.0 + 3 * i, SENTENCES[i % 5]) for i in range(20)]
            (root / "talk60.srt").write_text(srt(cues))
            r = run_child({"video": str(clip), "subs": str(root / "talk60.srt"),
                           "refs": [str(ref)], "out": str(root / "o60"), "background": "duck"})  # fmt: skip
            print(f"\n60 s clip, 20 cues (40 s of dub), duck: wall {r['wall']:.1f} s "
                  f"(RTF {r['wall'] / r['duration']:.3f})")  # fmt: skip
            print(f"{'stage':<10} {'seconds':>8} {'RTF':>7}")
            for stage, sec in r["timings"].items():
                print(f"{stage:<10} {sec:8.2f} {sec / r['duration']:7.3f}")
            total = sum(r["timings"].values())
            print(f"{'total':<10} {total:8.2f} {total / r['duration']:7.3f}")
        if not args.skip_memory:
            rows = [("imports", 0.0, run_child({"imports_only": True}))]
            for minutes in (1.0, args.long_minutes):
                seconds = minutes * 60
                t = time.perf_counter()
                clip = lavfi_clip(root / f"lav{minutes:g}.mp4", seconds)
                made = time.perf_counter() - t
                spread = (
                    (0.02, 0.25, 0.5, 0.75, 0.95)
                    if args.cues == 5
                    else (0.02 + 0.93 * k / max(1, args.cues - 1) for k in range(args.cues))
                )
                cues = [(f * seconds + 0.5, f * seconds + 2.5, SENTENCES[i % len(SENTENCES)])
                        for i, f in enumerate(spread)]  # fmt: skip
                subs = root / f"lav{minutes:g}.srt"
                subs.write_text(srt(cues))
                r = run_child({"video": str(clip), "subs": str(subs), "refs": [str(ref)],
                               "out": str(root / f"o{minutes:g}"), "background": "duck",
                               "engine": args.engine})  # fmt: skip
                rows.append((f"{minutes:g} min", made, r))
                shutil.rmtree(root / f"o{minutes:g}", ignore_errors=True)  # 20 min: ~250 MB
            print(f"\n{'input':>8} {'make s':>7} {'dub s':>7} {'peak RSS MB':>12}")
            for name, made, r in rows:
                print(f"{name:>8} {made:7.1f} {r['wall']:7.1f} {r['maxrss_mb']:12.0f}   "
                      f"{r['timings'] or '(imports + one tiny call of each stage)'}")  # fmt: skip


if __name__ == "__main__":
    main()
