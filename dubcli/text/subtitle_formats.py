"""Subtitle formats: which one a text is, and its cues' times and payload lines.

SRT, WebVTT and ASS/SSA are parsed here by hand; TTML/DFXP, SAMI, MicroDVD and MPL2 by pysubs2.
pysubs2 1.8.1 was tried for all of them (issue 13): 6 of the 61 reader tests failed, each a
silent data error or a crash where the hand-written parsers repair and count:
- SRT: hours are read as 1-2 digits, so "100:00:00,000" became 00:00:00 (the cue moved to 0 s;
  the missing-index test and the write_srt round trip of a 100-hour cue); a block whose timing
  line has a bad timestamp ("00:00:1x,000") was appended, timing line and all, to the previous
  cue's text, which would have been spoken, and was not counted (the bad-lengths test and the
  "no valid cues (3 blocks with invalid timestamps)" message); "00:00:07" without a fraction is
  not a timing line;
- ASS: the [Events] Format line is ignored (fixed field order), so a reordered Format line
  raised on the first Dialogue (the ASS and the sniffing tests); one bad timestamp fails the
  whole file;
- WebVTT (not in the tests, checked by hand): a cue identifier or NOTE block after the first
  cue became part of the previous cue's text; "00:01.5" (one fraction digit) is not a timestamp.
The other four formats have no hand-written parser to lose to, so pysubs2 reads them; the
encodings, markup, speakers and sound-only cues stay ours for every format (subtitles.py,
subtitle_markup.py).

SRT: missing index lines, extra blank lines, ',' or '.' before milliseconds, hours > 99.
VTT: header, NOTE / STYLE / REGION blocks, cue identifiers, cue settings, <v> voice tags.
ASS: the [Events] Format line decides the field order; Comment lines are skipped.
TTML: the old DFXP namespaces are read as TTML; frame- and tick-based times are refused.
SAMI: a caption lasts until the next SYNC (pysubs2 guesses ends from the text length).
MicroDVD: frame numbers; the rate comes from a first "{1}{1}25" line, else from `fps`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from dubcli.text.subtitle_markup import clean_lines, strip_ass, strip_html


class RawCue(NamedTuple):
    start: float  # seconds
    end: float  # seconds (not yet checked against start)
    text: str  # one line, markup removed, speaker tag split off
    speaker: str | None


class FormatError(ValueError):
    """The file is in a known format but cannot be read (the message says why, without path)."""


# ---------------------------------------------------------------- timestamps

_TS = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.:](\d+))?\s*$")


def parse_timestamp(text: str) -> float:
    """'01:02:03,456' / '01:02:03.456' / '02:03.456' / '0:02:03.45' (ASS) -> seconds.

    Hours may exceed 99; the fraction is read as a decimal fraction (',5' = 0.5 s). Minutes and
    seconds must be < 60. Raises ValueError for anything else.
    """
    m = _TS.match(text)
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    hours, minutes, seconds, frac = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise ValueError(f"minutes/seconds out of range: {text!r}")
    value = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return value + (int(frac) / 10 ** len(frac) if frac else 0.0)


def format_srt_timestamp(seconds: float) -> str:
    """Seconds -> 'HH:MM:SS,mmm' (rounded to the millisecond; hours grow past 99 if needed)."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(.*)$")


def _parse_timing(line: str) -> tuple[float, float] | None:
    m = _TIMING.match(line)
    if not m:
        return None
    try:
        return parse_timestamp(m.group(1)), parse_timestamp(m.group(2))
    except ValueError:
        return None


# ---------------------------------------------------------------- sniffing

SUFFIX_FORMATS = {
    ".srt": "srt", ".vtt": "vtt", ".webvtt": "vtt", ".ass": "ass", ".ssa": "ass",
    ".ttml": "ttml", ".dfxp": "ttml", ".smi": "sami", ".sami": "sami", ".sub": "microdvd",
}  # fmt: skip
FORMAT_NAMES = {"srt": "SRT", "vtt": "WebVTT", "ass": "ASS/SSA", "ttml": "TTML",
                "sami": "SAMI", "microdvd": "MicroDVD", "mpl2": "MPL2"}  # fmt: skip
_TTML_NAMESPACES = ("http://www.w3.org/ns/ttml", "http://www.w3.org/2006/10/ttaf1",
                    "http://www.w3.org/2006/04/ttaf1")  # fmt: skip
_MICRODVD_LINE = re.compile(r"^ *\{ *\d+ *\} *\{ *\d+ *\}.", re.M)  # as pysubs2 reads them
_MPL2_LINE = re.compile(r"^\[-?\d+\]\[-?\d+\]", re.M)


def sniff(text: str) -> str | None:
    """The format the content shows, or None. The XML formats are checked before SRT because
    their comments end in '-->', which would look like an SRT timing line."""
    head = text.lstrip()[:4096]
    if head.startswith("WEBVTT"):
        return "vtt"
    if re.search(r"^\s*\[(Script Info|Events|V4\+? Styles)\]", head, re.M | re.I) or re.search(
        r"^Dialogue:\s*[^,\n]*,\s*\d+:\d\d:\d\d", text, re.M
    ):
        return "ass"
    if re.search(r"<(?:\w+:)?tt[\s>]", head) and any(ns in head for ns in _TTML_NAMESPACES):
        return "ttml"
    if re.search(r"<sami[\s>]", head, re.I):
        return "sami"
    if re.search(r"^.*-->.*$", text, re.M):
        return "srt"
    if _MICRODVD_LINE.search(head):
        return "microdvd"
    if _MPL2_LINE.search(head):
        return "mpl2"
    return None


# ---------------------------------------------------------------- hand-written parsers


