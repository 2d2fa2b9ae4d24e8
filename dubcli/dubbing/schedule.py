"""When each cue is prepared (frames -> landmarks -> features, cuework.prepare_cue) and when the
engine makes its speech: the order of a video's cue work, and which threads do it.

Two schedules, picked by what the engine needs (engines.base.uses_all_cores):

- Overlapped (the engine leaves cores free: the baseline engine, a model on a GPU): cues are
  prepared ahead on a read-ahead thread (lanes() of them at once, each from a fresh
  FaceMesh graph and a decode of its own), while the engine works on the groups before them,
  in the sizes `group_sizes` gives (2, 4, 8, 16, 16, ...: the engine starts after two cues).
- Alternating (the model on the CPU keeps every core busy): a chunk of up to CHUNK cues is
  prepared on `lanes()` threads, then the engine generates the chunk in groups of up to
  ENGINE_GROUP, then the next chunk. Measured on 2 cores (issue 15, the 60 s benchmark clip,
  33 cues): overlapping FaceMesh with the model made both ~1.5x slower than alone (the
  landmarks took 14-17 s against 10 s alone, the model's small early groups 0.8-1.5 s a cue
  against 0.3 s in a group of 16), so doing one thing at a time with all cores is faster.
  A lane is a contiguous block of each chunk's windows with a FaceTracker and a SpanDecoder
  of its own (the lane's windows are fixed by their positions, never by timing, so a run's
  landmarks are the same every time); with --widen-to-lips there is one lane (a widened
  window's end bounds the next one).

Either way cues come out in window order, a cue finished by an earlier run is read back
instead, and each new cue is saved (cuework.save_cached) as soon as its group is done. The
groups are fixed by the count of cues to do (never by how fast preparation went), so a run's
batches, and so its float rounding, are the same every time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from dubcli.dubbing.config import DubConfig
from dubcli.dubbing.cuework import (
    PreparedCue,
    Timers,
    cached_path,
    cue_key,
    finish_cue,
    frame_decoder,
    load_cached,
    prepare_cue,
    save_cached,
)
from dubcli.dubbing.plan import CueWindow
from dubcli.dubbing.report import CueRecord
from dubcli.engines.base import Engine, uses_all_cores
from dubcli.vision.landmarks import FaceTracker
from dubcli.vision.landmarks import preload as preload_landmarks

ENGINE_GROUP = 16  # cues per engine call, at most (bounds memory: features + audio)
FIRST_GROUP = 2  # overlapped: the first call's cues (the engine starts while others are prepared)
READ_AHEAD = 2 * ENGINE_GROUP  # overlapped: prepared cues waiting for the engine, at most
CHUNK = 2 * ENGINE_GROUP  # alternating: cues prepared before the engine takes them, at most
MAX_LANES = 4  # preparing threads, at most (each holds FaceMesh graphs and an ffmpeg decoder)

Done = tuple[int, CueRecord, Path, bool]  # (position, record, cached path, read back)


def group_sizes(n: int) -> list[int]:
    """Overlapped: how `n` cues to prepare are cut into engine calls: FIRST_GROUP, then twice
    the last group's size up to ENGINE_GROUP (2, 4, 8, 16, 16, ...)."""
    sizes, left = [], n
    while left > 0:
        sizes.append(min(left, FIRST_GROUP if not sizes else min(2 * sizes[-1], ENGINE_GROUP)))
        left -= sizes[-1]
    return sizes


