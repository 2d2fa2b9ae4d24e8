"""DiFlowTTS (stage 1, paper 3.3) and DiFlowDubber (stage 2, 3.4): losses and generation.

Dimensions: b batch, nt phonemes, n speech tokens, np prompt tokens, nv video frames,
q = qp + qa streams the DFPA generates (1 + 3), qc content codebooks (2), D speaker width,
Dl / Df lip / face widths. Masks are bool, True = valid.

Stage 1 total loss, eq. 9: w_dur * L_dur + w_content * L_content + w_dfm * L_dfm.
Stage 2 total loss, eq. 7: L_dfm + L_align_video (2) + L_align_speech (4) + L_ctc
+ L_distill (5) + L_content (6) [+ the optional FaPro prosody CE], each weighted by the config;
an ablation flag removes its term from `parts` and from the total.
Generation: content tokens are the content head's argmax; prosody + acoustic tokens come from
dfm.euler_sample with the reference prompt as a fixed context segment. Stage 2 always produces
exactly timing.tokens_for_frames(nv) tokens per item: the video fixes the length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from dubcli.config import ModelConfig
from dubcli.model.batch import (
    Batch,
    as_phonemes,
    as_prompt,
    as_speaker,
    as_video,
    make_prompt,
    span_mask,
)
from dubcli.model.ccta import CCTA, distillation_loss, teacher_features
from dubcli.model.content import ContentModel, content_accuracy, content_ce, duration_loss
from dubcli.model.dfm import MaskedMixturePath, PolynomialScheduler, dfm_training_loss, euler_sample
from dubcli.model.dfpa import DFPADenoiser
from dubcli.model.fapro import FaPro
from dubcli.model.synchronizer import (
    Synchronizer,
    alignment_matrix,
    contrastive_alignment_loss,
    ctc_loss,
)
from dubcli.timing import tokens_for_frames


class LossOutput(NamedTuple):
    total: Tensor  # () weighted sum of `parts`
    parts: dict[str, Tensor]  # unweighted loss terms that entered the total
    metrics: dict[str, Tensor]  # detached diagnostics (accuracies), not in the total


@dataclass(frozen=True)
class Generated:
    """Generated tokens (padding = 0 beyond each item's length) and alignment diagnostics."""

    prosody: Tensor  # (b, 1, n) long
    content: Tensor  # (b, 2, n) long
    acoustic: Tensor  # (b, 3, n) long
    token_mask: Tensor  # (b, n) bool
    durations: Tensor  # (b, nt) long tokens per phoneme (stage 2: from the MAS frame spans)
    durations_frames: Tensor | None = None  # (b, nt) long MAS frames per phoneme (stage 2)
    attn_video: Tensor | None = None  # (b, nv, nt) lip->phoneme attention (stage 2)
    attn_speech: Tensor | None = None  # (b, n, nt) speech->phoneme attention (stage 2)

    @property
    def lengths(self) -> Tensor:
        return self.token_mask.sum(dim=1)

    def tokens(self, i: int = 0) -> np.ndarray:
        """(6, n_i) int64 in codec order (prosody, content 0-1, acoustic 0-2) for item i."""
        n = int(self.lengths[i])
        stacked = torch.cat([self.prosody[i], self.content[i], self.acoustic[i]], dim=0)
        return stacked[:, :n].cpu().numpy().astype(np.int64)


class DubCondition(NamedTuple):
    """DiFlowDubber.condition: everything the DFPA's sampling depends on besides the prompt."""

    sync: Any  # SynchronizerOutput: token_mask, durations_frames (MAS), attention maps
    prior: Tensor | None  # (b, n, d_p) FaPro's prosody prior (None without FaPro)
    latent: Tensor  # (b, n, d_c) the content latent z_c the DFPA reads
    content_logits: Tensor  # (b, qc, n, V) the content head's logits
    durations_tokens: Tensor  # (b, nt) long tokens per phoneme from the MAS frame spans


class _Base(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.path = MaskedMixturePath(cfg.vocab, PolynomialScheduler(cfg.dfm_exponent))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def drop_training_parts(self) -> _Base:
        """Free what only training uses (nothing here; DiFlowDubber: its teacher)."""
        return self

    def _dfm(self, batch: Batch, latent: Tensor, prior: Tensor | None, generator):
        """Eq. 1 on the prosody + acoustic streams, prompt span left out of the loss."""
        prompt, pmask, exclude = _training_prompt(batch, self.cfg, generator)
        x1 = torch.cat([batch.prosody, batch.acoustic], dim=1)  # (b, q, n)
        loss_mask = batch.token_mask if exclude is None else batch.token_mask & ~exclude
        cond = dict(
            content=latent, speaker=batch.speaker, mask=batch.token_mask,
            prompt=prompt, prompt_mask=pmask,
        )  # fmt: skip
        if prior is not None:
            cond["prior"] = prior
        return dfm_training_loss(
            self.dfpa, self.path, x1, loss_mask, cond=cond, generator=generator
        )

    def _sample(self, latent, mask, speaker, prompt, pmask, prior, nfe, temperature, seed):
        b, n = mask.shape
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        cond = dict(content=latent, speaker=speaker, mask=mask, prompt=prompt, prompt_mask=pmask)
        if prior is not None:
            cond["prior"] = prior
        res = euler_sample(
            self.dfpa, self.path, (b, self.cfg.n_dfm_streams, n), nfe, temperature,
            cond=cond, generator=gen, device=mask.device,
        )  # fmt: skip
        return res.tokens.masked_fill(~mask[:, None, :], 0)


class DiFlowTTS(_Base):
    """Stage 1: zero-shot TTS = content model + DFPA denoiser (3.3, B.2.1)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.content = ContentModel(cfg)
        self.dfpa = DFPADenoiser(cfg, with_prior=False)

    def losses(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        batch.check()
        cfg, n = self.cfg, batch.token_mask.shape[1]
        out = self.content(batch.phonemes, batch.phoneme_mask, batch.durations_tokens, n_out=n)
        parts = {
            "duration": duration_loss(
                out.log_durations, batch.durations_tokens, batch.phoneme_mask
            ),
            "content": content_ce(out.logits, batch.content, batch.token_mask),
        }
        dfm = self._dfm(batch, out.latent, None, generator)
        parts["dfm"] = dfm.loss
        w = {"duration": cfg.w1_duration, "content": cfg.w1_content, "dfm": cfg.w1_dfm}
        metrics = {
            "dfm_acc": dfm.accuracy.detach(),
            "content_acc": content_accuracy(out.logits.detach(), batch.content, batch.token_mask),
        }
        return LossOutput(_weighted(parts, w), parts, metrics)

    @torch.no_grad()
    def generate(
        self,
        phonemes: Tensor,
        prompt_prosody: Tensor | None,
        prompt_acoustic: Tensor | None,
        speaker: Tensor,
        nfe: int = 8,
        temperature: float = 1.0,
        seed: int | None = None,
        n_tokens: int | Tensor | None = None,
        prompt_mask: Tensor | None = None,
    ) -> Generated:
        """phonemes (nt,) or (b, nt) (PAD_ID padded) -> Generated; durations from the predictor,
        scaled to sum to `n_tokens` (int or (b,)) when given."""
        with _eval(self):
            ph, pm = as_phonemes(phonemes, self.device)
            b = ph.shape[0]
            prompt, pmask = as_prompt(
                prompt_prosody, prompt_acoustic, prompt_mask, b, self.cfg, self.device
            )
            out = self.content(ph, pm, n_tokens=n_tokens)
            spk = as_speaker(speaker, b, self.device)
            x = self._sample(
                out.latent, out.token_mask, spk, prompt, pmask, None, nfe, temperature, seed
            )
            content = out.logits.argmax(dim=-1).masked_fill(~out.token_mask[:, None, :], 0)
            qp = self.cfg.n_prosody
            return Generated(x[:, :qp], content, x[:, qp:], out.token_mask, out.durations)


class DiFlowDubber(_Base):
    """Stage 2: FaPro + Synchronizer + CCTA + DFPA (3.4). Build it from a stage-1 model with
    `from_tts` (random weights otherwise: only the `no_pretraining` ablation trains from here)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.use_fapro = not cfg.no_fapro
        self.fuse_prior = self.use_fapro and not cfg.no_prosody_fusion
        with_head = self.use_fapro and cfg.w2_prosody_prior > 0
        self.fapro = FaPro(cfg, with_head=with_head) if self.use_fapro else None
        self.synchronizer = Synchronizer(cfg)
        if cfg.no_ctc:  # an unused trainable head would trip DDP's unused-parameter check
            self.synchronizer.ctc_head.requires_grad_(False)
        self.ccta = CCTA(cfg, fuse_prior=self.fuse_prior, freeze_heads=not cfg.no_pretraining)
        self.dfpa = DFPADenoiser(cfg, with_prior=self.use_fapro)
        if self.dfpa.prior_proj is not None:  # a new input: start as "no prior" for the DFPA
            nn.init.zeros_(self.dfpa.prior_proj.weight)
            nn.init.zeros_(self.dfpa.prior_proj.bias)
        # The frozen stage-1 content model: the eq. 5 distillation target and, with
        # dfpa_latent "text", the DFPA's condition at generation too (then it is exported).
        self.teacher: ContentModel | None = None
        if cfg.dfpa_latent == "text" or not (cfg.no_pretraining or cfg.no_distillation):
            self.teacher = ContentModel(cfg).requires_grad_(False).eval()

    @classmethod
    def from_tts(cls, tts: DiFlowTTS, config: ModelConfig | None = None) -> DiFlowDubber:
        """Stage-2 model initialized from stage 1: content model and DFPA copied, frozen teacher."""
        cfg = tts.cfg if config is None else config
        if cfg.no_pretraining:
            raise ValueError("config has no_pretraining=True: use build_model(config, 'dub')")
        model = cls(cfg)
        state = tts.content.state_dict()
        try:
            model.ccta.content.load_state_dict(state)
            if model.teacher is not None:
                model.teacher.load_state_dict(state)
            missing, unexpected = model.dfpa.load_state_dict(tts.dfpa.state_dict(), strict=False)
        except RuntimeError as e:
            raise ValueError(f"stage-1 model does not match the stage-2 config: {e}") from None
        if unexpected or any(not k.startswith("prior_proj.") for k in missing):
            raise ValueError(f"DFPA weights do not match: missing {missing}, extra {unexpected}")
        return model.to(tts.device)

    def drop_training_parts(self) -> DiFlowDubber:
        """Free what only training uses (the distillation teacher, unless it conditions the
        DFPA); an inference checkpoint does not hold it."""
        if "teacher." in training_only_prefixes(self.cfg):
            self.teacher = None
        return self

    def train(self, mode: bool = True) -> DiFlowDubber:
        super().train(mode)
        if self.teacher is not None:  # the teacher is a fixed function: no dropout, ever
            self.teacher.eval()
        return self

    def _forward(self, ph, pm, lip, vmask, face, token_lengths, n, durations_frames=None):
        phon = self.ccta.encode_phonemes(ph, pm)
        sync = self.synchronizer(lip, vmask, phon, ph, pm, token_lengths, n, durations_frames)
        fo = self.fapro(face, vmask, token_lengths, n) if self.fapro is not None else None
        prior = fo.prior if fo is not None else None
        cc = self.ccta(sync.out, sync.token_mask, prior if self.fuse_prior else None)
        return sync, fo, prior, cc

    def losses(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        batch.check(video=True)
        cfg = self.cfg
        ph, pm, tmask = batch.phonemes, batch.phoneme_mask, batch.token_mask
        n, nv = tmask.shape[1], batch.video_mask.shape[1]
        sync, fo, prior, cc = self._forward(
            ph, pm, batch.lip, batch.video_mask, batch.face, batch.token_lengths, n
        )
        parts: dict[str, Tensor] = {}
        if not (cfg.no_alignment_losses or cfg.no_video_text_loss):  # eq. 2
            target = alignment_matrix(batch.durations_frames, nv, pm)
            parts["align_video"] = contrastive_alignment_loss(
                sync.scores_video, target, batch.video_mask, pm, cfg.tau_video
            )
        if not (cfg.no_alignment_losses or cfg.no_speech_text_loss):  # eq. 4
            target = alignment_matrix(batch.durations_tokens, n, pm)
            parts["align_speech"] = contrastive_alignment_loss(
                sync.scores_speech, target, tmask, pm, cfg.tau_speech
            )
        if not cfg.no_ctc:
            parts["ctc"] = ctc_loss(sync.ctc_logits, tmask, ph, pm)
        latent = cc.latent
        if self.teacher is not None:
            f_t, t_mask = teacher_features(self.teacher, ph, pm, batch.durations_tokens, n)
            if cfg.dfpa_latent == "text":
                with torch.no_grad():
                    latent = self.teacher.predict(f_t, t_mask).latent
            if not (cfg.no_pretraining or cfg.no_distillation):  # eq. 5
                parts["distill"] = distillation_loss(cc.features, f_t, tmask)
        if not cfg.no_content_ce:  # eq. 6
            parts["content"] = content_ce(cc.logits, batch.content, tmask)
        if fo is not None and fo.logits is not None:
            parts["prosody_prior"] = content_ce(fo.logits, batch.prosody, tmask)
        dfm = self._dfm(batch, latent, prior, generator)  # eq. 1
        parts["dfm"] = dfm.loss
        w = {
            "dfm": cfg.w2_dfm, "content": cfg.w2_content, "distill": cfg.w2_distill,
            "align_video": cfg.w2_align_video, "align_speech": cfg.w2_align_speech,
            "ctc": cfg.w2_ctc, "prosody_prior": cfg.w2_prosody_prior,
        }  # fmt: skip
        metrics = {
            "dfm_acc": dfm.accuracy.detach(),
            "content_acc": content_accuracy(cc.logits.detach(), batch.content, tmask),
        }
        return LossOutput(_weighted(parts, w), parts, metrics)

    @torch.no_grad()
    def generate(
        self,
        phonemes: Tensor,
        lip: Tensor,
        face: Tensor,
        prompt_prosody: Tensor | None,
        prompt_acoustic: Tensor | None,
        speaker: Tensor,
        nfe: int = 8,
        temperature: float = 1.0,
        seed: int | None = None,
        video_mask: Tensor | None = None,
    ) -> Generated:
        """phonemes (nt,)|(b, nt), lip (nv, Dl)|(b, nv, Dl), face likewise -> Generated with
        exactly tokens_for_frames(nv_i) tokens for item i (video_mask (b, nv) gives nv_i); one
        prompt for the batch. Prompts of different lengths, per-item seeds and oracle durations
        (known frames per phoneme in place of the Synchronizer's MAS): dubcli.generation."""
        with _eval(self):
            dev = self.device
            ph, pm = as_phonemes(phonemes, dev)
            b = ph.shape[0]
            lip, face = (
                as_video(lip, b, self.cfg.lip_dim, dev),
                as_video(face, b, self.cfg.face_dim, dev),
            )
            if lip.shape[1] != face.shape[1]:
                raise ValueError(f"lip has {lip.shape[1]} frames but face has {face.shape[1]}")
            if video_mask is None:
                video_mask = torch.ones(b, lip.shape[1], dtype=torch.bool)
            vmask = video_mask.to(dev)
            nv = vmask.sum(dim=1)
            tl = torch.tensor([tokens_for_frames(int(k)) for k in nv], device=dev)
            n = int(tl.max())
            prompt, pmask = as_prompt(
                prompt_prosody, prompt_acoustic, None, b, self.cfg, self.device
            )
            c = self.condition(ph, pm, lip, vmask, face, tl, n)
            tmask = c.sync.token_mask
            spk = as_speaker(speaker, b, dev)
            x = self._sample(c.latent, tmask, spk, prompt, pmask, c.prior, nfe, temperature, seed)
            content = c.content_logits.argmax(dim=-1).masked_fill(~tmask[:, None, :], 0)
            qp = self.cfg.n_prosody
            return Generated(
                x[:, :qp], content, x[:, qp:], tmask, c.durations_tokens,
                c.sync.durations_frames, c.sync.attn_video, c.sync.attn_speech,
            )  # fmt: skip

    def condition(self, ph, pm, lip, vmask, face, token_lengths, n, durations_frames=None):
        """What the DFPA samples from, at generation: the Synchronizer's alignment, FaPro's
        prior, the content latent (ModelConfig.dfpa_latent) and the content head's logits.
        Inputs as `_forward`; token_lengths (b,) = tokens_for_frames of each item's frames."""
        sync, _, prior, cc = self._forward(
            ph, pm, lip, vmask, face, token_lengths, n, durations_frames
        )
        ends = (sync.durations_frames.cumsum(dim=1) * 16 + 2) // 5  # frame -> token bounds
        tok_dur = torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1]))
        latent = cc.latent
        if self.cfg.dfpa_latent == "text":  # the stage-1 condition, timed by the lips
            f_t, t_mask = teacher_features(self.teacher, ph, pm, tok_dur, n)
            latent = self.teacher.predict(f_t, t_mask).latent
            latent = latent.masked_fill(~sync.token_mask[..., None], 0.0)
        return DubCondition(sync, prior, latent, cc.logits, tok_dur)


