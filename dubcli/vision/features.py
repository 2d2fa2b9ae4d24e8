"""Lip and face features from landmark tracks: the visual inputs of the model (paper 3.4, DESIGN 5).

Dimensions: nv video frames (25 fps), 478 landmarks, K rigid anchors.
The paper feeds lip features (nv, Dl) to the Synchronizer and face features (nv, Df) to FaPro;
our embedded extractor computes them from landmark geometry instead of crop CNNs:

1. Pose normalization: each frame's rigid anchors (topology.RIGID_ANCHORS: eye corners, nose,
   forehead, temples) are fitted to MediaPipe's canonical frontal face with a similarity
   Procrustes fit (Umeyama 1991). Applying the inverse fit to all 478 points removes in-plane
   translation, scale and rotation AND yaw/pitch (as far as the landmarks' z allows), leaving the
   face in canonical centimetres: x to the image's right, y down, z away from the camera.
   Lengths are therefore order 1 (mouth ~5 cm wide, opening 0..3 cm) for any face size.
2. Static features per frame, in that frame (LIP_NAMES / FACE_NAMES list them in order), then
   their first differences ("d_" names; 0 on the first frame and next to invalid frames).
3. Frames without landmarks (NaN rows: no face, a long gap) get the nearest valid frame's
   features (forward fill, then backward fill for a leading gap; zeros if the clip has no face);
   `VisualFeatures.valid` says which frames are real. The tracker's short-gap interpolation
   counts as valid.

Head pose angles are radians: yaw > 0 turns the nose to the image's left, pitch > 0 tilts the
chin down, roll > 0 turns the face clockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubcli.errors import InputError
from dubcli.vision import topology as topo

FEATURES_VERSION = "lmk-v1"  # bump whenever a feature's definition or order changes

# Inner-lip pairs (upper, lower) whose vertical distance is the aperture, right to left.
_APERTURE_PAIRS = ((80, 88), (82, 87), (13, 14), (312, 317), (310, 318))
# A compact contour subset (x, y relative to the mouth centre): 8 outer + 8 inner points.
_OUTER_SUBSET = (61, 40, 0, 270, 291, 321, 17, 91)
_INNER_SUBSET = (78, 81, 13, 311, 308, 402, 14, 178)
# Canonical-model values subtracted so the features sit near 0 for a neutral face (cm).
_CANON_UPPER_LIP_Z, _CANON_LOWER_LIP_Z = -5.9795, -5.5354  # z of landmarks 0 and 17
_CANON_JAW = 7.3144  # chin (152) below the nose base (2)

_LIP_STATIC = (
    *[f"aperture_{i}" for i in range(len(_APERTURE_PAIRS))],  # inner-lip opening, cm
    "outer_height",  # outer lips 0 -> 17, cm
    "inner_width",  # inner corners 78 -> 308, cm
    "outer_width",  # outer corners 61 -> 291, cm
    "corner_right_x", "corner_right_y", "corner_left_x", "corner_left_y",  # vs mouth centre
    "inner_roundness",  # inner opening / inner width (rounded lips: high)
    "outer_roundness",  # outer height / outer width
    "protrusion_upper", "protrusion_lower",  # lips towards the camera, cm vs canonical
    "mouth_x", "mouth_y",  # mouth centre relative to the nose base (jaw drop moves it down)
    *[f"outer_{i}_{a}" for i in _OUTER_SUBSET for a in "xy"],
    *[f"inner_{i}_{a}" for i in _INNER_SUBSET for a in "xy"],
)  # fmt: skip
_FACE_STATIC = (
    "brow_raise_right", "brow_raise_left",  # brow above the upper lid, cm
    "eye_open_right", "eye_open_left",  # lid distance / eye width (~0.3 open, ~0.05 blink)
    "gaze_right_x", "gaze_right_y", "gaze_left_x", "gaze_left_y",  # iris vs eye centre / width
    "smile",  # mouth centre below the mean corner height, cm (> 0: corners up)
    "cheek_raise_right", "cheek_raise_left",  # cheek apple height vs the lower lid, cm
    "jaw_open",  # chin below the nose base, cm vs canonical
    "yaw", "pitch", "roll",  # head pose, radians
)  # fmt: skip
LIP_NAMES: tuple[str, ...] = _LIP_STATIC + tuple("d_" + n for n in _LIP_STATIC)
FACE_NAMES: tuple[str, ...] = _FACE_STATIC + tuple("d_" + n for n in _FACE_STATIC)
LIP_DIM = len(LIP_NAMES)  # 100: 50 static + 50 deltas
FACE_DIM = len(FACE_NAMES)  # 30: 15 static + 15 deltas


@dataclass(frozen=True)
class Alignment:
    """Per-frame similarity fit of the canonical face onto the landmarks: p = s R c + t."""

    points: np.ndarray  # (nv, 478, 3) landmarks in canonical cm, NaN on invalid frames
    rotation: np.ndarray  # (nv, 3, 3)
    scale: np.ndarray  # (nv,) pixels per canonical cm
    translation: np.ndarray  # (nv, 3)
    valid: np.ndarray  # (nv,) bool


@dataclass(frozen=True)
class VisualFeatures:
    lip: np.ndarray  # (nv, LIP_DIM) float32
    face: np.ndarray  # (nv, FACE_DIM) float32
    valid: np.ndarray  # (nv,) bool: frames computed from landmarks (not filled)
    version: str = FEATURES_VERSION


def check_features_version(version: str, source: str | None = None) -> None:
    """Raise InputError when stored features were made by another extractor version."""
    if version != FEATURES_VERSION:
        where = f"{source}: " if source else ""
        raise InputError(
            f"{where}features are {version} but this model needs {FEATURES_VERSION}: "
            "re-run dubcli prepare"
        )


def _as_points(track) -> np.ndarray:
    """A LandmarkTrack or a raw (nv, 478, 3) array -> float64 array."""
    points = np.asarray(getattr(track, "points", track), dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (topo.N_POINTS, 3):
        raise ValueError(f"landmarks must be (nv, {topo.N_POINTS}, 3), got {points.shape}")
    return points


def align_to_canonical(track) -> Alignment:
    """Umeyama similarity fit of the canonical anchors onto each frame's anchors (removes
    translation, scale and 3-D rotation), and all landmarks mapped back into canonical cm."""
    points = _as_points(track)
    nv = points.shape[0]
    template = np.array(list(topo.CANONICAL_ANCHORS.values()))  # (K, 3)
    anchors = points[:, list(topo.CANONICAL_ANCHORS)]  # (nv, K, 3)
    valid = np.isfinite(points).all(axis=(1, 2))
    rot = np.tile(np.eye(3), (nv, 1, 1))
    scale = np.ones(nv)
    trans = np.zeros((nv, 3))
    if valid.any():
        p = anchors[valid]
        mu_p, mu_t = p.mean(axis=1), template.mean(axis=0)
        pc, tc = p - mu_p[:, None], template - mu_t
        cov = np.einsum("nki,kj->nij", pc, tc) / len(template)
        u, d, vt = np.linalg.svd(cov)
        sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))  # no reflections
        fix = np.stack([np.ones_like(sign), np.ones_like(sign), sign], axis=-1)
        r = u @ (fix[:, :, None] * vt)
        s = (d * fix).sum(axis=-1) / (tc**2).sum(axis=-1).mean()
        rot[valid], scale[valid] = r, s
        trans[valid] = mu_p - s[:, None] * np.einsum("nij,j->ni", r, mu_t)
    valid &= scale > 1e-6  # a degenerate (collapsed) face
    canon = np.einsum("nji,nkj->nki", rot, points - trans[:, None]) / scale[:, None, None]
    canon[~valid] = np.nan
    return Alignment(canon, rot, scale, trans, valid)


def head_pose(rotation: np.ndarray) -> np.ndarray:
    """(nv, 3, 3) -> (nv, 3) yaw, pitch, roll in radians, for R = Rz(roll) Ry(yaw) Rx(pitch)."""
    yaw = np.arcsin(np.clip(-rotation[:, 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rotation[:, 2, 1], rotation[:, 2, 2])
    roll = np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return np.stack([yaw, pitch, roll], axis=-1)


def _lip_static(c: np.ndarray) -> np.ndarray:
    """(nv, 478, 3) canonical points -> (nv, 50) static lip features."""
    x, y, z = c[..., 0], c[..., 1], c[..., 2]
    ap = np.stack([y[:, lo] - y[:, up] for up, lo in _APERTURE_PAIRS], axis=-1)
    outer_h = y[:, topo.LOWER_LIP_BOTTOM] - y[:, topo.UPPER_LIP_TOP]
    inner_w = x[:, topo.INNER_CORNER_LEFT] - x[:, topo.INNER_CORNER_RIGHT]
    outer_w = x[:, topo.LIP_CORNER_LEFT] - x[:, topo.LIP_CORNER_RIGHT]
    centre = c[:, list(topo.OUTER_LIP_LOOP), :2].mean(axis=1)  # (nv, 2)
    corners = c[:, [topo.LIP_CORNER_RIGHT, topo.LIP_CORNER_LEFT], :2] - centre[:, None]
    mid_ap = y[:, topo.INNER_LOWER_MID] - y[:, topo.INNER_UPPER_MID]
    protr = np.stack(
        [
            _CANON_UPPER_LIP_Z - z[:, topo.UPPER_LIP_TOP],
            _CANON_LOWER_LIP_Z - z[:, topo.LOWER_LIP_BOTTOM],
        ],
        axis=-1,
    )
    mouth = centre - c[:, topo.SUBNASALE, :2]
    contour = c[:, list(_OUTER_SUBSET) + list(_INNER_SUBSET), :2] - centre[:, None]
    nv = c.shape[0]
    return np.concatenate(
        [
            ap,
            np.stack([outer_h, inner_w, outer_w], axis=-1),
            corners.reshape(nv, 4),
            np.stack([mid_ap / inner_w, outer_h / outer_w], axis=-1),
            protr,
            mouth,
            contour.reshape(nv, -1),
        ],
        axis=-1,
    )


def _face_static(c: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(nv, 478, 3) canonical points, (nv, 3, 3) rotations -> (nv, 15) static face features."""
    x, y = c[..., 0], c[..., 1]
    cols = []
    for brow, lid in ((topo.BROW_RIGHT_UPPER, topo.EYE_RIGHT_UPPER),
                      (topo.BROW_LEFT_UPPER, topo.EYE_LEFT_UPPER)):  # fmt: skip
        cols.append(y[:, list(lid)].mean(axis=1) - y[:, list(brow)].mean(axis=1))
    eyes = (
        (topo.EYE_RIGHT_PAIRS, topo.EYE_RIGHT_OUTER, topo.EYE_RIGHT_INNER, topo.IRIS_RIGHT_CENTER),
        (topo.EYE_LEFT_PAIRS, topo.EYE_LEFT_OUTER, topo.EYE_LEFT_INNER, topo.IRIS_LEFT_CENTER),
    )
    widths = [np.abs(x[:, a] - x[:, b]) for _, a, b, _ in eyes]
    for (pairs, _, _, _), w in zip(eyes, widths, strict=True):
        cols.append(np.mean([y[:, lo] - y[:, up] for up, lo in pairs], axis=0) / w)
    for (_, a, b, iris), w in zip(eyes, widths, strict=True):
        mid = (c[:, a, :2] + c[:, b, :2]) / 2
        cols.extend(((c[:, iris, :2] - mid) / w[:, None]).T)
    centre_y = y[:, list(topo.OUTER_LIP_LOOP)].mean(axis=1)
    cols.append(centre_y - (y[:, topo.LIP_CORNER_RIGHT] + y[:, topo.LIP_CORNER_LEFT]) / 2)
    for cheek, lid in ((topo.CHEEK_RIGHT, topo.EYE_RIGHT_LOWER),
                       (topo.CHEEK_LEFT, topo.EYE_LEFT_LOWER)):  # fmt: skip
        cols.append(y[:, list(lid)].mean(axis=1) - y[:, list(cheek)].mean(axis=1))
    cols.append(y[:, topo.CHIN] - y[:, topo.SUBNASALE] - _CANON_JAW)
    return np.concatenate([np.stack(cols, axis=-1), head_pose(rotation)], axis=-1)


