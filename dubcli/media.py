"""Everything that talks to ffmpeg: find it, probe files, stream frames and audio, mux and encode.

Commands are argument lists run without a shell. Decoding streams through pipes, so memory is
bounded by one frame or one audio block, never the whole file. Paths go to ffmpeg as `file:` URLs
so names with ':' or a leading '-' are never read as protocols or options. Audio is resampled by
ffmpeg's soxr at precision 28 (sample-identical to python-soxr "VHQ"), and channels are mixed
with the matrix normalized to gain 1 (stereo -> (L+R)/2, so a mono mix never clips).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, InputError, OutputError, ProcessingError
from dubcli.fsutil import atomic_path
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

log = get_logger(__name__)

INSTALL_HINT = (
    "install it with `pip install imageio-ffmpeg` or your system's package (apt install ffmpeg)"
)
_RESAMPLE = "aresample=resampler=soxr:precision=28:rematrix_maxval=1"
# stderr markers of a file that ends early (probe catches most of these up front)
_TRUNCATED = ("partial file", "ended prematurely", "moov atom not found", "truncated")


# ---------------------------------------------------------------------------- finding ffmpeg


def find_ffmpeg() -> str:
    """$DUBCLI_FFMPEG, else `ffmpeg` on PATH, else imageio-ffmpeg's static build."""
    return _find_ffmpeg(os.environ.get("DUBCLI_FFMPEG") or None)


@functools.lru_cache(maxsize=8)
def _find_ffmpeg(env: str | None) -> str:
    if env:
        exe = shutil.which(env)
        if exe is None:
            raise DependencyError(f"DUBCLI_FFMPEG={env}: not an executable ffmpeg")
        return exe
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # ImportError, or RuntimeError when the wheel has no binary
        raise DependencyError(f"ffmpeg: not found ({INSTALL_HINT})") from exc


def find_ffprobe() -> str | None:
    """A system ffprobe (next to $DUBCLI_FFMPEG, or on PATH); None if there is none."""
    return _find_ffprobe(os.environ.get("DUBCLI_FFMPEG") or None)


@functools.lru_cache(maxsize=8)
def _find_ffprobe(env: str | None) -> str | None:
    if env and (exe := shutil.which(env)):
        sibling = Path(exe).with_name(Path(exe).name.replace("ffmpeg", "ffprobe"))
        if sibling != Path(exe) and os.access(sibling, os.X_OK):
            return str(sibling)
    return shutil.which("ffprobe")


def _url(path: str | os.PathLike) -> str:
    return "file:" + os.path.abspath(path)


def _ffmpeg(*args: str) -> list[str]:
    return [find_ffmpeg(), "-nostdin", "-hide_banner", *args]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, **kw)
    except OSError as exc:  # the binary vanished or is not executable
        raise DependencyError(
            f"{cmd[0]}: cannot run ({exc.strerror or exc}; {INSTALL_HINT})"
        ) from None


