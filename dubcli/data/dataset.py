"""A torch Dataset over one split of a prepared dataset, and the collate into `Batch`.

Dimensions: nt phonemes, n speech tokens (80/s), np prompt tokens, nv video frames (25 fps),
D speaker width, Dl / Df lip / face feature widths.

Per item: phoneme ids and durations, the prosody/content/acoustic tokens, the speaker embedding,
a reference prompt, and (stage 2) lip/face features. Two choices made here:

- The prompt (paper B.2.1 "Contextual Modeling", Setting 2): a window of ANOTHER utterance of the
  same speaker (`ref_ids`, same split) with `prompt_span` = (0, 0); an item without one gets
  `model.batch.make_prompt` on itself, whose span is then left out of the DFM loss.
- Long items are cropped to `max_tokens` on phoneme boundaries, so durations stay exact; in
  stage 2 the token window is then fitted to n = tokens_for_frames(nv) (model/batch.py) by
  moving its edges by at most a token or two (the first/last phoneme absorb the difference).

All randomness (crop start, reference choice, prompt window) comes from a generator seeded by
(seed, epoch, item index), never the global RNG: the same item in the same epoch is the same
tensors whatever the worker, and a resumed run sees exactly what an uninterrupted run saw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dubcli.data.manifest import CODEC_FILE, ShardReader, Utterance, load_split, read_dataset_info
from dubcli.errors import InputError
from dubcli.model.batch import Batch, make_prompt
from dubcli.text.phonemes import PAD_ID
from dubcli.timing import tokens_for_frames


@dataclass(frozen=True)
class DatasetOptions:
    video: bool = False  # stage 2: load lip / face / video_valid and durations_frames
    max_tokens: int = 1600  # crop items longer than this (20 s at 80 tokens/s)
    random_crop: bool = True  # False: crops start at the first phoneme (validation)
    prompt: str = "ref"  # "ref": another utterance when there is one; "self": same-utterance span
    prompt_max_tokens: int = 400  # reference window cap (5 s)
    prompt_min_frac: float = 0.15  # same-utterance span, as in model/batch.py make_prompt
    prompt_max_frac: float = 0.4
    seed: int = 0

    def __post_init__(self):
        if self.prompt not in ("ref", "self"):
            raise ValueError(f"prompt must be 'ref' or 'self', got {self.prompt!r}")
        if self.max_tokens < 2 or self.prompt_max_tokens < 1:
            raise ValueError("max_tokens must be >= 2 and prompt_max_tokens >= 1")


@dataclass(frozen=True)
class DataSpec:
    """Facts about the data a model must agree with."""

    vocab: int  # codes per token stream
    speaker_dim: int
    lip_dim: int | None
    face_dim: int | None
    features_version: str | None
    phoneme_vocab_version: str | None
    info: dict[str, Any]  # dataset.json as read


@dataclass(frozen=True)
class Item:
    id: str
    phonemes: Tensor  # (nt,) long
    durations_tokens: Tensor  # (nt,) long
    durations_frames: Tensor | None  # (nt,) long
    tokens: Tensor  # (6, n) long: prosody, content x2, acoustic x3
    speaker: Tensor  # (D,) float32
    prompt: Tensor  # (4, np) long: prosody, acoustic x3
    prompt_span: tuple[int, int]  # [start, stop) of this item's tokens used as prompt; (0, 0)
    lip: Tensor | None  # (nv, Dl) float32
    face: Tensor | None  # (nv, Df) float32


class DubDataset(torch.utils.data.Dataset):
    """Items of one split. `lengths` (tokens after cropping) feeds the token-budget sampler."""

    def __init__(self, root: str | os.PathLike, utterances: Sequence[Utterance], options=None):
        self.root = Path(root)
        self.options = options or DatasetOptions()
        self.utts = list(utterances)
        if not self.utts:
            raise InputError(f"{self.root}: no utterances to train on")
        self.by_id = {u.id: u for u in self.utts}
        self.reader = ShardReader(self.root)
        self.epoch = 0
        self.lengths = [
            _fit_len(u, self.options) if self.options.video else min(u.n_tokens, self._cap)
            for u in self.utts
        ]

    @classmethod
    def open(cls, spec: str | os.PathLike, options: DatasetOptions | None = None) -> DubDataset:
        """`DIR/<split>` or a manifest path (dubcli.data.manifest.load_split)."""
        root, utts = load_split(spec)
        return cls(root, utts, options)

    @property
    def _cap(self) -> int:
        return self.options.max_tokens

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.utts)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.options.seed, self.epoch, index])

    def __getitem__(self, index: int) -> Item:
        utt = self.utts[index]
        rng = self._rng(index)
        opts = self.options
        tok = self._tokens(utt)
        dt = np.asarray(utt.durations_tokens, dtype=np.int64)
        df = np.asarray(utt.durations_frames, dtype=np.int64)
        lip = face = None
        if opts.video:
            lip = self.reader.get(utt, "lip").astype(np.float32)
            face = self.reader.get(utt, "face").astype(np.float32)
            if lip.shape[0] != utt.n_frames or face.shape[0] != utt.n_frames:
                raise InputError(
                    f"{self.root / utt.shard}: {utt.id} has {lip.shape[0]} lip / "
                    f"{face.shape[0]} face frames, the manifest says {utt.n_frames}"
                )
        ph_lo, ph_hi = crop_phonemes(dt, self._cap, rng if opts.random_crop else None)
        if opts.video:
            (tb, dt), (fb, df) = fit_video_window(dt, df, ph_lo, ph_hi, len(tok[0]))
            lip, face = lip[fb[0] : fb[1]], face[fb[0] : fb[1]]
        else:
            tb = _bounds(dt)[[ph_lo, ph_hi]]
            dt, df = dt[ph_lo:ph_hi], df[ph_lo:ph_hi]
        tok = tok[:, tb[0] : tb[1]]
        phonemes = np.asarray(utt.phoneme_ids[ph_lo:ph_hi], dtype=np.int64)
        prompt, span = self._prompt(utt, tok, rng)
        return Item(
            id=utt.id,
            phonemes=torch.from_numpy(phonemes),
            durations_tokens=torch.from_numpy(np.ascontiguousarray(dt)),
            durations_frames=torch.from_numpy(np.ascontiguousarray(df)) if opts.video else None,
            tokens=torch.from_numpy(np.ascontiguousarray(tok)),
            speaker=torch.from_numpy(self.reader.get(utt, "speaker").astype(np.float32)),
            prompt=prompt,
            prompt_span=span,
            lip=torch.from_numpy(np.ascontiguousarray(lip)) if lip is not None else None,
            face=torch.from_numpy(np.ascontiguousarray(face)) if face is not None else None,
        )

    def _tokens(self, utt: Utterance) -> np.ndarray:
        """(6, n) int64 for one utterance, checked against the manifest."""
        parts = [self.reader.get(utt, k) for k in ("prosody", "content", "acoustic")]
        for name, arr, q in zip(("prosody", "content", "acoustic"), parts, (1, 2, 3), strict=True):
            if arr.ndim != 2 or arr.shape != (q, utt.n_tokens):
                raise InputError(
                    f"{self.root / utt.shard}: {utt.id}/{name} has shape {arr.shape}, "
                    f"expected ({q}, {utt.n_tokens})"
                )
        return np.concatenate(parts, axis=0).astype(np.int64)

    def _prompt(self, utt: Utterance, tok: np.ndarray, rng) -> tuple[Tensor, tuple[int, int]]:
        """(4, np) prompt (prosody + acoustic streams) and the span it took from `tok`."""
        opts = self.options
        refs = [r for r in utt.ref_ids if r in self.by_id and r != utt.id]
        if opts.prompt == "ref" and refs:
            ref = self.by_id[refs[int(rng.integers(len(refs)))]]
            rtok = self._tokens(ref)[[0, 3, 4, 5]]
            n = min(rtok.shape[1], opts.prompt_max_tokens)
            start = int(rng.integers(rtok.shape[1] - n + 1))
            return torch.from_numpy(np.ascontiguousarray(rtok[:, start : start + n])), (0, 0)
        t = torch.from_numpy(tok)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        p = make_prompt(
            t[None, 0:1],
            t[None, 3:6],
            torch.ones(1, t.shape[1], dtype=torch.bool),
            opts.prompt_min_frac,
            opts.prompt_max_frac,
            generator=gen,
        )
        start, stop = (int(x) for x in p.span[0])
        return torch.cat([p.prosody[0], p.acoustic[0]], dim=0), (start, stop)


def _bounds(durations: np.ndarray) -> np.ndarray:
    """Phoneme boundaries (nt + 1,): 0, cumulative durations."""
    return np.concatenate([[0], np.cumsum(durations)]).astype(np.int64)


def crop_phonemes(
    durations: np.ndarray, max_tokens: int, rng: np.random.Generator | None
) -> tuple[int, int]:
    """[lo, hi) phonemes whose tokens fit max_tokens: all of them when they fit; otherwise the
    longest window from a random (or the first) start phoneme. At least one phoneme."""
    bounds = _bounds(durations)
    nt = len(durations)
    if bounds[-1] <= max_tokens:
        return 0, nt
    # Starts from which at least max_tokens/2 tokens remain, so crops are not tiny tails.
    starts = np.nonzero(bounds[:-1] <= bounds[-1] - max_tokens // 2)[0]
    lo = int(starts[rng.integers(len(starts))]) if rng is not None and len(starts) else 0
    hi = int(np.searchsorted(bounds, bounds[lo] + max_tokens, side="right")) - 1
    return lo, max(hi, lo + 1)


def fit_video_window(
    dt: np.ndarray, df: np.ndarray, lo: int, hi: int, n_tokens: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Phonemes [lo, hi) -> ((token window, token durations), (frame window, frame durations))
    with window length n = tokens_for_frames(nv) exactly (the stage-2 contract). The token
    window keeps its start and moves its end (or, at the end of the audio, its start);
    inner boundaries are clipped into it, so the edge phonemes absorb the difference."""
    tb, fb = _bounds(dt)[lo : hi + 1], _bounds(df)[lo : hi + 1]
    f0, f1 = int(fb[0]), int(fb[-1])
    while f1 > f0 and tokens_for_frames(f1 - f0) > n_tokens:  # audio shorter than the video
        f1 -= 1
    need = tokens_for_frames(f1 - f0)
    t0 = min(int(tb[0]), n_tokens - need)
    t1 = t0 + need
    tb = np.clip(tb, t0, t1)
    tb[0], tb[-1] = t0, t1
    fb = np.clip(fb, f0, f1)
    return ((np.array([t0, t1]), np.diff(tb)), (np.array([f0, f1]), np.diff(fb)))


