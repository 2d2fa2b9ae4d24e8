"""Lip/face features on landmark arrays with known geometry: a real face's 478 points (FaceMesh on
skimage's astronaut, once), then exact edits: lips opened by a known amount, 3-D similarity
transforms, missing frames."""

import numpy as np
import pytest
from skimage import data

from dubcli.errors import InputError
from dubcli.vision import features as F
from dubcli.vision import topology as topo
from dubcli.vision.landmarks import LandmarkTrack, track_faces

HALF_LIP, HALF_FACE = F.LIP_DIM // 2, F.FACE_DIM // 2


@pytest.fixture(scope="module")
def face():
    """(478, 3) float64 landmarks of a real face, pixels."""
    track = track_faces([data.astronaut()])
    assert track.present.all()
    return track.points[0].astype(np.float64)


def rotation(yaw=0.0, pitch=0.0, roll=0.0):
    """R = Rz(roll) Ry(yaw) Rx(pitch), the convention features.head_pose inverts."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def transform(points, r, scale, shift):
    centre = points.mean(axis=0)
    return (points - centre) @ r.T * scale + centre + np.asarray(shift)


def test_dimensions_and_names():
    assert F.FEATURES_VERSION == "lmk-v1"
    assert (F.LIP_DIM, F.FACE_DIM) == (100, 30)
    assert len(set(F.LIP_NAMES)) == F.LIP_DIM and len(set(F.FACE_NAMES)) == F.FACE_DIM
    assert F.LIP_NAMES[HALF_LIP] == "d_" + F.LIP_NAMES[0]


def test_real_face_features_are_order_one(face):
    vf = F.visual_features(face[None])
    assert vf.lip.shape == (1, F.LIP_DIM) and vf.face.shape == (1, F.FACE_DIM)
    assert vf.lip.dtype == np.float32 and vf.valid.all()
    assert np.abs(vf.lip).max() < 10 and np.abs(vf.face).max() < 10
    names = dict(zip(F.LIP_NAMES, vf.lip[0], strict=True))
    assert 4 < names["outer_width"] < 9  # cm: a human mouth, whatever the photo's resolution
    assert names["corner_right_x"] < 0 < names["corner_left_x"]
    f = dict(zip(F.FACE_NAMES, vf.face[0], strict=True))
    assert 0.15 < f["eye_open_right"] < 0.5 and 0.15 < f["eye_open_left"] < 0.5
    assert f["smile"] > 0.2  # the astronaut smiles: corners above the mouth centre
    assert abs(f["yaw"]) < 0.2 and abs(f["pitch"]) < 0.3 and abs(f["roll"]) < 0.2  # near frontal


def open_lips(points, amount_cm):
    """Move the lower lip (inner + outer contour, minus the corners) down by amount_cm, measured
    in the face's own frame, i.e. along its 'down' axis at its canonical scale."""
    al = F.align_to_canonical(points[None])
    down = al.rotation[0] @ np.array([0.0, 1.0, 0.0]) * al.scale[0]
    lower = set(topo.INNER_LIP_LOWER[1:-1]) | set(topo.OUTER_LIP_LOWER[1:-1])
    out = points.copy()
    out[sorted(lower)] += amount_cm * down
    return out


def test_aperture_grows_by_the_opening(face):
    amounts = np.array([0.0, 0.3, 0.6, 1.2, 2.0])
    frames = np.stack([open_lips(face, a) for a in amounts])
    lip = F.lip_features(frames)
    aperture = lip[:, [F.LIP_NAMES.index(f"aperture_{i}") for i in range(5)]]
    # each inner-lip distance grows by exactly the opening (cm), so proportionally to it
    np.testing.assert_allclose(aperture - aperture[0], np.repeat(amounts[:, None], 5, 1), atol=1e-4)
    mouth = F.mouth_aperture(frames)
    np.testing.assert_allclose(mouth - mouth[0], amounts, atol=1e-4)
    outer = lip[:, F.LIP_NAMES.index("outer_height")]
    np.testing.assert_allclose(outer - outer[0], amounts, atol=1e-4)
    # widths do not change, and the first differences are the per-frame steps
    np.testing.assert_allclose(
        lip[:, F.LIP_NAMES.index("outer_width")],
        lip[0, F.LIP_NAMES.index("outer_width")],
        atol=1e-4,
    )
    d = lip[:, F.LIP_NAMES.index("d_aperture_2")]
    np.testing.assert_allclose(d, np.diff(amounts, prepend=0.0), atol=1e-4)
    # the aperture does not depend on the photo's pixel scale (0.5x face gives the same cm)
    small = np.stack([transform(f, np.eye(3), 0.5, (10, 5, 0)) for f in frames])
    np.testing.assert_allclose(F.mouth_aperture(small), mouth, atol=1e-4)


