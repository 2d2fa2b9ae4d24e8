"""Synchronizer: video-text and speech-text dual alignment (paper 3.4.2, 3.5, B.2.2, Figure 4).

Dimensions: b batch, nv video frames, n speech tokens, nt phonemes, d Synchronizer width,
d_t phoneme encoding width, h heads, Dl lip feature width, Vp phoneme vocabulary.
Masks are bool, True = valid.

lip (b, nv, Dl) -> conv to the shared space -> LN -> cross-attention blocks (queries lip frames,
keys/values phoneme encodings) -> H_v and the last block's map A_v (eq. 2 loss vs the binary
frame-phoneme matrix from ground-truth durations) -> MAS on A_v -> phoneme durations in frames
-> expanded phoneme encodings, a linear "light fusion" projection, added to H_v -> learnable
interp-conv upsampler x16/5 to the token rate (eq. 3) -> cross-attention blocks (queries speech
positions, keys/values phonemes) -> A_s (eq. 4 loss vs the token-level matrix) -> ConvNeXt V2
refinement -> LN -> the aligned representation; a CTC head over phonemes sits on it (eq. 7).

Attention: standard scaled dot-product cross-attention (B.2.2 names Monotonic Multi-Head
Attention [36]; monotonicity is imposed here by the contrastive losses and MAS instead). The
contrastive losses use the head-averaged raw logits of the last block.
Zero-duration markers (<wb>) are left out of MAS, so every phoneme MAS sees gets >= 1 frame while
word boundaries get none, as in the forced-alignment targets.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dubcli.align.mas import monotonic_alignment_search
from dubcli.config import ModelConfig
from dubcli.model.attention import CrossAttentionBlock
from dubcli.model.convnext import ConvNeXtV2Stack
from dubcli.model.fapro import VideoConv
from dubcli.model.masks import check_mask, zero_pad
from dubcli.model.upsample import InterpConvUpsampler
from dubcli.text.phonemes import BLANK_ID, PAD_ID, WORD_BOUNDARY_ID


class SyncOutput(NamedTuple):
    out: Tensor  # (b, n, d) aligned representation (after refinement + LN)
    token_mask: Tensor  # (b, n) bool
    ctc_logits: Tensor  # (b, n, Vp)
    attn_video: Tensor  # (b, nv, nt) head-mean attention of the last lip->phoneme block
    scores_video: Tensor  # (b, nv, nt) head-mean raw logits (eq. 2's s_ij)
    attn_speech: Tensor  # (b, n, nt) head-mean attention of the last speech->phoneme block
    scores_speech: Tensor  # (b, n, nt) head-mean raw logits (eq. 4's s_ij)
    path: Tensor  # (b, nt, nv) hard 0/1 MAS alignment
    durations_frames: Tensor  # (b, nt) long: MAS frames per phoneme


class Synchronizer(nn.Module):
    """lip (b, nv, Dl) + phoneme encodings (b, nt, d_t) -> SyncOutput at the token rate."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, dt = cfg.sync_dim, cfg.text_dim
        self.lip_in = VideoConv(cfg.lip_dim, d, cfg.video_conv_kernel)
        self.lip_norm = nn.LayerNorm(d)

        def blocks(k: int) -> nn.ModuleList:
            return nn.ModuleList(
                CrossAttentionBlock(d, dt, cfg.sync_heads, cfg.sync_ff, cfg.dropout)
                for _ in range(k)
            )

        self.video_blocks = blocks(cfg.sync_video_layers)
        self.expand_proj = nn.Linear(dt, d)  # the "light fusion network" (B.2.2)
        self.upsample = InterpConvUpsampler(d, d, d, n_convs=cfg.upsample_convs)
        self.speech_blocks = blocks(cfg.sync_speech_layers)
        self.refine = ConvNeXtV2Stack(cfg.sync_convnext_layers, d, cfg.sync_convnext_inter)
        self.norm = nn.LayerNorm(d)
        self.ctc_head = nn.Linear(d, cfg.phoneme_vocab)

    def forward(
        self,
        lip: Tensor,
        video_mask: Tensor,
        phon: Tensor,
        phonemes: Tensor,
        phoneme_mask: Tensor,
        token_lengths: Tensor | None = None,
        n_out: int | None = None,
        durations_frames: Tensor | None = None,
    ) -> SyncOutput:
        """`token_lengths` (b,) default to round-half-up(nv * 16 / 5); `n_out` pads to n.
        `durations_frames` (b, nt): frames per phoneme to use instead of MAS on the attention
        (the ground-truth-durations oracle of `dubcli eval --oracles`)."""
        b, nv, _ = lip.shape
        check_mask(video_mask, b, nv, "video_mask")
        check_mask(phoneme_mask, b, phon.shape[1], "phoneme_mask")
        phon = zero_pad(phon, phoneme_mask)
        x = zero_pad(self.lip_norm(self.lip_in(lip, video_mask)), video_mask)
        for block in self.video_blocks:
            ca = block(x, phon, video_mask, phoneme_mask)
            x = ca.out
        attn_v, scores_v = ca.attn.mean(dim=1), ca.scores.mean(dim=1)  # (b, nv, nt)

        # Duration-based regulation: MAS on the (detached) attention -> expand phonemes.
        alignable = phoneme_mask & (phonemes != WORD_BOUNDARY_ID)
        if durations_frames is None:
            path = mas_path(attn_v.detach(), video_mask, phoneme_mask, alignable)  # (b, nt, nv)
        else:
            path = alignment_matrix(durations_frames, nv, phoneme_mask).transpose(1, 2)
            path = path * video_mask[:, None, :]
        expanded = path.transpose(1, 2).to(phon.dtype) @ phon  # (b, nv, d_t)
        x = zero_pad(x + self.expand_proj(expanded), video_mask)

        up = self.upsample(x, video_mask, token_lengths, n_out)  # eq. 3
        s, tmask = up.out, up.mask
        for block in self.speech_blocks:
            ca = block(s, phon, tmask, phoneme_mask)
            s = ca.out
        attn_s, scores_s = ca.attn.mean(dim=1), ca.scores.mean(dim=1)  # (b, n, nt)
        out = zero_pad(self.norm(self.refine(s, tmask)), tmask)
        return SyncOutput(
            out,
            tmask,
            self.ctc_head(out),
            attn_v,
            scores_v,
            attn_s,
            scores_s,
            path,
            path.sum(dim=-1).round().long(),
        )


