"""Face landmark tracking over a stream of video frames (DESIGN 2: the embedded visual frontend).

MediaPipe 0.10.21's legacy FaceMesh (its tflite models ship inside the wheel; the Tasks API
would need a download) runs in tracking mode: the face detector only runs when a face is lost
or fewer faces than `max_faces` are tracked, and landmarks of the last frame seed the next.

Narrowing: with max_faces 2 and one face in the picture, the detector would run on every frame
looking for the second face (~40% of the per-frame cost). So once PROBE_FRAMES frames in a row
show exactly one face (and none so far showed more), tracking moves to a one-face graph, which
only detects again when it loses that face; a frame where it finds no face (a cut, the face
leaving) moves back to the wide graph. The landmarks barely change: a new one-face graph starts
from a detection (0.67 px median on the swap frame in the tests), then seeds each frame from the
last one's landmarks as the wide graph does. What it gives up: a second face that walks into a
one-face shot is not seen until the one-face graph loses its face or the next call (the next
cue) starts wide again. At most MAX_SWAPS moves per call, then it stays where it is.

Continuing (`FaceTracker`): both graphs stay open from one call to the next (the dub's cues),
and each carries its tracking state over: a cue's first frame is seeded by the landmarks of the
last frame that graph saw (an earlier cue's), and the graph detects again only when the face is
not found there (FaceMesh's own test: its face-presence score). Building the graphs and
restarting detection for every cue cost ~0.1 s a cue (measured: 33 cues of the 60 s benchmark
clip tracked alone, 11.4-12.2 s a graph pair per cue, 8.8-9.0 s one continuous track). So a
cue's landmarks depend on the cues tracked before it by the same tracker: fixed for a run that
tracks its cues in order on one thread, not across a resume (a resumed run starts from a
detection at its first cue left; the tracks then differ by FaceMesh's jitter, a few tenths of
a pixel) nor across threads; `track_faces` is one call on a fresh tracker.

Dimensions: nv video frames (25 fps upstream), 478 landmarks (vision/topology.py), 3 coords.

Several faces: detections are linked across frames by nearest centroid into face tracks; the
speaking face is the track with the highest coverage x size x (mouth motion + floor), where
mouth motion is the standard deviation of the inner-lip aperture relative to the eye distance
and the floor (0.02, about FaceMesh's jitter) makes the largest face win when nobody speaks.
`face=i` picks the i-th face track from the LEFT of the image instead (ordered by the median x
of its centre; tracks seen in under 10% of the frames that have a face are ignored).

Gaps: frames where the chosen face is missing for <= `max_gap` frames are filled by linear
interpolation between the neighbouring detections (held constant at the clip's start or end)
and flagged in `interpolated`; longer gaps stay NaN and are listed in `gaps`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError
from dubcli.vision import topology as topo

log = get_logger(__name__)

DEFAULT_MAX_GAP = 5  # frames (0.2 s at 25 fps): longer gaps are not invented
MOTION_FLOOR = 0.02  # aperture std / eye distance that counts as "not speaking" (jitter level)
MIN_COVERAGE = 0.1  # face tracks seen in fewer of the face frames are spurious detections
PROBE_FRAMES = 3  # frames in a row with exactly one face before narrowing to a one-face graph
MAX_SWAPS = 6  # moves between the wide and the one-face graph per call
RESEED_EYES = 0.5  # a kept one-face graph restarts from a detection when the face moved further


@dataclass(frozen=True)
class TrackStats:
    n_frames: int  # frames read
    n_detected: int  # frames where the chosen face was detected
    n_interpolated: int  # frames filled across a short gap
    n_missing: int  # frames left NaN (inside `gaps`)
    n_faces: int  # face tracks found in the clip (after dropping spurious ones)

    @property
    def rate(self) -> float:
        """Fraction of frames with a detected face."""
        return self.n_detected / self.n_frames if self.n_frames else 0.0


@dataclass(frozen=True)
class LandmarkTrack:
    """One face's landmarks over a clip. Arrays are numpy; frames index the input stream."""

    points: np.ndarray  # (nv, 478, 3) float32: x, y pixels; z in x's pixel scale; NaN = no face
    present: np.ndarray  # (nv,) bool: the face was detected in this frame
    interpolated: np.ndarray  # (nv,) bool: filled across a short gap
    gaps: tuple[tuple[int, int], ...]  # long gaps left NaN, half-open frame ranges [start, end)
    size: tuple[int, int] = (0, 0)  # frame (width, height) in pixels; (0, 0) if unknown
    face: int = 0  # the chosen track's position among the faces, counted from the left
    n_faces: int = 1  # face tracks found in the clip (after dropping spurious ones)

    def __post_init__(self):
        nv = self.points.shape[0]
        assert self.points.shape == (nv, topo.N_POINTS, 3), f"points {self.points.shape}"
        assert self.present.shape == (nv,) and self.interpolated.shape == (nv,)

    @property
    def stats(self) -> TrackStats:
        nv = self.n_frames
        return TrackStats(
            n_frames=nv,
            n_detected=int(self.present.sum()),
            n_interpolated=int(self.interpolated.sum()),
            n_missing=int(nv - self.valid.sum()),
            n_faces=self.n_faces,
        )

    @property
    def n_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """(nv,) bool: frames with landmarks (detected or interpolated)."""
        return self.present | self.interpolated

    @classmethod
    def from_points(
        cls,
        points: np.ndarray,
        *,
        max_gap: int = DEFAULT_MAX_GAP,
        size: tuple[int, int] = (0, 0),
        face: int = 0,
        n_faces: int | None = None,
    ) -> LandmarkTrack:
        """A track from raw trajectories (nv, 478, 3) with NaN frames for "no face": the
        tracker's own output, or a synthetic renderer's, with short gaps filled."""
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 3 or points.shape[1:] != (topo.N_POINTS, 3):
            raise ValueError(f"landmarks must be (nv, {topo.N_POINTS}, 3), got {points.shape}")
        present = np.isfinite(points).all(axis=(1, 2))
        filled, interpolated, gaps = fill_gaps(points, present, max_gap)
        if n_faces is None:
            n_faces = int(present.any())
        return cls(filled, present, interpolated, gaps, size, face, n_faces)


