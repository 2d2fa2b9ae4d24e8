"""Checkpoint resolution: registry name | local path | hf://org/repo[@rev]/file (DESIGN 2, 9).

`--checkpoint` takes one of three spellings, resolved here to a local .safetensors file:
  - a name from dubcli/weights/registry.toml (package data, so an installed wheel has it), or
    the file $DUBCLI_REGISTRY names (None means the registry's `default`),
  - a path to a local .safetensors file,
  - hf://org/repo[@revision]/path/in/repo.safetensors[#sha256=<hex>], downloaded with
    huggingface_hub into the standard HF cache.
Registry entries and `#sha256=` fragments are verified; a cached download that fails the check is
removed from the cache so the next run downloads it again. Pickle formats (.bin/.pt/.ckpt) are
refused before anything is read or downloaded: a checkpoint must never execute code (DESIGN 7).

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE into constants when it is imported,
so later changes would be ignored; we read them at call time and pass the endpoint and cache folder
explicitly (HF_TOKEN it reads per call itself). Offline resolution is a pure disk lookup that never
calls hf_hub_download (see _from_cache).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from dubcli import hashing
from dubcli.console import get_logger
from dubcli.errors import CheckpointError

log = get_logger(__name__)

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "weights" / "registry.toml"  # package data
REGISTRY_ENV = "DUBCLI_REGISTRY"  # another registry file instead of the shipped one
DEFAULT_ENDPOINT = "https://huggingface.co"
HF_SCHEME = "hf://"
# Formats that unpickle on load (arbitrary code execution): refused with a message, never read.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_PATHLIKE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # registry names, and org / repo parts
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_KEYS = {"source", "sha256", "description", "config"}
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ResolvedCheckpoint:
    path: Path  # local .safetensors file, ready for checkpoint.load_checkpoint
    source: str  # reproducible origin: absolute local path, or hf://org/repo@<commit>/file
    sha256: str | None  # verified hash (registry entry or #sha256= fragment); None if unchecked
    name: str | None  # registry name, if resolved through the registry


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    source: str  # path relative to the registry file, or hf://org/repo[@rev]/file.safetensors
    sha256: str  # lowercase hex of the file's bytes
    description: str  # one short line saying what the model is
    config: str | None  # informational: the model config preset (tiny|small|paper)
    default: bool  # whether this is the registry's `default`


@dataclass(frozen=True)
class HfSpec:
    repo_id: str  # org/repo
    revision: str | None  # branch, tag or commit hash; None means the repo's main branch
    filename: str  # path inside the repo
    sha256: str | None  # from a #sha256=<hex> fragment


# ---------------------------------------------------------------------------------------------
# Public API


def resolve_checkpoint(
    spec: str | None, *, offline: bool = False, registry_path: str | os.PathLike | None = None
) -> ResolvedCheckpoint:
    """Turn a --checkpoint value into a verified local .safetensors file (see module doc)."""
    if spec is not None and spec.startswith(HF_SCHEME):
        return _resolve_hf(spec, offline=offline)
    if spec is not None and _looks_like_path(spec):
        return _resolve_local(spec)
    return _resolve_registry(spec, offline=offline, registry_path=registry_path)


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Lowercase hex sha256 of a file (dubcli.hashing); unreadable: a CheckpointError."""
    try:
        return hashing.sha256_file(path, chunk_size=chunk_size)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def list_registry(registry_path: str | os.PathLike | None = None) -> list[RegistryEntry]:
    """All registry entries in file order."""
    _, entries = _load_registry(Path(registry_path or registry_file()))
    return list(entries.values())


