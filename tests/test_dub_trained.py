"""The whole chain in one smoke run, with nothing faked: `prepare` a tiny SynthDub corpus (real
synthesized speech, real codec fitted on it), train tiny stage 1 then stage 2 from it, export,
and `dubcli dub` a rendered talking-face clip with that checkpoint through the command line.
The model is far too small and short-trained to speak well; the test pins what the pipeline owes
the user: a playable file, the input video stream untouched, speech inside the cue windows only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dubcli import media
from dubcli.audio.io import load_audio
from dubcli.cli import run as cli_run
from dubcli.prepare.run import prepare
from dubcli.train.run import train

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import make_talking_clip, md5_video  # noqa: E402

torch.set_num_threads(1)
SR = 16_000
CUES = ((0.2, 2.2), (2.6, 3.4))  # make_talking_clip's subtitle windows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    corpus = root / "corpus"
    prepare("synth", None, corpus, n=10, codec_items=4, shard_size=4,
            codec_config={"vocab": 72, "f0_method": "dio"})  # fmt: skip
    opts = dict(device="cpu", steps=6, lr=3e-3, progress=False)
    r1 = train("tts", corpus, root / "tts", config="tiny", **opts)
    export = root / "model.safetensors"
    r2 = train("dub", corpus, root / "dub", init_from=root / "tts", export=export, **opts)
    return root, r1, r2, export


def test_trained_checkpoint_dubs_a_clip_end_to_end(trained, tmp_path, capsys):
    root, r1, r2, export = trained
    assert r1.step == 6 and r2.step == 6 and export.is_file()
    _, video, subs, ref = make_talking_clip(tmp_path)
    out = tmp_path / "out"
    argv = ["dub", str(video), "--text", str(subs), "--ref", str(ref), "--checkpoint", str(export),
            "-o", str(out), "--nfe", "2", "--device", "cpu", "--background", "drop", "--json"]  # fmt: skip
    assert cli_run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["engine"] == "diflow", result
    dubbed = Path(result["outputs"]["video"])
    assert dubbed == out / f"{video.stem}.dubbed.mp4"
    # Plays back: ffmpeg decodes every stream of the file without an error.
    ff = [media.find_ffmpeg(), "-v", "error", "-i", str(dubbed), "-f", "null", "-"]
    run = subprocess.run(ff, capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    assert md5_video(dubbed) == md5_video(video)  # the input's video stream, copied untouched
    info = media.probe(dubbed)
    assert info.has_video and len(info.audio_streams) == 1
    report = json.loads((out / f"{video.stem}.report.json").read_text())
    assert report["engine"]["name"] == "diflow"
    assert all(c["tokens"] > 0 for c in report["cues"])
    # The speech lies inside the cue windows (background dropped, so outside is silence).
    wav = load_audio(dubbed, sample_rate=SR)
    t = np.arange(len(wav)) / SR
    inside = np.zeros(len(wav), bool)
    for a, b in CUES:
        inside |= (t >= a) & (t < b)
        seg = wav[(t >= a) & (t < b)]
        assert np.sqrt(np.mean(seg**2)) > 1e-3, f"no speech in cue {a}-{b} s"
    outside = wav[~inside]
    assert np.abs(outside).max() < 0.02 * np.abs(wav).max()
    # the engine's CpuShare never took more threads than torch had, and gave them back
    assert torch.get_num_threads() == 1


def test_the_engine_takes_the_threads_cpu_share_leaves(trained, monkeypatch):
    """Each engine call runs on CpuShare's count (the cores other programs left), at most what
    torch had when the engine was made, and torch has its own count back afterwards."""
    from dubcli.engines.base import CueJob
    from dubcli.engines.diflow import DiFlowEngine

    root, r1, r2, export = trained
    torch.set_num_threads(2)
    try:
        engine = DiFlowEngine(str(export), device="cpu", offline=True)
        assert engine._cpu_share.cores == 2
        seen = []
        real = engine.dubber.dub_many
        monkeypatch.setattr(engine.dubber, "dub_many",
                            lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))  # fmt: skip
        monkeypatch.setattr(engine._cpu_share, "threads", lambda: 1)  # another program is busy
        ref = (0.1 * np.sin(np.arange(2 * SR) * 0.05)).astype(np.float32)
        job = CueJob(1, "hello", ("HH", "AH0", "L", "OW1"), 0.0, 1.0, 25, None, None, ref, "r",
                     nfe=2)  # fmt: skip
        assert len(engine.synthesize_many([job])[0].wav) == SR
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("spec", ["dub", "dub/last.safetensors"])
def test_dub_takes_the_training_run_itself(trained, tmp_path, capsys, spec):
    """`dubcli dub --checkpoint runs/dub` (or its last.safetensors): what a user who just trained
    would pass; the run is exported in memory and dubs like the exported file."""
    root = trained[0]
    _, video, subs, ref = make_talking_clip(tmp_path)
    argv = ["dub", str(video), "--text", str(subs), "--ref", str(ref), "--checkpoint",
            str(root / spec), "-o", str(tmp_path / "out"), "--nfe", "1", "--device", "cpu",
            "--background", "drop", "--json"]  # fmt: skip
    assert cli_run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["engine"] == "diflow", result
    report = json.loads((tmp_path / "out" / f"{video.stem}.report.json").read_text())
    assert report["engine"]["name"] == "diflow"
    assert all(c["tokens"] > 0 for c in report["cues"])
    assert report["engine"]["checkpoint"] == str(root / spec)
    from dubcli.engines.diflow import VERSION

    assert report["engine"]["fingerprint"].startswith(f"{VERSION}:")  # the engine's version


def test_temperature_is_a_dub_setting(trained, tmp_path, capsys):
    """`--temperature` reaches the sampler and is part of what a finished dub was made with: the
    same value again skips, another value dubs again (with its own fingerprint)."""
    export = trained[3]
    _, video, subs, ref = make_talking_clip(tmp_path)
    out = tmp_path / "out"

    def dub(temperature: str) -> dict:
        argv = ["dub", str(video), "--text", str(subs), "--ref", str(ref), "--checkpoint",
                str(export), "-o", str(out), "--nfe", "2", "--device", "cpu", "--background",
                "drop", "--temperature", temperature, "--json"]  # fmt: skip
        assert cli_run(argv) == 0
        return json.loads(capsys.readouterr().out)

    assert dub("0")["status"] == "done"
    report = json.loads((out / f"{video.stem}.report.json").read_text())
    assert report["engine"]["fingerprint"].endswith(":t=0:cpu")
    assert dub("0")["status"] == "skipped"
    assert dub("0.5")["status"] == "done"
    report = json.loads((out / f"{video.stem}.report.json").read_text())
    assert report["engine"]["fingerprint"].endswith(":t=0.5:cpu")
    bad = ["dub", str(video), "--text", str(subs), "-o", str(out), "--temperature", "-1"]
    assert cli_run(bad) == 2  # a usage error, before anything runs
