"""Loudness (BS.1770-4 known answers, EBU Tech 3341 cases), background modes, ducking, limiter,
and the streamed two-pass render, on generated signals with known levels."""

import numpy as np
import pytest
import soundfile as sf

from dubcli.dubbing import mix as M
from dubcli.dubbing.loudness import LoudnessMeter, integrated_loudness, k_weighting_sos

R = 48_000


def sine(db, seconds, freq=1000.0, rate=R):
    return 10 ** (db / 20) * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def stereo(x):
    return np.stack([x, x], axis=1)


def test_k_weighting_matches_bs1770_table_at_48k():
    # BS.1770-4 Annex 1, Tables 1 and 2 (48 kHz coefficients)
    table = np.array(
        [
            [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241,
             0.73248077421585],
            [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
        ]
    )  # fmt: skip
    assert np.abs(k_weighting_sos(48_000) - table).max() < 1e-7


def test_997hz_full_scale_on_one_channel_reads_minus_3_01():
    # BS.1770-4: "a 0 dB FS 997 Hz sine wave applied to the left channel reads -3.01 LKFS",
    # hence -23.01 at -20 dBFS; the same on one channel of a stereo pair.
    x = sine(0.0, 5.0, 997.0)
    assert integrated_loudness(x, R) == pytest.approx(-3.01, abs=0.02)
    pair = np.stack([0.1 * x, np.zeros_like(x)], axis=1)
    assert integrated_loudness(pair, R) == pytest.approx(-23.01, abs=0.02)
    # other rates (the bilinear design): 44.1 and 16 kHz within 0.05 LU
    for rate in (44_100, 16_000):
        assert integrated_loudness(sine(-20, 5.0, 997.0, rate), rate) == pytest.approx(
            -23.01, abs=0.05
        )


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([(-23, 20)], -23.0),  # Tech 3341 case 1
        ([(-33, 20)], -33.0),  # case 2
        ([(-36, 10), (-23, 60), (-36, 10)], -23.0),  # case 3: relative gate drops the -36 parts
        ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),  # case 4: both gates
        ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),  # case 5
    ],
)
def test_ebu_tech_3341_cases(segments, expected):
    x = stereo(np.concatenate([sine(db, s) for db, s in segments]))
    assert integrated_loudness(x, R) == pytest.approx(expected, abs=0.1)


def test_streaming_equals_one_shot_and_silence():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, (R * 3 + 1234, 2))
    meter = LoudnessMeter(R, 2)
    for chunk in np.array_split(x, 7):
        meter.add(chunk)
    assert meter.integrated() == pytest.approx(integrated_loudness(x, R), abs=1e-9)
    assert integrated_loudness(np.zeros(R), R) == float("-inf")


def test_resolve_background_degrades_gracefully():
    assert M.resolve_background("duck", 2).mode == "duck"
    mono = M.resolve_background("remove", 1)
    assert mono.mode == "duck" and "mono" in mono.note
    none = M.resolve_background("keep", 0)
    assert none.mode == "drop" and "no audio track" in none.note and none.channels_out == 1
    assert M.resolve_background("drop", 0).note is None
    with pytest.raises(ValueError):
        M.resolve_background("louder", 2)


def test_remove_cancels_the_centre_keeps_the_sides():
    n = R
    voice = sine(-10, 1.0, 220.0)  # centre: equal in both channels
    music = sine(-20, 1.0, 660.0)  # off-centre: opposite phase in L and R
    block = np.stack([voice + music, voice - music], axis=1)
    out = M.prepare_background(block, M.resolve_background("remove", 2))
    spectrum = np.abs(np.fft.rfft(out[:, 0]))
    f = np.fft.rfftfreq(n, 1 / R)
    at = lambda hz: spectrum[np.argmin(np.abs(f - hz))]  # noqa: E731
    assert at(220) < 1e-6 * at(660)  # the voice is gone
    assert np.allclose(out[:, 0], music, atol=1e-6)  # the side signal is intact
    # 5.1: the front-centre channel (dialogue) is dropped, the rest kept
    six = np.zeros((n, 6))
    six[:, 2] = voice
    six[:, 0] = six[:, 1] = music
    out6 = M.prepare_background(six, M.resolve_background("remove", 6))
    assert out6.shape == (n, 2)  # each side: (front + 0.7071 surround) / 1.7071, no centre
    assert np.allclose(out6[:, 0], music / 1.7071, atol=1e-6)
    kept6 = M.prepare_background(six, M.resolve_background("keep", 6))
    assert np.abs(np.fft.rfft(kept6[:, 0]))[220] > 100  # keep mode downmixes the centre in


