"""Fault benchmark (issue 14): kill -9 at random moments of a dub and of a batch, then rerun;
pairs of concurrent runs on one output. Baseline engine, small generated clips, no network.

    nice python benchmarks/faults.py [--kills 20] [--pairs 10] [--seed 0]

Setup: a 4 s test clip with three cues and a reference voice (single dub), and a folder of three
such clips (batch); each is dubbed once cleanly (`--background duck`), twice, to check that a dub
is byte-reproducible. Then:

- kills: a fresh output folder, `dubcli dub` started, SIGKILL to the dubcli process (not its
  children) after uniform(0, clean wall time) seconds, then the same command rerun to the end.
  Checked: the children that were alive at the kill die with it (PR_SET_PDEATHSIG); the rerun
  exits 0; every final output (.dubbed.mp4, .dub.wav, .dub.srt byte for byte, the report's cues
  and loudness) equals the clean run's; no .part file, lock or work folder is left; and in the
  batch, no item whose report was complete at the kill is redone (its status is "skipped").
- pairs: two identical runs started together on one output folder. Checked: both exit 0, no
  "internal error", one "done" and one "skipped" (the second waited on the lock), one result
  equal to the clean run's, nothing left behind.

Prints one line per trial and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRT = ("1\n00:00:00,200 --> 00:00:01,200\nHello over there.\n\n"
       "2\n00:00:01,400 --> 00:00:02,400\nWe go down to the river.\n\n"
       "3\n00:00:02,600 --> 00:00:03,600\nGood bye now.\n")  # fmt: skip
RESULTS = (".dubbed.mp4", ".dub.wav", ".dub.srt")


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    e.pop("DUBCLI_FFMPEG", None)
    return e


def make_inputs(root: Path) -> tuple[Path, Path, Path]:
    """(clip, reference, batch folder) in root."""
    sys.path.insert(0, str(REPO))
    from dubcli import media
    from dubcli.audio.io import save_audio
    from dubcli.engines.baseline import espeak_wav

    clip = media.make_test_video(root / "clip.mp4", 4.0, size=(96, 64))
    (root / "clip.srt").write_text(SRT)
    ref = save_audio(root / "ref.wav", espeak_wav("A reference voice, speaking slowly and "
                                                  "clearly, for the fault benchmark."))  # fmt: skip
    batch = root / "batch"
    batch.mkdir()
    for name, hz in (("a", 330.0), ("b", 550.0), ("c", 770.0)):
        media.make_test_video(batch / f"{name}.mp4", 4.0, size=(96, 64), tone_hz=hz)
        (batch / f"{name}.srt").write_text(SRT)
    return clip, ref, batch


def command(target: Path, ref: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dubcli", "-q", "dub", str(target), "--ref", str(ref), "-o",
            str(out), "--engine", "baseline", "--background", "duck", "--json"]  # fmt: skip


def digest(out: Path) -> dict[str, str]:
    """base -> hash of its three results and of the report's cues and loudness."""
    found = {}
    for report in sorted(out.glob("*.report.json")):
        base = report.name[: -len(".report.json")]
        r = json.loads(report.read_text())
        h = hashlib.sha256(json.dumps([r.get("complete"), r.get("cues"), r.get("loudness")],
                                      sort_keys=True).encode())  # fmt: skip
        for suffix in RESULTS:
            p = out / f"{base}{suffix}"
            h.update(p.read_bytes() if p.exists() else b"<missing>")
        found[base] = h.hexdigest()
    return found


def leftovers(out: Path) -> list[str]:
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir()
                  if ".part" in p.name or p.name.endswith((".dublock", ".dubwork")))  # fmt: skip


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                kids = []
            out += kids
            todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def finished_items(out: Path) -> set[str]:
    done = set()
    for report in out.glob("*.report.json") if out.exists() else []:
        try:
            if json.loads(report.read_text()).get("complete") is True:
                done.add(report.name[: -len(".report.json")])
        except ValueError:
            pass
    return done


