import numpy as np
import pytest
import torch

from dubcli.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from dubcli.errors import CheckpointError, OutputError
from dubcli.fsutil import atomic_path, atomic_write_text
from dubcli.timing import tokens_for_frames, tokens_for_samples


def test_checkpoint_roundtrip_torch_and_numpy(tmp_path):
    p = save_checkpoint(
        tmp_path / "m.safetensors",
        {"w": torch.arange(6.0).view(2, 3)},
        {"kind": "test", "x": [1, 2]},
    )
    ck = load_checkpoint(p, expect_kind="test")
    assert torch.equal(ck.tensors["w"], torch.arange(6.0).view(2, 3))
    assert ck.metadata["x"] == [1, 2] and ck.metadata["format_version"] == 1
    q = save_checkpoint(
        tmp_path / "n.safetensors", {"c": np.ones((4, 2), np.float32)}, {"kind": "np"}
    )
    assert load_checkpoint(q, framework="numpy").tensors["c"].shape == (4, 2)
    with pytest.raises(CheckpointError, match="expected 'other'"):
        load_checkpoint(p, expect_kind="other")


def test_checkpoint_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_metadata(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_metadata(bad)
    with pytest.raises(CheckpointError, match="directory"):
        read_metadata(tmp_path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_text(target, "done")
    assert target.read_text() == "done"
    assert target.stat().st_mode & 0o644 == 0o644  # not mkstemp's 0600
    with pytest.raises(OutputError, match="--force"):
        atomic_write_text(target, "again", force=False)
    assert target.read_text() == "done"


def test_timing_ratio():
    assert tokens_for_frames(5) == 16 and tokens_for_frames(25) == 80
    assert tokens_for_samples(16000) == 80 and tokens_for_samples(199) == 0


def test_sweep_partials_takes_only_the_targets_temporaries(tmp_path):
    from dubcli.fsutil import partial_files, sweep_partials

    target = tmp_path / "clip.dub.wav"
    with atomic_path(target) as tmp:  # the name atomic_path uses is what the sweep looks for
        tmp.write_bytes(b"x")
        assert partial_files(target) == [tmp]
    left = tmp_path / ".clip.dub.ab_12xyz.part.wav"  # what a kill -9 leaves
    other = [tmp_path / ".clip.mkv.dub.ab_12xyz.part.wav", tmp_path / ".clip.dub.abc.part.wav",
             tmp_path / ".clip.dub.ab_12xyz.part.srt", tmp_path / "clip.dub.wav.part"]  # fmt: skip
    for p in [left, *other]:
        p.write_bytes(b"x")
    assert partial_files(target) == [left]
    assert sweep_partials(target) == [left] and not left.exists()
    assert all(p.exists() for p in other) and target.exists()


def test_file_lock_waits_and_is_removed(tmp_path):
    import threading

    from dubcli.fsutil import file_lock

    lock = tmp_path / ".clip.dublock"
    events = []
    with file_lock(lock):
        assert "pid" in lock.read_text()

        def second():
            with file_lock(lock, on_wait=lambda who: events.append(("waited", who))):
                events.append(("got", lock.exists()))

        t = threading.Thread(target=second)
        t.start()
        t.join(0.5)
        assert t.is_alive() and events and events[0][0] == "waited" and "pid" in events[0][1]
    t.join(10)
    assert events[-1] == ("got", True) and not lock.exists()


def test_write_errors_become_output_errors(tmp_path):
    import errno

    target = tmp_path / "out.wav"
    with pytest.raises(OutputError, match="out.wav: cannot be written .no space left"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