def _error_line(stderr: bytes | str) -> str:
    """The most specific line of an ffmpeg error log, without the `[mp4 @ 0x..]` prefix."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    generic = re.compile(
        r"^(Error opening (input|output) files?\b|Conversion failed|At least one output|"
        r"Exiting normally|Error while filtering|Nothing was written|Input #|Output #)"
    )
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in text.splitlines()]
    lines = [
        ln for ln in lines if ln and not generic.match(ln) and "detected only with low" not in ln
    ]
    # a named cause ("moov atom not found") beats the generic "Error opening input: ..."
    for ln in lines:
        if not ln.startswith("Error opening input"):
            return ln
    return lines[-1].removeprefix("Error opening input: ") if lines else "unknown ffmpeg error"


# ---------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int  # position among the file's audio streams: `stream=` / `-map 0:a:<index>`
    codec: str
    sample_rate: int
    channels: int  # 0 when ffmpeg did not say
    language: str | None  # ISO 639-2 code; None for missing or "und"
    title: str | None
    default: bool = False  # the player's default track


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    duration: float  # seconds (container duration)
    format_name: str  # ffmpeg's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    has_video: bool  # a real video stream (cover art does not count)
    video_codec: str | None
    width: int  # as decoded frames come out, i.e. after the display rotation; 0 without video
    height: int
    fps: float  # 0.0 without video
    n_frames: int  # estimate: container count if known, else round(duration * fps)
    audio_streams: tuple[AudioStreamInfo, ...]
    rotation: int = 0  # display rotation in degrees (ffmpeg applies it when decoding)
    subtitle_streams: int = 0  # embedded subtitle tracks

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)


_PROBE_CACHE: dict[tuple, MediaInfo] = {}


def probe(path: str | os.PathLike) -> MediaInfo:
    """Streams, duration and frame geometry of a media file; InputError if it is not one."""
    path = Path(path)
    st = check_readable(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, find_ffprobe())
    if key not in _PROBE_CACHE:
        if len(_PROBE_CACHE) > 64:
            _PROBE_CACHE.clear()
        _PROBE_CACHE[key] = _probe(path)
    return _PROBE_CACHE[key]


def check_readable(path: str | os.PathLike) -> os.stat_result:
    """InputError unless `path` is an existing, readable, non-empty file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a media file")
    try:
        st = path.stat()
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if st.st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes)")
    return st


def _probe(path: Path) -> MediaInfo:
    info = None
    if ffprobe := find_ffprobe():
        cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
        res = _run([*cmd, _url(path)])
        if res.returncode == 0:
            import json

            info = info_from_ffprobe_json(path, json.loads(res.stdout.decode("utf-8", "replace")))
    problem = _container_truncated(path)
    if info is None:  # no ffprobe, or it failed: ffmpeg's stream dump also gives the error text
        res = _run(_ffmpeg("-i", _url(path)))
        text = res.stderr.decode("utf-8", "replace")
        if problem and "Input #0" not in text:
            raise InputError(f"{path}: file is truncated ({problem}; {_error_line(text)})")
        info = info_from_ffmpeg_stderr(path, text)
    if problem:
        raise InputError(f"{path}: file is truncated or corrupt ({problem})")
    if info.duration <= 0 and (info.has_video or info.has_audio):
        info = _with_measured_duration(info)
    return info


