"""Cues -> dubbing windows: clip, skip, resolve overlaps, estimate fit, widen to lip activity.

A window is where a cue's speech goes. It starts as the cue's own [start, end); then:
- a cue starting at or after the video's end is skipped, one ending after it is clipped (warn);
- a cue with nothing to speak (sound-only text like "[music]") is skipped (warn);
- a cue the text frontend cannot pronounce (no phoneme at all, e.g. Arabic or Chinese text for
  the English frontend) is skipped (warn); a cue with some such words keeps the others (warn);
- overlapping cues (warn): the earlier window ends where the later one starts, but keeps at least
  MIN_WINDOW; a later cue left with less than MIN_WINDOW is skipped;
- with --widen-to-lips, the pipeline widens a window to the lip activity around it (at most
  MAX_WIDEN each side, never into a neighbour's window nor past the video): subtitle timings are
  often late or early by a few hundred ms, while the lips show when the speaker really talks.
Warnings of one kind on more than MAX_EACH cues become one line ("cues 7, 8, 9, ... 5000 (4994
cues): start after the video's end ..."); the plan's `skipped` keeps every cue and its reason.
Fit estimate: speaking rate needed to say the text in the window, against typical English
rates of ~12 phones/s (~2.7 words/s, 160 words/min; conversational speech is 150-190 words/min).
The baseline engine speeds speech up or slows it down within 0.7x-1.5x, so a rate above 1.5x the
typical one is "too-long" (the speech will be cut or rushed) and below half of it "too-short"
(the speech will leave long silence in the window).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dubcli.console import get_logger

log = get_logger(__name__)

TYPICAL_PPS = 12.0  # phones per second in ordinary English speech
TYPICAL_WPS = 2.7  # words per second (160 words per minute)
TOO_LONG_FACTOR = 1.5  # needs faster than 1.5x typical speech: too long for its window
TOO_SHORT_FACTOR = 0.5  # slower than half the typical rate: too short for its window
MIN_WINDOW = 0.2  # seconds: shorter windows cannot hold a word
MAX_WIDEN = 0.5  # seconds a window may grow on each side with --widen-to-lips
LIP_OPEN_CM = 0.25  # inner-lip opening (canonical cm) that counts as an open, speaking mouth
LIP_MOVE_CM = 0.04  # per-frame aperture change that counts as moving lips
FPS = 25.0
MAX_EACH = 3  # warnings of one kind on more cues than this are summarized in one line


@dataclass(frozen=True)
class Fit:
    words: int
    phonemes: int  # phones to say (word boundaries and pauses not counted)
    wps: float  # words per second needed
    pps: float  # phones per second needed
    status: str  # "ok" | "too-long" | "too-short"

    @property
    def rate_factor(self) -> float:
        """Needed rate relative to typical speech (phones if known, else words)."""
        return self.pps / TYPICAL_PPS if self.phonemes else self.wps / TYPICAL_WPS


def estimate_fit(words: int, phonemes: int, seconds: float) -> Fit:
    seconds = max(seconds, 1e-3)
    wps, pps = words / seconds, phonemes / seconds
    factor = pps / TYPICAL_PPS if phonemes else wps / TYPICAL_WPS
    status = "ok"
    if factor > TOO_LONG_FACTOR:
        status = "too-long"
    elif factor < TOO_SHORT_FACTOR:
        status = "too-short"
    return Fit(words, phonemes, round(wps, 3), round(pps, 3), status)


@dataclass(frozen=True)
class CueWindow:
    index: int  # the cue's number in the subtitle file
    text: str  # what is spoken (sound descriptions removed)
    display_text: str  # the cue's full text (for the output subtitles)
    speaker: str | None
    cue_start: float  # the cue's own times, seconds
    cue_end: float
    start: float  # the window, seconds
    end: float
    phonemes: tuple[str, ...]  # the text frontend's symbols (vocabulary of text/phonemes.py)
    fit: Fit
    notes: tuple[str, ...] = ()  # what was done to this cue (clipped, overlap, widened)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def with_window(self, start: float, end: float, note: str | None = None) -> CueWindow:
        fit = estimate_fit(self.fit.words, self.fit.phonemes, end - start)
        notes = self.notes + ((note,) if note else ())
        return dataclasses.replace(self, start=start, end=end, fit=fit, notes=notes)


@dataclass(frozen=True)
class SkippedCue:
    index: int
    text: str
    reason: str


@dataclass(frozen=True)
class DubPlan:
    windows: tuple[CueWindow, ...]
    skipped: tuple[SkippedCue, ...]
    warnings: tuple[str, ...]
    duration: float  # the video's, seconds


def _phones(symbols: Sequence[str]) -> int:
    return sum(1 for s in symbols if not s.startswith("<"))


def cue_list(indices: Sequence[int]) -> str:
    """'cue 3' | 'cues 1, 2, 5' | 'cues 1, 2, 3, ... 5000' (the first few, then the last)."""
    if len(indices) == 1:
        return f"cue {indices[0]}"
    shown = ", ".join(str(i) for i in indices[:MAX_EACH])
    return f"cues {shown}" + (f", ... {indices[-1]}" if len(indices) > MAX_EACH else "")


def summarize(notes: Sequence[tuple[str, int, str, str]]) -> list[str]:
    """(kind, cue index, per-cue message, summary of the kind) -> warning lines: each message
    when a kind has at most MAX_EACH cues, else one line naming the cues and their count."""
    kinds: dict[str, list[tuple[int, str, str]]] = {}
    for kind, index, message, summary in notes:
        kinds.setdefault(kind, []).append((index, message, summary))
    out = []
    for items in kinds.values():
        if len(items) <= MAX_EACH:
            out += [m for _, m, _ in items]
        else:
            out.append(f"{cue_list([i for i, _, _ in items])} ({len(items)} cues): {items[0][2]}")
    return out


def plan_cues(cues: Sequence, duration: float, *, phonemize: Callable | None = None) -> DubPlan:
    """Cue objects (text.subtitles.Cue) and the video's duration -> windows (see module doc).

    phonemize(text) -> PhonemeSequence; the default is text.g2p.text_to_phonemes."""
    if phonemize is None:
        from dubcli.text.g2p import text_to_phonemes as phonemize
    windows: list[CueWindow] = []
    skipped: list[SkippedCue] = []
    notes_all: list[tuple[str, int, str, str]] = []  # (kind, cue, message, kind summary)

    def warn(kind: str, index: int, message: str, summary: str) -> None:
        notes_all.append((kind, index, message, summary))

    def skip(cue, reason: str, kind: str, summary: str) -> None:
        skipped.append(SkippedCue(cue.index, cue.text, reason))
        warn(kind, cue.index, f"cue {cue.index}: {reason}; skipped", f"{summary}; skipped")

    for cue in sorted(cues, key=lambda c: (c.start, c.end)):
        text = cue.speech_text.strip()
        if not text:
            skip(cue, f"nothing to speak in {cue.text!r}", "sound", "nothing to speak (sound only)")
            continue
        if cue.start >= duration:
            skip(cue, f"starts at {cue.start:.2f} s, after the video's end ({duration:.2f} s)",
                 "after-end", f"start after the video's end ({duration:.2f} s)")  # fmt: skip
            continue
        start, end, notes = cue.start, cue.end, []
        if end > duration:
            warn("clipped", cue.index, f"cue {cue.index}: ends at {end:.2f} s, after the "
                 f"video's end ({duration:.2f} s); clipped",
                 f"end after the video's end ({duration:.2f} s); clipped")  # fmt: skip
            notes.append(f"clipped at the video's end ({end:.2f} -> {duration:.2f} s)")
            end = duration
        if end - start < MIN_WINDOW:
            skip(cue, f"window {start:.2f}-{end:.2f} s is shorter than {MIN_WINDOW} s",
                 "short", f"windows shorter than {MIN_WINDOW} s")  # fmt: skip
            continue
        phones = tuple(phonemize(text).symbols)
        if not _phones(phones):
            skip(cue, f"the text frontend cannot pronounce {text!r} (no English phoneme in it)",
                 "unpronounceable", "the text frontend cannot pronounce them")  # fmt: skip
            continue
        unknown = sum(1 for s in phones if s == "<unk>")
        if unknown:
            warn("unknown", cue.index, f"cue {cue.index}: {unknown} word(s) of {text!r} have no "
                 "English pronunciation and may be mispronounced or silent",
                 "some words have no English pronunciation")  # fmt: skip
        words = len(text.split())
        fit = estimate_fit(words, _phones(phones), end - start)
        w = CueWindow(cue.index, text, cue.text, cue.speaker, cue.start, cue.end, start, end,
                      phones, fit, tuple(notes))  # fmt: skip
        if windows and w.start < windows[-1].end:
            prev = windows[-1]
            cut = max(w.start, prev.start + MIN_WINDOW)
            warn("overlap", w.index, f"cue {w.index} overlaps cue {prev.index} "
                 f"({w.start:.2f} < {prev.end:.2f} s); cue {prev.index} now ends at {cut:.2f} s",
                 "overlap the cue before; its window was cut")  # fmt: skip
            windows[-1] = prev.with_window(prev.start, cut, f"cut to {cut:.2f} s: overlaps cue "
                                           f"{w.index}")  # fmt: skip
            if w.end - cut < MIN_WINDOW:
                skip(cue, f"overlaps cue {prev.index} almost entirely", "overlap-skip",
                     "overlap the cue before almost entirely")  # fmt: skip
                continue
            if cut > w.start:
                w = w.with_window(cut, w.end, f"starts at {cut:.2f} s: overlaps cue {prev.index}")
        windows.append(w)
    for w in windows:
        if w.fit.status != "ok":
            warn(w.fit.status, w.index, f"cue {w.index}: text is {w.fit.status} for its "
                 f"{w.duration:.2f} s window ({w.fit.wps:.1f} words/s, {w.fit.pps:.1f} phones/s)",
                 f"text is {w.fit.status} for the window")  # fmt: skip
    warnings = summarize(notes_all)
    for msg in warnings:
        log.warning("%s", msg)
    return DubPlan(tuple(windows), tuple(skipped), tuple(warnings), float(duration))


def lip_activity(aperture: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(nv,) bool: frames where the mouth is open or moving (gaps of <= 4 frames bridged)."""
    ap = np.asarray(aperture, np.float64)
    moving = np.zeros(len(ap), bool)
    moving[1:] = np.abs(np.diff(ap)) > LIP_MOVE_CM
    active = ((ap > LIP_OPEN_CM) | moving) & np.asarray(valid, bool)
    # bridge short closures (a bilabial stop closes the lips for ~100 ms inside speech)
    idx = np.flatnonzero(active)
    for a, b in zip(idx, idx[1:], strict=False):
        if 1 < b - a <= 5:
            active[a:b] = True
    return active


