"""Console and logging: everything human-facing goes to stderr, so `--json` can own stdout.

Rich honours NO_COLOR by itself; we also pass it explicitly so tests that set it see plain text.
"""

from __future__ import annotations

import logging
import os

from rich.console import Console

LOGGER_NAME = "dubcli"

_console: Console | None = None


def console() -> Console:
    """The shared stderr console (created lazily so nothing happens on import)."""
    global _console
    if _console is None:
        _console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    return _console


def print_table(table, con: Console | None = None) -> None:
    """Print a rich table whole. On a terminal it fits the window as usual; where there is no
    terminal (a pipe, a log file, CI) rich would squeeze it into 80 columns of ellipses, so it
    gets the width it needs instead (other output keeps the normal width: log lines are padded
    to it)."""
    from rich.measure import Measurement

    con = con or console()
    if con.is_terminal:
        con.print(table)
        return
    need = Measurement.get(con, con.options.update_width(10_000), table).maximum
    width = con.width
    con.width = max(width, need)  # Console.print(width=) cannot exceed the console's own
    try:
        con.print(table)
    finally:
        con.width = width


def get_logger(name: str | None = None) -> logging.Logger:
    """A child of the `dubcli` logger: `get_logger(__name__)` in every module."""
    if not name or name == LOGGER_NAME:
        return logging.getLogger(LOGGER_NAME)
    if name.startswith(LOGGER_NAME + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def setup_logging(verbosity: int) -> None:
    """verbosity: -1 quiet (errors only), 0 normal (info), 1+ verbose (debug)."""
    from rich.logging import RichHandler

    level = {-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = RichHandler(
        console=console(),
        show_time=verbosity > 0,
        show_path=verbosity > 0,
        rich_tracebacks=True,
        markup=False,
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def reset_console() -> None:
    """Forget the cached console (tests change NO_COLOR / stderr between runs)."""
    global _console
    _console = None
