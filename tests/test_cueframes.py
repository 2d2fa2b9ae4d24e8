"""The cues' frames: a decode per cue and spans read through give the same grid frames."""

from __future__ import annotations

import numpy as np
import pytest

from dubcli import media
from dubcli.dubbing import cueframes
from dubcli.dubbing.cueframes import CueDecoder, SpanDecoder, grid_range, plan_spans

N_FRAMES = 250  # 10 s at 25 fps


def _code_frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A solid frame whose colour spells i (red: units, green: tens, blue: hundreds)."""
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0], f[..., 1], f[..., 2] = 25 * (i % 10), 25 * (i // 10 % 10), 25 * (i // 100)
    return f


def _code(f: np.ndarray) -> int:
    r, g, b = (int(round(f[..., c].mean() / 25)) for c in range(3))
    return r + 10 * g + 100 * b


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    out = tmp_path_factory.mktemp("cueframes") / "coded.mp4"
    return media.write_video((_code_frame(i) for i in range(N_FRAMES)), out, fps=25)


def _codes(decoder, start, end):
    t0, frames = decoder.frames(start, end)
    return t0, [_code(f) for f in frames]


def test_grid_range_rounds_to_the_nearest_frame():
    assert grid_range(1.019, 1.2) == (25, 5)
    assert grid_range(1.021, 1.2) == (26, 4)
    assert grid_range(2.0, 2.0) == (50, 0)


def test_plan_spans_joins_close_ranges_and_splits_long_gaps_and_long_spans():
    # (first, count) in frames; gap 10, longest 100
    assert plan_spans([(0, 20), (25, 10), (60, 5)], 10, 100) == [(0, 35), (60, 65)]
    assert plan_spans([(0, 20), (30, 10)], 10, 100) == [(0, 40)]  # a gap of exactly 10: joined
    assert plan_spans([(0, 20), (31, 10)], 10, 100) == [(0, 20), (31, 41)]
    assert plan_spans([(0, 60), (65, 30), (96, 30)], 10, 100) == [(0, 95), (96, 126)]
    assert plan_spans([(0, 30), (20, 30), (25, 5)], 10, 100) == [(0, 50)]  # overlaps (widened)
    assert plan_spans([], 10, 100) == []


RANGES = [(0.33, 1.1), (1.51, 2.02), (2.6, 3.31), (7.0, 7.8), (7.93, 8.4)]  # 2 spans


def test_spans_give_the_frames_a_decode_per_cue_gives(coded, monkeypatch):
    per_cue = [_codes(CueDecoder(coded, None), a, b) for a, b in RANGES]
    assert per_cue[0] == (0.32, list(range(8, 27)))  # the nearest grid frame to 0.33 s
    assert per_cue[1] == (1.52, list(range(38, 51)))

    opened = []
    real = cueframes._decode
    monkeypatch.setattr(cueframes, "_decode", lambda *a: opened.append(a[2:]) or real(*a))
    spans = SpanDecoder(coded, None, RANGES)
    try:
        assert [_codes(spans, a, b) for a, b in RANGES] == per_cue
    finally:
        spans.close()
    assert opened == [(8, 83), (175, 210)]  # one ffmpeg per span (a 3.7 s gap), not per cue


def test_a_resumed_run_reads_its_cues_from_the_span_start(coded, monkeypatch):
    """Cues a rerun still has to do get the frames the full run gave them (the spans come from
    every cue's range); the frames before them are read and dropped."""
    opened = []
    real = cueframes._decode
    monkeypatch.setattr(cueframes, "_decode", lambda *a: opened.append(a[2:]) or real(*a))
    spans = SpanDecoder(coded, None, RANGES)
    try:
        assert _codes(spans, *RANGES[2]) == (2.6, list(range(65, 83)))
        assert _codes(spans, *RANGES[4]) == (7.92, list(range(198, 210)))
    finally:
        spans.close()
    assert opened == [(8, 83), (175, 210)]


def test_widened_ranges_overlap_and_share_frames(coded):
    ranges = [(0.51, 2.0), (1.4, 2.6), (1.6, 3.0), (5.0, 5.4)]
    want = [_codes(CueDecoder(coded, None), a, b) for a, b in ranges]
    spans = SpanDecoder(coded, None, ranges, gap=1.0)
    try:
        assert [_codes(spans, a, b) for a, b in ranges] == want
    finally:
        spans.close()


def test_ranges_past_the_end_and_out_of_order(coded):
    spans = SpanDecoder(coded, None, [(2.0, 2.4), (9.49, 10.5)])
    try:
        assert _codes(spans, 9.49, 10.5) == (9.48, list(range(237, 250)))  # the video ends
        with pytest.raises(ValueError, match="not in a planned span"):
            list(spans.frames(4.0, 4.4)[1])
    finally:
        spans.close()
    spans = SpanDecoder(coded, None, [(1.0, 1.4), (6.0, 6.4)])
    try:
        assert _codes(spans, 6.0, 6.4)[1] == list(range(150, 160))
        with pytest.raises(ValueError, match="after later ones"):
            list(spans.frames(1.0, 1.4)[1])
    finally:
        spans.close()


def test_a_range_left_half_way_is_picked_up_after(coded):
    """A cue stopped half-way (an error in its tracking) leaves the stream where it was: the
    next cue still gets its own frames."""
    spans = SpanDecoder(coded, None, RANGES)
    try:
        _, frames = spans.frames(*RANGES[0])
        assert [_code(next(frames)) for _ in range(3)] == [8, 9, 10]
        frames.close()
        assert _codes(spans, *RANGES[1]) == (1.52, list(range(38, 51)))
    finally:
        spans.close()
