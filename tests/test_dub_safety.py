"""Issue 14, "never lose or misreport a user's work": one test (or a few) per class of failure,
through the command line (dubcli.cli.run in-process, or `python -m dubcli` where a second
process, a signal or a kill is the point). The baseline engine and tiny generated media.

1 files dubcli did not write are never replaced without --force
2 two inputs with one stem keep their results apart; another input's outputs are never "done"
3 changed subtitles or options redo the item instead of skipping it
4 a second run on the same output waits for the first (a lock), no crash
5 write faults: disk full / read-only / denied are exit 6 naming the file; kill -9 leaves no
  living child and its .part files are swept by the next run; SIGTERM and Ctrl-C give one line
  and exit 143 / 130; an early failure leaves no empty output folder
6 malformed checkpoint metadata is exit 5 (test_dub_safety_model.py, with a tiny checkpoint)
7 a cue the frontend cannot pronounce is skipped with a warning, the rest is dubbed
8 warnings instead of silent surprises; --json always prints one document
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubcli import media
from dubcli.audio.io import save_audio
from dubcli.cli import run
from dubcli.console import reset_console
from dubcli.engines import baseline
from dubcli.errors import EXIT_CHECKPOINT, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT

# Only names that existed before issue 14 are imported, so that this file also runs (and fails
# where it should) against the code before it: 143 is errors.EXIT_TERMINATED, and the lock is
# taken the way dubcli takes it (flock on .<base>.dublock), not through dubcli.fsutil.
EXIT_TERMINATED = 143
ROOT = Path(__file__).resolve().parents[1]
SRT = ("1\n00:00:00,200 --> 00:00:01,300\nHello over there.\n\n"
       "2\n00:00:01,500 --> 00:00:02,600\nGood bye now.\n")  # fmt: skip
LINUX = sys.platform.startswith("linux")


@pytest.fixture(autouse=True)
def _fresh_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "4000")  # one message, one line: paths are never folded
    reset_console()
    yield
    reset_console()


@pytest.fixture(scope="module")
def media_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety-media")
    clip = media.make_test_video(root / "clip.mp4", 3.0, size=(64, 48))
    ref = save_audio(root / "ref.wav",
                     baseline.espeak_wav("A reference voice, speaking slowly and clearly."))  # fmt: skip
    other = save_audio(root / "other.wav",
                       baseline.espeak_wav("Another voice says this.", "en-us+f3"))  # fmt: skip
    return clip, ref, other


@pytest.fixture
def clip(media_files, tmp_path):
    """A fresh folder with clip.mp4 + clip.srt; returns (clip, subtitles, ref, other ref)."""
    src, ref, other = media_files
    folder = tmp_path / "in"
    folder.mkdir()
    video = Path(shutil.copy2(src, folder / "clip.mp4"))
    subs = folder / "clip.srt"
    subs.write_text(SRT)
    return video, subs, ref, other


def dub(capsys, *args) -> tuple[int, dict | None, str]:
    """run(['dub', *args, '--json']) -> (exit code, the JSON document or None, stderr in one line)."""
    code = run(["dub", *map(str, args), "--json"])
    cap = capsys.readouterr()
    out = cap.out.strip()
    return code, (json.loads(out) if out else None), " ".join(cap.err.split())


def report(out: Path, base: str = "clip") -> dict:
    return json.loads((out / f"{base}.report.json").read_text())


def leftovers(folder: Path) -> list[str]:
    """Hidden helpers a finished run must not leave: .part files, locks, work folders."""
    return sorted(p.name for p in folder.iterdir()
                  if ".part" in p.name or p.name.endswith((".dublock", ".dubwork")))  # fmt: skip


@contextlib.contextmanager
def held_lock(path: Path):
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "dubcli", *map(str, args)]


def cli_env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra, COLUMNS="4000")
    return env


# --- 1: files dubcli did not write ----------------------------------------------------------------


def test_class1_files_dubcli_did_not_write_are_not_replaced(clip, capsys):
    video, subs, ref, _ = clip
    folder = video.parent
    mine = folder / "clip.dubbed.mp4"
    mine.write_bytes(b"my own edit of the video, not dubcli's")
    code, doc, err = dub(capsys, video, "--ref", ref, "--background", "drop")
    assert code == EXIT_OUTPUT, err
    assert "clip.dubbed.mp4: exists and was not written by dubcli" in err and "--force" in err
    assert doc["status"] == "failed" and doc["exit_code"] == EXIT_OUTPUT
    assert mine.read_bytes() == b"my own edit of the video, not dubcli's"
    assert not (folder / "clip.report.json").exists() and leftovers(folder) == []
    mine.unlink()
    srt = folder / "clip.dub.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nmy subtitles\n")
    code, _, err = dub(capsys, video, "--ref", ref, "--background", "drop")
    assert code == EXIT_OUTPUT and "clip.dub.srt: exists and was not written by dubcli" in err
    assert "my subtitles" in srt.read_text()
    # --force replaces it
    code, doc, err = dub(capsys, video, "--ref", ref, "--background", "drop", "--force")
    assert code == EXIT_OK and doc["status"] == "done", err
    assert "my subtitles" not in srt.read_text()
    # an output changed after dubcli wrote it is not replaced by a redo either ...
    srt.write_text(srt.read_text().replace("Hello", "Hullo"))
    code, _, err = dub(capsys, video, "--ref", ref, "--background", "drop", "--lufs", "-20")
    assert code == EXIT_OUTPUT and "clip.dub.srt: was changed after dubcli wrote it" in err
    assert "Hullo" in srt.read_text()
    # ... while the same options still find the item finished (the edit stays)
    code, doc, _ = dub(capsys, video, "--ref", ref, "--background", "drop")
    assert code == EXIT_OK and doc["status"] == "skipped" and "Hullo" in srt.read_text()


# --- 2: inputs that share a stem --------------------------------------------------------------


def test_class2_same_stem_inputs_keep_their_results_apart(clip, capsys, tmp_path):
    video, subs, ref, _ = clip
    folder = video.parent
    media.make_test_video(folder / "clip.mkv", 2.0, size=(64, 48), tone_hz=660.0)
    out = tmp_path / "out"
    code, doc, err = dub(capsys, folder, "--ref", ref, "-o", out, "--background", "keep")
    assert code == EXIT_OK, err
    assert [i["status"] for i in doc["items"]] == ["done", "done"]
    assert len(list(out.glob("*.report.json"))) == 2  # one result per input
    for name in ("clip.mkv", "clip.mp4"):
        r = report(out, name)
        assert r["identity"]["input"]["path"] == str((folder / name).resolve())
        assert Path(r["outputs"]["video"]).name == f"{name}.dubbed{Path(name).suffix}"
        assert (out / f"{name}.dub.wav").is_file() and (out / f"{name}.dub.srt").is_file()
    assert abs(sf.info(out / "clip.mkv.dub.wav").duration - 2.0) < 0.1  # each its own track
    assert abs(sf.info(out / "clip.mp4.dub.wav").duration - 3.0) < 0.1
    code, doc, _ = dub(capsys, folder, "--ref", ref, "-o", out, "--background", "keep")
    assert code == EXIT_OK and [i["status"] for i in doc["items"]] == ["skipped", "skipped"]
    # a/clip.mp4, then b/clip.mp4 into the same folder: not "already dubbed"
    a, b = tmp_path / "a", tmp_path / "b"
    for d, hz in ((a, 440.0), (b, 880.0)):
        d.mkdir()
        media.make_test_video(d / "clip.mp4", 2.0, size=(64, 48), tone_hz=hz)
        (d / "clip.srt").write_text(SRT)
    shared = tmp_path / "shared"
    code, _, err = dub(capsys, a / "clip.mp4", "--ref", ref, "-o", shared, "--background", "drop")
    assert code == EXIT_OK, err
    before = (shared / "clip.dub.wav").read_bytes()
    code, doc, err = dub(capsys, b / "clip.mp4", "--ref", ref, "-o", shared, "--background", "drop")
    assert code == EXIT_OUTPUT and doc["status"] == "failed"
    assert f"clip.report.json: holds the dub of {(a / 'clip.mp4').resolve()}" in err
    assert (shared / "clip.dub.wav").read_bytes() == before
    assert report(shared)["identity"]["input"]["path"] == str((a / "clip.mp4").resolve())


# --- 3: stale results -------------------------------------------------------------------------


def test_class3_changed_subtitles_or_options_redo_the_item(clip, capsys, tmp_path):
    video, subs, ref, other = clip
    out = tmp_path / "out"
    base = [video, "--ref", ref, "-o", out, "--background", "drop"]
    assert dub(capsys, *base)[0] == EXIT_OK
    first = report(out)
    assert dub(capsys, *base)[1]["status"] == "skipped"
    subs.write_text(SRT.replace("Good bye now.", "See you later."))
    code, doc, err = dub(capsys, *base)
    assert code == EXIT_OK and doc["status"] == "done"
    assert doc["redone_because"] == ["the subtitles changed"] and "the subtitles changed" in err
    assert [c["text"] for c in report(out)["cues"]] == ["Hello over there.", "See you later."]
    assert "See you later." in (out / "clip.dub.srt").read_text()
    steps = [([video, "--ref", ref, "--background", "drop", "--lufs", "-20"],
              "--lufs changed (-16.0 -> -20.0)"),
             ([video, "--ref", ref, "--background", "keep", "--lufs", "-20"],
              "--background changed (drop -> keep)"),
             ([video, "--ref", other, "--background", "keep", "--lufs", "-20"],
              "--ref changed")]  # fmt: skip
    for args, why in steps:
        args = [*args, "-o", out]
        code, doc, err = dub(capsys, *args)
        assert code == EXIT_OK and doc["status"] == "done", err
        assert len(doc["redone_because"]) == 1 and doc["redone_because"][0].startswith(why)
        assert dub(capsys, *args)[1]["status"] == "skipped"  # and now it is finished
    last = report(out)
    assert last["identity"]["settings"]["background"] == "keep"
    assert last["voices"][0]["source"].endswith("other.wav")
    assert first["identity"]["subtitles"]["sha256"] != last["identity"]["subtitles"]["sha256"]
    assert leftovers(out) == []


# --- 4: concurrent runs --------------------------------------------------------------------------


def test_class4_a_second_run_waits_for_the_lock(clip, tmp_path):
    video, subs, ref, _ = clip
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "stderr.txt"
    with held_lock(out / ".clip.dublock"):  # as if another dubcli were writing these outputs
        with open(log, "w") as err:
            proc = subprocess.Popen(cli("dub", video, "--ref", ref, "-o", out, "--background",
                                        "drop", "--json"), env=cli_env(), stderr=err,
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.time() + 120
        while "waiting" not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        waited = " ".join(log.read_text().split())
        assert proc.poll() is None, f"it did not wait: {waited}"
        assert "another dubcli run (pid" in waited and "waiting for it to finish" in waited
        assert not (out / "clip.report.json").exists()
    doc = json.loads(proc.communicate(timeout=300)[0])
    assert proc.returncode == EXIT_OK and doc["status"] == "done"
    assert leftovers(out) == []


def test_class4_concurrent_runs_give_one_result(clip, tmp_path):
    video, subs, ref, _ = clip
    out = tmp_path / "out"
    cmd = cli("dub", video, "--ref", ref, "-o", out, "--background", "drop", "--json")
    procs = [subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _, err in results:
        assert code == EXIT_OK and "internal error" not in err, err
    assert sorted(json.loads(o)["status"] for _, o, _ in results) == ["done", "skipped"]
    assert sorted(p.name for p in out.iterdir()) == [
        "clip.dub.srt", "clip.dub.wav", "clip.dubbed.mp4", "clip.report.json"]  # fmt: skip


# --- 5: faults at write time -----------------------------------------------------------------


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_class5_write_errors_are_exit_6_naming_the_file(clip, capsys, tmp_path, monkeypatch, err):
    video, subs, ref, _ = clip
    out = tmp_path / "out"

    def failing_write(self, data):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(sf.SoundFile, "write", failing_write)
    code, doc, text = dub(capsys, video, "--ref", ref, "-o", out, "--background", "drop")
    assert code == EXIT_OUTPUT, text
    assert f"{out / 'clip.dub.wav'}: cannot be written" in text and "internal error" not in text
    assert doc["exit_code"] == EXIT_OUTPUT
    assert leftovers(out) == []


def _unshare_tmpfs() -> bool:
    if not LINUX or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"
                            " 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_tmpfs(), reason="needs unshare and a tmpfs mount namespace")
def test_class5_a_full_disk_is_exit_6(clip, tmp_path):
    """A real ENOSPC: the output folder on a 300 kB tmpfs in a private mount namespace."""
    video, subs, ref, _ = clip
    full = tmp_path / "full"
    full.mkdir()
    dubcmd = " ".join(f"'{a}'" for a in cli("-q", "dub", video, "--ref", ref, "-o", full / "out",
                                             "--background", "drop"))  # fmt: skip
    script = (f"mount -t tmpfs -o size=300k tmpfs '{full}' && {dubcmd}; echo rc=$?; "
              f"ls -A '{full}/out'")  # fmt: skip
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=cli_env(),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    err = " ".join(res.stderr.split())
    assert "rc=6" in res.stdout, err
    assert f"{full / 'out' / 'clip.dub.wav'}: cannot be written (no space left" in err
    left = res.stdout.split("rc=6", 1)[1].split()
    assert left == ["clip.report.json"]  # only the unfinished report: no .part, no work folder


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    """The process's command line; "" once it has exited (short-lived children come and go
    between listing them and reading this)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not LINUX, reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_class5_kill_9_during_the_final_write(clip, capsys, tmp_path):
    """kill -9 while ffmpeg writes the video's .part file: the child dies with dubcli, and the
    next run sweeps the .part file, redoes the unfinished item, and leaves nothing behind."""
    video, subs, ref, _ = clip
    out = tmp_path / "out"
    wrapper = tmp_path / "bin" / "ffmpeg"  # the real ffmpeg, except that the mux never ends
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *movflags*) exec sleep 120 ;; esac\n'
                       f'exec "{media.find_ffmpeg()}" "$@"\n')  # fmt: skip
    wrapper.chmod(0o755)
    proc = subprocess.Popen(cli("dub", video, "--ref", ref, "-o", out, "--background", "drop"),
                            env=cli_env(DUBCLI_FFMPEG=str(wrapper)), stderr=subprocess.DEVNULL)  # fmt: skip
    deadline, muxer = time.time() + 120, []
    while not muxer and proc.poll() is None and time.time() < deadline:
        muxer = [c for c in _children(proc.pid) if "sleep" in _cmdline(c)]
        time.sleep(0.1)
    assert muxer, "the mux never started"
    assert [p.name for p in out.glob(".clip.dubbed.*.part.mp4")]  # ffmpeg's output, unfinished
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while _alive(muxer[0]) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(muxer[0]), "the ffmpeg child outlived a kill -9 of dubcli"
    assert report(out)["complete"] is False  # the report claims what was being written
    code, doc, err = dub(capsys, video, "--ref", ref, "-o", out, "--background", "drop")
    assert code == EXIT_OK and doc["status"] == "done", err
    assert "removed, left by a run that was killed" in err and "2 of 2 cues reused" in err
    assert doc["redone_because"] == ["an earlier run stopped before it finished"]
    assert leftovers(out) == [] and report(out)["complete"] is True


