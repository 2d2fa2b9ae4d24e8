"""The training loop, for any nn.Module with `losses(batch) -> LossOutput(total, parts, ...)`.

Paper B.3: AdamW (weight decay 0.01), linear warm-up (10% of the steps in stage 1, 5% in stage
2), then decay. Around that: gradient clipping, bf16 autocast on CUDA (fp32 on CPU), optional
EMA, periodic validation, RUN/metrics.jsonl + RUN/loss.png, checkpoints with keep-last-k, and
exact resume. Exactness rests on: model, optimizer, EMA, every rank's RNG states and the
sampler's (epoch, position) restored from the checkpoint; the learning rate a function of the
step; validation under its own fixed seeds (it never moves the training streams); the
DataLoader given its own generator (a new iterator would otherwise draw from the global RNG);
items drawing their randomness from (seed, epoch, index). A run killed after checkpoint k and
resumed then computes the same losses, bit for bit on CPU, as an uninterrupted run.

Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each rank
reads its shard of every epoch's batches, and only rank 0 writes files and shows progress.

Datasets given to `fit` (in a `FitData`) need `lengths` (tokens per item, for the token-budget sampler) and
`set_epoch(epoch)`; `collate` returns a batch with `.to(device)`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dubcli.console import get_logger
from dubcli.data.sampler import TokenBatchSampler
from dubcli.errors import CheckpointError, Interrupted, ProcessingError
from dubcli.train import distributed as D
from dubcli.train.metrics import LOSS_PNG, MetricsLog, plot_losses
from dubcli.train.optim import EMA, build_optimizer, lr_at, set_lr
from dubcli.train.progress import LossWindow, ProgressBar
from dubcli.train.rng import isolated_rng, rng_state, seed_everything, set_rng_state
from dubcli.train.state import (
    TrainCheckpoint,
    link_alias,
    optimizer_load_flat,
    save_train_checkpoint,
)

log = get_logger(__name__)

MAX_BAD_STEPS = 5  # consecutive non-finite gradients before the run is declared diverged
BEST = "best.safetensors"


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs; dubcli.train.api fills it from TrainConfig and the command line."""

    steps: int | None = None  # optimizer steps; None: no step limit
    epochs: int | None = None  # passes over the train split; None: no epoch limit
    #                            (the run stops at whichever limit comes first)
    lr: float = 2e-4  # peak learning rate
    weight_decay: float = 0.01  # B.3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = 0.1  # B.3: 0.1 in stage 1, 0.05 in stage 2
    schedule: str = "cosine"  # cosine | linear | constant after the warm-up
    min_lr_ratio: float = 0.0  # final rate as a fraction of the peak
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    ema_decay: float = 0.0  # 0 disables the EMA of weights
    batch_tokens: int = 4000  # token budget per batch and rank (padded size)
    max_items: int | None = None  # cap on items per batch
    valid_every: int = 500  # steps between validation passes; 0: only at the end
    valid_max_batches: int | None = None  # cap per validation pass (None: the whole split)
    ckpt_every: int = 500  # steps between checkpoints; 0: only at the end
    keep_last: int = 3  # step checkpoints kept (last/best.safetensors are extra links)
    log_every: int = 10  # steps per metrics line (averaged); checkpoint steps always log
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA; CPU always trains in fp32
    num_workers: int = 0  # DataLoader worker processes
    find_unused: bool = False  # DDP: some parameters may get no gradient (stage-2 ablations)

    def check(self) -> LoopConfig:
        if self.steps is None and self.epochs is None:
            raise ValueError("give steps or epochs (or both)")
        if (self.steps or 1) <= 0 or (self.epochs or 1) <= 0:
            raise ValueError("steps and epochs must be positive")
        if self.batch_tokens <= 0 or self.lr <= 0:
            raise ValueError("batch_tokens and lr must be positive")
        return self