def fill_gaps(
    points: np.ndarray, present: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, int], ...]]:
    """Interpolate runs of missing frames of length <= max_gap; return (points, interpolated,
    long gaps). Runs touching the clip's start/end hold the nearest detection instead."""
    points = points.copy()
    nv = len(present)
    interpolated = np.zeros(nv, dtype=bool)
    gaps: list[tuple[int, int]] = []
    for start, end in _runs(~present):
        before, after = start - 1, end  # the detections around the run, if any
        has_before, has_after = before >= 0, after < nv
        if end - start > max_gap or not (has_before or has_after):
            points[start:end] = np.nan
            gaps.append((start, end))
            continue
        if has_before and has_after:
            w = (np.arange(start, end) - before) / (after - before)  # linear in time
            points[start:end] = (1 - w)[:, None, None] * points[before] + w[:, None, None] * points[
                after
            ]
        else:
            points[start:end] = points[before if has_before else after]
        interpolated[start:end] = True
    return points, interpolated, tuple(gaps)


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """Half-open [start, end) runs of True in a 1-D bool mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    yield from zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True)


# --- tracking -----------------------------------------------------------------------------------


def _centre_and_eye(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """A face's landmark centroid (x, y) and outer eye-corner distance (>= 1e-3) in pixels."""
    eye = float(np.linalg.norm(pts[topo.EYE_RIGHT_OUTER, :2] - pts[topo.EYE_LEFT_OUTER, :2]))
    return pts[:, :2].mean(axis=0), max(eye, 1e-3)


@dataclass
class _FaceTrack:
    """Detections linked across frames (mutable while tracking)."""

    frames: list[int] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    centers: list[np.ndarray] = field(default_factory=list)
    eye_dist: list[float] = field(default_factory=list)
    aperture: list[float] = field(default_factory=list)  # inner-lip opening / eye distance

    def add(self, frame: int, pts: np.ndarray) -> None:
        centre, eye = _centre_and_eye(pts)
        gap = pts[topo.INNER_LOWER_MID, :2] - pts[topo.INNER_UPPER_MID, :2]
        self.frames.append(frame)
        self.points.append(pts)
        self.centers.append(centre)
        self.eye_dist.append(eye)
        self.aperture.append(float(np.linalg.norm(gap)) / eye)

    def score(self, n_frames: int) -> float:
        coverage = len(self.frames) / max(n_frames, 1)
        motion = float(np.std(self.aperture)) if len(self.aperture) > 1 else 0.0
        return coverage * float(np.median(self.eye_dist)) * (motion + MOTION_FLOOR)


