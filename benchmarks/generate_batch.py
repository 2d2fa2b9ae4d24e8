"""Issue 15: token generation of the default model, one cue at a time vs batched, back to back.

    nice python benchmarks/generate_batch.py [--cues 33] [--threads 1 2] [--int8]
                                             [--prompt-seconds 4 2.5]

The cues: the example clip's three subtitle lines (examples/clip.srt) repeated, their windows'
frame counts, random lip/face features (the compute does not depend on them), the prompt from
examples/voice.wav, NFE 8. Rows, alternating per repeat: `per-cue` = DiFlowDubber.generate once
per cue (main's path), `batched` = dubcli.generation.generate_dub over all cues in
plan_batches' groups; `int8` = the same batched run with the DFPA's DiT Linear layers dynamically
quantized (torch.ao.quantization.quantize_dynamic). Seconds of speech = the cues' frames / 25;
the figure is seconds of generation per second of speech. Token agreement of int8 vs float is
printed too (same seeds). `--prompt-seconds` adds a `batched` row per prompt window length (the
prompt is ~60% of the DiT's sequence with a 4 s window).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from _tree import ROOT  # this checkout's dubcli, not the installed one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cues", type=int, default=33)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[0])
    ap.add_argument("--int8", action="store_true")
    ap.add_argument(
        "--prompt-seconds",
        type=float,
        nargs="+",
        default=[],
        help="also batched with these prompt windows (s)",
    )
    args = ap.parse_args()
    from dubcli.audio.io import load_audio
    from dubcli.generation import DubItem, generate_dub, plan_batches
    from dubcli.inference import Dubber, phoneme_symbols
    from dubcli.text.g2p import text_to_phonemes
    from dubcli.text.phonemes import encode
    from dubcli.text.subtitles import read_cues
    from dubcli.timing import frames_for_seconds

    d = Dubber.load(None, device="cpu")
    voice = load_audio(ROOT / "examples" / "voice.wav")
    p, a, spk = d._prompt(d.reference(voice))
    cues = read_cues(ROOT / "examples" / "clip.srt")
    rng = np.random.default_rng(0)
    items = []
    for k in range(args.cues):
        c = cues[k % len(cues)]
        nv = frames_for_seconds(c.end - c.start)
        ph = torch.tensor(encode(phoneme_symbols(text_to_phonemes(c.text))))
        lip = (0.1 * rng.standard_normal((nv, d.cfg.lip_dim))).astype(np.float32)
        face = (0.1 * rng.standard_normal((nv, d.cfg.face_dim))).astype(np.float32)
        items.append(DubItem(ph, lip, face, p.numpy(), a.numpy(), spk.numpy(), seed=k))
    speech = sum(it.nv for it in items) / 25
    model = d.model

    def per_cue(m):
        for it in items:
            m.generate(it.phonemes, torch.from_numpy(it.lip), torch.from_numpy(it.face), p, a,
                       spk, nfe=8, seed=it.seed)  # fmt: skip

    def batched(m, items=items):
        out = [None] * len(items)
        for b in plan_batches([it.nv for it in items]):
            for i, o in zip(b, generate_dub(m, [items[i] for i in b], nfe=8), strict=True):
                out[i] = o
        return out

    qmodel = None
    if args.int8:
        import copy

        qmodel = copy.deepcopy(model)
        qmodel.dfpa.dit = torch.ao.quantization.quantize_dynamic(
            qmodel.dfpa.dit, {torch.nn.Linear}, dtype=torch.qint8
        )

    def with_prompt(seconds):
        pp, pa, _ = d._prompt(d.reference(voice, prompt_s=seconds))
        short = [dataclasses.replace(it, prompt_prosody=pp.numpy(), prompt_acoustic=pa.numpy())
                 for it in items]  # fmt: skip
        return lambda m: batched(m, short)

    rows = [("per-cue", per_cue, model), ("batched", batched, model)]
    if qmodel is not None:
        rows.append(("int8", batched, qmodel))
    rows += [(f"prompt {s:g} s", with_prompt(s), model) for s in args.prompt_seconds]
    print(f"{len(items)} cues, {speech:.1f} s of speech, batches "
          f"{[len(b) for b in plan_batches([it.nv for it in items])]}")  # fmt: skip
    for threads in args.threads:
        if threads:
            torch.set_num_threads(threads)
        for rep in range(args.repeats):
            for name, fn, m in rows:
                t, c = time.perf_counter(), time.process_time()
                fn(m)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                print(f"threads {torch.get_num_threads()} [{rep}] {name:<12} {wall:7.2f} s wall "
                      f"= {wall / speech:.3f} s per s of speech (cpu {cpu:.1f} s)", flush=True)  # fmt: skip
    if qmodel is not None:
        f, q = batched(model), batched(qmodel)
        agree = np.mean(
            [(x.acoustic == y.acoustic).float().mean().item() for x, y in zip(f, q, strict=True)]
        )
        pro = np.mean(
            [(x.prosody == y.prosody).float().mean().item() for x, y in zip(f, q, strict=True)]
        )
        print(f"int8 vs float tokens (same seeds): acoustic {agree:.1%}, prosody {pro:.1%} agree")


if __name__ == "__main__":
    main()
