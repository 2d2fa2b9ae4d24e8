"""The training batch contract between the data pipeline and the models, and prompt cutting.

Dimensions: b batch, nt phonemes, n speech tokens (80/s), np prompt tokens, nv video frames
(25 fps), D speaker width, Dl / Df lip / face feature widths. Masks are bool, True = valid,
padding on the right.

Lengths per item: durations_tokens sums to the item's n (token_mask), durations_frames to its
nv (video_mask); in stage 2, n = timing.tokens_for_frames(nv).

The reference prompt (B.2.1 "Contextual Modeling"): the DFPA sees reference prosody/acoustic
tokens as a separate segment before the target. Our choice for training, in `make_prompt`: a
random contiguous span of the SAME utterance (length U(min_frac, max_frac) x n) is the prompt,
and that span of the target is left out of the DFM loss (`prompt_span`), so the model can never
lower its loss by copying the prompt into the target, while everything else it learns is
conditioned on a reference from the same speaker and session, as at inference. A dataset that
can pair utterances of one speaker may instead pass another utterance's tokens as the prompt
with `prompt_span` = (0, 0) (nothing excluded). When a batch has no prompt at all, the model
calls `make_prompt` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch
from torch import Tensor

from dubcli.config import ModelConfig
from dubcli.model.masks import lengths_to_mask
from dubcli.text.phonemes import PAD_ID


@dataclass(frozen=True)
class Batch:
    """One collated batch. Stage-1 batches leave the video fields None."""

    phonemes: Tensor  # (b, nt) long, PAD_ID at padding
    phoneme_mask: Tensor  # (b, nt) bool
    durations_tokens: Tensor  # (b, nt) long, tokens per phoneme; sums to n per item
    prosody: Tensor  # (b, 1, n) long
    content: Tensor  # (b, 2, n) long
    acoustic: Tensor  # (b, 3, n) long
    token_mask: Tensor  # (b, n) bool
    speaker: Tensor  # (b, D) float
    durations_frames: Tensor | None = None  # (b, nt) long, video frames per phoneme; sums to nv
    prompt_prosody: Tensor | None = None  # (b, 1, np) long
    prompt_acoustic: Tensor | None = None  # (b, 3, np) long
    prompt_mask: Tensor | None = None  # (b, np) bool
    prompt_span: Tensor | None = None  # (b, 2) long [start, stop) of the target the prompt was
    #                                   cut from (left out of the DFM loss); (0, 0) = none
    lip: Tensor | None = None  # (b, nv, Dl) float
    face: Tensor | None = None  # (b, nv, Df) float
    video_mask: Tensor | None = None  # (b, nv) bool
    ids: tuple[str, ...] | None = None  # utterance ids, for logs

    @property
    def size(self) -> int:
        return int(self.phonemes.shape[0])

    @property
    def token_lengths(self) -> Tensor:
        return self.token_mask.sum(dim=1)

    @property
    def has_video(self) -> bool:
        return self.lip is not None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with every tensor on `device`."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                moved[f.name] = v.to(device, non_blocking=non_blocking)
        return replace(self, **moved)

    def check(self, video: bool = False) -> Batch:
        """Raise ValueError naming the first violated part of the contract; returns self."""
        b, nt = self.phonemes.shape
        n = self.token_mask.shape[1]
        _expect(self.phoneme_mask, (b, nt), torch.bool, "phoneme_mask")
        _expect(self.durations_tokens, (b, nt), torch.long, "durations_tokens")
        _expect(self.token_mask, (b, n), torch.bool, "token_mask")
        for name in ("prosody", "content", "acoustic"):  # codebook counts come from the config
            t = getattr(self, name)
            if t.dim() != 3 or t.shape[0] != b or t.shape[2] != n or t.dtype != torch.long:
                raise ValueError(f"batch.{name} must be long (b={b}, q, n={n}), got {_desc(t)}")
        if self.speaker.dim() != 2 or self.speaker.shape[0] != b:
            raise ValueError(f"batch.speaker must be (b={b}, D), got {_desc(self.speaker)}")
        dur = self.durations_tokens.masked_fill(~self.phoneme_mask, 0)
        if (dur < 0).any() or not torch.equal(dur.sum(1), self.token_lengths):
            raise ValueError("batch.durations_tokens must be >= 0 and sum to each item's tokens")
        if self.prompt_prosody is not None:
            if self.prompt_acoustic is None or self.prompt_mask is None:
                raise ValueError("batch.prompt_* must be given together")
            np_ = self.prompt_mask.shape[1]
            _expect(self.prompt_mask, (b, np_), torch.bool, "prompt_mask")
            if self.prompt_prosody.shape[-1] != np_ or self.prompt_acoustic.shape[-1] != np_:
                raise ValueError("batch.prompt_prosody/acoustic length != prompt_mask length")
        if video or self.lip is not None:
            if self.lip is None or self.face is None or self.video_mask is None:
                raise ValueError("a stage-2 batch needs lip, face and video_mask")
            nv = self.video_mask.shape[1]
            _expect(self.video_mask, (b, nv), torch.bool, "video_mask")
            if self.lip.shape[:2] != (b, nv) or self.face.shape[:2] != (b, nv):
                raise ValueError(f"batch.lip/face must be (b={b}, nv={nv}, dim)")
            if self.durations_frames is None:
                raise ValueError("a stage-2 batch needs durations_frames")
            _expect(self.durations_frames, (b, nt), torch.long, "durations_frames")
            fdur = self.durations_frames.masked_fill(~self.phoneme_mask, 0)
            if (fdur < 0).any() or not torch.equal(fdur.sum(1), self.video_mask.sum(1)):
                raise ValueError("batch.durations_frames must be >= 0 and sum to each item's nv")
        return self


class Prompt(NamedTuple):
    prosody: Tensor  # (b, 1, np) long
    acoustic: Tensor  # (b, 3, np) long
    mask: Tensor  # (b, np) bool
    span: Tensor  # (b, 2) long [start, stop) in the source sequence


def make_prompt(
    prosody: Tensor,
    acoustic: Tensor,
    token_mask: Tensor,
    min_frac: float = 0.15,
    max_frac: float = 0.4,
    generator: torch.Generator | None = None,
) -> Prompt:
    """Cut a random contiguous span of each utterance as its reference prompt.

    prosody (b, 1, n), acoustic (b, 3, n), token_mask (b, n) -> Prompt with np = the longest
    span. Span length = round(U(min_frac, max_frac) * n_i), clipped to [1, n_i - 1] (0 for an
    item with fewer than 2 tokens: it gets an empty prompt); start uniform over the valid range.
    A dataset can call it on one item (b = 1). Draws come from `generator` (CPU by default).
    """
    b, _, n = prosody.shape
    lengths = token_mask.sum(dim=1).cpu()
    gen_dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(b, generator=generator, device=gen_dev).cpu()
    v = torch.rand(b, generator=generator, device=gen_dev).cpu()
    frac = min_frac + (max_frac - min_frac) * u
    span_len = torch.round(frac * lengths).long().clamp(min=1)
    span_len = torch.minimum(span_len, (lengths - 1).clamp(min=0))
    start = torch.floor(v * (lengths - span_len + 1).clamp(min=1)).long()
    start = torch.minimum(start, lengths - span_len)
    np_ = max(int(span_len.max().item()) if b else 0, 0)
    idx = (start[:, None] + torch.arange(np_)[None, :]).clamp(max=max(n - 1, 0))
    idx = idx.to(prosody.device)
    mask = lengths_to_mask(span_len, np_).to(prosody.device)

    def cut(x: Tensor) -> Tensor:
        if np_ == 0:
            return x[..., :0]
        out = torch.gather(x, 2, idx[:, None, :].expand(b, x.shape[1], np_))
        return out.masked_fill(~mask[:, None, :], 0)

    span = torch.stack([start, start + span_len], dim=1).to(prosody.device)
    return Prompt(cut(prosody), cut(acoustic), mask, span)


def span_mask(span: Tensor | None, n: int) -> Tensor | None:
    """(b, 2) [start, stop) -> (b, n) bool, True inside the span (None -> None)."""
    if span is None:
        return None
    pos = torch.arange(n, device=span.device)[None, :]
    return (pos >= span[:, :1]) & (pos < span[:, 1:2])


def _expect(t: Tensor, shape: tuple[int, ...], dtype: torch.dtype, name: str) -> None:
    if tuple(t.shape) != shape or t.dtype != dtype:
        raise ValueError(f"batch.{name} must be {dtype} {shape}, got {_desc(t)}")


def _desc(t: Tensor) -> str:
    return f"{t.dtype} {tuple(t.shape)}"


# --- generation inputs: accept one item or a batch -----------------------------------------


def as_phonemes(phonemes: Tensor, device) -> tuple[Tensor, Tensor]:
    """(nt,) or (b, nt) long, PAD_ID padded -> (phonemes (b, nt), mask (b, nt)) on device."""
    ph = torch.as_tensor(phonemes)
    if ph.dim() == 1:
        ph = ph[None]
    if ph.dim() != 2 or ph.dtype != torch.long or ph.shape[1] == 0:
        raise ValueError(
            f"phonemes must be long (nt,) or (b, nt), got {ph.dtype} {tuple(ph.shape)}"
        )
    ph = ph.to(device)
    mask = ph != PAD_ID
    if not mask.any(dim=1).all():
        raise ValueError("every phoneme sequence needs at least one non-padding phoneme")
    return ph, mask


def as_speaker(speaker: Tensor, b: int, device) -> Tensor:
    """(D,) or (b, D) -> (b, D) float32 (one row is shared by the batch)."""
    spk = torch.as_tensor(speaker, dtype=torch.float32).to(device)
    spk = spk[None] if spk.dim() == 1 else spk
    if spk.shape[0] == 1 and b > 1:
        spk = spk.expand(b, -1)
    if spk.dim() != 2 or spk.shape[0] != b:
        raise ValueError(f"speaker must be (D,) or (b={b}, D), got {tuple(spk.shape)}")
    return spk


def as_video(x: Tensor, b: int, dim: int, device) -> Tensor:
    """(nv, dim) or (b, nv, dim) -> (b, nv, dim) float32."""
    v = torch.as_tensor(x, dtype=torch.float32).to(device)
    v = v[None] if v.dim() == 2 else v
    if v.dim() != 3 or v.shape[0] != b or v.shape[2] != dim or v.shape[1] == 0:
        raise ValueError(
            f"visual features must be (nv, {dim}) or (b={b}, nv, {dim}), got {tuple(v.shape)}"
        )
    return v


def as_prompt(prosody, acoustic, mask, b: int, cfg: ModelConfig, dev) -> tuple[Tensor, Tensor]:
    """Reference prosody (qp, np)|(b, qp, np) + acoustic (qa, np)|(b, qa, np) tokens
    -> ((b, q, np) long, (b, np) bool); None -> an empty prompt."""
    if prosody is None or acoustic is None:
        if (prosody is None) != (acoustic is None):
            raise ValueError("give both prompt_prosody and prompt_acoustic, or neither")
        return (
            torch.zeros(b, cfg.n_dfm_streams, 0, dtype=torch.long, device=dev),
            torch.zeros(b, 0, dtype=torch.bool, device=dev),
        )
    p, a = torch.as_tensor(prosody).to(dev), torch.as_tensor(acoustic).to(dev)
    p, a = (p[None] if p.dim() == 2 else p), (a[None] if a.dim() == 2 else a)
    if p.shape[1] != cfg.n_prosody or a.shape[1] != cfg.n_acoustic or p.shape[2] != a.shape[2]:
        raise ValueError(
            f"prompt must be prosody ({cfg.n_prosody}, np) and acoustic ({cfg.n_acoustic}, np); "
            f"got {tuple(p.shape)} and {tuple(a.shape)}"
        )
    prompt = torch.cat([p, a], dim=1).long()
    if prompt.shape[0] == 1 and b > 1:
        prompt = prompt.expand(b, -1, -1)
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= cfg.vocab):
        raise ValueError(f"prompt tokens must lie in [0, {cfg.vocab})")
    if mask is None:
        mask = lengths_to_mask(torch.full((b,), prompt.shape[2]), prompt.shape[2])
    return prompt, mask.to(dev)
