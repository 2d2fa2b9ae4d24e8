"""Named landmark index sets of the 478-point MediaPipe FaceMesh topology (DESIGN 2, 6).

The landmark extractor (vision/landmarks.py) outputs this topology, the lip/face features
(vision/features.py) read it, and the synthetic talking-face renderer drives it, so the names
live here, in one place, with no dependency on mediapipe.

Conventions (the extractor's output, and what a renderer must produce):
- 478 points: 468 mesh points + 10 iris points (refine_landmarks=True): right iris 468..472,
  left iris 473..477 (centre first, then 4 ring points).
- "right"/"left" are the SUBJECT's sides: the right eye (landmark 33) appears on the image's
  left for a frontal face.
- Coordinates are image pixels: x right, y down, z depth in the same pixel scale as x, smaller
  z = closer to the camera (MediaPipe's convention; the nose tip has the smallest z).
- Contours are ordered point sequences: `*_UPPER` / `*_LOWER` run from the subject's right
  corner to the left corner; `*_LOOP` tuples are closed polygons (first point not repeated).

Index sets were read off mediapipe's `face_mesh_connections.py` and its canonical face model
(`canonical_face_model.obj`, Apache-2.0); the mirror pairs were checked on that model.
"""

from __future__ import annotations

N_POINTS = 478  # FaceMesh with refine_landmarks=True
N_MESH = 468  # without the iris points

# --- lips -------------------------------------------------------------------------------------
LIP_CORNER_RIGHT = 61  # outer contour corners
LIP_CORNER_LEFT = 291
INNER_CORNER_RIGHT = 78  # inner contour corners
INNER_CORNER_LEFT = 308
UPPER_LIP_TOP = 0  # outer upper lip, midline (philtrum edge)
LOWER_LIP_BOTTOM = 17  # outer lower lip, midline
INNER_UPPER_MID = 13  # inner contour, midline: the mouth opening is 13 -> 14
INNER_LOWER_MID = 14

OUTER_LIP_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_LIP_LOOP = OUTER_LIP_UPPER + tuple(reversed(OUTER_LIP_LOWER[1:-1]))
INNER_LIP_LOOP = INNER_LIP_UPPER + tuple(reversed(INNER_LIP_LOWER[1:-1]))
# Vertically facing pairs (upper, lower) on the inner contour, right to left: the aperture.
INNER_LIP_PAIRS = tuple(zip(INNER_LIP_UPPER[1:-1], INNER_LIP_LOWER[1:-1], strict=True))
# Every lip point (the region a renderer moves for visemes).
LIPS = tuple(sorted(set(OUTER_LIP_LOOP) | set(INNER_LIP_LOOP)))

# --- eyes and irises --------------------------------------------------------------------------
EYE_RIGHT_OUTER, EYE_RIGHT_INNER = 33, 133  # corners
EYE_LEFT_OUTER, EYE_LEFT_INNER = 263, 362
EYE_RIGHT_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)  # upper lid, outer -> inner
EYE_RIGHT_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_LEFT_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
EYE_LEFT_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
EYE_RIGHT_LOOP = EYE_RIGHT_UPPER + tuple(reversed(EYE_RIGHT_LOWER[1:-1]))
EYE_LEFT_LOOP = EYE_LEFT_UPPER + tuple(reversed(EYE_LEFT_LOWER[1:-1]))
# Lid pairs (upper, lower) across the middle of each eye: openness and blinks.
EYE_RIGHT_PAIRS = ((160, 144), (159, 145), (158, 153))
EYE_LEFT_PAIRS = ((387, 373), (386, 374), (385, 380))
IRIS_RIGHT_CENTER, IRIS_LEFT_CENTER = 468, 473
IRIS_RIGHT = (468, 469, 470, 471, 472)
IRIS_LEFT = (473, 474, 475, 476, 477)

# --- brows ------------------------------------------------------------------------------------
BROW_RIGHT_UPPER = (70, 63, 105, 66, 107)  # outer -> inner
BROW_RIGHT_LOWER = (46, 53, 52, 65, 55)
BROW_LEFT_UPPER = (300, 293, 334, 296, 336)
BROW_LEFT_LOWER = (276, 283, 282, 295, 285)
BROW_RIGHT = BROW_RIGHT_UPPER + BROW_RIGHT_LOWER
BROW_LEFT = BROW_LEFT_UPPER + BROW_LEFT_LOWER

