"""The real-data layouts (pairs, grid, chem) on videos rendered from SynthDub (`--render`), whose
phone timings and face trajectories are known: the extractor must recover them."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil

import numpy as np
import pytest
import typer

from dubcli.cli import _root, run
from dubcli.commands.prepare import register
from dubcli.console import reset_console
from dubcli.data.manifest import ShardReader, read_manifest
from dubcli.errors import EXIT_PARTIAL, InputError
from dubcli.prepare.layouts import ItemFailed, hash_split, sil_wrapped
from dubcli.prepare.layouts.chem import read_rows
from dubcli.prepare.layouts.grid import read_align
from dubcli.prepare.run import prepare
from dubcli.synth import speech as synth
from dubcli.synth.voices import VOICES
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, PhonemeSequence, WordSpan
from dubcli.text.subtitles import format_srt_timestamp
from dubcli.vision.features import LIP_NAMES

APERTURE = LIP_NAMES.index("aperture_2")  # inner lips 13 -> 14, the midline opening


def cli(*argv) -> tuple[int, str]:
    app = typer.Typer()
    app.callback()(_root)
    register(app)
    reset_console()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = run([str(a) for a in argv], application=app)
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Three rendered SynthDub clips (mp4 with audio) and their exact manifest lines."""
    out = tmp_path_factory.mktemp("rendered")
    # native-English voices only: the layouts below align with an English acoustic model, which
    # the accented voices (English over German, French, ... diphones) are not meant to pass
    native = [v for v, info in VOICES.items() if info.accent in ("us", "gb")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "make_specs", functools.partial(synth.make_specs, voices=native))
        prepare("synth", None, out, n=3, render=True, codec_items=3,
                codec_config={"vocab": 72, "f0_method": "dio"})  # fmt: skip
    utts = read_manifest(out / "manifest.jsonl")
    assert [u.source["video"] for u in utts] == [f"media/{u.id}.mp4" for u in utts]
    return out, {u.id: u for u in utts}


def _words(u):
    """(word start, word end) token boundaries of an utterance: runs between specials."""
    bounds = np.concatenate([[0], np.cumsum(u.durations_tokens)])
    spans, start = [], None
    for i, s in enumerate((*u.phonemes, WORD_BOUNDARY)):
        if s in (SILENCE, WORD_BOUNDARY):
            if start is not None:
                spans.append((int(bounds[start]), int(bounds[i])))
            start = None
        elif start is None:
            start = i
    return spans


def _spoken_ends(u):
    ends = np.cumsum(u.durations_tokens)
    return [(s, e) for s, e in zip(u.phonemes, ends, strict=True) if s != WORD_BOUNDARY]


