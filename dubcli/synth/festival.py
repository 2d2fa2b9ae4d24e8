"""festival voices (kal/ked/rab_diphone, cmu_us_slt_arctic_hts) with their segment timings.

A Scheme script (sent to one long-lived `festival --pipe` process) runs festival's Text
pipeline step by step so we can touch the durations:
Duration_Stretch (diphone voices) or hts_engine's "-r" speed (HTS) sets the style's rate, and for
diphone voices each segment's duration gets the same small jitter as mbrola's phones before
Int_Targets/Wave_Synth use them. The script prints every segment (radio phone, end time, its
syllable's stress, the index of its word) and saves the wave. HTS segment ends are frame-exact;
diphone voices realize them pitch-synchronously (within a pitch period), like mbrola.
Pitch style is applied afterwards in the WORLD domain (perturb.py), identically for all voices.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import os
import select
import subprocess
import tempfile
import threading
import time

import numpy as np

from dubcli.errors import DependencyError, ProcessingError
from dubcli.synth.engines import INSTALL_HINT, EngineOutput, fit_edges
from dubcli.synth.phonesets import REDUCED, label_word, to_base
from dubcli.synth.prosody import ProsodyStyle
from dubcli.synth.timeline import Segment
from dubcli.synth.voices import VoiceInfo
from dubcli.text.phonemes import SILENCE, VOWELS
from dubcli.timing import SAMPLE_RATE

FESTIVAL_VOICE_GLOBS = ("/usr/share/festival/voices/*/{}", "/usr/local/share/festival/voices/*/{}")

_SCRIPT = """
(voice_{voice})
{rate_setup}
(set! dub_factors '({factors}))
(define (dub_jitter utt)
  (let ((prev 0.0) (shift 0.0) (fs dub_factors))
    (mapcar
     (lambda (s)
       (let ((end (item.feat s "end")) (f (if fs (car fs) 1.0)))
         (set! fs (if fs (cdr fs) nil))
         (set! shift (+ shift (* (- end prev) (- f 1.0))))
         (set! prev end)
         (item.set_feat s "end" (+ end shift))))
     (utt.relation.items utt 'Segment))))
(set! u (eval (list 'Utterance 'Text "{text}")))
(Initialize u) (Text u) (Token_POS u) (Token u) (POS u) (Phrasify u) (Word u) (Pauses u)
(Intonation u) (PostLex u) (Duration u)
{jitter}
(Int_Targets u) (Wave_Synth u)
(utt.save.wave u "{wav}" 'riff)
(set! dub_i 0)
(mapcar
 (lambda (w)
   (set! dub_i (+ dub_i 1))
   (format t "W %d %s\\n" dub_i (item.name w))
   (mapcar (lambda (syl) (mapcar (lambda (seg) (item.set_feat seg "dubw" dub_i)) (item.daughters syl)))
           (item.daughters (item.relation w 'SylStructure))))
 (utt.relation.items u 'Word))
(mapcar
 (lambda (s)
   (format t "S %s %f %s %s\\n" (item.name s) (item.feat s "end")
           (item.feat s "R:SylStructure.parent.stress") (item.feat s "dubw")))
 (utt.relation.items u 'Segment))
"""


@functools.cache
def festival_voice_dir(voice: str) -> str | None:
    """The installed directory of a festival voice (e.g. kal_diphone), None if absent."""
    for pattern in FESTIVAL_VOICE_GLOBS:
        hits = sorted(glob.glob(pattern.format(voice)))
        if hits:
            return hits[0]
    return None


def _script(engine_text: str, info: VoiceInfo, style: ProsodyStyle, factors, wav: str) -> str:
    hts = info.program_voice.endswith("_hts")
    if hts:  # hts_engine's -r is a speed factor (0.8 = slower); no per-segment control
        rate_setup = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {style.rate:.4f}))))'
    else:
        rate_setup = f"(Parameter.set 'Duration_Stretch {1.0 / style.rate:.4f})"
    text = engine_text.replace("\\", " ").replace('"', " ")
    return _SCRIPT.format(
        voice=info.program_voice,
        rate_setup=rate_setup,
        factors=" ".join(f"{f:.4f}" for f in factors),
        text=text,
        jitter="" if hts else "(dub_jitter u)",
        wav=wav,
    )


class FestivalProcess:
    """One long-lived `festival --pipe` per Python process (startup costs ~0.45 s, a GRID
    sentence ~0.02 s). Each request ends by printing a marker; a request that fails (SIOD error)
    leaves the process usable, a dead or hung process is restarted on the next request.
    Synthesis is deterministic, so reusing the process does not change the audio."""

    MARKER = b"DUBCLI-FESTIVAL-DONE"

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def _start(self, where: str) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None and self._pid == os.getpid():
            return self._proc
        try:
            self._proc = subprocess.Popen(
                ["festival", "--pipe"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except FileNotFoundError:
            raise DependencyError(
                f"festival not found (needed for {where}); {INSTALL_HINT}"
            ) from None
        self._pid = os.getpid()  # a forked child must not share its parent's pipes
        return self._proc

    def close(self) -> None:
        if self._proc is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            if self._proc.poll() is None:
                self._proc.kill()
        self._proc = None

    def run(self, script: str, where: str, timeout: float = 120.0) -> str:
        """Send Scheme code, return everything festival printed for it."""
        with self._lock:
            proc = self._start(where)
            end = f'\n(format t "\\n{self.MARKER.decode()}\\n")\n(fflush nil)\n'
            try:
                proc.stdin.write((script + end).encode())
                proc.stdin.flush()
            except BrokenPipeError:
                self.close()
                raise ProcessingError(f"{where}: festival exited") from None
            buf, deadline, fd = b"", time.monotonic() + timeout, proc.stdout.fileno()
            while self.MARKER not in buf:
                ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
                chunk = os.read(fd, 65536) if ready else b""
                if not chunk:
                    self.close()
                    why = "did not answer in time" if not ready else "exited"
                    raise ProcessingError(f"{where}: festival {why}")
                buf += chunk
            return buf[: buf.index(self.MARKER)].decode(errors="replace")


_FESTIVAL = FestivalProcess()
atexit.register(_FESTIVAL.close)


def _parse(stdout: str, where: str) -> tuple[list[str], list[tuple[str, float, int, int]]]:
    words, segs = [], []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "W":
            words.append(parts[2])
        elif len(parts) == 5 and parts[0] == "S":
            try:
                segs.append(
                    (parts[1], float(parts[2]), int(float(parts[3])), int(float(parts[4])) - 1)
                )
            except ValueError:
                raise ProcessingError(f"{where}: festival printed {line!r}") from None
    return words, segs


def _merge_er_r(words: list[str], segs: list[tuple[str, float, int, int]], phone_set: str):
    """ked writes every r-coloured vowel as "er r"; ARPAbet (and kal/slt) have one ER there.

    An "er" followed by an "r" that festival's post-lexical rules added (no word) or by an "r" of
    the same word with no vowel after it becomes one ER segment spanning both (the r is the
    vowel's colouring, not a consonant).
    """
    out: list[tuple[str, float, int, int]] = []
    for k, seg in enumerate(segs):
        nxt = segs[k + 1][0] if k + 1 < len(segs) else None
        prev = out[-1] if out else None
        if (
            seg[0] == "r"
            and prev is not None
            and prev[0] == "er"
            and prev[3] >= 0
            and (
                seg[3] < 0
                or (seg[3] == prev[3] and (nxt is None or to_base(nxt, phone_set) not in VOWELS))
            )
        ):
            out[-1] = (prev[0], seg[1], prev[2], prev[3])
        else:
            out.append(seg)
    return words, out


def synthesize_festival(
    words: list[str],
    engine_words: list[str],
    info: VoiceInfo,
    style: ProsodyStyle,
    rng: np.random.Generator,
    lead: int,
    trail: int,
    where: str,
) -> EngineOutput:
    """Render with festival; phones labelled with `words` (CMUdict stress, festival's fallback)."""
    import soundfile as sf
    import soxr

    factors = np.clip(np.exp(rng.normal(0, 0.07, size=4 * len(" ".join(words)) + 16)), 0.8, 1.25)
    with tempfile.TemporaryDirectory(prefix="dubcli-festival-") as tmp:
        wav_path = os.path.join(tmp, "out.wav")
        out = _FESTIVAL.run(_script(" ".join(engine_words), info, style, factors, wav_path), where)
        if "SIOD ERROR" in out or not os.path.exists(wav_path):
            raise ProcessingError(
                f"{where}: festival {info.program_voice} failed: {' '.join(out.split())[-200:]}"
            )
        audio, sr = sf.read(wav_path, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    fwords, fsegs = _merge_er_r(*_parse(out, where), info.phone_set)
    if len(fwords) != len(words):
        raise ProcessingError(
            f"{where}: festival read {len(fwords)} words ({' '.join(fwords)}), expected {len(words)}"
        )
    try:
        bases = [to_base(name, info.phone_set) for name, _, _, _ in fsegs]
    except KeyError as exc:
        raise ProcessingError(f"{where}: festival phone {exc} has no ARPAbet mapping") from None
    labels = list(bases)
    for w, text in enumerate(words):
        pos = [i for i, (_, _, _, wi) in enumerate(fsegs) if wi == w and bases[i] != SILENCE]
        stress = [0 if fsegs[i][0] in REDUCED else fsegs[i][2] for i in pos]
        for i, sym in zip(pos, label_word(text, [bases[i] for i in pos], stress), strict=True):
            labels[i] = sym
    for i, (_, _, _, wi) in enumerate(fsegs):  # a phone outside every word: label it alone
        if wi < 0 and bases[i] != SILENCE:
            labels[i] = label_word("", [bases[i]])[0]
    bounds = np.round(np.array([end for _, end, _, _ in fsegs]) * SAMPLE_RATE).astype(np.int64)
    ns = np.diff(np.concatenate([[0], bounds]))
    segs = [
        Segment(sym, int(n), wi if sym != SILENCE else -1)
        for sym, n, (_, _, _, wi) in zip(labels, ns, fsegs, strict=True)
    ]
    wav, segs = fit_edges(audio, segs, lead, trail)
    return EngineOutput(wav, tuple(segs), None)
