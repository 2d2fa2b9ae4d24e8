"""Training checkpoints: everything an exact resume needs, in one safetensors file, no pickles.

`RUN/ckpt-<step>.safetensors` holds, as tensors:
    model/<name>          the model's state_dict (fp32, as trained)
    optim/<pid>/<key>     AdamW per-parameter state (exp_avg, exp_avg_sq, step)
    ema/<name>            the EMA shadow weights, when EMA is on
    rng/<rank>/<name>     torch CPU (+ CUDA) generator states, numpy MT19937 keys and python's
                          Mersenne Twister words, for every rank
and as JSON metadata (dubcli.checkpoint): the step, the sampler's (epoch, position), the
optimizer's param groups and non-tensor state, configs, and whatever the caller adds.
`RUN/last.safetensors` is a hard link to (or copy of) the newest one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError, OutputError
from dubcli.fsutil import atomic_path
from dubcli.model.loading import LAST, TRAIN_KIND, training_file

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")


# -- optimizer state, flat ---------------------------------------------------------------------


def optimizer_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, json) for an optimizer's state_dict: tensors by `optim/<pid>/<key>`."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{pid}/{key}"] = value.detach().cpu()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_load_flat(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split("/", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- the checkpoint file ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainCheckpoint:
    """A loaded training checkpoint, split by part."""

    path: Path
    step: int
    model: dict[str, Tensor]
    optimizer: dict[str, Tensor]
    ema: dict[str, Tensor]
    rng: dict[int, dict[str, Tensor]]  # rank -> state
    metadata: dict[str, Any]


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """state_dict tensors on CPU, with storage shared between entries (tied weights) cloned,
    since safetensors refuses aliased tensors."""
    out, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else None
        if key in seen:
            v = v.clone()
        elif key is not None:
            seen.add(key)
        out[k] = v
    return out


def save_train_checkpoint(
    run: str | os.PathLike,
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_by_rank: list[dict[str, Tensor]],
    ema_tensors: dict[str, Tensor] | None = None,
    metadata: dict[str, Any],
    keep_last: int = 3,
) -> Path:
    """Write RUN/ckpt-<step>.safetensors, point RUN/last.safetensors at it, drop old ones."""
    run = Path(run)
    tensors = {f"model/{k}": v for k, v in model_tensors(model).items()}
    opt_t, opt_meta = optimizer_flat(optimizer)
    tensors.update(opt_t)
    for k, v in (ema_tensors or {}).items():
        tensors[f"ema/{k}"] = v.detach().cpu()
    for rank, st in enumerate(rng_by_rank):
        for k, v in st.items():
            tensors[f"rng/{rank}/{k}"] = v.cpu()
    meta = {
        **metadata,
        "kind": TRAIN_KIND,
        "step": int(step),
        "optimizer": opt_meta,
        "ema": ema_tensors is not None,
        "rng_ranks": len(rng_by_rank),
    }
    path = run / f"ckpt-{step:08d}.safetensors"
    save_checkpoint(path, tensors, meta)
    link_alias(path, run / LAST)
    rotate_checkpoints(run, keep_last)
    return path


def link_alias(src: Path, alias: Path) -> None:
    """Atomically make `alias` (last/best.safetensors) the same file as `src`: a hard link, so
    it survives the rotation of `src`; a copy where the file system has no links."""
    import shutil

    with atomic_path(alias) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def list_checkpoints(run: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of RUN/ckpt-*.safetensors, oldest first."""
    run = Path(run)
    if not run.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found)


def rotate_checkpoints(run: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (last.safetensors stays)."""
    if keep_last <= 0:
        return
    for _, path in list_checkpoints(run)[:-keep_last]:
        try:
            path.unlink()
        except OSError as exc:
            raise OutputError(f"{path}: cannot remove an old checkpoint ({exc})") from exc


def load_train_checkpoint(path: str | os.PathLike) -> TrainCheckpoint:
    """A training checkpoint file, or a run folder (its last.safetensors)."""
    path = training_file(path, "nothing to resume")
    ck = load_checkpoint(path, expect_kind=TRAIN_KIND)
    parts: dict[str, dict[str, Tensor]] = {"model": {}, "optim": {}, "ema": {}}
    rng: dict[int, dict[str, Tensor]] = {}
    for name, value in ck.tensors.items():
        head, _, rest = name.partition("/")
        if head == "rng":
            rank, _, key = rest.partition("/")
            rng.setdefault(int(rank), {})[key] = value
        elif head == "optim":
            parts["optim"][name] = value
        elif head in parts:
            parts[head][rest] = value
        else:
            raise CheckpointError(f"{path}: unexpected tensor '{name}' in a training checkpoint")
    return TrainCheckpoint(
        path=path,
        step=int(ck.metadata.get("step", 0)),
        model=parts["model"],
        optimizer=parts["optim"],
        ema=parts["ema"],
        rng=rng,
        metadata=ck.metadata,
    )
