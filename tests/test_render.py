"""Synthetic talking faces: landmark trajectories from phone timelines (synth/face_motion.py) and
the astronaut photo warped by them (synth/render.py). Known answers: the rig's parameters are
the features of its points; the extractor (FaceMesh) must recover them from rendered video."""

import numpy as np
import pytest

from dubcli.errors import InputError
from dubcli.synth import render
from dubcli.synth.face_motion import (
    PARAMS,
    ExpressionStyle,
    FaceMotion,
    articulation,
    expression_from_prosody,
)
from dubcli.vision import features as F
from dubcli.vision import topology as topo
from dubcli.vision.landmarks import LandmarkTrack, track_faces

LIP = {n: i for i, n in enumerate(F.LIP_NAMES)}
FACE = {n: i for i, n in enumerate(F.FACE_NAMES)}
# "a bob, a peep, two moods": bilabials between open vowels, rounded vs spread vowels.
PHONES = [
    ("<sil>", 0.0, 0.30), ("AH0", 0.30, 0.40), ("B", 0.40, 0.52), ("AA1", 0.52, 0.72),
    ("B", 0.72, 0.84), ("P", 0.84, 0.94), ("IY1", 0.94, 1.14), ("P", 1.14, 1.26),
    ("T", 1.26, 1.34), ("UW1", 1.34, 1.56), ("M", 1.56, 1.68), ("UW1", 1.68, 1.86),
    ("D", 1.86, 1.94), ("Z", 1.94, 2.04), ("<sil>", 2.04, 2.40),
]  # fmt: skip


@pytest.fixture(scope="module")
def motion():
    """The astronaut rig with exact timing (no jitter, no drift): 60 ms anticipation."""
    return FaceMotion(jitter=0.0, noise=0.0)


def centre(i: int) -> float:
    return (PHONES[i][1] + PHONES[i][2]) / 2


def frame_at(t: float, lead: float = 0.06) -> int:
    """The 25 fps frame nearest to the articulatory centre (the sound's minus the lead)."""
    return int(round((t - lead) * 25))


# --- articulation ----------------------------------------------------------------------------


def test_visemes_close_for_bilabials_and_open_for_open_vowels(motion):
    tr = motion.generate(PHONES, seed=0)
    ap = F.mouth_aperture(tr.points)
    for i in (2, 4, 5, 7, 10):  # B B P P M: lips together on the frame nearest the hold
        assert ap[int(round(centre(i) * 25))] < 0.05, (PHONES[i], ap[int(round(centre(i) * 25))])
    assert ap[frame_at(centre(3))] > 1.0  # AA
    assert ap[frame_at(centre(3))] > 2 * ap[frame_at(centre(6))]  # AA opens more than IY
    pause = motion.generate([("<sil>", 0, 1), ("AA1", 1, 1.2), ("<sil>", 1.2, 2)], seed=0)
    assert F.mouth_aperture(pause.points)[:10].max() < 0.01  # silence: rest, closed


def test_rounded_vowels_narrow_the_mouth_spread_ones_widen_it(motion):
    tr = motion.generate(PHONES, seed=0)
    lip = F.lip_features(tr.points)
    rest = lip[2, LIP["outer_width"]]
    iy = lip[frame_at(centre(6)), LIP["outer_width"]]
    uw = lip[frame_at(centre(11)), LIP["outer_width"]]
    assert iy > rest + 0.3 and uw < rest - 1.0, (rest, iy, uw)
    assert (
        lip[frame_at(centre(11)), LIP["protrusion_upper"]] > lip[2, LIP["protrusion_upper"]] + 0.3
    )


def test_coarticulation_is_smooth_and_anticipates():
    phones = [("<sil>", 0.0, 0.5), ("AA1", 0.5, 0.7), ("<sil>", 0.7, 1.2)]
    fine = articulation(phones, 240, fps=200, anticipation=0.06)[:, 0]
    assert abs(np.argmax(fine) / 200 - (0.6 - 0.06)) <= 0.01  # the peak leads the sound by 60 ms
    assert fine[int(0.5 * 200)] > 0.5 * fine.max()  # half open when the vowel starts
    assert np.abs(np.diff(fine)).max() < 0.05  # no jumps at 5 ms resolution (cm per step)
    # A short vowel between bilabials undershoots a long one (coarticulation).
    short = [("<sil>", 0, 0.3), ("B", 0.3, 0.4), ("AA1", 0.4, 0.46), ("B", 0.46, 0.56)]
    assert articulation(short, 120, fps=200)[:, 0].max() < 0.8 * fine.max()


