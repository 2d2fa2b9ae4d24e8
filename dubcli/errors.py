"""The error hierarchy and the one table of exit codes.

Every failure a user can cause or fix raises a `DubcliError` subclass carrying a one-line message
that names the file and the problem. The CLI prints that line (a traceback only with `-v`) and
exits with the class's code. README.md documents the same table; keep them in step.
"""

from __future__ import annotations

# Exit codes, in one place. 2 is click/typer's own code for a bad command line.
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: an exception that is not a DubcliError
EXIT_USAGE = 2  # bad command-line arguments (raised by typer/click)
EXIT_INPUT = 3  # an input file is missing, unreadable, or not what it claims to be
EXIT_DEPENDENCY = 4  # a program or package the command needs is not installed
EXIT_CHECKPOINT = 5  # a checkpoint cannot be found, downloaded, verified or loaded
EXIT_OUTPUT = 6  # an output cannot be written, or exists and --force was not given
EXIT_RUNTIME = 7  # a processing step failed on valid input (e.g. ffmpeg died, out of memory)
EXIT_PARTIAL = 8  # batch mode: some items failed, the others finished
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + 15, what shells report for a terminated program)


class DubcliError(Exception):
    """Base class: a user-facing failure with a one-line message and an exit code."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str):
        # One line: the CLI prints it as is, so keep newlines out of it.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class InputError(DubcliError):
    """An input (video, audio, subtitles, data folder) is missing, unreadable or invalid."""

    exit_code = EXIT_INPUT


class DependencyError(DubcliError):
    """A program (ffmpeg, espeak-ng) or Python package the command needs is missing."""

    exit_code = EXIT_DEPENDENCY


class CheckpointError(DubcliError):
    """A checkpoint cannot be resolved, downloaded, verified (sha256) or loaded."""

    exit_code = EXIT_CHECKPOINT


class OutputError(DubcliError):
    """An output cannot be written, or it exists and would be overwritten without --force."""

    exit_code = EXIT_OUTPUT


class ProcessingError(DubcliError):
    """A processing step failed on input that looked valid (an ffmpeg run, a model step)."""

    exit_code = EXIT_RUNTIME


class PartialFailure(DubcliError):
    """Batch mode finished, but some items failed (each was reported as it happened)."""

    exit_code = EXIT_PARTIAL


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM arrived: raised by the CLI's signal handlers so that every
    finally clause runs (children killed, temporaries removed, locks released).

    A BaseException, like KeyboardInterrupt, so `except Exception` never swallows it; not a
    KeyboardInterrupt, so the CLI framework does not turn it into a bare "Aborted"/blank line.

    `Interrupted.pending` keeps the last signal's number, because the exception can be lost: a
    library may turn it into its own error (pybind11 makes anything raised while a module
    initializes "ImportError: initialization failed"), and Python drops exceptions raised in
    finalizers and fork hooks ("Exception ignored in ..."), where a signal handler may happen to
    run. So an error that ends a run after a signal is still an interruption (cli.run and the
    batch loop look), and long loops call `raise_if_interrupted()` between steps."""

    pending: int | None = None

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        self.exit_code = EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED
        self.what = (
            "terminated (SIGTERM)" if self.signum == signal.SIGTERM else "interrupted (Ctrl-C)"
        )
        super().__init__(self.what)


def raise_if_interrupted() -> None:
    """Raise Interrupted if a signal arrived whose exception was lost (see Interrupted). Call it
    between steps of normal work, never in cleanup code."""
    if Interrupted.pending is not None:
        raise Interrupted(Interrupted.pending)


EXIT_CODE_TABLE: list[tuple[int, str]] = [
    (EXIT_OK, "success"),
    (EXIT_INTERNAL, "internal error (a bug; rerun with -v and report the traceback)"),
    (EXIT_USAGE, "bad command-line usage"),
    (EXIT_INPUT, "invalid or missing input file"),
    (EXIT_DEPENDENCY, "missing program or package"),
    (
        EXIT_CHECKPOINT,
        "checkpoint cannot be found, downloaded, verified or loaded "
        "(bad metadata, invalid registry)",
    ),
    (
        EXIT_OUTPUT,
        "output cannot be written (disk full, read-only, denied, quota), or a file in "
        "the way is not dubcli's, was changed, or holds another input's result (use --force)",
    ),
    (EXIT_RUNTIME, "a processing step failed"),
    (EXIT_PARTIAL, "batch finished with some failed items"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_TERMINATED, "terminated (SIGTERM)"),
]
