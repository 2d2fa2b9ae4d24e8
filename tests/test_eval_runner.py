"""`dubcli eval` on a tiny prepared SynthDub split (dubcli prepare, tiny codebooks) with a tiny
random-weight checkpoint exported by the trainer's export function. Known answers: the ground
truth re-synthesized for eval is the audio prepare encoded (same tokens), scores 0 ms boundary
error and SECS 1 against itself; every utterance asked for is either scored or listed as a
failure; the protocol files (pairs lists, settings.json) behave as documented."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer

from dubcli.cli import _root, run
from dubcli.console import reset_console
from dubcli.data.manifest import load_split, read_dataset_info
from dubcli.errors import EXIT_CHECKPOINT, EXIT_PARTIAL, EXIT_USAGE, InputError
from dubcli.eval import splits
from dubcli.eval.groundtruth import GroundTruth, aperture_from_lip
from dubcli.eval.report import summarize

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import export_tiny  # noqa: E402

torch.set_num_threads(1)
TRAIN = [f"synth-train-s0-{i:06d}" for i in range(8)]  # 4 and 7 share a speaker (en1+vtl0.9)
GRID = TRAIN[1:3]  # two GRID sentences: the fast GRID-grammar recognizer applies


@pytest.fixture(scope="module", autouse=True)
def seven_voices():
    """SynthDub's seven voices when the ids above were picked: make_specs draws over the split's
    voices, so this keeps those draws (4 and 7 one speaker, 1 and 2 GRID), for prepare and for
    eval's ground truth, which re-derives each spec from its id."""
    from dubcli.synth import speech as synth

    seven = ["us1", "us2", "us3", "en1", "kal", "ked", "slt"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "make_specs", functools.partial(synth.make_specs, voices=seven))
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from dubcli.prepare.run import prepare

    root = tmp_path_factory.mktemp("eval")
    data = root / "data"
    prepare("synth", None, data, n=10, codec_config={"vocab": 72, "f0_method": "dio"},
            codec_items=4)  # fmt: skip
    return root, data, export_tiny(root, data / "codec.safetensors", "dub")


def cli(*argv) -> tuple[int, str, str]:
    from dubcli.commands.eval import register

    app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(_root)
    register(app)
    reset_console()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = run([str(a) for a in argv], application=app)
    reset_console()
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def compared(corpus):
    root, data, ckpt = corpus
    out = root / "cmp"
    (root / "setting1.txt").write_text("".join(f"{u}\n" for u in GRID))  # utt ids only
    rc, stdout, stderr = cli("eval", "--checkpoint", ckpt, "--split", data / "train",
                             "--pairs", root / "setting1.txt", "--compare", "--plots", "--nfe",
                             "2", "--metrics", "sync,boundary,wer,secs", "-o", out, "--device",
                             "cpu", "--json")  # fmt: skip
    return rc, json.loads(stdout), stderr, out


def test_compare_runs_every_system_on_every_utterance(compared):
    rc, summary, stderr, out = compared
    assert rc == 0, stderr
    assert summary["systems"] == ["gt", "codec", "baseline", "model"] and summary["utterances"] == 2
    assert summary["failures"] == []
    body = json.loads((out / "results.json").read_text())
    recs = body["records"]
    assert sorted((r["id"], r["system"]) for r in recs) == sorted(
        (u, s) for u in GRID for s in summary["systems"]
    )
    for s in summary["systems"]:
        assert body["summary"][s]["utterances"] == 2 and body["summary"][s]["failed"] == 0
    assert body["config"]["model"]["config"] == "tiny" and body["config"]["nfe"] == 2
    assert body["config"]["recognizer"] == "pocketsphinx, GRID grammar"
    assert body["config"]["ground_truth_audio"] == ["re-synthesized from the SynthDub spec"]
    _, utts = load_split(out.parent / "data" / "train")
    frames = {u.id: u.n_frames for u in utts}
    import soundfile as sf

    for r in recs:
        wav, sr = sf.read(out / r["audio"])
        assert sr == 16_000 and len(wav) == frames[r["id"]] * 640  # every system: nv / 25 s
    # the table on stderr, LSE shown as n/a without SyncNet weights
    assert "Setting 1" in stderr and "DiFlow" in stderr and "n/a" in stderr