def registry_file() -> Path:
    """The registry in use: $DUBCLI_REGISTRY if set, else the installed dubcli/weights/registry.toml."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env) if env else DEFAULT_REGISTRY


def parse_hf_spec(spec: str) -> HfSpec:
    """Parse hf://org/repo[@revision]/path/in/repo.safetensors[#sha256=<hex>]."""
    usage = "expected hf://org/repo[@revision]/path/in/repo.safetensors"
    body, _, fragment = spec[len(HF_SCHEME) :].partition("#")
    parts = body.split("/")
    if len(parts) < 3 or not all(parts):
        raise CheckpointError(f"{spec}: malformed hub address ({usage})")
    org, repo_rev, *path = parts
    repo, at, revision = repo_rev.partition("@")
    # A revision with slashes (refs/pr/1) is written percent-encoded: @refs%2Fpr%2F1.
    revision = unquote(revision) if at else None
    if not _NAME_RE.match(org) or not _NAME_RE.match(repo) or (at and not revision):
        raise CheckpointError(f"{spec}: malformed repo id or revision ({usage})")
    if any(p in (".", "..") for p in path):
        raise CheckpointError(f"{spec}: '.' and '..' are not allowed in the file path")
    sha = None
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256" or not _SHA256_RE.match(value.lower()):
            raise CheckpointError(
                f"{spec}: the only fragment understood is #sha256=<64 hex digits>"
            )
        sha = value.lower()
    return HfSpec(f"{org}/{repo}", revision, "/".join(path), sha)


def hf_cache_dir() -> Path:
    """The HF hub cache, from the environment as it is now (HF_HUB_CACHE, else HF_HOME/hub)."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    home = env.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def offline_requested(offline: bool = False) -> bool:
    """--offline, or HF_HUB_OFFLINE as huggingface_hub spells truth (1/on/yes/true)."""
    return offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


# ---------------------------------------------------------------------------------------------
# The three kinds of spec


def _looks_like_path(spec: str) -> bool:
    # Registry names never contain a separator nor end in a weight-file suffix.
    return (
        "/" in spec
        or os.sep in spec
        or spec.startswith("~")
        or spec.lower().endswith(_PATHLIKE_SUFFIXES)
    )


def _check_suffix(what: str, filename: str) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{what}: '{suffix}' is a pickle-based format, which dubcli never loads (unpickling "
            "can run code); convert it to .safetensors"
        )
    if suffix != ".safetensors":
        raise CheckpointError(f"{what}: not a .safetensors file")


def _resolve_local(
    spec: str, *, sha256: str | None = None, name: str | None = None
) -> ResolvedCheckpoint:
    path = Path(os.path.expandvars(spec)).expanduser()
    _check_suffix(spec, path.name)
    if not path.exists():
        raise CheckpointError(f"{spec}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{spec}: is not a file, expected a .safetensors checkpoint")
    if sha256 is not None:
        actual = _cached_sha256(path)
        if actual != sha256:
            raise CheckpointError(
                f"{spec}: sha256 mismatch (expected {sha256}, got {actual}); the file is corrupt "
                "or was replaced"
            )
    return ResolvedCheckpoint(path.resolve(), str(path.resolve()), sha256, name)


def _resolve_registry(name: str | None, *, offline: bool, registry_path) -> ResolvedCheckpoint:
    registry = Path(registry_path or registry_file())
    default, entries = _load_registry(registry)
    known = ", ".join(entries) or "none"
    if name is None:
        if default is None:
            raise CheckpointError(
                f"{registry}: no default checkpoint is registered yet; pass --checkpoint "
                "NAME|PATH|hf://org/repo/file.safetensors"
            )
        name = default
    entry = entries.get(name)
    if entry is None:
        raise CheckpointError(
            f"unknown checkpoint '{name}' (not a path, and not in {registry}; known: {known})"
        )
    if entry.source.startswith(HF_SCHEME):
        return _resolve_hf(entry.source, offline=offline, sha256=entry.sha256, name=name)
    local = Path(entry.source)
    if not local.is_absolute():
        local = registry.parent / local
    if not local.exists():
        raise CheckpointError(f"checkpoint '{name}': its file {local} is missing (see {registry})")
    return _resolve_local(str(local), sha256=entry.sha256, name=name)


def _resolve_hf(
    spec: str, *, offline: bool, sha256: str | None = None, name: str | None = None
) -> ResolvedCheckpoint:
    hf = parse_hf_spec(spec)
    _check_suffix(spec, hf.filename)
    if sha256 is not None and hf.sha256 is not None and sha256 != hf.sha256:
        raise CheckpointError(f"{spec}: #sha256 fragment disagrees with the registry's sha256")
    expected = sha256 or hf.sha256
    cache = hf_cache_dir()
    pointer = _download(spec, hf, cache=cache, offline=offline_requested(offline))
    commit = _commit_of(pointer, hf) or hf.revision or "main"
    source = f"{HF_SCHEME}{hf.repo_id}@{commit}/{hf.filename}"
    if expected is not None:
        actual = _cached_sha256(pointer)
        if actual != expected:
            # LFS blobs are named by the sha256 the Hub reports: equal means the transfer was
            # intact and the Hub now serves other bytes than the pinned hash.
            served = os.path.basename(os.path.realpath(pointer)) == actual
            removed = _evict(pointer, cache)
            raise CheckpointError(
                f"{spec}: sha256 mismatch (expected {expected}, got {actual})"
                + ("; the Hub serves these bytes (repo updated? pin a commit)" if served else "")
                + ("; removed it from the cache, a retry downloads it again" if removed else "")
            )
    return ResolvedCheckpoint(pointer, source, expected, name)


# ---------------------------------------------------------------------------------------------
# huggingface_hub


def _from_cache(spec: str, hf: HfSpec, cache: Path) -> Path:
    """--offline: a pure disk lookup. hf_hub_download(local_files_only=True) is not enough: it
    still builds request headers, and huggingface_hub 2.x may then fetch an agent registry from
    the Hub to fill in the user agent."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hf.repo_id, hf.filename, cache_dir=cache, revision=hf.revision)
    if not isinstance(found, str):  # None, or the "known not to exist" marker
        raise CheckpointError(
            f"{spec}: not in the local cache ({cache}) and --offline/HF_HUB_OFFLINE is set"
        )
    return Path(found)


