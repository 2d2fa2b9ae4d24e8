"""Diffusion Transformer (DiT, Peebles & Xie, ref [43]) pieces for the DFPA denoiser (B.2.1).

Dimensions: b batch, n sequence length (prompt + target tokens), d width, d_c conditioning
width, d_out output width (q * V logits). Masks (b, n) are bool with True = valid.

B.2.1: 8 layers, width 768, 8 heads, RoPE; a global conditioning vector (time MLP + projected
speaker embedding) drives adaptive LayerNorm; a long skip connection from the input to the
output of the final block; the head is a non-affine LayerNorm, adaLN shift/scale from a SiLU MLP
of the conditioning, then a linear projection. The blocks know nothing about flow matching.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dubcli.model.attention import MultiHeadSelfAttention
from dubcli.model.masks import check_mask, zero_pad


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (b, n, d) * (1 + scale (b, d)) + shift (b, d)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class TimestepEmbedding(nn.Module):
    """t (b,) in [0, 1] -> (b, d): sinusoidal features of t * scale, then Linear-SiLU-Linear."""

    def __init__(self, d: int, freq_dim: int = 256, scale: float = 1000.0):
        super().__init__()
        self.freq_dim, self.scale = freq_dim, scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: Tensor) -> Tensor:
        if t.dim() != 1:
            raise ValueError(f"t must be (b,), got shape {tuple(t.shape)}")
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * self.scale * freqs[None, :]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class DiTBlock(nn.Module):
    """DiT block with adaLN-zero conditioning and RoPE self-attention.

    x (b, n, d), c (b, d_c), mask (b, n) -> (b, n, d). The adaLN projection is zero-initialized,
    so every gate is 0 and the block is exactly the identity at init (DiT's adaLN-Zero).
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        d_cond: int | None = None,
        rope: bool = True,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadSelfAttention(d, n_heads, dropout=dropout, rope=rope)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        d_ff = int(d * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(d, d_ff), nn.GELU(approximate="tanh"), nn.Dropout(dropout), nn.Linear(d_ff, d)
        )
        self.drop = nn.Dropout(dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_cond or d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, mask: Tensor | None = None) -> Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.ada(c).chunk(6, dim=-1)
        h = self.attn(modulate(self.norm1(x), shift_a, scale_a), mask)
        x = x + gate_a[:, None, :] * self.drop(h)
        h = self.mlp(modulate(self.norm2(x), shift_m, scale_m))
        return zero_pad(x + gate_m[:, None, :] * self.drop(h), mask)


class DiT(nn.Module):
    """A stack of DiT blocks with B.2.1's long skip connection.

    x (b, n, d), c (b, d_c), mask (b, n) -> (b, n, d).
    Long skip ("from the input to the output of the final Transformer block", B.2.1; the same
    form as F5-TTS's): out = W [final_block_output ; stack_input], W (d, 2d) without bias. W is
    initialized to [I ; 0] so, with adaLN-zero blocks, the whole stack is the identity at init;
    training learns how much of the raw input (the token embeddings) to carry past the blocks.
    """

    def __init__(
        self,
        n_layers: int,
        d: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        d_cond: int | None = None,
        long_skip: bool = True,
        rope: bool = True,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            DiTBlock(d, n_heads, mlp_ratio, dropout, d_cond, rope) for _ in range(n_layers)
        )
        self.skip = nn.Linear(2 * d, d, bias=False) if long_skip else None
        if self.skip is not None:
            with torch.no_grad():
                self.skip.weight.zero_()
                self.skip.weight[:, :d].copy_(torch.eye(d))

    def forward(self, x: Tensor, c: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, _ = x.shape
        check_mask(mask, b, n)
        if c.shape[0] != b or c.dim() != 2:
            raise ValueError(f"conditioning c must be (b={b}, d_c), got {tuple(c.shape)}")
        x = zero_pad(x, mask)
        residual = x
        for block in self.blocks:
            x = block(x, c, mask)
        if self.skip is not None:
            x = self.skip(torch.cat([x, residual], dim=-1))
        return x


class AdaLNFinalLayer(nn.Module):
    """DiT output head: non-affine LN -> adaLN shift/scale (SiLU MLP of c) -> Linear.

    x (b, n, d), c (b, d_c), mask (b, n) -> (b, n, d_out), zero at padding. As in DiT, the
    modulation and the projection start at zero, so the initial logits are all zero (a uniform
    posterior: the DFM loss starts at log V).
    """

    def __init__(self, d: int, d_out: int, d_cond: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_cond or d, 2 * d))
        self.proj = nn.Linear(d, d_out)
        for layer in (self.ada[1], self.proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, c: Tensor, mask: Tensor | None = None) -> Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return zero_pad(self.proj(modulate(self.norm(x), shift, scale)), mask)
