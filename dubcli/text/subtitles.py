"""Subtitle cues: read SRT / WebVTT / ASS-SSA into `Cue`s, write SRT (DESIGN 3, the text input).

Real subtitle files are messy, so reading is tolerant and every repair is logged once with a count:
- encodings: UTF-8 (with or without BOM), UTF-16/32 with BOM, BOM-less UTF-16, cp1252 fallback;
- line ends CRLF / CR / LF; HTML tags and entities; ASS override tags, \\N \\n \\h, drawings;
- SRT: missing index lines, extra blank lines, ',' or '.' before milliseconds, hours > 99;
- VTT: header, NOTE / STYLE / REGION blocks, cue identifiers, cue settings, <v> voice tags;
- ASS: the [Events] Format line decides the field order; Comment lines are skipped;
- cues are sorted by start and re-indexed from 1; zero/negative-length and empty cues are dropped;
  overlaps are kept (the dub timeline decides what to do with them).

Sound-only cues ("[music]", "(APPLAUSE)", "♪ la la ♪") are KEPT with their text and marked by
`Cue.is_sound_only`; `Cue.speech_text` is what should be spoken (sound descriptions removed), so
the dubbing step skips them but the output subtitles can still show them.

Speaker rule (see `_split_speaker`): at the start of a line, `>> NAME:`, `- NAME:`, `NAME:`,
`[NAME]:` or `[NAME] text`, where NAME is 1-3 words of at most 30 characters, each word starting
with an upper-case letter, and the whole either ALL CAPS or Title Case (digits . ' - allowed
inside, e.g. "DR. SMITH", "O'BRIEN", "GUARD 2"). The bare `NAME:` form needs text after the
colon and NAME must not be a prose label ("Note:", "Warning:", "Step:", ...: `_NOT_SPEAKERS`);
a time like "10:30" never matches because NAME must start with a letter. `[NAME] text` without
a colon is a speaker only when NAME is not a sound word ("[LAUGHS] Hi" is a sound description).
VTT `<v NAME>` and the ASS Name field set the speaker directly. When one cue names two speakers
(dialogue dashes), the first is kept and the case is logged.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dubcli.console import get_logger
from dubcli.errors import InputError

log = get_logger(__name__)

SUFFIX_FORMATS = {".srt": "srt", ".vtt": "vtt", ".webvtt": "vtt", ".ass": "ass", ".ssa": "ass"}


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: times in seconds, text with tags removed and lines joined by a space."""

    index: int  # 1-based position after sorting by start
    start: float  # seconds
    end: float  # seconds, > start
    text: str  # display text (sound descriptions kept), one line
    speaker: str | None = None  # from a speaker tag, <v NAME> or the ASS Name field

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def speech_text(self) -> str:
        """The words to speak: text without [sound], (SOUND) and ♪ lyrics ♪ descriptions."""
        return _speech_text(self.text)

    @property
    def is_sound_only(self) -> bool:
        """True for "[music]", "♪ ... ♪", "(APPLAUSE)": nothing to dub in this cue."""
        return not self.speech_text


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


# ---------------------------------------------------------------- decoding


def _decode(path: Path, data: bytes) -> str:
    """Bytes -> text: BOMs first, then strict UTF-8, BOM-less UTF-16, cp1252."""
    for bom, enc in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(enc)
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: undecodable bytes for {enc} ({exc.reason})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # BOM-less UTF-16: ASCII-range text puts a NUL in every other byte.
    half = max(1, len(data) // 2)
    for enc, zeros in (("utf-16-le", data[1::2]), ("utf-16-be", data[0::2])):
        if zeros.count(0) > 0.4 * half:
            try:
                return data.decode(enc)
            except UnicodeDecodeError:
                break
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: undecodable bytes (not UTF-8, UTF-16 or cp1252, byte {exc.start})"
        ) from exc
    log.warning("%s: not UTF-8, read as cp1252 (Windows-1252)", path)
    return text


