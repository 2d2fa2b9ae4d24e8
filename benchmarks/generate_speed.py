"""Generation real-time factor of DiFlowDubber (stage 2) by config and NFE, on this machine.

RTF = seconds of compute / seconds of speech produced. Random weights: the compute does not
depend on the weights. The clip is `--seconds` long (video frames at 25 fps), with a 3 s prompt
and ~12 phonemes per second. Codec decoding is measured separately by
benchmarks/codec_roundtrip.py; this is the model alone (the paper's RTF excludes preprocessing).

    python benchmarks/generate_speed.py --configs small --nfe 1 8 32 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import torch

from dubcli.config import model_preset
from dubcli.model.dubber import DiFlowDubber, n_params
from dubcli.timing import VIDEO_FPS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["small"])
    ap.add_argument("--nfe", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.configs:
        cfg = model_preset(name)
        torch.manual_seed(0)
        model = DiFlowDubber(cfg).to(args.device).eval()
        nv = int(round(args.seconds * VIDEO_FPS))
        nt = int(args.seconds * 12)
        g = torch.Generator().manual_seed(0)
        phonemes = torch.randint(8, cfg.phoneme_vocab, (nt,), generator=g)
        lip, face = (
            torch.randn(nv, cfg.lip_dim, generator=g),
            torch.randn(nv, cfg.face_dim, generator=g),
        )
        n_prompt = 240
        pp = torch.randint(0, cfg.vocab, (cfg.n_prosody, n_prompt), generator=g)
        pa = torch.randint(0, cfg.vocab, (cfg.n_acoustic, n_prompt), generator=g)
        spk = torch.randn(cfg.speaker_dim, generator=g)
        for nfe in args.nfe:
            times = []
            for r in range(args.repeats + 1):  # first run warms up
                t0 = time.perf_counter()
                out = model.generate(phonemes, lip, face, pp, pa, spk, nfe=nfe, seed=r)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            best = min(times[1:])
            rows.append(
                {
                    "config": name,
                    "params_m": round(n_params(model) / 1e6, 2),
                    "nfe": nfe,
                    "seconds_audio": args.seconds,
                    "seconds_compute": round(best, 3),
                    "rtf": round(best / args.seconds, 3),
                    "tokens": int(out.lengths[0]),
                    "device": args.device,
                    "threads": torch.get_num_threads(),
                }
            )
            if not args.json:
                r = rows[-1]
                print(
                    f"{name:6s} {r['params_m']:7.2f}M  NFE {nfe:3d}  {best:7.3f} s for {args.seconds} s  RTF {r['rtf']:.3f}"
                )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
