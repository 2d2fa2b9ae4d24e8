"""Makes a benchmark measure the checkout it lives in, not whichever dubcli is installed.

`pip install -e .` points the environment's `dubcli` at one checkout, and a script's sys.path
starts with its own folder, not the checkout: a benchmark run from another checkout (a `git
worktree` of an older commit, to compare against) would measure the installed one. Importing
this module puts this checkout first on sys.path, and on PYTHONPATH for the processes the
benchmark starts (`dubcli` commands, fresh children).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
)