def mas_path(attn: Tensor, frame_mask: Tensor, phoneme_mask: Tensor, alignable: Tensor) -> Tensor:
    """MAS over log attention (b, nf, nt) restricted to `alignable` phonemes -> (b, nt, nf) 0/1.

    Non-alignable phonemes (<wb>, padding) get no frames. An item with more alignable phonemes
    than frames uses MAS's skip mode (some phonemes get zero frames) instead of failing.
    """
    b, nf, nt = attn.shape
    alignable = alignable & phoneme_mask
    none = ~alignable.any(dim=1)
    alignable = torch.where(none[:, None], phoneme_mask, alignable)  # degenerate: use all
    counts = alignable.sum(dim=1)
    nc = max(int(counts.max().item()), 1)
    order = torch.argsort((~alignable).to(torch.int8), dim=1, stable=True)[:, :nc]  # (b, nc)
    logp = torch.log(attn.float().clamp_min(1e-8)).transpose(1, 2)  # (b, nt, nf)
    compact = torch.gather(logp, 1, order[..., None].expand(b, nc, nf))
    path_c = monotonic_alignment_search(
        compact, counts.clamp_min(1), frame_mask.sum(dim=1).clamp_min(1), on_short="skip"
    )  # (b, nc, nf)
    path_c = path_c * (torch.arange(nc, device=attn.device)[None, :] < counts[:, None])[..., None]
    path_c = path_c * frame_mask[:, None, :]
    path = attn.new_zeros(b, nt, nf, dtype=torch.float32)
    return path.scatter(1, order[..., None].expand(b, nc, nf), path_c.float())


def alignment_matrix(durations: Tensor, n: int, phoneme_mask: Tensor) -> Tensor:
    """Binary alignment A* (b, n, nt): 1 where position j lies in phoneme i's span.

    durations (b, nt) long (frames or tokens per phoneme, 0 at padding), spans laid end to end.
    """
    dur = durations.masked_fill(~phoneme_mask, 0).clamp_min(0)
    ends = dur.cumsum(dim=1)  # (b, nt)
    starts = ends - dur
    pos = torch.arange(n, device=dur.device)[None, :, None]  # (1, n, 1)
    return ((pos >= starts[:, None, :]) & (pos < ends[:, None, :])).float()


def contrastive_alignment_loss(
    scores: Tensor,
    target: Tensor,
    query_mask: Tensor,
    key_mask: Tensor,
    temperature: float = 1.0,
) -> Tensor:
    """Eqs. 2 / 4: -mean_j log sum_i A*_ji softmax_i(s_ji / tau), over valid queries j.

    scores (b, nq, nk) raw logits, target (b, nq, nk) 0/1, query_mask (b, nq), key_mask (b, nk).
    The softmax runs over valid keys (phonemes); a query without a positive key is skipped.
    """
    logits = (scores.float() / temperature).masked_fill(~key_mask[:, None, :], float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    pos = (target > 0) & key_mask[:, None, :]
    picked = torch.logsumexp(logp.masked_fill(~pos, float("-inf")), dim=-1)  # (b, nq)
    valid = query_mask & pos.any(dim=-1)
    return -(picked.masked_fill(~valid, 0.0)).sum() / valid.sum().clamp_min(1)


def ctc_targets(phonemes: Tensor, phoneme_mask: Tensor) -> tuple[Tensor, Tensor]:
    """CTC labels: the valid phonemes without zero-duration markers (<wb>) and specials.

    -> (targets (b, L) long padded with PAD_ID, lengths (b,)).
    """
    keep = phoneme_mask & (phonemes != WORD_BOUNDARY_ID) & (phonemes != PAD_ID)
    keep = keep & (phonemes != BLANK_ID)
    lengths = keep.sum(dim=1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    targets = torch.gather(phonemes, 1, order)[:, : max(int(lengths.max().item()), 1)]
    pos = torch.arange(targets.shape[1], device=phonemes.device)[None, :]
    return targets.masked_fill(pos >= lengths[:, None], PAD_ID), lengths


def ctc_loss(logits: Tensor, token_mask: Tensor, phonemes: Tensor, phoneme_mask: Tensor) -> Tensor:
    """Auxiliary CTC (3.5) of the Synchronizer output against the phoneme sequence.

    logits (b, n, Vp), token_mask (b, n); blank = BLANK_ID; mean over items of the loss per
    target phoneme (torch's 'mean'); infeasible items (too short) contribute 0.
    """
    targets, tlen = ctc_targets(phonemes, phoneme_mask)
    logp = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (n, b, Vp)
    return F.ctc_loss(
        logp,
        targets,
        token_mask.sum(dim=1),
        tlen,
        blank=BLANK_ID,
        reduction="mean",
        zero_infinity=True,
    )
