"""Hashes: a file's sha256 (checkpoints, datasets, report identities) and the seeded key hash
that splits and picks reproducibly (the same key and seed always give the same number)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Lowercase hex sha256 of a file, read in chunks (checkpoints can be GBs). OSError as is:
    callers say what the file was."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def seeded_hash(key: str, seed: int) -> int:
    """A 64-bit number from (seed, key), stable across runs, machines and orders."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
