"""Workers of `prepare`: extract one item (layout) and encode it (codec), in or out of process.

Dimensions: t tokens (80/s), nv video frames (25 fps), d speaker width.

A worker returns the item's arrays and manifest fields to the parent, which alone writes files
(writer.py). Pools are spawn-started (no fork of a parent that may hold threads, e.g. the
progress bar's) and bounded to 2 * workers items in flight; results come back in item order,
so the output is the same for any worker count. A bad item becomes a failed WorkResult with a
reason; a missing dependency (DependencyError) stops the run instead: no item could succeed.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dubcli.audio.codec.phonetic import PhoneLabels
from dubcli.console import get_logger
from dubcli.data.manifest import CODEC_FILE
from dubcli.errors import DependencyError, DubcliError, ProcessingError
from dubcli.prepare.layouts import Context, Item, ItemFailed, Layout

log = get_logger(__name__)


class WorkResult(NamedTuple):
    item: Item
    fields: dict[str, Any] | None  # Utterance fields except shard / ref_ids; None on failure
    arrays: dict[str, np.ndarray] | None
    stage: str
    reason: str
    timings: dict[str, float]


_W: dict[str, Any] = {}  # per worker process: layout, codec, context


def _init_worker(lay: Layout, codec_path: str, ctx: Context) -> None:
    from dubcli.audio.codec import load_codec

    _W.update(layout=lay, codec=load_codec(codec_path), ctx=ctx)


def audio_job(item: Item, lay: Layout | None = None, ctx: Context | None = None,
              analysis: Any = None) -> tuple[PhoneLabels, Any] | str:  # fmt: skip
    """An item's phone labels and the WORLD analysis of its audio with the codec config
    `analysis`, for codec fitting (analysed here so that worker processes share the work, and
    only the analysis crosses back, not the waveform), or a string saying why not."""
    from dubcli.audio.codec.world import analyze_for

    try:
        got = (lay or _W["layout"]).labelled_audio(item, ctx or _W["ctx"])
        config = analysis if analysis is not None else _W["analysis"]
        frames = analyze_for(np.asarray(got.wav, dtype=np.float64), config)
        return PhoneLabels(got.phonemes, got.durations_tokens), frames
    except (ItemFailed, DubcliError) as exc:
        return f"{item.id}: {exc}"


def _work_job(item: Item) -> WorkResult:
    return work(item, _W["layout"], _W["ctx"], _W["codec"])


def work(item: Item, lay: Layout, ctx: Context, codec) -> WorkResult:
    """Extract and encode one item -> a WorkResult (never raises for a bad item)."""
    from dubcli.vision.features import FACE_DIM, LIP_DIM

    timings: dict[str, float] = {}
    stage = "extract"
    try:
        ex = lay.extract(item, ctx)
        timings.update(ex.timings)
        stage = "codec"
        t = time.perf_counter()
        labels = PhoneLabels(ex.phonemes, ex.durations_tokens)
        tok = codec.encode(ex.wav, labels)  # content tokens from the phone labels
        timings["codec"] = time.perf_counter() - t
        nv, nt = ex.lip.shape[0], tok.n_tokens
        if sum(ex.durations_tokens) != nt or sum(ex.durations_frames) != nv:
            raise ItemFailed(
                f"durations sum to {sum(ex.durations_tokens)} tokens / "
                f"{sum(ex.durations_frames)} frames, the data has {nt} / {nv}",
                "check",
            )
        if ex.lip.shape != (nv, LIP_DIM) or ex.face.shape != (nv, FACE_DIM):
            raise ItemFailed(f"feature shapes {ex.lip.shape} {ex.face.shape}", "check")
        arrays = {
            "prosody": tok.prosody.astype(np.int16),
            "content": tok.content.astype(np.int16),
            "acoustic": tok.acoustic.astype(np.int16),
            "speaker": np.asarray(tok.speaker, dtype=np.float32),
            "lip": ex.lip.astype(np.float16),
            "face": ex.face.astype(np.float16),
            "video_valid": ex.valid.astype(np.uint8),
        }
        fields = dict(
            id=item.id, split=item.split, speaker=item.speaker, text=ex.text,
            phonemes=tuple(ex.phonemes), durations_frames=tuple(ex.durations_frames),
            durations_tokens=tuple(ex.durations_tokens), n_frames=int(nv), n_tokens=int(nt),
            seconds=round(len(ex.wav) / codec.sample_rate, 4), style=ex.style,
            source=dict(ex.source), align_ok=ex.align_ok,
        )  # fmt: skip
        return WorkResult(item, fields, arrays, "", "", timings)
    except ItemFailed as exc:
        return WorkResult(item, None, None, exc.stage, exc.reason, timings)
    except DependencyError:  # not the item's fault: stop the run (exit 4)
        raise
    except DubcliError as exc:
        return WorkResult(item, None, None, stage, exc.message, timings)
    except Exception as exc:  # a bug on one item must not cost a long run
        log.debug("item %s:\n%s", item.id, traceback.format_exc())
        reason = f"internal error: {type(exc).__name__}: {exc} (rerun with -v for the traceback)"
        return WorkResult(item, None, None, stage, reason, timings)


def results(todo, lay, ctx, codec, out: Path, workers: int) -> Iterator[WorkResult]:
    if workers <= 1 or len(todo) <= 1:
        for item in todo:
            yield work(item, lay, ctx, codec)
        return
    yield from pool_map(_work_job, todo, workers, (lay, str(out / CODEC_FILE), ctx))


def pool_map(fn, items: Sequence[Item], workers: int, initargs: tuple) -> Iterator:
    """fn(item) over items in a spawn-started process pool, results in item order, at most
    2 * workers items in flight (bounded memory)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_pool, initargs=initargs)  # fmt: skip
    try:
        it = iter(items)
        pending = deque(ex.submit(fn, x) for x in _take(it, 2 * workers))
        while pending:
            fut = pending.popleft()
            try:
                res = fut.result()
            except BrokenProcessPool as exc:
                raise ProcessingError(
                    f"a worker process died ({exc}); run the same command again to resume"
                ) from exc
            pending.extend(ex.submit(fn, x) for x in _take(it, 1))
            yield res
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _init_pool(lay: Layout, codec_path: str | None, ctx: Context | None,
               analysis: Any = None) -> None:  # fmt: skip
    if codec_path is None:
        _W.update(layout=lay, ctx=ctx, analysis=analysis)
    else:
        _init_worker(lay, codec_path, ctx)


def _take(it: Iterator, k: int) -> list:
    out = []
    with contextlib.suppress(StopIteration):
        for _ in range(k):
            out.append(next(it))
    return out
