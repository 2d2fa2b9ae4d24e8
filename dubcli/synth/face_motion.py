"""Synthetic talking-face motion: 478-point landmark trajectories driven by a phone timeline
(DESIGN 6, SynthDub faces). The renderer (synth/render.py) warps a photo by them; training
reads their lip/face features directly (vision/features.py), so every number here is known.

Dimensions: nv video frames (25 fps, frame k shows time k / fps), np phones, K rig parameters
(PARAMS), 478 landmarks (vision/topology.py conventions: subject's left/right, x right, y down,
smaller z = closer to the camera).

Geometry: a linear blend-shape rig in the template face's canonical frame
(features.align_to_canonical, centimetres):  c(t) = C0 + sum_k p_k(t) B_k,  mapped back to
pixels by the template's own similarity fit, then moved by a rigid head motion. The fields B_k
fall off smoothly so lips, jaw, chin and cheeks move together; they are zero on the rigid
anchors, so the features re-align exactly. `close` (always 1) shuts the photo's lips; after it
the midline aperture (landmarks 13 -> 14) is exactly jaw + lip_up + lip_low.

Articulation: a target per phone (VISEMES), blended with the dominance functions of Cohen &
Massaro (1993), D(t) = a exp(-(|t - c| / s)^1.5) with a wider reach before the centre than
after, centres `anticipation` (40-80 ms) ahead of the sound. Bilabials and labiodentals then
cap the aperture over their hold, which is long enough that a closure always shows on a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dubcli.errors import InputError
from dubcli.text.phonemes import SYMBOL_TO_ID, strip_stress
from dubcli.timing import VIDEO_FPS
from dubcli.vision import topology as topo

PARAMS = ("close", "jaw", "lip_up", "lip_low", "width", "protrusion", "smile", "brow",
          "lid_right", "lid_left")  # fmt: skip
UP_SHARE = 0.3  # the upper lip's share of a lip-only opening (the lower lip rides the jaw)


@dataclass(frozen=True)
class Viseme:
    aperture: float  # inner-lip opening at the midline, cm (0 = lips together)
    jaw: float  # chin drop, cm
    width: float  # relative mouth-width change (+ spread, - rounded)
    protrusion: float  # lips towards the camera, cm
    dom_open: float  # dominance of aperture/jaw (how firmly the phone holds them)
    dom_shape: float  # dominance of width/protrusion (low: inherits the neighbours' rounding)
    closure: float | None = None  # aperture cap over the phone's hold (the lips must touch)


V = Viseme
_BILABIAL, _LABIODENT = V(0.0, 0.12, 0.0, 0.05, 1.0, 0.1, 0.0), V(0.15, 0.2, 0, -0.05, 1, 0.3, 0.15)
_DENTAL, _ALVEOLAR = V(0.35, 0.3, 0.03, 0.0, 0.7, 0.2), V(0.28, 0.25, 0.04, 0.0, 0.4, 0.1)
_POSTALV, _VELAR = V(0.3, 0.2, -0.18, 0.4, 0.8, 0.9), V(0.35, 0.35, 0.0, 0.0, 0.3, 0.1)
_SIBILANT = V(0.2, 0.18, 0.05, 0.0, 0.5, 0.1)  # teeth close for S Z
VISEMES: dict[str, Viseme] = {  # ARPAbet without stress -> target, canonical cm
    "P": _BILABIAL, "B": _BILABIAL, "M": _BILABIAL, "F": _LABIODENT, "V": _LABIODENT,
    "TH": _DENTAL, "DH": _DENTAL, "T": _ALVEOLAR, "D": _ALVEOLAR, "N": _ALVEOLAR, "L": _ALVEOLAR,
    "S": _SIBILANT, "Z": _SIBILANT, "SH": _POSTALV, "ZH": _POSTALV, "CH": _POSTALV, "JH": _POSTALV,
    "K": _VELAR, "G": _VELAR, "NG": _VELAR, "HH": V(0.6, 0.5, 0.0, 0.0, 0.05, 0.05),
    "Y": V(0.25, 0.2, 0.12, 0.0, 0.5, 0.5), "W": V(0.2, 0.15, -0.35, 0.5, 0.8, 1.0),
    "R": V(0.35, 0.25, -0.12, 0.2, 0.5, 0.6),  # slightly rounded
    "UW": V(0.4, 0.35, -0.3, 0.45, 0.8, 0.9), "UH": V(0.65, 0.5, -0.2, 0.3, 0.8, 0.8),
    "OW": V(1.0, 0.8, -0.22, 0.35, 0.8, 0.9), "AO": V(1.3, 1.05, -0.15, 0.25, 0.8, 0.8),
    "OY": V(1.15, 0.95, -0.15, 0.25, 0.8, 0.8), "AA": V(1.7, 1.35, 0.02, 0.0, 0.8, 0.6),
    "AE": V(1.45, 1.15, 0.08, 0.0, 0.8, 0.6), "AH": V(1.1, 0.9, 0.0, 0.0, 0.8, 0.5),
    "AW": V(1.5, 1.2, -0.02, 0.0, 0.8, 0.6), "AY": V(1.55, 1.25, 0.04, 0.0, 0.8, 0.6),
    "EH": V(0.95, 0.75, 0.08, 0.0, 0.8, 0.6), "EY": V(0.75, 0.6, 0.1, 0.0, 0.8, 0.6),
    "IH": V(0.6, 0.45, 0.1, 0.0, 0.8, 0.6), "IY": V(0.4, 0.3, 0.15, 0.0, 0.8, 0.7),
    "ER": V(0.6, 0.45, -0.12, 0.2, 0.8, 0.7),
    "<sil>": V(0.0, 0.0, 0.0, 0.0, 0.6, 0.3), "<unk>": V(0.4, 0.3, 0.0, 0.0, 0.3, 0.2),
}  # fmt: skip
DIPHTHONG_END = {"AW": "UH", "AY": "IH", "OY": "IY", "EY": "IY", "OW": "UH"}  # at 75% (start 30%)
_STRESS_GAIN = {"0": 0.7, "1": 1.0, "2": 0.85}  # unstressed vowels open less
_EMPHASIS = {"0": 0.4, "1": 1.0, "2": 0.7}  # vowel weight in the head-nod / brow-beat envelope


@dataclass(frozen=True)
class ExpressionStyle:
    brow_raise: float = 0.0  # cm the brows sit above the photo's (< 0: lowered)
    smile: float = 0.0  # cm the mouth corners rise (< 0: drop)
    eye_openness: float = 1.0  # factor on the lid opening (1 = the photo's)
    head_motion: float = 1.0  # factor on head-motion amplitude
    arousal: float = 0.0  # -1 (low: sad) .. +1 (high: excited); the fields above derive from it
    articulation: float = 1.0  # factor on vowel jaw/lip opening (louder speech opens wider)


def expression_from_prosody(
    pitch_level: float = 0.0, pitch_range: float = 1.0, rate: float = 1.0, energy: float = 0.0
) -> ExpressionStyle:
    """Expression coupled to a prosody style (synth/prosody.py units: semitones, factor, factor,
    dB). Inputs are scaled so +1 is the 'excited' centre's offset from neutral (+3 st, x1.5
    range, x1.15 rate, +4 dB): e energy, l level, g log range, r log rate. Then
      arousal      = tanh(0.4 e + 0.3 l + 0.15 g + 0.15 r)
      brow_raise   = 0.25 tanh(0.5 l + 0.5 g) cm             (brows rise with pitch level/range)
      smile        = 0.3 arousal if arousal > 0 else 0.1 arousal cm  (positive high arousal)
      eye_openness = 1 + 0.15 arousal
      head_motion  = clip(exp(0.3 e + 0.3 g), 0.4, 2.5)        (energy and pitch range)
      articulation = clip(exp(0.03 energy_dB), 0.75, 1.3)"""
    e, lv = energy / 4.0, pitch_level / 3.0
    g, r = np.log(max(pitch_range, 1e-3)) / np.log(1.5), np.log(max(rate, 1e-3)) / np.log(1.15)
    arousal = float(np.tanh(0.4 * e + 0.3 * lv + 0.15 * g + 0.15 * r))
    return ExpressionStyle(
        brow_raise=float(0.25 * np.tanh(0.5 * lv + 0.5 * g)),
        smile=0.3 * arousal if arousal > 0 else 0.1 * arousal,
        eye_openness=1.0 + 0.15 * arousal,
        head_motion=float(np.clip(np.exp(0.3 * e + 0.3 * g), 0.4, 2.5)),
        arousal=arousal,
        articulation=float(np.clip(np.exp(0.03 * energy), 0.75, 1.3)),
    )


@dataclass(frozen=True)
class MotionTruth:
    """What drove each frame: (nv,) arrays unless noted; cm in the canonical face frame."""

    aperture: np.ndarray  # inner-lip midline opening (= features.mouth_aperture of the points)
    jaw: np.ndarray  # chin drop
    width: np.ndarray  # relative mouth-width change (+ spread, - rounded)
    protrusion: np.ndarray  # lips towards the camera
    smile: np.ndarray  # corner raise
    brow: np.ndarray  # brow raise
    eye_open: np.ndarray  # (nv, 2) right, left: lid opening as a factor of the photo's
    blink: np.ndarray  # bool: a blink is under way
    head: np.ndarray  # (nv, 3) yaw, pitch, roll radians added to the template's pose
    shift: np.ndarray  # (nv, 2) head translation, pixels
    phone: np.ndarray  # int: the phone sounding at the frame's time (-1: outside the timeline)


@dataclass(frozen=True)
class FaceTrajectory:
    points: np.ndarray  # (nv, 478, 3) float32 pixels in the template's image
    params: np.ndarray  # (nv, K) rig parameters (PARAMS)
    truth: MotionTruth
    fps: float = VIDEO_FPS


def _phones(phones: Sequence) -> list[tuple[str, float, float]]:
    """PhoneSpan-likes or (symbol, start, end) tuples -> checked tuples; <wb>/<pad> -> <sil>."""
    out: list[tuple[str, float, float]] = []
    for i, p in enumerate(phones):
        sym, start, end = (p.symbol, p.start, p.end) if hasattr(p, "symbol") else p
        base = strip_stress(sym)
        if sym not in SYMBOL_TO_ID or not (base in VISEMES or sym in ("<wb>", "<pad>")):
            raise InputError(f"phone timeline: phone {i} {sym!r} is not in the phoneme vocabulary")
        if not (np.isfinite(start) and np.isfinite(end)) or end < start or start < 0:
            raise InputError(f"phone timeline: phone {i} {sym!r} has times {start}..{end}")
        if out and start < out[-1][2] - 1e-6:
            raise InputError(f"phone timeline: phone {i} {sym!r} starts before phone {i - 1} ends")
        out.append((sym if base in VISEMES else "<sil>", float(start), float(end)))
    if not out:
        raise InputError("phone timeline: no phones")
    return out


def articulation(phones: Sequence, n_frames: int, *, fps: float = VIDEO_FPS,
                 anticipation: float = 0.06, jitter: float = 0.0, gain: float = 1.0,
                 rng: np.random.Generator | None = None) -> np.ndarray:  # fmt: skip
    """(nv, 4) aperture, jaw, width, protrusion per frame: dominance-blended viseme targets
    (Cohen & Massaro 1993) with closure caps. jitter: std (s) of a per-phone timing shift."""
    rng = rng or np.random.default_rng(0)
    t = np.arange(n_frames) / fps
    centres, targets, dom, reach, caps = [], [], [], [], []
    for sym, start, end in _phones(phones):
        base, dur = strip_stress(sym), end - start
        lead = anticipation + (
            jitter and float(np.clip(rng.normal(0, jitter), -2 * jitter, 2 * jitter))
        )
        glide = [(base, 0.3), (DIPHTHONG_END[base], 0.75)] if base in DIPHTHONG_END else []
        for name, frac in glide or [(base, 0.5)]:
            v, d = VISEMES[name], dur * (0.5 if glide else 1.0)
            g = gain * _STRESS_GAIN.get(sym[-1], 1.0) if v.closure is None else 1.0
            centres.append(start + frac * dur - lead)
            targets.append((v.aperture * g, v.jaw * g, v.width, v.protrusion))
            dom.append((v.dom_open, v.dom_shape))
            reach.append((0.6 * d + 0.04, 0.5 * d + 0.02))  # anticipatory reach is the longer
        if (cap := VISEMES[base].closure) is not None:  # held from before the sound to the release
            caps.append((start - lead, end - 0.25 * dur, cap))
    tau = t[:, None] - np.asarray(centres)[None]  # (nv, np)
    reach, dom, targets = np.asarray(reach), np.asarray(dom), np.asarray(targets)
    shape = np.exp(-((np.abs(tau) / np.where(tau < 0, reach[:, 0], reach[:, 1])) ** 1.5))
    out = np.empty((n_frames, 4))
    for cols, d in (((0, 1), dom[:, 0]), ((2, 3), dom[:, 1])):
        w = shape * d[None] + 1e-9  # never 0/0 far from every phone
        out[:, cols] = (w @ targets[:, cols]) / w.sum(axis=1, keepdims=True)
    for start, end, cap in caps:
        m = _window(t, start, end, ramp=0.03)
        out[:, 0] -= m * np.maximum(out[:, 0] - cap, 0.0)
        out[:, 1] -= m * np.maximum(out[:, 1] - 0.3, 0.0)  # a closure keeps the jaw fairly high
    return out


def _window(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """1 on [start, end], raised-cosine ramps of `ramp` s outside it, 0 beyond."""
    d = np.clip(np.maximum(start - t, t - end) / ramp, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * d)


def _smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float, std: float) -> np.ndarray:
    """(n,) Gaussian-filtered white noise with marginal std `std`: a slow random drift (scaled
    by the kernel's norm, not by the sample std, so short clips are not blown up)."""
    from scipy.ndimage import gaussian_filter1d

    pad = int(4 * sigma_frames) + 1
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    norm = np.sqrt((gaussian_filter1d(impulse, sigma_frames, mode="constant") ** 2).sum())
    x = gaussian_filter1d(rng.normal(size=n + 2 * pad), sigma_frames, mode="constant")
    return x[pad : pad + n] / norm * std


def _blinks(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """(nv,) lid closure 0..1: a blink every 3-5 s lasting 100-150 ms (close 35%, hold 20%,
    open 45%), so a frame always catches the lids nearly shut."""
    t, closure = np.arange(n) / fps, np.zeros(n)
    at = rng.uniform(0.3, 3.0)
    while at < n / fps:
        dur = rng.uniform(0.10, 0.15)
        x = (t - at) / dur
        ramp = np.minimum(np.clip(x / 0.35, 0, 1), np.clip((1 - x) / 0.45, 0, 1))
        closure = np.maximum(closure, np.sin(0.5 * np.pi * ramp) ** 2)
        at += dur + rng.uniform(3.0, 5.0)
    return closure


def _rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(nv, 3, 3) R = Rz(roll) Ry(yaw) Rx(pitch), the convention features.head_pose inverts."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("ZYX", np.stack([roll, yaw, pitch], axis=1)).as_matrix()


# --- the rig ---------------------------------------------------------------------------------


def _interp(x: np.ndarray, xs: np.ndarray, ys: np.ndarray, outside: float | None = None):
    order = np.argsort(xs)
    return np.interp(x, xs[order], ys[order], left=outside, right=outside)


def _near(c: np.ndarray, idx, sigma: float) -> np.ndarray:
    """(478,) Gaussian falloff of the xy distance to the nearest of the points `idx`."""
    d = np.linalg.norm(c[:, None, :2] - c[None, list(idx), :2], axis=-1).min(axis=1)
    return np.exp(-((d / sigma) ** 2))


def _smoothstep(x, a, b):
    s = np.clip((x - a) / (b - a), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _rig_basis(c: np.ndarray) -> np.ndarray:
    """(K, 478, 3) displacement fields in canonical cm per unit of each parameter (PARAMS)."""
    x, y = c[:, 0], c[:, 1]
    b = np.zeros((len(PARAMS), len(c), 3))
    iu, il = np.array(topo.INNER_LIP_UPPER), np.array(topo.INNER_LIP_LOWER)
    ou, ol = np.array(topo.OUTER_LIP_UPPER), np.array(topo.OUTER_LIP_LOWER)
    corners = [topo.LIP_CORNER_RIGHT, topo.LIP_CORNER_LEFT, topo.INNER_CORNER_RIGHT,
               topo.INNER_CORNER_LEFT]  # fmt: skip
    xc = (x[topo.INNER_CORNER_RIGHT] + x[topo.INNER_CORNER_LEFT]) / 2
    hw = (x[topo.INNER_CORNER_LEFT] - x[topo.INNER_CORNER_RIGHT]) / 2
    u = (x - xc) / hw
    # Which side of the mouth slit a point is on (1 = lower, moves with the jaw): lip contours by
    # membership, the rest by height vs the slit, softer away from the corners (no cheek shear).
    xm, ym = (x[iu] + x[il]) / 2, (y[iu] + y[il]) / 2
    band = 0.25 + 0.6 * np.maximum(0.0, np.abs(x - xc) - hw)
    lower = 0.5 + 0.5 * np.tanh((y - _interp(x, xm, ym)) / band)
    lower[np.r_[iu[1:-1], ou[1:-1]]], lower[np.r_[il[1:-1], ol[1:-1]]], lower[corners] = 0, 1, 0.5
    above = np.maximum(0.0, _interp(x, x[ou], y[ou]) - y)  # cm above the outer upper lip
    below = np.maximum(0.0, y - _interp(x, x[ol], y[ol]))  # cm below the outer lower lip
    f_up, f_low = np.exp(-((above / 0.6) ** 2)), np.exp(-((below / 0.6) ** 2))
    gap = _interp(x, xm, y[il] - y[iu], outside=0.0)  # the photo's lip opening along the mouth
    prof = np.maximum(0.0, 1 - u**2) ** 0.6  # opening profile: widest at the midline
    k = {name: i for i, name in enumerate(PARAMS)}
    # close: shut the photo's lips, the upper lip down 30%, the lower one (and chin a bit) up.
    b[k["close"], :, 1] = UP_SHARE * gap * f_up * (1 - lower)
    b[k["close"], :, 1] -= (1 - UP_SHARE) * gap * np.exp(-((below / 1.2) ** 2)) * lower
    inner_gap = y[il[1:-1]] - y[iu[1:-1]]  # exact on the inner contour: every pair meets
    b[k["close"], iu[1:-1], 1] = UP_SHARE * inner_gap
    b[k["close"], il[1:-1], 1] = (UP_SHARE - 1) * inner_gap
    # jaw: the lower face drops; the lip corners follow by 30%, the jaw angles by 40%.
    lip_part = 0.3 + 0.7 * np.sqrt(np.maximum(0.0, 1 - u**4))
    deep = 1 - np.exp(-((below / 0.8) ** 2))
    jaw = lower * (deep + (1 - deep) * lip_part) * (1 - 0.6 * _smoothstep(np.abs(x - xc), 4.0, 7.5))
    b[k["jaw"], :, 1], b[k["jaw"], :, 2] = jaw, 0.2 * jaw  # the chin also swings back a little
    b[k["lip_up"], :, 1] = -prof * f_up * (1 - lower)
    b[k["lip_low"], :, 1] = prof * f_low * lower
    # width / protrusion: the lips (exactly) and an elliptical skin margin around them.
    loop = list(topo.OUTER_LIP_LOOP)
    ax, ay = (x[loop].max() - x[loop].min()) / 2, max((y[loop].max() - y[loop].min()) / 2, 1.0)
    r = np.hypot((x - xc) / ax, (y - y[loop].mean()) / ay)
    f_mouth = np.exp(-((np.maximum(0.0, r - 1) / 0.35) ** 2))
    f_mouth[list(topo.LIPS)] = 1.0
    b[k["width"], :, 0], b[k["protrusion"], :, 2] = (x - xc) * f_mouth, -f_mouth
    # smile: corners up and out, cheek apples up.
    for corner, side in ((topo.LIP_CORNER_RIGHT, -1.0), (topo.LIP_CORNER_LEFT, 1.0)):
        g = _near(c, [corner], 0.9)
        b[k["smile"], :, 0] += 0.4 * side * g
        b[k["smile"], :, 1] -= g
    b[k["smile"], :, 1] -= 0.5 * _near(c, topo.CHEEK_RIGHT + topo.CHEEK_LEFT, 0.8)
    # brows: up, pulling the forehead more than the upper lid.
    brows = list(topo.BROW_RIGHT + topo.BROW_LEFT)
    over = y < _interp(x, x[brows], y[brows])
    d = np.linalg.norm(c[:, None, :2] - c[None, brows, :2], axis=-1).min(axis=1)
    b[k["brow"], :, 1] = -np.exp(-((d / np.where(over, 0.9, 0.4)) ** 2))
    # lids, per unit closure: upper lid down 85% of the opening, lower lid up 15%.
    for name, up_idx, lo_idx in (("lid_right", topo.EYE_RIGHT_UPPER, topo.EYE_RIGHT_LOWER),
                                 ("lid_left", topo.EYE_LEFT_UPPER, topo.EYE_LEFT_LOWER)):  # fmt: skip
        up, lo = np.array(up_idx[1:-1]), np.array(lo_idx[1:-1])
        g = _interp(x, x[up], y[lo] - y[up], outside=0.0)
        d_up = np.maximum(0.0, _interp(x, x[up], y[up]) - y)
        d_lo = np.maximum(0.0, y - _interp(x, x[lo], y[lo]))
        b[k[name], :, 1] = 0.85 * g * np.exp(-((d_up / 0.35) ** 2)) * (d_up > 0)
        b[k[name], :, 1] -= 0.15 * g * np.exp(-((d_lo / 0.35) ** 2)) * (d_lo > 0)
        b[k[name], up, 1], b[k[name], lo, 1] = 0.85 * (y[lo] - y[up]), -0.15 * (y[lo] - y[up])
    # Exact midline: one cm of jaw or lip motion opens 13 -> 14 by exactly one cm.
    b[k["jaw"]] /= b[k["jaw"], topo.INNER_LOWER_MID, 1]
    b[k["lip_up"]] /= -b[k["lip_up"], topo.INNER_UPPER_MID, 1]
    b[k["lip_low"]] /= b[k["lip_low"], topo.INNER_LOWER_MID, 1]
    b[:, list(topo.RIGID_ANCHORS)] = 0.0  # features re-align on these: keep them rigid
    b[:, topo.N_MESH :] = 0.0  # irises stay put
    return b


class FaceMotion:
    """Landmark trajectories for one template face (the photo the renderer warps).

    template: (478, 3) landmarks of the photo (FaceMesh output, pixels); None = the astronaut
    photo at `size` (render.astronaut_photo). anticipation (s): how far the lips lead the
    sound; jitter (s): per-phone timing noise (and the per-utterance anticipation spread);
    noise: factor on the jaw/lip/brow/lid drift. `generate` is deterministic given its seed.
    """

    def __init__(self, template: np.ndarray | None = None, *, size: tuple[int, int] = (256, 256),
                 fps: float = VIDEO_FPS, anticipation: float = 0.06, jitter: float = 0.01,
                 noise: float = 1.0):  # fmt: skip
        from dubcli.vision.features import align_to_canonical

        if template is None:
            from dubcli.synth.render import astronaut_photo

            template = astronaut_photo(size).landmarks
        template = np.asarray(template, dtype=np.float64)
        if template.shape != (topo.N_POINTS, 3) or not np.isfinite(template).all():
            raise InputError(f"face template: expected finite ({topo.N_POINTS}, 3) landmarks")
        al = align_to_canonical(template[None])
        if not al.valid[0]:
            raise InputError("face template: degenerate landmarks (no rigid fit)")
        self.canon = al.points[0]  # C0 (478, 3), cm
        self.basis = _rig_basis(self.canon)  # B (K, 478, 3), cm per unit parameter
        self.rotation, self.translation = al.rotation[0], al.translation[0]
        self.scale = float(al.scale[0])  # pixels per cm
        self.pivot = self.to_pixels(np.array([0.0, 1.0, 5.0]))  # head turns about the neck top
        self.fps, self.anticipation, self.jitter, self.noise = fps, anticipation, jitter, noise

    def to_pixels(self, canon: np.ndarray) -> np.ndarray:
        """(..., 3) canonical cm -> template pixels (p = s R c + t)."""
        return self.scale * canon @ self.rotation.T + self.translation

    def pose(self, params: np.ndarray) -> np.ndarray:
        """(nv, K) rig parameters -> (nv, 478, 3) canonical cm (before head motion)."""
        return self.canon[None] + np.einsum("nk,kpc->npc", params, self.basis)

    def generate(self, phones: Sequence, style: ExpressionStyle | None = None, *, seed: int = 0,
                 n_frames: int | None = None) -> FaceTrajectory:  # fmt: skip
        """Trajectories for one utterance. phones: PhoneSpan-likes or (symbol, start, end) in
        the phoneme vocabulary (stress digits, <sil>); n_frames: default the timeline's end."""
        ph, style = _phones(phones), style or ExpressionStyle()
        n = int(round(ph[-1][2] * self.fps)) if n_frames is None else int(n_frames)
        if n < 1:
            raise InputError(f"phone timeline: {n} frames to generate (ends at {ph[-1][2]} s)")
        seeds = np.random.SeedSequence(seed).spawn(5)
        r_time, r_mouth, r_face, r_blink, r_head = (np.random.default_rng(s) for s in seeds)
        lead = self.anticipation  # per utterance: how far these lips lead, within 40-80 ms
        if self.jitter:
            lead = float(np.clip(lead + r_time.normal(0, 1.5 * self.jitter), 0.04, 0.08))
        art = articulation(ph, n, fps=self.fps, anticipation=lead, jitter=self.jitter,
                           gain=style.articulation, rng=r_time)  # fmt: skip
        sn, hm = self.noise, style.head_motion

        def drift(rng, sigma, std):
            return _smooth_noise(rng, n, sigma, std * sn)

        # Lip drift fades out near closure, so bilabials stay shut.
        ap = np.maximum(art[:, 0] + drift(r_mouth, 2, 0.03) * _smoothstep(art[:, 0], 0.05, 0.3), 0)
        jaw = np.maximum(art[:, 1] + drift(r_mouth, 3, 0.02), 0.0)
        width, prot = art[:, 2] + drift(r_mouth, 3, 0.01), art[:, 3]
        env = _emphasis(ph, n, self.fps, lead)
        brow = style.brow_raise + 0.06 * hm * env + drift(r_face, 10, 0.02)
        smile = style.smile + drift(r_face, 15, 0.02)
        blink = _blinks(r_blink, n, self.fps)
        eye = style.eye_openness * (1 - blink)[:, None]
        eye = np.clip(eye + np.stack([drift(r_face, 8, 0.02), drift(r_face, 8, 0.02)], 1), 0, None)
        lip = ap - jaw  # the lips' own share of the opening (< 0: pressed together)
        params = np.stack([np.ones(n), jaw, UP_SHARE * lip, (1 - UP_SHARE) * lip, width, prot,
                           smile, brow, 1 - eye[:, 0], 1 - eye[:, 1]], axis=1)  # fmt: skip
        deg = np.pi / 180 * hm  # head: slow drift, nods on accented syllables
        yaw = 3 * deg * _smooth_noise(r_head, n, 12, 1.0)
        pitch = 2 * deg * _smooth_noise(r_head, n, 12, 1.0) + 1.5 * deg * env
        roll = 1.5 * deg * _smooth_noise(r_head, n, 15, 1.0)
        shift = self.scale * hm * np.stack([_smooth_noise(r_head, n, 15, 0.3),
                                            _smooth_noise(r_head, n, 15, 0.2)], 1)  # fmt: skip
        pts = self.to_pixels(self.pose(params)) - self.pivot
        pts = np.einsum("nij,npj->npi", _rotation(yaw, pitch, roll), pts) + self.pivot
        pts[:, :, :2] += shift[:, None]
        t, starts = np.arange(n) / self.fps, np.array([p[1] for p in ph])
        idx = np.searchsorted(starts, t, side="right") - 1
        phone = np.where((idx >= 0) & (t < ph[-1][2]), idx, -1)
        truth = MotionTruth(ap, jaw, width, prot, smile, brow, eye, blink > 0.05,
                            np.stack([yaw, pitch, roll], 1), shift, phone)  # fmt: skip
        return FaceTrajectory(pts.astype(np.float32), params, truth, self.fps)


def _emphasis(ph: list[tuple[str, float, float]], n: int, fps: float, lead: float) -> np.ndarray:
    """(nv,) zero-mean vowel-energy envelope (stressed vowels high), 120 ms smoothing: drives
    head nods and brow beats on accented syllables."""
    from scipy.ndimage import gaussian_filter1d

    t = np.arange(n) / fps + lead
    e = np.zeros(n)
    for sym, start, end in ph:
        if sym[-1] in _EMPHASIS:
            e[(t >= start) & (t < end)] = _EMPHASIS[sym[-1]]
    e = gaussian_filter1d(e, 0.12 * fps) if n > 1 else e
    return e - e.mean()
