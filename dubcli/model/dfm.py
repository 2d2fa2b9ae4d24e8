"""Discrete flow matching with a masked source (paper 3.3 eq. 1, B.2.1; Gat et al. 2024).

Dimensions: b batch, q codebook streams, n tokens per stream, V vocabulary size per stream.
Token tensors are (b, q, n) long with values in [0, V) and the MASK id = V, so the network's
token embedders need V + 1 rows; a network returns logits (b, q, n, V) over real tokens only.

Everything here is independent of the network: it only calls `model(x_t, t, **cond)` with
x_t (b, q, n) long and t (b,) float in [0, 1]. Own implementation (Meta's flow_matching package
is not used: its licence is non-commercial).

The path (B.2.1): source p_0 = all MASK, target p_1 = data; the mixture path puts each token at
  x_t^i ~ kappa_t * delta(x_1^i) + (1 - kappa_t) * delta(MASK),
with the polynomial scheduler kappa_t = t^exponent. The exponent is lost from our copy of B.2.1
("we set ."); the default is 1 (a linear schedule, kappa_0 = 0, kappa_1 = 1), and it is a config
field. Every (stream, position) token is one coordinate of the factorized path, corrupted
independently: the path and the posterior in Gat et al. factorize over coordinates, and the Euler
sampler below also unmasks coordinates independently, so training sees exactly the partially
unmasked columns (some streams known, others not) that sampling produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

DenoiserFn = Callable[..., Tensor]  # model(x_t (b, q, n) long, t (b,), **cond) -> (b, q, n, V)


@dataclass(frozen=True)
class PolynomialScheduler:
    """kappa_t = t ** exponent (B.2.1, following Gat et al.); kappa_0 = 0, kappa_1 = 1."""

    exponent: float = 1.0  # n in t^n; > 0. Larger n keeps more tokens masked for longer.

    def __post_init__(self):
        if not self.exponent > 0:
            raise ValueError(f"scheduler exponent must be > 0, got {self.exponent}")

    def kappa(self, t: Tensor) -> Tensor:
        return t**self.exponent

    def d_kappa(self, t: Tensor) -> Tensor:
        """Time derivative kappa'_t = n t^(n-1) (the rate in the velocity field, eq. 8)."""
        return self.exponent * t ** (self.exponent - 1)

    def unmask_probability(self, t: float, t_next: float) -> float:
        """P(a token masked at t is unmasked by t_next) = (k(t_next) - k(t)) / (1 - k(t)).

        This is the exact mixture-path transition (integrating the rate kappa'/(1 - kappa) of
        eq. 8 over [t, t_next]); at t_next = 1 it is exactly 1.
        """
        if t_next >= 1.0:
            return 1.0
        k, k_next = float(t) ** self.exponent, float(t_next) ** self.exponent
        return (k_next - k) / (1.0 - k)


class PathSample(NamedTuple):
    x_t: Tensor  # (b, q, n) long: x_1 with the corrupted tokens replaced by MASK
    corrupted: Tensor  # (b, q, n) bool: True where x_t is MASK


