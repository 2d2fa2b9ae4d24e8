"""Attention: rotary position embeddings, self-attention and cross-attention with maps.

Dimensions: b batch, n / nq query length, nk key length, d width, d_mem memory width,
h heads, hd = d / h head width. Masks (b, n) are bool with True = valid (see masks.py).

Self-attention runs through torch's scaled_dot_product_attention (fused kernels on CPU and GPU,
bf16-autocast safe). Cross-attention computes its scores explicitly because the Synchronizer
(paper 3.4.2, eqs. 2 and 4) needs the attention maps for its contrastive alignment losses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dubcli.model.masks import attention_key_mask, check_mask, zero_pad


class RotaryEmbedding(nn.Module):
    """RoPE (Su et al., cited as [54] in B.2.1) in the rotate-half layout.

    Rotating q and k by position-dependent angles makes q_m . k_n depend only on (m - n),
    so attention is translation invariant: a prompt prepended to a sequence shifts all positions
    without changing how the sequence attends to itself.
    """

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head width, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hd/2,)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions (n,) or (b, n) -> cos, sin each (n, hd) or (b, n, hd), float32."""
        angles = positions.to(torch.float32)[..., None] * self.inv_freq  # (..., n, hd/2)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (b, h, n, hd) by cos/sin (n, hd) or (b, n, hd); computed in float32."""
    if cos.dim() == 3:  # per-batch positions: broadcast over heads
        cos, sin = cos[:, None], sin[:, None]
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with key padding masks and optional RoPE.

    x (b, n, d), mask (b, n) -> (b, n, d); padded outputs are zero.
    """

    def __init__(
        self, d: int, n_heads: int, dropout: float = 0.0, rope: bool = True, bias: bool = True
    ):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"width {d} is not divisible by {n_heads} heads")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.proj = nn.Linear(d, d, bias=bias)
        self.rope = RotaryEmbedding(d // n_heads) if rope else None

    def forward(
        self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None
    ) -> Tensor:
        b, n, _ = x.shape
        check_mask(mask, b, n)
        q, k, v = rearrange(
            self.qkv(x), "b n (three h hd) -> three b h n hd", three=3, h=self.n_heads
        )
        if self.rope is not None:
            pos = torch.arange(n, device=x.device) if positions is None else positions
            cos, sin = self.rope(pos)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attention_key_mask(mask),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return zero_pad(self.proj(rearrange(out, "b h n hd -> b n (h hd)")), mask)


class CrossAttentionOutput(NamedTuple):
    out: Tensor  # (b, nq, d), zero at padded queries
    attn: Tensor  # (b, h, nq, nk) softmax weights (before dropout); 0 at padded keys and queries
    scores: Tensor  # (b, h, nq, nk) raw scaled q.k logits, NOT masked: mask keys yourself


class CrossAttention(nn.Module):
    """Multi-head cross-attention that also returns its attention maps.

    x (b, nq, d) queries, memory (b, nk, d_mem) keys/values -> CrossAttentionOutput.
    `attn_bias` (b or 1, h or 1, nq, nk) is added to the logits before the softmax, e.g. a
    diagonal or monotonic prior for lip->phoneme alignment (3.4.2).
    """

    def __init__(self, d: int, d_mem: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"width {d} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.q = nn.Linear(d, d, bias=bias)
        self.kv = nn.Linear(d_mem, 2 * d, bias=bias)
        self.proj = nn.Linear(d, d, bias=bias)
        self.attn_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        attn_bias: Tensor | None = None,
    ) -> CrossAttentionOutput:
        (b, nq, _), nk = x.shape, memory.shape[1]
        if memory.shape[0] != b:
            raise ValueError(f"memory batch {memory.shape[0]} != query batch {b}")
        check_mask(mask, b, nq)
        check_mask(memory_mask, b, nk, "memory_mask")
        q = rearrange(self.q(x), "b n (h hd) -> b h n hd", h=self.n_heads)
        k, v = rearrange(self.kv(memory), "b n (two h hd) -> two b h n hd", two=2, h=self.n_heads)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(q.shape[-1])  # (b, h, nq, nk)
        logits = scores if attn_bias is None else scores + attn_bias.float()
        key_mask = attention_key_mask(memory_mask)
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask, float("-inf"))
        attn = logits.softmax(dim=-1)
        if mask is not None:  # padded queries carry no alignment
            attn = attn.masked_fill(~mask[:, None, :, None], 0.0)
        out = self.attn_drop(attn).to(v.dtype) @ v
        out = zero_pad(self.proj(rearrange(out, "b h n hd -> b n (h hd)")), mask)
        return CrossAttentionOutput(out, attn, scores)


class FeedForward(nn.Module):
    """Position-wise MLP: Linear -> GELU -> dropout -> Linear. (b, n, d) -> (b, n, d)."""

    def __init__(self, d: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CrossAttentionBlock(nn.Module):
    """Pre-LN transformer block: [self-attention] -> cross-attention -> feed-forward.

    The Synchronizer's lip->phoneme and speech->phoneme blocks (3.4.2, B.2.2: 4 heads, width 256,
    intermediate 1024). x (b, nq, d), memory (b, nk, d_mem) -> CrossAttentionOutput whose `attn`
    (b, h, nq, nk) is this block's cross-attention map.
    """

    def __init__(
        self,
        d: int,
        d_mem: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        self_attention: bool = True,
        rope: bool = True,
    ):
        super().__init__()
        self.self_attn = (
            MultiHeadSelfAttention(d, n_heads, dropout, rope) if self_attention else None
        )
        self.norm_sa = nn.LayerNorm(d) if self_attention else None
        self.norm_q = nn.LayerNorm(d)
        self.norm_mem = nn.LayerNorm(d_mem)
        self.cross = CrossAttention(d, d_mem, n_heads, dropout)
        self.norm_ff = nn.LayerNorm(d)
        self.ff = FeedForward(d, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        attn_bias: Tensor | None = None,
    ) -> CrossAttentionOutput:
        x = zero_pad(x, mask)
        if self.self_attn is not None:
            x = x + self.drop(self.self_attn(self.norm_sa(x), mask))
        mem = zero_pad(self.norm_mem(memory), memory_mask)
        ca = self.cross(self.norm_q(x), mem, mask, memory_mask, attn_bias)
        x = x + self.drop(ca.out)
        x = zero_pad(x + self.drop(self.ff(self.norm_ff(x))), mask)
        return CrossAttentionOutput(x, ca.attn, ca.scores)
