"""The `world` codec: WORLD analysis + k-means residual codebooks in FACodec's stream layout.

Dimensions: t tokens (80/s), m = mcep_order (cepstra c1..cM), a = ap_order + 1 (aperiodicity
code), k = vocab codes per stream, d = speaker_dim = mcep_order + 3.

Paper 3.2 / B.1 take prosody (1 stream), content (2) and acoustic (3) tokens plus a speaker
embedding from FACodec, whose weights cannot be had offline (DESIGN 2). This codec factorizes the
same way from WORLD parameters on the 12.5 ms token grid:
- prosody  : log-F0 in semitones relative to the utterance's mean log-F0, uniformly quantized
             (code 0 = unvoiced). Speaker-normalized on purpose: the stream then carries
             intonation only (the part FaPro predicts from the face, 3.4) and transfers across
             voices, while decode restores the register from the speaker embedding, like
             FACodec's speaker-independent prosody codes. The range is not z-scored away: pitch
             excursion is expressive prosody, not identity.
- content  : phonetic, from phone labels when the caller has them (prepare: SynthDub timings,
             forced alignments) and from a phone classifier otherwise (phonetic.py,
             classifier.py): stage 1 the phone, stage 2 the stressed phone. Decode reads a
             table of speaker-normalized cepstra per (phone, third, neighbour) (world-2).
- acoustic : 3-stage RVQ of [what content left of c1..cM (in cepstral units), c0 minus its
             mean (energy), cepstral code of log aperiodicity], weighted per block.
- speaker  : [mean mcep c0..cM and std c1..cM over speech frames, mean ln F0, std ln F0 over
             voiced frames]; cepstra are normalized by the mean and std before the content
             table, so decoding with another utterance's vector converts timbre, level, pitch
             register and the spread of the envelope (what the issue's experiment measured:
             per-utterance mean/std normalization leaves the phones).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dubcli.audio.codec.base import (
    STREAMS,
    CodecTokens,
    GeneratedDecode,
    check_tokens,
    check_wav,
)
from dubcli.audio.codec.classifier import PhoneClassifier, frame_inputs
from dubcli.audio.codec.features import (
    WorldFrames,
    analyze,
    ap_to_cep,
    cep_to_ap,
    mcep_to_sp,
    sp_to_mcep,
    synthesize,
    warp_vocal_tract,
)
from dubcli.audio.codec.kmeans import rvq_decode, rvq_encode
from dubcli.audio.codec.phonetic import (
    MIN_VOCAB,
    ContentTable,
    PhoneLabels,
    content_codes,
    label_units,
)
from dubcli.audio.util import running_median
from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError
from dubcli.timing import SAMPLE_RATE, TOKEN_RATE, tokens_for_samples

CODEC_KIND = "codec/world"
# Bump when analysis, coding or token semantics change: old codebooks then mean something else.
CODEC_VERSION = "world-2"  # world-2: phonetic content (phone labels / classifier)
DEFAULT_LOG_F0 = float(np.log(150.0))  # register used when an utterance has no voiced frame


@dataclass(frozen=True)
class WorldCodecConfig:
    vocab: int = 1024  # codes per stream (paper B.1); tests train tiny codebooks
    # harvest, not dio: on resynthesized espeak/mbrola speech with known F0, dio missed 7-29 %
    # of voiced frames (harvest 1-5 %), and codec WER rose 4.9 -> 6.2 %; dio encodes at RTF
    # 0.04 vs 0.24 (benchmarks/codec_roundtrip.py --f0-method dio).
    f0_method: str = "harvest"
    f0_floor: float = 60.0  # Hz, F0 search range
    f0_ceil: float = 600.0
    fft_size: int = 1024  # WORLD envelope FFT at 16 kHz (supports F0 down to 47 Hz)
    mcep_order: int = 40  # envelope cepstra c1..cM coded by content + acoustic streams
    alpha: float = 0.42  # all-pass constant: mel-like warping at 16 kHz
    ap_order: int = 5  # aperiodicity code order (a = ap_order + 1 coefficients)
    f0_range_st: float = 24.0  # prosody codes span +-this many semitones around the mean
    speech_range_db: float = 35.0  # frames within this of the loudest count as speech (means)
    energy_weight: float = 1.0  # acoustic RVQ weight of c0 deviation vs the cepstral residual
    ap_weight: float = 0.3  # acoustic RVQ weight of the aperiodicity code
    classifier_context: int = 5  # phone classifier input: +-this many frames around each frame

    @property
    def speaker_dim(self) -> int:
        return 2 * self.mcep_order + 3

    @property
    def acoustic_dim(self) -> int:
        return self.mcep_order + 1 + self.ap_order + 1

    def acoustic_weights(self) -> np.ndarray:
        """(m + 1 + a,) scale applied before the acoustic RVQ (undone at decode)."""
        return np.concatenate(
            [
                np.ones(self.mcep_order),
                [self.energy_weight],
                np.full(self.ap_order + 1, self.ap_weight),
            ]
        ).astype(np.float32)

    def check(self) -> WorldCodecConfig:
        if self.vocab < MIN_VOCAB:
            raise ValueError(
                f"vocab must be >= {MIN_VOCAB} (one content code per stressed phone), "
                f"got {self.vocab}"
            )
        if self.f0_method not in ("harvest", "dio"):
            raise ValueError(f"f0_method must be 'harvest' or 'dio', got {self.f0_method!r}")
        return self


MIN_STD = 1e-3  # floor of a cepstral std (a constant envelope must not divide by zero)


class UtteranceFeatures(NamedTuple):
    f0: np.ndarray  # (t,) Hz, 0 unvoiced
    mcep: np.ndarray  # (t, m + 1) c0..cM
    apc: np.ndarray  # (t, a)
    speaker: np.ndarray  # (d,) float32: mean c0..cM, std c1..cM, mean ln F0, std ln F0

    @property
    def order(self) -> int:
        return self.mcep.shape[1] - 1

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """(m,) mean and (m,) std of c1..cM over speech frames (from the speaker vector)."""
        m = self.order
        return self.speaker[1 : m + 1].astype(np.float64), self.speaker[m + 1 : 2 * m + 1]

    def content_input(self) -> np.ndarray:
        """(t, m): cepstra c1..cM z-scored by the utterance's mean and std (speaker removed)."""
        mean, std = self.mean_std()
        return (self.mcep[:, 1:] - mean) / std

    def energy(self) -> np.ndarray:
        """(t,) c0 minus its mean over speech frames."""
        return self.mcep[:, 0] - self.speaker[0]

    def classifier_inputs(self, context: int) -> np.ndarray:
        return frame_inputs(self.content_input(), self.energy(), self.f0 > 0, self.apc, context)

    def acoustic_input(self, content: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(t, m + 1 + a): what the content table (t, m) left, in cepstral units, energy
        deviation, aperiodicity; weighted."""
        _, std = self.mean_std()
        residual = (self.content_input() - content) * std
        return np.concatenate([residual, self.energy()[:, None], self.apc], axis=1) * weights


def utterance_features(
    wav: np.ndarray | WorldFrames, config: WorldCodecConfig, *, vtl_factor: float = 1.0
) -> UtteranceFeatures:
    """WORLD analysis (unless given) + coding of one 16 kHz waveform (n,) -> t = n // 200."""
    frames = wav if isinstance(wav, WorldFrames) else analyze_for(wav, config)
    sp = frames.sp if vtl_factor == 1.0 else warp_vocal_tract(frames.sp, vtl_factor)
    mcep = sp_to_mcep(sp, config.mcep_order, config.alpha)
    apc = ap_to_cep(frames.ap, config.ap_order, config.alpha)
    speech = frames.level_db >= frames.level_db.max(initial=-np.inf) - config.speech_range_db
    if not speech.any():
        speech = np.ones(len(mcep), dtype=bool)
    voiced = frames.f0 > 0
    log_f0 = np.log(frames.f0[voiced]) if voiced.any() else np.array([DEFAULT_LOG_F0])
    m = config.mcep_order
    if len(mcep):
        mean, std = mcep[speech].mean(axis=0), np.maximum(mcep[speech, 1:].std(axis=0), MIN_STD)
    else:
        mean, std = np.zeros(m + 1), np.ones(m)
    speaker = np.concatenate([mean, std, [log_f0.mean(), log_f0.std()]]).astype(np.float32)
    return UtteranceFeatures(frames.f0, mcep, apc, speaker)


def default_speaker(config: WorldCodecConfig) -> np.ndarray:
    """The speaker vector of an empty utterance: flat envelope, unit spread, 150 Hz."""
    m = config.mcep_order
    return np.concatenate([np.zeros(m + 1), np.ones(m), [DEFAULT_LOG_F0, 0.0]]).astype(np.float32)


def analyze_for(wav: np.ndarray, config: WorldCodecConfig) -> WorldFrames:
    """WORLD analysis with the codec's settings."""
    return analyze(
        wav,
        method=config.f0_method,
        f0_floor=config.f0_floor,
        f0_ceil=config.f0_ceil,
        fft_size=config.fft_size,
    )


def f0_to_prosody(f0: np.ndarray, mean_log_f0: float, vocab: int, range_st: float) -> np.ndarray:
    """(t,) Hz -> (t,) codes: 0 unvoiced, 1..vocab-1 uniform semitone bins around the mean."""
    step = 2.0 * range_st / (vocab - 2)
    voiced = f0 > 0
    st = 12.0 / np.log(2.0) * (np.log(np.where(voiced, f0, 1.0)) - mean_log_f0)
    codes = 1 + np.round((np.clip(st, -range_st, range_st) + range_st) / step).astype(np.int64)
    return np.where(voiced, codes, 0)


def prosody_to_f0(codes: np.ndarray, mean_log_f0: float, vocab: int, range_st: float) -> np.ndarray:
    """Inverse of f0_to_prosody (to the bin centre)."""
    step = 2.0 * range_st / (vocab - 2)
    st = (np.asarray(codes) - 1) * step - range_st
    return np.where(codes > 0, np.exp(mean_log_f0 + st * np.log(2.0) / 12.0), 0.0)


class WorldCodec:
    """Encode/decode with trained codebooks; build one with `train_world_codec`."""

    name = "world"
    version = CODEC_VERSION
    sample_rate = SAMPLE_RATE
    frame_rate = TOKEN_RATE

    def __init__(
        self,
        config: WorldCodecConfig,
        content_table: ContentTable,  # per (phone, third, neighbour) normalized cepstra
        classifier: PhoneClassifier,  # content codes for audio without phone labels
        acoustic_codebooks: np.ndarray,  # (3, k, m + 1 + a)
        acoustic_weights: np.ndarray | None = None,  # (m + 1 + a,) default from the config
        info: dict[str, Any] | None = None,  # training provenance, stored in the checkpoint
    ):
        self.config = config.check()
        k, m, ad = config.vocab, config.mcep_order, config.acoustic_dim
        if content_table.context.shape[-1] != m or content_table.stress.shape[-1] != m:
            raise ValueError(f"content table width {content_table.context.shape[-1]} != {m}")
        if acoustic_codebooks.shape != (STREAMS["acoustic"], k, ad):
            raise ValueError(f"acoustic codebooks {acoustic_codebooks.shape} != (3, {k}, {ad})")
        n_in = (2 * config.classifier_context + 1) * (m + 2 + config.ap_order + 1)
        if classifier.input_dim != n_in or classifier.context != config.classifier_context:
            raise ValueError(f"phone classifier takes {classifier.input_dim} inputs, not {n_in}")
        self.content_table = ContentTable(*(np.asarray(x, np.float32) for x in content_table))
        self.classifier = classifier
        self.acoustic_codebooks = np.ascontiguousarray(acoustic_codebooks, dtype=np.float32)
        weights = config.acoustic_weights() if acoustic_weights is None else acoustic_weights
        if np.shape(weights) != (ad,) or not np.all(np.asarray(weights) > 0):
            raise ValueError(f"acoustic weights must be {ad} positive values")
        self.acoustic_weights = np.asarray(weights, dtype=np.float32)
        self.info = dict(info or {})
        self.streams = dict(STREAMS)
        self.vocab = config.vocab
        self.speaker_dim = config.speaker_dim

    def encode(self, wav: np.ndarray, labels: PhoneLabels | None = None) -> CodecTokens:
        """wav (n,) float at 16 kHz -> CodecTokens with t = n // 200.

        labels: the utterance's phonemes and their durations in tokens (summing to t); the
        content codes are then exact. Without labels the phone classifier supplies them."""
        wav = check_wav(wav)
        t = tokens_for_samples(len(wav))
        cfg = self.config
        if t == 0:
            empty = np.zeros((0,), dtype=np.int64)
            return CodecTokens(
                empty.reshape(1, 0), empty.reshape(2, 0), empty.reshape(3, 0),
                default_speaker(cfg),
            )  # fmt: skip
        feats = utterance_features(wav, cfg)
        return self.encode_features(feats, labels)

    def encode_features(
        self, feats: UtteranceFeatures, labels: PhoneLabels | None = None
    ) -> CodecTokens:
        """Tokens of analysed features (see encode)."""
        cfg = self.config
        prosody = f0_to_prosody(feats.f0, float(feats.speaker[-2]), cfg.vocab, cfg.f0_range_st)
        if labels is not None:
            units = label_units(labels, len(feats.f0))
        else:
            units = self.classifier.units(feats.classifier_inputs(cfg.classifier_context))
        content = content_codes(units)
        acoustic_in = feats.acoustic_input(
            self.content_table.lookup(content), self.acoustic_weights
        )
        acoustic, _ = rvq_encode(acoustic_in, self.acoustic_codebooks)
        return CodecTokens(prosody[None, :], content, acoustic, feats.speaker)

    def phonetic_content(self, symbols, durations) -> np.ndarray:
        """(2, t) content tokens of phonemes `symbols` lasting `durations` tokens each (what
        encode gives with these labels): the codec's content is a function of the phones."""
        durations = np.asarray(durations, dtype=np.int64)
        return content_codes(label_units(PhoneLabels(symbols, durations), int(durations.sum())))

    def decode(self, tokens: CodecTokens, speaker: np.ndarray | None = None, *,
               generated: GeneratedDecode | None = None) -> np.ndarray:  # fmt: skip
        """tokens (t) -> wav (t * 200,) float32; `speaker` (d,) overrides tokens.speaker.
        `generated` (tokens a model sampled): its residual_scale < 1 shrinks the acoustic
        stream's envelope detail toward the content table, its energy_median smooths the energy
        track (c0) with a running median, which keeps the steps at phone boundaries and takes
        out the token-to-token flicker of independent samples (measured in inference.py)."""
        if speaker is not None and isinstance(tokens, CodecTokens):
            tokens = tokens.with_speaker(speaker)
        tokens = check_tokens(tokens, vocab=self.vocab, speaker_dim=self.speaker_dim)
        cfg = self.config
        m = cfg.mcep_order
        spk = tokens.speaker.astype(np.float64)
        mean, std = spk[: m + 1], spk[m + 1 : 2 * m + 1]
        f0 = prosody_to_f0(tokens.prosody[0], spk[-2], cfg.vocab, cfg.f0_range_st)
        content = self.content_table.lookup(tokens.content)
        acoustic = rvq_decode(tokens.acoustic, self.acoustic_codebooks) / self.acoustic_weights
        post = generated or GeneratedDecode()
        if post.energy_median > 1:
            acoustic[:, m] = running_median(acoustic[:, m], post.energy_median)
        mcep = np.concatenate(
            [
                mean[0] + acoustic[:, m : m + 1],
                mean[1:] + std * content + post.residual_scale * acoustic[:, :m],
            ],
            axis=1,
        )
        sp = mcep_to_sp(mcep, cfg.alpha, cfg.fft_size)
        ap = cep_to_ap(acoustic[:, m + 1 :].astype(np.float64), cfg.alpha, cfg.fft_size)
        return synthesize(f0, sp, ap).astype(np.float32)

    # -- checkpoint -----------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(tensors, metadata) as stored in a checkpoint (also embeddable in a model's)."""
        tensors = {
            "content_context": self.content_table.context,
            "content_stress": self.content_table.stress,
            "acoustic_codebooks": self.acoustic_codebooks,
            "acoustic_weights": self.acoustic_weights,
            **self.classifier.state("classifier_"),
        }
        meta = {
            "kind": CODEC_KIND,
            "codec_version": CODEC_VERSION,
            "config": dataclasses.asdict(self.config),
            "info": self.info,
        }
        return tensors, meta

    def save(self, path: str | os.PathLike, *, force: bool = True) -> Path:
        tensors, meta = self.state()
        return save_checkpoint(path, tensors, meta, force=force)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WorldCodec:
        ck = load_checkpoint(path, framework="numpy", expect_kind=CODEC_KIND)
        return cls.from_state(ck.tensors, ck.metadata, source=str(path))

    @classmethod
    def from_state(
        cls, tensors: dict[str, Any], metadata: dict[str, Any], *, source: str = "codec state"
    ) -> WorldCodec:
        if metadata.get("kind") != CODEC_KIND:
            raise CheckpointError(
                f"{source}: is a '{metadata.get('kind')}' file, not a world codec"
            )
        version = metadata.get("codec_version")
        if version != CODEC_VERSION:
            raise CheckpointError(
                f"{source}: made for world codec version '{version}', this dubcli uses "
                f"'{CODEC_VERSION}' (phonetic content tokens since world-2); re-run "
                "`dubcli prepare` and retrain, or use a matching dubcli"
            )
        fields = {f.name for f in dataclasses.fields(WorldCodecConfig)}
        raw = metadata.get("config")
        if not isinstance(raw, dict) or set(raw) - fields:
            raise CheckpointError(f"{source}: codec config is missing or has unknown fields")
        try:
            config = WorldCodecConfig(**raw).check()
            table = ContentTable(
                np.asarray(tensors["content_context"], dtype=np.float32),
                np.asarray(tensors["content_stress"], dtype=np.float32),
            )
            classifier = PhoneClassifier.from_state(
                tensors, "classifier_", config.classifier_context
            )
            return cls(
                config,
                table,
                classifier,
                np.asarray(tensors["acoustic_codebooks"], dtype=np.float32),
                np.asarray(tensors["acoustic_weights"], dtype=np.float32),
                info=metadata.get("info"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{source}: world codec tensors do not match its config ({exc})"
            ) from exc
