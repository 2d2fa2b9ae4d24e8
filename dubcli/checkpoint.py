"""The checkpoint file format: one safetensors file of tensors plus JSON metadata (DESIGN 7).

The JSON lives in the safetensors header under the key "dubcli", so a checkpoint is a single
file that loads without executing any pickle. Models, codec codebooks and feature statistics all
use this format; `metadata["kind"]` says which (e.g. "diflowdubber", "codec/world").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from dubcli.errors import CheckpointError
from dubcli.fsutil import atomic_path

FORMAT_VERSION = 1
METADATA_KEY = "dubcli"


class LoadedCheckpoint(NamedTuple):
    tensors: dict[str, Any]  # name -> torch.Tensor (or np.ndarray with framework="numpy")
    metadata: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, Any],
    metadata: dict[str, Any],
    *,
    force: bool = True,
) -> Path:
    """Write tensors (torch or numpy, by the type of the first value) and metadata atomically."""
    from dubcli import __version__

    meta = {"format_version": FORMAT_VERSION, "dubcli_version": __version__, **metadata}
    header = {METADATA_KEY: json.dumps(meta, sort_keys=True)}
    first = next(iter(tensors.values()), None)
    with atomic_path(path, force=force) as tmp:
        if first is not None and type(first).__module__.startswith("numpy"):
            from safetensors.numpy import save_file
        else:
            from safetensors.torch import save_file
        contiguous = {
            k: (v.contiguous() if hasattr(v, "contiguous") else v) for k, v in tensors.items()
        }
        save_file(contiguous, str(tmp), metadata=header)
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Only the JSON metadata, without loading tensors."""
    from safetensors import safe_open

    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a valid safetensors checkpoint ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without dubcli metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt dubcli metadata ({exc})") from exc
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format_version')} is newer than this dubcli "
            f"supports ({FORMAT_VERSION}); upgrade dubcli"
        )
    return meta


def load_checkpoint(
    path: str | os.PathLike, *, framework: str = "pt", expect_kind: str | None = None
) -> LoadedCheckpoint:
    """Load tensors + metadata; `expect_kind` refuses a checkpoint of another kind."""
    from safetensors import safe_open

    path = Path(path)
    meta = read_metadata(path)
    if expect_kind is not None and meta.get("kind") != expect_kind:
        raise CheckpointError(
            f"{path}: is a '{meta.get('kind')}' checkpoint, expected '{expect_kind}'"
        )
    try:
        with safe_open(str(path), framework=framework) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc})") from exc
    return LoadedCheckpoint(tensors, meta)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a .safetensors file")
