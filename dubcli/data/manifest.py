"""The prepared-dataset format that `prepare` writes and `train` / `eval` read (DESIGN 7).

A prepared folder holds:

    dataset.json        dataset-level facts: versions (manifest, features, phoneme vocab, codec),
                        feature dims, layout, counts. Readers refuse versions they do not know.
    manifest.jsonl      one utterance a line (`Utterance`), in the order they were finished
    codec.safetensors   the codec (codebooks + stats) the tokens were made with
    shards/*.safetensors feature shards; tensor keys are "<utterance id>/<field>"
    failures.jsonl      items that failed, with reasons (prepare goes on without them)

Fields per utterance in a shard (t tokens at 80/s, nv video frames at 25 fps):
    prosody (1,t) content (2,t) acoustic (3,t) int16; speaker (D,) float32;
    lip (nv, LIP_DIM) face (nv, FACE_DIM) float16; video_valid (nv,) uint8 (1 = a face was seen)

Shards are written whole and atomically, and their manifest lines are appended only afterwards,
so a killed `prepare` never leaves a manifest line that points at a missing or partial shard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.errors import InputError
from dubcli.text.phonemes import encode

MANIFEST_VERSION = 1
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
CODEC_FILE = "codec.safetensors"
FAILURES_FILE = "failures.jsonl"
SHARD_DIR = "shards"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Utterance:
    """One manifest line. Durations are per phoneme and sum exactly to n_frames / n_tokens."""

    id: str
    split: str  # train | valid | test
    speaker: str
    text: str
    phonemes: tuple[str, ...]  # vocabulary symbols (dubcli.text.phonemes)
    durations_frames: tuple[int, ...]  # per phoneme, 25 fps video frames
    durations_tokens: tuple[int, ...]  # per phoneme, 80/s speech tokens
    n_frames: int
    n_tokens: int
    seconds: float
    shard: str  # shard file, relative to the dataset folder
    ref_ids: tuple[str, ...] = ()  # other utterances of the same speaker (Setting 2 references)
    style: dict[str, Any] | None = None  # SynthDub prosody style parameters, when known
    source: dict[str, str] = field(default_factory=dict)  # original media (video, audio, text)
    align_ok: bool = True  # False: durations are a fallback, not a forced alignment

    @property
    def phoneme_ids(self) -> list[int]:
        return encode(self.phonemes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Utterance:
        tuples = ("phonemes", "durations_frames", "durations_tokens", "ref_ids")
        kw = {k: (tuple(v) if k in tuples else v) for k, v in d.items() if k in _FIELDS}
        return cls(**kw)

    def check(self) -> None:
        """Raise ValueError when the durations do not add up (a corrupt or hand-edited line)."""
        if len(self.durations_frames) != len(self.phonemes) or len(self.durations_tokens) != len(
            self.phonemes
        ):
            raise ValueError(f"{self.id}: durations and phonemes differ in length")
        if (
            sum(self.durations_frames) != self.n_frames
            or sum(self.durations_tokens) != self.n_tokens
        ):
            raise ValueError(f"{self.id}: durations do not sum to n_frames/n_tokens")


_FIELDS = set(Utterance.__dataclass_fields__)


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """All lines of a manifest; a damaged line is an InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found (run dubcli prepare first)")
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                utt = Utterance.from_dict(json.loads(line))
                utt.check()
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                raise InputError(f"{path}:{lineno}: bad manifest line ({exc})") from exc
            out.append(utt)
    return out


def append_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Append lines and fsync: they become visible only once their shard is on disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for u in utterances:
            f.write(u.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_dataset_info(root: str | os.PathLike, info: dict[str, Any]) -> None:
    from dubcli.fsutil import atomic_write_text

    body = {"manifest_version": MANIFEST_VERSION, **info}
    atomic_write_text(Path(root) / DATASET_FILE, json.dumps(body, indent=2, sort_keys=True) + "\n")


def read_dataset_info(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        raise InputError(f"{root}: not a prepared dataset (no {DATASET_FILE}; run dubcli prepare)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt dataset file ({exc})") from exc
    if info.get("manifest_version") != MANIFEST_VERSION:
        raise InputError(
            f"{path}: dataset format {info.get('manifest_version')} is not the one this dubcli "
            f"reads ({MANIFEST_VERSION}); re-run dubcli prepare"
        )
    return info


def load_split(spec: str | os.PathLike) -> tuple[Path, list[Utterance]]:
    """`DIR` (all utterances), `DIR/<split>` (one split) or a manifest .jsonl path."""
    p = Path(spec)
    split = None
    if p.suffix == ".jsonl":
        root, utts = p.parent, read_manifest(p)
    else:
        if (
            not (p / DATASET_FILE).exists()
            and p.name in SPLITS
            and (p.parent / DATASET_FILE).exists()
        ):
            p, split = p.parent, p.name
        read_dataset_info(p)
        root, utts = p, read_manifest(p / MANIFEST_FILE)
    if split is not None:
        utts = [u for u in utts if u.split == split]
        if not utts:
            raise InputError(f"{spec}: the dataset has no '{split}' utterances")
    return root, utts


def write_shard(path: str | os.PathLike, items: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write {utterance id: {field: array}} as one safetensors shard, atomically."""
    from safetensors.numpy import save_file

    from dubcli.fsutil import atomic_path

    flat = {
        f"{uid}/{name}": np.ascontiguousarray(arr)
        for uid, d in items.items()
        for name, arr in d.items()
    }
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"dubcli": json.dumps({"kind": "shard"})})
    return Path(path)


class ShardReader:
    """Random access to utterance fields across shards; files opened lazily and kept open."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._open: dict[str, Any] = {}

    def _handle(self, shard: str):
        h = self._open.get(shard)
        if h is None:
            from safetensors import safe_open

            path = self.root / shard
            if not path.is_file():
                raise InputError(f"{path}: feature shard missing (re-run dubcli prepare)")
            h = self._open[shard] = safe_open(str(path), framework="numpy")
        return h

    def get(self, utt: Utterance, name: str) -> np.ndarray:
        key = f"{utt.id}/{name}"
        h = self._handle(utt.shard)
        if key not in h.keys():
            raise InputError(f"{self.root / utt.shard}: no field '{name}' for {utt.id}")
        return h.get_tensor(key)

    def has(self, utt: Utterance, name: str) -> bool:
        return f"{utt.id}/{name}" in self._handle(utt.shard).keys()

    def fields(self, utt: Utterance) -> Iterator[str]:
        prefix = utt.id + "/"
        return (k[len(prefix) :] for k in self._handle(utt.shard).keys() if k.startswith(prefix))
