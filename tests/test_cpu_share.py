"""CpuShare: the model's thread count follows the cores other programs leave free (issue 15)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from dubcli import device
from dubcli.device import CpuShare, others_busy

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 20: pass"


def test_others_busy_is_the_machine_less_this_process():
    # 2 s: all CPUs busy for 300 ticks (100 Hz), this process for 100: 1 CPU of other work
    assert others_busy((0.0, 1000, 50), (2.0, 1300, 150), 100) == pytest.approx(1.0)
    assert others_busy((0.0, 1000, 50), (2.0, 1100, 150), 100) == 0.0  # never below 0


def test_threads_leave_the_cores_other_programs_use(monkeypatch):
    samples = iter([
        (0.0, 0, 0),  # created
        (0.1, 20, 20),  # 0.1 s later: too short a window, all cores still
        (2.0, 400, 200),  # 2 s: 1 CPU of other work -> one thread fewer
        (4.0, 800, 600),  # 2 s: nothing else ran -> every core again
        (6.0, 1400, 800),  # 2 s: 2 CPUs of other work -> still at least one thread
    ])  # fmt: skip
    monkeypatch.setattr(device, "_cpu_sample", lambda: next(samples))
    monkeypatch.setattr(CpuShare, "TICK_HZ", 100)
    share = CpuShare(cores=2)
    assert [share.threads() for _ in range(4)] == [2, 1, 2, 1]


def test_without_proc_every_core(monkeypatch):
    monkeypatch.setattr(device, "_cpu_sample", lambda: None)
    assert CpuShare(cores=3).threads() == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_busy_program_counts_and_a_busy_child_does_not():
    """Measured on this machine's /proc: a busy process that is not ours (started through a
    process that has ended, so its parent is no longer us) is other work; our own busy child
    (as the frame decoders are) is not."""

    def others_over_a_second() -> float:
        a = device._cpu_sample()
        time.sleep(1.0)
        return others_busy(a, device._cpu_sample(), CpuShare.TICK_HZ)

    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.3)
        ours = others_over_a_second()
    finally:
        child.kill()
        child.wait()
    spawn = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', "
             f"{BUSY!r}], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")  # fmt: skip
    pid = int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True,
                             check=True).stdout)  # fmt: skip
    try:
        time.sleep(0.3)
        theirs = others_over_a_second()
    finally:
        os.kill(pid, signal.SIGKILL)
    assert theirs > 0.6 and theirs - ours > 0.5
