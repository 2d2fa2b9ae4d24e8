"""The read-ahead thread that prepares cues beside the engine (dubbing/readahead.py) and the
engine groups it feeds (schedule.group_sizes)."""

from __future__ import annotations

import threading
import time

import pytest

from dubcli.dubbing.readahead import ReadAhead
from dubcli.dubbing.schedule import ENGINE_GROUP, FIRST_GROUP, group_sizes


def test_items_come_in_order_and_the_producer_runs_ahead():
    made = []

    def produce(stop):
        for k in range(10):
            made.append(k)
            yield k

    with ReadAhead(produce, depth=3) as ahead:
        first = next(ahead)
        deadline = time.time() + 5
        while len(made) < 4 and time.time() < deadline:  # 1 taken + 3 queued
            time.sleep(0.01)
        assert first == 0 and len(made) == 4  # ahead by `depth`, no further
        assert [first, *ahead] == list(range(10))


def test_the_producers_error_reaches_the_consumer_after_its_items():
    def produce(stop):
        yield "a"
        raise ValueError("bad frame 3")

    ahead = ReadAhead(produce, depth=2)
    assert next(ahead) == "a"
    with pytest.raises(ValueError, match="bad frame 3"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_close_stops_a_producer_blocked_on_a_full_queue():
    seen_stop = threading.Event()

    def produce(stop):
        k = 0
        while not stop.is_set():
            yield k
            k += 1
        seen_stop.set()

    ahead = ReadAhead(produce, depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert not ahead._thread.is_alive()
    with pytest.raises(StopIteration):
        next(ahead)


def test_a_consumer_error_inside_with_stops_the_thread():
    def produce(stop):
        while not stop.is_set():
            yield 1
            time.sleep(0.01)

    with pytest.raises(RuntimeError), ReadAhead(produce, depth=1) as ahead:
        next(ahead)
        raise RuntimeError("the engine failed")
    assert not ahead._thread.is_alive()


@pytest.mark.parametrize("n", [0, 1, FIRST_GROUP, FIRST_GROUP + 1, 33, 100])
def test_engine_groups_depend_on_the_count_only(n):
    sizes = group_sizes(n)
    assert sum(sizes) == n and all(s > 0 for s in sizes)
    if n:
        assert sizes[0] == min(n, FIRST_GROUP)
        assert all(s <= ENGINE_GROUP for s in sizes)
        for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):  # doubling, up to the cap
            assert b == min(2 * a, ENGINE_GROUP)
    assert group_sizes(33) == [2, 4, 8, 16, 3]