def run_clean(target: Path, ref: Path, out: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    subprocess.run(command(target, ref, out), env=env(), check=True, capture_output=True)
    return time.perf_counter() - t, digest(out)


def kill_trial(target: Path, ref: Path, out: Path, delay: float, clean: dict) -> dict:
    proc = subprocess.Popen(command(target, ref, out), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    kids = descendants(proc.pid)
    landed = proc.poll() is None
    if landed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while any(alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.05)
    orphans = [k for k in kids if alive(k)]
    at_kill = {"finished": sorted(finished_items(out)), "parts": len(leftovers(out))}
    res = subprocess.run(command(target, ref, out), env=env(), capture_output=True, text=True)
    doc = json.loads(res.stdout) if res.stdout.strip() else {}
    items = doc.get("items", [doc])
    status = {Path(i["outputs"]["report"]).name[: -len(".report.json")]: i["status"]
              for i in items if i.get("outputs")}  # fmt: skip
    redone = [b for b in at_kill["finished"] if status.get(b) != "skipped"]
    return {"delay": round(delay, 2), "landed": landed, "children_at_kill": len(kids),
            "orphans": len(orphans), "finished_at_kill": at_kill["finished"],
            "leftovers_at_kill": at_kill["parts"], "rerun_rc": res.returncode,
            "rerun_status": status, "identical": digest(out) == clean,
            "left": leftovers(out), "redone_finished": redone,
            "internal_error": "internal error" in res.stderr}  # fmt: skip


def pair_trial(target: Path, ref: Path, out: Path, clean: dict) -> dict:
    procs = [subprocess.Popen(command(target, ref, out), env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate() for p in procs]
    statuses = sorted(json.loads(o)["status"] if o.strip() else "none" for o, _ in outs)
    return {"rcs": [p.returncode for p in procs], "statuses": statuses,
            "crash": any("internal error" in e for _, e in outs),
            "identical": digest(out) == clean, "left": leftovers(out)}  # fmt: skip


def ok_kill(t: dict, n_items: int) -> bool:
    return (t["orphans"] == 0 and t["rerun_rc"] == 0 and t["identical"] and not t["left"]
            and not t["redone_finished"] and not t["internal_error"]
            and len(t["rerun_status"]) == n_items)  # fmt: skip


def ok_pair(t: dict) -> bool:
    return (t["rcs"] == [0, 0] and not t["crash"] and t["identical"] and not t["left"]
            and t["statuses"] == ["done", "skipped"])  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kill -9 trials each for dub and batch")
    ap.add_argument("--pairs", type=int, default=10, help="pairs of concurrent runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write every trial here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="dubcli-faults-") as tmp:
        root = Path(tmp)
        clip, ref, batch = make_inputs(root)
        wall = {}
        clean = {}
        for name, target, n in (("dub", clip, 1), ("batch", batch, 3)):
            w1, d1 = run_clean(target, ref, root / f"clean-{name}")
            w2, d2 = run_clean(target, ref, root / f"clean2-{name}")
            assert d1 == d2 and len(d1) == n, f"{name}: a clean dub is not reproducible"
            wall[name], clean[name] = max(w1, w2), d1
            print(f"clean {name}: {n} item(s), {w1:.1f} s and {w2:.1f} s, identical outputs")
        trials: dict[str, list] = {"dub": [], "batch": [], "pairs": []}
        for name, target, n in (("dub", clip, 1), ("batch", batch, 3)):
            for k in range(args.kills):
                delay = rng.uniform(0.0, wall[name])
                t = kill_trial(target, ref, root / f"{name}-kill-{k}", delay, clean[name])
                good = ok_kill(t, n)
                failures += not good
                trials[name].append(t)
                print(f"{name} kill {k + 1:2d}: at {t['delay']:5.2f} s "
                      f"{'(killed)' if t['landed'] else '(had finished)'}, "
                      f"{t['children_at_kill']} child(ren), {len(t['finished_at_kill'])} "
                      f"finished item(s), {t['leftovers_at_kill']} leftover(s) -> rerun "
                      f"{t['rerun_status']} {'ok' if good else 'FAILED ' + json.dumps(t)}")  # fmt: skip
        for k in range(args.pairs):
            t = pair_trial(clip, ref, root / f"pair-{k}", clean["dub"])
            good = ok_pair(t)
            failures += not good
            trials["pairs"].append(t)
            print(
                f"pair {k + 1:2d}: exit {t['rcs']}, {t['statuses']} "
                f"{'ok' if good else 'FAILED ' + json.dumps(t)}"
            )
        print()
        for name, n in (("dub", 1), ("batch", 3)):
            ts = trials[name]
            print(f"{name}: {len(ts)} kill -9 trials ({sum(t['landed'] for t in ts)} landed while "
                  f"running; {sum(bool(t['finished_at_kill']) for t in ts)} with finished items, "
                  f"{sum(t['leftovers_at_kill'] > 0 for t in ts)} with .part/lock/work left at "
                  f"the kill); children alive at the kill {sum(t['children_at_kill'] for t in ts)}"
                  f", orphaned {sum(t['orphans'] for t in ts)}; reruns exit 0: "
                  f"{sum(t['rerun_rc'] == 0 for t in ts)}/{len(ts)}; outputs identical to a clean "
                  f"run: {sum(t['identical'] for t in ts)}/{len(ts)}; leftovers after the rerun: "
                  f"{sum(len(t['left']) for t in ts)}; finished items redone: "
                  f"{sum(len(t['redone_finished']) for t in ts)}; all checks: "
                  f"{sum(ok_kill(t, n) for t in ts)}/{len(ts)}")  # fmt: skip
        ps = trials["pairs"]
        print(f"pairs: {len(ps)} pairs of concurrent runs; crashes {sum(t['crash'] for t in ps)}; "
              f"both exit 0: {sum(t['rcs'] == [0, 0] for t in ps)}/{len(ps)}; one done + one "
              f"skipped: {sum(t['statuses'] == ['done', 'skipped'] for t in ps)}/{len(ps)}; "
              f"one result identical to a clean run: {sum(t['identical'] for t in ps)}/{len(ps)}"
              f"; leftovers {sum(len(t['left']) for t in ps)}")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(trials, indent=1))
    print("all checks passed" if not failures else f"{failures} trial(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
