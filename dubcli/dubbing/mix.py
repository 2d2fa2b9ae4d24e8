"""Mixing the dub with the source's own audio, loudness normalization and peak limiting.

Dimensions: n samples at MIX_RATE, c channels (1 or 2).

Background modes (`--background`):
- keep: the original audio at full level under the dub (the original speech stays audible);
- duck: the original attenuated by DUCK_DB wherever the dub speaks, with raised-cosine attack
  (starting ATTACK_S before the speech, so the dub never starts over full-level background) and
  release (RELEASE_S after it) ramps;
- remove: centre-channel removal. Dialogue is mixed to the centre (equal in L and R), so the side
  signal (L - R) / 2 keeps what is panned off-centre (music, effects, ambience) and cancels the
  voice; for 3+ channel sources the front-centre channel (ffmpeg order FL FR FC ...) is dropped
  instead. A mono source has no side signal: we warn and duck instead (the report says so);
- drop: the dub alone.
A video without an audio track has no background: every mode degrades to the dub alone, with a
note in the report.

Rendering is two passes over blocks (memory: one block, never the programme): pass 1 mixes
dub + background and writes a float temp wav while measuring BS.1770 loudness; pass 2 applies the
gain that reaches the target LUFS and a look-ahead peak limiter (gain reduction only on the
samples that would exceed LIMIT_DBFS), and writes the 16-bit result atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubcli.audio.util import running_mean, running_min
from dubcli.console import get_logger
from dubcli.dubbing.loudness import LoudnessMeter
from dubcli.fsutil import atomic_path

log = get_logger(__name__)

MODES = ("keep", "duck", "remove", "drop")
MIX_RATE = 48_000  # the muxed track's rate (aac at 48 kHz); the background keeps its bandwidth
BLOCK_S = 10.0  # render block
DUCK_DB = -15.0  # background level under dubbed speech in duck mode
ATTACK_S = 0.15  # duck ramp before speech starts
RELEASE_S = 0.40  # duck ramp back up after speech ends
LIMIT_DBFS = -1.0  # sample-peak ceiling of the output
LIMIT_WINDOW_S = 0.010  # limiter look-ahead / release: gain changes are spread over 10 ms
LIMIT_TOLERANCE_LU = 0.5  # re-run the gain pass once if limiting moved the loudness further
MAX_GAIN_DB = 30.0  # loudness gain cap (a nearly silent mix is not blown up to the target)


@dataclass(frozen=True)
class Background:
    requested: str  # the --background value
    mode: str  # what is actually done ("drop" when the source has no audio)
    channels_in: int  # source audio channels (0: no audio track)
    channels_out: int  # channels of the mix (1 or 2)
    note: str | None  # why mode differs from requested, for the log and the report


def resolve_background(requested: str, channels_in: int) -> Background:
    """Decide what a background mode can do with a source of `channels_in` channels."""
    if requested not in MODES:
        raise ValueError(f"background must be one of {', '.join(MODES)}, got {requested!r}")
    if channels_in == 0:
        note = (
            None
            if requested == "drop"
            else "the video has no audio track: nothing to "
            + ({"keep": "keep", "duck": "duck", "remove": "remove speech from"}[requested])
            + "; the output holds the dub alone"
        )
        return Background(requested, "drop", 0, 1, note)
    out = 1 if channels_in == 1 or requested == "drop" else 2  # the dub alone is mono
    if requested == "remove" and channels_in == 1:
        note = (
            "the source audio is mono, so centre-channel speech removal is impossible "
            "(it needs stereo); ducking the original under the dub instead"
        )
        return Background(requested, "duck", 1, 1, note)
    return Background(requested, requested, channels_in, out, None)


def prepare_background(block: np.ndarray, bg: Background) -> np.ndarray:
    """(n, channels_in) source block -> (n, channels_out) background before ducking."""
    x = np.asarray(block, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if bg.mode == "remove" and x.shape[1] == 2:
        side = 0.5 * (x[:, 0] - x[:, 1])
        return np.stack([side, -side], axis=1)  # keeps the side image, cancels the centre
    if x.shape[1] > 2:
        return _downmix(x, centre=bg.mode != "remove")
    return x


def _downmix(x: np.ndarray, *, centre: bool) -> np.ndarray:
    """Multichannel in ffmpeg order (FL FR FC LFE then surround pairs) -> stereo with the
    ITU-R BS.775 weight 0.7071 for the centre and surrounds; the LFE is left out; centre=False
    drops FC (where film dialogue lives). Each side is divided by its weight sum (no clipping)."""
    w = 0.7071
    left, right = [(0, 1.0)], [(1, 1.0)]
    if centre and x.shape[1] > 2:
        left.append((2, w))
        right.append((2, w))
    for j, i in enumerate(range(4, x.shape[1])):
        (left if j % 2 == 0 else right).append((i, w))
    sides = [sum(x[:, i] * g for i, g in side) / sum(g for _, g in side) for side in (left, right)]
    return np.stack(sides, axis=1).astype(np.float32)


def duck_gain(
    intervals: Sequence[tuple[int, int]], b0: int, b1: int, rate: int, depth_db: float = DUCK_DB
) -> np.ndarray:
    """(b1 - b0,) background gain: 1 away from speech, 10^(depth/20) under it, smooth ramps."""
    floor = 10 ** (depth_db / 20)
    duck = np.zeros(b1 - b0, np.float32)  # 0 = no ducking, 1 = full
    atk, rel = int(ATTACK_S * rate), int(RELEASE_S * rate)
    for s, e in intervals:
        # the envelope is 0 outside [s - atk, e + rel]: compute it on that part of the block
        # only (a 10 s block holds several cues' intervals)
        lo, hi = max(b0, s - atk), min(b1, e + rel)
        if lo >= hi:
            continue
        t = np.arange(lo, hi)
        ramp_in = np.clip((t - (s - atk)) / max(atk, 1), 0, 1)
        ramp_out = np.clip(((e + rel) - t) / max(rel, 1), 0, 1)
        shape = np.minimum(ramp_in, ramp_out)
        shape = 0.5 - 0.5 * np.cos(np.pi * shape)  # raised cosine: no corners in the envelope
        np.maximum(duck[lo - b0 : hi - b0], shape.astype(np.float32), out=duck[lo - b0 : hi - b0])
    return 1.0 - (1.0 - floor) * duck


def limiter_gain(x: np.ndarray, rate: int, ceiling: float) -> np.ndarray:
    """(n,) gain <= 1 so that |gain * x| <= ceiling, smooth, and 1 wherever no peak is near.

    The required gain g = min(1, ceiling / peak) is min-filtered over a window W and then
    averaged over W: every average at sample m only includes values that are each <= g[m], so
    the ceiling holds exactly while gain changes take W (10 ms) instead of a sample."""
    peak = np.max(np.abs(x), axis=1) if x.ndim == 2 else np.abs(x)
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if need.min() >= 1.0:
        return np.ones(len(need), np.float32)  # nothing near the ceiling: exactly unity
    w = max(1, int(LIMIT_WINDOW_S * rate)) | 1  # odd, centred
    # The filters move the gain only within 1.5 W of a sample that needs it: run them on those
    # stretches with 2 W of unity on each side (then each stretch's ends are 1 as over the
    # whole block, so its result is the whole block's), the rest stays exactly 1.
    g = np.ones(len(need), need.dtype)
    for lo, hi in _stretches(np.flatnonzero(need < 1.0), 2 * w, len(need)):
        g[lo:hi] = running_mean(running_min(need[lo:hi], 2 * w - 1), w)
    # float32 rounding must not lift a sample over the ceiling: round the gain down a hair
    g = np.minimum(g, need)
    return np.where(g < 1.0, g * (1 - 1e-6), 1.0).astype(np.float32)


def _stretches(idx: np.ndarray, reach: int, n: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges covering every sample within `reach` of a sample in `idx` (sorted),
    ranges closer than 2 * reach merged, clipped to [0, n)."""
    if not len(idx):
        return []
    cut = np.flatnonzero(np.diff(idx) > 2 * reach)
    firsts = np.concatenate([idx[:1], idx[cut + 1]])
    lasts = np.concatenate([idx[cut], idx[-1:]])
    return [
        (max(0, int(a) - reach), min(n, int(b) + reach + 1))
        for a, b in zip(firsts, lasts, strict=True)
    ]