def test_metric_plumbing_known_answers(compared):
    _, summary, _, out = compared
    recs = json.loads((out / "results.json").read_text())["records"]
    gt = [r for r in recs if r["system"] == "gt"]
    for r in gt:
        assert r["boundary_ms"] == 0.0  # force-aligned against itself
        assert r["secs"] == pytest.approx(1.0, abs=1e-5)  # Setting 1: the reference is itself
        assert r["ref_id"] == r["id"] and r["errors"] == {}
        assert r["wer"] <= 0.5 and abs(r["av_offset"]) <= 3  # clean speech, lips in sync
        assert r["av_abs_offset"] == abs(r["av_offset"])
    s = summary["summary"]
    assert s["gt"]["wer"]["wer"] < s["model"]["wer"]["wer"]  # random weights say nothing
    assert s["gt"]["rtf"] is None and s["model"]["rtf"]["gen"] > 0
    assert s["model"]["rtf"]["e2e"] >= s["model"]["rtf"]["gen"]
    assert s["baseline"]["rtf"]["gen"] == s["baseline"]["rtf"]["e2e"]
    assert s["gt"]["metrics"]["lse_c"] == {"mean": None, "n": 0}
    assert s["codec"]["metrics"]["boundary_ms"]["mean"] < 30.0  # the codec keeps the timing
    assert s["gt"]["wer"]["n"] == 2 and s["gt"]["wer"]["n_ref"] == sum(
        len(r["text"].split()) for r in gt
    )


def test_csv_html_and_settings_files(compared):
    _, summary, _, out = compared
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["row"] for r in rows].count("utterance") == 8
    assert [r["system"] for r in rows if r["row"] == "summary"] == summary["systems"]
    assert all(r["lse_c"] == "" for r in rows)
    page = (out / "index.html").read_text()
    for r in json.loads((out / "results.json").read_text())["records"]:
        assert f"src='{r['audio']}'" in page
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted(f"{u}.{k}.png" for u in GRID for k in ("attention", "mel"))
    assert all(f"src='plots/{p}'" in page for p in pngs)
    used = splits.read_settings(out / "settings.json")
    assert used == {1: [(u, u) for u in GRID]}
    # results.md: the same summary as a Markdown table; LSE (no SyncNet weights) left out
    md = (out / "results.md").read_text().splitlines()
    assert md[0].startswith("Setting 1, ") and md[2].startswith(
        "| System | AV off (fr) | Abs AV off (fr) | AV conf |"
    )
    body = [line.split(" | ") for line in md[4 : 4 + len(summary["systems"])]]
    assert [r[0].strip("| ") for r in body] == [summary["summary"][s]["label"]
                                                for s in summary["systems"]]  # fmt: skip
    assert all(len(r) == len(md[2].split(" | ")) for r in body)
    assert "Not measured (n/a for every system): LSE-C, LSE-D" in "\n".join(md)


def test_ground_truth_is_what_prepare_encoded(corpus):
    from dubcli.audio.codec import load_codec
    from dubcli.audio.codec.phonetic import PhoneLabels

    _, data, _ = corpus
    root, utts = load_split(data / "test")
    gt = GroundTruth(root, read_dataset_info(root))
    utt = utts[0]
    wav = gt.audio(utt)
    assert len(wav) == utt.n_frames * 640
    labels = PhoneLabels(utt.phonemes, utt.durations_tokens)
    again = load_codec(data / "codec.safetensors").encode(wav, labels)
    assert np.array_equal(again.stacked(), gt.tokens(utt).stacked())  # the very same audio
    lip, _, valid = gt.features(utt)
    ap = aperture_from_lip(lip, valid)
    assert ap.shape == (utt.n_frames,) and np.nanmax(ap) > 0.5  # cm: the mouth opens


def test_setting2_pairs_file_and_listed_failures(corpus, tmp_path):
    root, data, ckpt = corpus
    pairs = tmp_path / "test_list.txt"
    pairs.write_text(f"# utt ref\n{TRAIN[4]} {TRAIN[7]}\n{TRAIN[1]} {TRAIN[4]}\n"
                     f"nosuch-utt {TRAIN[4]}\n")  # fmt: skip
    rc, stdout, stderr = cli("-q", "eval", "--checkpoint", ckpt, "--split", data, "--setting", "2",
                             "--pairs", pairs, "--metrics", "sync", "--nfe", "1", "-o",
                             tmp_path / "out", "--json")  # fmt: skip
    assert rc == EXIT_PARTIAL, stderr
    body = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["id"], r["ref_id"]) for r in body["records"]] == [(TRAIN[4], TRAIN[7])]
    reasons = {f["id"]: f["reason"] for f in body["failures"]}
    assert set(reasons) == {TRAIN[1], "nosuch-utt"}
    assert "Setting 2 is same-speaker" in reasons[TRAIN[1]]
    assert "not in the prepared dataset" in reasons["nosuch-utt"]
    assert body["summary"]["model"]["failed"] == 2 and body["utterances"] == 3
    assert body["config"]["pairs_from"] == str(pairs)


