"""FaceMesh tracking on synthetic videos made from a real face photo (skimage's astronaut) moved,
scaled and rotated in-plane with known affine transforms, so every answer is known."""

import cv2
import numpy as np
import pytest
from skimage import data

from dubcli.errors import InputError
from dubcli.vision import features as F
from dubcli.vision import topology as topo
from dubcli.vision.landmarks import LandmarkTrack, fill_gaps, track_faces

FACE_CENTRE = (225.0, 125.0)  # the astronaut's face in the 512x512 photo
W, H = 320, 240


@pytest.fixture(scope="module")
def photo():
    return data.astronaut()


def similarity(theta_deg, scale, dx, dy, centre=(W / 2, H / 2)):
    """2x3 affine: rotate/scale about the face, then put the face at centre + (dx, dy)."""
    a = cv2.getRotationMatrix2D(FACE_CENTRE, theta_deg, scale)
    a[:, 2] += np.array([centre[0] + dx, centre[1] + dy]) - np.array(FACE_CENTRE)
    return a


def warp(img, a, size=(W, H)):
    return cv2.warpAffine(img, a, size, flags=cv2.INTER_LINEAR)


def open_mouth(img, amount, cx=223.0, y0=141.0):
    """Pull the lower lip and chin down by `amount` pixels (a jaw opening) with a smooth warp."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    weight = np.clip((yy - y0) / 8.0, 0, 1) * np.clip((215 - yy) / 25.0, 0, 1)
    weight *= np.exp(-0.5 * ((xx - cx) / 28.0) ** 2)
    return cv2.remap(img, xx, yy - amount * weight, cv2.INTER_LINEAR, cv2.BORDER_REFLECT)


def moving_clip(n=30):
    """Transforms: rotation +-12 deg, scale 0.8..1.2, translation +-30/15 px; frame 0 = identity."""
    ks = np.arange(n)
    return [
        similarity(
            12 * np.sin(2 * np.pi * k / n),
            1 + 0.2 * np.sin(2 * np.pi * k / 20),
            30 * np.sin(2 * np.pi * k / 25),
            15 * np.sin(2 * np.pi * k / 15),
        )
        for k in ks
    ]


def apply(a, pts):
    return pts[:, :2] @ a[:, :2].T + a[:, 2]


@pytest.fixture(scope="module")
def moving(photo):
    transforms = moving_clip()
    track = track_faces(warp(photo, a) for a in transforms)
    return transforms, track


def test_track_follows_known_transform(moving, photo):
    transforms, track = moving
    assert track.points.shape == (30, topo.N_POINTS, 3) and track.points.dtype == np.float32
    assert track.present.all() and not track.interpolated.any() and track.gaps == ()
    assert track.stats.n_frames == 30 and track.stats.rate == 1.0 and track.stats.n_faces == 1
    # Landmarks of frame k = transform k applied to the photo-space landmarks of frame 0.
    base = apply(cv2.invertAffineTransform(transforms[0]), track.points[0])
    errors = np.stack(
        [
            np.linalg.norm(track.points[k, :, :2] - apply(a, base), axis=1)
            for k, a in enumerate(transforms)
        ]
    )
    # measured: per-frame median 0.3-1.0 px, 95th percentile < 3 px (face ~50-75 px wide)
    assert np.median(errors, axis=1).max() < 2.0
    assert np.percentile(errors, 95, axis=1).max() < 4.5
    # and the inner mouth is where the photo says it is (the points that matter for lip sync)
    mouth = errors[:, list(topo.INNER_LIP_LOOP)]
    assert mouth.mean() < 1.5


def test_lip_features_invariant_to_in_plane_motion(moving):
    transforms, track = moving
    raw_width = np.linalg.norm(track.points[:, 61, :2] - track.points[:, 291, :2], axis=1)
    assert raw_width.max() / raw_width.min() > 1.4  # the pixels really changed by +-20%
    lip = F.lip_features(track)
    static = lip[:, : F.LIP_DIM // 2]
    names = F.LIP_NAMES[: F.LIP_DIM // 2]
    width = static[:, names.index("outer_width")]
    assert width.max() / width.min() < 1.12  # measured ~1.06
    # every lip feature stays within a few mm of frame 0 (measured max 0.38, typical 0.1)
    dev = np.abs(static - static[0])
    assert dev.max() < 0.6 and np.median(dev.max(axis=0)) < 0.25
    # roll follows the applied rotation (cv2 angle > 0 is counter-clockwise on screen)
    face = F.face_features(track)
    roll = face[:, F.FACE_NAMES.index("roll")]
    applied = np.array([np.arctan2(a[1, 0], a[0, 0]) for a in transforms])  # clockwise > 0
    assert np.abs((roll - roll[0]) - applied).max() < 0.05
    yaw, pitch = face[:, F.FACE_NAMES.index("yaw")], face[:, F.FACE_NAMES.index("pitch")]
    assert np.ptp(yaw) < 0.1 and np.ptp(pitch) < 0.1  # in-plane motion is not a head turn


def test_gaps_interpolated_or_flagged(photo, capfd):
    n = 40
    shifts = np.linspace(-30, 30, n)  # slow pan, so interpolation has something to do
    transforms = [similarity(0, 1.0, dx, 0) for dx in shifts]
    blank = set(range(0, 2)) | set(range(10, 13)) | set(range(20, 30))
    frames = [
        np.zeros((H, W, 3), np.uint8) if k in blank else warp(photo, a)
        for k, a in enumerate(transforms)
    ]
    done = []
    track = track_faces(iter(frames), progress=done.append, max_gap=5)
    assert done == list(range(1, n + 1))
    assert not track.present[sorted(blank)].any() and track.present.sum() == n - len(blank)
    assert track.gaps == ((20, 30),)  # 10 frames > max_gap: left NaN
    assert np.isnan(track.points[20:30]).all() and not track.valid[20:30].any()
    assert track.interpolated[[0, 1, 10, 11, 12]].all() and track.interpolated.sum() == 5
    # the short interior gap is a straight line between frames 9 and 13
    np.testing.assert_allclose(
        track.points[11], (track.points[9] + track.points[13]) / 2, atol=1e-3
    )
    # ... which, for a constant-speed pan, lands where the face really was (pixels)
    truth = apply(transforms[11], apply(cv2.invertAffineTransform(transforms[9]), track.points[9]))
    assert np.median(np.linalg.norm(track.points[11, :, :2] - truth, axis=1)) < 2.0
    # the leading gap holds the first detection
    np.testing.assert_array_equal(track.points[0], track.points[2])
    s = track.stats
    assert (s.n_frames, s.n_detected, s.n_interpolated, s.n_missing) == (40, 25, 5, 10)
    # features: long-gap frames are filled and flagged, short-gap frames count as valid
    vf = F.visual_features(track)
    assert not vf.valid[20:30].any() and vf.valid[10:13].all()
    np.testing.assert_array_equal(
        vf.lip[20:30, : F.LIP_DIM // 2], np.repeat(vf.lip[19:20, : F.LIP_DIM // 2], 10, 0)
    )
    assert np.isfinite(vf.lip).all() and np.isfinite(vf.face).all()
    # MediaPipe's C++ log lines do not reach the terminal
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "W0000" not in err and "absl" not in err


def two_faces(photo, left_scale, right_scale, mouth=None):
    """Frames with two copies of the photo side by side; `mouth(k)` opens the LEFT one's mouth."""
    frames = []
    for k in range(16):
        left_img = open_mouth(photo, mouth(k)) if mouth else photo
        left = warp(left_img, similarity(0, left_scale, 0, 0, centre=(120, 120)), (480, H))
        right = warp(photo, similarity(0, right_scale, 0, 0, centre=(360, 120)), (480, H))
        frames.append(np.where(np.arange(480)[None, :, None] < 240, left, right))
    return frames


