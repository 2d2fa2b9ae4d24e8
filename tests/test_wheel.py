"""A built wheel (what `pip install .` installs) stands alone: installed into a fresh virtual
environment, away from the clone, it has the checkpoint registry and the bundled default model
(package data, sha256-verified offline) and dubs the example. Nothing is downloaded: the wheel is
built without build isolation and installed with --no-deps --no-index; the dependencies come
from this test's own interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(argv, **kw) -> subprocess.CompletedProcess:
    run = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    assert run.returncode == 0, f"{argv[:4]}: {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run


def _fresh_venv(path: Path) -> Path:
    """A venv over this interpreter: its base's site-packages via --system-site-packages, and,
    when this interpreter is itself a venv, its site-packages through a .pth line (a path line
    adds the folder only, so an editable dubcli installed there does not come along)."""
    _run([sys.executable, "-m", "venv", "--system-site-packages", path])
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    ours = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(ours.stdout.strip()) / "zz_test_parent.pth").write_text("\n".join(sorted(parents)))
    return python


def test_wheel_has_the_registry_and_default_model_and_dubs(tmp_path):
    src = tmp_path / "src"  # a copy: building must not leave build/ or egg-info in the clone
    src.mkdir()
    shutil.copytree(ROOT / "dubcli", src / "dubcli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", dist, src])  # fmt: skip
    (wheel,) = dist.glob("dubcli-*.whl")
    python = _fresh_venv(tmp_path / "venv")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DUBCLI_REGISTRY")}
    env["HF_HUB_OFFLINE"] = "1"
    work = tmp_path / "work"  # not the clone: nothing of it is importable from here
    work.mkdir()
    where = _run([python, "-c", "import dubcli, dubcli.hub as h; "
                  "print(dubcli.__file__); print(h.resolve_checkpoint(None, offline=True).path)"],
                 cwd=work, env=env).stdout.split()  # fmt: skip
    site = tmp_path / "venv"
    assert Path(where[0]).is_relative_to(site), where  # the installed copy, not the clone
    default = Path(where[1])
    assert default.is_relative_to(site) and default.name == "dfd-fast-synthdub.safetensors"

    dubcli = python.parent / "dubcli"
    out = tmp_path / "out"
    argv = [dubcli, "dub", EXAMPLES / "clip.mp4", "--text", EXAMPLES / "clip.srt", "--ref",
            EXAMPLES / "voice.wav", "--engine", "baseline", "--offline", "-o", out, "--json"]  # fmt: skip
    result = json.loads(_run(argv, cwd=work, env=env).stdout)
    assert result["status"] == "done", result
    assert Path(result["outputs"]["video"]) == out / "clip.dubbed.mp4"
    assert (out / "clip.dubbed.mp4").stat().st_size > 0