def widen_to_activity(
    window: CueWindow, active: np.ndarray, t0: float, lo: float, hi: float,
    max_widen: float = MAX_WIDEN,
) -> CueWindow:  # fmt: skip
    """Grow `window` to the lip-activity run(s) touching its edges.

    active: (nv,) bool per 25 fps frame, frame k at time t0 + k / 25. The window never shrinks,
    never starts before max(lo, start - max_widen) nor ends after min(hi, end + max_widen)."""
    if not len(active) or not active.any():
        return window
    times = t0 + np.arange(len(active)) / FPS
    start, end = window.start, window.end
    k = int(np.clip(round((start - t0) * FPS), 0, len(active) - 1))
    if active[k]:  # walk back through the run the window starts in
        while k > 0 and active[k - 1]:
            k -= 1
        start = min(start, float(times[k]))
    k = int(np.clip(round((end - t0) * FPS) - 1, 0, len(active) - 1))
    if active[k]:
        while k + 1 < len(active) and active[k + 1]:
            k += 1
        end = max(end, float(times[k]) + 1 / FPS)
    start = max(start, lo, window.start - max_widen)
    end = min(end, hi, window.end + max_widen)
    start, end = min(start, window.start), max(end, window.end)
    if start == window.start and end == window.end:
        return window
    note = f"widened to the lips: {window.start:.2f}-{window.end:.2f} -> {start:.2f}-{end:.2f} s"
    return window.with_window(start, end, note)


