"""What the speech engines share: running programs, the engine output, silence and loudness.

Both engines (mbrola via espeak-ng, festival) hand back an `EngineOutput`: 16 kHz float32 audio
and `Segment`s whose sample counts add up to the audio length exactly.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dubcli.errors import DependencyError, ProcessingError
from dubcli.synth.timeline import Segment
from dubcli.text.phonemes import SILENCE

INSTALL_HINT = "run .ci/system-deps.sh"
REFERENCE_RMS_DB = -26.0  # speech RMS (dBFS) of a style with energy 0 dB


@dataclass(frozen=True, eq=False)
class EngineOutput:
    wav: np.ndarray  # (n,) float32, 16 kHz
    segments: tuple[Segment, ...]  # sample counts sum to n
    f0_targets: np.ndarray | None  # (k, 2): seconds, Hz; None when unknown


def run_program(
    args: Sequence[str], where: str, *, input_text: str | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess:
    """Run a synthesizer program; a missing program is a DependencyError, a hang a
    ProcessingError. The caller checks the return code (engines retry some failures)."""
    try:
        return subprocess.run(
            list(args), input=input_text, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise DependencyError(f"{args[0]} not found (needed for {where}); {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise ProcessingError(f"{where}: {args[0]} did not finish in {timeout:.0f} s") from None


def fit_edges(
    wav: np.ndarray, segments: list[Segment], lead: int, trail: int
) -> tuple[np.ndarray, list[Segment]]:
    """Make the leading/trailing pauses `lead`/`trail` samples long and the audio end with them.

    Audio is only cut from the far side of a pause (keeping >= 50 ms next to speech, where a
    diphone's tail may still sound) or padded with zeros; the phone timeline inside is unchanged.
    """
    segs = list(segments)
    if not segs or segs[0].symbol != SILENCE:
        segs.insert(0, Segment(SILENCE, 0, -1))
    if segs[-1].symbol != SILENCE:
        segs.append(Segment(SILENCE, 0, -1))
    keep = 800  # 50 ms at 16 kHz
    head = segs[0].n
    cut = min(max(head - lead, 0), max(head - keep, 0))
    wav = np.concatenate([np.zeros(max(lead - head, 0), np.float32), wav[cut:]])
    segs[0] = Segment(SILENCE, head - cut + max(lead - head, 0), -1)
    speech_end = sum(s.n for s in segs[:-1])
    tail = max(trail, keep)
    wav = wav[: speech_end + tail]
    wav = np.concatenate([wav, np.zeros(speech_end + tail - len(wav), np.float32)])
    segs[-1] = Segment(SILENCE, tail, -1)
    return wav.astype(np.float32), segs


def normalize_loudness(
    wav: np.ndarray, segments: Sequence[Segment], energy_db: float
) -> np.ndarray:
    """Scale so the speech (non-pause) RMS is REFERENCE_RMS_DB + energy_db, without clipping."""
    mask = np.zeros(len(wav), bool)
    pos = 0
    for s in segments:
        if s.symbol != SILENCE:
            mask[pos : pos + s.n] = True
        pos += s.n
    speech = wav[mask] if mask.any() else wav
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64)))) if len(speech) else 0.0
    if rms <= 1e-9:
        return wav.astype(np.float32)
    gain = 10.0 ** ((REFERENCE_RMS_DB + energy_db) / 20.0) / rms
    peak = float(np.max(np.abs(wav))) * gain
    if peak > 0.98:  # keep the waveform unclipped; loud styles lose a little of their gain
        gain *= 0.98 / peak
    return (wav * gain).astype(np.float32)
