"""The real models through `train()`: tiny stage 1, then stage 2 from it, the loss goes down, the
export rebuilds alone; run-folder rules, version checks and the `dubcli train` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import typer

from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.cli import run as cli_run
from dubcli.errors import EXIT_OUTPUT, EXIT_USAGE, CheckpointError, InputError, OutputError
from dubcli.timing import tokens_for_frames
from dubcli.train.export import load_inference_model
from dubcli.train.run import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train_corpus import VOCAB, write_corpus  # noqa: E402

torch.set_num_threads(1)


def train_losses(run: Path) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["split"] == "train"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    corpus = write_corpus(d / "corpus", n_train=16)
    opts = dict(config="tiny", device="cpu", steps=15, lr=5e-3)
    r1 = train("tts", corpus, d / "tts", **opts)
    opts.pop("config")  # stage 2 takes the stage-1 config from its run
    r2 = train(
        "dub", corpus, d / "dub", init_from=d / "tts", export=d / "model.safetensors", **opts
    )
    return corpus, d, r1, r2


def test_stage1_then_stage2_learn(stages):
    corpus, d, r1, r2 = stages
    for r in (r1, r2):
        losses = train_losses(r.run)
        assert r.step == 15 and len(losses) == 3  # log_every 5 (tiny preset)
        assert losses[-1] < 0.9 * losses[0], losses
        assert r.valid_loss is not None
    meta = json.loads((r2.run / "run.json").read_text())
    assert meta["stage"] == "dub" and meta["model_config"]["name"] == "tiny"
    assert meta["model_config"]["vocab"] == VOCAB  # sized to the data, not the preset
    assert meta["init_from"] == str(d / "tts")


def test_export_rebuilds_without_outside_config(stages):
    corpus, d, _, r2 = stages
    assert r2.export == d / "model.safetensors"
    ck = load_checkpoint(r2.export)
    assert ck.metadata["kind"] == "diflowdubber" and ck.metadata["step"] == 15
    assert ck.metadata["features"]["version"] == "lmk-v1"
    assert ck.metadata["phoneme_vocab"]["version"] == "arpabet-v1"
    assert not any(k.startswith("model/teacher.") for k in ck.tensors)
    assert all(v.dtype == torch.float16 for k, v in ck.tensors.items() if k.startswith("model/")
               and v.is_floating_point())  # fmt: skip
    model, meta, codec = load_inference_model(r2.export)
    assert type(model).__name__ == "DiFlowDubber" and not model.training
    assert codec.vocab == VOCAB and codec.speaker_dim == 17
    nv = 10
    out = model.generate(torch.tensor([20, 30, 40]), torch.randn(nv, 100), torch.randn(nv, 30),
                         None, None, torch.randn(codec.speaker_dim), nfe=2, seed=0)  # fmt: skip
    assert out.prosody.shape == (1, 1, tokens_for_frames(nv))
    # The fp16 weights round-trip: the rebuilt model holds the exported values.
    state = model.state_dict()
    floats = [k for k, v in ck.tensors.items() if k.startswith("model/") and v.dtype == torch.half]
    assert len(floats) > 20
    assert all(torch.equal(state[k[6:]].half(), ck.tensors[k]) for k in floats)


def test_export_refuses_other_feature_version(stages, tmp_path):
    _, _, _, r2 = stages
    ck = load_checkpoint(r2.export)
    meta = {**ck.metadata, "features": {**ck.metadata["features"], "version": "lmk-v0"}}
    bad = save_checkpoint(tmp_path / "bad.safetensors", ck.tensors, meta)
    with pytest.raises(CheckpointError, match="bad.safetensors: trained on visual features"):
        load_inference_model(bad)


def test_run_folder_rules(stages, tmp_path):
    corpus, d, r1, _ = stages
    with pytest.raises(OutputError, match="already exists"):
        train("tts", corpus, r1.run, config="tiny", device="cpu", steps=2)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train("tts", corpus, tmp_path / "new", config="tiny", device="cpu", resume=True)
    with pytest.raises(InputError, match="needs --init-from"):
        train("dub", corpus, tmp_path / "x", config="tiny", device="cpu", steps=2)
    with pytest.raises(InputError, match="is a 'tts' run"):
        train("dub", corpus, r1.run, device="cpu", resume=True)
    # --force starts over: old checkpoints go, a fresh run of 2 steps remains.
    run = tmp_path / "forced"
    train("tts", corpus, run, config="tiny", device="cpu", steps=3)
    train("tts", corpus, run, config="tiny", device="cpu", steps=2, force=True)
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-00000002.safetensors"]


def test_resume_continues_a_finished_run(stages, tmp_path):
    corpus = stages[0]
    run = tmp_path / "r"
    train("tts", corpus, run, config="tiny", device="cpu", steps=4)
    res = train("tts", corpus, run, device="cpu", resume=True, steps=6)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # tiny preset: a line every 5 steps and at each run's last step.
    assert res.step == 6 and [r["step"] for r in lines if r["split"] == "train"] == [4, 5, 6]


def test_stage2_refuses_other_feature_version(tmp_path):
    corpus = write_corpus(tmp_path / "c", n_train=3, n_valid=0, codec=False)
    info = json.loads((corpus / "dataset.json").read_text())
    (corpus / "dataset.json").write_text(json.dumps({**info, "features_version": "lmk-v0"}))
    with pytest.raises(InputError, match="dataset.json: features are lmk-v0"):
        train("dub", corpus, tmp_path / "r", config="tiny", device="cpu", steps=1,
              init_from=tmp_path / "none")  # fmt: skip


def _app() -> typer.Typer:
    from dubcli.cli import _root
    from dubcli.commands import train as train_cmd

    app = typer.Typer()
    app.callback()(_root)
    train_cmd.register(app)
    return app


def test_cli_passes_options(monkeypatch, tmp_path):
    seen = {}

    class Result:
        stage, step, run, export, train_loss, valid_loss = "tts", 3, tmp_path, None, 1.0, None

        def to_json(self):
            return {"step": 3}

    def fake(stage, data, output, options, **kw):
        seen.update(stage=stage, data=data, output=output, **vars(options), **kw)
        return Result()

    monkeypatch.setattr("dubcli.train.run.train", fake)
    argv = ["train", "--stage", "dub", "--data", "feats", "-o", "runs/x", "--config", "tiny",
            "--init-from", "runs/tts", "--steps", "7", "--batch-tokens", "900", "--lr", "0.001",
            "--seed", "3", "--device", "cpu", "--export", "m.safetensors", "--json"]  # fmt: skip
    assert cli_run(argv, application=_app()) == 0
    assert seen["stage"] == "dub" and seen["data"] == Path("feats")
    assert seen["output"] == Path("runs/x") and seen["init_from"] == Path("runs/tts")
    assert (seen["steps"], seen["epochs"], seen["batch_tokens"]) == (7, None, 900)
    assert (seen["lr"], seen["seed"], seen["device"]) == (0.001, 3, "cpu")
    assert seen["export"] == Path("m.safetensors") and not seen["resume"]
    bad = ["train", "--stage", "tts", "--data", "f", "-o", "r", "--resume", "--force"]
    assert cli_run(bad, application=_app()) == EXIT_USAGE
    assert cli_run(["train", "--stage", "x", "--data", "f", "-o", "r"], application=_app()) == 2


def test_cli_existing_run_exit_code(stages, capsys):
    corpus, _, r1, _ = stages
    argv = ["train", "--stage", "tts", "--data", str(corpus), "-o", str(r1.run), "--config",
            "tiny", "--device", "cpu"]  # fmt: skip
    assert cli_run(argv, application=_app()) == EXIT_OUTPUT
    assert "already exists" in capsys.readouterr().err


def test_load_model_takes_a_run_folder_or_training_checkpoint(stages, tmp_path):
    """A user who just trained passes the run (or its last.safetensors): exported in memory,
    the same model as the exported file (which is fp16), no file written."""
    from dubcli.model.loading import load_model

    _, d, _, r2 = stages
    exported = load_model(r2.export)
    before = sorted(p.name for p in r2.run.iterdir())
    for spec in (r2.run, r2.run / "last.safetensors", str(r2.run / "last.safetensors")):
        loaded = load_model(spec, "cpu")
        assert type(loaded.model).__name__ == "DiFlowDubber" and not loaded.model.training
        assert loaded.path == (r2.run / "last.safetensors").resolve()
        assert loaded.metadata["kind"] == "diflowdubber"
        assert loaded.metadata["ema"] == exported.metadata["ema"]
        assert loaded.metadata["step"] == 15 and loaded.codec.vocab == VOCAB
        want, got = exported.model.state_dict(), loaded.model.state_dict()
        assert want.keys() == got.keys()
        for k, v in want.items():  # fp32 in memory, fp16 in the file: equal once rounded
            assert torch.equal(got[k].half().to(v.dtype) if v.is_floating_point() else got[k], v)
    assert sorted(p.name for p in r2.run.iterdir()) == before
    with pytest.raises(CheckpointError, match="a folder without last.safetensors"):
        load_model(d)
    assert load_model(d / "tts").metadata["stage"] == "tts"


def test_inference_path_imports_neither_train_nor_eval(stages):
    """Loading and dubbing sit below train/ and eval/: a fresh process that loads a run folder
    through Dubber.load has imported no module of either."""
    import subprocess

    _, _, _, r2 = stages
    code = (
        "import sys; from dubcli.inference import Dubber; "
        f"Dubber.load({str(r2.run)!r}, device='cpu'); "
        "bad = [m for m in sys.modules if m.startswith(('dubcli.train', 'dubcli.eval'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