def _download(spec: str, hf: HfSpec, *, cache: Path, offline: bool) -> Path:
    """hf_hub_download with every failure mapped to a one-line CheckpointError."""
    if offline:
        return _from_cache(spec, hf, cache)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from dubcli import __version__

    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None
    shown = endpoint or DEFAULT_ENDPOINT
    try:
        path = hf_hub_download(
            hf.repo_id,
            hf.filename,
            revision=hf.revision,
            cache_dir=cache,
            endpoint=endpoint,
            library_name="dubcli",
            library_version=__version__,
        )
        return Path(path)
    # Order matters: in older huggingface_hub, LocalEntryNotFoundError subclasses the remote
    # EntryNotFoundError and GatedRepoError subclasses RepositoryNotFoundError.
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        # OfflineModeIsEnabled: HF_HUB_OFFLINE was already set when huggingface_hub was imported.
        if OfflineModeIsEnabled in (type(exc), type(exc.__cause__)):
            msg = f"not in the local cache ({cache}) and --offline/HF_HUB_OFFLINE is set"
        else:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
            msg = (
                f"cannot reach the Hub at {shown} ({cause}) and it is not in the local cache "
                f"({cache}); check the network or HF_ENDPOINT"
            )
        raise CheckpointError(f"{spec}: {msg}") from exc
    except GatedRepoError as exc:
        msg = f"repo {hf.repo_id} is gated: accept its terms on the Hub and set HF_TOKEN"
        raise CheckpointError(f"{spec}: {msg}") from exc
    except RepositoryNotFoundError as exc:
        msg = f"repo {hf.repo_id} not found on {shown} (or it is private: set HF_TOKEN)"
        raise CheckpointError(f"{spec}: {msg}") from exc
    except RevisionNotFoundError as exc:
        msg = f"revision '{hf.revision}' not found in repo {hf.repo_id}"
        raise CheckpointError(f"{spec}: {msg}") from exc
    except EntryNotFoundError as exc:
        rev = hf.revision or "main"
        msg = f"file '{hf.filename}' not found in repo {hf.repo_id} at revision '{rev}'"
        raise CheckpointError(f"{spec}: {msg}") from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = "; the repo may be private or gated: set HF_TOKEN" if status in (401, 403) else ""
        raise CheckpointError(f"{spec}: the Hub at {shown} answered HTTP {status}{hint}") from exc
    except ValueError as exc:  # HFValidationError and friends: a malformed repo id or revision
        raise CheckpointError(f"{spec}: {_first_line(exc)}") from exc
    except Exception as exc:
        # Transport errors after the metadata call (connection dropped mid-download), disk full.
        module = type(exc).__module__.split(".")[0]
        if isinstance(exc, OSError) or module.startswith(("httpx", "httpcore", "requests")):
            msg = f"download from {shown} failed ({type(exc).__name__}: {_first_line(exc)})"
            raise CheckpointError(f"{spec}: {msg}") from exc
        raise


