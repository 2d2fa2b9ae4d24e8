"""`dubcli eval`: score a checkpoint (or generated audio) on a prepared split (paper section 4).

Thin on purpose: validate the options, call dubcli.eval.runner.evaluate, print the table on
stderr and --json on stdout. Exit codes: the DubcliError's for the run as a whole; 8
(PartialFailure) when some utterances could not be evaluated (all are listed in results.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from dubcli.commands.common import Device, Offline, Temperature, cli_context, progress_bar
from dubcli.config import DEFAULT_TEMPERATURE

DEVICES = ("auto", "cpu", "cuda")


def eval_command(
    *,
    ctx: typer.Context,
    checkpoint: Annotated[
        str,
        typer.Option(
            "--checkpoint",
            help="NAME | PATH | hf://org/repo/file | a training RUN folder (default: the registry default).",
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="A prepared split: DIR/test, DIR, or a manifest .jsonl.")
    ],
    setting: Annotated[
        int,
        typer.Option(
            "--setting", help="1: own audio as reference; 2: same speaker; 3: unseen speaker."
        ),
    ] = 1,
    nfe: Annotated[
        str,
        typer.Option(
            "--nfe", help="Flow-matching steps, 1-128; a comma list (8,32) = one model row each."
        ),
    ] = "8",
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Only the first K utterances.")
    ] = None,
    audio_dir: Annotated[
        Path,
        typer.Option("--audio-dir", help="Score <id>.wav files from here instead of generating."),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Also ground truth, the codec ceiling and the baseline engine."
        ),
    ] = False,
    oracles: Annotated[
        bool,
        typer.Option(
            "--oracles",
            help="Also the model with ground-truth durations, and with durations + content tokens.",
        ),
    ] = False,
    plots: Annotated[
        bool, typer.Option("--plots", help="Attention maps, mel spectrograms and an index.html.")
    ] = False,
    syncnet: Annotated[
        str, typer.Option("--syncnet", help="SyncNet weights (PATH | hf://...) for LSE-C / LSE-D.")
    ] = None,
    pairs: Annotated[
        Path,
        typer.Option(
            "--pairs", help="Test list: 'utt_id ref_id' per line (GRID / Chem protocols)."
        ),
    ] = None,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics", help="Comma list of lse,sync,boundary,wer,secs,mos (default: all)."
        ),
    ] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")],
    device: Device = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed (utterance k uses seed + k).")] = 0,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    offline: Offline = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON summary on stdout.")] = False,
) -> None:
    """Evaluate dubbing: lip sync, WER, speaker similarity, DNSMOS and RTF per system."""
    from dubcli.errors import PartialFailure
    from dubcli.eval.config import EvalConfig
    from dubcli.eval.report import print_table
    from dubcli.eval.runner import evaluate

    if setting not in (1, 2, 3):
        raise typer.BadParameter(f"{setting} is not 1, 2 or 3", param_hint="--setting")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise typer.BadParameter(f"{device!r} is not one of auto, cpu, cuda", param_hint="--device")
    config = EvalConfig(setting=setting, nfe=tuple(_nfe_list(nfe)), limit=limit,
                        audio_dir=audio_dir, compare=compare, oracles=oracles, plots=plots,
                        seed=seed, temperature=temperature, device=device, offline=offline,
                        syncnet=syncnet, pairs=pairs, metrics=metrics)  # fmt: skip
    chatty = cli_context(ctx).chatty
    bar, update, _ = progress_bar(chatty)
    with bar:
        result = evaluate(checkpoint, split, config, out_dir=output_dir, progress=update)
    if chatty:
        print_table(result)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()
    if result.failures:
        raise PartialFailure(
            f"{len(result.failures)} utterance/system item(s) could not be evaluated; listed in "
            f"{result.files.get('json')}"
        )


def _nfe_list(text: str) -> list[int]:
    """'8' -> [8]; '8,32' -> [8, 32]; anything else is a usage error."""
    try:
        nfes = [int(x) for x in text.split(",")]
    except ValueError:
        nfes = []
    if not nfes or not all(1 <= n <= 128 for n in nfes):
        raise typer.BadParameter(f"{text!r}: steps 1-128, or a comma list", param_hint="--nfe")
    return nfes


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
