"""The `dubcli` command line: thin on purpose.

Each command validates its arguments, calls one function of the Python API, and lets errors
propagate; `run()` maps them to the exit codes in `dubcli.errors` in one place. Nothing heavy is
imported at module level, so `dubcli --help` stays fast.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from typing import Annotated

import typer

from dubcli import __version__
from dubcli.commands.common import CliContext, DubcliGroup
from dubcli.console import console, setup_logging
from dubcli.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    DubcliError,
    Interrupted,
    raise_if_interrupted,
)

app = typer.Typer(
    name="dubcli",
    cls=DubcliGroup,
    help="Dub videos with DiFlowDubber: speech that says the subtitle text, in a reference voice, "
    "timed to the speaker's lips.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dubcli {__version__} (python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(
    *,
    ctx: typer.Context,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More output; tracebacks on errors.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Global options; progress and logs go to stderr, results (and --json) to stdout."""
    obj = ctx.ensure_object(CliContext)
    obj.verbosity = -1 if quiet else verbose
    setup_logging(obj.verbosity)


def _argv_verbose(argv: list[str]) -> bool:
    # The callback may not have run when an error happens, so look at argv too.
    return any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in argv)


def _exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage) exception classes: typer >= 0.2x vendors click, older typer uses click."""
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    usage: list[type] = [typer.BadParameter.__mro__[2]]  # the ClickException base typer raises
    try:
        import click

        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    except ImportError:
        pass
    return tuple(exits), tuple(aborts), tuple(usage)


def _raise_interrupted(signum, frame) -> None:
    Interrupted.pending = signum
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise_interrupted():
    """SIGINT and SIGTERM raise errors.Interrupted while a command runs (main thread only), so
    cleanup runs and the CLI framework does not print its own "Aborted!"/blank line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(OSError, ValueError):
            saved[sig] = signal.signal(sig, _raise_interrupted)
    hook = sys.unraisablehook

    def quiet_lost_interrupt(unraisable) -> None:
        # raised in a finalizer or fork hook, Python drops it with a traceback on stderr; it is
        # recorded in Interrupted.pending and raised again at the next step (no traceback)
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    sys.unraisablehook = quiet_lost_interrupt
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for sig, handler in saved.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler)


def run(argv: list[str] | None = None, *, application: typer.Typer | None = None) -> int:
    """Run the CLI and return its exit code (tests call this; `main` exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = _argv_verbose(argv)
    Interrupted.pending = None
    try:
        return _run(application or app, argv, verbose)
    finally:
        Interrupted.pending = None


def _run(application: typer.Typer, argv: list[str], verbose: bool) -> int:
    """The command, its exceptions mapped to exit codes and one line on stderr."""
    exit_types, abort_types, usage_types = _exception_types()
    obj = CliContext()  # ctx.obj of this run: the root callback sets -v/-q on it
    try:
        with _signals_raise_interrupted():
            result = application(args=argv, prog_name="dubcli", standalone_mode=False, obj=obj)
            raise_if_interrupted()  # a signal whose exception something swallowed
        return result if isinstance(result, int) else EXIT_OK
    except Interrupted as exc:
        console().print(f"dubcli: {exc.what}", markup=False, highlight=False)
        return exc.exit_code
    except exit_types as exc:
        return int(getattr(exc, "exit_code", EXIT_OK))
    except abort_types:
        console().print("dubcli: interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except usage_types as exc:  # bad command line: click's usage message, exit code 2
        exc.show(file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except KeyboardInterrupt:
        console().print("dubcli: interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if Interrupted.pending is None:
            return _failed(exc, verbose or obj.verbosity > 0)
        # a library turned the signal's exception into its own error: it is still a signal
        if verbose or obj.verbosity > 0:
            console().print(traceback.format_exc(), markup=False, highlight=False)
        stopped = Interrupted(Interrupted.pending)
        console().print(f"dubcli: {stopped.what}", markup=False, highlight=False)
        return stopped.exit_code


def _failed(exc: Exception, verbose: bool) -> int:
    """Print a DubcliError's line, or an internal error's; return the exit code."""
    if isinstance(exc, DubcliError):
        if verbose:
            console().print(traceback.format_exc(), markup=False, highlight=False)
        console().print(f"dubcli: error: {exc.message}", markup=False, highlight=False)
        return exc.exit_code
    # a bug: say so, keep the traceback behind -v
    if verbose:
        console().print(traceback.format_exc(), markup=False, highlight=False)
        hint = ""
    else:
        hint = " (rerun with -v for the traceback)"
    console().print(
        f"dubcli: internal error: {type(exc).__name__}: {exc}{hint}",
        markup=False,
        highlight=False,
    )
    return EXIT_INTERNAL


def main() -> None:
    import warnings

    # pyworld imports the deprecated pkg_resources at import time: a warning for its
    # maintainers, not for someone dubbing a video (it still shows with python -W default).
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    sys.exit(run())


def _register_commands() -> None:
    from dubcli.commands import register_all

    register_all(app)


_register_commands()