def test_oracle_rows_use_the_ground_truth_timing(corpus, tmp_path):
    root, data, ckpt = corpus
    pairs = tmp_path / "test_list.txt"
    pairs.write_text(f"{TRAIN[4]} {TRAIN[7]}\n")
    rc, stdout, stderr = cli("eval", "--checkpoint", ckpt, "--split", data, "--setting", "2",
                             "--pairs", pairs, "--metrics", "sync", "--nfe", "1",
                             "--oracles", "-o", tmp_path / "out", "--json")  # fmt: skip
    assert rc == 0, stderr
    body = json.loads((tmp_path / "out" / "results.json").read_text())
    assert body["systems"] == ["model", "oracle-dur", "oracle-content"]
    assert body["config"]["oracles"] is True
    labels = [body["summary"][s]["label"] for s in body["systems"]]
    assert labels == ["DiFlowDubber", "Oracle: GT durations", "Oracle: GT durations + content"]
    assert sorted(r["system"] for r in body["records"]) == sorted(body["systems"])
    assert all((tmp_path / "out" / r["audio"]).is_file() for r in body["records"])
    assert "Or.dur+cont" in stderr  # the terminal table's short label
    rc, _, stderr = cli("eval", "--split", data, "--audio-dir", tmp_path, "--oracles", "-o",
                        tmp_path / "x")  # fmt: skip
    assert rc != 0 and "--oracles runs the model" in " ".join(stderr.split())


def test_several_nfes_make_one_row_each(corpus, tmp_path):
    root, data, ckpt = corpus
    pairs = tmp_path / "test_list.txt"
    pairs.write_text(f"{TRAIN[4]} {TRAIN[7]}\n{TRAIN[7]} {TRAIN[4]}\n")
    rc, stdout, stderr = cli("eval", "--checkpoint", ckpt, "--split", data, "--setting", "2",
                             "--pairs", pairs, "--metrics", "sync", "--nfe", "1,3", "-o",
                             tmp_path / "out", "--json")  # fmt: skip
    assert rc == 0, stderr
    body = json.loads((tmp_path / "out" / "results.json").read_text())
    assert body["systems"] == ["model-nfe1", "model-nfe3"] and body["config"]["nfe"] == [1, 3]
    labels = [body["summary"][s]["label"] for s in body["systems"]]
    assert labels == ["DiFlowDubber NFE 1", "DiFlowDubber NFE 3"]
    assert "NFE 1, 3; seed 0" in stderr  # the setup line under the table
    recs = {(r["system"], r["id"]): r for r in body["records"]}
    assert len(recs) == 4
    for sys_ in body["systems"]:  # every system pays for encoding each reference once
        first, second = recs[(sys_, TRAIN[4])], recs[(sys_, TRAIN[7])]
        for r in (first, second):
            assert r["seconds_e2e"] > r["seconds_gen"] > 0
    # (which NFE ran is checked by the labels above; wall-clock comparisons between the rows
    # are left to benchmarks/generate_speed.py: on a loaded machine they flip)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| DiFlowDubber NFE 1 |" in md and "| DiFlowDubber NFE 3 |" in md
    # no --checkpoint: the registry default (conftest.py's registry has none)
    rc, _, stderr = cli("eval", "--split", data, "-o", tmp_path / "d")
    assert rc == EXIT_CHECKPOINT and "no default checkpoint is registered" in " ".join(
        stderr.split()
    )
    for bad in ("0,8", "8,x", ""):
        assert cli("eval", "--checkpoint", ckpt, "--split", data, "--nfe", bad, "-o",
                   tmp_path / "bad")[0] == EXIT_USAGE  # fmt: skip


def test_audio_dir_scores_files_and_lists_missing_ones(corpus, compared, tmp_path):
    _, data, _ = corpus
    src = compared[3] / "audio" / "gt"  # the ground truth as a "system": known answers
    rc, stdout, _ = cli("-q", "eval", "--split", data / "train", "--limit", "3", "--audio-dir", src,
                        "--metrics", "boundary,mos", "-o", tmp_path / "dir", "--json")  # fmt: skip
    assert rc == EXIT_PARTIAL
    body = json.loads((tmp_path / "dir" / "results.json").read_text())
    assert [f["id"] for f in body["failures"]] == [TRAIN[0]]  # only GRID's 2 files exist
    assert "not found" in body["failures"][0]["reason"]
    for r in body["records"]:
        assert r["boundary_ms"] < 5.0  # 16-bit copies of the ground truth align like it
        assert 1.0 <= r["dnsmos_ovrl"] <= 5.0 and 1.0 <= r["dnsmos_p808"] <= 5.0
        assert r["seconds_gen"] is None
    assert body["config"]["model"] is None and body["summary"]["model"]["rtf"] is None


