"""What a subtitle cue's text says: markup removed, the speaker found, sound descriptions marked.

Every format's parser hands its payload lines here, so these rules are the same for SRT, WebVTT,
ASS and the formats pysubs2 reads (subtitle_formats.py).

Markup: HTML tags and entities, VTT karaoke timestamps, ASS {override} blocks and drawings
({\\p1} m 0 0 l ... {\\p0}), \\N \\n line breaks and \\h hard spaces.

Sound-only spans ("[music]", "(APPLAUSE)", "♪ la la ♪") are kept in the display text;
`speech_text` removes them, so the dub skips a cue with nothing else but its subtitles still
show it.

Speaker rule (see `split_speaker`): at the start of a line, `>> NAME:`, `- NAME:`, `NAME:`,
`[NAME]:` or `[NAME] text`, where NAME is 1-3 words of at most 30 characters, each word starting
with an upper-case letter, and the whole either ALL CAPS or Title Case (digits . ' - allowed
inside, e.g. "DR. SMITH", "O'BRIEN", "GUARD 2"). The bare `NAME:` form needs text after the
colon and NAME must not be a prose label ("Note:", "Warning:", "Step:", ...: `_NOT_SPEAKERS`);
a time like "10:30" never matches because NAME must start with a letter. `[NAME] text` without
a colon is a speaker only when NAME is not a sound word ("[LAUGHS] Hi" is a sound description).
VTT `<v NAME>` and the ASS Name field set the speaker directly (the `tagged` argument of
`clean_lines`). When one cue names two speakers (dialogue dashes), the first is kept and the
case is counted.
"""

from __future__ import annotations

import html
import re
from collections import Counter

_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")  # tags and VTT karaoke timestamps
_ASS_BLOCK = re.compile(r"\{([^{}]*)\}")
_ASS_DRAWING = re.compile(r"\\p(\d+)")
SPACES = re.compile(r"\s+")


def strip_ass(text: str) -> str:
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


def strip_html(text: str) -> str:
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


def split_speaker(line: str) -> tuple[str | None, str]:
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


def speech_text(text: str) -> str:
    """The words to speak: `text` without [sound], (SOUND) and ♪ lyrics ♪ descriptions."""
    for pattern in _SOUND_SPANS:
        text = pattern.sub(" ", text)
    text = SPACES.sub(" ", text).strip()
    # A line that is only "(laughing softly)" in lower case is a description too.
    if re.fullmatch(r"\([^()]*\)", text):
        return ""
    return text if any(c.isalnum() for c in text) else ""


def clean_lines(lines: list[str], tagged: list[str], stats: Counter[str]) -> tuple[str, str | None]:
    """Payload lines (markup already removed) -> (one-line text, speaker).

    `tagged`: speakers the format itself names (VTT <v>, the ASS Name field), before any found
    in the text. Counts "multi_speaker" in `stats` when the cue names more than one."""
    parts, speakers = [], [s for s in tagged if s]
    for line in lines:
        line = SPACES.sub(" ", line).strip()
        if not line:
            continue
        name, rest = split_speaker(line)
        if name:
            speakers.append(name)
        else:
            rest = re.sub(r"^(?:>+\s*|-+\s+|-(?=[^\W\d]))", "", rest)  # dialogue dash, >>
        if rest:
            parts.append(rest)
    if len({s.lower() for s in speakers}) > 1:
        stats["multi_speaker"] += 1
    return " ".join(parts), (speakers[0] if speakers else None)
