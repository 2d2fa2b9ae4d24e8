"""The CLI shell: version/help, exit-code mapping, tracebacks only with -v, NO_COLOR."""

import re
import subprocess
import sys

import pytest
import typer

from dubcli import __version__
from dubcli.cli import run
from dubcli.console import reset_console
from dubcli.errors import (
    EXIT_CODE_TABLE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_OUTPUT,
    EXIT_USAGE,
    InputError,
    OutputError,
)


@pytest.fixture(autouse=True)
def _fresh_console():
    reset_console()
    yield
    reset_console()


def _app() -> typer.Typer:
    """A throwaway app with the real global options, so run()'s mapping is tested in isolation."""
    from dubcli.cli import _root

    app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(_root)

    @app.command()
    def bad_input():
        raise InputError("clip.mp4: not a media file")

    @app.command()
    def exists():
        raise OutputError("out.mp4: already exists (use --force to overwrite)")

    @app.command()
    def bug():
        raise ZeroDivisionError("division by zero")

    @app.command()
    def ok(n: int = 1):
        typer.echo(f"ok {n}")

    return app


def test_version(capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"dubcli {__version__}")


def test_help_short_and_long(capsys):
    assert run(["-h"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and "--version" in out
    assert run(["--help"]) == 0


def test_module_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "dubcli", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.mark.parametrize(
    ("cmd", "code", "text"),
    [
        ("bad-input", EXIT_INPUT, "dubcli: error: clip.mp4: not a media file"),
        ("exists", EXIT_OUTPUT, "use --force"),
        ("bug", EXIT_INTERNAL, "internal error: ZeroDivisionError"),
    ],
)
def test_errors_map_to_exit_codes_without_traceback(capsys, cmd, code, text):
    assert run([cmd], application=_app()) == code
    err = capsys.readouterr().err
    assert text in err
    assert "Traceback" not in err


def test_traceback_only_with_verbose(capsys):
    assert run(["-v", "bad-input"], application=_app()) == EXIT_INPUT
    assert "Traceback" in capsys.readouterr().err


def test_usage_error_is_2(capsys):
    assert run(["ok", "--n", "notanint"], application=_app()) == EXIT_USAGE
    assert run(["no-such-command"], application=_app()) == EXIT_USAGE


def test_success_prints_to_stdout(capsys):
    assert run(["-q", "ok", "--n", "3"], application=_app()) == 0
    assert capsys.readouterr().out.strip() == "ok 3"


COLOR_SGR = re.compile(r"\x1b\[[0-9;]*?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m")


def test_no_color_is_honoured(monkeypatch):
    # FORCE_COLOR makes rich emit escapes even into a pipe; NO_COLOR must still remove colours
    # (bold/dim are allowed by the NO_COLOR convention).
    monkeypatch.setenv("FORCE_COLOR", "1")
    cmd = [sys.executable, "-m", "dubcli", "--help"]
    colored = subprocess.run(cmd, capture_output=True, text=True)
    assert COLOR_SGR.search(colored.stdout), "precondition: FORCE_COLOR gives colours"
    monkeypatch.setenv("NO_COLOR", "1")
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 0 and not COLOR_SGR.search(plain.stdout + plain.stderr)


def test_exit_codes_are_documented_once():
    codes = [c for c, _ in EXIT_CODE_TABLE]
    assert len(codes) == len(set(codes))
    readme = (__import__("pathlib").Path(__file__).parents[1] / "README.md").read_text()
    for code, _ in EXIT_CODE_TABLE:
        assert f"| {code} |" in readme, f"exit code {code} missing from README's table"


@pytest.mark.parametrize(
    "command", [[], ["dub"], ["eval"], ["prepare"], ["prepare-merge"], ["train"]]
)
def test_help_shows_no_value_placeholder_for_flags(command, capsys, monkeypatch):
    """--json, --force, -q, --help take no value: no `<bool>` beside them (nor `<int>` for -v)."""
    monkeypatch.setenv("COLUMNS", "160")
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--help" in out and "<bool>" not in out, out
    if not command:
        assert re.search(r"--verbose\s+-v\s+More output", out), out
    if command == ["dub"]:
        assert "<path>" in out  # options that take a value keep theirs


def test_tables_keep_every_column_without_a_terminal():
    """A pipe or a log file: rich would squeeze a table into 80 columns of ellipses."""
    import io

    from rich.console import Console
    from rich.table import Table

    from dubcli.console import print_table

    con = Console(file=io.StringIO(), width=80)
    assert not con.is_terminal
    table = Table("System", *(f"metric {i}" for i in range(12)))
    table.add_row("DiFlowDubber NFE 32", *(f"{i:.3f}" for i in range(12)))
    print_table(table, con)
    con.print("after")
    text = con.file.getvalue()
    assert "…" not in text and "metric 11" in text and "DiFlowDubber NFE 32" in text
    assert text.splitlines()[-1] == "after" and con.width == 80  # the rest stays as it was
