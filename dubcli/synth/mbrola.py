"""espeak-ng + mbrola: a .pho we edit ourselves, rendered by mbrola (DESIGN 6).

espeak-ng (-v mb-XX --pho) writes the phone list a matching mbrola voice expects: phone, duration
(ms), pitch targets (percent of the phone, Hz). We rescale durations by the style's rate with
small per-phone jitter, reshape the pitch targets by the style's level and range and the
speaker's F0 scale, add our own leading/trailing pauses, and let mbrola render that file.
Phone boundaries are the .pho boundaries, placed on whole samples (ms = samples / 16).
mbrola realizes them pitch-synchronously (within one pitch period, no drift: it carries the
rounding over); the audio is cut/padded in the final pause to end exactly on the last boundary.

espeak's .pho has no word marks, so the words are found by aligning the sentence's phones with
the phones espeak gives for each word spoken alone (one call, a paragraph per word).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, ProcessingError
from dubcli.synth.engines import EngineOutput, fit_edges, run_program
from dubcli.synth.phonesets import label_word, to_base
from dubcli.synth.prosody import ProsodyStyle
from dubcli.synth.timeline import Segment
from dubcli.synth.voices import VoiceInfo
from dubcli.text.phonemes import SILENCE, VOWELS
from dubcli.timing import SAMPLE_RATE

log = get_logger(__name__)
SR_MS = SAMPLE_RATE // 1000  # samples per ms (16)
MBROLA_DIRS = ("/usr/share/mbrola", "/usr/local/share/mbrola", "/usr/lib/mbrola")
# Near-equivalent phones to try, per phone set, when a voice lacks a diphone. The label follows
# the phone rendered: the same ARPAbet label, except German v -> f (V -> F: the German databases
# have no v before a consonant or pause, where German devoices it).
FALLBACK: dict[str, dict[str, str]] = {
    "mbrola-us": {"O2": "O", "l=": "l", "t_h": "t", "p_h": "p", "k_h": "k"},
    "mbrola-en1": {"5": "l", "I@": "I"},
    "mbrola-de": {"v": "f", "EI": "e:"},
    "mbrola-sv": {"i": "i:"},  # sw2 has short i only in a few diphones
}
_MISSING_RE = re.compile(r"for (\S+)-(\S+) segment")


@dataclass
class PhoLine:
    phone: str  # the voice's phone name
    ms: float  # duration in ms
    pitch: list[tuple[float, float]] = field(default_factory=list)  # (percent, Hz)
    word: int = -1  # index of the word it belongs to, -1 for pauses


def mbrola_database(voice: str) -> Path | None:
    """Path of an mbrola voice database (e.g. /usr/share/mbrola/us1/us1), None if absent."""
    for d in MBROLA_DIRS:
        for p in (Path(d) / voice / voice, Path(d) / voice):
            if p.is_file():
                return p
    return None


def parse_pho(text: str) -> list[PhoLine]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0].startswith(";"):
            continue
        nums = [float(x) for x in parts[2:]]
        out.append(
            PhoLine(parts[0], float(parts[1]), list(zip(nums[0::2], nums[1::2], strict=False)))
        )
    return out


def format_pho(lines: list[PhoLine]) -> str:
    rows = []
    for ln in lines:
        pitch = " ".join(f"{p:.1f} {hz:.1f}" for p, hz in ln.pitch)
        rows.append(f"{ln.phone}\t{ln.ms:.4f}\t{pitch}".rstrip())
    return "\n".join(rows) + "\n"


def _espeak_pho(text: str, info: VoiceInfo, where: str) -> list[PhoLine]:
    res = run_program(
        ["espeak-ng", "-v", info.program_voice, "-q", "--pho"], where, input_text=text
    )
    lines = parse_pho(res.stdout)
    if res.returncode != 0 or not lines:
        raise ProcessingError(
            f"{where}: espeak-ng -v {info.program_voice} failed: {res.stderr[-200:]}"
        )
    return lines


def _word_phones(words: list[str], info: VoiceInfo, where: str) -> list[list[str]]:
    """Each word's phones as espeak says it alone (pauses split the one-call output)."""
    groups: list[list[str]] = [[]]
    # blank lines make espeak end a paragraph (pauses); in --pho mode "." alone does not
    for ln in _espeak_pho("\n\n".join(w.rstrip(",.") for w in words), info, where):
        if ln.phone == "_":
            if groups[-1]:
                groups.append([])
        else:
            groups[-1].append(ln.phone)
    groups = [g for g in groups if g]
    if len(groups) != len(words):  # espeak joined or split a word: ask word by word
        groups = [
            [ln.phone for ln in _espeak_pho(w, info, where) if ln.phone != "_"] for w in words
        ]
    return groups