@dataclass(frozen=True)
class MixStats:
    loudness_before: float  # LUFS of the raw mix
    gain_db: float  # loudness gain applied
    loudness_after: float  # LUFS of the written file
    limited_samples: int  # samples whose gain the limiter reduced
    peak_dbfs: float  # sample peak of the written file
    background: Background


def render_mix(
    out: str | os.PathLike,
    *,
    total: int,
    dub: Callable[[int, int], np.ndarray],
    background: Iterator[np.ndarray] | None,
    bg: Background,
    intervals: Sequence[tuple[int, int]],
    lufs: float | None,
    rate: int = MIX_RATE,
    progress: Callable[[int, int], None] | None = None,
    tmp_dir: str | os.PathLike | None = None,
) -> MixStats:
    """Write the final track to `out` (wav, 16-bit, `rate`, bg.channels_out channels), atomically,
    replacing what is there (the pipeline has decided it may).

    dub(b0, b1) -> (b1 - b0,) float32 dub samples; background yields (k, channels_in) source
    blocks at `rate` (any block sizes; a short stream is padded with silence, a long one cut)."""
    import soundfile as sf

    out = Path(out)
    ch = bg.channels_out
    block = int(BLOCK_S * rate)
    meter = LoudnessMeter(rate, ch)
    source = _Rechunker(background) if background is not None and bg.mode != "drop" else None
    with tempfile.TemporaryDirectory(prefix="dubmix-", dir=tmp_dir) as td:
        raw_path = Path(td) / "raw.wav"
        try:
            with sf.SoundFile(raw_path, "w", rate, ch, subtype="FLOAT") as raw:
                for b0 in range(0, total, block):
                    b1 = min(total, b0 + block)
                    mix = np.repeat(dub(b0, b1)[:, None], ch, axis=1)
                    if source is not None:
                        back = prepare_background(source.take(b1 - b0, bg.channels_in), bg)
                        if bg.mode == "duck":
                            back *= duck_gain(intervals, b0, b1, rate)[:, None]
                        mix += back
                    meter.add(mix)
                    raw.write(mix)
                    if progress:
                        progress(b1, 2 * total)
        finally:
            if source is not None:
                source.close()  # stops the decoder when the consumer stops early
        before = meter.integrated()
        gain_db = 0.0
        if lufs is not None and np.isfinite(before):
            gain_db = float(np.clip(lufs - before, -60.0, MAX_GAIN_DB))
            if lufs - before > MAX_GAIN_DB:
                log.warning("%s: the mix is very quiet (%.1f LUFS); gain capped at +%.0f dB",
                            out, before, MAX_GAIN_DB)  # fmt: skip
        stats = _apply_gain(raw_path, out, total, rate, ch, 10 ** (gain_db / 20), progress)
        miss = (lufs - stats[0]) if lufs is not None and np.isfinite(stats[0]) else 0.0
        if abs(miss) > LIMIT_TOLERANCE_LU and gain_db + miss <= MAX_GAIN_DB:
            # the limiter took off more than the tolerance: one corrected pass (peaky speech)
            gain_db += miss
            g = 10 ** (gain_db / 20)
            stats = _apply_gain(raw_path, out, total, rate, ch, g, progress)
    return MixStats(before, gain_db, stats[0], stats[1], stats[2], bg)


