"""Suite-wide: tests see an empty checkpoint registry (no default), so that without --engine the
dub tests use the baseline engine and never load the shipped model by accident. Session-scoped,
so that module-scoped fixtures see it too. Tests of the shipped registry and default model delete
DUBCLI_REGISTRY themselves (test_default_model.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _empty_registry(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "empty-registry.toml"
    path.write_text("# no checkpoints: the test suite's registry\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUBCLI_REGISTRY", str(path))
        yield
