"""Batches by token count: length-bucketed, shuffled per epoch with a seed, sharded across ranks.

A batch costs `max length x items` tokens (what padding makes it cost), and holds as many items
as fit under `max_tokens`; an item longer than `max_tokens` forms a batch of its own (the
dataset crops items to a maximum length first, so this is rare). The order is a pure function of
(seed, epoch): every rank computes the same global batch list, pads it by cycling to a multiple
of the world size (so every rank takes the same number of steps, which DDP needs) and takes every
world_size-th batch, like torch's DistributedSampler does for items.

Resume is exact: `state_dict()` is (epoch, position) - how many of this epoch's batches were
consumed - and iteration restarts at that position of the same list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# Items are shuffled, then sorted by length within windows of this many items: batches hold
# similar lengths (little padding) while the epoch order stays random.
BUCKET_WINDOW = 1000


def batch_cost(lengths: Sequence[int]) -> int:
    """Tokens a padded batch of these lengths occupies."""
    return max(lengths) * len(lengths) if len(lengths) else 0


def make_batches(
    lengths: Sequence[int],
    max_tokens: int,
    *,
    rng: np.random.Generator | None = None,
    max_items: int | None = None,
    window: int = BUCKET_WINDOW,
) -> list[list[int]]:
    """Global batch list: with `rng`, shuffled and bucketed; without, sorted by length.

    Each batch satisfies max(len) * n_items <= max_tokens (or is a single item).
    """
    n = len(lengths)
    lens = np.asarray(lengths, dtype=np.int64)
    if rng is None:
        windows = [np.argsort(lens, kind="stable")]
    else:
        order = rng.permutation(n)
        # Sort each window by length; ties keep the shuffled order (stable sort).
        windows = [
            order[i : i + window][np.argsort(lens[order[i : i + window]], kind="stable")]
            for i in range(0, n, window)
        ]
    batches: list[list[int]] = []
    for idx in windows:
        cur: list[int] = []
        cur_max = 0
        for i in idx.tolist():
            new_max = max(cur_max, int(lens[i]))
            full = max_items is not None and len(cur) >= max_items
            if cur and (new_max * (len(cur) + 1) > max_tokens or full):
                batches.append(cur)
                cur, new_max = [], int(lens[i])
            cur.append(i)
            cur_max = new_max
        if cur:
            batches.append(cur)
    if rng is not None:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


class TokenBatchSampler:
    """A batch sampler for torch's DataLoader (`batch_sampler=`): yields lists of item indices.

    lengths: per item, in speech tokens (after the dataset's crop).
    shuffle=False gives a fixed length-sorted order (validation), still sharded across ranks.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        max_items: int | None = None,
    ):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if len(lengths) == 0:
            raise ValueError("no items to sample from")
        self.lengths = [int(x) for x in lengths]
        self.max_tokens = int(max_tokens)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.max_items = max_items
        self.epoch = 0
        self.position = 0  # batches of this epoch already consumed (resume point)
        self._cache: tuple[int, list[list[int]]] | None = None

    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches for an epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        batches = make_batches(self.lengths, self.max_tokens, rng=rng, max_items=self.max_items)
        if self.world_size > 1:
            # Pad by cycling so each rank gets the same number of batches (DDP lock-step).
            per_rank = -(-len(batches) // self.world_size)
            total = per_rank * self.world_size
            batches = [batches[i % len(batches)] for i in range(total)]
            batches = batches[self.rank :: self.world_size]
        self._cache = (epoch, batches)
        return batches

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.epoch, self.position = int(epoch), int(position)

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same for every epoch up to +-1 from packing)."""
        return len(self.epoch_batches())

    def __iter__(self) -> Iterator[list[int]]:
        """The current epoch's batches from `position` on. The caller advances `position` as it
        consumes them (prefetching DataLoader workers must not move the resume point)."""
        batches = self.epoch_batches()
        yield from (list(b) for b in batches[self.position :])

    def advance(self) -> None:
        """One batch consumed; past the end of the epoch, move to the next."""
        self.position += 1
        if self.position >= len(self.epoch_batches()):
            self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "world_size": self.world_size,
            "n_items": len(self.lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> list[str]:
        """Restore (epoch, position); returns reasons the order will differ (empty = exact)."""
        diffs = [
            f"{k} {state.get(k)} -> {getattr(self, k) if k != 'n_items' else len(self.lengths)}"
            for k in ("seed", "max_tokens", "world_size", "n_items")
            if k in state
            and state[k] != (getattr(self, k) if k != "n_items" else len(self.lengths))
        ]
        self.epoch = int(state.get("epoch", 0))
        self.position = int(state.get("position", 0))
        if self.position >= len(self.epoch_batches()):
            self.epoch, self.position = self.epoch + 1, 0
        return diffs
