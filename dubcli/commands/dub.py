"""`dubcli dub`: dub one clip, or a folder of clips paired with subtitles by stem.

Thin on purpose: validate the options, call dubbing.pipeline.dub_video (one file) or
dubbing.batch.dub_batch (a folder), show progress on stderr, print --json on stdout. Exit codes:
the DubcliError's (errors.py) for one file; 8 (PartialFailure) when some batch items failed.
With --json, stdout always gets exactly one JSON document, also when the run fails or is
interrupted ({"status": "failed" | "interrupted", "error", "exit_code"}).

Engine: `--engine diflow|baseline`. Without --engine, diflow is used when --checkpoint is given
or dubcli/weights/registry.toml names a default checkpoint; until one is registered the default is
the baseline engine (espeak-ng + WORLD), with a message saying so. `--engine diflow` without any
checkpoint is a CheckpointError (exit 5).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from dubcli.commands.common import (
    Device,
    JsonResult,
    Offline,
    Temperature,
    cli_context,
    progress_bar,
)
from dubcli.config import DEFAULT_TEMPERATURE

BACKGROUNDS = ("keep", "duck", "remove", "drop")
DEVICES = ("auto", "cpu", "cuda")
ENGINES = ("diflow", "baseline")


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


CUE_LABELS = {"cues": "dubbing cues", "mix": "mixing", "mux": "muxing"}


def dub(
    *,
    ctx: typer.Context,
    input: Annotated[Path, typer.Argument(help="A video file, or a folder of videos.")],
    text: Annotated[
        Path,
        typer.Option(
            "--text",
            "-t",
            help="Subtitles (srt/vtt/ass), or a folder "
            "of them named like the videos. Default: next to each video.",
        ),
    ] = None,
    ref: Annotated[
        list[str] | None,
        typer.Option(
            "--ref",
            "-r",
            help="Reference voice, any audio format: "
            "FILE, or NAME=FILE for the cues of speaker NAME (repeatable). "
            "Default: the video's own speech.",
        ),
    ] = None,
    output_dir: Annotated[
        Path,
        typer.Option("--output-dir", "-o", help="Output folder (default: each video's folder)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="diflow | baseline (default: diflow if a checkpoint is available, else baseline).",
        ),
    ] = None,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="NAME | PATH | hf://org/repo/file | RUN")
    ] = None,
    offline: Offline = False,
    background: Annotated[
        str,
        typer.Option(
            "--background", "-b", help="Original audio under the dub: keep | duck | remove | drop."
        ),
    ] = "duck",
    lufs: Annotated[
        float, typer.Option("--lufs", help="Target integrated loudness (EBU R 128).")
    ] = -16.0,
    keep_original: Annotated[
        bool,
        typer.Option("--keep-original", help="Also keep the original audio tracks in the video."),
    ] = False,
    widen_to_lips: Annotated[
        bool,
        typer.Option(
            "--widen-to-lips",
            help="Widen cue windows to the lip activity around them (up to 0.5 s each side).",
        ),
    ] = False,
    nfe: Annotated[
        int, typer.Option("--nfe", min=1, max=128, help="Flow-matching steps (diflow).")
    ] = 8,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (per cue: seed + cue number).")
    ] = 0,
    device: Device = "auto",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            "-f",
            help="Redo finished outputs, and replace files in their place that dubcli did not "
            "write, changed outputs, or another input's results.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the cue plan; write nothing.")
    ] = False,
    as_json: JsonResult = False,
) -> None:
    """Dub a video (or a folder of videos) with new speech saying the subtitle text."""
    printed = []

    def emit(doc: dict) -> None:
        if as_json and not printed:
            sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            printed.append(True)

    try:
        _choice(engine, ENGINES, "--engine")
        _choice(background, BACKGROUNDS, "--background")
        _choice(device, DEVICES, "--device")
        if not -70.0 <= lufs <= 0.0:
            raise typer.BadParameter(f"{lufs} is outside -70..0 LUFS", param_hint="--lufs")
        from dubcli.dubbing.config import DubConfig

        config = DubConfig(refs=tuple(ref or ()), engine=engine, checkpoint=checkpoint,
                           offline=offline, background=background, lufs=lufs,
                           keep_original=keep_original, widen_to_lips=widen_to_lips, nfe=nfe,
                           temperature=temperature, seed=seed, device=device, force=force,
                           dry_run=dry_run)  # fmt: skip
        _dub(input, text, output_dir, config, emit, cli_context(ctx).verbosity)
    except BaseException as exc:
        emit(_failure(input, exc))
        raise


def _failure(input: Path, exc: BaseException) -> dict:
    """The --json document of a run that ended with `exc`."""
    from dubcli.errors import EXIT_INTERNAL, EXIT_USAGE, DubcliError, Interrupted

    if Interrupted.pending is not None and not isinstance(exc, Interrupted):
        exc = Interrupted(Interrupted.pending)  # a library swallowed the signal's exception
    if isinstance(exc, DubcliError):
        status, error, code = "failed", exc.message, exc.exit_code
    elif isinstance(exc, (Interrupted, KeyboardInterrupt)):
        status, error = "interrupted", str(exc) or "interrupted (Ctrl-C)"
        code = getattr(exc, "exit_code", 130)
    elif isinstance(exc, typer.BadParameter):
        status, error, code = "failed", exc.format_message(), EXIT_USAGE
    else:
        status, error, code = (
            "failed",
            f"internal error: {type(exc).__name__}: {exc}",
            EXIT_INTERNAL,
        )
    return {"input": str(input), "status": status, "error": error, "exit_code": code}


def _dub(
    input: Path, text: Path | None, output_dir: Path | None, config, emit, verbosity: int
) -> None:
    """The command's work once the options are checked; emit(doc) prints the --json result."""
    from dubcli.console import console, print_table
    from dubcli.dubbing.batch import dub_batch, summary_table
    from dubcli.dubbing.pipeline import dub_video, resolve_engine
    from dubcli.dubbing.plan import plan_table
    from dubcli.errors import PartialFailure, raise_if_interrupted

    dry_run = config.dry_run
    config = resolve_engine(config)  # once per dub; fails fast: --engine diflow, no checkpoint
    bar, update, reset = progress_bar(verbosity >= 0 and not dry_run, CUE_LABELS)
    with bar:
        if input.is_dir():

            def on_item(i, n, item):  # noqa: E306
                reset()
                console().print(f"[{i + 1}/{n}] {item.video.name}", markup=False)

            batch = dub_batch(input, text, config, out_dir=output_dir, on_item=on_item,
                              progress=update)  # fmt: skip
            result = batch.to_json()
        else:
            from dubcli.dubbing.batch import pair_inputs

            item = pair_inputs(input, text)[0]
            res = dub_video(item.video, item.subtitles, config, out_dir=output_dir,
                            progress=update)  # fmt: skip
            batch, result = None, res.to_json()
    if dry_run:
        plans = [i.result for i in batch.items if i.result] if batch else [res]
        for r in plans:
            print_table(plan_table(r.plan))
    elif batch is not None and verbosity >= 0:
        print_table(summary_table(batch))
    elif batch is None and verbosity >= 0 and res.status == "done":
        console().print(f"{res.video} -> {res.outputs.video}", markup=False)
    raise_if_interrupted()  # a signal whose exception was lost: the run was interrupted
    emit(result)
    if batch is not None and batch.failed:
        names = ", ".join(i.video.name for i in batch.failed)
        raise PartialFailure(f"{len(batch.failed)} of {len(batch.items)} items failed: {names}")


def register(app: typer.Typer) -> None:
    app.command("dub")(dub)
