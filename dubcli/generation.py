"""Batched stage-2 generation for inference: many cues through DiFlowDubber in padded batches.

Dimensions: b batch, nt phonemes, nv video frames (25 fps), n speech tokens, np prompt tokens,
q = qp + qa DFPA streams (1 + 3), V codes per stream, d DiT width, D speaker width.

`generate_dub(model, items, nfe, temperature)` gives each item exactly what
`DiFlowDubber.generate` gives it alone with the same seed (model/dubber.py), for any batch it is
put in, up to float rounding, because:
- every random draw comes from the item's own generator (seeded with the item's seed), in the
  order the one-item sampler (model/dfm.py euler_sample) draws it: per Euler step the
  (1, q, n_i) unmasking uniforms, then the (m_i, V) Gumbel uniforms of the m_i tokens it
  unmasks. So a cue's audio does not depend on which other cues shared its batch, and a cached
  cue (dubbing/cuework.py) is the same whichever way it was made;
- padding is invisible to the networks (masks everywhere; the DFPA packs valid positions to the
  front, so RoPE offsets do not see padding).
It is also cheaper per step than `euler_sample` + `DFPADenoiser.forward`: the output head
(AdaLN-final, d -> q * V = 4096 logits per position) runs only for the (stream, position) pairs
unmasked at that step, not for every prompt, prior and target position: over a sampling run
that is n * q rows of width V instead of nfe * (np + 2n) rows of width q * V (measured with
the small config: the head was ~25% of generation time).

`plan_batches` sorts items by length and cuts batches so padding stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from dubcli.model.batch import as_prompt
from dubcli.model.dit import modulate
from dubcli.text.phonemes import PAD_ID
from dubcli.timing import tokens_for_frames

MAX_BATCH = 16  # items per forward pass (CPU: larger batches gain nothing, cost memory)
MAX_PAD_FRACTION = 0.25  # a batch stops growing when padding would exceed this share of it


@dataclass(frozen=True, eq=False)
class DubItem:
    """One cue for the model (the same inputs DiFlowDubber.generate takes for one item)."""

    phonemes: Tensor  # (nt,) long phoneme ids
    lip: np.ndarray  # (nv, Dl) float32
    face: np.ndarray  # (nv, Df) float32
    prompt_prosody: np.ndarray  # (qp, np) int64
    prompt_acoustic: np.ndarray  # (qa, np) int64
    speaker: np.ndarray  # (D,) float32
    seed: int | None = 0
    durations_frames: Tensor | None = None  # (nt,) long oracle frames per phoneme

    @property
    def nv(self) -> int:
        return int(self.lip.shape[0])


@dataclass(frozen=True)
class ItemOutput:
    """One item's share of a batch, unpadded (what Generated holds at index i, cut to length)."""

    prosody: Tensor  # (qp, n) long
    content: Tensor  # (qc, n) long: the content head's argmax
    acoustic: Tensor  # (qa, n) long
    durations: Tensor  # (nt,) long tokens per phoneme (from the MAS frame spans)
    durations_frames: Tensor  # (nt,) long video frames per phoneme
    attn_video: Tensor  # (nv, nt) float lip -> phoneme attention
    attn_speech: Tensor  # (n, nt) float speech -> phoneme attention

    @property
    def n_tokens(self) -> int:
        return int(self.prosody.shape[1])


def plan_batches(
    lengths: Sequence[int], max_batch: int = MAX_BATCH, max_pad: float = MAX_PAD_FRACTION
) -> list[list[int]]:
    """Indices grouped into batches: sorted by length (longest first), a batch closes when it
    is full or when adding the next item would make padding exceed `max_pad` of its cells."""
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur:
            longest = int(lengths[cur[0]])
            cells = longest * (len(cur) + 1)
            used = sum(int(lengths[j]) for j in cur) + int(lengths[i])
            if len(cur) >= max_batch or (cells - used) > max_pad * cells:
                batches.append(cur)
                cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def _pad_stack(arrays: Sequence[Tensor], value) -> Tensor:
    """(len_i, *rest) tensors -> (b, max len, *rest) padded with `value` on the right."""
    m = max(int(a.shape[0]) for a in arrays)
    out = arrays[0].new_full((len(arrays), m, *arrays[0].shape[1:]), value)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