def test_duck_gain_envelope():
    intervals = [(R, 2 * R)]  # speech from 1 s to 2 s
    g = M.duck_gain(intervals, 0, 4 * R, R)
    floor = 10 ** (M.DUCK_DB / 20)
    assert g[: int(0.8 * R)].min() == pytest.approx(1.0)  # untouched well before
    assert np.allclose(g[R : 2 * R], floor, atol=1e-6)  # fully ducked during speech
    assert g[int(2.5 * R) :].min() == pytest.approx(1.0)  # released after
    assert g[int((1 - M.ATTACK_S) * R)] == pytest.approx(1.0, abs=1e-3)  # attack starts here
    assert np.abs(np.diff(g)).max() < 2e-4  # smooth: no steps (zipper noise)
    # blocks compose: the same envelope computed in pieces
    parts = np.concatenate(
        [M.duck_gain(intervals, a, a + R // 2, R) for a in range(0, 4 * R, R // 2)]
    )
    assert np.allclose(parts, g)


def test_limiter_only_touches_peaks():
    x = sine(-12, 1.0, 200.0)
    x[R // 2 : R // 2 + 100] = 0.99  # one loud burst
    g = M.limiter_gain(x, R, 10 ** (-1 / 20))
    y = x * g
    assert np.abs(y).max() <= 10 ** (-1 / 20)
    untouched = np.ones_like(g, bool)
    untouched[R // 2 - 2000 : R // 2 + 2100] = False
    assert np.all(g[untouched] == 1.0)
    assert np.abs(np.diff(g)).max() < 0.01  # gain moves over ~10 ms, not in one sample


def test_limiter_on_stretches_equals_the_whole_block():
    """The window filters run only around the samples that need gain (mix.limiter_gain): the
    result is what they give over the whole block."""
    from dubcli.audio.util import running_mean, running_min

    rng = np.random.default_rng(3)
    x = (rng.standard_normal(5 * R) * 0.1).astype(np.float32)
    for at in (0, 700, 1500, 2 * R, 2 * R + 900, 5 * R - 3):  # edges, near ones, far ones
        x[at] = 0.99 * (1 if at % 2 else -1)
    ceiling = 10 ** (-1 / 20)
    g = M.limiter_gain(x, R, ceiling)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12))
    w = max(1, int(M.LIMIT_WINDOW_S * R)) | 1
    whole = np.minimum(running_mean(running_min(need, 2 * w - 1), w), need)
    want = np.where(whole < 1.0, whole * (1 - 1e-6), 1.0).astype(np.float32)
    assert np.allclose(g, want, rtol=0, atol=1e-6) and np.array_equal(g == 1.0, want == 1.0)
    assert np.abs(x * g).max() <= ceiling


def _render(tmp_path, mode, channels_in, lufs, dub, back):
    bg = M.resolve_background(mode, channels_in)
    out = tmp_path / f"{mode}.wav"
    blocks = (back[i : i + 7000] for i in range(0, len(back), 7000)) if back is not None else None
    stats = M.render_mix(
        out, total=len(dub), dub=lambda a, b: dub[a:b].astype(np.float32), background=blocks,
        bg=bg, intervals=[(R, 2 * R)], lufs=lufs,
    )  # fmt: skip
    y, rate = sf.read(out, always_2d=True)
    assert rate == R and len(y) == len(dub)
    return y, stats


@pytest.fixture(scope="module")
def signals():
    n = 3 * R
    dub = np.zeros(n)
    dub[R : 2 * R] = sine(-18, 1.0, 300.0)  # "speech" from 1 s to 2 s
    music = sine(-30, 3.0, 1000.0)
    back = np.stack([music, -music], axis=1)  # a side-panned background
    return dub, back


def test_background_modes_measured(tmp_path, signals):
    dub, back = signals
    level = lambda y, a, b: 20 * np.log10(np.sqrt(np.mean(y[a:b, 0] ** 2)) + 1e-12)  # noqa: E731
    quiet = (int(0.1 * R), int(0.7 * R))  # before the speech: background only
    bed = -30 - 3.01  # rms of a -30 dBFS sine
    keep, _ = _render(tmp_path, "keep", 2, None, dub, back)
    assert level(keep, *quiet) == pytest.approx(bed, abs=0.1)
    assert np.allclose(keep[:, 0] - dub, back[:, 0], atol=1e-3)  # 16-bit rounding only
    duck, _ = _render(tmp_path, "duck", 2, None, dub, back)
    assert level(duck, *quiet) == pytest.approx(bed, abs=0.1)
    under = duck[R : 2 * R, 0] - dub[R : 2 * R]
    assert 20 * np.log10(np.sqrt(np.mean(under**2))) == pytest.approx(bed + M.DUCK_DB, abs=0.2)
    removed, _ = _render(tmp_path, "remove", 2, None, dub, np.stack([dub, dub], 1) + back)
    assert np.allclose(removed[:, 0], dub + back[:, 0], atol=1e-3)  # centre "speech" cancelled
    drop, _ = _render(tmp_path, "drop", 2, None, dub, back)
    assert np.abs(drop[: int(0.9 * R)]).max() < 1e-4  # nothing but the dub
    none, stats = _render(tmp_path, "keep", 0, None, dub, None)
    assert none.shape[1] == 1 and stats.background.mode == "drop"


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_loudness_target_reached_and_peaks_limited(tmp_path, signals, target):
    dub, back = signals
    y, stats = _render(tmp_path, "keep", 2, target, dub, back)
    assert integrated_loudness(y, R) == pytest.approx(target, abs=0.5)
    assert stats.loudness_after == pytest.approx(target, abs=0.5)
    assert np.abs(y).max() <= 10 ** (M.LIMIT_DBFS / 20) + 1e-4
