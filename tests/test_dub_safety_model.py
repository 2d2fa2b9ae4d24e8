"""Issue 14 with a (tiny, random-weight) DiFlowDubber checkpoint, through the command line:

6 malformed checkpoint metadata (impossible sizes, bad types, NaN) is exit 5 naming the field,
  before torch builds anything;
3 a change of --engine or --checkpoint redoes a finished item (the model's hash is recorded);
7 with the diflow engine, a cue the frontend cannot pronounce no longer sinks the video.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from dubcli import media
from dubcli.audio.io import save_audio
from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.cli import run
from dubcli.console import reset_console
from dubcli.engines import baseline
from dubcli.errors import EXIT_CHECKPOINT, EXIT_OK

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import export_tiny, tiny_codec  # noqa: E402

SRT = ("1\n00:00:00,200 --> 00:00:01,000\nHello over there.\n\n"
       "2\n00:00:01,200 --> 00:00:01,800\n你好世界\n\n"
       "3\n00:00:02,000 --> 00:00:02,800\nGood bye now.\n")  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "4000")
    reset_console()
    yield
    reset_console()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two checkpoints of the same tiny model that differ in their bytes (A, B), and a clip."""
    root = tmp_path_factory.mktemp("safety-model")
    a = export_tiny(root, tiny_codec(root), "dub")
    ck = load_checkpoint(a)
    meta = {k: v for k, v in ck.metadata.items() if k not in ("format_version", "dubcli_version")}
    b = save_checkpoint(root / "tiny-b.safetensors", ck.tensors, {**meta, "note": "copy B"})
    clip = media.make_test_video(root / "clip.mp4", 3.0, size=(64, 48))
    (root / "clip.srt").write_text(SRT, encoding="utf-8")
    ref = save_audio(root / "ref.wav", baseline.espeak_wav("A reference voice speaking clearly."))
    return root, a, b, ck, meta, clip, ref


def dub(capsys, *args) -> tuple[int, dict | None, str]:
    code = run(["dub", *map(str, args), "--json"])
    cap = capsys.readouterr()
    return code, (json.loads(cap.out) if cap.out.strip() else None), " ".join(cap.err.split())


@pytest.mark.parametrize("change, message", [
    ({"text_ff": -3}, "text_ff = -3 is outside 1..65536"),
    ({"dit_dim": 2**40}, "dit_dim = 1099511627776 is outside 1..65536"),
    ({"lip_dim": 10**12}, "lip_dim = 1000000000000 is outside 1..65536"),
    ({"dropout": 7.0}, "dropout = 7.0 is outside [0, 1)"),
    ({"dfm_exponent": float("nan")}, "dfm_exponent = nan is not a finite number"),
    ({"video_conv_kernel": -1}, "video_conv_kernel = -1 is outside 1..65536"),
    ({"vocab": "16"}, "field 'vocab' = '16': expected an integer"),
    ({"dit_dim": 4096, "dit_heads": 8}, "weights do not match the stored config"),
])  # fmt: skip
def test_class6_malformed_checkpoint_metadata_is_exit_5(tiny, capsys, tmp_path, change, message):
    root, a, b, ck, meta, clip, ref = tiny
    bad = save_checkpoint(tmp_path / "bad.safetensors", ck.tensors,
                          {**meta, "model_config": {**meta["model_config"], **change}})  # fmt: skip
    out = tmp_path / "out"
    code, doc, err = dub(capsys, clip, "--ref", ref, "--engine", "diflow", "--checkpoint", bad,
                         "-o", out, "--device", "cpu", "--nfe", "1")  # fmt: skip
    assert code == EXIT_CHECKPOINT, err
    assert f"{bad}: " in err and message in err and "internal error" not in err
    assert doc["exit_code"] == EXIT_CHECKPOINT
    assert not out.exists()


def test_class3_and_7_engine_and_checkpoint_changes_redo_around_an_unpronounceable_cue(
    tiny, capsys, tmp_path
):
    root, a, b, ck, meta, clip, ref = tiny
    folder = tmp_path / "in"
    folder.mkdir()
    video = Path(shutil.copy2(clip, folder / "clip.mp4"))
    shutil.copy2(root / "clip.srt", folder / "clip.srt")
    out = tmp_path / "out"
    common = [video, "--ref", ref, "-o", out, "--background", "drop"]
    code, doc, err = dub(capsys, *common, "--engine", "baseline")
    assert code == EXIT_OK and doc["status"] == "done", err
    diflow = [*common, "--engine", "diflow", "--device", "cpu", "--nfe", "1"]
    code, doc, err = dub(capsys, *diflow, "--checkpoint", a)
    assert code == EXIT_OK and doc["status"] == "done", err  # the Chinese cue no longer sinks it
    assert doc["redone_because"][0] == "--engine changed (baseline -> diflow)"
    assert "cue 2: the text frontend cannot pronounce" in err
    report = json.loads((out / "clip.report.json").read_text())
    assert report["engine"]["name"] == "diflow" and [c["index"] for c in report["cues"]] == [1, 3]
    assert all(c["tokens"] > 0 for c in report["cues"])
    assert dub(capsys, *diflow, "--checkpoint", a)[1]["status"] == "skipped"
    code, doc, err = dub(capsys, *diflow, "--checkpoint", b)
    assert code == EXIT_OK and doc["status"] == "done", err
    assert doc["redone_because"][0].startswith("the engine's model or version changed")
    assert dub(capsys, *diflow, "--checkpoint", b)[1]["status"] == "skipped"
    assert dub(capsys, *diflow, "--checkpoint", b, "--nfe", "2")[1]["status"] == "done"
    assert sorted(p.name for p in out.iterdir()) == [
        "clip.dub.srt", "clip.dub.wav", "clip.dubbed.mp4", "clip.report.json"]  # fmt: skip