def _fill_and_delta(static: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid frames from the nearest valid one, append first differences (0 where a
    frame or its predecessor is invalid, so a gap's edge is not a jump)."""
    static = np.where(valid[:, None], static, np.nan)
    valid = valid & np.isfinite(static).all(axis=1)
    nv = static.shape[0]
    if not valid.any():
        return np.zeros((nv, 2 * static.shape[1]), dtype=np.float32)
    idx = np.where(valid, np.arange(nv), -1)
    idx = np.maximum.accumulate(idx)  # forward fill: last valid index so far
    idx[idx < 0] = np.flatnonzero(valid)[0]  # leading gap: backward fill
    filled = static[idx]
    delta = np.zeros_like(filled)
    delta[1:] = filled[1:] - filled[:-1]
    delta[1:][~(valid[1:] & valid[:-1])] = 0.0
    return np.concatenate([filled, delta], axis=-1).astype(np.float32)


def visual_features(track) -> VisualFeatures:
    """LandmarkTrack or (nv, 478, 3) -> lip (nv, LIP_DIM), face (nv, FACE_DIM), valid (nv,)."""
    al = align_to_canonical(track)
    lip = _fill_and_delta(_lip_static(al.points), al.valid)
    face = _fill_and_delta(_face_static(al.points, al.rotation), al.valid)
    return VisualFeatures(lip=lip, face=face, valid=al.valid.copy())


def lip_features(track) -> np.ndarray:
    """(nv, LIP_DIM) float32 lip features (LIP_NAMES); see module doc for filling."""
    al = align_to_canonical(track)
    return _fill_and_delta(_lip_static(al.points), al.valid)


def face_features(track) -> np.ndarray:
    """(nv, FACE_DIM) float32 face features (FACE_NAMES); see module doc for filling."""
    al = align_to_canonical(track)
    return _fill_and_delta(_face_static(al.points, al.rotation), al.valid)


def mouth_aperture(track, *, fill: bool = True) -> np.ndarray:
    """(nv,) inner-lip opening at the midline (13 -> 14) in canonical cm, pose-normalized: the
    mouth signal of the landmark lip-sync metric. Invalid frames are filled like the features
    (fill=True) or NaN (fill=False)."""
    al = align_to_canonical(track)
    ap = al.points[:, topo.INNER_LOWER_MID, 1] - al.points[:, topo.INNER_UPPER_MID, 1]
    if not fill:
        return ap.astype(np.float32)
    return _fill_and_delta(ap[:, None], al.valid)[:, 0]
