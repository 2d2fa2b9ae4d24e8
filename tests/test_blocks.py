import math

import pytest
import torch
import torch.nn.functional as F

from dubcli.model.attention import (
    CrossAttention,
    CrossAttentionBlock,
    MultiHeadSelfAttention,
    RotaryEmbedding,
    apply_rope,
)
from dubcli.model.convnext import GRN, ConvNeXtV2Block, ConvNeXtV2Stack
from dubcli.model.dit import AdaLNFinalLayer, DiT, DiTBlock, TimestepEmbedding
from dubcli.model.fft import FFTBlock, FFTStack
from dubcli.model.masks import lengths_to_mask
from dubcli.model.upsample import InterpConvUpsampler, MaskedGroupNorm1, interpolate_lengths
from dubcli.timing import tokens_for_frames

D = 16


def _padded(b_lengths, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(b_lengths)
    n = int(lengths.max())
    return torch.randn(len(b_lengths), n, d, generator=g), lengths_to_mask(lengths)


def _assert_padding_invariant(fn, x, mask, *per_row, atol=1e-5):
    """Valid outputs do not depend on padding content, and equal an unpadded run of each row.

    fn(x, mask, *per_row); per_row tensors (b, ...) are sliced along with each row.
    """
    out = fn(x, mask, *per_row)
    x2 = x.clone()
    x2[~mask] = 1e3 * torch.randn_like(x2[~mask])
    out2 = fn(x2, mask, *per_row)
    assert torch.allclose(out[mask], out2[mask], atol=atol)
    assert (out2[~mask] == 0).all()
    for i, length in enumerate(mask.sum(1).tolist()):
        single = fn(x[i : i + 1, :length], None, *[r[i : i + 1] for r in per_row])
        assert torch.allclose(single[0], out[i, :length], atol=atol)
    return out


def _randomize(module, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------- RoPE and attention


def test_rope_scores_depend_only_on_offsets():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 6, 8), torch.randn(1, 1, 6, 8)

    def scores(shift):
        cos, sin = rope(torch.arange(6) + shift)
        return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2)

    s0, s37 = scores(0), scores(37)
    assert torch.allclose(s0, s37, atol=1e-4)
    assert not torch.allclose(s0, q @ k.transpose(-1, -2), atol=1e-2)  # RoPE did something
    # norms are preserved (a rotation), and a single pair depends on its offset only
    cos, sin = rope(torch.arange(6))
    assert torch.allclose(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    v, w = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def pair(m, n):  # score between v at position m and w at position n
        cm, sm = rope(torch.tensor([m]))
        cn, sn = rope(torch.tensor([n]))
        return (apply_rope(v, cm, sm) * apply_rope(w, cn, sn)).sum()

    a, b = pair(3, 1), pair(2, 0)
    assert not torch.allclose(pair(3, 1), pair(1, 3), atol=1e-3)  # the sign of the offset matters
    assert torch.allclose(a, b, atol=1e-5)


def test_self_attention_matches_explicit_softmax_and_masks_padding():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(D, 4, rope=False).eval()
    x, mask = _padded([5, 3])
    out = attn(x, mask)
    q, k, v = attn.qkv(x).view(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    s = (q @ k.transpose(-1, -2)) / 2.0  # sqrt(hd = 4)
    s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    ref = (s.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, D)
    ref = attn.proj(ref) * mask[..., None]
    assert torch.allclose(out, ref, atol=1e-5)
    _assert_padding_invariant(MultiHeadSelfAttention(D, 4, rope=True).eval(), x, mask)


def test_cross_attention_maps_and_masks():
    torch.manual_seed(0)
    ca = CrossAttention(D, 12, 4).eval()
    x, qmask = _padded([6, 4])
    mem, kmask = _padded([5, 2], d=12, seed=3)
    res = ca(x, mem, qmask, kmask)
    assert res.out.shape == (2, 6, D) and res.attn.shape == (2, 4, 6, 5)
    assert res.scores.shape == (2, 4, 6, 5)
    sums = res.attn.sum(-1)
    assert torch.allclose(sums[0], torch.ones(4, 6), atol=1e-5)
    assert torch.allclose(sums[1, :, :4], torch.ones(4, 4), atol=1e-5)
    assert (sums[1, :, 4:] == 0).all()  # padded queries carry no alignment
    assert (res.attn[1, :, :, 2:] == 0).all()  # padded keys get no weight
    mem2 = mem.clone()
    mem2[1, 2:] = 99.0
    res2 = ca(x, mem2, qmask, kmask)
    assert torch.allclose(res.out, res2.out, atol=1e-5)
    # an additive bias can force the alignment: only key 1 allowed
    bias = torch.full((1, 1, 6, 5), float("-inf"))
    bias[..., 1] = 0.0
    forced = ca(x, mem, qmask, kmask, attn_bias=bias)
    assert torch.allclose(forced.attn[0, :, :, 1], torch.ones(4, 6))


def test_cross_attention_block_padding_invariance():
    torch.manual_seed(0)
    block = CrossAttentionBlock(D, 12, n_heads=4, d_ff=32).eval()
    x, qmask = _padded([6, 4])
    mem, kmask = _padded([5, 3], d=12, seed=3)
    res = block(x, mem, qmask, kmask)
    assert res.out.shape == (2, 6, D) and res.attn.shape == (2, 4, 6, 5)
    x2, mem2 = x.clone(), mem.clone()
    x2[1, 4:], mem2[1, 3:] = 50.0, -50.0
    res2 = block(x2, mem2, qmask, kmask)
    assert torch.allclose(res.out[qmask], res2.out[qmask], atol=1e-5)
    single = block(x[1:, :4], mem[1:, :3])
    assert torch.allclose(single.out[0], res.out[1, :4], atol=1e-5)
    assert torch.allclose(single.attn[0], res.attn[1, :, :4, :3], atol=1e-5)


# ---------------------------------------------------------------- FFT


def test_fft_block_and_stack_masking_and_shapes():
    torch.manual_seed(0)
    x, mask = _padded([7, 4, 1])
    block = FFTBlock(D, 2, 32, kernel_sizes=(3, 1)).eval()
    _assert_padding_invariant(block, x, mask)
    stack = FFTStack(2, D, 2, 32, kernel_sizes=(5, 3), d_in=10, d_out=24).eval()
    x10, _ = _padded([7, 4, 1], d=10)
    out = _assert_padding_invariant(stack, x10, mask)
    assert out.shape == (3, 7, 24)
    layers = stack.forward_layers(x10, mask)
    assert len(layers) == 2 and all(h.shape == (3, 7, D) for h in layers)
    with pytest.raises(ValueError, match="odd"):
        FFTBlock(D, 2, 32, kernel_sizes=(4, 1))
    with pytest.raises(ValueError, match="mask"):
        block(x, mask.float())


# ---------------------------------------------------------------- ConvNeXt V2 / GRN


def test_grn_matches_hand_computation():
    grn = GRN(2)
    with torch.no_grad():
        grn.gamma.copy_(torch.tensor([1.0, 1.0]))
        grn.beta.copy_(torch.tensor([0.5, 0.0]))
    x = torch.tensor([[[1.0, 2.0], [2.0, 0.0], [2.0, 0.0]]])
    # channel L2 norms over time: 3 and 2; mean 2.5; N = (1.2, 0.8); y = x * (1 + N) + beta
    expected = torch.tensor([[[2.7, 3.6], [4.9, 0.0], [4.9, 0.0]]])
    assert torch.allclose(grn(x), expected, atol=1e-5)
    # masked: only the first two rows count; norms sqrt(5) and 2
    m = torch.tensor([[True, True, False]])
    n0, n1 = math.sqrt(5), 2.0
    nx = torch.tensor([n0, n1]) / ((n0 + n1) / 2)
    assert torch.allclose(grn(x, m)[0, :2], x[0, :2] * (1 + nx) + torch.tensor([0.5, 0.0]))
    assert torch.equal(GRN(2)(x), x)  # gamma = beta = 0: identity at init


def test_convnext_block_masking():
    torch.manual_seed(0)
    x, mask = _padded([9, 5])
    block = ConvNeXtV2Block(D, 40)
    _randomize(block.grn, scale=0.5)  # make GRN active so its masked norm is exercised
    _assert_padding_invariant(block, x, mask)
    stack = ConvNeXtV2Stack(2, D, 40, kernel_size=5)
    assert stack(x, mask).shape == x.shape


# ---------------------------------------------------------------- upsampler


def test_interpolation_matches_torch_linear():
    x = torch.randn(1, 7, 3)
    ref = F.interpolate(x.transpose(1, 2), size=22, mode="linear", align_corners=False)
    out = interpolate_lengths(x, torch.tensor([7]), torch.tensor([22]), 22)
    assert torch.allclose(out, ref.transpose(1, 2), atol=1e-6)


def test_upsampler_exact_lengths_padding_and_gradients():
    torch.manual_seed(0)
    up = InterpConvUpsampler(D, 24, d_hidden=20)
    x, mask = _padded([25, 7, 3])
    res = up(x, mask)
    lengths = [tokens_for_frames(n) for n in (25, 7, 3)]
    assert lengths == [80, 22, 10]
    assert res.out.shape == (3, 80, 24) and res.mask.sum(1).tolist() == lengths
    res_fixed = up(x, mask, out_lengths=torch.tensor([81, 30, 5]), n_out=90)
    assert res_fixed.out.shape == (3, 90, 24)
    assert res_fixed.mask.sum(1).tolist() == [81, 30, 5]
    with pytest.raises(ValueError, match="shorter"):
        up(x, mask, n_out=50)

    def run(xx, mm):
        return up(xx, mm).out

    out = run(x, mask)
    x2 = x.clone()
    x2[~mask] = 1e3
    assert torch.allclose(out[res.mask], run(x2, mask)[res.mask], atol=1e-4)
    for i, n in enumerate((25, 7, 3)):
        single = run(x[i : i + 1, :n], None)
        assert torch.allclose(single[0], out[i, : lengths[i]], atol=1e-4)
    xg = x.clone().requires_grad_(True)
    run(xg, mask).pow(2).sum().backward()
    assert xg.grad[mask].abs().sum() > 0 and (xg.grad[~mask] == 0).all()
    for name, p in up.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_masked_group_norm_equals_torch_group_norm_without_padding():
    torch.manual_seed(0)
    gn, ref = MaskedGroupNorm1(6), torch.nn.GroupNorm(1, 6)
    x = torch.randn(2, 11, 6)
    assert torch.allclose(gn(x), ref(x.transpose(1, 2)).transpose(1, 2), atol=1e-5)


# ---------------------------------------------------------------- DiT


def test_dit_block_and_stack_identity_at_init():
    torch.manual_seed(0)
    x, mask = _padded([6, 6])
    c = torch.randn(2, 12)
    block = DiTBlock(D, 4, d_cond=12)
    assert torch.equal(block(x, c), x)
    stack = DiT(3, D, 4, d_cond=12)
    assert torch.equal(stack(x, c), x)
    head = AdaLNFinalLayer(D, 10, d_cond=12)
    assert torch.equal(head(x, c), torch.zeros(2, 6, 10))
    _randomize(block.ada)
    assert not torch.allclose(block(x, c), x)
    assert not torch.allclose(block(x, c), block(x, c + 1))  # conditioning matters


def test_dit_masking_and_long_skip_gradient():
    torch.manual_seed(0)
    stack = DiT(2, D, 4, d_cond=8)
    for blk in stack.blocks:
        _randomize(blk.ada, seed=2)
    x, mask = _padded([8, 5])
    c = torch.randn(2, 8)
    _assert_padding_invariant(lambda xx, mm, cc: stack(xx, cc, mm), x, mask, c)
    stack(x, c, mask).sum().backward()
    assert stack.skip.weight.grad[:, D:].abs().sum() > 0  # the input half of the skip learns
    # the skip carries the stack input past the blocks: W = [0 ; I] returns the input itself,
    # W = [I ; 0] the last block's output
    with torch.no_grad():
        stack.skip.weight.zero_()
        stack.skip.weight[:, D:] = torch.eye(D)
        assert torch.allclose(stack(x, c, mask), x * mask[..., None])
        stack.skip.weight.zero_()
        stack.skip.weight[:, :D] = torch.eye(D)
        last = stack.blocks[1](stack.blocks[0](x, c, mask), c, mask)
        assert torch.allclose(stack(x, c, mask), last, atol=1e-6)
        assert not torch.allclose(last, x * mask[..., None], atol=1e-2)
    assert DiT(1, D, 4, long_skip=False).skip is None


def test_timestep_embedding():
    emb = TimestepEmbedding(D, freq_dim=32)
    out = emb(torch.tensor([0.0, 0.5, 1.0]))
    assert out.shape == (3, D)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="t must be"):
        emb(torch.zeros(3, 1))


def test_blocks_run_under_bf16_autocast():
    torch.manual_seed(0)
    x, mask = _padded([10, 6])
    dit = DiT(1, D, 4)
    _randomize(dit.blocks[0].ada)
    ca = CrossAttentionBlock(D, D, 4, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = dit(x, torch.randn(2, D), mask)
        res = ca(x, x[:, :5], mask, mask[:, :5])
        up = InterpConvUpsampler(D, D)(x, mask).out
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    assert torch.isfinite(res.out).all() and res.attn.dtype == torch.float32
    assert torch.isfinite(up).all() and up.shape == (2, 32, D)
