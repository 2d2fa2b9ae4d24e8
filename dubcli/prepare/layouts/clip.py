"""One real video clip + its transcript -> `Extracted` (shared by the pairs, grid, chem layouts),
and `FolderLayout`, the base of the layouts that read a folder of videos (pairs, grid).

Dimensions: nv video frames (25 fps), n = nv * 640 samples (16 kHz), nt phonemes.

Steps (stage names as reported by the benchmark):
- decode + landmarks: frames at 25 fps from [start, end) streamed into FaceMesh tracking
  (vision/landmarks.py); the time spent inside the decoder is counted as "decode";
- features: lip/face geometry from the track (vision/features.py);
- decode: the audio of exactly the clip's nv frames (n = nv * 640 samples, zero-padded if the
  audio track is shorter), so durations in frames sum to nv and in tokens to n // 200;
- alignment: g2p (text/g2p.py) wrapped in <sil> (layouts/__init__.py convention) and pocketsphinx
  forced alignment (align/forced.py); a rejected alignment fails the item with its reason.
  With `word_times` (GRID), each word's aligned phones are mapped linearly into the corpus's own
  word span, so word boundaries come from the corpus and phone boundaries from the aligner.
A clip whose face is seen in fewer than MIN_FACE_RATE of its frames fails (stage 2 needs lips).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.audio.util import fit_length
from dubcli.errors import InputError
from dubcli.prepare.layouts import (
    MIN_FACE_RATE,
    Context,
    Extracted,
    Item,
    ItemFailed,
    Layout,
    hash_split,
    quantize,
)
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY, PhonemeSequence
from dubcli.timing import SAMPLE_RATE, SAMPLES_PER_FRAME, TOKEN_RATE, VIDEO_FPS


class _TimedIter:
    """Wraps an iterator and adds up the time spent producing its items."""

    def __init__(self, it: Iterable):
        self._it: Iterator = iter(it)
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.seconds += time.perf_counter() - t


class FolderLayout(Layout):
    """DATA is a folder of videos; item.data holds "video" and optionally "audio" (a separate
    file of the same clip), "start" and "end" (seconds). Subclasses set `needs` and `reads`
    (what DATA must be, as the error messages say it) and implement items and clip_inputs."""

    needs = "a folder"  # "the <name> layout needs DATA: <needs>"
    reads = "a folder"  # "<DATA>: not a folder (the <name> layout reads <reads>)"

    def __init__(self, data: Any, *, n: int | None = None, seed: int = 0):
        if data is None:
            raise InputError(f"the {self.name} layout needs DATA: {self.needs}")
        self.root = Path(data)
        if not self.root.is_dir():
            raise InputError(
                f"{self.root}: not a folder (the {self.name} layout reads {self.reads})"
            )
        self.n, self.seed = n, int(seed)

    def item(self, uid: str, speaker: str, data: dict[str, Any], split: str | None = None) -> Item:
        """An item; without `split`, the seeded hash of its id assigns one."""
        return Item(uid, split or hash_split(uid, self.seed), speaker, data)

    def first_n(self, items: list[Item]) -> list[Item]:
        """The first --n items (all without it)."""
        return items[: self.n] if self.n is not None else items

    def audio(self, item: Item) -> np.ndarray:
        from dubcli.media import decode_audio

        d = item.data
        return decode_audio(d.get("audio") or d["video"], start=d.get("start"), end=d.get("end"))

    def extract(self, item: Item, ctx: Context) -> Extracted:
        return extract_clip(Path(item.data["video"]), name=item.id, **self.clip_inputs(item))

    def clip_inputs(self, item: Item) -> dict[str, Any]:
        """extract_clip's keyword arguments for the item (text, and phonemes, start, end, audio,
        word_times, source as the layout has them)."""
        raise NotImplementedError


def extract_clip(
    video: Path,
    *,
    name: str,
    text: str,
    phonemes: PhonemeSequence | None = None,
    start: float | None = None,
    end: float | None = None,
    audio: Path | None = None,
    word_times: Sequence[tuple[float, float]] | None = None,
    source: dict[str, str] | None = None,
) -> Extracted:
    """Features of video[start:end] saying `text` (or the given `phonemes`, already wrapped).

    name: the item id, used in messages. audio: a separate audio file for the same clip (else
    the video's own track). word_times: (start, end) seconds per word of `phonemes.words`,
    relative to `start`, to pin word boundaries (GRID)."""
    from dubcli.align.forced import force_align
    from dubcli.media import decode_audio, iter_frames
    from dubcli.vision.features import visual_features
    from dubcli.vision.landmarks import track_faces

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    frames = _TimedIter(iter_frames(video, fps=VIDEO_FPS, start=start or 0.0, end=end))
    track = track_faces(frames, source=str(video))
    timings["decode"] = frames.seconds
    timings["landmarks"] = time.perf_counter() - t0 - frames.seconds
    nv = track.n_frames
    if nv == 0:
        raise ItemFailed(f"{video}: no video frames in the clip", "decode")
    seen = int(track.valid.sum())
    if seen < MIN_FACE_RATE * nv:
        raise ItemFailed(f"{video}: a face was found in only {seen} of {nv} frames", "landmarks")
    t = time.perf_counter()
    vf = visual_features(track)
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    begin = start or 0.0
    wav = decode_audio(audio or video, start=start, end=begin + nv / VIDEO_FPS)
    wav = fit_length(wav, nv * SAMPLES_PER_FRAME)
    timings["decode"] += time.perf_counter() - t

    t = time.perf_counter()
    if phonemes is None:
        from dubcli.prepare.layouts import sil_wrapped
        from dubcli.text.g2p import text_to_phonemes

        phonemes = sil_wrapped(text_to_phonemes(text))
    if not phonemes.words:
        raise ItemFailed(f"{name}: the transcript has no words to align ({text!r})", "alignment")
    al = force_align(wav, phonemes, name=name)
    if not al.ok:
        raise ItemFailed(f"{name}: forced alignment failed: {al.reason}", "alignment")
    n_tokens = len(wav) * TOKEN_RATE // SAMPLE_RATE
    if word_times is None:
        dur_f, dur_t = al.frame_durations, al.token_durations
    else:
        bounds = pin_words(phonemes, al.phones, word_times, len(wav) / SAMPLE_RATE, name)
        dur_f, dur_t = quantize(bounds, VIDEO_FPS, nv), quantize(bounds, TOKEN_RATE, n_tokens)
    timings["alignment"] = time.perf_counter() - t
    return Extracted(
        wav=wav,
        text=text,
        phonemes=tuple(phonemes.symbols),
        durations_frames=tuple(dur_f),
        durations_tokens=tuple(dur_t),
        lip=vf.lip,
        face=vf.face,
        valid=vf.valid,
        source={"video": str(video), **(source or {})},
        align_ok=True,
        timings=timings,
    )


def pin_words(
    phonemes: PhonemeSequence,
    aligned: Sequence,
    word_times: Sequence[tuple[float, float]],
    duration: float,
    name: str,
) -> list[float]:
    """Boundaries (nt + 1,) seconds: each word's aligned phones mapped linearly from the
    aligner's word span onto `word_times`; specials fill the gaps between words."""
    if len(word_times) != len(phonemes.words):
        raise ItemFailed(
            f"{name}: {len(word_times)} word times for {len(phonemes.words)} words", "alignment"
        )
    nt = len(phonemes.symbols)
    ends = [None] * nt
    starts = [None] * nt
    for w, (a, b) in zip(phonemes.words, word_times, strict=True):
        a, b = min(max(a, 0.0), duration), min(max(b, 0.0), duration)
        if w.end <= w.start:
            continue
        a0, b0 = aligned[w.start].start, aligned[w.end - 1].end
        scale = (b - a) / (b0 - a0) if b0 > a0 else 0.0
        for i in range(w.start, w.end):
            starts[i] = a + (aligned[i].start - a0) * scale
            ends[i] = a + (aligned[i].end - a0) * scale
        ends[w.end - 1] = b
    # Specials (<sil>, <wb>) end where the next spoken phone starts (or at the clip's end).
    nxt = duration
    for i in range(nt - 1, -1, -1):
        if phonemes.symbols[i] in (SILENCE, WORD_BOUNDARY) or ends[i] is None:
            ends[i] = nxt
        else:
            nxt = starts[i]
    bounds = np.maximum.accumulate(np.clip(np.array([0.0, *ends]), 0.0, duration))
    bounds[-1] = duration
    return [float(x) for x in bounds]