def test_truth_is_what_the_features_measure(motion):
    tr = FaceMotion(jitter=0.01, noise=1.0).generate(
        PHONES, expression_from_prosody(3, 1.5), seed=3
    )
    assert tr.points.shape == (60, topo.N_POINTS, 3) and tr.points.dtype == np.float32
    assert tr.params.shape == (60, len(PARAMS))
    np.testing.assert_allclose(F.mouth_aperture(tr.points), tr.truth.aperture, atol=1e-3)
    face = F.face_features(tr.points)
    base = F.face_features(render.astronaut_photo().landmarks[None])[0]  # the photo's own pose
    yaw, pitch, roll = (face[:, FACE[k]] - base[FACE[k]] for k in ("yaw", "pitch", "roll"))
    np.testing.assert_allclose(roll, tr.truth.head[:, 2], atol=0.005)  # in-plane: exact
    np.testing.assert_allclose(yaw, tr.truth.head[:, 0], atol=0.01)
    # pitch reads ~1.2x (FaceMesh's z for this photo is deeper than the canonical face's) and
    # mixes with yaw x the photo's roll
    assert np.corrcoef(pitch, tr.truth.head[:, 1])[0, 1] > 0.9
    assert (tr.truth.phone[:7] == 0).all() and tr.truth.phone[-1] == len(PHONES) - 1


def test_deterministic_given_the_seed():
    from dubcli.synth.timeline import PhoneSpan

    m = FaceMotion()
    a, c = m.generate(PHONES, seed=7), m.generate(PHONES, seed=8)
    b = m.generate([PhoneSpan(*p) for p in PHONES], seed=7)  # the synth timeline type
    np.testing.assert_array_equal(a.points, b.points)
    assert np.abs(a.points - c.points).max() > 0.5  # pixels: timing, drift, head, blinks differ


def test_blinks_close_the_eyes(motion):
    tr = motion.generate([("<sil>", 0.0, 10.0)], seed=1)
    onsets = np.flatnonzero(np.diff(tr.truth.blink.astype(int)) == 1)
    assert 2 <= len(onsets) <= 4  # every 3-5 s
    open_ = F.face_features(tr.points)[:, [FACE["eye_open_right"], FACE["eye_open_left"]]]
    rest = np.median(open_, axis=0)
    for k in onsets:
        assert (open_[k : k + 6].min(axis=0) < 0.4 * rest).all()  # each blink nearly shuts them
    assert (open_[~tr.truth.blink] > 0.9 * rest).all()


def test_expressions_follow_prosody(motion):
    sil = [("<sil>", 0.0, 2.0)]
    styles = {
        "sad": expression_from_prosody(-2.5, 0.55, 0.8, -6.0),
        "neutral": expression_from_prosody(),
        "excited": expression_from_prosody(3.0, 1.5, 1.15, 4.0),
    }
    assert styles["neutral"] == ExpressionStyle()
    feats = {k: F.face_features(motion.generate(sil, s, seed=2).points) for k, s in styles.items()}
    brow = {k: f[:, FACE["brow_raise_right"]].mean() for k, f in feats.items()}
    smile = {k: f[:, FACE["smile"]].mean() for k, f in feats.items()}
    eyes = {k: np.median(f[:, FACE["eye_open_left"]]) for k, f in feats.items()}
    assert brow["sad"] + 0.1 < brow["neutral"] < brow["excited"] - 0.1, brow  # cm
    assert smile["excited"] > smile["neutral"] + 0.1, smile
    assert eyes["sad"] < eyes["neutral"] < eyes["excited"], eyes
    yaw = {k: f[:, FACE["yaw"]].std() for k, f in feats.items()}
    assert yaw["sad"] < yaw["neutral"] < yaw["excited"], yaw