def test_two_faces_largest_when_nobody_speaks(photo):
    frames = two_faces(photo, 0.75, 1.1)  # the right face is the larger one
    track = track_faces(frames)
    assert track.stats.n_faces == 2 and track.face == 1
    assert track.points[0, :, 0].mean() > 240  # really the right-hand face
    other = track_faces(frames, face=0)
    assert other.face == 0 and other.points[0, :, 0].mean() < 240 and other.present.all()
    with pytest.raises(InputError, match=r"clip\.mp4: face=2 .* 2 face\(s\)"):
        track_faces(frames, face=2, source="clip.mp4")


def test_two_faces_speaker_wins_over_size(photo):
    frames = two_faces(photo, 0.75, 1.1, mouth=lambda k: 12.0 * (k % 4 >= 2))
    track = track_faces(frames)
    assert track.face == 0 and track.points[0, :, 0].mean() < 240  # the smaller, speaking face
    aperture = F.mouth_aperture(track)
    assert aperture[[2, 3, 6, 7]].mean() - aperture[[0, 1, 4, 5]].mean() > 0.8  # cm


def test_no_face_and_empty_input():
    track = track_faces([np.full((H, W, 3), 128, np.uint8)] * 4)
    assert track.stats.rate == 0.0 and track.stats.n_faces == 0 and track.gaps == ((0, 4),)
    vf = F.visual_features(track)
    assert not vf.valid.any() and (vf.lip == 0).all() and vf.lip.shape == (4, F.LIP_DIM)
    empty = track_faces([])
    assert empty.n_frames == 0 and empty.points.shape == (0, topo.N_POINTS, 3)


