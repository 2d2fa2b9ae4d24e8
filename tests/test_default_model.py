"""The shipped default: dubcli/weights/registry.toml names a checkpoint in weights/ that resolves offline,
matches its sha256, is an fp16 DiFlowDubber export under 60 MB, and dubs the quickstart example
(examples/) through `dubcli dub` with no --checkpoint and no network."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import torch

from dubcli import media
from dubcli.checkpoint import load_checkpoint
from dubcli.cli import run as cli_run
from dubcli.hub import DEFAULT_REGISTRY, list_registry, resolve_checkpoint, sha256_file

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import md5_video  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def shipped_registry(monkeypatch):
    monkeypatch.delenv("DUBCLI_REGISTRY")  # conftest.py's empty registry: use the shipped one


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the default model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_default_checkpoint_is_registered_and_shipped(no_network):
    entries = list_registry()
    default = [e for e in entries if e.default]
    assert len(default) == 1 and default[0].config == "small"
    resolved = resolve_checkpoint(None, offline=True)
    assert resolved.path.parent == DEFAULT_REGISTRY.parent and resolved.name == default[0].name
    assert sha256_file(resolved.path) == default[0].sha256 == resolved.sha256
    assert resolved.path.stat().st_size < 60 * 2**20
    ck = load_checkpoint(resolved.path)
    meta = ck.metadata
    assert meta["kind"] == "diflowdubber" and meta["stage"] == "dub"
    assert meta["model_config"]["name"] == "small" and meta["features"]["version"] == "lmk-v1"
    weights = [v for k, v in ck.tensors.items() if k.startswith("model/")]
    assert weights and all(v.dtype == torch.float16 for v in weights if v.is_floating_point())


def test_quickstart_dubs_the_example_with_the_default(tmp_path, capsys, no_network):
    out = tmp_path / "out"
    argv = ["dub", str(EXAMPLES / "clip.mp4"), "--text", str(EXAMPLES / "clip.srt"),
            "--ref", str(EXAMPLES / "voice.wav"), "-o", str(out), "--nfe", "2", "--json"]  # fmt: skip
    assert cli_run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["engine"] == "diflow"
    report = json.loads(Path(result["outputs"]["report"]).read_text())
    assert len(report["cues"]) == 3 and all(c["face_frames_rate"] > 0.9 for c in report["cues"])
    dubbed = Path(result["outputs"]["video"])
    assert md5_video(dubbed) == md5_video(EXAMPLES / "clip.mp4")
    assert len(media.probe(dubbed).audio_streams) == 1