def _snap_fps(fps: float) -> float:
    """ffmpeg prints 29.97 for 30000/1001: snap the NTSC rates back to their exact value."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base / 1.001) < 0.006:
            return base / 1.001
    return fps


def _lang(code: str | None) -> str | None:
    return None if not code or code.lower() in ("und", "unk", "") else code


_GENERIC_HANDLERS = ("SoundHandler", "VideoHandler", "Core Media", "ISO Media", "GPAC", "L-SMASH")


def _title(tags: dict[str, str]) -> str | None:
    # mp4 stores a track title as udta "name", mov only as the handler name: read all three.
    title = tags.get("title") or tags.get("name")
    handler = tags.get("handler_name", "")
    if not title and handler and not handler.startswith(_GENERIC_HANDLERS):
        title = handler
    return title or None


_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}


def _channels(layout: str) -> int:
    layout = layout.strip()
    if m := re.match(r"(\d+) channels", layout):
        return int(m.group(1))
    if m := re.match(r"(\d+)\.(\d+)", layout):  # 5.1(side) -> 6
        return int(m.group(1)) + int(m.group(2))
    return _LAYOUTS.get(re.split(r"[( ]", layout)[0], 0)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: 'yuv420p(tv, bt709), 160x120' -> 2 parts."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


_STREAM_RE = re.compile(r"^(\s*)Stream #\d+:\d+(?:\[[^\]]*\])?(?:\(([^)]*)\))?: (\w+): (.*)$")


def info_from_ffmpeg_stderr(path: Path, text: str) -> MediaInfo:
    """Parse the stream dump of `ffmpeg -i path` (what we have when there is no ffprobe)."""
    m = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if not m:
        raise InputError(f"{path}: not a media file ffmpeg can read ({_error_line(text)})")
    fmt = m.group(1)
    streams: list[dict] = []
    cur = None
    for line in text.splitlines():
        if sm := _STREAM_RE.match(line):
            cur = {"indent": len(sm.group(1)), "lang": sm.group(2), "kind": sm.group(3)}
            cur |= {"desc": sm.group(4), "tags": {}, "rotation": 0}
            streams.append(cur)
        elif cur is not None and len(line) - len(line.lstrip()) <= cur["indent"]:
            cur = None
        elif cur is not None:
            if rm := re.search(r"rotation of (-?[\d.]+) degrees", line):
                cur["rotation"] = int(round(float(rm.group(1))))
            elif km := re.match(r"^\s+(\w[\w ]*?)\s*: (.*)$", line):
                cur["tags"].setdefault(km.group(1).lower(), km.group(2).strip())
    dm = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3)) if dm else 0.0
    video, audio = None, []
    for s in streams:
        parts = _split_top(s["desc"])
        codec = parts[0].split()[0] if parts[0] else "unknown"
        if s["kind"] == "Video" and video is None and "(attached pic)" not in s["desc"]:
            dims = [re.match(r"(\d+)x(\d+)\b", p) for p in parts[1:]]
            dims = [d for d in dims if d]
            rates = [re.search(r"([\d.]+)(k?) (fps|tbr)\b", p) for p in parts[1:]]
            rates = sorted((r for r in rates if r), key=lambda r: r.group(3) != "fps")
            fps = float(rates[0].group(1)) * (1000 if rates[0].group(2) else 1) if rates else 0.0
            w, h = (int(dims[0].group(1)), int(dims[0].group(2))) if dims else (0, 0)
            video = (codec, w, h, fps, s["rotation"])
        elif s["kind"] == "Audio":
            sr = next((int(x.group(1)) for p in parts if (x := re.match(r"(\d+) Hz", p))), 0)
            i = next((i for i, p in enumerate(parts) if p.endswith(" Hz")), None)
            ch = _channels(parts[i + 1]) if i is not None and i + 1 < len(parts) else 0
            audio.append(
                AudioStreamInfo(
                    len(audio), codec, sr, ch, _lang(s["lang"]), _title(s["tags"]),
                    "(default)" in s["desc"],
                )
            )  # fmt: skip
    n_subs = sum(s["kind"] == "Subtitle" for s in streams)
    return _make_info(path, duration, fmt, video, audio, None, n_subs)


def info_from_ffprobe_json(path: Path, data: dict) -> MediaInfo:
    """Parse `ffprobe -print_format json -show_format -show_streams`."""
    fmt = data.get("format", {})
    video, audio, n_frames = None, [], None
    for s in data.get("streams", []):
        tags = {k.lower(): v for k, v in (s.get("tags") or {}).items()}
        disp = s.get("disposition") or {}
        if s.get("codec_type") == "video" and video is None and not disp.get("attached_pic"):
            num, _, den = (s.get("avg_frame_rate") or "0/0").partition("/")
            if not (float(num or 0) and float(den or 0)):
                num, _, den = (s.get("r_frame_rate") or "0/1").partition("/")
            fps = float(num) / float(den) if float(den or 0) else 0.0
            rot = next(
                (d["rotation"] for d in s.get("side_data_list", []) if "rotation" in d), None
            )
            rot = -float(tags.get("rotate", 0)) if rot is None else float(rot)
            w, h = int(s.get("width", 0)), int(s.get("height", 0))
            video = (s.get("codec_name", "unknown"), w, h, fps, int(round(rot)))
            n_frames = int(s["nb_frames"]) if str(s.get("nb_frames", "")).isdigit() else None
        elif s.get("codec_type") == "audio":
            audio.append(
                AudioStreamInfo(
                    len(audio), s.get("codec_name", "unknown"), int(s.get("sample_rate", 0)),
                    int(s.get("channels", 0)), _lang(tags.get("language")), _title(tags),
                    bool(disp.get("default")),
                )
            )  # fmt: skip
    duration = float(fmt.get("duration", 0) or 0)
    n_subs = sum(s.get("codec_type") == "subtitle" for s in data.get("streams", []))
    name = fmt.get("format_name", "unknown")
    return _make_info(path, duration, name, video, audio, n_frames, n_subs)


def _make_info(path, duration, fmt, video, audio, n_frames, n_subs) -> MediaInfo:
    codec, w, h, fps, rot = video or (None, 0, 0, 0.0, 0)
    if rot % 180 == 90 or rot % 180 == -90:  # decoded frames come out rotated
        w, h = h, w
    fps = _snap_fps(fps)
    if n_frames is None:
        n_frames = int(round(duration * fps))
    has_video = video is not None
    return MediaInfo(
        path, duration, fmt, has_video, codec, w, h, fps, n_frames, tuple(audio), rot, n_subs
    )


def _with_measured_duration(info: MediaInfo) -> MediaInfo:
    """Duration N/A in the header (raw streams): remux to null, which reads but never decodes."""
    sel = ["-map", "0:V:0"] if info.has_video else ["-map", "0:a:0"]
    res = _run(_ffmpeg("-i", _url(info.path), *sel, "-c", "copy", "-f", "null", "-"))
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", res.stderr.decode("utf-8", "replace"))
    if not times:
        return info
    h, m, s = times[-1]
    d = int(h) * 3600 + int(m) * 60 + float(s)
    n = info.n_frames or int(round(d * info.fps))
    return dataclasses.replace(info, duration=d, n_frames=n)


_BMFF_FIRST = (b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin")


def _container_truncated(path: Path) -> str | None:
    """Cheap structural check: a top-level mp4 box or the mkv Segment ending past EOF.

    Recognized by signature (not by name or by ffmpeg), so a cut-off mp4 whose index is gone is
    reported as truncated rather than as "not media".
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if head[4:8] in _BMFF_FIRST:
            pos = 0
            while pos + 8 <= size:
                f.seek(pos)
                box = f.read(16)
                n, kind = int.from_bytes(box[:4], "big"), box[4:8]
                if not all(32 <= b < 127 for b in kind):
                    return None  # trailing junk, not a box: nothing more to check
                if n == 1 and len(box) == 16:
                    n = int.from_bytes(box[8:16], "big")
                if n == 0:  # the box runs to the end of the file
                    return None
                if n < 8:
                    return f"bad '{kind.decode()}' box size {n}"
                if pos + n > size:
                    return f"'{kind.decode()}' box cut off at {100 * (size - pos) / n:.0f}%"
                pos += n
        elif head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska / WebM
            n, pos = _vint(head, 4)
            if n is not None and head[pos + n : pos + n + 4] == b"\x18\x53\x80\x67":
                seg, start = _vint(head, pos + n + 4)
                if seg is not None and start + seg > size:
                    return f"Matroska segment cut off at {100 * (size - start) / seg:.0f}%"
    return None


