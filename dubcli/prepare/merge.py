"""Combine the folders of `dubcli prepare --shard i/n` runs into one prepared dataset.

    dubcli prepare --layout grid GRID/ -o part1 --shard 1/3            # fits the codebooks
    dubcli prepare --layout grid GRID/ -o part2 --shard 2/3 --codec part1/codec.safetensors
    dubcli prepare --layout grid GRID/ -o part3 --shard 3/3 --codec part1/codec.safetensors
    dubcli prepare-merge part1 part2 part3 -o feats

Parts must come from the same layout, DATA, seed and versions, and carry byte-identical
codebooks (parts that each fit their own get the same ones only when their machines compute
bit-identical k-means; passing --codec from the first part makes that certain). Shard files
have part-tagged names, so they are hard-linked (or copied) into OUT/shards unchanged; manifest
lines keep their `shard` paths and `ref_ids` (pairing is computed over the full item list, so
it is the same in every part). Missing parts are allowed and recorded ("missing_parts",
complete false). Rendered media under a part's media/ are brought along.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dubcli.data.manifest import (
    CODEC_FILE,
    DATASET_FILE,
    FAILURES_FILE,
    MANIFEST_FILE,
    Utterance,
    append_manifest,
    read_dataset_info,
    read_manifest,
    write_dataset_info,
)
from dubcli.data.writer import folder_lock, summarize
from dubcli.errors import InputError, OutputError
from dubcli.hashing import sha256_file

SAME = ("layout", "source", "seed", "layout_options", "render", "features_version", "phoneme_vocab",
        "phoneme_edges")  # fmt: skip


@dataclass(frozen=True)
class MergeResult:
    out: Path
    counts: dict[str, int]
    utterances: int
    hours: float
    missing_parts: tuple[int, ...]

    def to_json(self) -> dict:
        return {"out": str(self.out), "counts": self.counts, "utterances": self.utterances,
                "hours": self.hours, "missing_parts": list(self.missing_parts)}  # fmt: skip


def _link_or_copy(src: Path, dst: Path) -> None:
    from dubcli.fsutil import atomic_path

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # a link appears whole or not at all
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def merge_prepared(
    parts: Sequence[str | os.PathLike], out: str | os.PathLike, *, force: bool = False
) -> MergeResult:
    """Merge prepared part folders into `out` (see the module doc)."""
    from dubcli.prepare.run import clear_output, parse_shard

    parts = [Path(p) for p in parts]
    out = Path(out)
    if not parts:
        raise InputError("prepare-merge: no part folders given")
    if any(p.resolve() == out.resolve() for p in parts):
        raise OutputError(f"{out}: the output folder cannot be one of the parts")
    infos = [read_dataset_info(p) for p in parts]
    for p, info in zip(parts[1:], infos[1:], strict=True):
        for key in SAME:
            if info.get(key) != infos[0].get(key):
                raise InputError(
                    f"{p}: was prepared with {key}={info.get(key)!r} but {parts[0]} with "
                    f"{infos[0].get(key)!r}; only parts of one run can be merged"
                )
    specs = [parse_shard(info.get("shard", "")) for info in infos]
    total = specs[0][1]
    seen_parts: dict[int, Path] = {}
    for p, (i, n) in zip(parts, specs, strict=True):
        if n != total:
            raise InputError(f"{p}: is part {i}/{n}, {parts[0]} is part of /{total}")
        if i in seen_parts:
            raise InputError(f"{p}: part {i}/{n} is also {seen_parts[i]}")
        seen_parts[i] = p
    shas = [sha256_file(p / CODEC_FILE) for p in parts]
    for p, sha in zip(parts[1:], shas[1:], strict=True):
        if sha != shas[0]:
            raise InputError(
                f"{p}: its codebooks differ from {parts[0]}'s; prepare the parts again with "
                f"--codec {parts[0] / CODEC_FILE}"
            )
    missing = tuple(sorted(set(range(1, total + 1)) - set(seen_parts)))
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        if (out / DATASET_FILE).exists() or (out / MANIFEST_FILE).exists():
            if not force:
                raise OutputError(f"{out}: already holds a prepared dataset (use --force)")
            clear_output(out)
        utts: list[Utterance] = []
        owner: dict[str, Path] = {}
        failures: list[str] = []
        for p in parts:
            for u in read_manifest(p / MANIFEST_FILE):
                if u.id in owner:
                    raise InputError(f"{p}: utterance {u.id} is also in {owner[u.id]}")
                owner[u.id] = p
                utts.append(u)
            fpath = p / FAILURES_FILE
            if fpath.is_file():
                failures += [ln for ln in fpath.read_text(encoding="utf-8").splitlines() if ln]
        shards = {}
        for u in utts:
            if shards.setdefault(u.shard, owner[u.id]) != owner[u.id]:
                raise InputError(f"shard {u.shard} exists in {shards[u.shard]} and {owner[u.id]}")
        for rel, p in shards.items():
            _link_or_copy(p / rel, out / rel)
        for u in utts:
            video = u.source.get("video", "")
            if video.startswith("media/") and (owner[u.id] / video).is_file():
                _link_or_copy(owner[u.id] / video, out / video)
        _link_or_copy(parts[0] / CODEC_FILE, out / CODEC_FILE)
        append_manifest(out / MANIFEST_FILE, utts)
        if failures:
            from dubcli.fsutil import atomic_write_text

            atomic_write_text(out / FAILURES_FILE, "\n".join(failures) + "\n")
        info = {k: v for k, v in infos[0].items() if k != "manifest_version"}
        stats = summarize(utts)
        info.update(stats)
        info.update(
            shard="merged",
            merged_from=[str(p.resolve()) for p in parts],
            missing_parts=list(missing),
            complete=not missing and all(i.get("complete") for i in infos),
            failed=len(failures),
            prepare_seconds=round(sum(float(i.get("prepare_seconds", 0)) for i in infos), 1),
        )
        write_dataset_info(out, json.loads(json.dumps(info)))
    return MergeResult(out, stats["counts"], stats["utterances"], stats["hours"], missing)