@dataclass(frozen=True)
class FitResult:
    step: int  # optimizer steps done in total
    checkpoint: Path | None  # the last checkpoint written (rank 0), else None
    train_loss: float  # the last logged training loss
    valid_loss: float | None  # the last validation loss, if any
    seconds: float  # wall time of this call


def _loggable(out: Any) -> dict[str, Any]:
    """Loss parts plus any detached diagnostics (`metrics`, e.g. accuracies) of a LossOutput."""
    return {**dict(getattr(out, "metrics", None) or {}), **dict(out.parts)}


class _LossForward(nn.Module):
    """DDP synchronizes gradients only through forward(): route losses() through it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[Tensor, dict[str, Any]]:
        out = self.model.losses(batch)
        return out.total, _loggable(out)


def total_steps(cfg: LoopConfig, sampler: TokenBatchSampler) -> int:
    """Steps the run takes: the step limit, or the epochs' batches if that comes first."""
    if cfg.epochs is None:
        return cfg.steps
    total = 0
    for e in range(cfg.epochs):
        total += len(sampler.epoch_batches(e))
        if cfg.steps is not None and total >= cfg.steps:
            return cfg.steps
    return total


def _every(step: int, period: int) -> bool:
    return period > 0 and step % period == 0


@dataclass(frozen=True)
class FitData:
    """What the loop reads: the train split, its collate, and an optional valid split."""

    train_set: Any  # with `lengths` (tokens per item) and `set_epoch(epoch)`
    collate: Callable[[list[Any]], Any]  # items -> a batch with `.to(device)`
    valid_set: Any | None = None  # validated every cfg.valid_every steps and at the end