def _sub_cost(a: str, b: str, phone_set: str) -> float:
    if a == b:
        return 0.0
    ba, bb = to_base(a, phone_set), to_base(b, phone_set)
    if ba == bb:
        return 0.3
    return 0.7 if (ba in VOWELS) == (bb in VOWELS) else 1.2


def assign_words(lines: list[PhoLine], word_phones: list[list[str]], phone_set: str) -> None:
    """Set `.word` on the sentence's phones by DP alignment with the per-word phone lists."""
    idx = [i for i, ln in enumerate(lines) if ln.phone != "_"]
    src = [lines[i].phone for i in idx]
    ref = [(p, w) for w, ph in enumerate(word_phones) for p in ph]
    n, m = len(src), len(ref)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j - 1] + _sub_cost(src[i - 1], ref[j - 1][0], phone_set),
                cost[i - 1, j] + 1.0,
                cost[i, j - 1] + 1.0,
            )
    word = [-1] * n
    i, j = n, m
    while i > 0 and j > 0:
        if math.isclose(
            cost[i, j], cost[i - 1, j - 1] + _sub_cost(src[i - 1], ref[j - 1][0], phone_set)
        ):
            word[i - 1] = ref[j - 1][1]
            i, j = i - 1, j - 1
        elif math.isclose(cost[i, j], cost[i - 1, j] + 1.0):
            i -= 1
        else:
            j -= 1
    # Unaligned (inserted) phones join the preceding word; keep the assignment monotonic.
    first = next((w for w in word if w >= 0), 0)
    cur = first
    for k in range(n):
        cur = max(cur, word[k]) if word[k] >= 0 else cur
        lines[idx[k]].word = cur


def _shape(lines: list[PhoLine], style: ProsodyStyle, f0x: float, rng: np.random.Generator) -> None:
    """Durations / rate with jitter; pitch targets by level, range, speaker F0 scale."""
    logs = [math.log(hz) for ln in lines for _, hz in ln.pitch if hz > 0]
    mu = float(np.mean(logs)) if logs else 0.0
    shift = style.pitch_level * math.log(2) / 12 + math.log(f0x)
    for ln in lines:
        jitter = 1.0 if ln.phone == "_" else float(np.clip(np.exp(rng.normal(0, 0.07)), 0.8, 1.25))
        ln.ms = ln.ms / style.rate * jitter
        if ln.phone != "_":
            ln.ms = max(ln.ms, 12.0)
        wobble = rng.normal(0, 0.3) * math.log(2) / 12  # +-0.3 semitone per phone
        ln.pitch = [
            (
                p,
                float(
                    np.clip(
                        math.exp(mu + (math.log(hz) - mu) * style.pitch_range + shift + wobble),
                        55,
                        450,
                    )
                ),
            )
            for p, hz in ln.pitch
            if hz > 0
        ]


def _quantize(lines: list[PhoLine]) -> list[int]:
    """Phone lengths in whole samples (cumulative rounding: no drift); .ms set to match."""
    bounds = np.round(np.cumsum([ln.ms for ln in lines]) * SR_MS).astype(np.int64)
    ns = np.diff(np.concatenate([[0], bounds])).tolist()
    for ln, n in zip(lines, ns, strict=True):
        ln.ms = n / SR_MS
    return [int(n) for n in ns]