@pytest.mark.parametrize(
    "phones",
    [[], [("XX", 0.0, 0.1)], [("AA1", 0.0, 0.2), ("B", 0.1, 0.3)], [("AA1", 0.3, 0.2)]],
    ids=["empty", "unknown", "overlap", "backwards"],
)
def test_bad_phone_timelines(motion, phones):
    with pytest.raises(InputError, match="phone timeline"):
        motion.generate(phones)


# --- rendering -------------------------------------------------------------------------------


def test_neutral_landmarks_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("DUBCLI_CACHE_DIR", str(tmp_path))
    pts = render._astronaut_landmarks.__wrapped__("test")
    assert pts.shape == (topo.N_POINTS, 3) and (tmp_path / "vision").is_dir()

    def no_facemesh(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr("dubcli.vision.landmarks.track_faces", no_facemesh)
    np.testing.assert_array_equal(render._astronaut_landmarks.__wrapped__("test"), pts)


def test_render_shapes_and_identity(motion):
    photo = render.astronaut_photo()
    frames = list(render.render_frames(photo.landmarks[None].repeat(2, 0), mouth="warp"))
    assert len(frames) == 2 and frames[0].shape == (256, 256, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[0], photo.image)  # the photo's own landmarks: no change
    other = next(
        render.render_frames(render.astronaut_photo((320, 240)).landmarks[None], size=(320, 240))
    )
    assert other.shape == (240, 320, 3)
    with pytest.raises(InputError, match="landmark trajectory"):
        next(render.render_frames(np.zeros((2, 468, 3))))
    with pytest.raises(InputError, match="NaN"):
        next(render.render_frames(np.full((1, topo.N_POINTS, 3), np.nan)))


def test_rendered_mouth_opens(motion):
    import cv2

    tr = motion.generate(PHONES, seed=0)
    closed, opened = int(round(centre(2) * 25)), frame_at(centre(3))
    frames = list(render.render_frames(tr.points[[closed, opened]], mouth="draw"))
    loop = tr.points[opened][list(topo.INNER_LIP_LOOP), :2]
    mask = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(mask, [np.round(loop).astype(np.int32)], 1)
    assert mask.sum() > 60  # pixels inside the open mouth
    dark = [(f.mean(axis=2)[mask > 0] < 90).mean() for f in frames]
    assert dark[0] < 0.1 and dark[1] > 0.4, dark  # the open mouth is a dark cavity inside


def test_auto_mouth_draws_for_a_closed_photo_mouth(motion):
    tr = motion.generate(PHONES, seed=0)
    rest = tr.points[2]  # lips together
    shut = render.FacePhoto(next(render.render_frames(rest[None])), rest)
    opened = tr.points[[frame_at(centre(3))]]
    auto = next(render.render_frames(opened, shut))
    np.testing.assert_array_equal(auto, next(render.render_frames(opened, shut, mouth="draw")))
    assert (
        np.abs(auto.astype(int) - next(render.render_frames(opened, shut, mouth="warp"))).max()
        > 100
    )


def test_closed_loop_through_video(motion, tmp_path):
    """Render 2.4 s to h264, decode it, track it: FaceMesh must recover the mouth motion."""
    from dubcli.media import iter_frames, probe

    tr = FaceMotion(jitter=0.01).generate(PHONES, expression_from_prosody(2.0, 1.3), seed=5)
    wav = 0.1 * np.sin(2 * np.pi * 220 * np.arange(int(2.4 * 16000)) / 16000).astype(np.float32)
    out = render.render_video(tr.points, tmp_path / "face.mp4", audio=wav)
    info = probe(out)
    assert (info.width, info.height, info.n_frames) == (256, 256, 60) and info.audio_streams
    track = track_faces(iter_frames(out))
    assert track.stats.rate == 1.0
    want, got = F.mouth_aperture(LandmarkTrack.from_points(tr.points)), F.mouth_aperture(track)
    assert np.corrcoef(want, got)[0, 1] > 0.9
    assert np.abs(want - got).mean() < 0.15  # cm
    lw, lg = F.lip_features(tr.points), F.lip_features(track)
    i = LIP["outer_width"]
    assert np.corrcoef(lw[:, i], lg[:, i])[0, 1] > 0.7  # rounding is visible too
