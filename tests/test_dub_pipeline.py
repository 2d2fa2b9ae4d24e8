"""End to end with the baseline engine on a generated talking clip (skimage's astronaut, the jaw
opened with the original speech's envelope; stereo audio = centre speech + side-panned tone).

One run is killed at the mux and resumed (the cues come from the work folder, the engine is not
called again); a second run ducks the background under a reference taken from the video itself."""

import json
import subprocess

import cv2
import numpy as np
import pytest
import soundfile as sf
from skimage import data

from dubcli import media
from dubcli.audio.io import save_audio
from dubcli.dubbing import mix
from dubcli.dubbing.loudness import integrated_loudness
from dubcli.dubbing.pipeline import dub_video, is_complete, output_paths
from dubcli.engines import baseline
from dubcli.text.subtitles import read_cues

W, H, SECONDS, SR = 320, 240, 4.4, 16_000
TONE_HZ = 1250.0  # the side-panned "music" bed
CUES = [(0.3, 1.4, "Hello there, my friend."), (1.7, 2.9, "We go down to the river.")]


def srt(cues):
    ts = lambda x: f"00:00:{int(x):02d},{round(x % 1 * 1000):03d}"  # noqa: E731
    return "\n".join(f"{i}\n{ts(s)} --> {ts(e)}\n{t}\n" for i, (s, e, t) in enumerate(cues, 1))


def open_mouth(img, amount, cx=223.0, y0=141.0):
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    weight = np.clip((yy - y0) / 8.0, 0, 1) * np.clip((215 - yy) / 25.0, 0, 1)
    weight *= np.exp(-0.5 * ((xx - cx) / 28.0) ** 2)
    return cv2.remap(img, xx, yy - amount * weight, cv2.INTER_LINEAR, cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("dub")
    photo = data.astronaut()
    a = cv2.getRotationMatrix2D((225.0, 125.0), 0, 1.0)
    a[:, 2] += np.array([W / 2, H / 2]) - np.array([225.0, 125.0])
    speech = baseline.espeak_wav("Well hello, this is the original actor talking about boats.")
    n = int(SECONDS * SR)
    voice = np.zeros(n, np.float32)
    voice[int(0.2 * SR) : int(0.2 * SR) + len(speech)] = speech[: n - int(0.2 * SR)]
    nv = int(SECONDS * 25)
    env = np.array([np.sqrt(np.mean(voice[i * 640 : (i + 1) * 640] ** 2)) for i in range(nv)])
    env /= env.max()
    frames = [cv2.warpAffine(open_mouth(photo, 10 * e), a, (W, H)) for e in env]
    tone = 0.05 * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / SR)
    audio = np.stack([0.5 * voice + tone, 0.5 * voice - tone], axis=1)
    video = media.write_video(frames, root / "talk.mp4", audio=audio, sample_rate=SR)
    subs = root / "talk.srt"
    subs.write_text(srt(CUES))
    # the reference: another voice, stereo mp3 at 44.1 kHz (not the pipeline's format)
    ref = baseline.espeak_wav("I am the voice you should copy, speaking slowly and clearly now.",
                              "en-us+f3", rate=44_100)  # fmt: skip
    ref_path = save_audio(root / "ref.mp3", np.stack([ref, 0.8 * ref], axis=1), 44_100)
    return root, video, subs, ref_path


def test_subtitles_fixture_is_what_we_think(clip):
    cues = read_cues(clip[2])
    assert [(c.start, c.end, c.text) for c in cues] == CUES


