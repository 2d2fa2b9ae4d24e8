"""The baseline engine: espeak-ng speech, fitted to the window and converted toward the reference.

Dimensions: n samples (16 kHz), m WORLD frames (5 ms), k spectral bins (fft/2 + 1).

What the practical dubbing tools do, as a comparison point for DiFlowDubber and a fallback that
needs no model:
1. espeak-ng (en-us, its default 175 words/min) speaks the cue text; leading/trailing silence is
   trimmed.
2. Time fitting: WORLD analysis (DIO + StoneMask F0, CheapTrick envelope, D4C aperiodicity), the
   frame sequence resampled on a stretched time axis, WORLD synthesis. Pitch and envelope are
   kept, only the timing changes. The speed factor natural/window is bounded to [0.7, 1.5]: beyond
   that stretched speech stops sounding like speech, so the cue stays too long (the timeline cuts
   it at its slot, the report says "too-long") or too short (silence after it).
3. Voice conversion toward the reference, in the same WORLD pass:
   - F0: log-Gaussian normalized transform, log f0' = (log f0 - mu_src) * s_ref/s_src + mu_ref
     (means/deviations of voiced log F0; the deviation ratio bounded to [0.5, 2]);
   - spectral envelope: a frequency-axis warp sp'(f) = sp(f / alpha), the vocal-tract-length
     difference, with alpha in [0.8, 1.25] chosen by grid search to match the long-term average
     log envelope (voiced frames, 100-5000 Hz, level removed) of espeak's voice to the reference's.
   This moves pitch and formant scale toward the reference; it is not a voice clone.
Deterministic: the seed is recorded but not used.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import warnings
from dataclasses import dataclass

import numpy as np

from dubcli.audio.util import warp_envelope
from dubcli.console import get_logger
from dubcli.engines.base import CueAudio, CueJob
from dubcli.errors import DependencyError, ProcessingError
from dubcli.timing import SAMPLE_RATE

log = get_logger(__name__)

VERSION = "baseline-v1"
ESPEAK_VOICE = "en-us"
MIN_SPEED, MAX_SPEED = 0.7, 1.5
FRAME_MS = 5.0
F0_FLOOR, F0_CEIL = 60.0, 600.0
WARP_RANGE = (0.8, 1.25)
# A calibration utterance for espeak's own voice statistics (all vowels, voiced and voiceless).
_CALIBRATION = (
    "The quick brown fox jumps over the lazy dog. How are you doing today? "
    "She sells sea shells by the sea shore, and the weather is nice."
)


def _pyworld():
    with warnings.catch_warnings():  # pyworld imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        import pyworld

    return pyworld


def espeak_wav(text: str, voice: str = ESPEAK_VOICE, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) float32 speech of `text` by espeak-ng at `rate` Hz, silence trimmed."""
    import soundfile as sf
    import soxr

    from dubcli.procs import child_options

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DependencyError("espeak-ng not found: install it (sudo bash .ci/system-deps.sh)")
    try:  # text on stdin: nothing in it can be read as an option
        res = subprocess.run([exe, "-v", voice, "--stdout", "--stdin"], input=text.encode(),
                             capture_output=True, timeout=120, **child_options())  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"espeak-ng failed on {text[:40]!r} ({exc})") from exc
    if res.returncode != 0 or len(res.stdout) <= 44:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ProcessingError(
            f"espeak-ng failed on {text[:40]!r} ({err[-1] if err else 'no audio'})"
        )
    data = bytearray(res.stdout)
    # streamed to stdout, espeak leaves the RIFF/data sizes unset: fix them so any reader copes
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    pos = data.find(b"data", 12)
    if pos > 0:
        data[pos + 4 : pos + 8] = (len(data) - pos - 8).to_bytes(4, "little")
    wav, sr = sf.read(io.BytesIO(bytes(data)), dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    if sr != rate:
        wav = soxr.resample(wav, sr, rate, quality="HQ")
    return trim_silence(wav.astype(np.float32), rate)


def trim_silence(wav: np.ndarray, rate: int, below_peak_db: float = 40.0) -> np.ndarray:
    """Cut leading/trailing 10 ms frames quieter than (loudest frame - below_peak_db), keeping
    20 ms around the sound."""
    hop = int(0.01 * rate)
    n = len(wav) // hop
    if n == 0:
        return wav
    power = np.mean(wav[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(power)
    loud = np.flatnonzero(db >= db.max() - below_peak_db)
    pad = 2 * hop
    return wav[max(0, loud[0] * hop - pad) : min(len(wav), (loud[-1] + 1) * hop + pad)].copy()


@dataclass(frozen=True)
class World:
    f0: np.ndarray  # (m,) Hz, 0 = unvoiced
    sp: np.ndarray  # (m, k) spectral envelope (power)
    ap: np.ndarray  # (m, k) aperiodicity


def analyze(wav: np.ndarray, rate: int = SAMPLE_RATE) -> World:
    pw = _pyworld()
    x = np.ascontiguousarray(wav, np.float64)
    f0, t = pw.dio(x, rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, rate)
    sp = pw.cheaptrick(x, f0, t, rate, f0_floor=F0_FLOOR)
    ap = pw.d4c(x, f0, t, rate)
    return World(f0, sp, ap)


@dataclass(frozen=True)
class VoiceStats:
    log_f0_mean: float
    log_f0_std: float
    ltas: np.ndarray  # (k,) mean log envelope of voiced frames, level removed in the band


def voice_stats(w: World, rate: int = SAMPLE_RATE) -> VoiceStats:
    voiced = w.f0 > 0
    if voiced.sum() < 5:
        raise ProcessingError("reference voice: too few voiced frames to measure its pitch")
    lf0 = np.log(w.f0[voiced])
    ltas = np.mean(np.log(w.sp[voiced] + 1e-12), axis=0)
    band = _band(ltas.shape[0], rate)
    return VoiceStats(float(lf0.mean()), float(max(lf0.std(), 1e-3)), ltas - ltas[band].mean())


def _band(k: int, rate: int) -> np.ndarray:
    freqs = np.linspace(0, rate / 2, k)
    return (freqs >= 100) & (freqs <= 5000)


def estimate_warp(src: VoiceStats, ref: VoiceStats, rate: int = SAMPLE_RATE) -> float:
    """alpha in WARP_RANGE minimizing the band distance of the warped source LTAS to the ref's."""
    band = _band(len(src.ltas), rate)
    best, best_err = 1.0, np.inf
    for alpha in np.exp(np.linspace(np.log(WARP_RANGE[0]), np.log(WARP_RANGE[1]), 37)):
        warped = np.log(warp_envelope(np.exp(src.ltas), alpha))[band]
        err = float(np.mean((warped - warped.mean() - ref.ltas[band]) ** 2))
        err += 0.5 * float(np.log(alpha)) ** 2  # a slight pull toward no warp
        if err < best_err:
            best, best_err = float(alpha), err
    return best


def stretch(w: World, speed: float) -> World:
    """Resample the frame sequence in time: `speed` > 1 makes it shorter (faster speech)."""
    m = len(w.f0)
    new_m = max(2, int(round(m / speed)))
    pos = np.linspace(0, m - 1, new_m)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    frac = (pos - i0)[:, None]

    def lerp_log(a):
        la = np.log(a + 1e-12)
        return np.exp(la[i0] * (1 - frac) + la[i1] * frac)

    voiced = w.f0[np.rint(pos).astype(int)] > 0  # voicing: nearest frame, never blended
    both = (w.f0[i0] > 0) & (w.f0[i1] > 0)
    lf0 = np.log(np.maximum(w.f0, 1e-3))
    f0 = np.where(both, np.exp(lf0[i0] * (1 - frac[:, 0]) + lf0[i1] * frac[:, 0]),
                  np.maximum(w.f0[i0], w.f0[i1]))  # fmt: skip
    f0 = np.where(voiced, f0, 0.0)
    ap = np.clip(w.ap[i0] * (1 - frac) + w.ap[i1] * frac, 0.0, 1.0)
    return World(f0, lerp_log(w.sp), ap)


def convert_f0(f0: np.ndarray, src: VoiceStats, ref: VoiceStats) -> np.ndarray:
    voiced = f0 > 0
    ratio = float(np.clip(ref.log_f0_std / src.log_f0_std, 0.5, 2.0))
    out = np.zeros_like(f0)
    out[voiced] = np.exp((np.log(f0[voiced]) - src.log_f0_mean) * ratio + ref.log_f0_mean)
    return np.clip(out, 0.0, F0_CEIL)


def synthesize(w: World, rate: int = SAMPLE_RATE) -> np.ndarray:
    pw = _pyworld()
    y = pw.synthesize(np.ascontiguousarray(w.f0), np.ascontiguousarray(w.sp),
                      np.ascontiguousarray(w.ap), rate, FRAME_MS)  # fmt: skip
    return y.astype(np.float32)


class BaselineEngine:
    """espeak-ng + WORLD stretch + pitch/envelope conversion (see module doc)."""

    name = "baseline"

    def __init__(self, voice: str = ESPEAK_VOICE, warp: bool = True):
        if shutil.which("espeak-ng") is None:
            raise DependencyError("espeak-ng not found: install it (sudo bash .ci/system-deps.sh)")
        self.voice, self.warp = voice, warp
        self._ref_cache: dict[str, tuple[VoiceStats, float]] = {}

    def fingerprint(self) -> str:
        return f"{VERSION}:{self.voice}:warp={int(self.warp)}"

    @functools.cached_property
    def source_stats(self) -> VoiceStats:
        return voice_stats(analyze(espeak_wav(_CALIBRATION, self.voice)))

    def reference(self, ident: str, wav: np.ndarray) -> tuple[VoiceStats, float]:
        """(stats, warp alpha) of a reference voice, computed once per voice."""
        if ident not in self._ref_cache:
            stats = voice_stats(analyze(wav))
            alpha = estimate_warp(self.source_stats, stats) if self.warp else 1.0
            log.debug("reference %s: F0 %.0f Hz (espeak %.0f Hz), envelope warp %.3f", ident,
                      np.exp(stats.log_f0_mean), np.exp(self.source_stats.log_f0_mean), alpha)  # fmt: skip
            self._ref_cache[ident] = (stats, alpha)
        return self._ref_cache[ident]

    def synthesize_cue(self, job: CueJob) -> CueAudio:
        ref, alpha = self.reference(job.reference_id, job.reference)
        wav = espeak_wav(job.text, self.voice)
        natural = len(wav) / SAMPLE_RATE
        wanted = natural / max(job.duration, 1e-3)
        speed = float(np.clip(wanted, MIN_SPEED, MAX_SPEED))
        notes = []
        if wanted > MAX_SPEED:
            notes.append(f"needs {wanted:.2f}x speed, limited to {MAX_SPEED}x: longer than window")
        elif wanted < MIN_SPEED:
            notes.append(f"needs {wanted:.2f}x speed, limited to {MIN_SPEED}x: shorter than window")
        w = stretch(analyze(wav), speed)
        sp = warp_envelope(w.sp, alpha) if alpha != 1.0 else w.sp
        out = synthesize(World(convert_f0(w.f0, self.source_stats, ref), sp, w.ap))
        if speed == wanted:  # fits: exactly the window (WORLD's length is within a frame)
            n = int(round(job.duration * SAMPLE_RATE))
            out = np.pad(out, (0, max(0, n - len(out))))[:n]
        return CueAudio(out, stretch=round(speed, 4), natural_seconds=round(natural, 3),
                        notes=tuple(notes))  # fmt: skip
