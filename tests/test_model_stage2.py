"""Stage 2 (DiFlowDubber: FaPro, Synchronizer, CCTA, DFPA adaptation), tiny preset."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_model_stage1 import TINY, make_batch

from dubcli.model.ccta import distillation_loss
from dubcli.model.dubber import DiFlowDubber, DiFlowTTS, build_model, n_params
from dubcli.model.synchronizer import (
    Synchronizer,
    alignment_matrix,
    contrastive_alignment_loss,
    ctc_loss,
    ctc_targets,
    mas_path,
)
from dubcli.text.phonemes import BLANK_ID, PAD_ID, WORD_BOUNDARY_ID
from dubcli.timing import tokens_for_frames

torch.set_num_threads(1)
ALL_PARTS = {"dfm", "content", "distill", "align_video", "align_speech", "ctc", "prosody_prior"}


def _dubber(cfg=TINY, seed=0) -> tuple[DiFlowTTS, DiFlowDubber]:
    torch.manual_seed(seed)
    tts = DiFlowTTS(cfg)
    return tts, DiFlowDubber.from_tts(tts, cfg)


# --- alignment losses with known answers ----------------------------------------------------------


def test_alignment_matrix_known_answer():
    dur = torch.tensor([[2, 0, 3, 1, 0]])
    mask = torch.tensor([[True, True, True, True, False]])
    a = alignment_matrix(dur, 7, mask)[0]
    assert a.argmax(dim=1).tolist()[:6] == [0, 0, 2, 2, 2, 3]
    assert a.sum(dim=1).tolist() == [1, 1, 1, 1, 1, 1, 0]  # position 6 lies past the spans
    assert a[:, 1].sum() == 0 and a[:, 4].sum() == 0


def test_contrastive_loss_is_minimal_at_the_true_alignment():
    nq, nk = 20, 6
    dur = torch.tensor([[3, 4, 2, 5, 3, 3]])
    kmask = torch.ones(1, nk, dtype=torch.bool)
    qmask = torch.ones(1, nq, dtype=torch.bool)
    target = alignment_matrix(dur, nq, kmask)
    # uniform attention: each frame puts 1/nk on its phoneme -> loss = log nk exactly
    uni = contrastive_alignment_loss(torch.zeros(1, nq, nk), target, qmask, kmask)
    assert abs(float(uni) - math.log(nk)) < 1e-5
    match = contrastive_alignment_loss(8.0 * target, target, qmask, kmask)
    shifted = contrastive_alignment_loss(8.0 * target.roll(3, dims=1), target, qmask, kmask)
    assert float(match) < 0.01 < math.log(nk) < float(shifted)
    # temperature sharpens; padded keys and queries are ignored
    assert float(contrastive_alignment_loss(8.0 * target, target, qmask, kmask, 0.5)) < float(match)
    pad_scores = torch.cat([8.0 * target, torch.full((1, nq, 2), 50.0)], dim=2)
    pad_target = torch.cat([target, torch.ones(1, nq, 2)], dim=2)
    kpad = torch.cat([kmask, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(
        contrastive_alignment_loss(pad_scores, pad_target, qmask, kpad), match
    )
    qpad = qmask.clone()
    qpad[0, 10:] = False
    garbage = 8.0 * target.clone()
    garbage[0, 10:] = -garbage[0, 10:]
    half = contrastive_alignment_loss(garbage, target, qpad, kmask)
    assert float(half) < 0.01


def test_mas_follows_attention_and_skips_word_boundaries():
    # 4 phonemes, the 3rd a <wb>; attention says frames 0-2 -> p0, 3-4 -> p1, 5-9 -> p3
    phon = torch.tensor([[20, 21, WORD_BOUNDARY_ID, 22, PAD_ID]])
    pmask = phon != PAD_ID
    attn = torch.full((1, 10, 5), 0.01)
    for frames, p in ((range(0, 3), 0), (range(3, 5), 1), (range(5, 10), 3)):
        attn[0, list(frames), p] = 0.97
    attn[0, :, 2] = 0.5  # a <wb> with strong attention still gets no frame
    fmask = torch.ones(1, 10, dtype=torch.bool)
    path = mas_path(attn, fmask, pmask, pmask & (phon != WORD_BOUNDARY_ID))
    assert path.sum(dim=-1)[0].tolist() == [3, 2, 0, 5, 0]
    assert torch.equal(path.sum(dim=1), torch.ones(1, 10))
    # more phonemes than frames: skip mode, still every frame assigned once
    path = mas_path(attn[:, :2], fmask[:, :2], pmask, pmask)
    assert torch.equal(path.sum(dim=1), torch.ones(1, 2))


def test_ctc_runs_and_prefers_the_right_labels():
    phon = torch.tensor([[20, WORD_BOUNDARY_ID, 21, 21, PAD_ID], [30, 31, PAD_ID, PAD_ID, PAD_ID]])
    pmask = phon != PAD_ID
    targets, lengths = ctc_targets(phon, pmask)
    assert lengths.tolist() == [3, 2] and targets[0].tolist() == [20, 21, 21]
    n, vp = 12, TINY.phoneme_vocab
    tmask = torch.ones(2, n, dtype=torch.bool)
    tmask[1, 9:] = False
    # logits spelling "20 _ 21 _ 21" / "30 31" with blanks everywhere else
    seq = [[20, 20, BLANK_ID, 21, 21, BLANK_ID, 21] + [BLANK_ID] * 5, [30, 31] + [BLANK_ID] * 10]
    good = torch.full((2, n, vp), -10.0)
    for i, s in enumerate(seq):
        good[i, torch.arange(n), torch.tensor(s)] = 10.0
    lg = ctc_loss(good, tmask, phon, pmask)
    lr = ctc_loss(torch.randn(2, n, vp), tmask, phon, pmask)
    assert torch.isfinite(lg) and float(lg) < 0.01 < float(lr)


def test_distillation_loss_known_values():
    x = torch.randn(2, 7, 5)
    mask = torch.ones(2, 7, dtype=torch.bool)
    assert float(distillation_loss(x, x, mask)) < 1e-6
    assert abs(float(distillation_loss(x, -x, mask)) - 2.0) < 1e-5
    y = x.clone()
    mask[:, 5:] = False
    y[:, 5:] = torch.randn(2, 2, 5)  # padding differs: the pooled vectors do not
    assert float(distillation_loss(x, y, mask)) < 1e-6


# --- modules --------------------------------------------------------------------------------------


def test_synchronizer_shapes_and_padding_invariance():
    torch.manual_seed(0)
    sync = Synchronizer(TINY).eval()
    batch = make_batch()
    phon = torch.randn(2, batch.phonemes.shape[1], TINY.text_dim) * batch.phoneme_mask[..., None]
    n = batch.token_mask.shape[1]
    out = sync(batch.lip, batch.video_mask, phon, batch.phonemes, batch.phoneme_mask, None, n)
    nv, nt = batch.video_mask.shape[1], batch.phonemes.shape[1]
    assert out.out.shape == (2, n, TINY.sync_dim) and out.attn_video.shape == (2, nv, nt)
    assert out.attn_speech.shape == (2, n, nt) and out.ctc_logits.shape[-1] == TINY.phoneme_vocab
    assert torch.equal(out.token_mask, batch.token_mask)
    assert torch.equal(out.durations_frames.sum(1), batch.video_mask.sum(1))
    wb = batch.phonemes == WORD_BOUNDARY_ID
    assert out.durations_frames[wb].sum() == 0
    nv1, nt1, n1 = (
        int(m[1].sum()) for m in (batch.video_mask, batch.phoneme_mask, batch.token_mask)
    )
    one = sync(
        batch.lip[1:, :nv1], batch.video_mask[1:, :nv1], phon[1:, :nt1],
        batch.phonemes[1:, :nt1], batch.phoneme_mask[1:, :nt1],
    )  # fmt: skip
    assert one.out.shape[1] == n1 == tokens_for_frames(nv1)
    torch.testing.assert_close(one.out[0], out.out[1, :n1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        one.attn_video[0], out.attn_video[1, :nv1, :nt1], atol=1e-5, rtol=1e-4
    )


def test_from_tts_copies_weights_and_freezes_the_right_parts():
    tts, dub = _dubber()
    for name, p in tts.content.named_parameters():
        assert torch.equal(p, dub.ccta.content.get_parameter(name))
        assert torch.equal(p, dub.teacher.get_parameter(name))
    for name, p in tts.dfpa.named_parameters():
        assert torch.equal(p, dub.dfpa.get_parameter(name))
    assert dub.dfpa.prior_proj.weight.abs().sum() == 0
    dub.train()
    assert not dub.teacher.training and dub.ccta.content.training
    out = dub.losses(make_batch())
    assert set(out.parts) == ALL_PARTS and all(torch.isfinite(v) for v in out.parts.values())
    out.total.backward()
    frozen = [dub.teacher, dub.ccta.content.proj, dub.ccta.content.head, dub.ccta.content.duration]
    for module in frozen:
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None
    for module in (dub.synchronizer, dub.fapro, dub.ccta.fusion, dub.ccta.content.predictor,
                   dub.ccta.content.encoder, dub.dfpa.final):  # fmt: skip
        # (not dfpa.dit: behind the zero-initialized adaLN-zero head its first gradient is 0)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert n_params(dub, trainable_only=True) < n_params(dub)
    # the frozen teacher still equals stage 1 after an optimizer step on the student
    opt = torch.optim.AdamW([p for p in dub.parameters() if p.requires_grad], lr=1e-2)
    opt.step()
    assert torch.equal(dub.teacher.embed.weight, tts.content.embed.weight)
    assert torch.equal(dub.ccta.content.head[0].weight, tts.content.head[0].weight)
    assert not torch.equal(dub.ccta.content.embed.weight, tts.content.embed.weight)


@pytest.mark.parametrize(
    "flag, removed",
    [
        ("no_video_text_loss", {"align_video"}),
        ("no_speech_text_loss", {"align_speech"}),
        ("no_alignment_losses", {"align_video", "align_speech"}),
        ("no_distillation", {"distill"}),
        ("no_ctc", {"ctc"}),
        ("no_content_ce", {"content"}),
        ("no_fapro", {"prosody_prior"}),
        ("no_pretraining", {"distill"}),
        ("no_prosody_fusion", set()),
    ],
)
def test_each_ablation_flag_removes_its_term(flag, removed):
    cfg = dataclasses.replace(TINY, **{flag: True})
    torch.manual_seed(0)
    model = build_model(cfg, "dub")
    out = model.losses(make_batch())
    assert set(out.parts) == ALL_PARTS - removed
    assert torch.isfinite(out.total)
    if flag == "no_fapro":
        assert model.fapro is None and model.dfpa.prior_proj is None
    if flag == "no_prosody_fusion":
        assert model.ccta.fusion.in_features == cfg.sync_dim and model.fapro is not None
    if flag == "no_pretraining":
        assert model.teacher is None and model.ccta.content.head[0].weight.requires_grad
        with pytest.raises(ValueError, match="no_pretraining"):
            DiFlowDubber.from_tts(DiFlowTTS(cfg))


def test_stage2_optimizer_steps_reduce_loss():
    _, model = _dubber()
    batch = make_batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    def loss(seed=123):
        return model.losses(batch, torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = loss()
    for step in range(20):
        opt.zero_grad()
        loss(step).total.backward()
        opt.step()
    with torch.no_grad():
        after = loss()
    assert float(after.total) < 0.8 * float(before.total)
    for k in ("align_video", "align_speech", "ctc", "dfm"):
        assert after.parts[k] < before.parts[k], k


def test_bf16_autocast_and_rebuild_from_config():
    tts, dub = _dubber()
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = tts.losses(batch).total + dub.losses(batch).total
    assert torch.isfinite(total) and total.dtype == torch.float32
    total.backward()
    # a checkpoint rebuilds its model from the config alone (DESIGN 7)
    cfg = type(TINY).from_dict(dub.cfg.to_dict())
    rebuilt = build_model(cfg, "dub")
    rebuilt.load_state_dict(dub.state_dict())  # strict: same keys and shapes
    assert all(not p.requires_grad for p in rebuilt.teacher.parameters())


# --- generation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("nv", [1, 4, 5, 13, 27])
def test_generate_exact_token_counts(nv):
    _, model = _dubber()
    batch = make_batch()
    g = model.generate(
        batch.phonemes[0], batch.lip[0, :nv], batch.face[0, :nv], batch.prosody[0, :, :9],
        batch.acoustic[0, :, :9], batch.speaker[0], nfe=2, seed=1,
    )  # fmt: skip
    n = tokens_for_frames(nv)
    assert g.prosody.shape == (1, 1, n) and g.content.shape == (1, 2, n)
    assert g.acoustic.shape == (1, 3, n) and g.tokens(0).shape == (6, n)
    assert int(g.durations_frames.sum()) == nv and int(g.durations.sum()) == n
    assert g.attn_video.shape == (1, nv, batch.phonemes.shape[1])
    assert g.attn_speech.shape == (1, n, batch.phonemes.shape[1])


def test_generate_batched_and_deterministic():
    _, model = _dubber()
    batch = make_batch()
    args = (batch.phonemes, batch.lip, batch.face, None, None, batch.speaker)
    g1 = model.generate(*args, nfe=3, seed=5, video_mask=batch.video_mask)
    g2 = model.generate(*args, nfe=3, seed=5, video_mask=batch.video_mask)
    assert g1.lengths.tolist() == [tokens_for_frames(40), tokens_for_frames(31)]
    for k in ("prosody", "content", "acoustic", "durations_frames", "attn_video"):
        assert torch.equal(getattr(g1, k), getattr(g2, k)), k
    assert g1.acoustic[1, :, g1.lengths[1] :].abs().sum() == 0
    with pytest.raises(ValueError, match="frames"):
        model.generate(batch.phonemes[0], batch.lip[0, :10], batch.face[0, :9], None, None,
                       batch.speaker[0])  # fmt: skip


# --- dfpa_latent "text": the DFPA keeps its stage-1 condition ----------------------------------


def test_dfpa_latent_is_validated():
    with pytest.raises(ValueError, match="dfpa_latent must be one of"):
        dataclasses.replace(TINY, dfpa_latent="lips")
    with pytest.raises(ValueError, match="no_pretraining"):
        dataclasses.replace(TINY, dfpa_latent="text", no_pretraining=True)


def test_text_latent_conditions_the_dfpa_on_the_frozen_stage1_content_model():
    cfg = dataclasses.replace(TINY, dfpa_latent="text")
    _, model = _dubber(cfg)
    _, paper = _dubber(TINY)
    for m in (model, paper):  # adaLN-zero makes a fresh DFPA ignore its condition: perturb it
        with torch.no_grad():
            for p in m.dfpa.parameters():
                p.add_(0.2 * torch.randn_like(p))
    batch = make_batch()
    # Training: the DFM term sees the teacher's z_c, so the CCTA student's fusion layer gets
    # gradient from the content CE and the distillation only, never from the DFM loss.
    out = model.losses(batch, generator=torch.Generator().manual_seed(0))
    assert set(out.parts) == ALL_PARTS
    model.zero_grad()
    out.parts["dfm"].backward()
    assert model.ccta.fusion.weight.grad is None or model.ccta.fusion.weight.grad.abs().sum() == 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.dfpa.parameters())
    # Generation: changing the student path changes nothing the DFPA generates, while in
    # "ccta" mode it does.
    args = (batch.phonemes, batch.lip, batch.face, None, None, batch.speaker)
    kw = dict(nfe=3, seed=5, video_mask=batch.video_mask)
    g1 = model.generate(*args, **kw)
    with torch.no_grad():
        model.ccta.fusion.weight.add_(torch.randn_like(model.ccta.fusion.weight))
    g2 = model.generate(*args, **kw)
    assert torch.equal(g1.acoustic, g2.acoustic) and torch.equal(g1.prosody, g2.prosody)
    p1 = paper.generate(*args, **kw)
    with torch.no_grad():
        paper.ccta.fusion.weight.add_(torch.randn_like(paper.ccta.fusion.weight))
    p2 = paper.generate(*args, **kw)
    assert not torch.equal(p1.acoustic, p2.acoustic)
    # The teacher is inference weights now: dropping training parts keeps it.
    assert model.drop_training_parts().teacher is not None
    assert paper.drop_training_parts().teacher is None
