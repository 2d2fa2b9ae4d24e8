"""`dubcli prepare` on the synth layout: the prepared format end to end, resuming after a kill,
--shard parts and their merge, reference pairing, bad input. Small codebooks (72 codes, dio F0)
keep it fast; one corpus is built per module and reused."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import typer

from dubcli.audio.codec.phonetic import BASE_INDEX
from dubcli.cli import _root, run
from dubcli.commands.prepare import register
from dubcli.console import reset_console
from dubcli.data.manifest import ShardReader, read_dataset_info, read_manifest, write_shard
from dubcli.errors import EXIT_USAGE, InputError, OutputError
from dubcli.prepare.layouts import Extracted, Item, ItemFailed, Layout
from dubcli.prepare.merge import merge_prepared
from dubcli.prepare.run import pair_refs, parse_shard, prepare
from dubcli.synth.speech import make_specs, synthesize
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, strip_stress
from dubcli.timing import tokens_for_frames

TINY = {"vocab": 72, "f0_method": "dio"}


def _app() -> typer.Typer:
    app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(_root)
    register(app)
    return app


def cli(*argv) -> tuple[int, str]:
    reset_console()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = run([str(a) for a in argv], application=_app())
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth12")
    prepare("synth", None, out, n=12, codec_config=TINY, codec_items=4, shard_size=4)
    return out


def _lines(root):
    return {u.id: u for u in read_manifest(root / "manifest.jsonl")}


def test_synth_corpus_has_the_prepared_format(corpus):
    info = read_dataset_info(corpus)
    assert info["complete"] and info["counts"] == {"train": 10, "valid": 1, "test": 1}
    assert info["vocab"] == 72 and info["codec"]["kind"] == "codec/world"
    assert (info["lip_dim"], info["face_dim"], info["phoneme_edges"]) == (100, 30, "sil")
    utts = read_manifest(corpus / "manifest.jsonl")
    assert len(utts) == 12 and len({u.id for u in utts}) == 12
    reader = ShardReader(corpus)
    train_spk = {u.speaker for u in utts if u.split == "train"}
    for u in utts:
        u.check()
        assert u.phonemes[0] == u.phonemes[-1] == SILENCE and u.align_ok
        assert u.n_tokens == tokens_for_frames(u.n_frames)  # synth pads to whole 0.2 s blocks
        assert reader.get(u, "prosody").shape == (1, u.n_tokens)
        assert reader.get(u, "acoustic").dtype == np.int16
        content = reader.get(u, "content")
        assert int(content.max()) < 72
        # phonetic content: stage 1 is the phone of each frame, from the manifest's timings
        frames = np.repeat(np.array(u.phonemes, dtype=object), u.durations_tokens)
        assert content[0].tolist() == [BASE_INDEX.get(strip_stress(p), 0) for p in frames]
        assert reader.get(u, "lip").shape == (u.n_frames, 100)
        assert reader.get(u, "video_valid").all()
        if u.split == "test":
            assert u.speaker not in train_spk  # unseen voices
    assert len(list((corpus / "shards").iterdir())) == 5  # train 4+4+2, valid 1, test 1


def test_durations_are_the_synth_timeline(corpus):
    """Known answer: token boundaries are the synthesizer's phone ends at 80/s."""
    spec = make_specs(1, 0, "train")[0]
    u = _lines(corpus)[spec.id]
    timeline = synthesize(spec).phones
    spoken = [(s, d) for s, d in zip(u.phonemes, u.durations_tokens, strict=True)]
    assert [s for s, _ in spoken if s != WORD_BOUNDARY] == [p.symbol for p in timeline]
    assert all(d == 0 for s, d in spoken if s == WORD_BOUNDARY)
    ends = np.cumsum([d for s, d in spoken if s != WORD_BOUNDARY])
    expect = np.rint(np.array([p.end for p in timeline]) * 80)
    assert np.array_equal(ends[:-1], expect[:-1]) and ends[-1] == u.n_tokens


def test_references_share_speaker_and_split(corpus):
    utts = _lines(corpus)
    groups = {}
    for u in utts.values():
        groups.setdefault((u.split, u.speaker), []).append(u.id)
    for u in utts.values():
        others = set(groups[(u.split, u.speaker)]) - {u.id}
        assert set(u.ref_ids) == others


def test_pair_refs_is_deterministic_and_capped():
    items = [Item(f"u{i:02d}", "train", "a" if i < 12 else "b") for i in range(14)]
    refs = pair_refs(items, seed=3, max_refs=4)
    assert refs == pair_refs(list(reversed(items)), seed=3, max_refs=4)
    assert len(refs["u00"]) == 4 and "u00" not in refs["u00"]
    assert set(refs["u00"]) <= {f"u{i:02d}" for i in range(12)}
    assert refs["u12"] == ("u13",)


