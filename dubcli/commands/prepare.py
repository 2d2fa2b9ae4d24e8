"""`dubcli prepare` (raw data -> features, tokens, alignments) and `dubcli prepare-merge`.

Thin on purpose: validate the options, call dubcli.prepare.run.prepare (or prepare.merge's
merge_prepared), show progress on stderr, print --json on stdout. Exit codes: the DubcliError's;
8 (PartialFailure) when some items failed (they are listed in OUT/failures.jsonl).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from dubcli.commands.common import JsonResult, cli_context

LAYOUTS = ("synth", "pairs", "grid", "chem")
SPLIT_MODES = ("auto", "folders", "hash")


def _progress_bar(enabled: bool):
    """A rich Progress on stderr and a callback (stage, done, total) that drives it."""
    from dubcli.train.progress import rich_progress  # torch-free

    bar = rich_progress(enabled=enabled)
    tasks: dict[str, int] = {}
    label = {"codec audio": "audio for codebooks", "codec": "fitting codebooks",
             "items": "preparing"}  # fmt: skip

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(label.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def prepare(
    *,
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(
            help="The raw data: a folder (pairs, grid), a clip list (chem); none for synth."
        ),
    ] = None,
    layout: Annotated[str, typer.Option("--layout", "-l", help="synth | pairs | grid | chem")],
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", help="The prepared dataset folder (created; a rerun resumes it)."
        ),
    ],
    n: Annotated[
        int,
        typer.Option(
            "-n", min=1, help="synth: utterances to generate; others: use only the first N items."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for generation, splits, codebooks.")
    ] = 0,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")] = 1,
    shard: Annotated[
        str,
        typer.Option(
            "--shard",
            help="i/n: prepare every n-th item from the "
            "i-th (one part per machine; merge with prepare-merge).",
        ),
    ] = "1/1",
    only_split: Annotated[
        list[str] | None,
        typer.Option(
            "--only-split",
            help="Prepare only this split (repeatable): e.g. a test set for a corpus, with "
            "--codec CORPUS/codec.safetensors.",
        ),
    ] = None,
    codec: Annotated[
        Path,
        typer.Option(
            "--codec",
            help="Reuse these codebooks (a codec "
            ".safetensors) instead of fitting them on the train split.",
        ),
    ] = None,
    render: Annotated[
        bool, typer.Option("--render", help="synth: also render mp4s to OUT/media.")
    ] = False,
    speaker: Annotated[
        str,
        typer.Option(
            "--speaker",
            help="pairs/chem: the speaker of every item (default: speakers.tsv, the folder name).",
        ),
    ] = None,
    splits: Annotated[
        str,
        typer.Option(
            "--splits",
            help="pairs: auto | folders | hash (train/valid/test subfolders, or a seeded hash).",
        ),
    ] = "auto",
    force: Annotated[
        bool,
        typer.Option(
            "--force", "-f", help="Start over: delete what an earlier prepare wrote to OUT."
        ),
    ] = False,
    as_json: JsonResult = False,
    codebook_size: Annotated[
        int,
        typer.Option(
            "--codebook-size",
            min=3,
            hidden=True,
            help="Codes per stream when fitting codebooks (tests).",
        ),
    ] = 1024,
    codec_items: Annotated[
        int,
        typer.Option(
            "--codec-items", min=1, hidden=True, help="Train utterances the codebooks are fit on."
        ),
    ] = 200,
    shard_size: Annotated[
        int, typer.Option("--shard-size", min=1, hidden=True, help="Utterances per shard file.")
    ] = 64,
) -> None:
    """Turn raw data into the prepared-dataset format that train and eval read."""
    from dubcli.console import console
    from dubcli.errors import InputError, PartialFailure
    from dubcli.prepare.config import PrepareConfig
    from dubcli.prepare.run import parse_shard
    from dubcli.prepare.run import prepare as run_prepare

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"{layout!r} is not one of {', '.join(LAYOUTS)}",
                                 param_hint="--layout")  # fmt: skip
    if splits not in SPLIT_MODES:
        raise typer.BadParameter(f"{splits!r} is not one of {', '.join(SPLIT_MODES)}",
                                 param_hint="--splits")  # fmt: skip
    try:
        parse_shard(shard)
    except InputError as exc:
        raise typer.BadParameter(exc.message, param_hint="--shard") from None
    if render and layout != "synth":
        raise typer.BadParameter("only the synth layout renders videos", param_hint="--render")
    if speaker is not None and layout not in ("pairs", "chem"):
        raise typer.BadParameter("only pairs and chem take a speaker", param_hint="--speaker")
    if splits != "auto" and layout != "pairs":
        raise typer.BadParameter("only the pairs layout takes --splits", param_hint="--splits")
    if layout == "synth" and data is not None:
        raise typer.BadParameter("the synth layout generates its data; give no DATA")
    if layout != "synth" and data is None:
        raise typer.BadParameter(f"the {layout} layout needs DATA", param_hint="DATA")
    options: dict = {}
    if speaker is not None:
        options["speaker"] = speaker
    if layout == "pairs":
        options["splits"] = splits
    config = PrepareConfig(n=n, seed=seed, workers=workers, shard=shard, codec=codec,
                           render=render, force=force, layout_options=options,
                           codec_config={"vocab": codebook_size}, codec_items=codec_items,
                           shard_size=shard_size, only_splits=tuple(only_split or ()))  # fmt: skip
    chatty = cli_context(ctx).chatty
    bar, update = _progress_bar(chatty)
    with bar:
        result = run_prepare(layout, data, output_dir, config, progress=update)
    if chatty:
        c = result.counts
        console().print(
            f"{result.out}: {c['train']} train / {c['valid']} valid / {c['test']} test "
            f"utterances, {result.hours:.2f} h, {result.speakers} speakers "
            f"({result.processed} prepared, {result.skipped} already done, "
            f"{len(result.failures)} failed) in {result.seconds:.0f} s",
            markup=False,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    if result.failures:
        k = len(result.failures)
        total = k + result.processed
        raise PartialFailure(
            f"{k} of {total} items failed; reasons in {result.out / 'failures.jsonl'}"
        )


def prepare_merge(
    *,
    ctx: typer.Context,
    parts: Annotated[list[Path], typer.Argument(help="Folders written by prepare --shard i/n.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="The merged dataset.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace a dataset in OUT.")] = False,
    as_json: JsonResult = False,
) -> None:
    """Merge the part folders of `prepare --shard i/n` runs into one prepared dataset."""
    from dubcli.console import console
    from dubcli.prepare.merge import merge_prepared

    chatty = cli_context(ctx).chatty
    res = merge_prepared(parts, output_dir, force=force)
    if chatty:
        missing = f", missing parts {list(res.missing_parts)}" if res.missing_parts else ""
        console().print(f"{res.out}: {res.utterances} utterances, {res.hours:.2f} h{missing}",
                        markup=False)  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(res.to_json()) + "\n")
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
    app.command("prepare-merge")(prepare_merge)