def _vint(buf: bytes, pos: int) -> tuple[int | None, int]:
    """An EBML variable-length size at buf[pos]: (value or None if unknown/unreadable, end)."""
    if pos < 0 or pos >= len(buf) or buf[pos] == 0:
        return None, pos
    n = 8 - buf[pos].bit_length() + 1
    if pos + n > len(buf):
        return None, pos
    value = int.from_bytes(buf[pos : pos + n], "big") & ((1 << (7 * n)) - 1)
    return (None if value == (1 << (7 * n)) - 1 else value), pos + n


# ---------------------------------------------------------------------------- decoding


def _check_range(path: Path, start: float | None, end: float | None) -> None:
    if start is not None and start < 0:
        raise ValueError(f"{path}: start must be >= 0, got {start}")
    if end is not None and end <= (start or 0.0):
        raise ValueError(f"{path}: end ({end}) must be after start ({start or 0.0})")


def _finish(proc: subprocess.Popen, errfile, path: Path, what: str) -> None:
    """Reap ffmpeg and turn a failure into the right DubcliError."""
    rc = proc.wait()
    errfile.seek(0)
    err = errfile.read().decode("utf-8", "replace")
    if any(m in err for m in _TRUNCATED):
        raise InputError(f"{path}: file is truncated or corrupt ({_error_line(err)})")
    if rc != 0:
        raise ProcessingError(f"{path}: ffmpeg failed to decode {what} ({_error_line(err)})")
    if err.strip():
        log.debug("%s: ffmpeg reported while decoding %s: %s", path, what, _error_line(err))


