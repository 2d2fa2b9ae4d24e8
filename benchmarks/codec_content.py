"""How much of the words the `world` codec's phonetic content stream carries (issue 12).

Generates N SynthDub utterances (exact phone labels), fits the codec on the train split, and on
the test split (speakers, and two base voices, never seen in training) reports:
- content-code accuracy when the codec encodes from audio alone (the phone classifier) against
  the codes the labels give, per stage;
- WER on the GRID sentences (pocketsphinx, GRID grammar) of: the original audio, codec
  resynthesis with labels, codec resynthesis from audio alone, and "table only": the cepstra
  replaced by the content table's (phone, third, neighbour) means, rescaled by the utterance's
  own mean/std, with its own energy, F0 and aperiodicity (what the content stream alone says).

    python benchmarks/codec_content.py -n 400 --seed 3      # ~10 min on 2 CPU cores
    python benchmarks/codec_content.py --prepared corpus/ --limit 100   # a prepared corpus's codec
                                                                        # on its test split
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import _tree  # noqa: F401  (this checkout's dubcli, not the installed one)
import numpy as np

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from dubcli.audio.codec.features import mcep_to_sp, synthesize  # noqa: E402
from dubcli.audio.codec.phonetic import PhoneLabels  # noqa: E402
from dubcli.audio.codec.train import train_world_codec  # noqa: E402
from dubcli.audio.codec.world import analyze_for, utterance_features  # noqa: E402
from dubcli.eval.wer import PocketsphinxRecognizer, corpus_wer  # noqa: E402
from dubcli.prepare.layouts import Context, make_layout  # noqa: E402


def table_only(codec, wav: np.ndarray, labels: PhoneLabels) -> np.ndarray:
    cfg = codec.config
    frames = analyze_for(wav, cfg)
    feats = utterance_features(frames, cfg)
    tokens = codec.encode_features(feats, labels)
    mean, std = feats.mean_std()
    mcep = feats.mcep.copy()
    mcep[:, 1:] = mean + std * codec.content_table.lookup(tokens.content)
    sp = mcep_to_sp(mcep, cfg.alpha, cfg.fft_size)
    return synthesize(frames.f0, sp, frames.ap).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=400, help="SynthDub utterances (80/10/10 split)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--prepared", type=Path, help="use this prepared corpus's codec and test split")
    ap.add_argument("--limit", type=int, default=100, help="--prepared: test utterances used")
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.prepared is not None:
        codec, tests = prepared_test_split(args.prepared, args.limit)
        print(f"{len(tests)} test utterances of {args.prepared} re-rendered in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        return score(codec, tests, t0)
    lay = make_layout("synth", None, n=args.n, seed=args.seed)
    ctx = Context(out=Path("."), render=False)
    data = {"train": [], "test": []}
    texts = {}
    for it in lay.items():
        if it.split in data:
            data[it.split].append(lay.labelled_audio(it, ctx))
            texts[id(data[it.split][-1])] = (it.data["spec"]["kind"], it.data["spec"]["text"])
    print(f"synthesized {len(data['train'])} train / {len(data['test'])} test utterances "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    def labels(u):
        return PhoneLabels(u.phonemes, u.durations_tokens)

    t1 = time.perf_counter()
    from dubcli.audio.codec.world import WorldCodecConfig

    codec = train_world_codec([u.wav for u in data["train"]], [labels(u) for u in data["train"]],
                              seed=args.seed, config=WorldCodecConfig(vocab=args.vocab))  # fmt: skip
    print(f"codec fitted in {time.perf_counter() - t1:.0f} s", flush=True)

    tests = [(u, *texts[id(u)]) for u in data["test"]]
    score(codec, tests, t0)


def prepared_test_split(root: Path, limit: int):
    """The corpus's codec, and (LabelledAudio, kind, text) for its first `limit` test items."""
    from dubcli.audio.codec import load_codec
    from dubcli.data.manifest import load_split, read_dataset_info
    from dubcli.eval.groundtruth import GroundTruth
    from dubcli.prepare.layouts import LabelledAudio

    codec = load_codec(root / "codec.safetensors")
    _, utts = load_split(root / "test")
    gt = GroundTruth(root, read_dataset_info(root))
    out = []
    for u in sorted(utts, key=lambda u: u.id)[:limit]:
        wav = gt.audio(u)  # re-rendered exactly as prepare saw it
        la = LabelledAudio(wav, tuple(u.phonemes), tuple(u.durations_tokens))
        out.append((la, (u.source or {}).get("kind", "free"), u.text))
    return codec, out


def score(codec, tests, t0: float) -> None:
    def labels(u):
        return PhoneLabels(u.phonemes, u.durations_tokens)

    hits, n = np.zeros(2), 0
    outs: dict[str, list[np.ndarray]] = {"original": [], "codec, labels": [],
                                         "codec, audio alone": [], "table only": []}  # fmt: skip
    refs = []
    for u, kind, text in tests:
        wav = u.wav.astype(np.float64)
        with_labels, alone = codec.encode(wav, labels(u)), codec.encode(wav)
        hits += (with_labels.content == alone.content).sum(axis=1)
        n += with_labels.n_tokens
        if kind == "grid":
            refs.append(text)
            outs["original"].append(u.wav)
            outs["codec, labels"].append(codec.decode(with_labels))
            outs["codec, audio alone"].append(codec.decode(alone))
            outs["table only"].append(table_only(codec, wav, labels(u)))
    print(f"content codes from audio alone, unseen test speakers: stage 1 {hits[0] / n:.1%}, "
          f"stage 2 {hits[1] / n:.1%} of {n} frames", flush=True)  # fmt: skip
    rec = PocketsphinxRecognizer(grammar="grid")
    for name, wavs in outs.items():
        res = corpus_wer(refs, [rec.transcribe(w) for w in wavs])
        print(f"WER GRID {name:20s} {res.wer:6.1%}  ({len(refs)} utterances)", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
