"""`dubcli train`: train stage 1 (tts) or stage 2 (dub) on a prepared dataset.

Thin on purpose: validate the options and call dubcli.train.run.train. Multi-GPU / multi-process:
`torchrun --nproc_per_node N -m dubcli train ...` (DDP; only rank 0 writes and prints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from dubcli.commands.common import Device, JsonResult, cli_context

STAGES = ("tts", "dub")
DEVICES = ("auto", "cpu", "cuda")


def train(
    *,
    ctx: typer.Context,
    stage: Annotated[str, typer.Option("--stage", help="tts (stage 1) | dub (stage 2).")],
    data: Annotated[
        Path, typer.Option("--data", help="A prepared dataset folder (dubcli prepare).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The run folder to write.")],
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="tiny | small | paper | FILE.toml (default: small; stage 2: the stage-1 run's).",
        ),
    ] = None,
    init_from: Annotated[
        Path,
        typer.Option(
            "--init-from", help="Stage 2: the stage-1 run folder or checkpoint to start from."
        ),
    ] = None,
    device: Device = "auto",
    steps: Annotated[
        int,
        typer.Option(
            "--steps", min=1, help="Optimizer steps (overrides the config; alone: no epoch limit)."
        ),
    ] = None,
    epochs: Annotated[
        int,
        typer.Option("--epochs", min=1, help="Passes over the train split (alone: no step limit)."),
    ] = None,
    batch_tokens: Annotated[
        int, typer.Option("--batch-tokens", min=16, help="Token budget per batch (padded size).")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for weights, data order and noise.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue RUN exactly where it stopped.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Start RUN over if it exists.")
    ] = False,
    export: Annotated[
        Path,
        typer.Option(
            "--export",
            help="Also write an inference checkpoint (fp16, self-contained) here at the end.",
        ),
    ] = None,
    as_json: JsonResult = False,
) -> None:
    """Train DiFlowDubber: stage 1 (zero-shot TTS) or stage 2 (video dubbing)."""
    if stage not in STAGES:
        raise typer.BadParameter(f"{stage!r} is not one of tts, dub", param_hint="--stage")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise typer.BadParameter(f"{device!r} is not one of auto, cpu, cuda", param_hint="--device")
    if resume and force:
        raise typer.BadParameter("--resume and --force exclude each other", param_hint="--force")
    if lr is not None and lr <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--lr")
    from dubcli.train.options import TrainOptions
    from dubcli.train.run import train as run_training

    options = TrainOptions(config=config, init_from=init_from, device=device, steps=steps,
                           epochs=epochs, batch_tokens=batch_tokens, lr=lr, seed=seed,
                           resume=resume, force=force, export=export)  # fmt: skip
    result = run_training(stage, data, output, options, progress=cli_context(ctx).chatty)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    if as_json:
        typer.echo(json.dumps(result.to_json(), sort_keys=True))
    else:
        from dubcli.console import console

        valid = f", valid loss {result.valid_loss:.4f}" if result.valid_loss is not None else ""
        console().print(
            f"trained {result.stage} to step {result.step}: loss {result.train_loss:.4f}{valid} "
            f"-> {result.run}" + (f" (exported {result.export})" if result.export else ""),
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
