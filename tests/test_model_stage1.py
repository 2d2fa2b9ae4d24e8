"""Stage 1 (DiFlowTTS: content model + DFPA), the batch contract and the configs, tiny preset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dubcli.config import (
    ModelConfig,
    TrainConfig,
    load_config,
    load_train_config,
    model_preset,
    train_preset,
)
from dubcli.errors import InputError
from dubcli.model.batch import Batch, make_prompt, span_mask
from dubcli.model.content import ContentModel, durations_from_log, length_regulate
from dubcli.model.dfpa import DFPADenoiser
from dubcli.model.dubber import DiFlowTTS, build_model, n_params
from dubcli.text.phonemes import PAD_ID, WORD_BOUNDARY_ID
from dubcli.timing import tokens_for_frames

torch.set_num_threads(1)
TINY = model_preset("tiny")


def make_batch(cfg: ModelConfig = TINY, nvs=(40, 31), nts=(12, 9), seed=0, video=True) -> Batch:
    """A consistent random batch: durations tile the frames / tokens, n = tokens_for_frames(nv);
    every third phoneme after the first is a zero-duration <wb>."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    b = len(nvs)
    ns = [tokens_for_frames(v) for v in nvs]
    NT, N, NV = max(nts), max(ns), max(nvs)
    ph = torch.full((b, NT), PAD_ID, dtype=torch.long)
    dt, df = torch.zeros(b, NT, dtype=torch.long), torch.zeros(b, NT, dtype=torch.long)
    for i, (k, nv) in enumerate(zip(nts, nvs, strict=True)):
        ph[i, :k] = torch.randint(8, cfg.phoneme_vocab, (k,), generator=g)
        wb = np.arange(3, k - 1, 3)
        ph[i, wb] = WORD_BOUNDARY_ID
        spoken = np.setdiff1d(np.arange(k), wb)
        cuts = np.sort(rng.choice(np.arange(1, nv), len(spoken) - 1, replace=False))
        bounds = np.concatenate([[0], cuts, [nv]])
        df[i, spoken] = torch.from_numpy(np.diff(bounds))
        dt[i, spoken] = torch.from_numpy(np.diff((bounds * 16 + 2) // 5))
    pm = ph != PAD_ID
    tm = torch.arange(N)[None] < torch.tensor(ns)[:, None]
    vm = torch.arange(NV)[None] < torch.tensor(nvs)[:, None]

    def toks(q):
        return torch.randint(0, cfg.vocab, (b, q, N), generator=g).masked_fill(~tm[:, None], 0)

    extra = {}
    if video:
        extra = dict(
            durations_frames=df,
            lip=torch.randn(b, NV, cfg.lip_dim, generator=g) * vm[..., None],
            face=torch.randn(b, NV, cfg.face_dim, generator=g) * vm[..., None],
            video_mask=vm,
        )
    return Batch(
        ph, pm, dt, toks(1), toks(2), toks(3), tm, torch.randn(b, cfg.speaker_dim), **extra
    )


# --- configs -----------------------------------------------------------------------------------


def test_presets_sizes_and_roundtrip():
    sizes = {name: n_params(DiFlowTTS(model_preset(name))) for name in ("tiny", "small")}
    assert sizes["tiny"] < 1_000_000
    assert 5_000_000 < sizes["small"] < 15_000_000
    paper = model_preset("paper")
    assert paper == ModelConfig()
    assert (paper.dit_layers, paper.dit_dim, paper.dit_heads) == (8, 768, 8)
    assert (paper.sync_video_layers, paper.sync_speech_layers, paper.sync_dim) == (8, 8, 256)
    for name in ("tiny", "small", "paper"):
        cfg = model_preset(name)
        d = cfg.to_dict()
        assert isinstance(d["text_kernels"], list)
        assert ModelConfig.from_dict(d) == cfg
    t = train_preset("dub-grid")
    assert (t.max_batch_items, t.epochs, t.warmup_ratio, t.weight_decay) == (64, 200, 0.05, 0.01)
    assert TrainConfig.from_dict(t.to_dict()) == t


def test_load_config_toml_and_overrides_keep_falsy_values(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('preset = "small"\ndropout = 0.0\nno_fapro = true\ntext_kernels = [3, 1]\n')
    cfg = load_config(f)
    assert cfg.name == "small" and cfg.dropout == 0.0 and cfg.no_fapro is True
    assert cfg.text_kernels == (3, 1) and cfg.dit_dim == model_preset("small").dit_dim
    cfg = load_config("tiny", {"w2_ctc": 0, "no_fapro": False, "dfm_exponent": 2})
    assert cfg.w2_ctc == 0.0 and cfg.no_fapro is False and cfg.dfm_exponent == 2.0
    cfg = load_config("tiny", ["w2_ctc=0.0", "no_ctc=true", "name=custom"])
    assert (cfg.w2_ctc, cfg.no_ctc, cfg.name) == (0.0, True, "custom")
    run = tmp_path / "run.toml"
    run.write_text(
        '[model]\npreset = "tiny"\ndit_layers = 3\n[train]\npreset = "tiny"\nlr = 0.01\n'
    )
    assert load_config(run).dit_layers == 3
    tc = load_train_config(run, {"eval_every": 0})
    assert (tc.lr, tc.eval_every, tc.steps) == (0.01, 0, train_preset("tiny").steps)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("nonsense_field = 1\n", "nonsense_field"),
        ("dit_layers = 2.5\n", "dit_layers"),
        ("dit_dim = 65\n", "divisible"),
        ("dit_layers = \n", "invalid TOML"),
        ('preset = "huge"\n', "huge"),
    ],
)
def test_bad_config_files_raise_input_error_naming_the_file(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=needle) as e:
        load_config(f)
    assert "bad.toml" in str(e.value) or needle == "divisible"
    with pytest.raises(InputError, match="missing.toml"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="not key=value"):
        load_config("tiny", ["dit_layers"])


# --- content model pieces ------------------------------------------------------------------------


def test_length_regulator_and_duration_rounding():
    h = torch.arange(3, dtype=torch.float32)[None, :, None].repeat(1, 1, 2)
    out, mask = length_regulate(h, torch.tensor([[2, 0, 3]]), n_out=6)
    assert out[0, :, 0].tolist() == [0, 0, 2, 2, 2, 0] and mask[0].tolist() == [1] * 5 + [0]
    mask = torch.tensor([[True, True, True, False]])
    log_d = torch.log1p(torch.tensor([[1.0, 2.0, 3.0, 9.0]]))
    assert durations_from_log(log_d, mask).tolist() == [[1, 2, 3, 0]]
    for n in (1, 7, 13, 100):
        d = durations_from_log(log_d, mask, n)
        assert int(d.sum()) == n and d[0, 3] == 0
    assert durations_from_log(log_d, mask, 12).tolist() == [[2, 4, 6, 0]]
    zero = durations_from_log(torch.zeros(1, 4), mask, 6)
    assert zero.tolist() == [[2, 2, 2, 0]]


def test_make_prompt_cuts_a_span_of_each_item():
    batch = make_batch(video=False)
    g = torch.Generator().manual_seed(3)
    p = make_prompt(batch.prosody, batch.acoustic, batch.token_mask, 0.2, 0.4, g)
    for i, n in enumerate(batch.token_lengths.tolist()):
        start, stop = p.span[i].tolist()
        assert 0 <= start < stop <= n and 0.2 * n - 1 <= stop - start <= 0.4 * n + 1
        k = stop - start
        assert p.mask[i].sum() == k
        assert torch.equal(p.prosody[i, :, :k], batch.prosody[i, :, start:stop])
        assert torch.equal(p.acoustic[i, :, :k], batch.acoustic[i, :, start:stop])
    sm = span_mask(p.span, batch.token_mask.shape[1])
    assert torch.equal(sm.sum(1), p.span[:, 1] - p.span[:, 0])
    g2 = torch.Generator().manual_seed(3)
    p2 = make_prompt(batch.prosody, batch.acoustic, batch.token_mask, 0.2, 0.4, g2)
    assert torch.equal(p.span, p2.span)


def test_batch_check_and_to():
    batch = make_batch()
    assert batch.check(video=True).to("cpu").phonemes is not None
    bad = dataclasses.replace(batch, durations_tokens=batch.durations_tokens + batch.phoneme_mask)
    with pytest.raises(ValueError, match="durations_tokens"):
        bad.check()
    with pytest.raises(ValueError, match="durations_frames"):
        dataclasses.replace(batch, durations_frames=batch.durations_frames * 2).check(video=True)
    with pytest.raises(ValueError, match="stage-2"):
        make_batch(video=False).check(video=True)


# --- padding invariance ------------------------------------------------------------------------


def _item(batch: Batch, i: int) -> Batch:
    """Item i alone, cropped to its own lengths."""
    nt, n = int(batch.phoneme_mask[i].sum()), int(batch.token_mask[i].sum())
    return Batch(
        batch.phonemes[i : i + 1, :nt], batch.phoneme_mask[i : i + 1, :nt],
        batch.durations_tokens[i : i + 1, :nt], batch.prosody[i : i + 1, :, :n],
        batch.content[i : i + 1, :, :n], batch.acoustic[i : i + 1, :, :n],
        batch.token_mask[i : i + 1, :n], batch.speaker[i : i + 1],
    )  # fmt: skip


def test_content_model_and_denoiser_ignore_padding():
    torch.manual_seed(0)
    batch = make_batch(video=False)
    content, dfpa = ContentModel(TINY).eval(), DFPADenoiser(TINY).eval()
    for name, p in dfpa.named_parameters():  # adaLN-zero is the identity at init: make it bite
        if "ada" in name or name.startswith("final"):
            torch.nn.init.normal_(p, std=0.3)
    n = batch.token_mask.shape[1]
    out = content(batch.phonemes, batch.phoneme_mask, batch.durations_tokens, n_out=n)
    prompt = torch.cat([batch.prosody, batch.acoustic], 1)[:, :, :30]
    pmask = torch.tensor([[True] * 30, [True] * 17 + [False] * 13])
    x_t = torch.cat([batch.prosody, batch.acoustic], 1).masked_fill(torch.rand(2, 4, n) < 0.5, 32)
    t = torch.tensor([0.3, 0.6])
    kw = dict(speaker=batch.speaker, prompt=prompt)
    logits = dfpa(x_t, t, content=out.latent, mask=batch.token_mask, prompt_mask=pmask, **kw)
    assert logits.shape == (2, 4, n, TINY.vocab)
    one = _item(batch, 1)
    n1 = one.token_mask.shape[1]
    out1 = content(one.phonemes, one.phoneme_mask, one.durations_tokens)
    torch.testing.assert_close(out1.latent[0], out.latent[1, :n1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out1.logits[0], out.logits[1, :, :n1], atol=1e-5, rtol=1e-4)
    l1 = dfpa(
        x_t[1:, :, :n1], t[1:], content=out1.latent, speaker=batch.speaker[1:],
        mask=one.token_mask, prompt=prompt[1:, :, :17], prompt_mask=pmask[1:, :17],
    )  # fmt: skip
    torch.testing.assert_close(l1[0], logits[1, :, :n1], atol=1e-4, rtol=1e-4)
    assert logits[1, :, n1:].abs().max() == 0  # padded target positions give zero logits


# --- losses, training, generation ----------------------------------------------------------------


def test_stage1_losses_finite_and_weighted():
    torch.manual_seed(0)
    model = DiFlowTTS(TINY)
    out = model.losses(make_batch(video=False))
    assert set(out.parts) == {"duration", "content", "dfm"}
    assert all(torch.isfinite(v) for v in out.parts.values())
    torch.testing.assert_close(out.total, sum(out.parts.values()))
    # DFM logits start at zero (adaLN-zero head): the loss is exactly log V at init.
    assert abs(out.parts["dfm"].item() - np.log(TINY.vocab)) < 1e-4
    w = dataclasses.replace(TINY, w1_duration=0.0, w1_content=2.0)
    out2 = DiFlowTTS(w).losses(make_batch(video=False))
    torch.testing.assert_close(out2.total, 2 * out2.parts["content"] + out2.parts["dfm"])


def test_dataset_prompt_and_prompt_span_exclusion():
    model = DiFlowTTS(TINY)
    batch = make_batch(video=False)
    n = batch.token_lengths
    prompt = dict(
        prompt_prosody=batch.prosody[:, :, :10],
        prompt_acoustic=batch.acoustic[:, :, :10],
        prompt_mask=torch.ones(2, 10, dtype=torch.bool),
    )
    # another utterance's prompt, nothing excluded: logits start at 0 -> CE = log V exactly
    span = torch.zeros(2, 2, dtype=torch.long)
    out = model.losses(dataclasses.replace(batch, **prompt, prompt_span=span))
    assert abs(out.parts["dfm"].item() - np.log(TINY.vocab)) < 1e-4
    # a span covering every target token leaves nothing for eq. 1: the term is exactly 0
    span = torch.stack([torch.zeros_like(n), n], dim=1)
    out = model.losses(dataclasses.replace(batch, **prompt, prompt_span=span))
    assert out.parts["dfm"].item() == 0.0 and torch.isfinite(out.total)
    with pytest.raises(ValueError, match="prompt"):
        model.losses(dataclasses.replace(batch, prompt_prosody=batch.prosody[:, :, :10]))


def test_stage1_optimizer_steps_reduce_loss():
    torch.manual_seed(0)
    model = DiFlowTTS(TINY)
    batch = make_batch(video=False)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss(step_seed=123):
        return model.losses(batch, torch.Generator().manual_seed(step_seed))

    with torch.no_grad():
        before = loss().parts
    for step in range(25):
        opt.zero_grad()
        loss(step).total.backward()
        opt.step()
    with torch.no_grad():
        after = loss().parts
    for k in ("duration", "content", "dfm"):
        assert after[k] < before[k] * 0.9, (k, float(before[k]), float(after[k]))


def test_stage1_generate_shapes_counts_and_determinism():
    torch.manual_seed(0)
    model = build_model(TINY, "tts")
    batch = make_batch(video=False)
    prompt = dict(
        prompt_prosody=batch.prosody[0, :, :20], prompt_acoustic=batch.acoustic[0, :, :20]
    )
    ph = batch.phonemes[0]
    g1 = model.generate(ph, speaker=batch.speaker[0], nfe=4, seed=7, n_tokens=57, **prompt)
    g2 = model.generate(ph, speaker=batch.speaker[0], nfe=4, seed=7, n_tokens=57, **prompt)
    assert g1.prosody.shape == (1, 1, 57) and g1.content.shape == (1, 2, 57)
    assert g1.acoustic.shape == (1, 3, 57) and int(g1.durations.sum()) == 57
    assert torch.equal(g1.acoustic, g2.acoustic) and torch.equal(g1.prosody, g2.prosody)
    assert g1.tokens(0).shape == (6, 57)
    assert int(g1.acoustic.max()) < TINY.vocab and int(g1.acoustic.min()) >= 0
    g3 = model.generate(ph, speaker=batch.speaker[0], nfe=4, seed=8, n_tokens=57, **prompt)
    assert not torch.equal(g1.acoustic, g3.acoustic)  # random init: near-uniform posterior
    # a padded batch with per-item token counts, no prompt
    gb = model.generate(
        batch.phonemes, None, None, batch.speaker, nfe=2, seed=0, n_tokens=torch.tensor([30, 11])
    )
    assert gb.lengths.tolist() == [30, 11] and gb.acoustic[1, :, 11:].abs().sum() == 0
    assert model.training  # generate restores the mode
    with pytest.raises(ValueError, match="phonemes"):
        model.generate(ph.float(), None, None, batch.speaker[0])


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "recipes").glob("*.toml")),
                         ids=lambda p: p.name)  # fmt: skip
def test_every_recipe_builds_both_stages(recipe):
    """A recipe file is what `dubcli train --config` reads: its model and train tables load,
    and its model builds for stage 1 and stage 2 (shapes only)."""
    from dubcli.config import load_config, load_train_config
    from dubcli.model.shapes import state_shapes

    cfg = load_config(recipe)
    train = load_train_config(recipe)
    assert train.lr > 0 and cfg.dit_dim % cfg.dit_heads == 0
    for stage in ("tts", "dub"):
        shapes = state_shapes(cfg, stage)
        assert any(k.startswith("dfpa.") for k in shapes)
