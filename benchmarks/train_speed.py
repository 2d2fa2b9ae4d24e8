"""Training speed: optimizer steps/s and target tokens/s for the tiny and small configs, both stages.

Writes a synthetic prepared dataset (random tokens with the real layout: vocab 1024, world-codec
speaker width 43, lmk-v1 lip/face widths, 2-4 s utterances with consistent durations), then
times `dubcli.train.run.train` end to end (data loading, forward, backward, AdamW) and reads
the speed from metrics.jsonl, leaving out the first window (start-up, imports, allocator).

    nice python benchmarks/train_speed.py --configs tiny small --steps 12 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np


def write_synthetic(root: Path, n: int = 48, seed: int = 0) -> Path:
    from dubcli.data.manifest import Utterance, append_manifest, write_dataset_info, write_shard
    from dubcli.text.phonemes import SYMBOLS, VOCAB_VERSION
    from dubcli.timing import tokens_for_frames
    from dubcli.vision.features import FACE_DIM, FEATURES_VERSION, LIP_DIM

    rng = np.random.default_rng(seed)
    utts, items = [], {}
    for k in range(n):
        nt = int(rng.integers(20, 40))
        dfr = rng.integers(1, 5, size=nt)
        fb = np.concatenate([[0], np.cumsum(dfr)])
        tb = np.array([tokens_for_frames(int(f)) for f in fb])
        nv, t = int(fb[-1]), int(tb[-1])
        uid = f"b{k:04d}"
        items[uid] = {
            "prosody": rng.integers(0, 1024, (1, t)).astype(np.int16),
            "content": rng.integers(0, 1024, (2, t)).astype(np.int16),
            "acoustic": rng.integers(0, 1024, (3, t)).astype(np.int16),
            "speaker": rng.normal(size=43).astype(np.float32),
            "lip": rng.normal(size=(nv, LIP_DIM)).astype(np.float16),
            "face": rng.normal(size=(nv, FACE_DIM)).astype(np.float16),
            "video_valid": np.ones(nv, np.uint8),
        }
        utts.append(Utterance(
            id=uid, split="train", speaker=f"s{k % 4}", text="x",
            phonemes=tuple(SYMBOLS[int(i)] for i in rng.integers(8, len(SYMBOLS), nt)),
            durations_frames=tuple(int(x) for x in dfr),
            durations_tokens=tuple(int(x) for x in np.diff(tb)), n_frames=nv, n_tokens=t,
            seconds=t / 80, shard="shards/b.safetensors",
            ref_ids=tuple(f"b{j:04d}" for j in range(k % 4, n, 4) if j != k),
        ))  # fmt: skip
    write_shard(root / "shards/b.safetensors", items)
    append_manifest(root / "manifest.jsonl", utts)
    write_dataset_info(root, {"features_version": FEATURES_VERSION, "vocab": 1024,
                              "phoneme_vocab": VOCAB_VERSION})  # fmt: skip
    return root


def speed(run: Path) -> tuple[float, float, float]:
    """(steps/s, tokens/s, last loss) over the metrics lines after the first."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [r for r in lines if r["split"] == "train"][1:]
    sps = float(np.mean([r["steps_per_s"] for r in lines]))
    tps = float(np.mean([r["tokens_per_s"] for r in lines]))
    return sps, tps, lines[-1]["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-tokens", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from dubcli.model.dubber import n_params
    from dubcli.train.run import train

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_synthetic(tmp / "data")
        print(
            f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_tokens} tokens"
        )
        print("config stage  params   steps/s  tokens/s  wall_s")
        for name in args.configs:
            over = {"log_every": 4, "eval_every": 0, "ckpt_every": 0, "num_workers": 0}
            common = dict(config=name, device="cpu", steps=args.steps, lr=1e-4,
                          batch_tokens=args.batch_tokens, train_overrides=over)  # fmt: skip
            for stage in ("tts", "dub"):
                run = tmp / f"{name}-{stage}"
                t0 = time.perf_counter()
                extra = {"init_from": tmp / f"{name}-tts"} if stage == "dub" else {}
                res = train(stage, data, run, **common, **extra)
                wall = time.perf_counter() - t0
                from dubcli.train.export import rebuild_model

                meta = json.loads((run / "run.json").read_text())
                params = n_params(rebuild_model(stage, meta["model_config"], "bench"), True)
                sps, tps, _ = speed(run)
                print(f"{name:6s} {stage:5s} {params / 1e6:6.2f}M {sps:8.2f} {tps:9.0f} "
                      f"{wall:7.1f}  (loss {res.train_loss:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
