"""The output side of `prepare` / `prepare-merge`: shards, manifest lines, dataset.json, the lock.

Only the parent process writes here (workers hand their arrays back), so there are no write
races inside one run; the lock file keeps two runs out of one folder. Shards are written whole
and atomically, then their manifest lines are appended (data/manifest.py), then dataset.json is
rewritten with the new counts, so the folder is a usable, consistent dataset after every shard.

Shard files are named `shards/<split>-<tag><k:05d>.safetensors`, tag "" for a whole run and
"p<i>of<n>-" for part i of `--shard i/n`, so the parts' shards never collide when merged.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.data.manifest import (
    MANIFEST_FILE,
    SHARD_DIR,
    SPLITS,
    Utterance,
    append_manifest,
    write_shard,
)
from dubcli.errors import OutputError

LOCK_FILE = ".prepare.lock"


def summarize(utts: Iterable[Utterance]) -> dict[str, Any]:
    """Counts, seconds and speakers per split, as dataset.json records them."""
    counts = dict.fromkeys(SPLITS, 0)
    seconds = dict.fromkeys(SPLITS, 0.0)
    speakers: dict[str, set[str]] = {s: set() for s in SPLITS}
    for u in utts:
        counts[u.split] += 1
        seconds[u.split] += u.seconds
        speakers[u.split].add(u.speaker)
    every = set().union(*speakers.values())
    return {
        "counts": counts,
        "utterances": sum(counts.values()),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "hours": round(sum(seconds.values()) / 3600, 4),
        "speakers": {k: len(v) for k, v in speakers.items()},
        "n_speakers": len(every),
        "speaker_ids": sorted(every),
        "unseen_test_speakers": len(speakers["test"] - speakers["train"]),
    }


def shard_tag(part: int, nparts: int) -> str:
    return "" if nparts == 1 else f"p{part}of{nparts}-"


class ShardWriter:
    """Buffers finished utterances per split and writes a shard every `size` of them.

    utts: the manifest lines already in the folder (a resumed run). on_flush(all lines) is
    called after every shard, to rewrite dataset.json."""

    def __init__(
        self,
        out: Path,
        tag: str,
        size: int,
        utts: Sequence[Utterance],
        on_flush: Callable[[list[Utterance]], None] | None = None,
    ):
        self.out, self.tag, self.size = Path(out), tag, max(int(size), 1)
        self.utts = list(utts)
        self.on_flush = on_flush
        self.buffers: dict[str, list[tuple[Utterance, dict[str, np.ndarray]]]] = {}
        pat = re.compile(rf"^([a-z]+)-{re.escape(tag)}(\d+)\.safetensors$")
        self.next_index: dict[str, int] = {}
        shard_dir = self.out / SHARD_DIR
        for f in shard_dir.iterdir() if shard_dir.is_dir() else ():
            m = pat.match(f.name)
            if m:
                k = self.next_index.get(m.group(1), 0)
                self.next_index[m.group(1)] = max(k, int(m.group(2)) + 1)

    def add(self, utt: Utterance, arrays: dict[str, np.ndarray]) -> None:
        buf = self.buffers.setdefault(utt.split, [])
        buf.append((utt, arrays))
        if len(buf) >= self.size:
            self.flush(utt.split)

    def flush(self, split: str) -> None:
        buf = self.buffers.get(split)
        if not buf:
            return
        k = self.next_index.get(split, 0)
        name = f"{SHARD_DIR}/{split}-{self.tag}{k:05d}.safetensors"
        write_shard(self.out / name, {u.id: arrays for u, arrays in buf})
        lines = [replace(u, shard=name) for u, _ in buf]
        append_manifest(self.out / MANIFEST_FILE, lines)
        self.next_index[split] = k + 1
        self.utts += lines
        self.buffers[split] = []
        if self.on_flush is not None:
            self.on_flush(self.utts)

    def flush_all(self) -> None:
        for split in list(self.buffers):
            self.flush(split)


def remove_orphan_shards(out: Path, utts: Sequence[Utterance]) -> int:
    """Delete shard files no manifest line points at (a run killed between writing a shard and
    appending its lines) and leftover temporaries; their items are redone. Returns the count."""
    shard_dir = Path(out) / SHARD_DIR
    if not shard_dir.is_dir():
        return 0
    used = {Path(u.shard).name for u in utts}
    removed = 0
    for f in shard_dir.iterdir():
        if f.is_file() and f.name.endswith(".safetensors") and f.name not in used:
            f.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def folder_lock(out: Path):
    """Hold OUT/.prepare.lock (our pid) for the run; a live holder is an OutputError, a stale
    lock (its process is gone) is taken over."""
    path = Path(out) / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise OutputError(
                    f"{out}: another dubcli prepare (pid {pid}) is writing here; wait for it or "
                    f"remove {path} if that process is gone"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise OutputError(f"{path}: cannot take the lock")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
