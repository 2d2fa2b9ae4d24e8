"""DFPA denoiser network: the DiT over prosody + acoustic tokens (paper 3.3, 3.4.4, B.2.1).

Dimensions: b batch, q = qp + qa generated streams (1 + 3), n target tokens, np prompt tokens,
e token embedding width, d_c content latent width, d DiT width, V codes (MASK = V),
D speaker width, d_p prosody prior width. Masks are bool, True = valid.

Context (B.2.1 "Contextual Modeling"): every segment has the same channel layout
[prosody slot e | content slot d_c | acoustic slots qa x e], projected to d:
  prompt  (np): [E_p(prompt prosody) | 0             | E_a(prompt acoustic)]  (zero-shot TTS)
  prior   (n):  [W p_prior           | 0             | 0                   ]  (stage 2, 3.4.4)
  target  (n):  [E_p(x_t prosody)    | z_c (content) | E_a(x_t acoustic)  ]
concatenated along time. B.2.1's text replaces the prompt segment with the prior segment in
stage 2; we keep both (the prompt may be empty): the reference tokens are the only timbre
context besides the speaker vector, and the stage-1 weights already know how to use them.
The adaLN condition is time embedding + projected speaker embedding (B.2.1). Logits are read
off the target segment only: (b, q, n, V).

The valid positions of all segments are packed to the front (in segment order) before the DiT,
so RoPE's relative positions between target and prompt never depend on how much padding a
batch holds: a padded item gets exactly the output it gets alone.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from dubcli.config import ModelConfig
from dubcli.model.dit import AdaLNFinalLayer, DiT, TimestepEmbedding
from dubcli.model.masks import zero_pad


class DFPADenoiser(nn.Module):
    """`model(x_t, t, **cond)` for dfm.py: x_t (b, q, n) long, t (b,) -> logits (b, q, n, V).

    cond: content (b, n, d_c), speaker (b, D), mask (b, n), prompt (b, q, np) long,
    prompt_mask (b, np), and in stage 2 prior (b, n, d_p) (its mask is `mask`).
    """

    def __init__(self, cfg: ModelConfig, with_prior: bool = False):
        super().__init__()
        self.cfg = cfg
        e, d, V = cfg.token_emb_dim, cfg.dit_dim, cfg.vocab
        self.n_streams = cfg.n_dfm_streams
        # Dedicated embedders, one per generated codebook (prosody first), V + 1 rows (MASK).
        self.embedders = nn.ModuleList(nn.Embedding(V + 1, e) for _ in range(self.n_streams))
        self.d_in = self.n_streams * e + cfg.content_dim
        self.in_proj = nn.Linear(self.d_in, d)
        self.time = TimestepEmbedding(d)
        self.speaker = nn.Linear(cfg.speaker_dim, d)
        self.dit = DiT(cfg.dit_layers, d, cfg.dit_heads, cfg.dit_mlp_ratio, cfg.dit_dropout)
        self.final = AdaLNFinalLayer(d, self.n_streams * V)
        # Stage 2 only: the FaPro prior enters the prosody slot of its own segment (3.4.4).
        self.prior_proj = nn.Linear(cfg.fapro_dim, e) if with_prior else None

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """(b, q, n) long in [0, V] -> (b, n, q * e) (prosody slot, then acoustic slots)."""
        if tokens.dim() != 3 or tokens.shape[1] != self.n_streams:
            raise ValueError(
                f"tokens must be (b, q={self.n_streams}, n), got {tuple(tokens.shape)}"
            )
        return torch.cat([emb(tokens[:, i]) for i, emb in enumerate(self.embedders)], dim=-1)

    def _segment(self, tok_emb: Tensor, content: Tensor | None) -> Tensor:
        """[prosody e | content d_c (zeros when None) | acoustic qa*e] -> (b, m, d_in)."""
        e = self.cfg.token_emb_dim
        if content is None:
            content = tok_emb.new_zeros(*tok_emb.shape[:2], self.cfg.content_dim)
        return torch.cat([tok_emb[..., :e], content.to(tok_emb.dtype), tok_emb[..., e:]], -1)

    def forward(self, x_t: Tensor, t: Tensor, **cond: Tensor | None) -> Tensor:
        """-> logits (b, q, n, V) of the target tokens (zero at padding); `cond` as hidden's."""
        h, c = self.hidden(x_t, t, **cond)
        out = self.final(h, c, cond["mask"])  # per position: only the target's rows are needed
        return rearrange(out, "b n (q v) -> b q n v", q=x_t.shape[1])

    def hidden(
        self,
        x_t: Tensor,
        t: Tensor,
        *,
        content: Tensor,
        speaker: Tensor,
        mask: Tensor,
        prompt: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        prior: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The DiT's output at the target tokens (b, n, d) and the condition c (b, d) that the
        output head modulates with (dubcli.generation runs the head on chosen rows only)."""
        b, q, n = x_t.shape
        if tuple(content.shape[:2]) != (b, n) or tuple(mask.shape) != (b, n):
            raise ValueError(
                f"content must be (b={b}, n={n}, d_c) and mask (b, n); got "
                f"{tuple(content.shape)}, {tuple(mask.shape)}"
            )
        segments, masks = [], []
        if prompt is not None and prompt.shape[-1] > 0:
            if prompt_mask is None:
                prompt_mask = torch.ones(prompt.shape[0], prompt.shape[2], dtype=torch.bool)
                prompt_mask = prompt_mask.to(prompt.device)
            segments.append(self._segment(self.embed_tokens(prompt), None))
            masks.append(prompt_mask)
        if prior is not None:
            if self.prior_proj is None:
                raise ValueError("this denoiser was built without a prosody-prior input")
            slot = self.prior_proj(prior)
            rest = slot.new_zeros(b, n, self.d_in - slot.shape[-1])
            segments.append(torch.cat([slot, rest], dim=-1))
            masks.append(mask)
        segments.append(self._segment(self.embed_tokens(x_t), content))
        masks.append(mask)
        h = self.in_proj(torch.cat(segments, dim=1))  # (b, L, d)
        full_mask = torch.cat(masks, dim=1)  # (b, L)
        c = self.time(t) + self.speaker(speaker.to(h.dtype))
        # Pack valid positions to the front (stable: segment order kept), run, unpack.
        order = torch.argsort((~full_mask).to(torch.int8), dim=1, stable=True)
        packed_mask = torch.gather(full_mask, 1, order)
        h = torch.gather(h, 1, order[..., None].expand_as(h))
        out = self.dit(zero_pad(h, packed_mask), c, packed_mask)
        inv = torch.argsort(order, dim=1)[:, -n:]  # packed position of each target token
        return torch.gather(out, 1, inv[..., None].expand(b, n, out.shape[-1])), c
