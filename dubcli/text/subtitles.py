"""Subtitle cues: read subtitle files into `Cue`s, write SRT (DESIGN 3, the text input).

Read: SRT, WebVTT, ASS/SSA, TTML/DFXP, SAMI, MicroDVD and MPL2 (subtitle_formats.py says which
parser reads which, and why). Real subtitle files are messy, so reading is tolerant and every
repair is logged once with a count:
- encodings (here, for every format): UTF-8 (with or without BOM), UTF-16/32 with BOM, BOM-less
  UTF-16, cp1252 fallback; line ends CRLF / CR / LF;
- markup, speakers and sound-only cues: subtitle_markup.py;
- cues are sorted by start and re-indexed from 1; zero/negative-length and empty cues are dropped;
  overlaps are kept (the dub timeline decides what to do with them).

Sound-only cues ("[music]", "(APPLAUSE)", "♪ la la ♪") are KEPT with their text and marked by
`Cue.is_sound_only`; `Cue.speech_text` is what should be spoken (sound descriptions removed), so
the dubbing step skips them but the output subtitles can still show them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dubcli.console import get_logger
from dubcli.errors import InputError
from dubcli.text import subtitle_formats as formats
from dubcli.text.subtitle_formats import SUFFIX_FORMATS, format_srt_timestamp, parse_timestamp
from dubcli.text.subtitle_markup import SPACES, speech_text

__all__ = ["SUFFIX_FORMATS", "Cue", "format_srt_timestamp", "parse_timestamp", "read_cues",
           "write_srt"]  # fmt: skip

log = get_logger(__name__)


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
        return speech_text(self.text)

    @property
    def is_sound_only(self) -> bool:
        """True for "[music]", "♪ ... ♪", "(APPLAUSE)": nothing to dub in this cue."""
        return not self.speech_text


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


# ---------------------------------------------------------------- public API


def read_cues(path: str | Path, *, fps: float | None = None) -> list[Cue]:
    """Read a subtitle file into cues sorted by start and numbered from 1.

    The format comes from the content, or from the extension when the content does not show it
    (a warning when the two disagree). `fps`: the video's frame rate, for MicroDVD files that
    count frames without naming their rate. Raises InputError (naming the file) for a missing
    file, a directory, undecodable bytes, an empty file or a file with no valid cues.
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
    if data.startswith(b"\x00\x00\x01\xba"):  # an MPEG pack header: VobSub's .sub (with .idx)
        raise InputError(f"{path}: VobSub image subtitles (pictures, not text); need a text file")
    text = _decode(path, data).replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.strip():
        raise InputError(f"{path}: empty subtitle file")
    if "\x00" in text:
        raise InputError(f"{path}: binary data, not a text subtitle file")

    by_suffix = SUFFIX_FORMATS.get(path.suffix.lower())
    sniffed = formats.sniff(text)
    fmt = sniffed or by_suffix
    if fmt is None:
        raise InputError(
            f"{path}: not a subtitle file (no SRT/VTT timing lines, ASS events, TTML/SAMI "
            "document or MicroDVD/MPL2 lines)"
        )
    if by_suffix and sniffed and by_suffix != sniffed:
        log.warning("%s: extension says %s but the content is %s; read as %s", path,
                    by_suffix, sniffed, sniffed)  # fmt: skip

    stats: Counter[str] = Counter()
    try:
        raw = formats.parse(fmt, text, stats, fps)
    except formats.FormatError as exc:
        raise InputError(f"{path}: {exc}") from exc
    return _finish(path, raw, stats)


def _finish(path: Path, raw: list[formats.RawCue], stats: Counter[str]) -> list[Cue]:
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
        text = SPACES.sub(" ", cue.text).strip()
        if with_speakers and cue.speaker:
            text = f"{cue.speaker}: {text}"
        blocks.append(
            f"{i}\n{format_srt_timestamp(cue.start)} --> {format_srt_timestamp(cue.end)}\n{text}\n"
        )
    return atomic_write_text(path, "\n".join(blocks), force=force)