def even_parts(n: int, most: int) -> list[int]:
    """`n` cut into the fewest parts of at most `most`, as even as possible (larger first):
    33 by 32 -> [17, 16], not [32, 1] (a lone last cue would be prepared and generated alone)."""
    k = -(-n // most) if n > 0 else 0
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


def split(positions: range, most: int) -> list[range]:
    """`positions` cut into consecutive ranges of the sizes even_parts(len, most) gives."""
    out, start = [], positions.start
    for size in even_parts(len(positions), most):
        out.append(range(start, start + size))
        start += size
    return out


def chunks(n: int) -> list[range]:
    """Alternating: the positions [0, n) cut into consecutive chunks of at most CHUNK."""
    return split(range(n), CHUNK)


def lane_of(position: int, chunk: range, lanes: int) -> int:
    """Alternating: the lane (0 .. lanes-1) that prepares the window at `position` of `chunk`:
    the chunk cut into `lanes` contiguous blocks (split)."""
    for lane, block in enumerate(split(chunk, -(-len(chunk) // lanes))):
        if position in block:
            return lane
    raise ValueError(f"position {position} is not in {chunk}")


def lanes(widen: bool) -> int:
    """Preparing threads: one per core up to MAX_LANES (each holds FaceMesh graphs and an
    ffmpeg decoder); one with --widen-to-lips (a widened window's end bounds the next window).
    Alternating: the lanes; overlapped: the cues prepared at once."""
    return 1 if widen else max(1, min(MAX_LANES, os.cpu_count() or 1))


class _InOrder:
    """Finished cues, handed out in window order as soon as there is no hole before them."""

    def __init__(self):
        self.done: dict[int, tuple[CueRecord, Path, bool]] = {}
        self.next = 0  # the next position to hand out

    def take(self) -> Iterator[Done]:
        while self.next in self.done:
            yield (self.next, *self.done.pop(self.next))
            self.next += 1


def run_cues(
    video: Path, info, windows: list[CueWindow], work: Path, *, voices, engine: Engine,
    config: DubConfig, timers: Timers, video_id: str,
) -> Iterator[Done]:  # fmt: skip
    """Every window's cue, in order, as (position, record, cached path, read back): a cue
    finished by an earlier run is read back; the others are prepared, go to the engine
    (engines.base.synthesize_many) and are saved, on the schedule the engine calls for
    (module doc)."""
    keys = [cue_key(w, voices.for_speaker(w.speaker), engine, seed=config.seed, nfe=config.nfe,
                    widen=config.widen_to_lips, video_id=video_id) for w in windows]  # fmt: skip
    paths = [cached_path(work, w.index, k) for w, k in zip(windows, keys, strict=True)]
    run = _alternating if uses_all_cores(engine) else _overlapped
    return run(video, info, windows, paths, voices=voices, engine=engine, config=config,
               timers=timers)  # fmt: skip


def _generate(engine: Engine, cues: list[tuple[int, PreparedCue]], paths: list[Path],
              timers: Timers) -> dict[int, tuple[CueRecord, Path, bool]]:  # fmt: skip
    """One engine call for `cues` (position, prepared cue); each result finished and saved."""
    from dubcli.engines.base import synthesize_many

    with timers.stage("engine"):
        audios = synthesize_many(engine, [c.job for _, c in cues])
    done = {}
    for (k, cue), audio in zip(cues, audios, strict=True):
        _, wav, record = finish_cue(cue, audio, engine.name)
        save_cached(paths[k], wav, record)
        done[k] = (record, paths[k], False)
    return done


def _alternating(video, info, windows, paths, *, voices, engine, config, timers) -> Iterator[Done]:
    """Module doc: chunks prepared on `lanes` threads, then generated with every core."""
    from concurrent.futures import ThreadPoolExecutor

    from dubcli.dubbing.readahead import wait_for
    from dubcli.errors import raise_if_interrupted

    n, widen = len(windows), config.widen_to_lips
    parts = chunks(n)
    k = lanes(widen)
    lane = [lane_of(i, part, k) for part in parts for i in part]
    decoders = [frame_decoder(video, info, [w for w, j in zip(windows, lane, strict=True) if j == x],
                              widen=widen, threads=1) for x in range(k)]  # fmt: skip
    trackers = [FaceTracker() for _ in range(k)]
    stop = threading.Event()
    pool = ThreadPoolExecutor(k, thread_name_prefix="dubcli-prepare")
    # where each cue's final window ends: a widened window starts after the one before it
    # (one lane then, so the cue before is always done: read back, or prepared just before)
    ends: dict[int, float] = {}

    def prepare(x: int, todo: list[int]) -> list[tuple[int, PreparedCue]]:
        """Lane x's cues of a chunk, in order (on a pool thread)."""
        cues = []
        for i in todo:
            if lane[i] != x:
                continue
            hi = windows[i + 1].start if i + 1 < n else info.duration
            cue = prepare_cue(video, info, windows[i], bounds=(ends.get(i - 1, 0.0), hi),
                              voice=voices.for_speaker(windows[i].speaker), config=config,
                              timers=timers, decoder=decoders[x], tracker=trackers[x],
                              stop=stop)  # fmt: skip
            ends[i] = round(cue.window.end, 3)  # what the record says, as for a cached cue
            cues.append((i, cue))
        return cues

    out = _InOrder()
    try:
        for part in parts:
            todo = []
            for i in part:
                cached = load_cached(paths[i])
                if cached is None:
                    todo.append(i)
                else:
                    out.done[i] = (cached[1], paths[i], True)
                    ends[i] = cached[1].window[1]
            prepared: list[tuple[int, PreparedCue]] = []
            if todo:
                with timers.stage("cue wait"):  # the engine's idle time: the chunk's preparation
                    # FaceMesh imported here, before the lanes start: lanes importing it at once
                    # wait on each other's import lock, and beside the engine's load it thrashes
                    # the GIL (measured: the two took 4 s together, 1.1 + 2.5 s one after the
                    # other); the imports cost nothing once done
                    preload_landmarks()
                    futures = [pool.submit(prepare, x, todo) for x in range(k)]
                    for f in futures:
                        prepared += wait_for(f)
                prepared.sort(key=lambda item: item[0])
            yield from out.take()  # the chunk's cues read back, up to its first new one
            start = 0
            for size in even_parts(len(prepared), ENGINE_GROUP):
                raise_if_interrupted()
                out.done.update(_generate(engine, prepared[start : start + size], paths, timers))
                start += size
                yield from out.take()
    finally:
        stop.set()  # running preparations end at their next frame
        pool.shutdown(wait=True, cancel_futures=True)
        for closing in (*decoders, *trackers):
            closing.close()


def _overlapped(video, info, windows, paths, *, voices, engine, config, timers) -> Iterator[Done]:
    """Module doc: cues prepared on a read-ahead thread (and a pool) beside the engine."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from dubcli.dubbing.readahead import ReadAhead, wait_for
    from dubcli.errors import raise_if_interrupted

    threads = lanes(config.widen_to_lips)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="dubcli-prepare") if threads > 1 else None
    decoder = frame_decoder(video, info, windows, widen=config.widen_to_lips, threads=threads)
    # one thread prepares the cues in order: one tracker follows the face from cue to cue
    tracker = FaceTracker() if pool is None else None

    def produce(stop):
        """(position, cached record or None, PreparedCue or its Future or None) in window
        order, on the read-ahead thread."""
        lo = 0.0
        for i, window in enumerate(windows):
            if stop.is_set():
                return
            cached = load_cached(paths[i])
            if cached is not None:
                lo = cached[1].window[1]
                yield i, cached[1], None
                continue
            hi = windows[i + 1].start if i + 1 < len(windows) else info.duration
            kwargs = dict(bounds=(lo, hi), voice=voices.for_speaker(window.speaker),
                          config=config, timers=timers, decoder=decoder, tracker=tracker,
                          stop=stop)  # fmt: skip
            if pool is not None:  # not widened (lanes): lo is not needed
                yield i, None, pool.submit(prepare_cue, video, info, window, **kwargs)
                continue
            cue = prepare_cue(video, info, window, **kwargs)
            lo = round(cue.window.end, 3)  # what the record says, as for a cached cue
            yield i, None, cue

    def resolved(items):
        for i, record, cue in items:
            yield i, record, wait_for(cue) if isinstance(cue, Future) else cue

    todo = sum(1 for p in paths if not p.exists())  # a guess for the groups: unreadable = todo
    sizes = group_sizes(todo)
    pending: list[tuple[int, PreparedCue]] = []
    out = _InOrder()

    def flush():
        out.done.update(_generate(engine, pending, paths, timers))
        pending.clear()
        if sizes:
            sizes.pop(0)

    try:
        with ReadAhead(produce, depth=READ_AHEAD, name="dubcli-read-ahead") as prepared:
            # "cue wait": the engine's idle time, waiting for the next prepared cue
            for i, record, cue in timers.timed("cue wait", resolved(prepared)):
                raise_if_interrupted()
                if cue is None:
                    out.done[i] = (record, paths[i], True)
                else:
                    pending.append((i, cue))
                    if len(pending) >= (sizes[0] if sizes else ENGINE_GROUP):
                        flush()
                yield from out.take()
            if pending:
                flush()
    finally:
        if pool is not None:  # the read-ahead set `stop`: running preparations end at a frame
            pool.shutdown(wait=True, cancel_futures=True)
        decoder.close()  # after the read-ahead thread (its only reader) has ended
        if tracker is not None:
            tracker.close()
    yield from out.take()