@dataclass(frozen=True)
class MaskedMixturePath:
    """The masked-source mixture path over q streams of V-token vocabularies."""

    vocab_size: int  # V tokens per stream; MASK = V
    scheduler: PolynomialScheduler = PolynomialScheduler()
    t_eps: float = 1e-3  # training t ~ U(0, 1 - t_eps): t = 1 would corrupt nothing

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    def sample_t(self, b: int, device=None, generator: torch.Generator | None = None) -> Tensor:
        """Training times (b,) ~ U(0, 1 - t_eps), drawn on the generator's device."""
        u = torch.rand(b, generator=generator, device=_gen_device(generator, device))
        return (u * (1.0 - self.t_eps)).to(device)

    def corrupt(
        self,
        x1: Tensor,
        t: Tensor,
        fixed_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Sample x_t ~ p_t(. | x_1): x1 (b, q, n) long, t (b,) -> PathSample.

        Each token is replaced by MASK independently with probability 1 - kappa_t. Tokens under
        `fixed_mask` ((b, n) or (b, q, n) bool: the reference prompt) are never corrupted.
        """
        b, q, n = _check_tokens(x1, "x1")
        if tuple(t.shape) != (b,):
            raise ValueError(f"t must be (b={b},), got {tuple(t.shape)}")
        u = torch.rand((b, q, n), generator=generator, device=_gen_device(generator, x1.device))
        keep = self.scheduler.kappa(t.float()).to(u.device)[:, None, None]
        corrupted = (u >= keep).to(x1.device)  # P(corrupt) = 1 - kappa_t
        fixed = _expand_mask(fixed_mask, b, q, n, "fixed_mask")
        if fixed is not None:
            corrupted = corrupted & ~fixed
        return PathSample(x1.masked_fill(corrupted, self.mask_id), corrupted)


class DFMLoss(NamedTuple):
    loss: Tensor  # () mean CE over the selected tokens (0 when none is selected)
    n_tokens: Tensor  # () long: tokens that entered the loss
    accuracy: Tensor  # () argmax accuracy on those tokens (a training diagnostic)
    per_stream: Tensor  # (q,) mean CE per codebook stream (0 for a stream with no token)


def dfm_loss(
    logits: Tensor, x1: Tensor, corrupted: Tensor, loss_mask: Tensor | None = None
) -> DFMLoss:
    """Eq. 1: cross-entropy of the posterior p(x_1^i | x_t) on corrupted tokens only.

    logits (b, q, n, V), x1 (b, q, n), corrupted (b, q, n) bool, loss_mask (b, n) or (b, q, n)
    bool with True at valid target positions (False at padding and at the prompt). The loss is
    averaged over all selected tokens of the batch (token mean, no kappa-derivative weighting:
    eq. 1 is a plain CE), so it does not grow with sequence length or with the masking ratio.
    """
    b, q, n = x1.shape
    if tuple(logits.shape[:3]) != (b, q, n) or logits.dim() != 4:
        raise ValueError(f"logits must be (b={b}, q={q}, n={n}, V), got {tuple(logits.shape)}")
    sel = corrupted
    lm = _expand_mask(loss_mask, b, q, n, "loss_mask")
    if lm is not None:
        sel = sel & lm
    picked = logits[sel].float()  # (m, V): only corrupted, valid tokens are scored
    targets = x1[sel]
    ce = F.cross_entropy(picked, targets, reduction="none")  # (m,)
    count = sel.sum()
    loss = ce.sum() / count.clamp_min(1)
    acc = (picked.argmax(dim=-1) == targets).float().sum() / count.clamp_min(1)
    stream = sel.nonzero()[:, 1]  # (m,) stream index of each selected token
    per_sum = torch.zeros(q, device=ce.device).index_add_(0, stream, ce.detach())
    per_cnt = torch.bincount(stream, minlength=q).clamp_min(1)
    return DFMLoss(loss, count, acc, per_sum / per_cnt)


def dfm_training_loss(
    model: DenoiserFn,
    path: MaskedMixturePath,
    x1: Tensor,
    loss_mask: Tensor | None = None,
    fixed_mask: Tensor | None = None,
    cond: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> DFMLoss:
    """One DFM training loss: t ~ U(0, 1 - eps), corrupt x1 (b, q, n), call the model, eq. 1."""
    t = path.sample_t(x1.shape[0], x1.device, generator)
    sample = path.corrupt(x1, t, fixed_mask, generator)
    logits = model(sample.x_t, t, **(cond or {}))
    return dfm_loss(logits, x1, sample.corrupted, loss_mask)


class SampleResult(NamedTuple):
    tokens: Tensor  # (b, q, n) long, no MASK left
    masked_per_step: Tensor  # (nfe + 1, b) long: non-fixed tokens still masked before each step


@torch.no_grad()
def euler_sample(
    model: DenoiserFn,
    path: MaskedMixturePath,
    shape: tuple[int, int, int],
    nfe: int,
    temperature: float = 1.0,
    fixed_tokens: Tensor | None = None,
    fixed_mask: Tensor | None = None,
    cond: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SampleResult:
    """Generate tokens (b, q, n) from all-MASK in `nfe` Euler steps on t = 0 -> 1 (B.2.1, eq. 8).

    Step t -> t + h: the model's posterior is sampled (temperature; 0 = argmax) and every still
    masked token is unmasked to that sample with probability (k(t+h) - k(t)) / (1 - k(t)); the
    last step unmasks everything, so nfe = 1 is one-shot parallel decoding. Unmasked tokens
    stay (under a masked source an unmasked token is already x_1). Tokens under `fixed_mask`
    ((b, n) or (b, q, n)) take their values from `fixed_tokens` (b, q, n) and never change: the
    reference prompt. Random draws come from `generator` (on its own device), so a seeded
    generator gives the same tokens on any model device. Put the network in eval mode first;
    `device` is where tokens live (default: fixed_tokens' device, else CPU).
    """
    if int(nfe) < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    b, q, n = shape
    device = torch.device(device) if device is not None else _default_device(fixed_tokens)
    x = torch.full((b, q, n), path.mask_id, dtype=torch.long, device=device)
    fixed = _expand_mask(fixed_mask, b, q, n, "fixed_mask")
    if fixed is not None:
        if fixed_tokens is None:
            raise ValueError("fixed_mask needs fixed_tokens (b, q, n) with the prompt values")
        _check_tokens(fixed_tokens, "fixed_tokens")
        if tuple(fixed_tokens.shape) != (b, q, n):
            raise ValueError(f"fixed_tokens must be {(b, q, n)}, got {tuple(fixed_tokens.shape)}")
        fixed = fixed.to(device)
        vals = fixed_tokens.to(device)[fixed]
        if vals.numel() and (vals.min() < 0 or vals.max() >= path.vocab_size):
            raise ValueError(f"fixed_tokens under fixed_mask must lie in [0, {path.vocab_size})")
        x = torch.where(fixed, fixed_tokens.to(device), x)
    gdev = _gen_device(generator, device)
    counts = [(x == path.mask_id).sum(dim=(1, 2))]
    steps = [k / nfe for k in range(nfe + 1)]
    for k in range(nfe):
        t, t_next = steps[k], steps[k + 1]
        masked = x == path.mask_id
        p = 1.0 if k == nfe - 1 else path.scheduler.unmask_probability(t, t_next)
        u = torch.rand((b, q, n), generator=generator, device=gdev).to(device)
        unmask = masked & (u < p)
        if k < nfe - 1 and not bool(unmask.any()):  # nothing moves (tiny kappa step): skip
            counts.append(counts[-1])
            continue
        logits = model(x, torch.full((b,), t, device=device), **(cond or {}))
        if tuple(logits.shape) != (b, q, n, path.vocab_size):
            raise ValueError(
                f"model returned logits {tuple(logits.shape)}, expected {(b, q, n, path.vocab_size)}"
            )
        x1 = sample_categorical(logits[unmask], temperature, generator)  # (m,)
        x = x.masked_scatter(unmask, x1.to(device))
        counts.append((x == path.mask_id).sum(dim=(1, 2)))
    return SampleResult(x, torch.stack(counts))


def sample_categorical(
    logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one index per row of logits (..., V) from softmax(logits / T); T = 0 is argmax.

    Gumbel-max with uniforms from `generator`, in float32 (bf16 logits are upcast).
    """
    logits = logits.float()
    if temperature == 0 or logits.numel() == 0:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, device=_gen_device(generator, logits.device))
    u = u.to(logits.device).clamp(torch.finfo(torch.float32).tiny, 1.0 - 1e-7)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(dim=-1)


def _check_tokens(x: Tensor, name: str) -> tuple[int, int, int]:
    if x.dim() != 3 or x.dtype != torch.long:
        raise ValueError(f"{name} must be long (b, q, n), got {x.dtype} {tuple(x.shape)}")
    return tuple(x.shape)  # type: ignore[return-value]


def _expand_mask(mask: Tensor | None, b: int, q: int, n: int, name: str) -> Tensor | None:
    """(b, n) or (b, q, n) bool -> (b, q, n) bool (a (b, n) mask applies to every stream)."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be bool, got {mask.dtype}")
    if tuple(mask.shape) == (b, n):
        return mask[:, None, :].expand(b, q, n)
    if tuple(mask.shape) == (b, q, n):
        return mask
    raise ValueError(
        f"{name} must be (b, n)={(b, n)} or (b, q, n)={(b, q, n)}, got {tuple(mask.shape)}"
    )


def _gen_device(generator: torch.Generator | None, device) -> torch.device:
    """Draw random numbers where the generator lives (CPU generators work for CUDA models)."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _default_device(x: Tensor | None) -> torch.device:
    return x.device if x is not None else torch.device("cpu")
