"""Face-to-Prosody Mapper, FaPro (paper 3.4.1, B.2.2).

Dimensions: b batch, nv video frames (25 fps), n speech tokens (80/s), Df face feature width,
d FaPro width (256 in B.2.2), qp prosody codebooks, V codes. Masks are bool, True = valid.

face (b, nv, Df) -> 1D conv into the shared space (3.2) -> learnable interpolation-convolution
upsampler to the token rate -> ConvNeXt V2 stack -> LayerNorm -> prosody predictor (qp FFT
blocks, block k's output represents prosody codebook k, each block conditioned on the previous
ones) -> the global prosody prior p_prior (b, n, d), the last block's output.
Optional (not in the paper's eq. 7; weight w2_prosody_prior): a linear head on each codebook's
representation giving prosody-token logits, so the prior is trained to carry prosody directly
and not only through the downstream losses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from dubcli.config import ModelConfig
from dubcli.model.convnext import ConvNeXtV2Stack
from dubcli.model.fft import FFTStack
from dubcli.model.masks import check_mask, zero_pad
from dubcli.model.upsample import InterpConvUpsampler


class VideoConv(nn.Module):
    """Conv1d over frames mapping visual features into a shared space (3.2). (b, nv, d_in)."""

    def __init__(self, d_in: int, d_out: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"video conv kernel must be odd, got {kernel}")
        self.conv = nn.Conv1d(d_in, d_out, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = self.conv(zero_pad(x, mask).transpose(1, 2)).transpose(1, 2)
        return zero_pad(h, mask)


class FaProOutput(NamedTuple):
    prior: Tensor  # (b, n, d) global prosody prior, zero at padding
    token_mask: Tensor  # (b, n) bool
    logits: Tensor | None  # (b, qp, n, V) prosody-token logits (auxiliary head) or None


class FaPro(nn.Module):
    """face (b, nv, Df), video_mask (b, nv), token lengths (b,) -> FaProOutput."""

    def __init__(self, cfg: ModelConfig, with_head: bool = True):
        super().__init__()
        d = cfg.fapro_dim
        self.inp = VideoConv(cfg.face_dim, d, cfg.video_conv_kernel)
        self.upsample = InterpConvUpsampler(d, d, d, n_convs=cfg.upsample_convs)
        self.convnext = ConvNeXtV2Stack(cfg.fapro_convnext_layers, d, cfg.fapro_convnext_inter)
        self.norm = nn.LayerNorm(d)
        self.predictor = FFTStack(
            cfg.n_prosody, d, cfg.fapro_heads, cfg.fapro_ff, cfg.text_kernels, cfg.dropout
        )
        self.head = nn.Linear(d, cfg.vocab) if with_head else None

    def forward(
        self,
        face: Tensor,
        video_mask: Tensor,
        token_lengths: Tensor | None = None,
        n_out: int | None = None,
    ) -> FaProOutput:
        """`token_lengths` (b,) default to round-half-up(nv * 16 / 5); `n_out` pads to n."""
        b, nv, _ = face.shape
        check_mask(video_mask, b, nv, "video_mask")
        up = self.upsample(self.inp(face, video_mask), video_mask, token_lengths, n_out)
        h = zero_pad(self.norm(self.convnext(up.out, up.mask)), up.mask)
        reps = self.predictor.forward_layers(h, up.mask)
        logits = None
        if self.head is not None:
            logits = torch.stack([self.head(r) for r in reps], dim=1)
        return FaProOutput(reps[-1], up.mask, logits)
