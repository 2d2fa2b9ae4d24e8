"""The `synth` layout: SynthDub utterances generated on the fly, with exact ground truth (DESIGN 6).

Dimensions: n samples (16 kHz), nv video frames (25 fps), nt phonemes.

No DATA: `-n N` utterances are drawn with synth/speech.py's make_specs, 80/10/10 train/valid/test
(test voices and perturbations unseen in training, as voices.py fixes them). Per utterance:
- speech from synthesize(); the audio is padded with trailing silence to a whole number of
  0.2 s blocks (3200 samples), so nv = n / 640 and the token count n / 200 = nv * 16 / 5
  exactly: the stage-2 contract (paper 3.4, 5 frames : 16 tokens) holds with no cropping;
- phonemes and durations straight from the synthesizer's phone timeline (exact to the sample;
  no forced alignment, align_ok True), with a zero-length <wb> where two words touch and the
  timeline's own <sil> where they pause (the g2p frontend's spelling, layouts/__init__.py);
- lip/face features straight from the synthetic face trajectory (synth/face_motion.py) driven
  by the same phone timeline and the utterance's prosody style (expressions follow pitch, range,
  rate and energy), so FaPro has a real signal to learn;
- with --render, the face is also rendered (synth/render.py) to OUT/media/<id>.mp4 with the
  audio: real videos for end-to-end tests and for the `pairs` layout.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from dubcli.audio.util import fit_length
from dubcli.errors import InputError
from dubcli.prepare.layouts import (
    Context,
    Extracted,
    Item,
    LabelledAudio,
    Layout,
    quantize,
)
from dubcli.text.phonemes import SILENCE, WORD_BOUNDARY
from dubcli.timing import SAMPLE_RATE, TOKEN_RATE, VIDEO_FPS

BLOCK = SAMPLE_RATE // 5  # 0.2 s = 5 video frames = 16 tokens
_FACE = None  # one FaceMotion per process (its template costs ~0.5 s to build)


def split_sizes(n: int) -> dict[str, int]:
    """80/10/10: {'train': ..., 'valid': round(n/10), 'test': round(n/10)}."""
    valid = test = int(round(n * 0.1))
    return {"train": n - valid - test, "valid": valid, "test": test}


class SynthLayout(Layout):
    name = "synth"

    def __init__(self, data: Any = None, *, n: int | None = None, seed: int = 0):
        if data is not None:
            raise InputError(f"{data}: the synth layout generates its own data; give no DATA")
        if n is None or int(n) < 1:
            raise InputError("the synth layout needs -n N: how many utterances to generate")
        self.n, self.seed = int(n), int(seed)

    def items(self) -> list[Item]:
        from dubcli.synth.speech import make_specs

        out = []
        for split, k in split_sizes(self.n).items():
            for spec in make_specs(k, self.seed, split) if k else []:
                out.append(Item(spec.id, split, spec.speaker, {"spec": spec.as_dict()}))
        return out

    def check(self) -> None:
        from dubcli.synth.speech import check_synth_dependencies

        check_synth_dependencies(sorted({it.data["spec"]["voice"] for it in self.items()}))

    def labelled_audio(self, item: Item, ctx: Context) -> LabelledAudio:
        """The rendered speech and its exact phone timeline (no face)."""
        from dubcli.synth.speech import UtteranceSpec, synthesize

        utt = synthesize(UtteranceSpec.from_dict(item.data["spec"]))
        wav, phones = pad_to_blocks(utt.wav, utt.phones)
        symbols, bounds = phoneme_timeline(phones, utt.words)
        n_tokens = len(wav) * TOKEN_RATE // SAMPLE_RATE
        return LabelledAudio(wav, symbols, quantize(bounds, TOKEN_RATE, n_tokens))

    def extract(self, item: Item, ctx: Context) -> Extracted:
        from dubcli.synth.face_motion import expression_from_prosody
        from dubcli.synth.speech import UtteranceSpec, synthesize
        from dubcli.vision.features import visual_features

        spec = UtteranceSpec.from_dict(item.data["spec"])
        timings: dict[str, float] = {}
        t = time.perf_counter()
        utt = synthesize(spec)
        wav, phones = pad_to_blocks(utt.wav, utt.phones)
        timings["synth"] = time.perf_counter() - t
        n = len(wav)
        nv = n * VIDEO_FPS // SAMPLE_RATE
        symbols, bounds = phoneme_timeline(phones, utt.words)
        t = time.perf_counter()
        st = spec.style
        style = expression_from_prosody(st.pitch_level, st.pitch_range, st.rate, st.energy)
        traj = _face_motion().generate(phones, style, seed=spec.seed, n_frames=nv)
        timings["face"] = time.perf_counter() - t
        t = time.perf_counter()
        vf = visual_features(traj.points)
        timings["features"] = time.perf_counter() - t
        source = {"voice": spec.voice, "kind": spec.kind, "seed": str(spec.seed)}
        if ctx.render:
            from dubcli.synth.render import render_video

            t = time.perf_counter()
            rel = f"media/{item.id}.mp4"
            render_video(traj.points, ctx.out / rel, wav)
            source["video"] = rel
            timings["render"] = time.perf_counter() - t
        return Extracted(
            wav=wav,
            text=spec.text,
            phonemes=symbols,
            durations_frames=quantize(bounds, VIDEO_FPS, nv),
            durations_tokens=quantize(bounds, TOKEN_RATE, n * TOKEN_RATE // SAMPLE_RATE),
            lip=vf.lip,
            face=vf.face,
            valid=vf.valid,
            style=st.as_dict(),
            source=source,
            align_ok=True,
            timings=timings,
        )


def _face_motion():
    global _FACE
    if _FACE is None:
        from dubcli.synth.face_motion import FaceMotion

        _FACE = FaceMotion()
    return _FACE


def pad_to_blocks(wav: np.ndarray, phones) -> tuple[np.ndarray, list]:
    """Pad to a multiple of BLOCK samples; the pad joins the last <sil> (or becomes one)."""
    n = -(-len(wav) // BLOCK) * BLOCK
    phones = list(phones)
    if n == len(wav):
        return np.asarray(wav, dtype=np.float32), phones
    end = n / SAMPLE_RATE
    last = phones[-1]
    if last.symbol == SILENCE:
        phones[-1] = dataclasses.replace(last, end=end)
    else:
        phones.append(dataclasses.replace(last, symbol=SILENCE, start=last.end, end=end))
    return fit_length(wav, n), phones


def phoneme_timeline(phones, words) -> tuple[tuple[str, ...], list[float]]:
    """Synth PhoneSpans + WordTimings -> (symbols, boundaries in seconds (nt + 1,)).

    A zero-length <wb> goes between two words that touch; <sil> is kept at the start and end
    (added with zero length if the timeline lacks one)."""
    starts = {int(round(w.start * SAMPLE_RATE)) for w in words[1:]}
    symbols: list[str] = []
    bounds = [0.0]
    for p in phones:
        if p.symbol == WORD_BOUNDARY:
            continue
        spoken_before = symbols and symbols[-1] != SILENCE
        if p.symbol != SILENCE and spoken_before and int(round(p.start * SAMPLE_RATE)) in starts:
            symbols.append(WORD_BOUNDARY)
            bounds.append(p.start)
        symbols.append(p.symbol)
        bounds.append(p.end)
    if symbols[0] != SILENCE:
        symbols.insert(0, SILENCE)
        bounds.insert(0, 0.0)
    if symbols[-1] != SILENCE:
        symbols.append(SILENCE)
        bounds.append(bounds[-1])
    return tuple(symbols), bounds
