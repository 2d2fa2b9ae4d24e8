"""Training the `world` codec's codebooks: k-means RVQ over analysed frames.

Dimensions: n frames pooled over all training utterances, m = mcep_order, a = ap_order + 1.

Content codebooks are fit first (2 stages over speaker-normalized c1..cM), then the acoustic
codebooks (3 stages) over what content left plus energy and aperiodicity, exactly the order
encode quantizes in. Prosody needs no training (uniform semitone bins, see world.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dubcli.audio.codec.base import STREAMS, check_wav
from dubcli.audio.codec.kmeans import rvq_encode, train_rvq
from dubcli.audio.codec.world import (
    WorldCodec,
    WorldCodecConfig,
    analyze_for,
    utterance_features,
)
from dubcli.console import get_logger
from dubcli.errors import InputError

log = get_logger(__name__)


def train_world_codec(
    wavs: Sequence[np.ndarray],
    *,
    seed: int = 0,
    config: WorldCodecConfig | None = None,
    iters: int = 20,
    vtl_factors: Sequence[float] = (1.0,),
    max_frames: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> WorldCodec:
    """Fit codebooks on 16 kHz waveforms (each (n,)).

    seed: drives frame subsampling and k-means++ seeding; same inputs + seed -> same codebooks.
    vtl_factors: each utterance is also analysed with its envelope warped by these factors
        (vocal-tract-length perturbation) so codebooks cover more voices than the corpus has.
    max_frames: frames kept (uniform random subset) when the pool is larger; bounds time.
    progress: called with (done, total) after each utterance is analysed.
    """
    config = (config or WorldCodecConfig()).check()
    if len(wavs) == 0:
        raise InputError("codec training: no training waveforms given")
    contents, energies, apcs = [], [], []
    total = len(wavs) * len(vtl_factors)
    done = 0
    for i, wav in enumerate(wavs):
        frames = analyze_for(check_wav(wav, f"codec training waveform {i}"), config)
        for factor in vtl_factors:
            feats = utterance_features(frames, config, vtl_factor=float(factor))
            contents.append(feats.content_input())
            energies.append(feats.mcep[:, :1] - feats.speaker[0])
            apcs.append(feats.apc)
            done += 1
            if progress is not None:
                progress(done, total)
    content = np.concatenate(contents).astype(np.float32)
    energy = np.concatenate(energies).astype(np.float32)
    apc = np.concatenate(apcs).astype(np.float32)
    n = len(content)
    if n == 0:
        raise InputError("codec training: the waveforms are shorter than one token (200 samples)")
    rng = np.random.default_rng(seed)
    if n > max_frames:
        keep = np.sort(rng.choice(n, max_frames, replace=False))
        content, energy, apc = content[keep], energy[keep], apc[keep]
    stage_seeds = rng.integers(0, 2**31 - 1, size=2)
    log.debug("codec training: %d frames (%d pooled), vocab %d", len(content), n, config.vocab)
    content_books, residual = train_rvq(
        content, STREAMS["content"], config.vocab, seed=int(stage_seeds[0]), iters=iters
    )
    weights = config.acoustic_weights()
    acoustic_in = np.concatenate([residual, energy, apc], axis=1) * weights
    acoustic_books, _ = train_rvq(
        acoustic_in, STREAMS["acoustic"], config.vocab, seed=int(stage_seeds[1]), iters=iters
    )
    info = {
        "seed": int(seed),
        "utterances": len(wavs),
        "frames": int(len(content)),
        "frames_pooled": int(n),
        "vtl_factors": [float(f) for f in vtl_factors],
        "iters": int(iters),
    }
    return WorldCodec(config, content_books, acoustic_books, weights, info=info)


def quantization_error(codec: WorldCodec, wavs: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean squared coding error per stage group on some waveforms (for diagnostics)."""
    cfg = codec.config
    errs: dict[str, list[float]] = {"content": [], "acoustic": []}
    for wav in wavs:
        feats = utterance_features(check_wav(wav), cfg)
        _, residual = rvq_encode(feats.content_input(), codec.content_codebooks)
        errs["content"].append(float(np.mean(np.sum(residual**2, axis=1))))
        _, res2 = rvq_encode(
            feats.acoustic_input(residual, codec.acoustic_weights), codec.acoustic_codebooks
        )
        errs["acoustic"].append(float(np.mean(np.sum(res2**2, axis=1))))
    return {k: float(np.mean(v)) for k, v in errs.items()}
