"""model/shapes.py: the shapes a config builds, without memory and without torch._dynamo."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dubcli.config import model_preset
from dubcli.model.dubber import build_model
from dubcli.model.shapes import state_shapes

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import export_tiny, tiny_codec  # noqa: E402


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("stage,latent", [("tts", "ccta"), ("dub", "ccta"), ("dub", "text")])
def test_shapes_equal_those_of_the_built_model(preset, stage, latent):
    cfg = dataclasses.replace(model_preset(preset), dfpa_latent=latent)
    built = {k: tuple(v.shape) for k, v in build_model(cfg, stage).state_dict().items()}
    assert state_shapes(cfg, stage) == built


def test_a_huge_config_costs_no_memory():
    # 65536-wide DiT (the largest width check_model_config lets through): one MLP weight alone
    # would be 65536 x 262144 floats (64 GiB); the meta build holds shapes only.
    cfg = dataclasses.replace(model_preset("tiny"), dit_dim=65536, dit_heads=2)
    shapes = state_shapes(cfg, "tts")
    assert (262144, 65536) in shapes.values()


def test_model_load_does_not_import_torch_dynamo(tmp_path):
    """torch._dynamo costs 2.2 s to import on the 2-core CPU: a model load must not pull it in
    (torch's meta-device kernels for normal_/arange/eye do; model/shapes.py avoids them)."""
    ckpt = export_tiny(tmp_path, tiny_codec(tmp_path), "dub", dfpa_latent="text")
    code = ("import sys; from dubcli.inference import Dubber; "
            f"Dubber.load({str(ckpt)!r}, device='cpu'); "
            "print('torch._dynamo' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
