"""`dubcli train`: train stage 1 (tts) or stage 2 (dub) on a prepared dataset.

Thin on purpose: validate the options and call dubcli.train.run.train. Multi-GPU / multi-process:
`torchrun --nproc_per_node N -m dubcli train ...` (DDP; only rank 0 writes and prints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from dubcli.commands.common import cli_context

STAGES = ("tts", "dub")
DEVICES = ("auto", "cpu", "cuda")


def train(
    ctx: typer.Context,
    stage: str = typer.Option(..., "--stage", help="tts (stage 1) | dub (stage 2)."),
    data: Path = typer.Option(..., "--data", help="A prepared dataset folder (dubcli prepare)."),
    output: Path = typer.Option(..., "--output", "-o", help="The run folder to write."),
    config: str = typer.Option(
        None,
        "--config",
        help="tiny | small | paper | FILE.toml (default: small; stage 2: the stage-1 run's).",
    ),
    init_from: Path = typer.Option(
        None, "--init-from", help="Stage 2: the stage-1 run folder or checkpoint to start from."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    steps: int = typer.Option(
        None,
        "--steps",
        min=1,
        help="Optimizer steps (overrides the config; alone: no epoch limit).",
    ),
    epochs: int = typer.Option(
        None, "--epochs", min=1, help="Passes over the train split (alone: no step limit)."
    ),
    batch_tokens: int = typer.Option(
        None, "--batch-tokens", min=16, help="Token budget per batch (padded size)."
    ),
    lr: float = typer.Option(None, "--lr", min=0.0, help="Peak learning rate."),
    seed: int = typer.Option(None, "--seed", help="Seed for weights, data order and noise."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN exactly where it stopped."),
    force: bool = typer.Option(False, "--force", "-f", help="Start RUN over if it exists."),
    export: Path = typer.Option(
        None,
        "--export",
        help="Also write an inference checkpoint (fp16, self-contained) here at the end.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON result on stdout."),
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
    from dubcli.train.run import train as run_training

    result = run_training(
        stage,
        data,
        output,
        config=config,
        init_from=init_from,
        device=device,
        steps=steps,
        epochs=epochs,
        batch_tokens=batch_tokens,
        lr=lr,
        seed=seed,
        resume=resume,
        force=force,
        export=export,
        progress=cli_context(ctx).chatty,
    )
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