def test_pairs_folder_recovers_timing_and_lips(rendered, tmp_path):
    src, truth = rendered
    ids = list(truth)
    data = tmp_path / "videos"
    (data / "alice").mkdir(parents=True)
    (data / "bob").mkdir()
    shutil.copy(src / f"media/{ids[0]}.mp4", data / "alice/one.mp4")
    (data / "alice/one.txt").write_text(truth[ids[0]].text + "\n")
    shutil.copy(src / f"media/{ids[1]}.mp4", data / "alice/two.mp4")
    end = format_srt_timestamp(truth[ids[1]].seconds)
    (data / "alice/two.srt").write_text(f"1\n00:00:00,000 --> {end}\nBOB: {truth[ids[1]].text}\n")
    shutil.copy(src / f"media/{ids[2]}.mp4", data / "bob/wrong.mp4")  # text far too long
    (data / "bob/wrong.txt").write_text(" ".join([truth[ids[2]].text] * 5))
    shutil.copy(src / f"media/{ids[2]}.mp4", data / "bob/untranscribed.mp4")
    (data / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    (data / "broken.txt").write_text("hello there")
    (data / "speakers.tsv").write_text("stem\tspeaker\nalice/one\tcarol\n")
    out = tmp_path / "feats"
    rc, stdout = cli("prepare", data, "--layout", "pairs", "-o", out, "--codec",
                     src / "codec.safetensors", "--json")  # fmt: skip
    assert rc == EXIT_PARTIAL
    res = json.loads(stdout)
    failed = {f["id"]: f for f in res["failures"]}
    assert set(failed) == {"bob__wrong", "broken"}
    assert failed["bob__wrong"]["stage"] == "alignment"
    assert "broken.mp4" in failed["broken"]["reason"]
    lines = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert {x["id"] for x in lines} == set(failed)
    got = {u.id: u for u in read_manifest(out / "manifest.jsonl")}
    assert set(got) == {"alice__one", "alice__two-0001"}
    assert got["alice__one"].speaker == "carol" and got["alice__two-0001"].speaker == "BOB"
    reader, sreader = ShardReader(out), ShardReader(src)
    for uid, sid in (("alice__one", ids[0]), ("alice__two-0001", ids[1])):
        u, t = got[uid], truth[sid]
        u.check()
        assert u.phonemes[0] == u.phonemes[-1] == SILENCE
        assert u.n_frames == t.n_frames and u.n_tokens == u.n_frames * 640 // 200
        a, b = _spoken_ends(u), _spoken_ends(t)
        if [s for s, _ in a] == [s for s, _ in b]:  # same pronunciation: compare boundaries
            err = np.mean([abs(x - y) for (_, x), (_, y) in zip(a[:-1], b[:-1], strict=True)])
            assert err < 3.0, err  # tokens (12.5 ms each)
        lip = reader.get(u, "lip").astype(np.float32)[:, APERTURE]
        ref = sreader.get(t, "lip").astype(np.float32)[:, APERTURE]
        assert np.corrcoef(lip, ref)[0, 1] > 0.9
        assert reader.get(u, "video_valid").all()


def _write_align(path, u, text):
    """A GRID .align file from an utterance's word token spans (units of 1/25000 s)."""
    words = text.lower().replace(",", " ").replace(".", " ").split()
    spans = _words(u)
    assert len(words) == len(spans)
    rows, pos = [], 0
    for w, (a, b) in zip(words, spans, strict=True):
        if a > pos:
            rows.append((pos, a, "sil" if pos == 0 else "sp"))
        rows.append((a, b, w))
        pos = b
    rows.append((pos, u.n_tokens, "sil"))
    path.write_text("".join(f"{a * 25000 // 80} {b * 25000 // 80} {w}\n" for a, b, w in rows))


def test_grid_pins_words_to_the_align_files(rendered, tmp_path):
    src, truth = rendered
    ids = list(truth)[:2]
    (tmp_path / "GRID/s1/align").mkdir(parents=True)
    for uid in ids:
        shutil.copy(src / f"media/{uid}.mp4", tmp_path / f"GRID/s1/{uid}.mp4")
        _write_align(tmp_path / f"GRID/s1/align/{uid}.align", truth[uid], truth[uid].text)
    shutil.copy(src / f"media/{ids[0]}.mp4", tmp_path / "GRID/s1/no_align.mp4")
    out = tmp_path / "feats"
    res = prepare("grid", tmp_path / "GRID", out, codec=src / "codec.safetensors")
    assert res.failures == () and res.processed == 2
    got = {u.id: u for u in read_manifest(out / "manifest.jsonl")}
    for uid in ids:
        u = got[f"s1-{uid}"]
        assert u.speaker == "s1" and u.text.split() == truth[uid].text.lower().split()
        assert _words(u) == _words(truth[uid])  # word boundaries are the corpus's, exactly


def test_chem_clip_list(rendered, tmp_path):
    src, truth = rendered
    uid = list(truth)[2]
    (tmp_path / "chem").mkdir()
    shutil.copy(src / f"media/{uid}.mp4", tmp_path / "chem/clip.mp4")
    (tmp_path / "chem/clips.csv").write_text(
        "Clip,Text,Character,Start,End,Split\n"
        f'clip.mp4,"{truth[uid].text}",dave,0,{truth[uid].seconds},val\n'
        f"{tmp_path / 'chem/clip.mp4'},hello,dave,abc,,train\n"
    )
    res = prepare("chem", tmp_path / "chem", tmp_path / "feats", codec=src / "codec.safetensors")
    assert len(res.failures) == 1 and "row 2" in res.failures[0].reason
    (u,) = read_manifest(tmp_path / "feats/manifest.jsonl")
    assert (u.id, u.split, u.speaker) == ("clip-0", "valid", "dave")
    assert u.n_frames == truth[uid].n_frames


def test_list_and_align_parsing(tmp_path):
    p = tmp_path / "a.align"
    p.write_text("0 23750 sil\n23750 29500 bin\n29500 35000 blue\n35000 74500 sil\n")
    assert read_align(p)[1] == (0.95, 1.18, "bin")
    p.write_text("0 23750 sil\n23750 bin\n")
    with pytest.raises(ItemFailed, match="a.align:2"):
        read_align(p)
    j = tmp_path / "clips.jsonl"
    j.write_text('{"Video": "a.mp4", "TEXT": "hi"}\n\n{"video": "b.mp4", "text": "yo"}\n')
    assert [r["video"] for r in read_rows(j)] == ["a.mp4", "b.mp4"]
    (tmp_path / "l.json").write_text('{"clips": [{"path": "x.mp4"}]}')
    with pytest.raises(InputError, match="no text column"):
        prepare("chem", tmp_path / "l.json", tmp_path / "o")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="list of clip objects"):
        read_rows(tmp_path / "bad.json")


def test_split_hash_and_sil_wrapping():
    splits = [hash_split(f"id{i}", 7) for i in range(2000)]
    assert splits == [hash_split(f"id{i}", 7) for i in range(2000)]
    share = {s: splits.count(s) / 2000 for s in ("train", "valid", "test")}
    assert abs(share["train"] - 0.8) < 0.04 and abs(share["test"] - 0.1) < 0.03
    seq = PhonemeSequence(("HH", "AY1", "<sil>"), (WordSpan("hi", 0, 2),))
    w = sil_wrapped(seq)
    assert w.symbols == ("<sil>", "HH", "AY1", "<sil>") and w.words[0] == WordSpan("hi", 1, 3)
