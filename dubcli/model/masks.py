"""Key padding masks and the masked operations every block shares.

Dimensions: b batch, n sequence length (tokens, phonemes or frames), d width.
Convention: a mask is a bool tensor (b, n) with True at valid positions and False at padding;
padding is on the right (a valid prefix of each row), as `lengths_to_mask` makes it.
Every block zeroes padded positions before a convolution or a statistic over time, so the
content of padding can never reach a valid position (tests check this by changing padding).
"""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """lengths (b,) int -> mask (b, max_len) bool, True for positions < length."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (b,), got shape {tuple(lengths.shape)}")
    n = int(lengths.max().item()) if max_len is None else int(max_len)
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


def check_mask(mask: Tensor | None, b: int, n: int, name: str = "mask") -> Tensor | None:
    """Validate a (b, n) bool key padding mask; None means every position is valid."""
    if mask is None:
        return None
    if mask.dtype != torch.bool or tuple(mask.shape) != (b, n):
        raise ValueError(
            f"{name} must be bool (b={b}, n={n}) with True = valid, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    return mask


def zero_pad(x: Tensor, mask: Tensor | None) -> Tensor:
    """x (b, n, d) with padded positions set to 0 (mask (b, n); None: unchanged)."""
    if mask is None:
        return x
    return x.masked_fill(~mask[..., None], 0.0)


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of x (b, n, ...) over the valid positions of the time axis 1 -> (b, 1, ...)."""
    if mask is None:
        return x.mean(dim=1, keepdim=True)
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * m).sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp_min(1.0)


def attention_key_mask(mask: Tensor | None) -> Tensor | None:
    """Key padding mask (b, nk) -> boolean attention mask (b, 1, 1, nk), True = may attend.

    A row with no valid key at all (an empty sequence) would make softmax produce NaN; such rows
    attend everywhere instead, and the caller zeroes their outputs anyway.
    """
    if mask is None:
        return None
    safe = mask | ~mask.any(dim=-1, keepdim=True)
    return safe[:, None, None, :]
