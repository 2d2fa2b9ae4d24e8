"""Two-process DDP training on CPU (gloo) under a real torchrun: the ranks see different batches,
their weights stay identical, and only rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_train_corpus import write_corpus  # noqa: E402

WORKER = """
import json, os, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from pathlib import Path
from safetensors.torch import save_file
from dubcli.train.loop import LoopConfig
from test_train_loop import CFG, run_toy
cfg = LoopConfig(**{{**CFG.__dict__, "steps": 3, "ckpt_every": 3, "valid_every": 3}})
model, res = run_toy(Path({corpus!r}), Path({run!r}), cfg)
rank = int(os.environ["RANK"])
out = Path({out!r})
(out / f"seen-{{rank}}.json").write_text(json.dumps(model.seen))
save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, str(out / f"w-{{rank}}.st"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_ddp(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", n_train=16, codec=False)
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(
        WORKER.format(
            tests=str(Path(__file__).parent), corpus=str(corpus), run=str(run), out=str(out)
        )
    )
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1")
    proc = subprocess.run(cmd, capture_output=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    seen = [json.loads((out / f"seen-{r}.json").read_text()) for r in (0, 1)]
    # Training batches only (validation ids come from the valid split u012..u015).
    train_seen = [[i for i in s if int(i[1:]) < 16] for s in seen]
    assert train_seen[0] and train_seen[1] and train_seen[0] != train_seen[1]
    w0, w1 = load_file(str(out / "w-0.st")), load_file(str(out / "w-1.st"))
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # One writer: one metrics line per step (loss averaged over ranks), one checkpoint.
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [1, 2, 3]
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-00000003.safetensors"]
    from dubcli.train.state import load_train_checkpoint

    ck = load_train_checkpoint(run)
    assert ck.metadata["world_size"] == 2 and sorted(ck.rng) == [0, 1]
    assert not torch.equal(ck.rng[0]["torch"], ck.rng[1]["torch"])  # ranks draw different noise