# ---------------------------------------------------------------- text cleaning

_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")  # tags and VTT karaoke timestamps
_ASS_BLOCK = re.compile(r"\{([^{}]*)\}")
_ASS_DRAWING = re.compile(r"\\p(\d+)")
_SPACES = re.compile(r"\s+")


def _strip_ass(text: str) -> str:
    """Remove {override} blocks and drawings ({\\p1} m 0 0 l ... {\\p0}); \\N \\n -> newline."""
    out, pos, drawing = [], 0, False
    for m in _ASS_BLOCK.finditer(text):
        if not drawing:
            out.append(text[pos : m.start()])
        scales = _ASS_DRAWING.findall(m.group(1))
        if scales:
            drawing = int(scales[-1]) > 0
        pos = m.end()
    if not drawing:
        out.append(text[pos:])
    return re.sub(r"\\[Nn]", "\n", "".join(out)).replace("\\h", " ")


def _strip_html(text: str) -> str:
    return html.unescape(_HTML_TAG.sub("", text)).replace("\u00a0", " ")


_SOUND_WORDS = {
    "applause", "beep", "beeping", "bell", "bells", "breathing", "chuckles", "chuckling",
    "cheering", "cheers", "coughs", "coughing", "crying", "door", "explosion", "gasps",
    "gasping", "groans", "gunshot", "gunshots", "inaudible", "indistinct", "knocking", "laughs",
    "laughing", "laughter", "music", "noise", "phone", "ringing", "screams", "screaming",
    "sighs", "sighing", "silence", "sniffs", "sobbing", "static", "thunder", "whispers",
    "whispering", "yells", "sings", "singing", "humming", "clapping", "footsteps", "grunts",
}  # fmt: skip
_NOT_SPEAKERS = {
    "note", "notes", "nb", "warning", "caution", "example", "answer", "question", "remember",
    "ps", "p.s.", "update", "tip", "hint", "step", "chapter", "part", "re", "subject", "date",
    "time", "location", "translation", "translator", "lyrics", "summary", "listen", "look",
    "well", "so", "now", "okay", "ok", "yes", "no", "wait", "please", "attention", "important",
    "reminder", "fact", "result", "problem", "rule", "lesson", "scene", "title", "caption",
    "source", "credits", "subtitles", "sync", "episode", "season", "fyi", "error", "hey",
    "act", "verse", "chorus", "day", "week", "level", "round", "exhibit", "figure", "table",
    "page", "section", "item", "fwd", "cc", "to", "from", "where", "when", "why", "what",
}  # fmt: skip
_NAME = r"[A-Z][A-Za-z0-9.'\-]*(?: [A-Z0-9][A-Za-z0-9.'\-]*){0,2}"
_SPEAKER_PATTERNS = [
    re.compile(rf"^(?:>>\s*|-\s*)?\[({_NAME})\]\s*:\s*(.*)$"),  # [NAME]: text
    re.compile(rf"^(?:>>\s*|-\s*)?({_NAME})\s*:\s+(\S.*)$"),  # NAME: text, >> NAME:, - NAME:
    re.compile(rf"^(?:>>\s*|-\s*)?\[({_NAME})\]\s+(\S.*)$"),  # [NAME] text
]


def _is_name(name: str, bare: bool) -> bool:
    # _NAME already requires every word to start with a capital (or a digit): ALL CAPS or Title.
    words = name.lower().split()
    if len(name) > 30 or not any(c.isalpha() for c in name):
        return False
    return not (bare and (name.lower() in _NOT_SPEAKERS or words[0] in _NOT_SPEAKERS))


def _is_sound(name: str) -> bool:
    """'[LAUGHS] hi', '[SIREN WAILING] go': a description, not a speaker."""
    words = name.lower().split()
    return any(w in _SOUND_WORDS or w.endswith("ing") for w in words) or len(words) > 2