def _stream(cmd: list[str], chunk_bytes: int, path: Path, what: str) -> Iterator[bytearray]:
    """Run ffmpeg and yield its stdout in chunks of exactly `chunk_bytes` (the last may be short).

    The finally clause kills and reaps ffmpeg when the consumer stops early (generator close).
    """
    errfile = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile
        )
    except OSError as exc:
        errfile.close()
        raise DependencyError(
            f"{cmd[0]}: cannot run ({exc.strerror or exc}; {INSTALL_HINT})"
        ) from None
    try:
        while True:
            buf = bytearray(chunk_bytes)
            view, got = memoryview(buf), 0
            while got < chunk_bytes and (k := proc.stdout.readinto(view[got:])):
                got += k
            if got:
                yield buf if got == chunk_bytes else buf[:got]
            if got < chunk_bytes:
                break
        _finish(proc, errfile, path, what)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        errfile.close()


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = VIDEO_FPS,
    start: float = 0.0,
    end: float | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 RGB at `fps` (None: the file's rate) from [start, end) seconds.

    Frame k shows time start + k/fps (the first source frame at or after `start`; seeking is
    exact). With `end`, exactly round((end - start) * fps) frames when the video covers the range.
    size=(width, height) scales. Memory: one frame; ffmpeg is killed if iteration stops early.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise InputError(f"{path}: has no video stream")
    _check_range(path, start, end)
    w, h = size or (info.width, info.height)
    rate = fps or info.fps or VIDEO_FPS
    cmd = _ffmpeg("-v", "error")
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    # scale even at the native size: a stream that changes resolution mid-way stays (h, w)
    vf = ([f"fps={rate:.6f}"] if fps else []) + [f"scale={w}:{h}"]
    cmd += ["-i", _url(path), "-map", "0:V:0", "-vf", ",".join(vf), "-an", "-sn"]
    if end is not None:
        cmd += ["-frames:v", str(int(round((end - start) * rate)))]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    return _frames(_stream(cmd, w * h * 3, path, "video"), h, w)


def _frames(chunks: Iterator[bytearray], h: int, w: int) -> Iterator[np.ndarray]:
    try:
        for c in chunks:
            if len(c) == h * w * 3:  # a partial last frame is dropped
                yield np.frombuffer(c, np.uint8).reshape(h, w, 3)
    finally:
        chunks.close()  # stops ffmpeg now, not whenever the garbage collector gets to it


def read_frames(path, fps=VIDEO_FPS, start=0.0, end=None, size=None) -> np.ndarray:
    """All frames of a (short) range at once: (N, H, W, 3) uint8."""
    frames = list(iter_frames(path, fps, start, end, size))
    if frames:
        return np.stack(frames)
    info = probe(path)
    w, h = size or (info.width, info.height)
    return np.zeros((0, h, w, 3), np.uint8)


def _audio_cmd(path, sample_rate, start, end, mono, stream) -> tuple[list[str], int, int]:
    path = Path(path)
    info = probe(path)
    if not info.has_audio:
        raise InputError(f"{path}: has no audio stream")
    k = stream or 0
    if not 0 <= k < len(info.audio_streams):
        raise InputError(f"{path}: has no audio stream {k} (it has {len(info.audio_streams)})")
    _check_range(path, start, end)
    st = info.audio_streams[k]
    sr = int(sample_rate or st.sample_rate or SAMPLE_RATE)
    ch = 1 if mono else (st.channels or 2)
    cmd = _ffmpeg("-v", "error")
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    cmd += ["-i", _url(path), "-map", f"0:a:{k}", "-vn", "-sn", "-dn"]
    if end is not None:
        cmd += ["-t", f"{end - (start or 0.0):.6f}"]
    cmd += ["-af", _RESAMPLE, "-ac", str(ch), "-ar", str(sr), "-f", "f32le", "pipe:1"]
    return cmd, ch, sr


def decode_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    mono: bool = True,
    stream: int | None = None,
) -> np.ndarray:
    """Audio of any container/codec as float32 in [-1, 1]: (n,) if mono else (n, channels).

    sample_rate=None keeps the stream's rate. `stream` picks the n-th audio stream (default 0).
    With `end`, the length is exactly round((end - start) * sample_rate) if the file covers it.
    """
    cmd, ch, sr = _audio_cmd(path, sample_rate, start, end, mono, stream)
    data = b"".join(_stream(cmd, 1 << 22, Path(path), "audio"))
    wav = np.frombuffer(data, np.float32)[: len(data) // 4 // ch * ch].reshape(-1, ch)
    if end is not None:
        wav = wav[: int(round((end - (start or 0.0)) * sr))]
    wav = np.clip(wav, -1.0, 1.0)  # lossy decoders overshoot full scale slightly
    return wav.reshape(-1) if mono else wav


def iter_audio_blocks(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 30.0,
    *,
    mono: bool = True,
    stream: int | None = None,
) -> Iterator[np.ndarray]:
    """decode_audio for long files: float32 blocks of block_seconds (the last may be shorter)."""
    cmd, ch, sr = _audio_cmd(path, sample_rate, None, None, mono, stream)
    block = max(1, int(round(block_seconds * sr))) * ch * 4
    for chunk in _stream(cmd, block, Path(path), "audio"):
        wav = np.clip(np.frombuffer(chunk, np.float32).reshape(-1, ch), -1.0, 1.0)
        yield wav[:, 0] if mono else wav


# ---------------------------------------------------------------------------- encoding


_AUDIO_CODECS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}
_COPYABLE = {  # original-track codecs each container takes as is (else re-encoded)
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
    ".webm": {"opus", "vorbis"},
}
_ENCODER_ARGS = {"aac": ["-b:a", "192k"], "libopus": ["-b:a", "128k"], "opus": ["-b:a", "128k"]}


