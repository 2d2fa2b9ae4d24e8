"""ConvNeXt V2 blocks over time with Global Response Normalization (Woo et al. 2023, ref [59]).

Dimensions: b batch, n sequence length, d width, d_inter intermediate width.
Masks (b, n) are bool with True = valid.

Used by FaPro (3.4.1) and the Synchronizer refinement (3.4.2); B.2.2: 8 blocks, width 256,
intermediate 1024, depthwise kernel 7. Block: depthwise conv -> LayerNorm -> Linear -> GELU ->
GRN -> Linear, plus a residual. GRN's global (time) norm is taken over valid positions only, so a
padded batch gives each sequence the same output as running it alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dubcli.model.masks import check_mask, zero_pad


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2, eqs. 1-3 of Woo et al.), channels last.

    G_c = ||x_c||_2 over time; N_c = G_c / (mean_c G_c + eps); y = gamma * (x * N) + beta + x.
    gamma and beta start at zero, so GRN is the identity at init. x (b, n, d) -> (b, n, d).
    """

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(d))
        self.beta = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        g = zero_pad(x, mask).float().norm(p=2, dim=1, keepdim=True)  # (b, 1, d)
        nx = (g / (g.mean(dim=-1, keepdim=True) + self.eps)).to(x.dtype)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """One ConvNeXt V2 1D block. x (b, n, d), mask (b, n) -> (b, n, d), zero at padding."""

    def __init__(self, d: int, d_inter: int, kernel_size: int = 7, dilation: int = 1):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(
                f"ConvNeXt kernel size must be odd to keep the length, got {kernel_size}"
            )
        pad = dilation * (kernel_size // 2)
        self.dwconv = nn.Conv1d(d, d, kernel_size, padding=pad, groups=d, dilation=dilation)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.pw1 = nn.Linear(d, d_inter)
        self.act = nn.GELU()
        self.grn = GRN(d_inter)
        self.pw2 = nn.Linear(d_inter, d)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_mask(mask, x.shape[0], x.shape[1])
        x = zero_pad(x, mask)
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = self.act(self.pw1(self.norm(h)))
        h = self.pw2(self.grn(h, mask))
        return zero_pad(x + h, mask)


class ConvNeXtV2Stack(nn.Module):
    """n_layers ConvNeXt V2 blocks. x (b, n, d), mask (b, n) -> (b, n, d)."""

    def __init__(self, n_layers: int, d: int, d_inter: int, kernel_size: int = 7):
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvNeXtV2Block(d, d_inter, kernel_size) for _ in range(n_layers)
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x
