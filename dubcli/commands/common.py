"""What every command shares: the context object the root callback fills (-v/-q) and the
progress bar. Commands read it through `typer.Context`, never through module-global state,
and import only public names from here (never another command's private ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from typer.core import TyperGroup

# Options several commands share, declared once.
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
Offline = Annotated[bool, typer.Option("--offline", help="Never touch the network.")]
JsonResult = Annotated[bool, typer.Option("--json", help="One JSON result on stdout.")]
Temperature = Annotated[
    float,
    typer.Option(
        "--temperature",
        min=0.0,
        max=10.0,
        help="Sampling temperature of the flow-matching steps (diflow); 0 = argmax.",
    ),
]


@dataclass
class CliContext:
    """The `ctx.obj` of a dubcli run: set by the root callback from -v/-q."""

    verbosity: int = 0  # -1: --quiet (errors only); 0: normal; > 0: -v count (tracebacks)

    @property
    def chatty(self) -> bool:
        """Whether progress bars and human-readable results go to the terminal."""
        return self.verbosity >= 0


def cli_context(ctx: typer.Context | None) -> CliContext:
    """The run's CliContext (a default one when a command runs without the root callback)."""
    obj = ctx.find_object(CliContext) if ctx is not None else None
    return obj if obj is not None else CliContext()


def progress_bar(enabled: bool, labels: dict[str, str] | None = None):
    """A rich Progress on stderr and callbacks: update(stage, done, total), reset()."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dubcli.console import console

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console(), transient=True,
                   disable=not (enabled and console().is_terminal))  # fmt: skip
    tasks: dict[str, int] = {}
    label = labels or {}

    def update(stage: str, done: int, total: int) -> None:
        if stage == "mix":  # samples: show percent-ish steps instead of millions
            done, total = int(100 * done / max(total, 1)), 100
        if stage not in tasks:
            tasks[stage] = bar.add_task(label.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    def reset() -> None:
        for t in tasks.values():
            bar.remove_task(t)
        tasks.clear()

    return bar, update, reset


class DubcliGroup(TyperGroup):
    """The app's command group: in --help, an on/off flag shows no value placeholder (typer
    would print `<bool>` beside `--json`, `--force`, `--help`, as if they took a value)."""

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types(command, ctx)
        return command

    def get_params(self, ctx):
        _hide_flag_types(self, ctx)  # the app's own -v/-q/--version/--help
        return super().get_params(ctx)


def _hide_flag_types(command, ctx) -> None:
    """No value placeholder for on/off flags and counted flags (-vv), --help included."""
    help_option = TyperGroup.get_help_option(command, ctx)  # made once per command, then reused
    for param in [*command.params, help_option]:
        flag = getattr(param, "is_bool_flag", False) or getattr(param, "count", False)
        if param is not None and flag and param.metavar is None:
            param.metavar = ""