def _split_speaker(line: str) -> tuple[str | None, str]:
    """'JOHN: hi' -> ('JOHN', 'hi'); lines without a speaker tag come back unchanged."""
    for i, pattern in enumerate(_SPEAKER_PATTERNS):
        m = pattern.match(line)
        if not m:
            continue
        name, rest = m.group(1).strip(), m.group(2).strip()
        if i == 2 and _is_sound(name):
            continue
        if _is_name(name, bare=i == 1):
            return name, rest
    return None, line


_SOUND_SPANS = [
    re.compile(r"\[[^\[\]]*\]"),  # [music], [door closes]
    re.compile(r"\(\s*[A-Z][^()a-z]*\)"),  # (APPLAUSE) - all-caps parentheses only
    re.compile(r"[♪♫][^♪♫]*(?:[♪♫]|$)"),  # ♪ lyrics ♪
]


def _speech_text(text: str) -> str:
    for pattern in _SOUND_SPANS:
        text = pattern.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    # A line that is only "(laughing softly)" in lower case is a description too.
    if re.fullmatch(r"\([^()]*\)", text):
        return ""
    return text if any(c.isalnum() for c in text) else ""


def _clean_lines(
    lines: list[str], tagged: list[str], stats: Counter[str]
) -> tuple[str, str | None]:
    """Payload lines -> (one-line text, speaker). `tagged`: speakers known from the format."""
    parts, speakers = [], [s for s in tagged if s]
    for line in lines:
        line = _SPACES.sub(" ", line).strip()
        if not line:
            continue
        name, rest = _split_speaker(line)
        if name:
            speakers.append(name)
        else:
            rest = re.sub(r"^(?:>+\s*|-+\s+|-(?=[^\W\d]))", "", rest)  # dialogue dash, >>
        if rest:
            parts.append(rest)
    if len({s.lower() for s in speakers}) > 1:
        stats["multi_speaker"] += 1
    return " ".join(parts), (speakers[0] if speakers else None)


# ---------------------------------------------------------------- formats


def _sniff(text: str) -> str | None:
    head = text.lstrip()[:4096]
    if head.startswith("WEBVTT"):
        return "vtt"
    if re.search(r"^\s*\[(Script Info|Events|V4\+? Styles)\]", head, re.M | re.I) or re.search(
        r"^Dialogue:\s*[^,\n]*,\s*\d+:\d\d:\d\d", text, re.M
    ):
        return "ass"
    if re.search(r"^.*-->.*$", text, re.M):
        return "srt"
    return None


_RawCue = tuple[float, float, str, "str | None"]


def _parse_srt(text: str, stats: Counter[str]) -> list[_RawCue]:
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
        body = _strip_html(_strip_ass("\n".join(body))).split("\n")  # SRTs often carry {\an8}
        text_, speaker = _clean_lines(body, [], stats)
        out.append((times[0], times[1], text_, speaker))
    return out


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")


def _parse_vtt(text: str, stats: Counter[str]) -> list[_RawCue]:
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
        text_, speaker = _clean_lines(_strip_html(payload).split("\n"), voices, stats)
        out.append((times[0], times[1], text_, speaker))
    return out


_ASS_DEFAULT_FORMAT = "Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"


def _parse_ass(text: str, stats: Counter[str]) -> list[_RawCue]:
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
        speaker = (row.get("name") or row.get("actor") or "").strip() or None
        lines = _strip_html(_strip_ass(row.get("text", ""))).split("\n")
        text_, speaker = _clean_lines(lines, [speaker] if speaker else [], stats)
        out.append((start, end, text_, speaker))
    return out


_PARSERS = {"srt": _parse_srt, "vtt": _parse_vtt, "ass": _parse_ass}


# ---------------------------------------------------------------- public API