def test_derived_settings():
    from dubcli.data.manifest import Utterance

    def u(i, split, spk, refs=()):
        return Utterance(f"u{i}", split, spk, "x", ("AH0",), (1,), (3,), 1, 3, 0.04, "s",
                         tuple(refs))  # fmt: skip

    utts = [u(0, "test", "a", ["u1", "u9"]), u(1, "test", "a", ["u0"]), u(2, "test", "b"),
            u(3, "train", "c"), u(4, "test", "c")]  # fmt: skip
    test = [x for x in utts if x.split == "test"]
    s1 = splits.make_pairs(test, utts, 1)
    assert all(p.ref is p.utt for p in s1)
    s2 = {p.utt_id: p for p in splits.make_pairs(test, utts, 2, seed=3)}
    assert s2["u0"].ref_id == "u1" and s2["u1"].ref_id == "u0"  # u9 is not in the dataset
    assert s2["u2"].ref is None and "no other utterance of speaker b" in s2["u2"].reason
    s3 = {p.utt_id: p for p in splits.make_pairs(test, utts, 3, seed=3)}
    for p in s3.values():  # another speaker, never one seen in training (c is in train)
        assert p.ref.speaker not in (p.utt.speaker, "c")
    assert splits.make_pairs(test, utts, 3, seed=3) == splits.make_pairs(test, utts, 3, seed=3)


def test_recognizer_choice():
    from dubcli.eval.scoring import Scorer, is_grid_sentence, parse_metrics

    assert is_grid_sentence("Set blue in C two now.") and not is_grid_sentence("set blue now")
    assert Scorer(["wer"], texts=["bin red at a one soon", "lay green by r eight again"]).grid
    free = Scorer(["wer"], texts=["bin red at a one soon", "guy on you continued"])
    assert not free.grid and "unigram LM" in free.describe()["recognizer"]
    assert parse_metrics("wer, sync") == ("sync", "wer") and len(parse_metrics(None)) == 6
    assert "lse" not in Scorer(["lse", "sync"], texts=[]).metrics  # no SyncNet weights: n/a
    with pytest.raises(InputError, match="--metrics: unknown"):
        parse_metrics("sync,utmos")