def _md5_video(path):
    cmd = [media.find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy",
           "-f", "md5", "-"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def dropped(clip):
    """drop mode, killed at the mux, then resumed."""
    root, video, subs, ref = clip
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:

        def killed(*a, **k):
            raise KeyboardInterrupt

        mp.setattr(media, "mux_audio", killed)
        with pytest.raises(KeyboardInterrupt):
            dub_video(video, subs, refs=[str(ref)], out_dir=out, background="drop")
    outputs = output_paths(video, out)
    interrupted = {
        "complete": is_complete(outputs),
        # the report claims the outputs before they are written, and says it is unfinished
        "report": json.loads(outputs.report.read_text())["complete"],
        "video": outputs.video.exists(),
        "parts": [p.name for p in out.rglob("*.part*")],
        "cached": sorted(p.name for p in (out / ".talk.dubwork").glob("cue*.npz")),
    }
    with pytest.MonkeyPatch.context() as mp:

        def must_not_run(self, job):
            raise AssertionError("cue was not reused")

        mp.setattr(baseline.BaselineEngine, "synthesize_cue", must_not_run)
        result = dub_video(video, subs, refs=[str(ref)], out_dir=out, background="drop")
    return result, interrupted


def test_interrupted_run_looks_unfinished_and_resumes(dropped):
    result, interrupted = dropped
    assert interrupted["complete"] is False and interrupted["report"] is False
    assert not interrupted["video"] and interrupted["parts"] == []
    assert len(interrupted["cached"]) == 2
    assert result.status == "done" and is_complete(result.outputs)
    assert not (result.outputs.report.parent / ".talk.dubwork").exists()  # cleaned up


def test_video_stream_copied_and_audio_added(clip, dropped):
    result, _ = dropped
    assert _md5_video(result.outputs.video) == _md5_video(clip[1])
    info = media.probe(result.outputs.video)
    assert info.has_video and len(info.audio_streams) == 1
    assert info.audio_streams[0].sample_rate == 48_000
    assert abs(info.duration - media.probe(clip[1]).duration) < 0.1


def test_speech_inside_windows_silence_outside(dropped):
    result, _ = dropped
    wav, rate = sf.read(result.outputs.wav)
    assert rate == 48_000 and wav.ndim == 1  # drop mode: the dub alone, mono
    inside = np.zeros(len(wav), bool)
    for s, e, _ in CUES:
        inside[int(s * rate) : int(e * rate)] = True
    level = lambda x: 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)  # noqa: E731
    assert level(wav[inside]) > -30
    assert np.abs(wav[~inside]).max() < 10 ** (-60 / 20)
    for s, e, _ in CUES:  # each window really carries speech
        assert level(wav[int(s * rate) : int(e * rate)]) > -30


def test_loudness_target_and_report(dropped):
    result, _ = dropped
    wav, rate = sf.read(result.outputs.wav)
    assert integrated_loudness(wav, rate) == pytest.approx(-16.0, abs=1.0)
    report = json.loads(result.outputs.report.read_text())
    assert report["complete"] and report["engine"]["name"] == "baseline"
    assert report["loudness"]["after"] == pytest.approx(-16.0, abs=1.0)
    assert report["background"]["mode"] == "drop"
    assert report["voices"][0]["source"].endswith("ref.mp3")
    assert [c["index"] for c in report["cues"]] == [1, 2]
    for c, (s, e, text) in zip(report["cues"], CUES, strict=True):
        assert c["window"] == [s, e] and c["text"] == text and c["seed"] == c["index"]
        assert 0.7 <= c["stretch"] <= 1.5 and c["fit"]["status"] == "ok"
        assert c["fit"]["words_per_second"] == pytest.approx(len(text.split()) / (e - s), abs=0.01)
        assert c["face_frames_rate"] > 0.9 and c["video_frames"] == round((e - s) * 25)
        assert set(c["sync"]) == {"offset_s", "confidence", "correlation"}
    cues = read_cues(result.outputs.srt)
    for cue, (s, e, text) in zip(cues, CUES, strict=True):
        assert s - 0.01 <= cue.start < cue.end <= e + 0.01 and cue.text == text


def test_finished_output_is_skipped(clip, dropped):
    result, _ = dropped
    root, video, subs, ref = clip
    before = result.outputs.report.stat().st_mtime_ns
    again = dub_video(video, subs, refs=[str(ref)], out_dir=root / "out", background="drop")
    assert again.status == "skipped" and result.outputs.report.stat().st_mtime_ns == before


def test_duck_with_the_videos_own_voice(clip):
    root, video, subs, _ = clip
    result = dub_video(video, subs, out_dir=root / "duck", background="duck", widen_to_lips=True)
    report = result.report.to_json()  # a DubReport: the file's document, typed
    assert json.loads(result.outputs.report.read_text(encoding="utf-8")) == report
    assert report["voices"][0]["source"].startswith("video:")
    assert report["background"]["mode"] == "duck" and report["background"]["output_channels"] == 2
    wav, rate = sf.read(result.outputs.wav)
    assert wav.shape[1] == 2

    def tone_level(a, b):  # the side-panned bed, measured at its own frequency
        x = wav[int(a * rate) : int(b * rate), 0]
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        f = np.fft.rfftfreq(len(x), 1 / rate)
        return 20 * np.log10(spec[np.abs(f - TONE_HZ) < 15].max() / len(x))

    windows = [c["placed"] for c in report["cues"]]
    speech = [
        (w[0] + c["speech"][0], w[0] + c["speech"][1])
        for w, c in zip(windows, report["cues"], strict=True)
    ]
    after = speech[-1][1] + mix.RELEASE_S + 0.05
    assert SECONDS - after >= 0.2
    free = tone_level(after, SECONDS)
    a, b = speech[0]
    ducked = tone_level(a + 0.2, b - 0.1)
    assert ducked - free == pytest.approx(-15.0, abs=3.0)
    for c in report["cues"]:
        assert c["window"][0] <= c["cue"][0] and c["window"][1] >= c["cue"][1]  # only widened


