"""Training the `world` codec: content table, phone classifier, acoustic codebooks.

Dimensions: n frames pooled over all training utterances, m = mcep_order, a = ap_order + 1.

Inputs are waveforms with phone labels (phonemes + durations in tokens). In the order encode
uses them: (1) the content table, means of speaker-normalized cepstra per (phone, third,
neighbour) (phonetic.py); (2) the phone classifier that gives content codes to unlabelled audio
(classifier.py); (3) the acoustic codebooks, a 3-stage k-means RVQ over what the table left plus
energy and aperiodicity. Prosody needs no training (uniform semitone bins, see world.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dubcli.audio.codec.base import STREAMS, check_wav
from dubcli.audio.codec.classifier import train_classifier
from dubcli.audio.codec.features import WorldFrames
from dubcli.audio.codec.kmeans import rvq_encode, train_rvq
from dubcli.audio.codec.phonetic import (
    PhoneLabels,
    content_codes,
    fit_content_table,
    label_units,
)
from dubcli.audio.codec.world import (
    UtteranceFeatures,
    WorldCodec,
    WorldCodecConfig,
    analyze_for,
    utterance_features,
)
from dubcli.console import get_logger
from dubcli.errors import InputError

log = get_logger(__name__)


def train_world_codec(
    wavs: Sequence[np.ndarray | WorldFrames],
    labels: Sequence[PhoneLabels],
    *,
    seed: int = 0,
    config: WorldCodecConfig | None = None,
    iters: int = 20,
    vtl_factors: Sequence[float] = (1.0,),
    max_frames: int = 200_000,
    classifier_epochs: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> WorldCodec:
    """Fit a codec on 16 kHz waveforms (each (n,), or already analysed with `analyze_for`,
    e.g. in worker processes) and their phone labels (one per waveform).

    seed: drives frame subsampling, k-means++ seeding and the classifier; same inputs + seed ->
        same codec.
    vtl_factors: each utterance is also analysed with its envelope warped by these factors
        (vocal-tract-length perturbation) so the codec covers more voices than the corpus has.
    max_frames: frames kept (uniform random subset) when the pool is larger; bounds time.
    progress: called with (done, total) after each utterance is analysed.
    """
    config = (config or WorldCodecConfig()).check()
    if len(wavs) == 0:
        raise InputError("codec training: no training waveforms given")
    if len(labels) != len(wavs):
        raise InputError(f"codec training: {len(wavs)} waveforms but {len(labels)} phone labels")
    feats: list[UtteranceFeatures] = []
    codes: list[np.ndarray] = []
    total = len(wavs) * len(vtl_factors)
    for i, (wav, lab) in enumerate(zip(wavs, labels, strict=True)):
        if isinstance(wav, WorldFrames):
            frames = wav
        else:
            frames = analyze_for(check_wav(wav, f"codec training waveform {i}"), config)
        units = label_units(lab, len(frames.f0), f"codec training labels {i}")
        for factor in vtl_factors:
            feats.append(utterance_features(frames, config, vtl_factor=float(factor)))
            codes.append(content_codes(units))
            if progress is not None:
                progress(len(feats), total)
    n = sum(len(f.f0) for f in feats)
    if n == 0:
        raise InputError("codec training: the waveforms are shorter than one token (200 samples)")
    rng = np.random.default_rng(seed)
    stage_seeds = rng.integers(0, 2**31 - 1, size=3)
    all_codes = np.concatenate(codes, axis=1)
    table = fit_content_table(np.concatenate([f.content_input() for f in feats]), all_codes)
    keep = np.sort(rng.choice(n, max_frames, replace=False)) if n > max_frames else slice(None)
    ctx = config.classifier_context
    inputs = np.concatenate([f.classifier_inputs(ctx) for f in feats])[keep]
    classifier = train_classifier(inputs, all_codes[1][keep], context=ctx,
                                  epochs=classifier_epochs, seed=int(stage_seeds[0]))  # fmt: skip
    del inputs
    weights = config.acoustic_weights()
    acoustic_in = np.concatenate(
        [f.acoustic_input(table.lookup(c), weights) for f, c in zip(feats, codes, strict=True)]
    ).astype(np.float32)[keep]
    log.debug("codec training: %d frames (%d pooled), vocab %d", len(acoustic_in), n, config.vocab)
    acoustic_books, _ = train_rvq(
        acoustic_in, STREAMS["acoustic"], config.vocab, seed=int(stage_seeds[1]), iters=iters
    )
    info = {
        "seed": int(seed),
        "utterances": len(wavs),
        "frames": int(len(acoustic_in)),
        "frames_pooled": int(n),
        "vtl_factors": [float(f) for f in vtl_factors],
        "iters": int(iters),
        "classifier_epochs": int(classifier_epochs),
    }
    return WorldCodec(config, table, classifier, acoustic_books, weights, info=info)


def quantization_error(
    codec: WorldCodec, wavs: Sequence[np.ndarray], labels: Sequence[PhoneLabels] | None = None
) -> dict[str, float]:
    """Mean squared coding error per stage group on some waveforms (for diagnostics):
    'content' is what the content table leaves of the normalized cepstra, 'acoustic' what the
    acoustic codebooks leave of their input."""
    cfg = codec.config
    errs: dict[str, list[float]] = {"content": [], "acoustic": []}
    for i, wav in enumerate(wavs):
        feats = utterance_features(check_wav(wav), cfg)
        tokens = codec.encode_features(feats, None if labels is None else labels[i])
        content = codec.content_table.lookup(tokens.content)
        errs["content"].append(float(np.mean(np.sum((feats.content_input() - content) ** 2, 1))))
        _, res2 = rvq_encode(
            feats.acoustic_input(content, codec.acoustic_weights), codec.acoustic_codebooks
        )
        errs["acoustic"].append(float(np.mean(np.sum(res2**2, axis=1))))
    return {k: float(np.mean(v)) for k, v in errs.items()}
