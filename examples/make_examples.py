"""Regenerate the quickstart example: examples/clip.mp4, clip.srt and voice.wav.

    python examples/make_examples.py [--force]

A ~5 s SynthDub clip: a rendered talking face (the astronaut photo driven by landmark motion
from the phone timeline, synth/face_motion.py + render.py) saying two GRID commands in a voice
from the TEST split (a vocal-tract length never used in training), its subtitles (one cue per
command, from the synthesizer's exact word timings) and a reference voice: another unseen test
speaker saying something else. The SynthDub training corpus never renders video, never uses
these voices, and the face seed is fixed here, so voice and face are unseen by the default model.
Needs the system packages of the README (espeak-ng, mbrola, festival voices).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLIP_SPEAKER = "us2+vtl1.15+f0x0.9"  # the on-screen actor (test split: vtl 1.15 is test-only)
REF_SPEAKER = "us1+vtl0.86+f0x1.12"  # the dubbing voice (test split: vtl 0.86 is test-only)
CUES = ("place red at f two now", "bin blue by g nine soon", "set white in s one again")
REF_TEXT = "lay green with k four please. we will see what happens next, and then we go home."
FACE_SEED = 20261122


def utterance(speaker: str, text: str, seed: int, style: str = "neutral"):
    from dubcli.synth.prosody import sample_style
    from dubcli.synth.speech import UtteranceSpec, synthesize

    voice = speaker.split("+")[0]
    spec = UtteranceSpec(id=f"example-{seed}", text=text, voice=voice, speaker=speaker,
                         style=sample_style(style, np.random.default_rng(seed)), seed=seed,
                         kind="grid")  # fmt: skip
    return spec, synthesize(spec)


def srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def main(argv: list[str] | None = None) -> int:
    from dubcli.audio.io import save_audio
    from dubcli.prepare.layouts.synth import pad_to_blocks
    from dubcli.synth.face_motion import FaceMotion, expression_from_prosody
    from dubcli.synth.render import render_video
    from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="overwrite existing example files")
    ap.add_argument("-o", "--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    paths = [args.out / n for n in ("clip.mp4", "clip.srt", "voice.wav")]
    if any(p.exists() for p in paths) and not args.force:
        print(f"{args.out}: example files exist; pass --force to overwrite", file=sys.stderr)
        return 6

    # One utterance per cue, joined: each brings its own lead/trail silence (0.15-0.35 s), so
    # the cues are separated by a natural pause; the phone timeline drives the face.
    wavs, phones, blocks, t0 = [], [], [], 0.0
    for k, cue in enumerate(CUES):
        spec, utt = utterance(CLIP_SPEAKER, cue, seed=7 + k, style="neutral")
        wavs.append(utt.wav)
        phones += [dataclasses.replace(p, start=p.start + t0, end=p.end + t0) for p in utt.phones]
        blocks.append((utt.words[0].start + t0, utt.words[-1].end + t0, cue.capitalize()))
        t0 += utt.duration
    wav, phones = pad_to_blocks(np.concatenate(wavs), phones)
    nv = len(wav) * VIDEO_FPS // SAMPLE_RATE
    st = spec.style
    style = expression_from_prosody(st.pitch_level, st.pitch_range, st.rate, st.energy)
    traj = FaceMotion().generate(phones, style, seed=FACE_SEED, n_frames=nv)
    args.out.mkdir(parents=True, exist_ok=True)
    render_video(traj.points, paths[0], wav)

    # Cues from the exact word timings, widened by 80 ms of the surrounding silence.
    lines = []
    for i, (a, b, text) in enumerate(blocks, 1):
        a, b = max(0.0, a - 0.08), min(len(wav) / SAMPLE_RATE, b + 0.08)
        lines += [str(i), f"{srt_time(a)} --> {srt_time(b)}", text, ""]
    paths[1].write_text("\n".join(lines), encoding="utf-8")

    _, ref = utterance(REF_SPEAKER, REF_TEXT, seed=11, style="calm")
    save_audio(paths[2], ref.wav, SAMPLE_RATE)
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size // 1024} KB)")
    print(f"clip {len(wav) / SAMPLE_RATE:.2f} s, {nv} frames; voice {ref.duration:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
