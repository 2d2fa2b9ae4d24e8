"""Stage-1 content model (paper 3.3 "Content Modeling", B.2.1; Figure 2 "Teacher" box).

Dimensions: b batch, nt phonemes, n speech tokens, d text width, d_c content latent width,
qc content codebooks, V codes per codebook. Masks are bool, True = valid.

phonemes -> embedding -> phoneme encoder (FFT) -> duration predictor (FastSpeech 2, log domain)
-> length regulator -> decoder (2 FFT blocks; its output is the distillation point of eq. 5)
-> content predictor (qc FFT blocks, block k's output is codebook k's representation: each
block sees the previous ones, the "iterative" predictor of 3.4.3) -> (a) a linear projection of
the concatenated representations to the content latent z_c that conditions the DFPA, (b) one
MLP head shared by all codebooks giving logits per content codebook.
Stage 2 (ccta.py) reuses this module with the duration path replaced by the Synchronizer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dubcli.config import ModelConfig
from dubcli.model.fft import FFTStack
from dubcli.model.masks import check_mask, lengths_to_mask, zero_pad
from dubcli.text.phonemes import PAD_ID


class DurationPredictor(nn.Module):
    """FastSpeech 2 variance predictor: 2 x (Conv1d -> ReLU -> LN -> dropout) -> Linear.

    h (b, nt, d), mask (b, nt) -> log(1 + tokens) per phoneme (b, nt), 0 at padding.
    """

    def __init__(self, d: int, filt: int, kernel: int = 3, dropout: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv1d(d, filt, kernel, padding=kernel // 2)
        self.norm1 = nn.LayerNorm(filt)
        self.conv2 = nn.Conv1d(filt, filt, kernel, padding=kernel // 2)
        self.norm2 = nn.LayerNorm(filt)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filt, 1)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            h = conv(zero_pad(h, mask).transpose(1, 2)).transpose(1, 2)
            h = self.drop(norm(torch.relu(h)))
        return zero_pad(self.out(h), mask)[..., 0]


def length_regulate(
    h: Tensor, durations: Tensor, n_out: int | None = None
) -> tuple[Tensor, Tensor]:
    """Repeat phoneme i durations[i] times (FastSpeech's length regulator).

    h (b, nt, d), durations (b, nt) long (0 at padding) -> (expanded (b, n, d), mask (b, n)),
    n = n_out or the longest total.
    """
    b, nt, d = h.shape
    dur = durations.clamp_min(0).long()
    total = dur.sum(dim=1)  # (b,)
    n = int(total.max().item()) if n_out is None else int(n_out)
    ends = dur.cumsum(dim=1)  # (b, nt)
    pos = torch.arange(n, device=h.device)[None, :].expand(b, n).contiguous()
    idx = torch.searchsorted(ends, pos, right=True).clamp(max=nt - 1)  # phoneme of each token
    mask = lengths_to_mask(total, n)
    out = torch.gather(h, 1, idx[..., None].expand(b, n, d))
    return zero_pad(out, mask), mask


def durations_from_log(
    log_dur: Tensor, mask: Tensor, n_tokens: Tensor | int | None = None
) -> Tensor:
    """Predicted log(1 + d) (b, nt) -> integer token durations (b, nt) long.

    Without n_tokens: round(exp - 1), at least 1 token in total per item. With n_tokens (b,)
    or an int: the float durations are scaled to sum exactly to it (largest remainders get the
    leftover tokens; uniform if the prediction is all zero).
    """
    raw = (log_dur.float().exp() - 1.0).clamp_min(0.0) * mask
    if n_tokens is None:
        dur = torch.round(raw).long() * mask
        empty = dur.sum(dim=1) == 0
        if empty.any():  # give the first valid phoneme one token
            first = mask.float().argmax(dim=1)
            dur[empty, first[empty]] = 1
        return dur
    b = raw.shape[0]
    target = torch.as_tensor(n_tokens, device=raw.device).long().expand(b)
    total = raw.sum(dim=1, keepdim=True)
    raw = torch.where(total > 0, raw, mask.float())  # all-zero prediction: uniform
    scaled = raw / raw.sum(dim=1, keepdim=True).clamp_min(1e-9) * target[:, None]
    dur = scaled.floor().long()
    left = target - dur.sum(dim=1)  # (b,) tokens still to hand out, < nt
    order = torch.argsort((scaled - dur).masked_fill(~mask, -1.0), dim=1, descending=True)
    rank = torch.argsort(order, dim=1)  # rank of each phoneme's remainder
    dur = dur + ((rank < left[:, None]) & mask).long()
    return dur


class ContentPrediction(NamedTuple):
    latent: Tensor  # (b, n, d_c) z_c, zero at padding
    logits: Tensor  # (b, qc, n, V)
    reps: list[Tensor]  # qc x (b, n, d): per-codebook representations


class ContentOutput(NamedTuple):
    log_durations: Tensor  # (b, nt) predicted log(1 + tokens)
    durations: Tensor  # (b, nt) long, the durations used by the length regulator
    features: Tensor  # (b, n, d) decoder output (pre-predictor; distillation point, eq. 5)
    token_mask: Tensor  # (b, n) bool
    latent: Tensor  # (b, n, d_c)
    logits: Tensor  # (b, qc, n, V)


class ContentModel(nn.Module):
    """Phoneme encoder + duration predictor + length regulator + FFT decoder + content predictor."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.text_dim
        self.cfg = cfg

        def fft(n_layers: int) -> FFTStack:
            return FFTStack(n_layers, d, cfg.text_heads, cfg.text_ff, cfg.text_kernels, cfg.dropout)

        self.embed = nn.Embedding(cfg.phoneme_vocab, d, padding_idx=PAD_ID)
        self.encoder = fft(cfg.encoder_layers)
        self.duration = DurationPredictor(
            d, cfg.duration_filter, cfg.duration_kernel, cfg.duration_dropout
        )
        self.decoder = fft(cfg.decoder_layers)
        self.predictor = fft(cfg.n_content)  # one block per content codebook
        self.proj = nn.Linear(cfg.n_content * d, cfg.content_dim)  # -> z_c
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.vocab))

    def encode(self, phonemes: Tensor, mask: Tensor) -> Tensor:
        """phonemes (b, nt) long, mask (b, nt) -> phoneme encodings (b, nt, d)."""
        check_mask(mask, *phonemes.shape, "phoneme_mask")
        if phonemes.dtype != torch.long:
            raise ValueError(f"phonemes must be long (b, nt), got {phonemes.dtype}")
        return self.encoder(self.embed(phonemes.masked_fill(~mask, PAD_ID)), mask)

    def decode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Token-rate input (b, n, d) -> pre-predictor features (b, n, d)."""
        return self.decoder(x, mask)

    def predict(self, features: Tensor, mask: Tensor) -> ContentPrediction:
        """Pre-predictor features (b, n, d) -> z_c and per-codebook logits."""
        reps = self.predictor.forward_layers(features, mask)
        latent = zero_pad(self.proj(torch.cat(reps, dim=-1)), mask)
        logits = torch.stack([self.head(r) for r in reps], dim=1)  # shared head (3.4.3)
        return ContentPrediction(latent, logits, reps)

    def forward(
        self,
        phonemes: Tensor,
        phoneme_mask: Tensor,
        durations: Tensor | None = None,
        n_tokens: Tensor | int | None = None,
        n_out: int | None = None,
    ) -> ContentOutput:
        """Teacher-forced with `durations` (b, nt) (training), else predicted (scaled to
        `n_tokens` when given). `n_out` pads the token axis to a fixed length."""
        h = self.encode(phonemes, phoneme_mask)
        log_dur = self.duration(h, phoneme_mask)
        if durations is None:
            durations = durations_from_log(log_dur.detach(), phoneme_mask, n_tokens)
        durations = durations.masked_fill(~phoneme_mask, 0)
        x, tmask = length_regulate(h, durations, n_out)
        feats = self.decode(x, tmask)
        pred = self.predict(feats, tmask)
        return ContentOutput(log_dur, durations, feats, tmask, pred.latent, pred.logits)


def duration_loss(log_pred: Tensor, durations: Tensor, mask: Tensor) -> Tensor:
    """FastSpeech 2 duration loss: MSE between log(1 + d) and the prediction, valid phonemes."""
    target = torch.log1p(durations.float())
    err = (log_pred.float() - target) ** 2 * mask
    return err.sum() / mask.sum().clamp_min(1)


def content_ce(logits: Tensor, content: Tensor, mask: Tensor) -> Tensor:
    """Eq. 6: CE of the content logits (b, qc, n, V) against tokens (b, qc, n), valid tokens."""
    qc = logits.shape[1]
    ce = F.cross_entropy(
        rearrange(logits.float(), "b q n v -> (b q n) v"),
        rearrange(content, "b q n -> (b q n)"),
        reduction="none",
    )
    m = rearrange(mask[:, None, :].expand(-1, qc, -1), "b q n -> (b q n)")
    return (ce * m).sum() / m.sum().clamp_min(1)


def content_accuracy(logits: Tensor, content: Tensor, mask: Tensor) -> Tensor:
    """Argmax accuracy over valid tokens of all content codebooks (a diagnostic)."""
    hit = (logits.argmax(dim=-1) == content) & mask[:, None, :]
    return hit.sum().float() / (mask.sum() * logits.shape[1]).clamp_min(1)