def test_bad_frames_raise_input_error():
    good = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(InputError, match=r"talk\.mp4: frame 1 has dtype float32"):
        track_faces([good, good.astype(np.float32)], source="talk.mp4")
    with pytest.raises(InputError, match=r"talk\.mp4: frame 0 is \(240, 320\)"):
        track_faces([good[..., 0]], source="talk.mp4")
    with pytest.raises(
        InputError, match=r"talk\.mp4: frame 1 is 160x120, earlier frames were 320x240"
    ):
        track_faces([good, good[::2, ::2]], source="talk.mp4")


def test_fill_gaps_pure():
    pts = np.zeros((9, topo.N_POINTS, 3), np.float32)
    pts[:, :, 0] = np.arange(9)[:, None]
    present = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1], bool)
    filled, interp, gaps = fill_gaps(pts, present, max_gap=2)
    np.testing.assert_allclose(filled[2:4, 0, 0], [2.0, 3.0])  # linear between 1 and 4
    assert np.isnan(filled[5:8]).all() and gaps == ((5, 8),)
    assert interp.tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    track = LandmarkTrack.from_points(np.where(present[:, None, None], pts, np.nan), max_gap=3)
    assert track.gaps == () and track.interpolated.sum() == 5 and track.valid.all()


def test_missing_mediapipe_is_a_dependency_error(monkeypatch):
    import sys

    from dubcli.errors import DependencyError

    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)  # import -> ImportError
    with pytest.raises(DependencyError, match="pip install mediapipe==0.10.21"):
        track_faces([np.zeros((H, W, 3), np.uint8)])
    assert track_faces([]).n_frames == 0  # no frame, no graph, no import
    from dubcli.vision.landmarks import preload

    with pytest.raises(DependencyError, match="pip install mediapipe==0.10.21"):
        preload()


