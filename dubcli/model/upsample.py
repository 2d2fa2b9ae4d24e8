"""Learnable interpolation-convolution upsampler (paper 3.4.1, 3.4.2 eq. 3, B.2.2).

Dimensions: b batch, nv input length (video frames), n output length (speech tokens),
d_in input width, d_hidden conv width, d_out output width. Masks are bool, True = valid.

B.2.2: linear interpolation to the speech length, then 4 x [Conv1d(k=3, s=1, p=1) ->
GroupNorm(1 group) -> Mish], then a final Conv1d projecting to the hidden width (256). Here the
output length of every sequence is exact and given (or derived from the 16/5 token/frame ratio of
timing.py), the interpolation is done per sequence on its own valid length, and the group norm
statistics cover valid positions only, so padding never changes a valid output.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dubcli.model.masks import check_mask, lengths_to_mask, zero_pad
from dubcli.timing import TOKENS_PER_5_FRAMES


def interpolate_lengths(x: Tensor, in_lengths: Tensor, out_lengths: Tensor, n_out: int) -> Tensor:
    """Per-sequence linear interpolation (align_corners=False, as F.interpolate 'linear').

    x (b, nv, d) with valid prefix in_lengths (b,) -> (b, n_out, d) whose first out_lengths[i]
    positions resample sequence i; the rest is zero.
    """
    b, _, d = x.shape
    src_len = in_lengths.clamp_min(1).to(torch.float32)[:, None]
    j = torch.arange(n_out, device=x.device, dtype=torch.float32)[None, :]
    scale = src_len / out_lengths.clamp_min(1).to(torch.float32)[:, None]
    src = ((j + 0.5) * scale - 0.5).clamp_min(0.0)
    src = torch.minimum(src, src_len - 1)  # (b, n_out)
    i0 = src.floor().long()
    i1 = torch.minimum(i0 + 1, src_len.long() - 1)
    w = (src - i0.to(src.dtype))[..., None].to(x.dtype)
    g0 = torch.gather(x, 1, i0[..., None].expand(b, n_out, d))
    g1 = torch.gather(x, 1, i1[..., None].expand(b, n_out, d))
    out = g0 + (g1 - g0) * w
    return zero_pad(out, lengths_to_mask(out_lengths, n_out))


class MaskedGroupNorm1(nn.Module):
    """GroupNorm with one group (normalize over time and channels) on valid positions only.

    x (b, n, d), mask (b, n) -> (b, n, d); per-channel affine like nn.GroupNorm(1, d).
    """

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        xf = x.float()
        if mask is None:
            count = torch.full((x.shape[0], 1, 1), float(x.shape[1] * x.shape[2]), device=x.device)
            m = torch.ones_like(xf[..., :1])
        else:
            m = mask[..., None].to(xf.dtype)
            count = (m.sum(dim=1, keepdim=True) * x.shape[2]).clamp_min(1.0)
        mean = (xf * m).sum(dim=(1, 2), keepdim=True) / count
        var = (((xf - mean) * m) ** 2).sum(dim=(1, 2), keepdim=True) / count
        y = ((xf - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)
        return y * self.weight + self.bias


class UpsampleOutput(NamedTuple):
    out: Tensor  # (b, n, d_out), zero at padding
    mask: Tensor  # (b, n) bool, True for positions < out_lengths


class InterpConvUpsampler(nn.Module):
    """Linear interpolation + 4 x (Conv1d k3 -> masked GroupNorm(1) -> Mish) + Conv1d projection.

    x (b, nv, d_in), mask (b, nv) -> UpsampleOutput (b, n, d_out). `ratio` (default 16/5, video
    frames to speech tokens) sets each output length as round-half-up(length * ratio) unless
    `out_lengths` (b,) gives it; `n_out` pads the batch to a fixed length (>= max out_lengths).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        d_hidden: int | None = None,
        n_convs: int = 4,
        kernel_size: int = 3,
        ratio: Fraction | float = Fraction(TOKENS_PER_5_FRAMES, 5),
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"upsampler kernel size must be odd, got {kernel_size}")
        self.ratio = Fraction(ratio).limit_denominator(10_000)
        if self.ratio <= 0:
            raise ValueError(f"upsampling ratio must be positive, got {ratio}")
        d_hidden = d_hidden or d_in
        widths = [d_in] + [d_hidden] * n_convs
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2)
            for i in range(n_convs)
        )
        self.norms = nn.ModuleList(MaskedGroupNorm1(d_hidden) for _ in range(n_convs))
        self.proj = nn.Conv1d(widths[-1], d_out, 1)

    def output_lengths(self, in_lengths: Tensor) -> Tensor:
        """(b,) input lengths -> (b,) output lengths, round half up of length * ratio."""
        num, den = self.ratio.numerator, self.ratio.denominator
        return (in_lengths * num + den // 2) // den

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        out_lengths: Tensor | None = None,
        n_out: int | None = None,
    ) -> UpsampleOutput:
        b, nv, _ = x.shape
        check_mask(mask, b, nv)
        in_lengths = mask.sum(dim=1) if mask is not None else torch.full((b,), nv, device=x.device)
        if out_lengths is None:
            out_lengths = self.output_lengths(in_lengths)
        if tuple(out_lengths.shape) != (b,):
            raise ValueError(f"out_lengths must be (b={b},), got {tuple(out_lengths.shape)}")
        longest = int(out_lengths.max().item()) if b else 0
        n_out = longest if n_out is None else int(n_out)
        if n_out < longest:
            raise ValueError(f"n_out={n_out} is shorter than the longest output length {longest}")
        out_mask = lengths_to_mask(out_lengths.to(x.device), n_out)
        h = interpolate_lengths(x, in_lengths, out_lengths.to(x.device), n_out)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv(zero_pad(h, out_mask).transpose(1, 2)).transpose(1, 2)
            h = F.mish(norm(h, out_mask))
        h = self.proj(zero_pad(h, out_mask).transpose(1, 2)).transpose(1, 2)
        return UpsampleOutput(zero_pad(h, out_mask), out_mask)
