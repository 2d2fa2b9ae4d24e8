"""Bad input never gives a traceback: each case raises the right DubcliError naming the file.
Per-cue problems (no face, overlaps, cues past the end, sound-only cues) warn and the run goes on;
a video without an audio track dubs with a note instead of a background."""

import json

import numpy as np
import pytest

from dubcli import media
from dubcli.audio.io import save_audio
from dubcli.dubbing.pipeline import dub_video
from dubcli.engines import baseline
from dubcli.errors import InputError, OutputError

SUBS = """1
00:00:00,200 --> 00:00:01,200
Good evening.

2
00:00:01,000 --> 00:00:02,000
Overlapping the first.

3
00:00:02,100 --> 00:00:02,500
[music]

4
00:00:05,000 --> 00:00:06,000
After the end of the video.
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    silent = media.make_test_video(root / "silent.mp4", 2.4, size=(96, 64), audio=False)
    subs = root / "silent.srt"
    subs.write_text(SUBS)
    ref = save_audio(root / "ref.wav", baseline.espeak_wav("A short reference voice sample here."))
    return root, silent, subs, ref


def test_missing_truncated_undecodable_video(files, tmp_path):
    root, silent, subs, ref = files
    with pytest.raises(InputError, match="nope.mp4: file not found"):
        dub_video(tmp_path / "nope.mp4", subs, refs=[str(ref)])
    cut = tmp_path / "cut.mp4"
    data = silent.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mp4.*truncated"):
        dub_video(cut, subs, refs=[str(ref)])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="junk.mp4"):
        dub_video(junk, subs, refs=[str(ref)])
    audio_only = media.make_test_video(tmp_path / "tone.m4a", 1.0)
    with pytest.raises(InputError, match="tone.m4a: has no video stream"):
        dub_video(audio_only, subs, refs=[str(ref)])


def test_missing_or_unreadable_subtitles(files, tmp_path):
    root, silent, subs, ref = files
    with pytest.raises(InputError, match="none.srt: subtitle file not found"):
        dub_video(silent, tmp_path / "none.srt", refs=[str(ref)])
    binary = tmp_path / "bin.srt"
    binary.write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(InputError, match="bin.srt"):
        dub_video(silent, binary, refs=[str(ref)])


def test_silent_or_too_short_reference(files, tmp_path):
    root, silent, subs, _ = files
    quiet = save_audio(tmp_path / "quiet.wav", np.zeros(32_000, np.float32))
    with pytest.raises(InputError, match="quiet.wav: reference is silent"):
        dub_video(silent, subs, refs=[str(quiet)], out_dir=tmp_path / "o1")
    blip = np.zeros(32_000, np.float32)
    blip[1000:3000] = 0.5 * np.sin(np.arange(2000) * 0.3)
    short = save_audio(tmp_path / "blip.flac", blip)
    with pytest.raises(InputError, match="blip.flac: reference is too short"):
        dub_video(silent, subs, refs=[str(short)], out_dir=tmp_path / "o2")
    with pytest.raises(InputError, match="no audio track to take the speaker's voice"):
        dub_video(silent, subs, out_dir=tmp_path / "o3")  # no --ref and nothing to copy
    assert not any((tmp_path / d / "silent.report.json").exists() for d in ("o1", "o2", "o3"))


def test_unwritable_output_folder(files, tmp_path):
    root, silent, subs, ref = files
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="file/out: output folder cannot be written"):
        dub_video(silent, subs, refs=[str(ref)], out_dir=blocker / "out")


def test_dry_run_writes_nothing(files, tmp_path):
    root, silent, subs, ref = files
    out = tmp_path / "dry"
    before = sorted(p.name for p in root.iterdir())
    result = dub_video(silent, subs, refs=[str(ref)], out_dir=out, dry_run=True)
    assert result.status == "planned" and not out.exists()
    assert sorted(p.name for p in root.iterdir()) == before
    assert [w.index for w in result.plan.windows] == [1, 2]
    assert {s.index for s in result.plan.skipped} == {3, 4}


def test_per_cue_warnings_and_no_audio_track(files):
    root, silent, subs, ref = files
    result = dub_video(silent, subs, refs=[str(ref)], out_dir=root / "out", background="duck")
    report = json.loads(result.outputs.report.read_text())
    bg = report["background"]
    assert bg["requested"] == "duck" and bg["mode"] == "drop" and "no audio track" in bg["note"]
    text = "\n".join(report["warnings"])
    assert "cue 2 overlaps cue 1" in text  # overlap resolved
    assert "cue 3: nothing to speak" in text  # sound-only cue skipped
    assert "cue 4: starts at 5.00 s, after the video's end" in text
    assert "cue 1: no face in the window" in text and "cue 2: no face" in text
    cues = report["cues"]
    assert [c["window"] for c in cues] == [[0.2, 1.0], [1.0, 2.0]]
    assert all(c["face_frames_rate"] == 0.0 and c["sync"] is None for c in cues)
    assert [s["index"] for s in report["skipped"]] == [3, 4]
    info = media.probe(result.outputs.video)
    assert info.has_video and len(info.audio_streams) == 1
