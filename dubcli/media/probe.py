"""Probing media files: streams, duration, frame geometry, and container truncation checks.

ffprobe's JSON when a system ffprobe exists, else ffmpeg's `-i` stream dump (imageio-ffmpeg
ships no ffprobe). Results are cached by (path, mtime, size, ffprobe).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dubcli.errors import InputError
from dubcli.media.ffmpeg import _error_line, _ffmpeg, _run, _url, check_readable, find_ffprobe


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