def run_ffmpeg(*args: str, target: str | os.PathLike, what: str, stdin: bytes | None = None):
    """Run `ffmpeg -v error *args` to write `target`; ProcessingError naming it if ffmpeg fails."""
    res = _run(_ffmpeg("-v", "error", *args), input=stdin)
    if res.returncode != 0:
        raise ProcessingError(f"{target}: ffmpeg failed to {what} ({_error_line(res.stderr)})")


def mux_audio(
    video: str | os.PathLike,
    audio_wav: str | os.PathLike,
    out: str | os.PathLike,
    *,
    keep_original: bool = False,
    language: str = "eng",
    title: str = "Dub",
    original_title: str = "Original",
    force: bool = False,
    audio_codec: str | None = None,
) -> Path:
    """`video` with `audio_wav` as its (default) audio track; the video stream is copied.

    Containers by extension: .mp4/.m4v/.mov (aac), .mkv (aac, or audio_codec="opus"), .webm
    (opus). keep_original keeps the source's audio tracks after the dub, not default, titled
    `original_title`, their language kept.
    """
    video, audio_wav, out = Path(video), Path(audio_wav), Path(out)
    ext = out.suffix.lower()
    if ext not in _AUDIO_CODECS:
        raise OutputError(f"{out}: unsupported container {ext!r} (use .mp4, .mov, .mkv or .webm)")
    vinfo, ainfo = probe(video), probe(audio_wav)
    if not vinfo.has_video:
        raise InputError(f"{video}: has no video stream")
    if not ainfo.has_audio:
        raise InputError(f"{audio_wav}: has no audio stream")
    if ext == ".webm" and vinfo.video_codec not in ("vp8", "vp9", "av1"):
        raise OutputError(
            f"{out}: WebM holds only VP8/VP9/AV1 video, {video.name} is {vinfo.video_codec}"
            " (use .mkv or .mp4 to keep the video stream as is)"
        )
    if abs(ainfo.duration - vinfo.duration) > 0.5:
        log.warning(
            "%s: audio lasts %.2f s, video %.2f s", audio_wav, ainfo.duration, vinfo.duration
        )
    if audio_codec not in (None, "aac", "opus") or (ext == ".webm" and audio_codec == "aac"):
        raise OutputError(f"{out}: audio codec {audio_codec!r} not offered for {ext} (aac, opus)")
    codec = "libopus" if audio_codec == "opus" else _AUDIO_CODECS[ext]
    originals = vinfo.audio_streams if keep_original else ()
    cmd = ["-i", _url(video), "-i", _url(audio_wav)]
    cmd += ["-map", "0:V", "-map", "1:a:0"] + [
        a for s in originals for a in ("-map", f"0:a:{s.index}")
    ]
    cmd += ["-c:v", "copy", "-c:a:0", codec, *_ENCODER_ARGS.get(codec, []), "-ar:a:0", "48000"]
    cmd += ["-metadata:s:a:0", f"language={language}", "-disposition:a:0", "default"]
    cmd += ["-metadata:s:a:0", f"title={title}", "-metadata:s:a:0", f"handler_name={title}"]
    for i, s in enumerate(originals, start=1):
        name = original_title if len(originals) == 1 else f"{original_title} {i}"
        if ext in _COPYABLE and s.codec not in _COPYABLE[ext]:
            cmd += [f"-c:a:{i}", codec, *_ENCODER_ARGS.get(codec, [])]
        else:
            cmd += [f"-c:a:{i}", "copy"]
        cmd += [f"-metadata:s:a:{i}", f"title={name}", f"-metadata:s:a:{i}", f"handler_name={name}"]
        cmd += [f"-disposition:a:{i}", "0"]
    same_family = ("matroska" in vinfo.format_name) == (ext in (".mkv", ".webm"))
    if vinfo.subtitle_streams and same_family and ext != ".webm":
        cmd += ["-map", "0:s", "-c:s", "copy"]  # subtitle codecs only fit their own family
    if ext in (".mp4", ".m4v", ".mov"):
        cmd += ["-movflags", "+faststart"]
    with atomic_path(out, force=force) as tmp:
        run_ffmpeg(*cmd, "-y", _url(tmp), target=out, what="mux the audio")
    return out