def _fit_len(u: Utterance, opts: DatasetOptions) -> int:
    """Token length of a stage-2 item after cropping (upper bound when the crop is random)."""
    return min(tokens_for_frames(u.n_frames), u.n_tokens, opts.max_tokens + 3)


def collate(items: Sequence[Item]) -> Batch:
    """Pad items on the right into a Batch (model/batch.py): PAD_ID phonemes, token 0 padding
    under False masks, zero video features."""
    b = len(items)
    nt = max(len(it.phonemes) for it in items)
    n = max(it.tokens.shape[1] for it in items)
    np_ = max(it.prompt.shape[1] for it in items)
    phonemes = torch.full((b, nt), PAD_ID, dtype=torch.long)
    dur_t = torch.zeros(b, nt, dtype=torch.long)
    tokens = torch.zeros(b, 6, n, dtype=torch.long)
    prompt = torch.zeros(b, 4, np_, dtype=torch.long)
    pmask = torch.zeros(b, nt, dtype=torch.bool)
    tmask = torch.zeros(b, n, dtype=torch.bool)
    prmask = torch.zeros(b, np_, dtype=torch.bool)
    for i, it in enumerate(items):
        k, m, p = len(it.phonemes), it.tokens.shape[1], it.prompt.shape[1]
        phonemes[i, :k], dur_t[i, :k], pmask[i, :k] = it.phonemes, it.durations_tokens, True
        tokens[i, :, :m], tmask[i, :m] = it.tokens, True
        prompt[i, :, :p], prmask[i, :p] = it.prompt, True
    video = {}
    if items[0].lip is not None:
        nv = max(it.lip.shape[0] for it in items)
        lip = torch.zeros(b, nv, items[0].lip.shape[1])
        face = torch.zeros(b, nv, items[0].face.shape[1])
        vmask = torch.zeros(b, nv, dtype=torch.bool)
        dur_f = torch.zeros(b, nt, dtype=torch.long)
        for i, it in enumerate(items):
            v = it.lip.shape[0]
            lip[i, :v], face[i, :v], vmask[i, :v] = it.lip, it.face, True
            dur_f[i, : len(it.phonemes)] = it.durations_frames
        video = {"lip": lip, "face": face, "video_mask": vmask, "durations_frames": dur_f}
    return Batch(
        phonemes=phonemes,
        phoneme_mask=pmask,
        durations_tokens=dur_t,
        prosody=tokens[:, 0:1],
        content=tokens[:, 1:3],
        acoustic=tokens[:, 3:6],
        token_mask=tmask,
        speaker=torch.stack([it.speaker for it in items]),
        prompt_prosody=prompt[:, 0:1],
        prompt_acoustic=prompt[:, 1:4],
        prompt_mask=prmask,
        prompt_span=torch.tensor([it.prompt_span for it in items], dtype=torch.long),
        ids=tuple(it.id for it in items),
        **video,
    )


def describe_data(root: str | os.PathLike, utts: Sequence[Utterance]) -> DataSpec:
    """Token vocabulary (from the codec), speaker / lip / face widths (from the first item)."""
    from dubcli.checkpoint import read_metadata

    root = Path(root)
    info = read_dataset_info(root)
    vocab = info.get("vocab")
    if (root / CODEC_FILE).is_file():
        vocab = (read_metadata(root / CODEC_FILE).get("config") or {}).get("vocab", vocab)
    if vocab is None:
        raise InputError(f"{root}: cannot tell the token vocabulary (no {CODEC_FILE})")
    reader = ShardReader(root)
    first = utts[0]
    spk = reader.get(first, "speaker")
    lip = reader.get(first, "lip") if reader.has(first, "lip") else None
    face = reader.get(first, "face") if reader.has(first, "face") else None
    return DataSpec(
        vocab=int(vocab),
        speaker_dim=int(spk.shape[-1]),
        lip_dim=int(lip.shape[-1]) if lip is not None else None,
        face_dim=int(face.shape[-1]) if face is not None else None,
        features_version=info.get("features_version"),
        phoneme_vocab_version=info.get("phoneme_vocab") or info.get("vocab_version"),
        info=info,
    )