def _commit_of(pointer: Path, hf: HfSpec) -> str | None:
    """The commit hash a cached file belongs to: .../snapshots/<commit>/<filename>."""
    parts = Path(pointer).parts
    n = len(Path(hf.filename).parts)
    if len(parts) > n + 1 and parts[-n - 2] == "snapshots":
        return parts[-n - 1]
    return None


def _evict(pointer: Path, cache: Path) -> bool:
    """Delete a bad download: the snapshot link and the blob it points at (inside the cache only)."""
    root = os.path.realpath(cache)
    targets = [os.path.realpath(pointer), os.path.abspath(pointer)]
    removed = False
    for target in targets:
        inside = os.path.commonpath([root, os.path.realpath(os.path.dirname(target))]) == root
        if inside and os.path.lexists(target):
            try:
                os.unlink(target)
                removed = True
            except OSError as exc:
                log.warning("could not remove %s from the cache: %s", target, exc)
    _SHA_MEMO.clear()
    return removed


# ---------------------------------------------------------------------------------------------
# Registry and helpers


def _load_registry(path: Path) -> tuple[str | None, dict[str, RegistryEntry]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: checkpoint registry not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CheckpointError(f"{path}: invalid TOML ({exc})") from exc
    unknown = set(data) - {"default", "checkpoints"}
    if unknown:
        raise CheckpointError(f"{path}: unknown top-level keys {sorted(unknown)}")
    default = data.get("default")
    tables = data.get("checkpoints", {})
    if not isinstance(tables, dict) or (default is not None and not isinstance(default, str)):
        raise CheckpointError(f"{path}: 'default' must be a name and [checkpoints.*] tables")
    entries: dict[str, RegistryEntry] = {}
    for name, raw in tables.items():
        where = f"{path}: [checkpoints.{name}]"
        if not _NAME_RE.match(name) or not isinstance(raw, dict):
            raise CheckpointError(f"{where}: names are letters, digits, '.', '_', '-'")
        bad = set(raw) - _ENTRY_KEYS
        if bad:
            raise CheckpointError(f"{where}: unknown keys {sorted(bad)} (allowed {_ENTRY_KEYS})")
        for key in ("source", "sha256", "description"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise CheckpointError(f"{where}: '{key}' is required (a string)")
        if not isinstance(raw.get("config", ""), str):
            raise CheckpointError(f"{where}: 'config' must be a string (tiny|small|paper)")
        sha = raw["sha256"].strip().lower()
        if not _SHA256_RE.match(sha):
            raise CheckpointError(f"{where}: sha256 must be 64 hex digits")
        if "#" in raw["source"]:
            raise CheckpointError(f"{where}: put the hash in 'sha256', not in a #fragment")
        if raw["source"].startswith(HF_SCHEME):
            parse_hf_spec(raw["source"])
        _check_suffix(f"{where} source {raw['source']}", raw["source"])
        entries[name] = RegistryEntry(
            name, raw["source"], sha, raw["description"], raw.get("config"), name == default
        )
    if default is not None and default not in entries:
        known = ", ".join(entries) or "none"
        raise CheckpointError(f"{path}: default '{default}' is not registered (known: {known})")
    return default, entries


# Verified hashes for this process, keyed by file identity: a checkpoint loaded twice (eval of
# several splits, batch dubbing) is hashed once.
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(real)
    return _SHA_MEMO[key]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
