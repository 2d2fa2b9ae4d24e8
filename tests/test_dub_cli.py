"""`dubcli dub` through dubcli.cli.run: batch pairing by stem, skipping finished items, carrying on
after a failing item, exit codes, --json on stdout, --dry-run, option validation."""

import json

import pytest

from dubcli import media
from dubcli.audio.io import save_audio
from dubcli.cli import app, run
from dubcli.commands import dub as dub_command
from dubcli.console import reset_console
from dubcli.dubbing.batch import pair_inputs
from dubcli.engines import baseline
from dubcli.errors import EXIT_CHECKPOINT, EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, InputError

SRT = "1\n00:00:00,200 --> 00:00:01,300\nHello over there.\n"


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())  # rich wraps long lines on stderr


@pytest.fixture(scope="module", autouse=True)
def registered():
    # until dubcli/commands/__init__.py lists "dub", register it here (once)
    if not any(c.name == "dub" for c in app.registered_commands):
        dub_command.register(app)


@pytest.fixture(autouse=True)
def _fresh_console():
    reset_console()
    yield
    reset_console()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    videos, subs = root / "videos", root / "subs"
    videos.mkdir()
    subs.mkdir()
    media.make_test_video(videos / "a.mp4", 1.6, size=(64, 48))
    media.make_test_video(videos / "b.mkv", 1.6, size=(64, 48))  # no subtitles for b
    (videos / "c.mp4").write_bytes(b"not a video at all" * 100)  # undecodable
    (subs / "a.srt").write_text(SRT)
    (subs / "c.en.vtt").write_text("WEBVTT\n\n00:00.200 --> 00:01.000\nHi.\n")
    (subs / "orphan.srt").write_text(SRT)
    ref = save_audio(root / "ref.wav", baseline.espeak_wav("Reference voice for the batch test."))
    return root, videos, subs, ref


def test_pairing_by_stem(folder):
    root, videos, subs, _ = folder
    items = {i.video.name: i for i in pair_inputs(videos, subs)}
    assert set(items) == {"a.mp4", "b.mkv", "c.mp4"}
    assert items["a.mp4"].subtitles == subs / "a.srt"
    assert items["c.mp4"].subtitles == subs / "c.en.vtt"  # a language-tagged name
    assert items["b.mkv"].subtitles is None and "no subtitles named b.srt" in items["b.mkv"].problem
    with pytest.raises(InputError, match="is one file"):
        pair_inputs(videos, subs / "a.srt")
    with pytest.raises(InputError, match="no video files"):
        pair_inputs(subs, None)


def test_batch_continues_after_failures_and_skips_finished(folder, capsys):
    root, videos, subs, ref = folder
    out = root / "out"
    args = ["dub", str(videos), "--text", str(subs), "--ref", str(ref), "-o", str(out),
            "--background", "drop", "--json"]  # fmt: skip
    assert run(args) == EXIT_PARTIAL
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # exactly one JSON document on stdout
    status = {item["input"].rsplit("/", 1)[1]: item for item in result["items"]}
    assert status["a.mp4"]["status"] == "done"
    assert status["b.mkv"]["status"] == "failed" and "no subtitles" in status["b.mkv"]["error"]
    assert status["c.mp4"]["status"] == "failed" and status["c.mp4"]["exit_code"] == EXIT_INPUT
    assert result["counts"] == {"done": 1, "skipped": 0, "planned": 0, "failed": 2}
    assert (out / "a.dubbed.mp4").exists() and (out / "a.report.json").exists()
    assert "2 of 3 items failed" in " ".join(captured.err.split())
    # rerun: the finished item is skipped, the failures are still failures
    assert run(args) == EXIT_PARTIAL
    again = json.loads(capsys.readouterr().out)
    assert {i["input"].rsplit("/", 1)[1]: i["status"] for i in again["items"]} == {
        "a.mp4": "skipped", "b.mkv": "failed", "c.mp4": "failed"}  # fmt: skip
    # --force redoes it (single-file mode, exit 0)
    before = (out / "a.report.json").stat().st_mtime_ns
    single = ["dub", str(videos / "a.mp4"), "--text", str(subs / "a.srt"), "--ref", str(ref),
              "-o", str(out), "--background", "drop", "--force", "--json"]  # fmt: skip
    assert run(single) == EXIT_OK
    done = json.loads(capsys.readouterr().out)
    assert done["status"] == "done" and (out / "a.report.json").stat().st_mtime_ns > before


def test_dry_run_json_writes_nothing(folder, capsys):
    root, videos, subs, ref = folder
    out = root / "dry"
    args = ["dub", str(videos / "a.mp4"), "--text", str(subs / "a.srt"), "--ref", str(ref),
            "-o", str(out), "--dry-run", "--json"]  # fmt: skip
    assert run(args) == EXIT_OK
    captured = capsys.readouterr()
    plan = json.loads(captured.out)
    assert plan["status"] == "planned" and plan["plan"][0]["window"] == [0.2, 1.3]
    assert "dub plan" in captured.err and not out.exists()


def test_errors_map_to_exit_codes(folder, capsys):
    root, videos, subs, ref = folder
    a = str(videos / "a.mp4")
    assert run(["dub", a, "--text", str(subs / "a.srt"), "--engine", "diflow"]) == EXIT_CHECKPOINT
    assert "no default checkpoint" in _err(capsys)
    assert run(["dub", a, "--background", "louder"]) == EXIT_USAGE
    assert run(["dub", a, "--device", "tpu"]) == EXIT_USAGE
    assert run(["dub", a, "--nfe", "0"]) == EXIT_USAGE
    assert run(["dub", str(root / "missing.mp4"), "--text", str(subs / "a.srt")]) == EXIT_INPUT
    assert "missing.mp4: not found" in _err(capsys)
    # single file without --text: looks next to the video, and says so when nothing is there
    assert run(["dub", a]) == EXIT_INPUT
    assert "no subtitles named a.srt" in _err(capsys)
