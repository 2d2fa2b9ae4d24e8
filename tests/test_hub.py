"""Checkpoint resolution against a local fake Hub (tests/fakehub.py); no test may reach the net."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import torch
from fakehub import FakeHub

from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError
from dubcli.hub import (
    DEFAULT_REGISTRY,
    list_registry,
    parse_hf_spec,
    registry_file,
    resolve_checkpoint,
    sha256_file,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any name lookup other than loopback fails the test (and the call), so huggingface.co is
    never reached even if an endpoint leaks through."""
    blocked: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            blocked.append(name)
            raise socket.gaierror(f"network disabled in tests: {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield
    assert not blocked, f"a test tried to reach the network: {blocked}"


@pytest.fixture(autouse=True)
def hf_env(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    for var in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # A closed loopback port until a test starts its fake hub: never the real Hub.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # huggingface_hub read HF_HUB_OFFLINE at import; the runner may have set it.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # huggingface_hub 2.x fetches {import-time ENDPOINT}/api/agent-harnesses once per process to
    # enrich its user agent (telemetry): off here (the network guard would catch it); test_offline
    # turns it back on to show that offline resolution builds no request at all.
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agents.json"))


@pytest.fixture
def hub(monkeypatch):
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def make_ckpt(path: Path, seed: int) -> bytes:
    g = torch.Generator().manual_seed(seed)
    save_checkpoint(path, {"w": torch.randn(4, 3, generator=g)}, {"kind": "test", "seed": seed})
    return path.read_bytes()


def cache_repo(tmp_path: Path, repo_id: str) -> Path:
    return tmp_path / "hf" / "hub" / ("models--" + repo_id.replace("/", "--"))


def write_registry(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- the Hub


def test_download_main_and_pinned_revision(hub, tmp_path):
    v1 = make_ckpt(tmp_path / "v1.safetensors", 1)
    v2 = make_ckpt(tmp_path / "v2.safetensors", 2)
    c1 = hub.add_file("org/model", "model.safetensors", v1)
    c2 = hub.add_file("org/model", "model.safetensors", v2)
    c3 = hub.add_file("org/model", "sub/dir/small.safetensors", v1, lfs=False)

    main = resolve_checkpoint("hf://org/model/model.safetensors")
    assert main.path.read_bytes() == v2
    assert main.source == f"hf://org/model@{c3}/model.safetensors"  # main moved on to c3
    assert main.sha256 is None and main.name is None
    assert main.path.is_relative_to(cache_repo(tmp_path, "org/model"))  # HF_HOME honoured
    assert load_checkpoint(main.path).metadata["seed"] == 2

    pinned = resolve_checkpoint(f"hf://org/model@{c1}/model.safetensors")
    assert pinned.path.read_bytes() == v1 and pinned.source.endswith(f"@{c1}/model.safetensors")

    # A plain (non-LFS) file in a subfolder, at a pinned commit.
    nested = resolve_checkpoint(f"hf://org/model@{c3}/sub/dir/small.safetensors")
    assert nested.path.read_bytes() == v1 and nested.path.parts[-3:] == (
        "sub",
        "dir",
        nested.path.name,
    )

    # A pinned commit already in the cache is served without asking the server.
    n = len(hub.requests)
    assert resolve_checkpoint(f"hf://org/model@{c1}/model.safetensors").path == pinned.path
    assert len(hub.requests) == n
    assert c2 != c1


def test_registry_hub_entry_verifies_and_evicts_bad_download(hub, tmp_path):
    data = make_ckpt(tmp_path / "m.safetensors", 3)
    hub.add_file("org/dub", "dub.safetensors", data)
    good = hashlib.sha256(data).hexdigest()
    reg = write_registry(
        tmp_path / "registry.toml",
        f"""
[checkpoints.bad]
source = "hf://org/dub/dub.safetensors"
sha256 = "{"0" * 64}"
description = "wrong hash"

[checkpoints.good]
source = "hf://org/dub/dub.safetensors"
sha256 = "{good.upper()}"
description = "right hash"
""",
    )
    with pytest.raises(
        CheckpointError,
        match=r"sha256 mismatch .*the Hub serves these bytes.*removed it from the cache",
    ):
        resolve_checkpoint("bad", registry_path=reg)
    repo = cache_repo(tmp_path, "org/dub")
    assert not any((repo / "blobs").iterdir()), "bad blob left in the cache"
    assert not [p for p in (repo / "snapshots").rglob("*") if p.is_symlink() or p.is_file()]

    gets = sum(1 for m, p, _ in hub.requests if m == "GET" and p.startswith("/blobs/"))
    ok = resolve_checkpoint("good", registry_path=reg)
    gets_after = sum(1 for m, p, _ in hub.requests if m == "GET" and p.startswith("/blobs/"))
    assert gets_after == gets + 1, "the retry must download the file again"
    assert ok.path.read_bytes() == data and ok.sha256 == good and ok.name == "good"


def test_sha256_fragment(hub, tmp_path):
    data = make_ckpt(tmp_path / "m.safetensors", 4)
    hub.add_file("org/frag", "m.safetensors", data)
    sha = hashlib.sha256(data).hexdigest()
    assert resolve_checkpoint(f"hf://org/frag/m.safetensors#sha256={sha}").sha256 == sha
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        resolve_checkpoint(f"hf://org/frag/m.safetensors#sha256={'a' * 64}")
    assert list((cache_repo(tmp_path, "org/frag") / "blobs").iterdir()) == []
    # The fragment is checked on cached copies too: a good hash downloads it again and passes.
    assert resolve_checkpoint(f"hf://org/frag/m.safetensors#sha256={sha}").path.read_bytes() == data


def test_corrupted_transfer_is_evicted_and_retried(hub, tmp_path):
    data = make_ckpt(tmp_path / "m.safetensors", 10)
    hub.add_file("org/cor", "m.safetensors", data)
    sha = hashlib.sha256(data).hexdigest()
    hub.blobs[sha] = data[:-1] + bytes([data[-1] ^ 0xFF])  # the CDN flips a bit, same size
    spec = f"hf://org/cor/m.safetensors#sha256={sha}"
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(spec)
    assert f"expected {sha}" in str(err.value) and "Hub serves these bytes" not in str(err.value)
    assert list((cache_repo(tmp_path, "org/cor") / "blobs").iterdir()) == []
    hub.blobs[sha] = data  # the transfer works this time
    assert resolve_checkpoint(spec).path.read_bytes() == data


@pytest.mark.parametrize("how", ["argument", "env"])
def test_offline_uses_cache_without_any_request(hub, tmp_path, monkeypatch, how):
    data = make_ckpt(tmp_path / "m.safetensors", 5)
    hub.add_file("org/off", "m.safetensors", data)
    online = resolve_checkpoint("hf://org/off/m.safetensors")
    hub.requests.clear()
    # With huggingface_hub's telemetry on and its agent registry not fetched yet, any call that
    # builds request headers would try huggingface.co and trip the network guard.
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", False)
    try:
        from huggingface_hub.utils import _detect_agent

        monkeypatch.setattr(_detect_agent, "_registry", None)
    except ImportError:  # older huggingface_hub: no agent detection
        pass
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = how == "argument"

    cached = resolve_checkpoint("hf://org/off/m.safetensors", offline=offline)
    assert cached.path == online.path and cached.path.read_bytes() == data
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint("hf://org/off/other.safetensors", offline=offline)
    assert "hf://org/off/other.safetensors: not in the local cache" in str(err.value)
    assert "--offline/HF_HUB_OFFLINE is set" in str(err.value)
    assert hub.requests == []


def test_missing_repo_file_and_revision(hub, tmp_path):
    hub.add_file("org/here", "m.safetensors", make_ckpt(tmp_path / "m.safetensors", 6))
    with pytest.raises(
        CheckpointError, match=r"hf://org/nope/m.safetensors: repo org/nope not found"
    ):
        resolve_checkpoint("hf://org/nope/m.safetensors")
    with pytest.raises(
        CheckpointError, match=r"file 'gone.safetensors' not found in repo org/here"
    ):
        resolve_checkpoint("hf://org/here/gone.safetensors")
    with pytest.raises(CheckpointError, match=r"revision 'v9' not found in repo org/here"):
        resolve_checkpoint("hf://org/here@v9/m.safetensors")
    assert len(hub.requests) == 3  # one HEAD each, and no download


def test_network_unreachable(monkeypatch):
    # Reserve a port, close it: connections are refused. Skip huggingface_hub's backoff sleeps.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr("time.sleep", lambda s: None)
    with pytest.raises(CheckpointError, match=r"m.safetensors: cannot reach the Hub at http://127"):
        resolve_checkpoint("hf://org/x/m.safetensors")


def test_hf_token_sent_to_hub_but_not_to_cdn(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_faketoken")
    hub.add_file("org/tok", "m.safetensors", make_ckpt(tmp_path / "m.safetensors", 7))
    resolve_checkpoint("hf://org/tok/m.safetensors")
    auth = {p: h.get("authorization") for _, p, h in hub.requests}
    assert auth["/org/tok/resolve/main/m.safetensors"] == "Bearer hf_faketoken"
    assert [a for p, a in auth.items() if p.startswith("/blobs/")] == [None]


def test_pickle_formats_refused_before_any_request(hub, tmp_path):
    for suffix in (".bin", ".pt", ".ckpt"):
        with pytest.raises(CheckpointError, match=rf"'{suffix}' is a pickle-based format"):
            resolve_checkpoint(f"hf://org/x/pytorch_model{suffix}")
        local = tmp_path / f"model{suffix}"
        local.write_bytes(b"\x80\x04not really a pickle")
        with pytest.raises(CheckpointError, match=rf"{local}: '{suffix}' is a pickle-based"):
            resolve_checkpoint(str(local))
    with pytest.raises(CheckpointError, match="not a .safetensors file"):
        resolve_checkpoint("hf://org/x/model.onnx")
    assert hub.requests == []


# --------------------------------------------------------------------------------- local + registry


def test_local_path(tmp_path):
    data = make_ckpt(tmp_path / "local.safetensors", 8)
    got = resolve_checkpoint(str(tmp_path / "local.safetensors"))
    assert got.path.read_bytes() == data
    assert got.source == str((tmp_path / "local.safetensors").resolve())
    assert got.sha256 is None and got.name is None
    with pytest.raises(CheckpointError, match=r"missing.safetensors: checkpoint file not found"):
        resolve_checkpoint(str(tmp_path / "missing.safetensors"))
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is not a file"):
        resolve_checkpoint(str(tmp_path / "dir.safetensors"))


def test_registry_local_entries_and_default(tmp_path):
    (tmp_path / "w").mkdir()
    data = make_ckpt(tmp_path / "w" / "small.safetensors", 9)
    sha = hashlib.sha256(data).hexdigest()
    reg = write_registry(
        tmp_path / "w" / "registry.toml",
        f"""
default = "small"
[checkpoints.small]
source = "small.safetensors"
sha256 = "{sha}"
description = "bundled"
config = "small"

[checkpoints.corrupt]
source = "small.safetensors"
sha256 = "{"1" * 64}"
description = "hash does not match"

[checkpoints.absent]
source = "absent.safetensors"
sha256 = "{sha}"
description = "file not shipped"
""",
    )
    by_default = resolve_checkpoint(None, registry_path=reg)
    by_name = resolve_checkpoint("small", registry_path=reg)
    assert by_default == by_name
    assert by_name.path == (tmp_path / "w" / "small.safetensors").resolve()
    assert by_name.name == "small" and by_name.sha256 == sha

    with pytest.raises(CheckpointError, match="sha256 mismatch .*corrupt or was replaced"):
        resolve_checkpoint("corrupt", registry_path=reg)
    assert (tmp_path / "w" / "small.safetensors").read_bytes() == data  # shipped files stay
    with pytest.raises(
        CheckpointError, match=r"checkpoint 'absent': its file .*absent.safetensors is missing"
    ):
        resolve_checkpoint("absent", registry_path=reg)
    with pytest.raises(
        CheckpointError, match=r"unknown checkpoint 'larg'.*known: small, corrupt, absent"
    ):
        resolve_checkpoint("larg", registry_path=reg)

    entries = list_registry(reg)
    assert [(e.name, e.default, e.config) for e in entries] == [
        ("small", True, "small"),
        ("corrupt", False, None),
        ("absent", False, None),
    ]


def test_registry_without_default_and_malformed(tmp_path):
    empty = write_registry(tmp_path / "empty.toml", "# nothing registered yet\n")
    with pytest.raises(CheckpointError, match=r"empty.toml: no default checkpoint is registered"):
        resolve_checkpoint(None, registry_path=empty)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint 'x'.*known: none"):
        resolve_checkpoint("x", registry_path=empty)
    with pytest.raises(CheckpointError, match=r"nowhere.toml: checkpoint registry not found"):
        resolve_checkpoint("x", registry_path=tmp_path / "nowhere.toml")

    entry = 'source = "a.safetensors"\ndescription = "d"\n'
    cases = {
        "default = 'ghost'\n": "default 'ghost' is not registered",
        "[checkpoints.a]\n" + entry + 'sha256 = "xyz"\n': "sha256 must be 64 hex digits",
        "[checkpoints.a]\n" + entry: "'sha256' is required",
        "[checkpoints.a]\n" + entry + f'sha256 = "{"0" * 64}"\nsha265 = "typo"\n': "unknown keys",
        '[checkpoints.a]\nsource = "a.bin"\ndescription = "d"\n'
        + f'sha256 = "{"0" * 64}"\n': "pickle-based",
        "this is = not toml [": "invalid TOML",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = write_registry(tmp_path / f"bad{i}.toml", text)
        with pytest.raises(CheckpointError, match=rf"bad{i}.toml.*{message}"):
            list_registry(bad)


def test_registry_from_the_environment(tmp_path, monkeypatch):
    # conftest.py points DUBCLI_REGISTRY at an empty registry for the whole suite
    with pytest.raises(CheckpointError, match="empty-registry.toml: no default checkpoint"):
        resolve_checkpoint(None)
    other = write_registry(tmp_path / "mine.toml", "# nothing\n")
    monkeypatch.setenv("DUBCLI_REGISTRY", str(other))
    assert registry_file() == other and list_registry() == []
    monkeypatch.delenv("DUBCLI_REGISTRY")
    assert registry_file() == DEFAULT_REGISTRY and DEFAULT_REGISTRY.name == "registry.toml"


# --------------------------------------------------------------------------------- helpers


def test_sha256_file_known_answer(tmp_path):
    p = tmp_path / "abc"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # spans several chunks
    assert sha256_file(big, chunk_size=4096) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_parse_hf_spec():
    s = parse_hf_spec("hf://org/repo@refs%2Fpr%2F1/a/b.safetensors")
    assert (s.repo_id, s.revision, s.filename, s.sha256) == (
        "org/repo",
        "refs/pr/1",
        "a/b.safetensors",
        None,
    )
    assert parse_hf_spec("hf://o/r/f.safetensors").revision is None
    for bad in (
        "hf://org/f.safetensors",
        "hf://org//f.safetensors",
        "hf://org/repo@/f.safetensors",
        "hf://org/repo/../f.safetensors",
        "hf://org/repo/f.safetensors#md5=00",
    ):
        with pytest.raises(CheckpointError, match="hf://"):
            parse_hf_spec(bad)