def test_pairs_file_errors(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("a b\n\n# comment\nc\td  # trailing\ne f g\n")
    with pytest.raises(InputError, match=r"list.txt:5: expected 'utt_id ref_id'"):
        splits.read_pairs_file(f)
    f.write_text("a b\nc,d\ne\n")
    assert splits.read_pairs_file(f) == [("a", "b"), ("c", "d"), ("e", None)]
    with pytest.raises(InputError, match="pairs file not found"):
        splits.read_pairs_file(tmp_path / "none.txt")
    with pytest.raises(InputError, match="--setting 4"):
        splits.check_setting(4)
    bad = tmp_path / "settings.json"
    bad.write_text('{"version": 9, "settings": {}}')
    with pytest.raises(InputError, match="not a valid eval settings file"):
        splits.read_settings(bad)


def test_summary_pools_wer_and_rtf():
    recs = [
        {"system": "model", "text": "a b c d", "hyp": "a b c d", "hyp_grid": "a b x d", "seconds": 2.0,
         "seconds_gen": 1.0, "seconds_e2e": 2.0, "secs": 0.5, "errors": {}},
        {"system": "model", "text": "e f", "hyp": "e x y", "seconds": 1.0, "seconds_gen": 2.0,
         "seconds_e2e": 4.0, "secs": 0.7, "errors": {"sync": "too short"}},
    ]  # fmt: skip
    s = summarize(recs, [{"id": "z", "system": "*", "stage": "reference", "reason": "r"}],
                  ["model"])["model"]  # fmt: skip
    assert s["wer"]["wer"] == pytest.approx(2 / 6)  # corpus level: (1 sub + 1 ins) / 6 words
    assert s["wer"]["mean_utterance_wer"] == pytest.approx(0.5)
    assert s["wer_grid"]["wer"] == pytest.approx(1 / 4) and s["wer_grid"]["n"] == 1
    assert s["rtf"]["gen"] == pytest.approx(1.0) and s["rtf"]["e2e"] == pytest.approx(2.0)
    assert s["metrics"]["secs"] == {"mean": pytest.approx(0.6), "n": 2}
    assert s["failed"] == 1 and s["metric_errors"] == {"sync": 1} and s["utterances"] == 2
    from dubcli.eval.report import _partial

    assert not _partial(s, "secs") and _partial(s, "av_offset")  # n 2 of 2; 0 of 2 ("*")
    assert not _partial(s, "wer_grid")  # a subset by design (GRID sentences only)


def test_grammar_wer_on_the_grid_sentences_of_a_mixed_split(corpus):
    from dubcli.eval.groundtruth import GroundTruth
    from dubcli.eval.scoring import Scorer, is_grid_sentence

    _, data, _ = corpus
    root, utts = load_split(data / "train")
    scorer = Scorer(["wer"], texts=[u.text for u in utts])
    assert not scorer.grid  # free texts too: "wer" uses the unigram LM
    gt = GroundTruth(root, {})
    by_kind = {is_grid_sentence(u.text): u for u in utts}
    for grid, utt in by_kind.items():
        wav = gt.audio(utt)
        sc = scorer.score(utt, wav, gt_wav=wav, ref_id=utt.id, ref_wav=wav,
                          aperture=np.zeros(utt.n_frames), video=None)  # fmt: skip
        assert sc.hyp is not None and "wer" in sc.values
        if grid:  # the GRID grammar's transcript, scored against the sentence
            assert sc.hyp_grid is not None and sc.values["wer_grid"] <= 1 / 6
        else:
            assert sc.hyp_grid is None and "wer_grid" not in sc.values


def test_dub_sync_estimate_is_the_eval_metric():
    from dubcli.engines.sync import sync_estimate
    from dubcli.eval.sync import landmark_sync

    rng = np.random.default_rng(4)
    nv, lag = 80, 2
    ap = np.convolve(rng.random(nv + lag), np.ones(3) / 3, mode="same")
    env = np.repeat(ap[:nv], 640)
    wav = np.concatenate([np.zeros(lag * 640), env])[: nv * 640] * np.sin(
        2 * np.pi * 180 * np.arange(nv * 640) / 16_000
    )
    valid = np.ones(nv, bool)
    valid[10:14] = False
    est = sync_estimate(ap[:nv], valid, wav)
    ref = landmark_sync(np.where(valid, ap[:nv], np.nan), wav, max_offset=10)
    assert est.offset_s == pytest.approx(ref.offset_frames / 25) == pytest.approx(lag / 25)
    assert est.confidence == pytest.approx(ref.confidence, abs=1e-3)
    assert sync_estimate(ap[:nv], np.zeros(nv, bool), wav) is None  # no face frames


def test_lse_from_the_utterance_video_with_syncnet_weights(tmp_path):
    """The LSE plumbing: video frames -> face track -> syncnet_python crops -> SyncNet (random
    weights in a plain safetensors state dict: numbers exist, their values mean nothing)."""
    import dataclasses

    from safetensors.torch import save_file

    from dubcli.data.manifest import Utterance
    from dubcli.eval import syncnet as sn
    from dubcli.eval.scoring import Scorer
    from dubcli.synth.face_motion import FaceMotion
    from dubcli.synth.render import render_video

    torch.manual_seed(0)
    state = sn.SyncNet().state_dict()
    weights = tmp_path / "syncnet.safetensors"
    save_file({k: v.contiguous() for k, v in state.items() if "num_batches" not in k}, str(weights))
    phones = [("<sil>", 0, 0.2), ("AA1", 0.2, 0.5), ("M", 0.5, 0.6), ("AA1", 0.6, 0.9),
              ("<sil>", 0.9, 1.0)]  # fmt: skip
    traj = FaceMotion().generate(phones, seed=0, n_frames=25)
    t = np.arange(16_000) / 16_000
    wav = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.abs(t - 0.55) < 0.35)).astype(np.float32)
    video = render_video(traj.points, tmp_path / "clip.mp4", wav)
    utt = Utterance("clip", "test", "s", "ah ma", ("AA1",), (25,), (80,), 25, 80, 1.0, "x")
    scorer = Scorer(["lse"], texts=["ah ma"], syncnet=str(weights))
    kw = dict(gt_wav=wav, ref_id="clip", ref_wav=wav, aperture=np.zeros(25))
    s = scorer.score(utt, wav, video=video, **kw)
    assert s.errors == {} and s.values["lse_d"] > 0 and s.values["lse_c"] >= 0
    assert scorer._crops["clip"].shape == (25, 224, 224, 3)  # shared by every system
    s2 = scorer.score(dataclasses.replace(utt, id="novideo"), wav, video=None, **kw)
    assert "no video" in s2.errors["lse"] and "lse_c" not in s2.values
