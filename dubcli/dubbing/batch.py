"""Batch dubbing: folders of videos paired with subtitles by file stem (DESIGN 9).

Pairing: for each video in INPUT (a folder, not recursive; or one file), the subtitles are
`<stem>.srt`, `<stem>.vtt`, `<stem>.ass` or `<stem>.ssa` (in that order of preference) in the
--text folder (default: the video's own folder), or else the only `<stem>.<anything>.<sub ext>`
there (e.g. `clip.en.srt`; dubcli's own `<base>.dub.srt` outputs are never taken). A video
without subtitles is a failed item, not a stop. Two videos with one stem (`clip.mp4`,
`clip.mkv`) may share `clip.srt`; their outputs are kept apart (dubbing/outputs.py).

Each item runs `dub_video`; an item whose outputs are complete is skipped unless force; a failing
item is reported (its DubcliError message) and the rest continue. `BatchResult.failed` tells the
caller to exit with errors.EXIT_PARTIAL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dubcli.console import get_logger
from dubcli.dubbing.outputs import VIDEO_EXTS
from dubcli.errors import EXIT_INTERNAL, DubcliError, InputError, Interrupted, raise_if_interrupted

log = get_logger(__name__)

__all__ = ["VIDEO_EXTS", "BatchItem", "BatchResult", "ItemResult", "dub_batch", "pair_inputs"]
SUB_EXTS = (".srt", ".vtt", ".ass", ".ssa")


@dataclass(frozen=True)
class BatchItem:
    video: Path
    subtitles: Path | None  # None: `problem` says why
    problem: str | None = None


def _find_subtitles(video: Path, folder: Path) -> tuple[Path | None, str | None]:
    for ext in SUB_EXTS:
        cand = folder / f"{video.stem}{ext}"
        if cand.is_file():
            return cand, None
    tagged = sorted(p for p in folder.glob(f"{video.stem}.*")
                    if p.suffix.lower() in SUB_EXTS and p.is_file()
                    and not p.name.lower().endswith(".dub.srt"))  # fmt: skip
    if len(tagged) == 1:
        return tagged[0], None
    if len(tagged) > 1:
        names = ", ".join(p.name for p in tagged)
        return None, f"{video}: several subtitle files match ({names}); pass --text FILE"
    return None, f"{video}: no subtitles named {video.stem}.srt/.vtt/.ass in {folder}"


def pair_inputs(input: str | os.PathLike, text: str | os.PathLike | None) -> list[BatchItem]:
    """INPUT (video file or folder) and --text (subtitle file, folder or None) -> items."""
    input = Path(input)
    text = Path(text) if text is not None else None
    if not input.exists():
        raise InputError(f"{input}: not found")
    if text is not None and not text.exists():
        raise InputError(f"{text}: subtitle file or folder not found")
    if input.is_file():
        if text is not None and text.is_file():
            return [BatchItem(input, text)]
        sub, problem = _find_subtitles(input, text or input.parent)
        if problem:
            raise InputError(f"{problem}; pass --text SUBS")
        return [BatchItem(input, sub)]
    if text is not None and text.is_file():
        raise InputError(f"{input} is a folder but --text {text} is one file: pass a folder of "
                         "subtitles named like the videos")  # fmt: skip
    videos = sorted(p for p in input.iterdir()
                    if p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith(".")
                    and ".dubbed." not in p.name)  # fmt: skip
    if not videos:
        raise InputError(f"{input}: no video files ({', '.join(VIDEO_EXTS)})")
    items = []
    for v in videos:
        sub, problem = _find_subtitles(v, text or input)
        items.append(BatchItem(v, sub, problem))
    return items


@dataclass(frozen=True)
class ItemResult:
    video: Path
    subtitles: Path | None
    status: str  # "done" | "skipped" | "planned" | "failed"
    error: str | None = None
    exit_code: int | None = None
    result: object | None = None  # the DubResult
    seconds: float = 0.0

    def to_json(self) -> dict:
        out = {"input": str(self.video), "status": self.status, "error": self.error,
               "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
               "subtitles": str(self.subtitles) if self.subtitles else None}  # fmt: skip
        if self.result is not None:
            out |= {k: v for k, v in self.result.to_json().items() if k not in out}
        return out


@dataclass(frozen=True)
class BatchResult:
    items: tuple[ItemResult, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.status == "failed"]

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "planned": 0, "failed": 0}
        for i in self.items:
            out[i.status] += 1
        return out

    def to_json(self) -> dict:
        return {"items": [i.to_json() for i in self.items], "counts": self.counts(),
                "ok": not self.failed}  # fmt: skip


def dub_batch(
    input: str | os.PathLike,
    text: str | os.PathLike | None,
    config=None,
    *,
    out_dir: str | os.PathLike | None = None,
    on_item: Callable[[int, int, BatchItem], None] | None = None,
    **kwargs,
) -> BatchResult:
    """Dub every paired item with dub_video: `config` (a DubConfig) and kwargs (progress, or
    DubConfig fields such as refs, engine, background, force) go to it. The engine is chosen
    once for the batch (pipeline.resolve_engine).

    on_item(i, n, item) is called before each item (progress display)."""
    from dubcli.dubbing.config import DubConfig
    from dubcli.dubbing.pipeline import dub_video, resolve_engine

    progress = kwargs.pop("progress", None)
    items = pair_inputs(input, text)
    config = DubConfig.of(config, **kwargs)
    if config.engine is None:
        config = resolve_engine(config)
    results = []
    for i, item in enumerate(items):
        raise_if_interrupted()
        if on_item:
            on_item(i, len(items), item)
        t = time.perf_counter()
        if item.problem:
            log.error("%s", item.problem)
            results.append(ItemResult(item.video, None, "failed", item.problem, 3))
            continue
        try:
            res = dub_video(item.video, item.subtitles, config, out_dir=out_dir, progress=progress)
        except DubcliError as exc:
            if Interrupted.pending is not None:  # a library swallowed the signal's exception
                raise Interrupted(Interrupted.pending) from exc
            log.error("%s: failed: %s", item.video, exc.message)
            results.append(ItemResult(item.video, item.subtitles, "failed", exc.message,
                                      exc.exit_code, seconds=time.perf_counter() - t))  # fmt: skip
            continue
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug in one item must not lose the others' work
            if Interrupted.pending is not None:
                raise Interrupted(Interrupted.pending) from exc
            log.debug("%s: internal error", item.video, exc_info=True)
            msg = f"internal error: {type(exc).__name__}: {exc} (rerun it alone with -v)"
            log.error("%s: failed: %s", item.video, msg)
            results.append(ItemResult(item.video, item.subtitles, "failed", msg, EXIT_INTERNAL,
                                      seconds=time.perf_counter() - t))  # fmt: skip
            continue
        results.append(ItemResult(item.video, item.subtitles, res.status, result=res,
                                  seconds=time.perf_counter() - t))  # fmt: skip
    return BatchResult(tuple(results))


def summary_table(batch: BatchResult):
    """A rich Table: one row per item with its status, time, loudness or error."""
    from rich.table import Table
    from rich.text import Text

    c = batch.counts()
    table = Table(title=f"dub: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed"
                  + (f", {c['planned']} planned" if c["planned"] else ""))  # fmt: skip
    for col in ("input", "status", "cues", "time (s)", "LUFS", "details"):
        table.add_column(col, overflow="fold")
    style = {"done": "green", "skipped": "cyan", "planned": "cyan", "failed": "red"}
    for it in batch.items:
        res = it.result
        report = getattr(res, "report", None)  # a DubReport when the item was dubbed
        plan = getattr(res, "plan", None)
        cues = str(len(plan.windows)) if plan is not None else ""
        lufs = report.loudness.get("after") if report is not None else None
        detail = it.error or (str(res.outputs.video) if res is not None else "")
        table.add_row(Text(it.video.name), Text(it.status, style=style[it.status]), cues,
                      f"{it.seconds:.1f}", "" if lufs is None else f"{lufs:.1f}", Text(detail))  # fmt: skip
    return table
