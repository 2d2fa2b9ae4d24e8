"""Where a model runs: `--device auto|cpu|cuda|cuda:N` to a torch device, and its printable name;
on a CPU, how many threads its next step takes (`CpuShare`).

A base module: inference, training and evaluation all use it (none imports the others for it).
"""

from __future__ import annotations

import os
from typing import Any


def resolve_device(spec: str | None = "auto", local_rank: int = 0):
    """auto | cpu | cuda | cuda:N -> a torch device (auto: this rank's GPU when there is one);
    cuda without CUDA is a DependencyError, anything else an InputError."""
    import torch

    from dubcli.errors import DependencyError, InputError

    spec = str(spec or "auto")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DependencyError("--device cuda: this torch build sees no CUDA device")
        return torch.device(spec if ":" in spec else f"cuda:{local_rank}")
    if spec != "cpu":
        raise InputError(f"--device {spec}: unknown device (auto, cpu, cuda)")
    return torch.device("cpu")


def device_name(device: Any) -> str:
    """'cpu', or 'cuda:0 (NVIDIA A100-SXM4-40GB)' for a CUDA device."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    return str(dev)


class CpuShare:
    """How many threads the model's next CPU-heavy step should use: the cores that other
    programs left free since the last call (issue 15).

    Why: on a CPU the model's OpenMP threads meet at a barrier after each of its many small
    ops and spin there while they wait (OpenMP's default). Alone on the machine that is what
    makes two threads pay: generation of the benchmark's 33 cues took 9.6-10.7 s spinning
    against 16.2-16.6 s with passive waiting (`OMP_WAIT_POLICY=PASSIVE`, which made the
    second thread nearly useless: one thread took 17.2-17.8 s). Beside one other busy program
    two spinning threads fight it for the cores (25-45 s), where one thread does not (17.7-18.5
    s). So the model spins, and runs one thread fewer for each core's worth of work that other
    programs did since the last call: measured from /proc/stat (all CPUs: busy + stolen time)
    less this process and its children (the frame decoders); where that is not readable (not
    Linux), every core. A window under MIN_WINDOW_S keeps the last answer."""

    MIN_WINDOW_S = 0.3
    TICK_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, cores: int | None = None):
        self.cores = max(1, cores or os.cpu_count() or 1)
        self._last = _cpu_sample()
        self._threads = self.cores

    def threads(self) -> int:
        """Threads for the next step (1 .. cores); call it right before the step."""
        now = _cpu_sample()
        if now is None or self._last is None:
            self._last = now
            return self._threads
        if now[0] - self._last[0] < self.MIN_WINDOW_S:
            return self._threads  # the window grows until it is long enough
        others = others_busy(self._last, now, self.TICK_HZ)
        self._last = now
        self._threads = max(1, min(self.cores, self.cores - int(round(others))))
        return self._threads


def others_busy(last: tuple, now: tuple, tick_hz: float) -> float:
    """CPUs' worth of work other programs did between two `_cpu_sample`s (>= 0)."""
    wall = now[0] - last[0]
    machine = (now[1] - last[1]) / tick_hz  # busy CPU-seconds, all CPUs
    ours = (now[2] - last[2]) / tick_hz
    return max(0.0, (machine - ours) / wall) if wall > 0 else 0.0


def _cpu_sample() -> tuple[float, int, int] | None:
    """(monotonic seconds, busy ticks of all CPUs, ticks of this process and its children), or
    None where /proc is not there. Children are found by their parent pid (the ffmpeg
    decoders); a child that ended inside a window counts as another program's work."""
    import time

    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        # cpu user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait
        ticks = [int(x) for x in fields[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        me = str(os.getpid())
        mine = _proc_stat("self")
        if mine is None:
            return None
        ours = _ticks(mine)
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry != me:
                stat = _proc_stat(entry)
                if stat is not None and stat[1] == me:  # ppid
                    ours += _ticks(stat)
    except (OSError, ValueError, IndexError):
        return None
    return time.monotonic(), busy, ours


def _proc_stat(pid: str) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _ticks(stat: list[str]) -> int:
    """utime + stime of a process (all its threads) from its `_proc_stat`, in clock ticks."""
    return int(stat[11]) + int(stat[12])