def _apply_gain(raw_path, out, total, rate, ch, gain, progress):
    """Pass 2: gain + limiter per block, with margins so the limiter sees across block edges."""
    import soundfile as sf

    block, margin = int(BLOCK_S * rate), 4 * int(LIMIT_WINDOW_S * rate) + 4
    ceiling = 10 ** (LIMIT_DBFS / 20)
    meter, limited, peak = LoudnessMeter(rate, ch), 0, 0.0
    with atomic_path(out, force=True) as tmp, sf.SoundFile(raw_path) as raw:
        with sf.SoundFile(tmp, "w", rate, ch, subtype="PCM_16", format="WAV") as dst:
            for b0 in range(0, total, block):
                b1 = min(total, b0 + block)
                lo, hi = max(0, b0 - margin), min(total, b1 + margin)
                raw.seek(lo)
                x = raw.read(hi - lo, dtype="float32", always_2d=True) * np.float32(gain)
                g = limiter_gain(x, rate, ceiling)[b0 - lo : b1 - lo]
                y = x[b0 - lo : b1 - lo] * g[:, None]
                limited += int(np.sum(g < 0.9999))
                peak = max(peak, float(np.max(np.abs(y))) if len(y) else 0.0)
                meter.add(y)
                dst.write(y)
                if progress:
                    progress(total + b1, 2 * total)
    peak_db = 20 * np.log10(peak) if peak > 0 else float("-inf")
    return meter.integrated(), limited, peak_db


class _Rechunker:
    """Turns an iterator of (k, c) blocks of any size into exact-size takes (zero-padded)."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self._it, self._buf, self._done = iter(blocks), [], False

    def take(self, n: int, channels: int) -> np.ndarray:
        have = sum(len(b) for b in self._buf)
        while have < n and not self._done:
            nxt = next(self._it, None)
            if nxt is None:
                self._done = True
                break
            nxt = np.asarray(nxt, np.float32)
            self._buf.append(nxt[:, None] if nxt.ndim == 1 else nxt)
            have += len(self._buf[-1])
        data = np.concatenate(self._buf) if self._buf else np.zeros((0, channels), np.float32)
        out, rest = data[:n], data[n:]
        self._buf = [rest] if len(rest) else []
        if len(out) < n:
            out = np.concatenate([out, np.zeros((n - len(out), out.shape[1]), np.float32)])
        return out

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close:
            close()
