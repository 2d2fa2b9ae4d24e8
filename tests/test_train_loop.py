"""The training loop mechanics with a toy model: schedule, metrics, checkpoints, keep-last-k, and
exact resume after a SIGKILL and after Ctrl-C (the same losses, step by step, as a straight run)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from dubcli.data.dataset import DatasetOptions, DubDataset, collate
from dubcli.errors import Interrupted
from dubcli.train.loop import FitData, LoopConfig, fit
from dubcli.train.optim import lr_at
from dubcli.train.state import list_checkpoints, load_train_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_train_corpus import VOCAB, write_corpus  # noqa: E402

torch.set_num_threads(1)


class ToyOut(NamedTuple):
    total: torch.Tensor
    parts: dict
    metrics: dict


class Toy(nn.Module):
    """Predicts the first content stream from the phoneme under each token. Dropout, torch
    noise, numpy and python draws make every RNG matter: an unrestored one changes the loss."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.emb = nn.Embedding(80, d)
        self.drop = nn.Dropout(0.1)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, VOCAB)
        self.seen: list[str] = []

    def losses(self, batch):
        self.seen.extend(batch.ids)
        rows = [
            torch.repeat_interleave(p[m], d[m])
            for p, d, m in zip(
                batch.phonemes, batch.durations_tokens, batch.phoneme_mask, strict=True
            )
        ]
        ph = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        h = self.norm(self.drop(self.emb(ph)) + 0.01 * torch.randn(*ph.shape, 16))
        logits = self.out(h)
        ce = nn.functional.cross_entropy(
            logits[batch.token_mask], batch.content[:, 0][batch.token_mask]
        )
        jitter = 1.0 + 1e-3 * float(np.random.rand()) + 1e-3 * random.random()
        return ToyOut(
            ce * jitter,
            {"ce": ce},
            {"acc": (logits.argmax(-1) == batch.content[:, 0]).float().mean()},
        )


def make_toy(seed: int = 0) -> Toy:
    torch.manual_seed(seed)
    return Toy()


CFG = LoopConfig(
    steps=8, lr=5e-2, warmup_ratio=0.25, batch_tokens=120, ckpt_every=4, valid_every=4,
    log_every=1, keep_last=2, ema_decay=0.9, seed=5,
)  # fmt: skip


def run_toy(corpus: Path, run: Path, cfg: LoopConfig = CFG, resume: bool = False, on_step=None):
    train = DubDataset.open(corpus / "train", DatasetOptions(seed=cfg.seed))
    valid = DubDataset.open(corpus / "valid", DatasetOptions(random_crop=False))
    ck = load_train_checkpoint(run) if resume else None
    model = make_toy()
    res = fit(model, FitData(train, collate, valid), run, cfg, device=torch.device("cpu"),
              resume=ck, metadata={"toy": True}, on_step=on_step)  # fmt: skip
    return model, res


def losses(run: Path, split: str = "train") -> list[tuple[int, float]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in lines if r["split"] == split]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), codec=False)


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    model, res = run_toy(corpus, run)
    return run, model, res


def test_lr_schedule_known_values():
    assert lr_at(0, 100, 1.0, warmup_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, warmup_ratio=0.1) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, warmup_ratio=0.1, schedule="cosine") == pytest.approx(0.5)
    assert lr_at(55, 100, 1.0, warmup_ratio=0.1, schedule="linear") == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, warmup_ratio=0.1, min_lr_ratio=0.1) == pytest.approx(0.1)


def test_straight_run_outputs(straight):
    run, model, res = straight
    assert res.step == 8 and res.checkpoint == run / "ckpt-00000008.safetensors"
    assert [s for s, _ in losses(run)] == list(range(1, 9))
    assert [s for s, _ in losses(run, "valid")] == [4, 8]
    tr = [v for _, v in losses(run)]
    assert np.mean(tr[-3:]) < np.mean(tr[:3])  # the toy learns
    # keep_last=2 of ckpt at 4 and 8 keeps both; last and best are links to step 8.
    assert [s for s, _ in list_checkpoints(run)] == [4, 8]
    assert os.path.samefile(run / "last.safetensors", run / "ckpt-00000008.safetensors")
    assert (run / "best.safetensors").is_file()
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = load_train_checkpoint(run)
    assert ck.step == 8 and ck.metadata["toy"] and ck.metadata["sampler"]["epoch"] >= 1
    assert set(ck.ema) >= {"emb.weight", "out.bias"} and ck.rng[0]["torch"].dtype == torch.uint8
    assert torch.equal(ck.model["out.weight"], model.out.weight.detach())


def test_keep_last_k(corpus, tmp_path):
    cfg = LoopConfig(**{**CFG.__dict__, "steps": 6, "ckpt_every": 1, "keep_last": 2,
                        "valid_every": 0})  # fmt: skip
    run_toy(corpus, tmp_path, cfg)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 6]


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_train_loop import run_toy
def kill(step, record):
    if step == 6:
        os.kill(os.getpid(), signal.SIGKILL)
run_toy(Path({corpus!r}), Path({run!r}), on_step=kill)
"""


def test_resume_after_sigkill_is_exact(corpus, straight, tmp_path):
    run = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), corpus=str(corpus), run=str(run))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert load_train_checkpoint(run).step == 4
    assert [s for s, _ in losses(run)][-1] == 6  # lines past the checkpoint were written
    model, res = run_toy(corpus, run, resume=True)
    ref_run, ref_model, _ = straight
    assert losses(run) == losses(ref_run)  # exact equality, every step
    assert losses(run, "valid") == losses(ref_run, "valid")
    for a, b in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt(), Interrupted(2)])
def test_ctrl_c_saves_and_resumes_exactly(corpus, straight, tmp_path, signal_error):
    # Interrupted: what the CLI's SIGINT/SIGTERM handler raises (`dubcli train`, Ctrl-C or kill)
    def interrupt(step, record):
        if step == 5:
            raise signal_error

    with pytest.raises(type(signal_error)):
        run_toy(corpus, tmp_path, on_step=interrupt)
    assert load_train_checkpoint(tmp_path).step == 5
    run_toy(corpus, tmp_path, resume=True)
    assert losses(tmp_path) == losses(straight[0])