# --- nose -------------------------------------------------------------------------------------
NOSE_TIP = 4
SUBNASALE = 2  # base of the nose, above the philtrum
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)  # top (between the eyes) -> tip
NOSE_COLUMN = (4, 1, 19, 94, 2)  # tip -> base
NOSTRILS = (98, 97, 2, 326, 327)  # right ala -> left ala along the base
NOSE_RIGHT_ALA = (64, 48, 115, 220, 45)
NOSE_LEFT_ALA = (294, 278, 344, 440, 275)

# --- cheeks, jaw, oval ------------------------------------------------------------------------
CHEEK_RIGHT = (50, 101, 118, 117, 123, 187, 205, 36)  # the cheek apple (rises with a smile)
CHEEK_LEFT = (280, 330, 347, 346, 352, 411, 425, 266)
CHIN = 152
FOREHEAD = 10  # top of the face oval, midline
# Closed face outline, clockwise on screen from the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
# The lower face outline, right jaw angle -> chin -> left jaw angle (moves when the jaw opens).
JAW_LINE = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)

# --- rigid anchors for head-pose alignment ----------------------------------------------------
# Points that barely move with speech or expression (eye corners, nose, forehead, temples,
# upper cheekbones): MediaPipe's own Procrustes basis (geometry_pipeline_metadata_landmarks)
# minus its jaw/lower-cheek points, which move when the mouth opens. Coordinates are the
# canonical face model's (centimetres), converted to the image convention above
# (x, -y, -z): a frontal, upright face at the origin, nose tip towards the camera.
CANONICAL_ANCHORS: dict[int, tuple[float, float, float]] = {
    4: (0.0000, 0.4632, -7.5866),
    6: (0.0000, -2.4733, -5.7886),
    10: (0.0000, -8.2618, -4.4815),
    33: (-4.4459, -2.6640, -3.1734),
    54: (-6.2793, -6.6154, -1.4259),
    67: (-3.5240, -8.0060, -3.7292),
    117: (-5.2587, -0.9458, -2.9743),
    119: (-3.3007, -0.8616, -3.8728),
    121: (-1.8207, -1.4680, -4.2241),
    127: (-7.7431, -2.3650, 2.0052),
    129: (-1.7858, 0.9783, -4.8505),
    133: (-1.8564, -2.5852, -3.7579),
    143: (-6.4076, -2.2360, -1.5608),
    198: (-1.2468, -0.2303, -5.6810),
    263: (4.4459, -2.6640, -3.1734),
    284: (6.2793, -6.6154, -1.4259),
    297: (3.5240, -8.0060, -3.7292),
    346: (5.2587, -0.9458, -2.9743),
    348: (3.3007, -0.8616, -3.8728),
    350: (1.8207, -1.4680, -4.2241),
    356: (7.7431, -2.3650, 2.0052),
    358: (1.7858, 0.9783, -4.8505),
    362: (1.8564, -2.5852, -3.7579),
    372: (6.4076, -2.2360, -1.5608),
    420: (1.2468, -0.2303, -5.6810),
}
RIGID_ANCHORS = tuple(CANONICAL_ANCHORS)
# Canonical outer-eye-corner distance (33 <-> 263), in the anchors' centimetres.
CANONICAL_EYE_DISTANCE = 8.8917

# Everything above by name, for renderers and plots.
REGIONS: dict[str, tuple[int, ...]] = {
    "outer_lip_upper": OUTER_LIP_UPPER,
    "outer_lip_lower": OUTER_LIP_LOWER,
    "inner_lip_upper": INNER_LIP_UPPER,
    "inner_lip_lower": INNER_LIP_LOWER,
    "lips": LIPS,
    "eye_right_upper": EYE_RIGHT_UPPER,
    "eye_right_lower": EYE_RIGHT_LOWER,
    "eye_left_upper": EYE_LEFT_UPPER,
    "eye_left_lower": EYE_LEFT_LOWER,
    "iris_right": IRIS_RIGHT,
    "iris_left": IRIS_LEFT,
    "brow_right": BROW_RIGHT,
    "brow_left": BROW_LEFT,
    "nose_bridge": NOSE_BRIDGE,
    "nose_column": NOSE_COLUMN,
    "nostrils": NOSTRILS,
    "cheek_right": CHEEK_RIGHT,
    "cheek_left": CHEEK_LEFT,
    "jaw_line": JAW_LINE,
    "face_oval": FACE_OVAL,
    "rigid_anchors": RIGID_ANCHORS,
}