@pytest.mark.parametrize(
    "yaw,pitch,roll,scale",
    [(0.4, 0.0, 0.0, 1.0), (0.0, -0.3, 0.0, 2.0), (0.0, 0.0, 0.5, 0.6), (0.35, 0.25, -0.3, 1.5)],
)
def test_head_rotation_leaves_lip_features_unchanged(face, yaw, pitch, roll, scale):
    opened = open_lips(face, 0.8)
    base = np.stack([face, opened])
    moved = np.stack([transform(p, rotation(yaw, pitch, roll), scale, (40, -25, 7)) for p in base])
    # raw pixels change a lot ...
    assert np.abs(moved[:, list(topo.LIPS)] - base[:, list(topo.LIPS)]).max() > 10
    # ... normalized lip features (static + deltas) do not
    np.testing.assert_allclose(F.lip_features(moved), F.lip_features(base), atol=1e-4)
    f0, f1 = F.face_features(base), F.face_features(moved)
    np.testing.assert_allclose(f1[:, :12], f0[:, :12], atol=1e-4)  # expression part


def test_head_pose_known_angles(face):
    # a frontal, upright version of the face: the canonical-aligned points themselves
    frontal = F.align_to_canonical(face[None]).points[0]
    for yaw, pitch, roll in [
        (0.3, 0.0, 0.0),
        (0.0, 0.2, 0.0),
        (0.0, 0.0, -0.4),
        (0.25, -0.15, 0.35),
    ]:
        posed = transform(frontal, rotation(yaw, pitch, roll), 30.0, (300, 200, 0))
        got = F.face_features(posed[None])[
            0, [F.FACE_NAMES.index(n) for n in ("yaw", "pitch", "roll")]
        ]
        np.testing.assert_allclose(got, [yaw, pitch, roll], atol=1e-4)
    # documented signs: yaw > 0 turns the nose to the image's left; pitch > 0 lowers the chin
    turned = transform(frontal, rotation(yaw=0.3), 30.0, (0, 0, 0))
    upright = transform(frontal, np.eye(3), 30.0, (0, 0, 0))
    nose_dx = (turned[topo.NOSE_TIP, 0] - turned[:, 0].mean()) - (
        upright[topo.NOSE_TIP, 0] - upright[:, 0].mean()
    )
    assert nose_dx < -10
    tilted = transform(frontal, rotation(pitch=0.3), 30.0, (0, 0, 0))
    assert tilted[topo.NOSE_TIP, 1] > upright[topo.NOSE_TIP, 1] + 10


def test_missing_frames_filled_and_flagged(face):
    amounts = [0.0, 0.5, 1.0, np.nan, np.nan, 1.5, 2.0]
    frames = np.stack([open_lips(face, 0.0 if np.isnan(a) else a) for a in amounts])
    frames[[3, 4]] = np.nan
    frames = np.concatenate([np.full((2, topo.N_POINTS, 3), np.nan), frames])  # leading gap
    vf = F.visual_features(frames)
    assert vf.valid.tolist() == [False, False, True, True, True, False, False, True, True]
    ap = vf.lip[:, F.LIP_NAMES.index("aperture_2")]
    base = ap[2]
    np.testing.assert_allclose(ap - base, [0, 0, 0, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0], atol=1e-4)
    d = vf.lip[:, F.LIP_NAMES.index("d_aperture_2")]
    # no jump at a gap's edge: deltas are 0 next to invalid frames
    np.testing.assert_allclose(d, [0, 0, 0, 0.5, 0.5, 0, 0, 0, 0.5], atol=1e-4)
    raw = F.mouth_aperture(frames, fill=False)
    assert np.isnan(raw[[0, 1, 5, 6]]).all() and np.isfinite(raw[[2, 3, 4, 7, 8]]).all()
    # a LandmarkTrack works the same as its array
    track = LandmarkTrack.from_points(frames, max_gap=0)
    np.testing.assert_allclose(F.lip_features(track), vf.lip, atol=1e-4)  # float32 points


def test_bad_shapes_and_version():
    with pytest.raises(ValueError, match="478"):
        F.lip_features(np.zeros((3, 68, 2)))
    F.check_features_version("lmk-v1")
    with pytest.raises(
        InputError,
        match=r"^feats/a\.npz: features are lmk-v0 but this model needs lmk-v1: re-run dubcli prepare$",
    ):
        F.check_features_version("lmk-v0", source="feats/a.npz")