def test_training_reads_it(corpus):
    from dubcli.data.dataset import DatasetOptions, DubDataset, collate

    ds = DubDataset.open(corpus / "train", DatasetOptions(video=True))
    batch = collate([ds[i] for i in range(3)])
    assert batch.lip.shape[-1] == 100 and batch.content.shape[1] == 2


@pytest.fixture(scope="module")
def small(corpus, tmp_path_factory):
    """The CLI on n=6 reusing the corpus's codebooks: a second, independent run."""
    out = tmp_path_factory.mktemp("small")
    rc, stdout = cli("prepare", "--layout", "synth", "-n", 6, "-o", out, "--shard-size", 2,
                     "--codec", corpus / "codec.safetensors", "--json")  # fmt: skip
    assert rc == 0, stdout
    return out, json.loads(stdout)


def test_cli_run_matches_the_larger_corpus_and_rerun_skips(small, corpus):
    out, res = small
    assert res["processed"] == 6 and res["failures"] == [] and res["counts"]["train"] == 4
    big = _lines(corpus)
    ra, rb = ShardReader(out), ShardReader(corpus)
    for uid, u in _lines(out).items():  # the same specs and codebooks give the same data
        v = big[uid]
        assert (u.phonemes, u.durations_tokens, u.text) == (v.phonemes, v.durations_tokens, v.text)
        assert np.array_equal(ra.get(u, "content"), rb.get(v, "content"))
        assert np.array_equal(ra.get(u, "lip"), rb.get(v, "lip"))
    rc, stdout = cli("prepare", "--layout", "synth", "-n", 6, "-o", out, "--json")
    again = json.loads(stdout)
    assert rc == 0 and again["processed"] == 0 and again["skipped"] == 6
    assert len(read_manifest(out / "manifest.jsonl")) == 6


def test_only_split_makes_a_test_set_of_the_larger_corpus(corpus, tmp_path, capsys):
    # split sizes of n=12 are 10/1/1, of n=20 16/2/2: the first test item of both is the same
    out = tmp_path / "test-only"
    rc, stdout = cli("prepare", "--layout", "synth", "-n", 20, "-o", out, "--only-split", "test",
                     "--codec", corpus / "codec.safetensors", "--json")  # fmt: skip
    assert rc == 0, stdout
    res = json.loads(stdout)
    assert res["counts"] == {"train": 0, "valid": 0, "test": 2} and res["processed"] == 2
    mine, big = _lines(out), _lines(corpus)
    shared = set(mine) & set(big)
    assert len(shared) == 1 and all(uid.startswith("synth-test-") for uid in mine)
    uid = shared.pop()
    assert np.array_equal(ShardReader(out).get(mine[uid], "content"),
                          ShardReader(corpus).get(big[uid], "content"))  # fmt: skip
    # a rerun of the same folder without the filter would mix datasets: refused
    rc, stdout = cli("prepare", "--layout", "synth", "-n", 20, "-o", out,
                     "--codec", corpus / "codec.safetensors")  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert rc == 6 and "was prepared with only_splits=['test']" in err


def test_resume_after_a_kill(small, corpus, tmp_path):
    out = tmp_path / "killed"
    codec = corpus / "codec.safetensors"

    def kill(k, res):
        if k == 5:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        prepare("synth", None, out, n=6, codec=codec, shard_size=2, on_result=kill)
    first = read_manifest(out / "manifest.jsonl")
    assert 0 < len(first) < 6  # whole shards only: the 5th item was still buffered
    # a shard written just before the kill, whose lines never made it to the manifest
    write_shard(out / "shards/train-00007.safetensors", {"x": {"lip": np.zeros(2)}})
    res = prepare("synth", None, out, n=6, codec=codec, shard_size=2)
    assert res.skipped == len(first) and res.processed == 6 - len(first)
    utts = read_manifest(out / "manifest.jsonl")
    assert sorted(u.id for u in utts) == sorted(_lines(small[0]))  # no duplicates, none lost
    used = {u.shard.split("/")[-1] for u in utts}
    assert {f.name for f in (out / "shards").iterdir()} == used  # the orphan is gone
    for u in utts:
        ShardReader(out).get(u, "content")
    with pytest.raises(OutputError, match="seed=0"):
        prepare("synth", None, out, n=6, seed=1, codec=codec)
    (out / "codec.safetensors").unlink()  # tokens without their codebooks: refuse to go on
    with pytest.raises(OutputError, match="no codec.safetensors"):
        prepare("synth", None, out, n=6)