def read_cues(path: str | Path) -> list[Cue]:
    """Read an SRT, WebVTT or ASS/SSA file into cues sorted by start and numbered from 1.

    The format comes from the extension, or from the content when the extension is missing or
    contradicts it. Raises InputError (naming the file) for a missing file, a directory,
    undecodable bytes, an empty file or a file with no valid cues.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: subtitle file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a subtitle file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    text = _decode(path, data).replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.strip():
        raise InputError(f"{path}: empty subtitle file")
    if "\x00" in text:
        raise InputError(f"{path}: binary data, not a text subtitle file")

    by_suffix = SUFFIX_FORMATS.get(path.suffix.lower())
    sniffed = _sniff(text)
    fmt = sniffed or by_suffix
    if fmt is None:
        raise InputError(f"{path}: not a subtitle file (no SRT/VTT timing lines or ASS events)")
    if by_suffix and sniffed and by_suffix != sniffed:
        log.warning("%s: extension says %s but the content is %s; read as %s", path,
                    by_suffix, sniffed, sniffed)  # fmt: skip

    stats: Counter[str] = Counter()
    raw = _PARSERS[fmt](text, stats)
    return _finish(path, raw, stats)


def _finish(path: Path, raw: list[_RawCue], stats: Counter[str]) -> list[Cue]:
    kept = []
    for start, end, text, speaker in raw:
        if end <= start:
            stats["bad_length"] += 1
        elif not text:
            stats["empty"] += 1
        else:
            kept.append((start, end, text, speaker))
    if not kept:
        reasons = [f"{stats[k]} {label}" for k, (label, _) in _REASONS.items() if stats[k]]
        raise InputError(f"{path}: no valid cues ({', '.join(reasons) or 'no timing lines found'})")
    stats["out_of_order"] = sum(1 for a, b in zip(kept, kept[1:], strict=False) if b[0] < a[0])
    kept.sort(key=lambda c: (c[0], c[1]))  # stable: equal starts keep file order
    stats["overlap"] = sum(1 for a, b in zip(kept, kept[1:], strict=False) if b[0] < a[1])
    cues = [Cue(i + 1, s, e, t, spk) for i, (s, e, t, spk) in enumerate(kept)]
    stats["sound_only"] = sum(c.is_sound_only for c in cues)
    for key, (label, action) in _REASONS.items():
        if stats[key]:
            log.warning("%s: %d %s: %s", path, stats[key], label, action)
    return cues


# Quirk -> (what, what was done). The first four are the reasons a file can have no valid cues.
_REASONS = {
    "invalid_timestamp": ("blocks with invalid timestamps", "skipped"),
    "junk_block": ("blocks without a timing line", "skipped"),
    "bad_length": ("cues with zero or negative length", "dropped"),
    "empty": ("cues with no text", "dropped"),
    "ass_comment": ("ASS Comment lines", "skipped"),
    "out_of_order": ("cues out of order", "sorted by start"),
    "overlap": ("overlapping cues", "kept"),
    "multi_speaker": ("cues with more than one speaker", "first speaker kept"),
    "sound_only": ("sound-only cues like [music]", "kept, marked is_sound_only"),
}


def write_srt(cues: list[Cue], path: str | Path, force: bool = True, *,
              with_speakers: bool = False) -> Path:  # fmt: skip
    """Write cues as UTF-8 SRT, numbered 1..n in the given order (atomic: temp file + rename).

    with_speakers=True prefixes each cue's text with "NAME: " when it has a speaker.
    """
    from dubcli.fsutil import atomic_write_text

    blocks = []
    for i, cue in enumerate(cues, start=1):
        if cue.start < 0 or cue.end <= cue.start:
            raise ValueError(f"cue {cue.index}: bad times {cue.start} -> {cue.end}")
        text = _SPACES.sub(" ", cue.text).strip()
        if with_speakers and cue.speaker:
            text = f"{cue.speaker}: {text}"
        blocks.append(
            f"{i}\n{format_srt_timestamp(cue.start)} --> {format_srt_timestamp(cue.end)}\n{text}\n"
        )
    return atomic_write_text(path, "\n".join(blocks), force=force)
