import json

import numpy as np
import pytest

from dubcli.data.manifest import (
    ShardReader,
    Utterance,
    append_manifest,
    load_split,
    read_dataset_info,
    read_manifest,
    write_dataset_info,
    write_shard,
)
from dubcli.errors import InputError


def _utt(uid, split="train", shard="shards/train-00000.safetensors"):
    return Utterance(
        id=uid,
        split=split,
        speaker="us1",
        text="bin blue",
        phonemes=("<sil>", "B", "IH1", "N", "<wb>", "B", "L", "UW1", "<sil>"),
        durations_frames=(2, 1, 2, 1, 0, 1, 1, 3, 2),
        durations_tokens=(6, 3, 7, 3, 0, 3, 4, 10, 7),
        n_frames=13,
        n_tokens=43,
        seconds=0.52,
        shard=shard,
        ref_ids=("u9",),
    )


def test_manifest_roundtrip_and_splits(tmp_path):
    write_dataset_info(tmp_path, {"features_version": "lmk-v1"})
    append_manifest(tmp_path / "manifest.jsonl", [_utt("a"), _utt("b", split="test")])
    utts = read_manifest(tmp_path / "manifest.jsonl")
    assert utts[0] == _utt("a") and utts[0].phoneme_ids[1] == 53  # 'B': first consonant
    root, test = load_split(tmp_path / "test")
    assert root == tmp_path and [u.id for u in test] == ["b"]
    assert len(load_split(tmp_path)[1]) == 2
    with pytest.raises(InputError, match="no 'valid' utterances"):
        load_split(tmp_path / "valid")


def test_bad_manifest_and_dataset(tmp_path):
    with pytest.raises(InputError, match="not a prepared dataset"):
        read_dataset_info(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"manifest_version": 99}))
    with pytest.raises(InputError, match="format 99"):
        read_dataset_info(tmp_path)
    bad = _utt("a").to_json().replace('"n_tokens": 43', '"n_tokens": 44')
    (tmp_path / "m.jsonl").write_text(bad + "\n")
    with pytest.raises(InputError, match="m.jsonl:1: bad manifest line"):
        read_manifest(tmp_path / "m.jsonl")


def test_shards(tmp_path):
    u = _utt("a")
    tokens = np.arange(43 * 2, dtype=np.int16).reshape(2, 43)
    write_shard(tmp_path / u.shard, {"a": {"content": tokens, "speaker": np.ones(4, np.float32)}})
    r = ShardReader(tmp_path)
    assert np.array_equal(r.get(u, "content"), tokens)
    assert set(r.fields(u)) == {"content", "speaker"} and not r.has(u, "lip")
    with pytest.raises(InputError, match="no field 'lip'"):
        r.get(u, "lip")
    with pytest.raises(InputError, match="shard missing"):
        r.get(_utt("b", shard="shards/nope.safetensors"), "content")