def training_only_prefixes(config: ModelConfig) -> tuple[str, ...]:
    """state_dict prefixes inference never uses: the stage-2 teacher (the eq. 5 target), unless
    it conditions the DFPA (dfpa_latent "text"). Exports leave them out."""
    return () if config.dfpa_latent == "text" else ("teacher.",)


def build_model(config: ModelConfig, stage: Literal["tts", "dub"] = "tts") -> nn.Module:
    """A freshly initialized DiFlowTTS (stage "tts") or DiFlowDubber (stage "dub")."""
    if stage == "tts":
        return DiFlowTTS(config)
    if stage == "dub":
        return DiFlowDubber(config)
    raise ValueError(f"stage must be 'tts' or 'dub', got {stage!r}")


def n_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameter count (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --- helpers ----------------------------------------------------------------------------------


def _weighted(parts: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    total = None
    for k, v in parts.items():
        term = weights[k] * v
        total = term if total is None else total + term
    return total


def _training_prompt(batch: Batch, cfg: ModelConfig, generator):
    """Batch prompt, or one cut from the target (model/batch.py): (b, q, np), mask, exclude."""
    n = batch.token_mask.shape[1]
    if batch.prompt_prosody is not None:
        prompt = torch.cat([batch.prompt_prosody, batch.prompt_acoustic], dim=1)
        return prompt, batch.prompt_mask, span_mask(batch.prompt_span, n)
    p = make_prompt(
        batch.prosody, batch.acoustic, batch.token_mask,
        cfg.prompt_min_frac, cfg.prompt_max_frac, generator,
    )  # fmt: skip
    return torch.cat([p.prosody, p.acoustic], dim=1), p.mask, span_mask(p.span, n)


class _eval:
    """Context manager: eval mode inside, the previous mode restored after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)