def _link(tracks: list[_FaceTrack], frame: int, faces: list[np.ndarray]) -> None:
    """Greedy nearest-centroid matching of this frame's faces to existing tracks. A face
    matches a track if their sizes agree within 2x and its centre lies within 1.5 eye
    distances of the track's last centre, a radius that grows by 0.5 eye distances per frame
    the track was unseen (so a face that left the picture or a cut can still be re-linked)."""
    pairs = []
    for j, pts in enumerate(faces):
        c, eye = _centre_and_eye(pts)
        for i, t in enumerate(tracks):
            d = float(np.linalg.norm(c - t.centers[-1]))
            unseen = frame - t.frames[-1] - 1
            ratio = eye / t.eye_dist[-1]
            if 0.5 < ratio < 2.0 and d < (1.5 + 0.5 * unseen) * t.eye_dist[-1]:
                pairs.append((d, i, j))
    used_t, used_f = set(), set()
    for _, i, j in sorted(pairs):
        if i in used_t or j in used_f or tracks[i].frames[-1] == frame:
            continue
        tracks[i].add(frame, faces[j])
        used_t.add(i)
        used_f.add(j)
    for j, pts in enumerate(faces):
        if j not in used_f:
            t = _FaceTrack()
            t.add(frame, pts)
            tracks.append(t)


_FD2_LOCK = threading.Lock()  # one redirect at a time: two threads' would restore each other's


@contextmanager
def _mediapipe_logs_to_debug():
    """MediaPipe's C++ side (glog/absl, TFLite) writes straight to file descriptor 2, past any
    Python logging setting: point fd 2 at a temp file meanwhile and replay it at debug level.
    Threads tracking at once (the dub's cue preparation) take turns: fd 2 is the process's."""
    with _FD2_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (e.g. pythonw)
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                for line in tmp.read().decode("utf-8", "replace").splitlines():
                    if line.strip():
                        log.debug("mediapipe: %s", line)


def preload() -> None:
    """Import MediaPipe's FaceMesh now (0.4-0.5 s here): the dub does it once before its
    preparing threads start, so that none of them waits on another's import."""
    _face_mesh_module()


def _face_mesh_module():
    """mediapipe.python.solutions.face_mesh, its C++ logging turned down first."""
    from dubcli.vision.mediapipe_drawing import bind_deferred, defer_drawing_modules

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    deferred = defer_drawing_modules()  # matplotlib and cv2 only if someone draws (0.7 s)
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as e:
        raise DependencyError(
            f"mediapipe is needed for face landmarks ({e}): pip install mediapipe==0.10.21"
        ) from e
    finally:
        bind_deferred(deferred)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return face_mesh


def _face_mesh(max_faces: int):
    """Build the FaceMesh graph (heavy import kept in here). Call it inside
    `_mediapipe_logs_to_debug()` together with the first `process`: MediaPipe's threads log
    while the graph's calculators open."""
    return _face_mesh_module().FaceMesh(
        static_image_mode=False,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )


_WIRE_HEAD = np.array([0x0A, 0x0F, 0x0D], np.uint8)  # landmark field, 15 bytes, x (float)
_WIRE_TAGS = np.array([0x15, 0x1D], np.uint8)  # y, z (float)
_WIRE_FLOATS = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]  # x, y, z bytes (little-endian)


def landmark_array(landmarks) -> np.ndarray:
    """(n, 3) float32 normalized x, y, z of a NormalizedLandmarkList, read from its serialized
    bytes: 0.05 ms a face instead of 0.6 ms for 1434 attribute reads (measured), on the
    preparing thread's path. Protobuf's wire format gives each landmark of exactly x, y, z
    17 bytes (field tag, length 15, three tagged little-endian floats); any other layout (a
    visibility field, a coordinate not set) is read attribute by attribute."""
    n = len(landmarks.landmark)
    raw = np.frombuffer(landmarks.SerializeToString(), np.uint8)
    if n and raw.size == 17 * n:
        rows = raw.reshape(n, 17)
        if (rows[:, :3] == _WIRE_HEAD).all() and (rows[:, [7, 12]] == _WIRE_TAGS).all():
            xyz = np.ascontiguousarray(rows[:, _WIRE_FLOATS])  # (n, 12) bytes, C order
            return xyz.view("<f4").astype(np.float32, copy=False).reshape(n, 3)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32).reshape(n, 3)