@torch.inference_mode()
def generate_dub(model, items: Sequence[DubItem], nfe: int = 8,
                 temperature: float = 1.0) -> list[ItemOutput]:  # fmt: skip
    """One padded forward of a stage-2 DiFlowDubber over `items` (module doc) -> per item."""
    if int(nfe) < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    cfg, dev = model.cfg, model.device
    was = model.training
    model.eval()
    try:
        b = len(items)
        ph = _pad_stack([torch.as_tensor(it.phonemes, dtype=torch.long) for it in items], PAD_ID)
        pm = ph != PAD_ID
        lip = _pad_stack([torch.as_tensor(it.lip, dtype=torch.float32) for it in items], 0.0)
        face = _pad_stack([torch.as_tensor(it.face, dtype=torch.float32) for it in items], 0.0)
        nvs = [it.nv for it in items]
        vmask = torch.arange(lip.shape[1])[None, :] < torch.tensor(nvs)[:, None]
        tl = torch.tensor([tokens_for_frames(k) for k in nvs])
        n = int(tl.max())
        dur = None
        if any(it.durations_frames is not None for it in items):
            if not all(it.durations_frames is not None for it in items):
                raise ValueError("oracle durations for some items of a batch but not all")
            dur = _pad_stack([it.durations_frames.long() for it in items], 0).to(dev)
        ph, pm, lip, face, vmask, tl = (x.to(dev) for x in (ph, pm, lip, face, vmask, tl))
        npr = [int(it.prompt_prosody.shape[-1]) for it in items]
        pp = _pad_stack([torch.as_tensor(it.prompt_prosody).long().T for it in items], 0)
        pa = _pad_stack([torch.as_tensor(it.prompt_acoustic).long().T for it in items], 0)
        pmask = torch.arange(pp.shape[1])[None, :] < torch.tensor(npr)[:, None]
        prompt, pmask = as_prompt(pp.transpose(1, 2), pa.transpose(1, 2), pmask, b, cfg, dev)
        spk = torch.stack([torch.as_tensor(it.speaker, dtype=torch.float32) for it in items])
        spk = spk.to(dev)
        c = model.condition(ph, pm, lip, vmask, face, tl, n, dur)  # as DiFlowDubber.generate
        sync, tmask = c.sync, c.sync.token_mask
        cond = dict(content=c.latent, speaker=spk, mask=tmask, prompt=prompt, prompt_mask=pmask)
        if c.prior is not None:
            cond["prior"] = c.prior
        gens = [
            torch.Generator().manual_seed(int(it.seed)) if it.seed is not None else None
            for it in items
        ]
        x = sample_items(model.dfpa, model.path.mask_id, model.path.scheduler, tmask, nfe,
                         temperature, cond, gens)  # fmt: skip
        content = c.content_logits.argmax(dim=-1).masked_fill(~tmask[:, None, :], 0)
        tok_dur = c.durations_tokens
        qp = cfg.n_prosody
        outs = []
        for i, it in enumerate(items):
            ni, nti, nvi = int(tl[i]), int(it.phonemes.shape[0]), nvs[i]
            outs.append(
                ItemOutput(
                    x[i, :qp, :ni],
                    content[i, :, :ni],
                    x[i, qp:, :ni],
                    tok_dur[i, :nti],
                    sync.durations_frames[i, :nti],
                    sync.attn_video[i, :nvi, :nti],
                    sync.attn_speech[i, :ni, :nti],
                )  # fmt: skip
            )
        return outs
    finally:
        model.train(was)


def _head_rows(dfpa, h: Tensor, c: Tensor, sel: Tensor) -> Tensor:
    """Logits (m, V) of the selected (item, stream, position) tokens, sel (b, q, n) bool, in
    the row-major order of `logits[sel]` (the head's LN + adaLN + one stream's projection)."""
    final = dfpa.final
    shift, scale = final.ada(c).chunk(2, dim=-1)
    hm = modulate(final.norm(h), shift, scale)  # (b, n, d)
    q = sel.shape[1]
    w = rearrange(final.proj.weight, "(q v) d -> q v d", q=q)
    bias = rearrange(final.proj.bias, "(q v) -> q v", q=q)
    idx = sel.nonzero()  # (m, 3) rows of (item, stream, position), row-major
    out = hm.new_empty(idx.shape[0], w.shape[1])
    for s in range(q):
        rows = (idx[:, 1] == s).nonzero().squeeze(1)
        if rows.numel():
            out[rows] = torch.addmm(bias[s], hm[idx[rows, 0], idx[rows, 2]], w[s].T)
    return out


def sample_items(dfpa, mask_id: int, scheduler, mask: Tensor, nfe: int, temperature: float,
                 cond: dict, gens: Sequence[torch.Generator | None]) -> Tensor:  # fmt: skip
    """Euler sampling (model/dfm.py euler_sample, no fixed tokens) of (b, q, n) tokens with one
    generator per item, drawn as the one-item sampler draws them (module doc)."""
    b, n = mask.shape
    q = dfpa.n_streams
    dev = mask.device
    lens = [int(k) for k in mask.sum(dim=1)]
    x = torch.full((b, q, n), mask_id, dtype=torch.long, device=dev)
    steps = [k / nfe for k in range(nfe + 1)]
    for k in range(nfe):
        t = steps[k]
        p = 1.0 if k == nfe - 1 else scheduler.unmask_probability(t, steps[k + 1])
        masked = x == mask_id
        u = torch.ones((b, q, n), device=dev)  # padding: never unmasked (u >= p always)
        for i, g in enumerate(gens):
            dev_g = g.device if g is not None else torch.device("cpu")
            u[i, :, : lens[i]] = torch.rand((1, q, lens[i]), generator=g, device=dev_g)[0].to(dev)
        unmask = masked & (u < p) & mask[:, None, :]
        if k == nfe - 1:  # the one-item sampler's last step unmasks padding too: it is cut off
            unmask = masked & mask[:, None, :]
        if not bool(unmask.any()):
            continue
        h, c = dfpa.hidden(x, torch.full((b,), t, device=dev), **cond)
        logits = _head_rows(dfpa, h, c, unmask)
        counts = unmask.sum(dim=(1, 2)).tolist()
        picks, start = [], 0
        for i, m in enumerate(counts):
            picks.append(_categorical(logits[start : start + m], temperature, gens[i]))
            start += m
        x = x.masked_scatter(unmask, torch.cat(picks).to(dev))
    return x.masked_fill(~mask[:, None, :], 0)


def _categorical(logits: Tensor, temperature: float, generator) -> Tensor:
    """model/dfm.py sample_categorical: Gumbel-max with uniforms from `generator`."""
    logits = logits.float()
    if temperature == 0 or logits.numel() == 0:
        return logits.argmax(dim=-1)
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(logits.shape, generator=generator, device=gdev).to(logits.device)
    u = u.clamp(torch.finfo(torch.float32).tiny, 1.0 - 1e-7)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(dim=-1)
