import math

import pytest
import torch
from torch import nn

from dubcli.model.dfm import (
    MaskedMixturePath,
    PolynomialScheduler,
    dfm_loss,
    dfm_training_loss,
    euler_sample,
    sample_categorical,
)
from dubcli.model.dit import AdaLNFinalLayer, DiT, TimestepEmbedding

V = 16


class PeakedModel:
    """Always predicts `target` (b, q, n) with a peaked posterior; records every call."""

    def __init__(self, target, peak=60.0):
        self.target, self.peak, self.calls = target, peak, []

    def __call__(self, x_t, t, **cond):
        self.calls.append((x_t.clone(), t.clone(), cond))
        return self.peak * nn.functional.one_hot(self.target, V).float()


def _target(b=2, q=3, n=20, seed=0):
    return torch.randint(0, V, (b, q, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("nfe", [1, 2, 3, 7, 32, 128])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampler_recovers_target_for_any_nfe(nfe, temperature):
    target = _target()
    model = PeakedModel(target)
    path = MaskedMixturePath(V, PolynomialScheduler(2.0))
    res = euler_sample(
        model, path, (2, 3, 20), nfe, temperature, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(res.tokens, target)
    assert res.masked_per_step.shape == (nfe + 1, 2)
    assert res.masked_per_step[0].tolist() == [60, 60]
    assert res.masked_per_step[-1].tolist() == [0, 0]
    assert (res.masked_per_step[1:] <= res.masked_per_step[:-1]).all()  # never re-masked
    # steps where no token would move skip the model (with kappa = t^2 early steps are tiny)
    ts = [call[1][0].item() * nfe for call in model.calls]
    assert 1 <= len(ts) <= nfe and ts == sorted(ts)
    assert all(abs(k - round(k)) < 1e-4 for k in ts)  # queried on the Euler grid k / nfe
    assert (model.calls[0][0] == V).all()


def test_nfe_one_unmasks_everything_in_one_call():
    target = _target()
    model = PeakedModel(target)
    res = euler_sample(model, MaskedMixturePath(V), (2, 3, 20), nfe=1, cond={"spk": 7})
    assert len(model.calls) == 1 and model.calls[0][2] == {"spk": 7}
    assert res.masked_per_step.tolist() == [[60, 60], [0, 0]]


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_unmasking_follows_the_schedule_in_expectation(exponent):
    n_tok, nfe = 2 * 4000, 8
    target = _target(1, 2, 4000)
    model = PeakedModel(target)
    sched = PolynomialScheduler(exponent)
    res = euler_sample(
        model, MaskedMixturePath(V, sched), (1, 2, 4000), nfe, 1.0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    for k in range(nfe + 1):
        expect = 1.0 - sched.kappa(torch.tensor(k / nfe)).item()
        sd = math.sqrt(n_tok * max(expect * (1 - expect), 1e-9))
        assert abs(res.masked_per_step[k, 0].item() - n_tok * expect) <= 5 * sd + 1, k
    # the model is queried at the Euler grid t_k = k / nfe, with the partially masked state
    ts = [call[1][0].item() for call in model.calls]
    assert ts == pytest.approx([k / nfe for k in range(nfe)])
    for k, (x_t, _, _) in enumerate(model.calls):
        assert (x_t == V).sum().item() == res.masked_per_step[k, 0].item()


def test_unmask_probabilities_compose_to_the_path_marginal():
    sched = PolynomialScheduler(3.0)
    grid = [k / 10 for k in range(11)]
    survive = 1.0
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        survive *= 1 - sched.unmask_probability(t, t_next)
        assert survive == pytest.approx(1 - t_next**3, abs=1e-12)
    assert sched.unmask_probability(0.9, 1.0) == 1.0
    assert sched.d_kappa(torch.tensor(0.5)).item() == pytest.approx(3 * 0.25)
    with pytest.raises(ValueError, match="exponent"):
        PolynomialScheduler(0.0)


def test_prompt_positions_are_kept_and_never_resampled():
    b, q, n = 2, 3, 20
    target = _target(b, q, n)
    prompt = (target + 5) % V  # the model would predict something else there
    fixed = torch.zeros(b, n, dtype=torch.bool)
    fixed[:, :6] = True
    model = PeakedModel(target)
    res = euler_sample(
        model, MaskedMixturePath(V), (b, q, n), 5, 1.0, prompt, fixed,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert torch.equal(res.tokens[:, :, :6], prompt[:, :, :6])
    assert torch.equal(res.tokens[:, :, 6:], target[:, :, 6:])
    assert res.masked_per_step[0].tolist() == [q * 14, q * 14]  # fixed tokens are not counted
    for x_t, _, _ in model.calls:  # the model always sees the prompt values
        assert torch.equal(x_t[:, :, :6], prompt[:, :, :6])
    with pytest.raises(ValueError, match="fixed_tokens"):
        euler_sample(model, MaskedMixturePath(V), (b, q, n), 2, fixed_mask=fixed)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        euler_sample(model, MaskedMixturePath(V), (b, q, n), 2, 1.0, prompt + V, fixed)


def test_sampling_is_deterministic_given_a_generator():
    logits = torch.randn(2, 2, 30, V, generator=torch.Generator().manual_seed(0))

    def model(x_t, t):
        return logits

    path = MaskedMixturePath(V)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return euler_sample(model, path, (2, 2, 30), 6, 1.0, generator=g).tokens

    assert torch.equal(run(11), run(11))
    assert not torch.equal(run(11), run(12))
    argmax = euler_sample(model, path, (2, 2, 30), 4, 0.0, generator=torch.Generator()).tokens
    assert torch.equal(argmax, logits.argmax(-1))


def test_categorical_sampling_frequencies_and_temperature():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = probs.log().expand(40_000, 4)
    g = torch.Generator().manual_seed(0)
    freq = torch.bincount(sample_categorical(logits, 1.0, g), minlength=4) / 40_000
    assert torch.allclose(freq, probs, atol=0.015)
    sharp = probs**2 / (probs**2).sum()  # T = 0.5 squares the probabilities
    freq = torch.bincount(sample_categorical(logits, 0.5, g), minlength=4) / 40_000
    assert torch.allclose(freq, sharp, atol=0.015)
    assert (sample_categorical(logits[:5], 0.0) == 3).all()


def test_corruption_rates_and_independent_streams():
    path = MaskedMixturePath(V, PolynomialScheduler(2.0))
    x1 = _target(4, 3, 2000)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0.0, 1.0, 0.5, 0.8])
    s = path.corrupt(x1, t, generator=g)
    assert s.corrupted[0].all() and not s.corrupted[1].any()
    assert torch.equal(s.x_t == V, s.corrupted)
    assert torch.equal(s.x_t[~s.corrupted], x1[~s.corrupted])
    for i, tt in ((2, 0.5), (3, 0.8)):
        p = 1 - tt**2
        assert abs(s.corrupted[i].float().mean().item() - p) < 0.03
        # streams are corrupted independently: a whole column is masked with prob p^q, not p
        assert abs(s.corrupted[i].all(dim=0).float().mean().item() - p**3) < 0.04
    fixed = torch.zeros(4, 2000, dtype=torch.bool)
    fixed[:, :100] = True
    s = path.corrupt(x1, t, fixed, generator=g)
    assert not s.corrupted[:, :, :100].any() and s.corrupted[0, :, 100:].all()
    ts = path.sample_t(10_000, generator=torch.Generator().manual_seed(0))
    assert ts.min() >= 0 and ts.max() < 1 - path.t_eps + 1e-7
    assert abs(ts.mean().item() - 0.5) < 0.02


def test_loss_perfect_uniform_and_selection():
    x1 = _target(2, 3, 10)
    corrupted = torch.rand(2, 3, 10, generator=torch.Generator().manual_seed(0)) < 0.5
    perfect = 40.0 * nn.functional.one_hot(x1, V).float()
    assert dfm_loss(perfect, x1, corrupted).loss.item() < 1e-6
    res = dfm_loss(torch.zeros(2, 3, 10, V), x1, corrupted)
    assert res.loss.item() == pytest.approx(math.log(V), rel=1e-6)
    assert res.n_tokens.item() == corrupted.sum().item()
    assert torch.allclose(res.per_stream, torch.full((3,), math.log(V)))
    # wrong predictions on uncorrupted tokens and outside loss_mask do not count
    loss_mask = torch.ones(2, 10, dtype=torch.bool)
    loss_mask[:, 7:] = False  # padding / prompt
    bad = perfect.clone()
    wrong = 40.0 * nn.functional.one_hot((x1 + 1) % V, V).float()
    outside = ~corrupted | ~loss_mask[:, None, :]
    bad[outside] = wrong[outside]
    res = dfm_loss(bad, x1, corrupted, loss_mask)
    assert res.loss.item() < 1e-6 and res.accuracy.item() == 1.0
    assert res.n_tokens.item() == (corrupted & loss_mask[:, None, :]).sum().item()
    assert dfm_loss(bad, x1, corrupted).loss.item() > 1.0  # without the mask they would count
    # gradients reach only the selected logits
    logits = torch.zeros(2, 3, 10, V, requires_grad=True)
    dfm_loss(logits, x1, corrupted, loss_mask).loss.backward()
    assert (logits.grad[outside] == 0).all() and logits.grad[~outside].abs().sum() > 0
    empty = dfm_loss(perfect, x1, torch.zeros_like(corrupted))
    assert empty.loss.item() == 0.0 and empty.n_tokens.item() == 0
    with pytest.raises(ValueError, match="logits must be"):
        dfm_loss(perfect[:, :2], x1, corrupted)


def test_training_loss_keeps_prompt_clean_and_is_seeded():
    x1 = _target(2, 3, 12)
    fixed = torch.zeros(2, 12, dtype=torch.bool)
    fixed[:, :4] = True
    model = PeakedModel(x1, peak=0.0)  # uniform posterior
    path = MaskedMixturePath(V)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return dfm_training_loss(model, path, x1, ~fixed, fixed, {"c": 1}, g)

    a, b = run(5), run(5)
    assert a.loss.item() == pytest.approx(math.log(V)) and a.n_tokens == b.n_tokens
    x_t = model.calls[0][0]
    assert torch.equal(x_t[:, :, :4], x1[:, :, :4]) and model.calls[0][2] == {"c": 1}
    assert torch.equal(model.calls[0][0], model.calls[1][0])


class TinyDenoiser(nn.Module):
    """Token embedders (V + 1 rows for MASK) -> DiT -> adaLN head: a real network under DFM."""

    def __init__(self, q=2, d=32, n=12):
        super().__init__()
        self.q = q
        self.pos = nn.Parameter(torch.randn(n, d))  # stands in for the content latent (B.2.1)
        self.emb = nn.ModuleList(nn.Embedding(V + 1, d) for _ in range(q))
        self.time = TimestepEmbedding(d, freq_dim=32)
        self.dit = DiT(2, d, 4)
        self.head = AdaLNFinalLayer(d, q * V)

    def forward(self, x_t, t):
        h = self.pos + sum(e(x_t[:, i]) for i, e in enumerate(self.emb))  # (b, n, d)
        c = self.time(t)
        out = self.head(self.dit(h, c), c)  # (b, n, q V)
        return out.view(*out.shape[:2], self.q, V).transpose(1, 2)


@pytest.fixture
def one_thread():
    # tiny ops: OpenMP threads only add overhead (and stall badly on a busy 2-core machine)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_dit_learns_a_sequence_and_samples_it(one_thread):
    torch.manual_seed(0)
    x1 = _target(1, 2, 12, seed=4).expand(8, 2, 12).contiguous()
    model = TinyDenoiser()
    path = MaskedMixturePath(V)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        loss = dfm_training_loss(model, path, x1, generator=g).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(math.log(V), rel=1e-4)  # zero-init head: uniform at start
    assert loss.item() < 0.05
    model.eval()
    for nfe in (1, 4):
        out = euler_sample(model, path, (1, 2, 12), nfe, 0.0).tokens
        assert torch.equal(out, x1[:1])