def _faces(result, rgb: np.ndarray) -> list[np.ndarray]:
    """A FaceMesh result's faces in pixels: (478, 3) each, z in x's pixel scale."""
    h, w = rgb.shape[:2]
    scale = np.array([w, h, w], dtype=np.float32)
    return [landmark_array(lm) * scale for lm in (result.multi_face_landmarks or [])]


def _check_frame(frame, index: int, source: str, size: tuple[int, int] | None) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise InputError(f"{source}: frame {index} is {shape}, expected (H, W, 3) RGB")
    if frame.dtype != np.uint8:
        raise InputError(f"{source}: frame {index} has dtype {frame.dtype}, expected uint8 RGB")
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        raise InputError(
            f"{source}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
            f"earlier frames were {size[0]}x{size[1]}"
        )
    return np.ascontiguousarray(frame)


def track_faces(
    frames: Iterable[np.ndarray],
    *,
    face: int | None = None,
    max_faces: int = 2,
    max_gap: int = DEFAULT_MAX_GAP,
    progress: Callable[[int], None] | None = None,
    source: str = "video",
) -> LandmarkTrack:
    """Track face landmarks over RGB frames (H, W, 3) uint8 -> the speaking face's track,
    starting from a face detection (a `FaceTracker` of its own, closed on return).

    face: None = the speaking face (see module doc); i = the i-th face from the left.
    max_faces: faces FaceMesh tracks at once (more costs detector runs while fewer are seen;
        narrowed to one while only one is seen, module doc).
    max_gap: longest run of missing frames that is interpolated.
    progress: called after each frame with the number of frames done.
    source: the name used in error messages (the video's path).
    A clip without any face gives an all-NaN track (stats.rate == 0), not an error.
    """
    with FaceTracker(max_faces, keep=False) as tracker:
        return tracker.track(frames, face=face, max_gap=max_gap, progress=progress, source=source)