@pytest.mark.parametrize("sig, code, line", [
    (signal.SIGTERM, EXIT_TERMINATED, "dubcli: terminated (SIGTERM)"),
    (signal.SIGINT, EXIT_INTERRUPTED, "dubcli: interrupted (Ctrl-C)"),
])  # fmt: skip
def test_class5_sigterm_and_ctrl_c_give_one_line(clip, capsys, tmp_path, sig, code, line):
    video, subs, ref, _ = clip
    out = tmp_path / "out"
    proc = subprocess.Popen(cli("dub", video, "--ref", ref, "-o", out, "--background", "drop"),
                            env=cli_env(), stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (out / ".clip.dubwork").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert err.rstrip("\n").splitlines()[-1] == line and err.count("dubcli:") == 1
    assert not list(out.glob("*.part*")) and not (out / ".clip.dublock").exists()
    got, doc, _ = dub(capsys, video, "--ref", ref, "-o", out, "--background", "drop")
    assert got == EXIT_OK and doc["status"] == "done" and leftovers(out) == []


def test_class5_a_signal_a_library_swallows_still_stops_the_run(clip, capsys, monkeypatch):
    """SIGTERM during a C extension's import came back as "ImportError: initialization failed"
    (pybind11), which the landmark tracker reports as a missing package (exit 4); a batch went
    on with the next item. It is an interruption: exit 143, one line, the batch stops."""
    import dubcli.errors

    if not hasattr(dubcli.errors, "Interrupted"):
        pytest.skip("before issue 14 a SIGTERM would end this test process")
    from dubcli.dubbing import pipeline
    from dubcli.errors import DependencyError

    video, subs, ref, _ = clip
    media.make_test_video(video.with_name("later.mp4"), 2.0, size=(64, 48))
    video.with_name("later.srt").write_text(SRT)
    calls = []

    def import_hit_by_sigterm(job, *args, **kwargs):
        calls.append(job.video.name)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException as exc:  # what pybind11 does with it
            raise DependencyError(
                f"mediapipe is needed ({exc!r} -> initialization failed)"
            ) from None

    monkeypatch.setattr(pipeline, "run_dub", import_hit_by_sigterm)
    code, doc, err = dub(capsys, video.parent, "--ref", ref, "--background", "drop")
    assert code == EXIT_TERMINATED and calls == ["clip.mp4"]  # "later.mp4" never started
    assert err.endswith("dubcli: terminated (SIGTERM)") and "mediapipe" not in err
    assert doc["status"] == "interrupted" and doc["exit_code"] == EXIT_TERMINATED


def test_class5_an_early_failure_leaves_no_empty_output_folder(clip, capsys, tmp_path):
    video, subs, _, _ = clip
    silent = save_audio(tmp_path / "silent.wav", np.zeros(32_000, np.float32))
    out = tmp_path / "new" / "deeper"
    code, doc, err = dub(capsys, video, "--ref", silent, "-o", out)
    assert code == EXIT_INPUT and "reference is silent" in err
    assert not (tmp_path / "new").exists()


# --- 7: a cue the frontend cannot pronounce -------------------------------------------------------

MIXED = ("1\n00:00:00,100 --> 00:00:00,900\nHello there.\n\n"
         "2\n00:00:01,000 --> 00:00:01,600\n你好世界\n\n"
         "3\n00:00:01,700 --> 00:00:02,200\nمرحبا بالعالم\n\n"
         "4\n00:00:02,300 --> 00:00:02,900\nGood bye.\n")  # fmt: skip


def test_class7_unpronounceable_cues_are_skipped_and_the_rest_dubbed(clip, capsys, tmp_path):
    video, subs, ref, _ = clip
    subs.write_text(MIXED, encoding="utf-8")
    out = tmp_path / "out"
    code, plan, err = dub(capsys, video, "--ref", ref, "-o", out, "--dry-run")
    assert code == EXIT_OK and [p["index"] for p in plan["plan"]] == [1, 4]
    assert [s["index"] for s in plan["skipped"]] == [2, 3]
    assert all("cannot pronounce" in s["reason"] for s in plan["skipped"])
    assert "cue 2: the text frontend cannot pronounce" in err and "cue 3:" in err
    code, doc, err = dub(capsys, video, "--ref", ref, "-o", out, "--background", "drop")
    assert code == EXIT_OK and doc["status"] == "done", err
    r = report(out)
    assert [c["index"] for c in r["cues"]] == [1, 4]
    assert [s["index"] for s in r["skipped"]] == [2, 3]
    assert any(w.startswith("cue 2: the text frontend cannot pronounce") for w in r["warnings"])
    assert leftovers(out) == []
    subs.write_text(MIXED.replace("Hello there.", "你好").replace("Good bye.", "再见"), "utf-8")
    code, doc, err = dub(capsys, video, "--ref", ref, "-o", tmp_path / "none")
    assert code == EXIT_INPUT and doc["status"] == "failed"
    assert "no cue can be dubbed (4 skipped: cue 1: the text frontend cannot pronounce" in err
    assert not (tmp_path / "none").exists()


# --- 8: silent surprises ------------------------------------------------------------------------


def test_class8_a_speaker_without_a_voice_is_warned_about(clip, capsys, tmp_path):
    video, subs, ref, _ = clip
    subs.write_text(SRT.replace("Hello", "[ALICE]: Hello").replace("Good", "[BOB]: Good"))
    code, doc, err = dub(capsys, video, "--ref", f"ALICE={ref}", "-o", tmp_path / "out",
                         "--background", "drop")  # fmt: skip
    assert code == EXIT_OK, err
    msg = "speaker 'BOB' has no --ref BOB=FILE: its 1 cue use ALICE's voice"
    assert msg in err and err.count(msg) == 1
    assert any(msg in w for w in report(tmp_path / "out")["warnings"])


def test_class8_an_invalid_registry_default_is_exit_5(clip, capsys, tmp_path, monkeypatch):
    video, subs, ref, _ = clip
    registry = tmp_path / "registry.toml"
    registry.write_text('default = "missing"\n\n[checkpoints.tiny]\nsource = "tiny.safetensors"\n'
                        f'sha256 = "{"0" * 64}"\ndescription = "a test entry"\n')  # fmt: skip
    monkeypatch.setenv("DUBCLI_REGISTRY", str(registry))
    code, doc, err = dub(capsys, video, "--ref", ref, "-o", tmp_path / "out")
    assert code == EXIT_CHECKPOINT and doc["exit_code"] == EXIT_CHECKPOINT
    assert "default 'missing' is not registered" in err and "--engine baseline" in err
    assert not (tmp_path / "out").exists()
    assert dub(capsys, video, "--ref", ref, "-o", tmp_path / "out", "--engine", "baseline",
               "--dry-run")[0] == EXIT_OK  # fmt: skip


def test_class8_noise_or_tone_references_are_warned_about(clip, capsys, tmp_path):
    video, subs, _, _ = clip
    t = np.arange(4 * 16_000) / 16_000
    noise = save_audio(tmp_path / "noise.wav",
                       0.1 * np.random.default_rng(0).standard_normal(len(t)))  # fmt: skip
    tone = save_audio(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t))
    for ref in (noise, tone):
        code, _, err = dub(capsys, video, "--ref", ref, "-o", tmp_path / ref.stem, "--background",
                           "drop")  # fmt: skip
        assert code == EXIT_OK, err
        assert f"{ref}: the reference does not sound like speech" in err


