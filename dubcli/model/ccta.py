"""Content-Consistent Temporal Adaptation, CCTA (paper 3.4.3, eqs. 5 and 6).

Dimensions: b batch, nt phonemes, n speech tokens, d text width, d_s Synchronizer width,
d_p prosody prior width, d_c content latent width, qc content codebooks, V codes.
Masks are bool, True = valid.

The stage-1 content model is reused with its duration path replaced by the Synchronizer:
  student: fuse(Synchronizer output, global prosody prior) (channel concat + linear, 3.4.3)
           -> the content model's FFT decoder blocks (F_s) -> content predictor -> FROZEN
           projection (z_c) and FROZEN shared content head (logits, eq. 6)
  teacher: a frozen copy of the whole stage-1 content model run with ground-truth token
           durations; its decoder output is F_t.
Eq. 5 compares the time-averaged F_s and F_t by cosine similarity. The phoneme encoder stays
trainable: it also provides the Synchronizer's keys and values.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dubcli.config import ModelConfig
from dubcli.model.content import ContentModel, length_regulate
from dubcli.model.masks import masked_mean, zero_pad


class CCTAOutput(NamedTuple):
    features: Tensor  # (b, n, d) student pre-predictor features F_s
    latent: Tensor  # (b, n, d_c) z_c
    logits: Tensor  # (b, qc, n, V)


class CCTA(nn.Module):
    """Student content path of stage 2. `content` is the (stage-1 initialized) ContentModel."""

    def __init__(self, cfg: ModelConfig, fuse_prior: bool = True, freeze_heads: bool = True):
        super().__init__()
        self.content = ContentModel(cfg)
        self.fuse_prior = fuse_prior
        d_in = cfg.sync_dim + (cfg.fapro_dim if fuse_prior else 0)
        self.fusion = nn.Linear(d_in, cfg.text_dim)  # channel concat + linear (3.4.3)
        # The duration path is replaced by the Synchronizer: never used, never trained.
        frozen = [self.content.duration]
        if freeze_heads:  # 3.4.3: projection and content head frozen
            frozen += [self.content.proj, self.content.head]
        for module in frozen:
            module.requires_grad_(False)

    def encode_phonemes(self, phonemes: Tensor, phoneme_mask: Tensor) -> Tensor:
        """(b, nt) -> phoneme encodings (b, nt, d) for the Synchronizer."""
        return self.content.encode(phonemes, phoneme_mask)

    def forward(self, sync: Tensor, token_mask: Tensor, prior: Tensor | None = None) -> CCTAOutput:
        """sync (b, n, d_s), token_mask (b, n), prior (b, n, d_p) when fusing -> CCTAOutput."""
        if self.fuse_prior:
            if prior is None:
                raise ValueError("CCTA built with prosody fusion needs the FaPro prior")
            sync = torch.cat([sync, prior.to(sync.dtype)], dim=-1)
        x = zero_pad(self.fusion(sync), token_mask)
        feats = self.content.decode(x, token_mask)
        pred = self.content.predict(feats, token_mask)
        return CCTAOutput(feats, pred.latent, pred.logits)


@torch.no_grad()
def teacher_features(
    teacher: ContentModel,
    phonemes: Tensor,
    phoneme_mask: Tensor,
    durations_tokens: Tensor,
    n_out: int,
) -> tuple[Tensor, Tensor]:
    """(F_t (b, n, d), its token mask (b, n)): the frozen stage-1 decoder output with the given
    token durations (ground truth in training; the Synchronizer's with dfpa_latent "text")."""
    h = teacher.encode(phonemes, phoneme_mask)
    x, mask = length_regulate(h, durations_tokens.masked_fill(~phoneme_mask, 0), n_out)
    return teacher.decode(x, mask), mask


def distillation_loss(student: Tensor, teacher: Tensor, mask: Tensor) -> Tensor:
    """Eq. 5: mean over the batch of 1 - cos(AvgPool_t(F_s), AvgPool_t(F_t)), valid tokens."""
    s = masked_mean(student.float(), mask)[:, 0]  # (b, d)
    t = masked_mean(teacher.float(), mask)[:, 0]
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
