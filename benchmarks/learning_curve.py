"""Learning curve of a training run: WER GRID (and content accuracy) against training minutes.

Every step checkpoint kept in RUN (`ckpt-<step>.safetensors`; set `keep_last_k` high enough in
the recipe) is exported and evaluated on the first K utterances of a prepared split with
`dubcli eval` (Setting 2, NFE 8, WER only). Minutes are wall-clock from the run's start (the
run.json file) to the checkpoint's write, validation included.

    python benchmarks/learning_curve.py runs/tts runs/dub --split corpus/test --limit 60
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def main() -> None:
    from dubcli.eval.runner import evaluate
    from dubcli.train.export import export_inference
    from dubcli.train.state import list_checkpoints

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders")
    ap.add_argument("--split", required=True, help="prepared split, e.g. corpus/test")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--nfe", type=int, default=8)
    ap.add_argument("--every", type=int, default=1, help="evaluate every k-th checkpoint")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    rows = []
    print("run | step | minutes | WER GRID % | WER % | utterances", flush=True)
    for run in args.runs:
        start = (run / "run.json").stat().st_mtime
        ckpts = list_checkpoints(run)[:: args.every]
        for step, path in ckpts:
            minutes = (path.stat().st_mtime - start) / 60
            with tempfile.TemporaryDirectory() as tmp:
                model = export_inference(path, Path(tmp) / "model.safetensors")
                res = evaluate(str(model), args.split, setting=2, nfe=args.nfe, limit=args.limit,
                               metrics="wer", out_dir=Path(tmp) / "eval", device="cpu",
                               offline=True)  # fmt: skip
            s = next(iter(res.summary.values()))
            row = {"run": str(run), "step": step, "minutes": round(minutes, 1),
                   "wer_grid": (s.get("wer_grid") or {}).get("wer"),
                   "wer": (s.get("wer") or {}).get("wer"), "n": s.get("utterances")}  # fmt: skip
            rows.append(row)
            print(f"{run} | {step} | {row['minutes']} | {_pct(row['wer_grid'])} | "
                  f"{_pct(row['wer'])} | {row['n']}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


if __name__ == "__main__":
    main()