def plan_table(plan: DubPlan):
    """A rich Table of the plan (the --dry-run output). Windows are shown before any
    --widen-to-lips widening: that needs the landmarks, which only a real run computes."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"dub plan: {len(plan.windows)} cues, {len(plan.skipped)} skipped")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("window (s)", {}),
        ("dur", {"justify": "right"}),
        ("speaker", {}),
        ("words/s", {"justify": "right"}),
        ("phones/s", {"justify": "right"}),
        ("fit", {}),
        ("text", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)  # fmt: skip
    style = {"ok": "green", "too-long": "red", "too-short": "yellow"}
    for w in plan.windows:
        table.add_row(
            str(w.index), f"{w.start:.2f}-{w.end:.2f}", f"{w.duration:.2f}", w.speaker or "",
            f"{w.fit.wps:.1f}", f"{w.fit.pps:.1f}",
            Text(w.fit.status, style=style[w.fit.status]), Text(w.text),
        )  # fmt: skip
    for s in plan.skipped:
        table.add_row(str(s.index), "-", "-", "", "", "", Text("skipped", style="dim"),
                      Text(f"{s.text} ({s.reason})"))  # fmt: skip
    return table


def no_cue_message(subtitles, plan: DubPlan) -> str:
    """'no cue can be dubbed' with each skipped cue's reason (the first few, then a count)."""
    reasons = [f"cue {s.index}: {s.reason}" for s in plan.skipped]
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return f"{subtitles}: no cue can be dubbed ({len(reasons)} skipped: {shown})"
