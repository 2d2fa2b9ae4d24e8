"""The training dataset, collate and token-budget sampler, on a tiny prepared corpus written here
directly with dubcli.data.manifest (`write_corpus` is shared by the other test_train_* files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubcli.data.dataset import (
    DatasetOptions,
    DubDataset,
    collate,
    crop_phonemes,
    describe_data,
    fit_video_window,
)
from dubcli.data.manifest import Utterance, append_manifest, write_dataset_info, write_shard
from dubcli.data.sampler import TokenBatchSampler, batch_cost, make_batches
from dubcli.errors import InputError
from dubcli.text.phonemes import SYMBOLS, VOCAB_VERSION, encode
from dubcli.timing import tokens_for_frames
from dubcli.vision.features import FEATURES_VERSION

VOCAB, SPK, LIP, FACE = 72, 17, 100, 30  # codec: vocab >= 70 phones, SPK = 2 m + 3


def write_corpus(
    root, *, n_train=12, n_valid=4, speakers=3, seed=0, min_ph=4, max_ph=12, codec=True
):
    """A prepared dataset whose tokens are a learnable function of phonemes and speaker:
    content = f(phoneme), prosody = f(speaker, position in phoneme), acoustic = f(content,
    speaker). Durations are consistent: tokens = tokens_for_frames(frames) per boundary."""
    rng = np.random.default_rng(seed)
    phones = SYMBOLS[8:]
    spk_emb = rng.normal(size=(speakers, SPK)).astype(np.float32)
    utts, items = [], {}
    total = n_train + n_valid
    for k in range(total):
        split = "train" if k < n_train else "valid"
        uid = f"u{k:03d}"
        s = k % speakers
        nt = int(rng.integers(min_ph, max_ph + 1))
        ph = [phones[int(i)] for i in rng.integers(len(phones), size=nt)]
        dfr = rng.integers(1, 4, size=nt)
        fb = np.concatenate([[0], np.cumsum(dfr)])
        tb = np.array([tokens_for_frames(int(f)) for f in fb])
        dtk = np.diff(tb)
        n, nv = int(tb[-1]), int(fb[-1])
        ids = np.repeat(np.array(encode(ph)), dtk)
        pos = np.concatenate([np.arange(d) for d in dtk])
        content = np.stack([ids % VOCAB, (ids * 7 + 3) % VOCAB]).astype(np.int16)
        prosody = ((pos + 5 * s) % VOCAB)[None].astype(np.int16)
        acoustic = np.stack([(ids + s) % VOCAB, (ids * 3 + s) % VOCAB, (pos + s) % VOCAB])
        lip = np.repeat(np.eye(LIP)[np.array(encode(ph)) % LIP], dfr, axis=0)
        face = rng.normal(size=(nv, FACE)) + s
        items[uid] = {
            "prosody": prosody,
            "content": content,
            "acoustic": acoustic.astype(np.int16),
            "speaker": spk_emb[s],
            "lip": lip.astype(np.float16),
            "face": face.astype(np.float16),
            "video_valid": np.ones(nv, np.uint8),
        }
        same = [f"u{j:03d}" for j in range(total) if j % speakers == s and j != k]
        same = [r for r in same if (int(r[1:]) < n_train) == (split == "train")]
        utts.append(
            Utterance(
                id=uid, split=split, speaker=f"spk{s}", text="x", phonemes=tuple(ph),
                durations_frames=tuple(int(x) for x in dfr),
                durations_tokens=tuple(int(x) for x in dtk), n_frames=nv, n_tokens=n,
                seconds=n / 80, shard="shards/all-00000.safetensors", ref_ids=tuple(same),
            )
        )  # fmt: skip
    write_shard(root / "shards/all-00000.safetensors", items)
    append_manifest(root / "manifest.jsonl", utts)
    info = {
        "features_version": FEATURES_VERSION,
        "phoneme_vocab": VOCAB_VERSION,
        "vocab": VOCAB,
        "lip_dim": LIP,
        "face_dim": FACE,
    }
    write_dataset_info(root, info)
    if codec:
        from dubcli.audio.codec.classifier import PhoneClassifier
        from dubcli.audio.codec.phonetic import N_BASES, N_UNITS, ContentTable
        from dubcli.audio.codec.world import WorldCodec, WorldCodecConfig

        cfg = WorldCodecConfig(vocab=VOCAB, mcep_order=(SPK - 3) // 2)
        m, width = cfg.mcep_order, 8
        table = ContentTable(rng.normal(size=(N_BASES, 3, N_BASES + 1, m)),
                             rng.normal(size=(N_UNITS, 3, m)))  # fmt: skip
        n_in = (2 * cfg.classifier_context + 1) * (m + 2 + cfg.ap_order + 1)
        layers = {"w0": rng.normal(size=(n_in, width)), "b0": np.zeros(width),
                  "w1": rng.normal(size=(width, width)), "b1": np.zeros(width),
                  "w2": rng.normal(size=(width, N_UNITS)), "b2": np.zeros(N_UNITS)}  # fmt: skip
        classifier = PhoneClassifier(layers, cfg.classifier_context)
        acoustic = rng.normal(size=(3, VOCAB, cfg.acoustic_dim)).astype(np.float32)
        WorldCodec(cfg, table, classifier, acoustic).save(root / "codec.safetensors")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_items_and_collate(corpus):
    ds = DubDataset.open(corpus / "train", DatasetOptions(video=True))
    assert len(ds) == 12
    it = ds[0]
    u = ds.utts[0]
    assert it.tokens.shape == (6, u.n_tokens) and it.lip.shape == (u.n_frames, LIP)
    assert int(it.durations_tokens.sum()) == u.n_tokens == tokens_for_frames(u.n_frames)
    assert it.prompt_span == (0, 0) and it.prompt.shape[0] == 4  # a reference utterance
    b = collate([ds[i] for i in range(4)]).check(video=True)
    assert b.size == 4 and b.ids == tuple(x.id for x in ds.utts[:4])
    assert torch.equal(b.token_mask.sum(1), torch.tensor([x.n_tokens for x in ds.utts[:4]]))
    assert torch.equal(b.content[0, :, : u.n_tokens], it.tokens[1:3])
    # The same item in the same epoch is the same tensors; another epoch may pick another ref.
    assert torch.equal(ds[3].prompt, ds[3].prompt)
    spec = describe_data(corpus, ds.utts)
    assert (spec.vocab, spec.speaker_dim, spec.lip_dim, spec.face_dim) == (VOCAB, SPK, LIP, FACE)


def test_self_prompt_is_a_span_of_the_item(corpus):
    ds = DubDataset.open(corpus / "valid", DatasetOptions(prompt="self"))
    it = ds[1]
    a, b = it.prompt_span
    assert 0 <= a < b <= it.tokens.shape[1]
    assert torch.equal(it.prompt, it.tokens[[0, 3, 4, 5], a:b])
    assert it.lip is None and collate([it]).lip is None


def test_crop_on_phoneme_boundaries(corpus):
    ds = DubDataset.open(corpus / "train", DatasetOptions(video=True, max_tokens=20))
    for i in range(len(ds)):
        it = ds[i]
        n, nv = it.tokens.shape[1], it.lip.shape[0]
        assert n == tokens_for_frames(nv) and n <= 23
        assert int(it.durations_tokens.sum()) == n and int(it.durations_frames.sum()) == nv
        assert (it.durations_tokens >= 0).all() and len(it.phonemes) >= 1
    # Known answer: durations 5,5,5,5 with max 12 from phoneme 0 -> phonemes [0, 2).
    assert crop_phonemes(np.array([5, 5, 5, 5]), 12, None) == (0, 2)
    (tw, td), (fw, fd) = fit_video_window(np.array([3, 3, 4]), np.array([1, 1, 1]), 0, 3, 10)
    assert tuple(tw) == (0, 10) and list(td) == [3, 3, 4] and tuple(fw) == (0, 3)
    # Audio one token short of the video: the window shrinks to what the tokens cover.
    (tw, td), (fw, fd) = fit_video_window(np.array([3, 3, 3]), np.array([1, 1, 1]), 0, 3, 9)
    assert tuple(fw) == (0, 2) and tuple(tw) == (0, 6) and list(fd) == [1, 1, 0]


def test_bad_shard_is_an_input_error(tmp_path):
    write_corpus(tmp_path, n_train=2, n_valid=1, codec=False)
    ds = DubDataset.open(tmp_path / "train")
    u = ds.utts[0]
    ds.utts[0] = Utterance(**{**u.__dict__, "n_tokens": u.n_tokens + 1,
                              "durations_tokens": u.durations_tokens[:-1]
                              + (u.durations_tokens[-1] + 1,)})  # fmt: skip
    with pytest.raises(InputError, match=r"all-00000.safetensors: u000/prosody has shape"):
        ds[0]


def test_sampler_budget_order_and_shards():
    lengths = [int(x) for x in np.random.default_rng(1).integers(10, 200, size=300)]
    batches = make_batches(lengths, 1000, rng=np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(300))
    assert all(batch_cost([lengths[i] for i in b]) <= 1000 for b in batches)
    s = TokenBatchSampler(lengths, 1000, seed=3)
    e0 = list(s)
    s.set_epoch(1)
    assert list(s) != e0 and TokenBatchSampler(lengths, 1000, seed=3).epoch_batches(0) == e0
    # Two ranks: the same number of batches, disjoint (up to the cycled padding), all covered.
    r0 = TokenBatchSampler(lengths, 1000, seed=3, rank=0, world_size=2).epoch_batches(0)
    r1 = TokenBatchSampler(lengths, 1000, seed=3, rank=1, world_size=2).epoch_batches(0)
    assert len(r0) == len(r1) and r0[0] != r1[0]
    assert set(i for b in r0 + r1 for i in b) == set(range(300))
    # Resume: position 5 of epoch 0 continues with batch 5.
    s = TokenBatchSampler(lengths, 1000, seed=3)
    for _ in range(5):
        s.advance()
    t = TokenBatchSampler(lengths, 1000, seed=3)
    assert t.load_state_dict(s.state_dict()) == []
    assert next(iter(t)) == e0[5]
    assert TokenBatchSampler(lengths, 999, seed=3).load_state_dict(s.state_dict())  # differs