def test_facemesh_import_leaves_the_drawing_helpers_until_used():
    """preload() imports FaceMesh without MediaPipe's drawing helpers (matplotlib, cv2: 0.7 s);
    they still work, loaded on first use (a fresh interpreter: this one has them already)."""
    import subprocess
    import sys

    code = """
import sys
from dubcli.vision.landmarks import preload
preload()
before = [m for m in ("matplotlib.pyplot", "cv2") if m in sys.modules]
import mediapipe as mp
spec = mp.solutions.drawing_utils.DrawingSpec(thickness=2)
style = mp.solutions.drawing_styles.get_default_face_mesh_contours_style()
from mediapipe.python.solutions.drawing_utils import draw_landmarks
print(before, spec.thickness, len(style) > 0, callable(draw_landmarks), "matplotlib.pyplot" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "[] 2 True True True", out.stdout + out.stderr


def test_one_face_narrows_the_graph_without_changing_the_landmarks(photo, monkeypatch):
    """One face: after PROBE_FRAMES the wide graph is swapped for a one-face graph (no detector
    per frame), a face lost (a cut to no face) swaps back, two faces never narrow; the tracked
    landmarks equal those of the wide graph alone."""
    import dubcli.vision.landmarks as L

    built = []
    real = L._face_mesh
    monkeypatch.setattr(L, "_face_mesh", lambda k: built.append(k) or real(k))
    transforms = moving_clip(16)
    frames = [warp(photo, a) for a in transforms]
    narrowed = track_faces(frames)
    assert built == [2, 1]
    monkeypatch.setattr(L, "PROBE_FRAMES", 10**6)  # the wide graph throughout
    wide = track_faces(frames)
    # The one-face graph starts from a detection (as a new cue does), then seeds each frame from
    # the last: measured 0 px before the swap, 0.67 px median (2.0 max) on the swap frame,
    # < 0.1 px median six frames on; lip features 0.13 max apart (the tests above allow 0.6).
    dist = np.linalg.norm(narrowed.points[..., :2] - wide.points[..., :2], axis=-1)
    assert dist[:3].max() == 0 and np.median(dist, axis=1).max() < 1.5
    assert np.median(dist[10:]) < 0.2
    assert np.abs(F.lip_features(narrowed) - F.lip_features(wide)).max() < 0.3
    monkeypatch.setattr(L, "PROBE_FRAMES", 3)
    built.clear()
    blank = np.full((H, W, 3), 128, np.uint8)
    cut = track_faces(frames[:6] + [blank] * 2 + frames[6:12])
    # a one-call tracker closes the graph it leaves: a new wide graph at the cut, then a new
    # one-face graph; a kept tracker moves between the two it has
    assert built == [2, 1, 2, 1] and cut.present[:6].all() and cut.present[-3:].all()
    built.clear()
    with L.FaceTracker() as kept:
        again = kept.track(frames[:6] + [blank] * 2 + frames[6:12])
    assert built == [2, 1] and again.present[:6].all() and again.present[-3:].all()
    built.clear()
    track_faces(two_faces(photo, 0.75, 1.1))
    assert built == [2]


def still_clip(photo, dx, n=12):
    """n frames of the face at a fixed offset dx (pixels) from the centre, drifting 0.5 px a frame."""
    return [warp(photo, similarity(0, 1.0, dx + 0.5 * k, 0)) for k in range(n)]


def test_a_kept_tracker_follows_the_face_from_call_to_call(photo, monkeypatch):
    """FaceTracker keeps its graphs between calls (cues): built once, and each call's track
    matches what a fresh tracker gives it within FaceMesh's jitter (the graph seeds the call's
    first frame from the last call's landmarks instead of a detection)."""
    import dubcli.vision.landmarks as L

    built = []
    real = L._face_mesh
    monkeypatch.setattr(L, "_face_mesh", lambda k: built.append(k) or real(k))
    first, second = still_clip(photo, -60), still_clip(photo, -50)
    fresh = track_faces(second)
    built.clear()
    with L.FaceTracker() as tracker:
        tracker.track(first)
        kept = tracker.track(second)
        assert built == [2, 1]  # no graph built for the second call
    assert kept.present.all()
    dist = np.linalg.norm(kept.points[..., :2] - fresh.points[..., :2], axis=-1)
    # measured: 0.4-0.7 px median on the first frames, < 0.3 px from frame 5 on (eyes 61 px)
    assert np.median(dist, axis=1).max() < 1.5 and np.median(dist[5:]) < 0.5
    assert np.abs(F.lip_features(kept) - F.lip_features(fresh)).max() < 0.3


@pytest.mark.parametrize("jump", [45, 90])
def test_a_kept_tracker_restarts_where_the_face_jumped(photo, jump):
    """Between two calls the face moved by most of an eye distance or more (a cut, a cue much
    later): the kept graphs would seed a crop off the face, so they restart from a detection,
    and the second call's track is exactly a fresh tracker's (measured: without the restart a
    45 px jump lost the call's first frame)."""
    from dubcli.vision.landmarks import FaceTracker

    first, second = still_clip(photo, -60), still_clip(photo, -60 + jump)
    fresh = track_faces(second)
    with FaceTracker() as tracker:
        tracker.track(first)
        kept = tracker.track(second)
    assert kept.present.all()
    np.testing.assert_array_equal(kept.points, fresh.points)


def test_landmark_array_reads_the_wire_format_and_falls_back():
    """The fast path (serialized bytes) gives exactly the attribute values, zeros and negative
    values included; a list with another layout (visibility set, a coordinate missing) is read
    attribute by attribute."""
    from mediapipe.framework.formats import landmark_pb2

    from dubcli.vision.landmarks import landmark_array

    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(478, 3)).astype(np.float32)
    xyz[5] = 0.0
    lst = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in xyz:
        lst.landmark.add(x=x, y=y, z=z)
    assert np.array_equal(landmark_array(lst), xyz)
    lst.landmark[7].visibility = 0.9  # 5 bytes more on one landmark
    assert np.array_equal(landmark_array(lst), xyz)
    partial = landmark_pb2.NormalizedLandmarkList()
    partial.landmark.add(x=0.5, y=0.25)
    assert np.array_equal(landmark_array(partial), [[0.5, 0.25, 0.0]])
    assert landmark_array(landmark_pb2.NormalizedLandmarkList()).shape == (0, 3)