def write_video(
    frames: Iterable[np.ndarray],
    out: str | os.PathLike,
    fps: float = VIDEO_FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
    *,
    force: bool = True,
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames: h264 yuv420p (.mp4/.mov/.mkv) or vp9 (.webm).

    Odd sizes are padded to even ones (yuv420p). `audio`: float (n,) or (n, channels) at
    `sample_rate`, encoded as aac (opus for .webm). Frames stream to ffmpeg one at a time.
    """
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in _AUDIO_CODECS:
        raise OutputError(f"{out}: unsupported container {ext!r} (use .mp4, .mov, .mkv or .webm)")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError(f"{out}: no frames to write")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"{out}: frames must be (H, W, 3) RGB, got {first.shape}")
    h, w = first.shape[:2]
    with tempfile.TemporaryDirectory(prefix="dubcli-") as td, atomic_path(out, force=force) as tmp:
        cmd = _ffmpeg("-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}")
        cmd += ["-framerate", f"{fps}", "-i", "pipe:0"]
        if audio is not None:
            import soundfile as sf

            wav_path = Path(td) / "audio.wav"
            sf.write(wav_path, np.asarray(audio, np.float32), int(sample_rate), subtype="FLOAT")
            cmd += ["-i", _url(wav_path), "-map", "0:v", "-map", "1:a"]
            cmd += ["-c:a", _AUDIO_CODECS[ext], *_ENCODER_ARGS[_AUDIO_CODECS[ext]]]
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"]
        if ext == ".webm":
            cmd += ["-c:v", "libvpx-vp9", "-crf", str(crf + 12), "-b:v", "0", "-deadline", "good"]
            cmd += ["-cpu-used", "4", "-row-mt", "1"]
        else:
            cmd += ["-c:v", "libx264", "-crf", str(crf), "-preset", "fast"]
        if ext in (".mp4", ".m4v", ".mov"):
            cmd += ["-movflags", "+faststart"]
        cmd += ["-y", _url(tmp)]
        _pipe_frames(cmd, first, it, (h, w), out)
    return out


def _pipe_frames(cmd, first, rest, hw, out: Path) -> None:
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errfile)
    try:
        for i, frame in enumerate(itertools.chain([first], rest)):
            frame = np.asarray(frame)
            if frame.shape != (*hw, 3):
                raise ValueError(f"{out}: frame {i} is {frame.shape}, expected {(*hw, 3)}")
            if frame.dtype != np.uint8:
                frame = np.clip(frame, 0, 255).astype(np.uint8)
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # ffmpeg died: its stderr says why
    finally:
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        if proc.wait() != 0:
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
            raise ProcessingError(f"{out}: ffmpeg failed to encode video ({_error_line(err)})")
        errfile.close()


# ---------------------------------------------------------------------------- test media


_TEST_CODECS = {
    ".mp4": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".mov": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".mkv": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    ".webm": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        ["-c:a", "libopus"],
    ),
    ".wav": ([], ["-c:a", "pcm_s16le"]),
    ".flac": ([], ["-c:a", "flac"]),
    ".mp3": ([], ["-c:a", "libmp3lame", "-b:a", "128k"]),
    ".m4a": ([], ["-c:a", "aac"]),
    ".ogg": ([], ["-c:a", "libvorbis"]),
    ".opus": ([], ["-c:a", "libopus"]),
}


def make_test_video(
    path: str | os.PathLike,
    seconds: float,
    fps: float = VIDEO_FPS,
    size: tuple[int, int] = (160, 120),
    audio: bool = True,
    tone_hz: float = 440.0,
    sample_rate: int = 44100,
    channels: int = 1,
) -> Path:
    """A lavfi test clip (testsrc pattern + sine tone) for tests and examples; codecs by suffix.

    Audio-only suffixes (.wav .flac .mp3 .m4a .ogg .opus) give just the tone.
    """
    path = Path(path)
    vargs, aargs = _TEST_CODECS[path.suffix.lower()]
    cmd = []
    if vargs:
        w, h = size
        cmd += ["-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio or not vargs:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate={sample_rate}"]
        # pan copies the tone at full level into every channel (-ac would scale it by 1/sqrt 2)
        pan = f"pan={channels}c|" + "|".join(f"c{i}=c0" for i in range(channels))
        cmd += ["-t", str(seconds), *aargs, "-af", pan]
    if vargs:
        cmd += [*vargs, "-pix_fmt", "yuv420p"]
    with atomic_path(path) as tmp:
        run_ffmpeg(*cmd, "-y", _url(tmp), target=path, what="make a test clip")
    return path