def _render(lines: list[PhoLine], info: VoiceInfo, where: str) -> np.ndarray:
    """mbrola -> float32 16 kHz audio (databases recorded at 22.05 kHz are resampled).

    A diphone the voice lacks (us3 has no h-j, no EI-O2, ...) is first retried with a
    near-equivalent phone (FALLBACK) at the places where that pair occurs (`lines` is edited to
    what was rendered); if none exists, mbrola's -e renders that one diphone as silence of the
    same length, so the timeline still holds (a short gap in a transition, e.g. h -> j; ~3% of
    us3 utterances).
    """
    import soundfile as sf
    import soxr

    db = mbrola_database(info.name)
    if db is None:
        raise DependencyError(
            f"mbrola voice {info.name} not found in {', '.join(MBROLA_DIRS)}; run .ci/system-deps.sh"
        )
    fallback = FALLBACK.get(info.phone_set, {})
    ignore_missing = False
    with tempfile.TemporaryDirectory(prefix="dubcli-mbrola-") as tmp:
        pho, wav = os.path.join(tmp, "in.pho"), os.path.join(tmp, "out.wav")
        for _ in range(len(lines) + 2):  # each retry removes one missing pair
            Path(pho).write_text(format_pho(lines))
            flags = ["-e"] if ignore_missing else []
            res = run_program(["mbrola", *flags, str(db), pho, wav], where)
            if res.returncode == 0 and os.path.exists(wav):
                audio, sr = sf.read(wav, dtype="float32")
                if sr != SAMPLE_RATE:
                    audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
                if ignore_missing:
                    log.debug("%s: %s", where, " ".join(res.stderr.split())[:200])
                return audio
            m = _MISSING_RE.search(res.stderr)
            if m is None or ignore_missing:
                break
            a, b = m.groups()
            side = 0 if a in fallback else 1 if b in fallback else -1
            if side < 0:
                ignore_missing = True
                continue
            for i in range(len(lines) - 1):
                if lines[i].phone == a and lines[i + 1].phone == b:
                    lines[i + side].phone = fallback[(a, b)[side]]
    raise ProcessingError(f"{where}: mbrola {info.name} failed: {res.stderr.strip()[-200:]}")


def synthesize_mbrola(
    words: list[str],
    engine_words: list[str],
    info: VoiceInfo,
    style: ProsodyStyle,
    f0x: float,
    rng: np.random.Generator,
    lead: int,
    trail: int,
    where: str,
) -> EngineOutput:
    """Render `engine_words` (the text as espeak should read it); label phones with `words`."""
    lines = _espeak_pho(" ".join(engine_words), info, where)
    assign_words(lines, _word_phones(engine_words, info, where), info.phone_set)
    while lines and lines[-1].phone == "_":  # espeak's final pauses: replaced by ours
        lines.pop()
    lines = [ln for ln in lines if ln.ms > 0]
    _shape(lines, style, f0x, rng)
    lines = [PhoLine("_", lead / SR_MS)] + lines + [PhoLine("_", trail / SR_MS)]
    ns = _quantize(lines)
    audio = _render(lines, info, where)  # may swap in FALLBACK phones: label what was rendered
    labels = _labels(lines, words, info, where)
    segs = [
        Segment(sym, n, ln.word if sym != SILENCE else -1)
        for sym, n, ln in zip(labels, ns, lines, strict=True)
    ]
    starts = np.concatenate([[0], np.cumsum(ns)[:-1]])
    f0 = [
        ((s + n * p / 100.0) / SAMPLE_RATE, hz)
        for s, n, ln in zip(starts, ns, lines, strict=True)
        for p, hz in ln.pitch
    ]
    wav, segs = fit_edges(audio, segs, lead, trail)  # only trims/pads the final pause here
    return EngineOutput(wav, tuple(segs), np.asarray(f0, np.float64).reshape(-1, 2))


def _labels(lines: list[PhoLine], words: list[str], info: VoiceInfo, where: str) -> list[str]:
    """Vocabulary symbols per .pho line (CMUdict stress per word; see phonesets.py)."""
    try:
        bases = [to_base(ln.phone, info.phone_set) for ln in lines]
    except KeyError as exc:
        raise ProcessingError(f"{where}: {info.name} phone {exc} has no ARPAbet mapping") from None
    out = list(bases)
    for w, text in enumerate(words):
        pos = [i for i, ln in enumerate(lines) if ln.word == w and bases[i] != SILENCE]
        for i, sym in zip(pos, label_word(text, [bases[i] for i in pos]), strict=True):
            out[i] = sym
    for i, ln in enumerate(lines):  # a phone left outside every word is labelled in isolation
        if bases[i] != SILENCE and ln.word < 0:
            out[i] = label_word("", [bases[i]])[0]
    return out