def _parse_srt(text: str, stats: Counter[str]) -> list[RawCue]:
    # Scan for timing lines; a cue's text runs to the next timing line. This survives missing
    # index lines and extra blank lines; an integer line right before a timing line is its index.
    lines = text.split("\n")
    timing_rows = [i for i, line in enumerate(lines) if "-->" in line]
    out = []
    for k, i in enumerate(timing_rows):
        stop = timing_rows[k + 1] if k + 1 < len(timing_rows) else len(lines)
        body = lines[i + 1 : stop]
        if k + 1 < len(timing_rows) and body and body[-1].strip().isdigit():
            body = body[:-1]
        times = _parse_timing(lines[i])
        if times is None:
            stats["invalid_timestamp"] += 1
            continue
        body = strip_html(strip_ass("\n".join(body))).split("\n")  # SRTs often carry {\an8}
        out.append(RawCue(*times, *clean_lines(body, [], stats)))
    return out


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")


def _parse_vtt(text: str, stats: Counter[str]) -> list[RawCue]:
    out = []
    blocks = re.split(r"\n[ \t]*\n", text)
    for n, block in enumerate(blocks):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or (n == 0 and lines[0].lstrip().startswith("WEBVTT")):
            continue
        if re.match(r"(NOTE|STYLE|REGION)(\s|$)", lines[0]):
            continue
        row = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if row is None:
            stats["junk_block"] += 1
            continue
        times = _parse_timing(lines[row])  # cue settings after the end time are ignored
        if times is None:
            stats["invalid_timestamp"] += 1
            continue
        payload = "\n".join(lines[row + 1 :])
        voices = [v.strip() for v in _VOICE.findall(payload)]
        out.append(RawCue(*times, *clean_lines(strip_html(payload).split("\n"), voices, stats)))
    return out


_ASS_DEFAULT_FORMAT = "Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"


def _parse_ass(text: str, stats: Counter[str]) -> list[RawCue]:
    out, section = [], ""
    fields = [f.strip().lower() for f in _ASS_DEFAULT_FORMAT.split(",")]
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].strip().lower()
            continue
        if section not in ("events", ""):
            continue
        key, _, value = s.partition(":")
        if key == "Format":
            fields = [f.strip().lower() for f in value.split(",")]
            continue
        if key == "Comment":
            stats["ass_comment"] += 1
            continue
        if key != "Dialogue":
            continue
        # Text is the last field and may contain commas, hence maxsplit.
        values = [v.strip() for v in value.split(",", len(fields) - 1)]
        row = dict(zip(fields, values, strict=False))
        try:
            start, end = parse_timestamp(row["start"]), parse_timestamp(row["end"])
        except (KeyError, ValueError):
            stats["invalid_timestamp"] += 1
            continue
        speaker = (row.get("name") or row.get("actor") or "").strip()
        lines = strip_html(strip_ass(row.get("text", ""))).split("\n")
        out.append(RawCue(start, end, *clean_lines(lines, [speaker], stats)))
    return out


# ---------------------------------------------------------------- pysubs2 formats


def _parse_pysubs2(fmt: str, text: str, stats: Counter[str], fps: float | None) -> list[RawCue]:
    import pysubs2

    if fmt == "ttml":  # pysubs2 looks for TTML's namespace; DFXP files use the draft ones
        for ns in _TTML_NAMESPACES[1:]:
            text = text.replace(ns, _TTML_NAMESPACES[0])
    try:
        try:
            subs = pysubs2.SSAFile.from_string(text, format_=fmt)
        except pysubs2.exceptions.UnknownFPSError:
            # A "{1}{1}25" first line gives the rate; without one, use the caller's (the video's).
            if fps is None:
                raise FormatError(
                    "MicroDVD counts video frames but names no frame rate; add a first line "
                    "like {1}{1}25 with the video's frame rate"
                ) from None
            subs = pysubs2.SSAFile.from_string(text, format_=fmt, fps=fps)
    except FormatError:  # ours, above (a ValueError: keep it from the generic clause below)
        raise
    except NotImplementedError as exc:  # TTML frame (f) and tick (t) times
        raise FormatError(f"unsupported {FORMAT_NAMES[fmt]} feature ({exc})") from exc
    except (pysubs2.exceptions.Pysubs2Error, SyntaxError, ValueError, KeyError) as exc:
        # SyntaxError covers xml.etree's ParseError (malformed TTML)
        raise FormatError(f"cannot read as {FORMAT_NAMES[fmt]} ({exc})") from exc
    events = [ev for ev in subs.events if not ev.is_comment]
    if fmt == "sami":
        # A SAMI caption stays up until the next SYNC; a SYNC with only &nbsp; clears the screen.
        events = sorted(events, key=lambda ev: ev.start)
        for ev, nxt in zip(events, events[1:], strict=False):
            ev.end = nxt.start
        events = [ev for ev in events if ev.plaintext.strip()]
    out = []
    for ev in events:
        lines = strip_html(strip_ass(ev.text)).split("\n")
        out.append(RawCue(ev.start / 1000, ev.end / 1000, *clean_lines(lines, [ev.name], stats)))
    return out


def parse(fmt: str, text: str, stats: Counter[str], fps: float | None = None) -> list[RawCue]:
    """Cues of `text` read as `fmt` (a SUFFIX_FORMATS value or "mpl2"), in file order.

    Skipped blocks are counted in `stats`; FormatError when the whole text cannot be read."""
    hand_written = {"srt": _parse_srt, "vtt": _parse_vtt, "ass": _parse_ass}
    if fmt in hand_written:
        return hand_written[fmt](text, stats)
    return _parse_pysubs2(fmt, text, stats, fps)
