"""Feed-Forward Transformer (FFT) blocks, FastSpeech style (paper B.2.1, refs [49, 50]).

Dimensions: b batch, n sequence length (phonemes or tokens), d width, d_ff conv filter width.
Masks (b, n) are bool with True = valid.

An FFT block is post-LN: x = LN(x + SelfAttn(x)); x = LN(x + Conv1d(ReLU(Conv1d(x)))). The
convolutional FFN sees zeros at padded positions, so padding never leaks into valid outputs.
B.2.1 sizes: 4 heads, width 256, filter 1024, dropout 0.2; the kernel sizes are lost from our copy
of the paper, so the default is FastSpeech 2's (9, 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dubcli.model.attention import MultiHeadSelfAttention
from dubcli.model.masks import check_mask, zero_pad


def sinusoidal_positions(n: int, d: int, device=None) -> Tensor:
    """Transformer absolute position table (n, d) (Vaswani et al.; FastSpeech's encoder input)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(10_000.0) * torch.arange(0, d, 2, device=device) / d)
    table = torch.zeros(n, d, device=device)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: d // 2])
    return table


class ConvFeedForward(nn.Module):
    """FastSpeech position-wise FFN: Conv1d(k1) -> ReLU -> Conv1d(k2). (b, n, d) -> (b, n, d)."""

    def __init__(self, d: int, d_ff: int, kernel_sizes: tuple[int, int] = (9, 1), dropout=0.0):
        super().__init__()
        k1, k2 = kernel_sizes
        if k1 % 2 == 0 or k2 % 2 == 0:
            raise ValueError(f"FFT kernel sizes must be odd to keep the length, got {kernel_sizes}")
        self.conv1 = nn.Conv1d(d, d_ff, k1, padding=k1 // 2)
        self.conv2 = nn.Conv1d(d_ff, d, k2, padding=k2 // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = torch.relu(self.conv1(zero_pad(x, mask).transpose(1, 2)))
        h = self.conv2(zero_pad(h.transpose(1, 2), mask).transpose(1, 2))
        return self.drop(h.transpose(1, 2))


class FFTBlock(nn.Module):
    """One FFT block. x (b, n, d), mask (b, n) -> (b, n, d), zero at padding.

    `rope` adds rotary positions inside attention; FastSpeech instead adds absolute sinusoids
    once at the stack input (FFTStack does that), so it is off by default.
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        d_ff: int,
        kernel_sizes: tuple[int, int] = (9, 1),
        dropout: float = 0.0,
        rope: bool = False,
    ):
        super().__init__()
        self.attn = MultiHeadSelfAttention(d, n_heads, dropout=dropout, rope=rope)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = ConvFeedForward(d, d_ff, kernel_sizes, dropout)
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_mask(mask, x.shape[0], x.shape[1])
        x = zero_pad(self.norm1(x + self.drop(self.attn(x, mask))), mask)
        return zero_pad(self.norm2(x + self.ffn(x, mask)), mask)


class FFTStack(nn.Module):
    """A stack of FFT blocks with FastSpeech's absolute sinusoidal positions at the input.

    x (b, n, d_in), mask (b, n) -> (b, n, d_out). `d_in`/`d_out` add linear projections when they
    differ from the block width d (B.2.1: width 256, output 768 for the DiT).
    `forward_layers` returns every block's output: the iterative per-codebook predictors (3.4.1
    prosody predictor, 3.4.3 content predictor) read one representation per layer.
    """

    def __init__(
        self,
        n_layers: int,
        d: int,
        n_heads: int,
        d_ff: int,
        kernel_sizes: tuple[int, int] = (9, 1),
        dropout: float = 0.0,
        d_in: int | None = None,
        d_out: int | None = None,
        positions: bool = True,
        rope: bool = False,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"an FFT stack needs at least one block, got {n_layers}")
        self.d, self.positions = d, positions
        self.inp = nn.Linear(d_in, d) if d_in not in (None, d) else nn.Identity()
        self.blocks = nn.ModuleList(
            FFTBlock(d, n_heads, d_ff, kernel_sizes, dropout, rope) for _ in range(n_layers)
        )
        self.out = nn.Linear(d, d_out) if d_out not in (None, d) else nn.Identity()

    def forward_layers(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """Per-block outputs, each (b, n, d) (before the output projection)."""
        check_mask(mask, x.shape[0], x.shape[1])
        x = self.inp(x)
        if self.positions:
            x = x + sinusoidal_positions(x.shape[1], self.d, x.device).to(x.dtype)
        x = zero_pad(x, mask)
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        return outs

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return zero_pad(self.out(self.forward_layers(x, mask)[-1]), mask)