def fit(
    model: nn.Module,
    data: FitData,
    run: str | Path,
    cfg: LoopConfig,
    *,
    device: torch.device | None = None,
    resume: TrainCheckpoint | None = None,
    metadata: dict[str, Any] | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model` on `data` in RUN, fresh or from `resume`. `metadata` goes into every
    checkpoint; `on_step(step, record)` runs after each step (record: the metrics line, or {});
    `progress`: show the bar (rank 0 only in any case)."""
    t0 = time.perf_counter()
    info = D.dist_info_from_env()
    device = device or D.resolve_device("auto", info.local_rank)
    started = D.init_distributed(info, device)
    try:
        trainer = _Trainer(model, data.train_set, data.collate, Path(run), cfg.check(),
                           data.valid_set, device)  # fmt: skip
        trainer.meta = {**(metadata or {}), "loop": asdict(cfg), "world_size": info.world_size}
        if resume is not None:
            trainer.restore(resume)
        else:
            seed_everything(cfg.seed + info.rank)  # ranks draw different noise (t, masks)
        trainer.run(on_step, progress)
        return trainer.result(time.perf_counter() - t0)
    finally:
        D.shutdown_distributed(started)


class _Trainer:
    def __init__(self, model, train_set, collate, run, cfg, valid_set, device):
        self.info = D.dist_info_from_env()
        self.model = model.to(device).train()
        self.train_set, self.valid_set, self.collate = train_set, valid_set, collate
        self.run_dir, self.cfg, self.device = run, cfg, device
        self.sampler = TokenBatchSampler(
            train_set.lengths,
            cfg.batch_tokens,
            seed=cfg.seed,
            rank=self.info.rank,
            world_size=self.info.world_size,
            max_items=cfg.max_items,
        )
        self.n_total = total_steps(cfg, self.sampler)
        self.optimizer = build_optimizer(
            model, cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps
        )
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.wrapped = self._wrap()  # DDP broadcasts rank 0's weights here, before the EMA copy
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.metrics = MetricsLog(run)
        self.use_amp = cfg.amp and device.type == "cuda"
        self.step = 0
        self.meta: dict[str, Any] = {}
        self.train_loss, self.valid_loss = math.nan, None
        self.best_valid, self.bad = math.inf, 0
        self.last_ckpt: Path | None = None

    # -- resume ---------------------------------------------------------------------------------

    def restore(self, ck: TrainCheckpoint) -> None:
        try:
            self.model.load_state_dict(ck.model)
            optimizer_load_flat(self.optimizer, ck.optimizer, ck.metadata["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{ck.path}: does not fit this model ({exc})") from exc
        if self.ema is not None:
            if ck.ema:
                self.ema.load_state_tensors(ck.ema, ck.metadata.get("ema_updates", 0))
            else:
                log.warning("%s: no EMA state; the average restarts here", ck.path)
        diffs = self.sampler.load_state_dict(ck.metadata.get("sampler", {}))
        if self.info.rank in ck.rng and not diffs:
            set_rng_state(ck.rng[self.info.rank])
        else:
            diffs.append(f"no RNG state for rank {self.info.rank}")
            seed_everything(ck.step * 1009 + self.info.rank)
        if diffs and self.info.is_main:
            log.warning("resume will not repeat the interrupted run exactly: %s", "; ".join(diffs))
        self.step = ck.step
        best = ck.metadata.get("best_valid")
        self.best_valid = math.inf if best is None else float(best)
        if self.info.is_main:
            self.metrics.truncate_after(self.step)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, on_step, progress: bool = True) -> None:
        from torch.utils.data import DataLoader

        window = LossWindow()
        if self.step >= self.n_total and self.info.is_main:
            log.info("%s: already at step %d of %d; nothing to train", self.run_dir, self.step,
                     self.n_total)  # fmt: skip
        bar = ProgressBar(self.n_total, self.step) if self.info.is_main and progress else None
        t_window = time.perf_counter()
        try:
            while self.step < self.n_total:
                epoch = self.sampler.epoch
                self.train_set.set_epoch(epoch)
                loader = DataLoader(
                    self.train_set,
                    batch_sampler=self.sampler,
                    collate_fn=self.collate,
                    num_workers=self.cfg.num_workers,
                    generator=torch.Generator().manual_seed(self.cfg.seed + epoch),
                )
                for batch in loader:
                    idx = self.sampler.epoch_batches()[self.sampler.position]
                    total, parts, gnorm = self.train_step(batch)
                    tokens = sum(self.train_set.lengths[i] for i in idx)
                    window.add(total, parts, gnorm, tokens, len(idx))
                    self.sampler.advance()
                    self.step += 1
                    record = self.after_step(window, time.perf_counter() - t_window)
                    if record:
                        t_window = time.perf_counter()
                    if bar is not None:
                        lr = self.optimizer.param_groups[0]["lr"]
                        bar.update(self.step, self.train_loss, self.valid_loss, lr)
                    if on_step is not None:
                        on_step(self.step, record)
                    if self.step >= self.n_total:
                        break
        except (KeyboardInterrupt, Interrupted):  # Interrupted: the CLI's SIGINT/SIGTERM handler
            done = self.last_ckpt is not None and self.last_ckpt.name == _ckpt_name(self.step)
            if not self.info.enabled and self.step > 0 and not done:
                log.info("interrupted: saving a checkpoint at step %d", self.step)
                self.save()
            raise
        finally:
            if bar is not None:
                bar.close()

    def _autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batch) -> tuple[Tensor, dict[str, Any], Tensor]:
        cfg = self.cfg
        batch = batch.to(self.device)
        set_lr(
            self.optimizer,
            lr_at(
                self.step,
                self.n_total,
                cfg.lr,
                warmup_ratio=cfg.warmup_ratio,
                schedule=cfg.schedule,
                min_lr_ratio=cfg.min_lr_ratio,
            ),
        )
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            total, parts = self.wrapped(batch)
        total.float().backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        # Gradients are all-reduced before this point, so every rank decides the same way.
        if torch.isfinite(gnorm):
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.bad = 0
        else:
            self.bad += 1
            log.warning("step %d: non-finite gradient norm, update skipped", self.step + 1)
            if self.bad >= MAX_BAD_STEPS:
                raise ProcessingError(
                    f"{self.run_dir}: training diverged at step {self.step + 1} ({self.bad} "
                    "non-finite gradients in a row); lower --lr"
                )
        return total, parts, gnorm

    def _wrap(self) -> nn.Module:
        wrapped: nn.Module = _LossForward(self.model)
        if not self.info.enabled:
            return wrapped
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            wrapped,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.cfg.find_unused,
        )

    def after_step(self, window: LossWindow, seconds: float) -> dict[str, Any]:
        """Metrics line, validation and checkpoint when due; returns the metrics line or {}."""
        cfg, step, last = self.cfg, self.step, self.step == self.n_total
        is_ckpt = _every(step, cfg.ckpt_every) or last
        record: dict[str, Any] = {}
        if _every(step, cfg.log_every) or is_ckpt:
            lr = self.optimizer.param_groups[0]["lr"]
            record = window.flush(step, lr, seconds, self.sampler.epoch)
            self.train_loss = record["loss"]
            if self.info.is_main:
                self.metrics.write(record)
        improved = False
        if self.valid_set is not None and (_every(step, cfg.valid_every) or last):
            losses = self.validate()
            self.valid_loss = losses["loss"]
            improved = self.valid_loss < self.best_valid
            self.best_valid = min(self.best_valid, self.valid_loss)
            if self.info.is_main:
                self.metrics.write({"step": step, "split": "valid", **losses})
        if is_ckpt:
            self.save()
            if improved and self.info.is_main:
                link_alias(self.last_ckpt, self.run_dir / BEST)
        return record

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean losses over the valid split (sharded across ranks), EMA weights when on."""
        from torch.utils.data import DataLoader

        cfg, info = self.cfg, self.info
        sampler = TokenBatchSampler(
            self.valid_set.lengths,
            cfg.batch_tokens,
            shuffle=False,
            rank=info.rank,
            world_size=info.world_size,
            max_items=cfg.max_items,
        )
        self.valid_set.set_epoch(0)
        loader = DataLoader(
            self.valid_set,
            batch_sampler=sampler,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(0),
        )
        sums: dict[str, float] = {}
        items = 0
        weights = self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()
        self.model.eval()
        try:
            with weights, isolated_rng(cfg.seed + 7919):
                for i, batch in enumerate(loader):
                    if cfg.valid_max_batches is not None and i >= cfg.valid_max_batches:
                        break
                    n = len(sampler.epoch_batches()[i])
                    with self._autocast():
                        out = self.model.losses(batch.to(self.device))
                    for k, v in {"loss": out.total, **_loggable(out)}.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * n
                    items += n
        finally:
            self.model.train()
        names = sorted(sums)
        summed = D.all_reduce_sum(torch.tensor([sums[k] for k in names] + [float(items)]))
        count = float(summed[-1]) or 1.0
        return {k: float(summed[i]) / count for i, k in enumerate(names)}

    def save(self) -> None:
        """Collective (every rank sends its RNG state); rank 0 writes."""
        rngs = D.gather_tensors(rng_state(), self.device)
        if self.info.is_main:
            self.last_ckpt = save_train_checkpoint(
                self.run_dir,
                step=self.step,
                model=self.model,
                optimizer=self.optimizer,
                rng_by_rank=rngs,
                ema_tensors=self.ema.state_tensors() if self.ema is not None else None,
                metadata={
                    **self.meta,
                    "sampler": self.sampler.state_dict(),
                    "ema_updates": self.ema.updates if self.ema is not None else 0,
                    "best_valid": self.best_valid if math.isfinite(self.best_valid) else None,
                },
                keep_last=self.cfg.keep_last,
            )
            plot_losses(self.metrics.read(), self.run_dir / LOSS_PNG, title=self.run_dir.name)
        D.barrier()

    def result(self, seconds: float) -> FitResult:
        return FitResult(self.step, self.last_ckpt, self.train_loss, self.valid_loss, seconds)


def _ckpt_name(step: int) -> str:
    return f"ckpt-{step:08d}.safetensors"
