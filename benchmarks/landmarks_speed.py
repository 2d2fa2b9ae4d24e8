"""Landmark stage speed: FaceMesh tracking (vision/landmarks.py) and the lip/face features
(vision/features.py) on 25 fps frames, against the issue's target of faster than real time
(< 1 s per second of video) on 2 CPU cores.

    nice python benchmarks/landmarks_speed.py [--frames 125] [--sizes 320x240 640x480]

Frames are the astronaut photo (skimage) panned, zoomed and rotated a little each frame, the
face filling about half the frame height, generated before timing starts. Times include the
FaceMesh graph construction (one per clip, as in the pipeline); `init` shows it alone
(graph build + the first, detector-run frame).
"""

from __future__ import annotations

import argparse
import os
import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import cv2
import numpy as np


def make_frames(width: int, height: int, n: int) -> list[np.ndarray]:
    from skimage import data

    photo = data.astronaut()
    base = 0.5 * height / 110.0  # the photo's face is ~110 px tall: make it half the frame
    frames = []
    for k in range(n):
        a = cv2.getRotationMatrix2D(
            (225.0, 125.0), 8 * np.sin(k / 9), base * (1 + 0.1 * np.sin(k / 7))
        )
        a[:, 2] += np.array([width / 2 + 0.08 * width * np.sin(k / 11), height / 2]) - (
            225.0,
            125.0,
        )
        frames.append(cv2.warpAffine(photo, a, (width, height), flags=cv2.INTER_LINEAR))
    return frames


def bench_tracking(frames: list[np.ndarray], max_faces: int) -> tuple[float, float, object]:
    from dubcli.vision.landmarks import track_faces

    t0 = time.perf_counter()
    track_faces(frames[:1], max_faces=max_faces)  # graph build + first (detector) frame
    init = time.perf_counter() - t0
    t0 = time.perf_counter()
    track = track_faces(frames, max_faces=max_faces)
    total = time.perf_counter() - t0
    return init, total, track


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=125, help="frames per clip (125 = 5 s)")
    ap.add_argument("--sizes", nargs="+", default=["320x240", "640x480"])
    ap.add_argument("--max-faces", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from dubcli.timing import VIDEO_FPS
    from dubcli.vision import features as F

    print(f"CPU cores visible: {os.cpu_count()}; {args.frames} frames per clip at {VIDEO_FPS} fps")
    from dubcli.vision.landmarks import track_faces

    t0 = time.perf_counter()
    track_faces(make_frames(64, 48, 1))  # the one-off mediapipe import: `init` below is per clip
    print(f"mediapipe import + first graph: {time.perf_counter() - t0:.2f} s")
    print(f"{'size':>9} {'faces':>5} {'init s':>7} {'ms/frame':>9} {'x realtime':>10} {'found':>6}")
    last_track = None
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frames = make_frames(width, height, args.frames)
        for max_faces in args.max_faces:
            init, total, track = bench_tracking(frames, max_faces)
            ms = 1000 * total / len(frames)
            speed = (len(frames) / VIDEO_FPS) / total
            print(
                f"{size:>9} {max_faces:>5} {init:7.3f} {ms:9.2f} {speed:10.1f} "
                f"{track.stats.rate:6.0%}"
            )
            last_track = track

    # features: tile the last track to a minute of video so the per-frame cost is measurable
    points = np.tile(last_track.points, (max(1, 60 * VIDEO_FPS // last_track.n_frames), 1, 1))
    F.visual_features(points[:10])  # warm-up
    t0 = time.perf_counter()
    F.visual_features(points)
    feat = time.perf_counter() - t0
    print(
        f"features (lip {F.LIP_DIM} + face {F.FACE_DIM}): {1000 * feat / len(points):.3f} ms/frame "
        f"over {len(points)} frames ({len(points) / VIDEO_FPS / feat:.0f}x realtime)"
    )


if __name__ == "__main__":
    main()