def test_shard_parts_merge_into_the_whole(small, corpus, tmp_path):
    codec = corpus / "codec.safetensors"
    parts = [tmp_path / "p1", tmp_path / "p2"]
    for i, p in enumerate(parts, 1):
        rc, _ = cli("prepare", "--layout", "synth", "-n", 6, "-o", p, "--shard", f"{i}/2",
                    "--codec", codec)  # fmt: skip
        assert rc == 0
    a, b = _lines(parts[0]), _lines(parts[1])
    assert not set(a) & set(b) and all("-p1of2-" in u.shard for u in a.values())
    rc, stdout = cli("prepare-merge", *parts, "-o", tmp_path / "all", "--json")
    assert rc == 0 and json.loads(stdout)["missing_parts"] == []
    whole, merged = _lines(small[0]), _lines(tmp_path / "all")
    assert set(merged) == set(whole)
    for uid, u in merged.items():
        assert u.ref_ids == whole[uid].ref_ids  # pairing is over the full list in every part
        assert np.array_equal(
            ShardReader(tmp_path / "all").get(u, "acoustic"),
            ShardReader(small[0]).get(whole[uid], "acoustic"),
        )
    assert read_dataset_info(tmp_path / "all")["complete"]
    with pytest.raises(InputError, match="also"):
        merge_prepared([parts[0], parts[0]], tmp_path / "dup")
    res = merge_prepared([parts[1]], tmp_path / "half")
    assert res.missing_parts == (1,) and not read_dataset_info(tmp_path / "half")["complete"]
    with pytest.raises(OutputError, match="shard="):  # a part folder is not a whole run
        prepare("synth", None, parts[0], n=6, codec=codec)


class FakeLayout(Layout):
    """Media-free items (a tone per item) so the process pool is tested without synthesis."""

    name = "fake"

    def items(self):
        return [Item(f"f{i}", "train", f"s{i % 2}") for i in range(5)]

    def audio(self, item):
        return self._wav(item)

    def _wav(self, item):
        k = int(item.id[1:])
        t = np.arange(3200 * (k + 1)) / 16000
        return (0.3 * np.sin(2 * np.pi * (120 + 20 * k) * t)).astype(np.float32)

    def extract(self, item, ctx):
        if item.id == "f3":
            raise ItemFailed("f3: no luck", "alignment")
        wav = self._wav(item)
        nv = len(wav) // 640
        return Extracted(wav, "a", ("<sil>", "AA1", "<sil>"), (0, nv, 0), (0, len(wav) // 200, 0),
                         np.zeros((nv, 100), np.float32), np.ones((nv, 30), np.float32),
                         np.ones(nv, bool))  # fmt: skip


def test_worker_pool_gives_the_same_dataset(tmp_path):
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        res = prepare(FakeLayout(), None, out, workers=workers, codec_config=TINY, codec_items=2)
        assert [f.id for f in res.failures] == ["f3"] and res.failures[0].stage == "alignment"
        runs[workers] = (out / "manifest.jsonl").read_text()
        assert (out / "codec.safetensors").read_bytes() == (
            tmp_path / "w1/codec.safetensors"
        ).read_bytes()
    assert runs[1] == runs[2] and runs[1].count("\n") == 4


def test_force_starts_over_and_keeps_a_codec_given_from_out(tmp_path):
    out = tmp_path / "f"
    assert prepare(FakeLayout(), None, out, codec_config=TINY, codec_items=2).processed == 4
    assert prepare(FakeLayout(), None, out).skipped == 4
    (out / "shards" / "stray.safetensors").write_bytes(b"x")
    res = prepare(FakeLayout(), None, out, force=True, codec=out / "codec.safetensors")
    assert (res.processed, res.skipped) == (4, 0) and (out / "codec.safetensors").is_file()
    assert len(read_manifest(out / "manifest.jsonl")) == 4
    assert not (out / "shards" / "stray.safetensors").exists()


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="i/n"):
        parse_shard("2")
    with pytest.raises(InputError, match="1 <= i <= n"):
        parse_shard("3/2")
    with pytest.raises(InputError, match="needs -n"):
        prepare("synth", None, tmp_path / "x")
    with pytest.raises(InputError, match="not a folder"):
        prepare("pairs", tmp_path / "nope", tmp_path / "y")
    with pytest.raises(InputError, match="unknown layout"):
        prepare("timit", tmp_path, tmp_path / "z")
    assert cli("prepare", "--layout", "pairs", tmp_path, "-o", tmp_path / "o", "--render")[0] == (
        EXIT_USAGE
    )
    assert cli("prepare", "--layout", "synth", "-n", 2, "-o", tmp_path / "o", "--shard", "0/2")[
        0
    ] == (EXIT_USAGE)
    busy = tmp_path / "busy"
    busy.mkdir()
    import os

    (busy / ".prepare.lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(OutputError, match="another dubcli prepare"):
        prepare("synth", None, busy, n=2)
