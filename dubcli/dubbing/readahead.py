"""Run a producer in a background thread, a bounded number of items ahead of its consumer.

Why (issue 15): a cue's preparation (ffmpeg decode, FaceMesh tracking, features) keeps one
core busy and the other nearly idle, while the engine's torch threads want both. Preparing the
next cues on a thread while the engine generates the current group lets the two overlap; both
spend their time in native code that releases the GIL (MediaPipe's graph, ffmpeg's pipe reads,
torch's kernels).

Contract: `produce(stop)` is a generator function; it runs on the thread and should look at the
`stop` event between units of work (the consumer sets it when it stops early). Its items come
out of the ReadAhead in order; its exception is raised in the consumer, at the point where the
next item would have come. A consumer that stops early (an error of its own, Ctrl-C) calls
`close()` (or leaves the `with` block), which sets `stop` and waits for the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from dubcli.errors import raise_if_interrupted

T = TypeVar("T")

POLL_S = 0.1  # how often a blocked side looks at the stop flag / pending signals
JOIN_S = 30.0  # how long close() waits for the thread to finish its current unit of work


class ReadAhead(Generic[T]):
    """Iterator over `produce(stop)`'s items, produced up to `depth` items ahead on a thread."""

    def __init__(self, produce: Callable[[threading.Event], Iterable[T]], depth: int,
                 name: str = "dubcli-read-ahead"):  # fmt: skip
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def _run(self, produce) -> None:
        try:
            for item in produce(self.stop):
                if not self._put(("item", item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", exc))
            return
        self._put(("end", None))

    def _put(self, entry) -> bool:
        """Queue an entry unless the consumer stopped; False when it did."""
        while not self.stop.is_set():
            try:
                self._queue.put(entry, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = _poll(lambda t: self._queue.get(timeout=t), queue.Empty)
        if kind == "item":
            return value
        self._done = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the producer (it finishes its current unit of work) and wait for its thread."""
        self.stop.set()
        self._done = True
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(JOIN_S)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for(future: Future[T]) -> T:
    """future.result(), looking at pending signals while it waits (as ReadAhead does)."""
    return _poll(lambda t: future.result(timeout=t), FutureTimeout)


def _poll(get: Callable[[float], T], timed_out: type[Exception]) -> T:
    """get(POLL_S) until it returns, looking at pending signals after each time-out (a signal
    whose exception a library swallowed: errors.Interrupted)."""
    while True:
        try:
            return get(POLL_S)
        except timed_out:
            raise_if_interrupted()
