"""Issue 15: AAC encode time and fidelity of a dub track by bitrate (the mux's share of a dub).

    python benchmarks/aac_rate.py [--seconds 60] [--repeats 3]

Builds a mono track like a dub's (the example voice, 16 kHz speech upsampled to 48 kHz and
looped) and a stereo one (the speech in the centre, a 30 ms echo of it on the right), encodes each
with ffmpeg's AAC encoder at several bitrates as `media.mux_audio` does, and prints the median
encode time and the SNR of the decoded audio against the input.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _tree import ROOT  # this checkout's dubcli, not the installed one

RATE = 48000


def tracks(seconds: float) -> dict[str, np.ndarray]:
    import soxr

    voice, sr = sf.read(ROOT / "examples" / "voice.wav", dtype="float32")
    speech = soxr.resample(voice, sr, RATE)
    n = int(seconds * RATE)
    mono = np.resize(speech, n) * 0.5
    echo = np.zeros_like(mono)
    echo[int(0.03 * RATE) :] = mono[: -int(0.03 * RATE)] * 0.25
    return {"mono": mono, "stereo": np.stack([mono, mono + echo], axis=1)}


def encode(ffmpeg: str, wav: Path, rate: str, out: Path) -> float:
    cmd = [ffmpeg, "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", rate,
           "-ar", str(RATE), "-f", "mp4", str(out)]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def snr_db(ffmpeg: str, ref: np.ndarray, coded: Path) -> float:
    ch = 1 if ref.ndim == 1 else ref.shape[1]
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(coded), "-f", "f32le", "-ac", str(ch),
                          "-ar", str(RATE), "-"], check=True, capture_output=True).stdout  # fmt: skip
    got = np.frombuffer(raw, np.float32).reshape(-1, ch)
    ref = ref.reshape(len(ref), ch)
    n = min(len(ref), len(got))
    err = ref[:n] - got[:n]
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(np.sum(err**2), 1e-20)))


def main(argv: list[str] | None = None) -> int:
    from dubcli.media import find_ffmpeg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    ffmpeg = find_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in tracks(args.seconds).items():
            wav = Path(tmp) / f"{name}.wav"
            sf.write(wav, x, RATE, subtype="PCM_16")
            x16 = sf.read(wav, dtype="float32")[0]  # what the encoder gets
            for rate in ("192k", "160k", "128k"):
                out = Path(tmp) / f"{name}{rate}.m4a"
                times = [encode(ffmpeg, wav, rate, out) for _ in range(args.repeats)]
                print(f"{name:6s} {rate}: encode {statistics.median(times):.2f} s "
                      f"({min(times):.2f}-{max(times):.2f}) for {args.seconds:.0f} s, "
                      f"SNR {snr_db(ffmpeg, x16, out):.1f} dB, {out.stat().st_size // 1024} KB",
                      flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