class FaceTracker:
    """FaceMesh graphs kept from one `track` call to the next (module doc: "Continuing").

    One thread at a time; `close()` (or the `with` block) frees the graphs. Each call starts
    on the wide graph, narrows as `track_faces` does, and gives a track of its own frames;
    what carries over is each graph's tracking state (the last landmarks seed the next frame,
    even across the frames between two calls) and the graphs themselves (no build, no
    detection restart)."""

    def __init__(self, max_faces: int = 2, *, keep: bool = True):
        """keep=False: a graph is closed when tracking moves to the other one (one call's
        tracker, `track_faces`: one graph's memory at a time, ~30 MB, and a graph that tracking
        moves back to starts from a detection, as before FaceTracker)."""
        if max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        self.max_faces, self.keep = max_faces, keep
        self._graphs: dict[int, object] = {}  # faces tracked -> FaceMesh graph, built on use
        self._last_one: np.ndarray | None = None  # the one-face graph's last face, if it had one
        self._seen: dict[int, int] = {}  # faces tracked -> faces in that graph's last frame

    def _graph(self, width: int, rgb: np.ndarray, first: bool) -> list[np.ndarray]:
        """The faces the `width`-face graph finds in `rgb`, pixels (n, 478, 3). A graph is built,
        with its first frame, inside the log redirect (MediaPipe's threads log while the graph's
        calculators open). On a call's first frame, a kept graph that finds fewer faces than
        it tracked in its last frame is restarted and given the frame again: its landmarks
        seeded a crop the face has left (measured: a face that jumped 45 px between two calls
        was missed in that frame), and a restarted graph detects, as a new one would."""
        mesh = self._graphs.get(width)
        if mesh is None:
            with _mediapipe_logs_to_debug():
                self._graphs[width] = mesh = _face_mesh(width)
                faces = _faces(mesh.process(rgb), rgb)
        else:
            faces = _faces(mesh.process(rgb), rgb)
            if first and len(faces) < self._seen.get(width, 0):
                with _mediapipe_logs_to_debug():
                    mesh.reset()
                    faces = _faces(mesh.process(rgb), rgb)
        self._seen[width] = len(faces)
        return faces

    def track(
        self,
        frames: Iterable[np.ndarray],
        *,
        face: int | None = None,
        max_gap: int = DEFAULT_MAX_GAP,
        progress: Callable[[int], None] | None = None,
        source: str = "video",
    ) -> LandmarkTrack:
        """`frames` -> the speaking face's track (arguments as for `track_faces`)."""
        if face is not None and face < 0:
            raise InputError(f"{source}: face index must be >= 0, got {face}")
        tracks: list[_FaceTrack] = []
        size: tuple[int, int] | None = None
        nv = 0  # frames read so far
        width = self.max_faces  # faces the graph of the next frame tracks
        ones = swaps = 0  # frames in a row with exactly one face (wide graph); swaps so far
        may_narrow = width > 1  # until a frame shows more than one face (module doc)
        for frame in frames:
            rgb = _check_frame(frame, nv, source, size)
            size = (rgb.shape[1], rgb.shape[0])
            faces = self._graph(width, rgb, first=nv == 0)
            if width == 1:
                self._last_one = faces[0] if faces else None
            _link(tracks, nv, faces)
            nv += 1
            if progress is not None:
                progress(nv)
            may_narrow = may_narrow and len(faces) <= 1
            ones = ones + 1 if len(faces) == 1 and width > 1 else 0
            if swaps < MAX_SWAPS and may_narrow:
                left = width
                if width > 1 and ones >= PROBE_FRAMES:
                    width, swaps = 1, swaps + 1
                    self._reseed_if_moved(faces[0])
                elif width == 1 and not faces:
                    width, swaps = self.max_faces, swaps + 1
                if width != left and not self.keep:
                    self._close(left)
        return _select(tracks, nv, size or (0, 0), face, max_gap, source)

    def _reseed_if_moved(self, face: np.ndarray) -> None:
        """Restart the one-face graph (its next frame starts from a detection, as a new graph's
        would) when the face it last tracked is more than RESEED_EYES eye distances from
        `face` or of another size: its landmarks would seed a crop off the face, and FaceMesh
        would miss the face in that frame (measured: a jump of 45 px between two calls, eye
        distance 61 px, cost one frame)."""
        last, mesh = self._last_one, self._graphs.get(1)
        if last is None or mesh is None:
            return  # no graph yet, or it lost its face: it detects anyway
        c0, e0 = _centre_and_eye(last)
        c1, e1 = _centre_and_eye(face)
        if np.linalg.norm(c1 - c0) > RESEED_EYES * e1 or not 0.8 < e1 / e0 < 1.25:
            with _mediapipe_logs_to_debug():
                mesh.reset()
            self._last_one = None

    def _close(self, width: int) -> None:
        """Close the `width`-face graph (a later use builds it again)."""
        mesh = self._graphs.pop(width, None)
        self._seen.pop(width, None)
        if width == 1:
            self._last_one = None
        if mesh is not None:
            with _mediapipe_logs_to_debug():
                mesh.close()

    def close(self) -> None:
        for width in list(self._graphs):
            self._close(width)

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _select(
    tracks: list[_FaceTrack],
    nv: int,
    size: tuple[int, int],
    face: int | None,
    max_gap: int,
    source: str,
) -> LandmarkTrack:
    """Drop spurious tracks, order the rest left to right, pick one, fill its short gaps."""
    face_frames = len({f for t in tracks for f in t.frames})
    real = [t for t in tracks if len(t.frames) >= max(2, MIN_COVERAGE * face_frames)]
    real = real or tracks  # very short clips: keep whatever was seen
    real.sort(key=lambda t: float(np.median([c[0] for c in t.centers])))
    if face is not None and face >= len(real):
        raise InputError(f"{source}: face={face} was asked for but {len(real)} face(s) were found")
    points = np.full((nv, topo.N_POINTS, 3), np.nan, dtype=np.float32)
    if not real:
        log.warning("%s: no face found in %d frames", source, nv)
        return LandmarkTrack.from_points(points, max_gap=max_gap, size=size, n_faces=0)
    if face is None:
        face = int(np.argmax([t.score(nv) for t in real]))
        if len(real) > 1:
            log.info("%s: %d faces, speaker = face %d from the left", source, len(real), face)
    chosen = real[face]
    points[chosen.frames] = np.stack(chosen.points)
    return LandmarkTrack.from_points(
        points, max_gap=max_gap, size=size, face=face, n_faces=len(real)
    )