def test_class8_a_long_reference_is_read_from_its_start_only(clip, tmp_path):
    """A 40-minute reference: the run's peak memory stays that of a short one (it used to decode
    and analyse the whole file: ~3 GB for an hour)."""
    video, subs, ref, _ = clip
    wav, rate = sf.read(ref, dtype="float32")
    reps = int(40 * 60 * rate / len(wav)) + 1
    long_ref = tmp_path / "long.wav"
    with sf.SoundFile(long_ref, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(reps):
            f.write(wav)
    assert sf.info(long_ref).duration > 39 * 60

    def peak_mb(reference, out):
        code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
                "capture_output=True, text=True); print(r.returncode, resource.getrusage("
                "resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stderr, file=sys.stderr)")  # fmt: skip
        res = subprocess.run([sys.executable, "-c", code, *cli("dub", video, "--ref", reference,
                              "-o", out, "--background", "drop")], env=cli_env(),
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        rc, kb = res.stdout.split()
        return int(rc), int(kb) / 1024, " ".join(res.stderr.split())

    rc_short, short, _ = peak_mb(ref, tmp_path / "short")
    rc_long, long, err = peak_mb(long_ref, tmp_path / "long")
    assert rc_short == rc_long == EXIT_OK, err
    assert "the reference lasts 40 min; only its first" in err
    assert long < short + 120, f"peak {long:.0f} MB with the long reference, {short:.0f} MB without"


def test_class8_json_prints_one_document_when_a_single_item_fails(clip, capsys, tmp_path):
    video, subs, ref, _ = clip
    code, doc, _ = dub(capsys, tmp_path / "missing.mp4", "--text", subs)
    assert code == EXIT_INPUT
    assert doc == {"input": str(tmp_path / "missing.mp4"), "status": "failed",
                   "error": f"{tmp_path / 'missing.mp4'}: not found", "exit_code": EXIT_INPUT}  # fmt: skip
    silent = save_audio(tmp_path / "silent.wav", np.zeros(32_000, np.float32))
    code, doc, _ = dub(capsys, video, "--ref", silent, "-o", tmp_path / "o")
    assert code == EXIT_INPUT and doc["status"] == "failed" and "is silent" in doc["error"]


def test_class8_many_cues_past_the_end_give_one_summary_line(clip, capsys):
    video, subs, ref, _ = clip
    ts = lambda x: f"{int(x // 3600):02d}:{int(x % 3600 // 60):02d}:{int(x % 60):02d},000"  # noqa: E731
    late = "".join(f"{i}\n{ts(10 + i)} --> {ts(11 + i)}\nLine {i}.\n\n" for i in range(2, 5002))
    subs.write_text("1\n00:00:00,200 --> 00:00:01,300\nHello over there.\n\n" + late)
    code, plan, err = dub(capsys, video, "--ref", ref, "--dry-run")
    assert code == EXIT_OK and err.count("WARNING") == 1
    assert "cues 2, 3, 4, ... 5001 (5000 cues): start after the video's end (" in err
    assert len(plan["skipped"]) == 5000  # every cue is still listed, with its reason


def test_class8_resume_with_the_same_steps_does_not_warn(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_corpus import write_corpus

    corpus = write_corpus(tmp_path / "corpus", n_train=4, n_valid=0)
    argv = ["train", "--stage", "tts", "--data", str(corpus), "-o", str(tmp_path / "run"),
            "--device", "cpu", "--steps", "2"]  # fmt: skip
    assert run([*argv, "--config", "tiny"]) == EXIT_OK
    capsys.readouterr()
    assert run([*argv, "--resume"]) == EXIT_OK
    assert "schedule changes" not in capsys.readouterr().err
    argv[-1] = "3"
    assert run([*argv, "--resume"]) == EXIT_OK
    err = " ".join(capsys.readouterr().err.split())
    assert "new step/epoch limits on resume (steps 2 -> 3" in err