def _dub_cues(clip, out, **kw):
    """(cue records without model_seconds, output samples, timings) of a dub of `clip`."""
    root, video, subs, ref = clip
    res = dub_video(video, subs, refs=[str(ref)], out_dir=root / out, background="drop", **kw)
    cues = [{k: v for k, v in c.items() if k != "model_seconds"}
            for c in res.report.to_json()["cues"]]  # fmt: skip
    return cues, sf.read(res.outputs.wav)[0], res.report.timings


def _same_but_jitter(a, b):
    """Two dubs' cues agree word for word and sample for sample; only the lip-sync estimate may
    move by FaceMesh's jitter (a kept tracker seeds a cue from the cue before it, a fresh one
    from a detection: landmarks.FaceTracker)."""
    for one, two in zip(a[0], b[0], strict=True):
        one, two = dict(one), dict(two)
        s1, s2 = one.pop("sync"), two.pop("sync")
        assert one == two
        assert s1["offset_s"] == pytest.approx(s2["offset_s"], abs=0.04)  # a frame
        assert s1["confidence"] == pytest.approx(s2["confidence"], abs=0.05)
    assert np.array_equal(a[1], b[1])


def test_cues_prepared_on_parallel_threads_equal_one_at_a_time(clip, monkeypatch):
    """Overlapped schedule (schedule.py; the baseline engine): cues prepared ahead of the
    engine on two threads give the cues one thread gives."""
    from dubcli.dubbing import schedule

    got = {}
    for threads in (1, 2):
        monkeypatch.setattr(schedule, "lanes", lambda widen, n=threads: n)
        got[threads] = _dub_cues(clip, f"threads{threads}")
        assert set(got[threads][2]) >= {"decode", "landmarks", "cue wait", "engine"}
    _same_but_jitter(got[1], got[2])


def test_alternating_schedule_gives_the_overlapped_ones_cues(clip, monkeypatch):
    """Alternating schedule (an engine that keeps every core busy: chunks prepared on lanes,
    then generated): with one lane or two, in chunks of one cue or one chunk, widened or not,
    the cues are those of the overlapped schedule; and a run resumed from a work folder holding some of its
    cues gives the cues of a full run."""
    from dubcli.dubbing import schedule

    base = _dub_cues(clip, "overlapped")
    widened = _dub_cues(clip, "overlapped-widened", widen_to_lips=True)
    monkeypatch.setattr(schedule, "uses_all_cores", lambda engine: True)
    _same_but_jitter(widened, _dub_cues(clip, "alternating-widened", widen_to_lips=True))
    for lanes, chunk in ((1, 32), (2, 32), (2, 1)):
        monkeypatch.setattr(schedule, "lanes", lambda widen, n=lanes: n)
        monkeypatch.setattr(schedule, "CHUNK", chunk)
        got = _dub_cues(clip, f"lanes{lanes}-{chunk}")
        assert set(got[2]) >= {"decode", "landmarks", "cue wait", "engine"}
        _same_but_jitter(base, got)
    # resumed: killed at the mux, the first cue's file removed, run again (cue 2 read back)
    root, video, subs, ref = clip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(media, "mux_audio", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            _dub_cues(clip, "resumed")
    cached = sorted((root / "resumed" / ".talk.dubwork").glob("cue*.npz"))
    assert len(cached) == 2
    cached[0].unlink()
    _same_but_jitter(base, _dub_cues(clip, "resumed"))


def test_schedule_parts_are_even_and_fixed_by_position():
    from dubcli.dubbing.schedule import chunks, even_parts, lane_of, lanes, split

    assert even_parts(33, 32) == [17, 16] and even_parts(32, 16) == [16, 16]
    assert even_parts(5, 16) == [5] and even_parts(0, 16) == []
    assert [len(c) for c in chunks(70)] == [24, 23, 23]
    part = range(32, 49)  # 17 cues
    assert [lane_of(i, part, 2) for i in part] == [0] * 9 + [1] * 8
    assert [lane_of(i, range(0, 3), 4) for i in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        lane_of(49, part, 2)
    assert split(range(32, 49), 9) == [range(32, 41), range(41, 49)]
    assert lanes(widen=True) == 1  # widened windows bound each other
    assert 1 <= lanes(widen=False) <= 4
