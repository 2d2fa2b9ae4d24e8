"""Our BS.1770 meter (dubcli/dubbing/loudness.py) against pyloudnorm, the measurement behind it.

Known answers: the EBU Tech 3341 cases 1-5 (stereo 1 kHz sines at stated levels, gated
sequences) and the BS.1770-4 997 Hz sine, generated exactly as tests/test_dub_mix.py does; then
the time to measure one minute of 48 kHz stereo (best of 3), one-shot and streamed.
pyloudnorm is not a dependency: `pip install pyloudnorm` to run this.

    python benchmarks/loudness_meter.py        # ~10 s on 2 CPU cores
"""

from __future__ import annotations

import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np

from dubcli.dubbing.loudness import LoudnessMeter, integrated_loudness  # noqa: E402

R = 48_000


def sine(db: float, seconds: float, freq: float = 1000.0, rate: int = R) -> np.ndarray:
    return 10 ** (db / 20) * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def sequence(segments: list[tuple[float, float]]) -> np.ndarray:
    x = np.concatenate([sine(db, s) for db, s in segments])
    return np.stack([x, x], axis=1)


CASES = [  # (name, signal, rate, expected LUFS)
    ("3341 case 1: -23 dBFS", sequence([(-23, 20)]), R, -23.0),
    ("3341 case 2: -33 dBFS", sequence([(-33, 20)]), R, -33.0),
    ("3341 case 3: relative gate", sequence([(-36, 10), (-23, 60), (-36, 10)]), R, -23.0),
    ("3341 case 4: both gates",
     sequence([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)]), R, -23.0),
    ("3341 case 5: -26/-20/-26", sequence([(-26, 20), (-20, 20.1), (-26, 20)]), R, -23.0),
    ("BS.1770 997 Hz 0 dBFS mono", sine(0, 5, 997.0), R, -3.01),
    ("997 Hz -20 dBFS, left only", np.stack([sine(-20, 5, 997.0), np.zeros(5 * R)], 1), R, -23.01),
    ("997 Hz -20 dBFS @ 44.1 kHz", sine(-20, 5, 997.0, 44_100), 44_100, -23.01),
    ("997 Hz -20 dBFS @ 16 kHz", sine(-20, 5, 997.0, 16_000), 16_000, -23.01),
]  # fmt: skip


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    import pyloudnorm

    print(
        f"{'case':30s} {'expected':>8s} {'ours':>8s} {'pyln':>8s} {'err ours':>8s} {'err pyln':>8s}"
    )
    for name, x, rate, expected in CASES:
        ours = integrated_loudness(x, rate)
        theirs = pyloudnorm.Meter(rate).integrated_loudness(x)
        print(f"{name:30s} {expected:8.2f} {ours:8.3f} {theirs:8.3f} "
              f"{ours - expected:+8.3f} {theirs - expected:+8.3f}")  # fmt: skip

    cue = sine(-20, 0.3)
    try:
        theirs = f"{pyloudnorm.Meter(R).integrated_loudness(cue):.3f}"
    except ValueError as exc:
        theirs = f"ValueError: {exc}"
    print(f"0.3 s cue: ours {integrated_loudness(cue, R):.3f}, pyloudnorm {theirs}")

    minute = np.random.default_rng(0).normal(0, 0.05, (60 * R, 2))

    def streamed() -> float:
        meter = LoudnessMeter(R, 2)
        for i in range(0, len(minute), 65536):
            meter.add(minute[i : i + 65536])
        return meter.integrated()

    print(
        f"1 min of 48 kHz stereo: ours {best_of(streamed) * 1000:.0f} ms streamed, "
        f"{best_of(lambda: integrated_loudness(minute, R)) * 1000:.0f} ms one-shot; pyloudnorm "
        f"{best_of(lambda: pyloudnorm.Meter(R).integrated_loudness(minute)) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
