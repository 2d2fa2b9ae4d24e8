"""Child processes (ffmpeg, espeak-ng) die with dubcli.

A child that outlives a killed dubcli keeps writing: an ffmpeg mux finishes its hidden `.part`
file after its parent is gone, racing the next run that sweeps such files. On Linux every child
gets PR_SET_PDEATHSIG(SIGKILL) between fork and exec, so the kernel kills it when dubcli dies,
kill -9 included. Elsewhere (macOS, Windows) there is no such call: children are killed on the
normal and the interrupted exit paths (the callers' finally clauses), not after a kill -9.

Use: `subprocess.run(cmd, ..., **child_options())` / `subprocess.Popen(cmd, ..., **child_options())`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)

_prctl = None
if sys.platform.startswith("linux"):
    try:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl  # bound now: nothing to look up later
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        _prctl = None


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec: no imports, no locks, no logging.
    _prctl(PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def child_options() -> dict:
    """Keyword arguments for subprocess.run/Popen that tie the child's life to this process.

    The death signal follows the thread that forked the child, so it is only set from the main
    thread (a worker thread that ends would kill its children early)."""
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return {}
    parent = os.getpid()
    return {"preexec_fn": lambda: _die_with_parent(parent)}
