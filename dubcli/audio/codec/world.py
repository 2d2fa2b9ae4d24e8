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
- content  : 2-stage RVQ of the mel-cepstrum c1..cM minus the utterance's mean over speech
             frames (mean removal takes out the speaker's average tilt/timbre, leaving what the
             phones change).
- acoustic : 3-stage RVQ of [what content left of c1..cM, c0 minus its mean (energy),
             cepstral code of log aperiodicity], weighted per block.
- speaker  : [mean mcep c0..cM over speech frames, mean ln F0, std ln F0 over voiced frames];
             decode uses the means, so decoding with another utterance's vector converts the
             average timbre, level and pitch register (not formant positions).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dubcli.audio.codec.base import STREAMS, CodecTokens, check_tokens, check_wav
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
from dubcli.checkpoint import load_checkpoint, save_checkpoint
from dubcli.errors import CheckpointError
from dubcli.timing import SAMPLE_RATE, TOKEN_RATE, tokens_for_samples

CODEC_KIND = "codec/world"
# Bump when analysis, coding or token semantics change: old codebooks then mean something else.
CODEC_VERSION = "world-1"
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

    @property
    def speaker_dim(self) -> int:
        return self.mcep_order + 3

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
        if self.vocab < 3:
            raise ValueError(
                f"vocab must be >= 3 (one unvoiced code + 2 pitch bins), got {self.vocab}"
            )
        if self.f0_method not in ("harvest", "dio"):
            raise ValueError(f"f0_method must be 'harvest' or 'dio', got {self.f0_method!r}")
        return self


class UtteranceFeatures(NamedTuple):
    f0: np.ndarray  # (t,) Hz, 0 unvoiced
    mcep: np.ndarray  # (t, m + 1) c0..cM
    apc: np.ndarray  # (t, a)
    speaker: np.ndarray  # (d,) float32

    def content_input(self) -> np.ndarray:
        """(t, m): speaker-normalized cepstra c1..cM."""
        m = self.mcep.shape[1] - 1
        return self.mcep[:, 1:] - self.speaker[1 : m + 1]

    def acoustic_input(self, content_residual: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(t, m + 1 + a): what content left, energy deviation, aperiodicity; weighted."""
        energy = self.mcep[:, :1] - self.speaker[0]
        return np.concatenate([content_residual, energy, self.apc], axis=1) * weights


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
    mean_mcep = mcep[speech].mean(axis=0) if len(mcep) else np.zeros(config.mcep_order + 1)
    speaker = np.concatenate([mean_mcep, [log_f0.mean(), log_f0.std()]]).astype(np.float32)
    return UtteranceFeatures(frames.f0, mcep, apc, speaker)


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
        content_codebooks: np.ndarray,  # (2, k, m)
        acoustic_codebooks: np.ndarray,  # (3, k, m + 1 + a)
        acoustic_weights: np.ndarray | None = None,  # (m + 1 + a,) default from the config
        info: dict[str, Any] | None = None,  # training provenance, stored in the checkpoint
    ):
        self.config = config.check()
        k, m, ad = config.vocab, config.mcep_order, config.acoustic_dim
        if content_codebooks.shape != (STREAMS["content"], k, m):
            raise ValueError(f"content codebooks {content_codebooks.shape} != (2, {k}, {m})")
        if acoustic_codebooks.shape != (STREAMS["acoustic"], k, ad):
            raise ValueError(f"acoustic codebooks {acoustic_codebooks.shape} != (3, {k}, {ad})")
        self.content_codebooks = np.ascontiguousarray(content_codebooks, dtype=np.float32)
        self.acoustic_codebooks = np.ascontiguousarray(acoustic_codebooks, dtype=np.float32)
        weights = config.acoustic_weights() if acoustic_weights is None else acoustic_weights
        if np.shape(weights) != (ad,) or not np.all(np.asarray(weights) > 0):
            raise ValueError(f"acoustic weights must be {ad} positive values")
        self.acoustic_weights = np.asarray(weights, dtype=np.float32)
        self.info = dict(info or {})
        self.streams = dict(STREAMS)
        self.vocab = config.vocab
        self.speaker_dim = config.speaker_dim

    def encode(self, wav: np.ndarray) -> CodecTokens:
        """wav (n,) float at 16 kHz -> CodecTokens with t = n // 200."""
        wav = check_wav(wav)
        t = tokens_for_samples(len(wav))
        cfg = self.config
        if t == 0:
            empty = np.zeros((0,), dtype=np.int64)
            speaker = np.zeros(cfg.speaker_dim, dtype=np.float32)
            speaker[-2] = DEFAULT_LOG_F0
            return CodecTokens(
                empty.reshape(1, 0), empty.reshape(2, 0), empty.reshape(3, 0), speaker
            )
        feats = utterance_features(wav, cfg)
        prosody = f0_to_prosody(feats.f0, float(feats.speaker[-2]), cfg.vocab, cfg.f0_range_st)
        content, residual = rvq_encode(feats.content_input(), self.content_codebooks)
        acoustic, _ = rvq_encode(
            feats.acoustic_input(residual, self.acoustic_weights), self.acoustic_codebooks
        )
        return CodecTokens(prosody[None, :], content, acoustic, feats.speaker)

    def decode(self, tokens: CodecTokens, speaker: np.ndarray | None = None) -> np.ndarray:
        """tokens (t) -> wav (t * 200,) float32; `speaker` (d,) overrides tokens.speaker."""
        if speaker is not None and isinstance(tokens, CodecTokens):
            tokens = tokens.with_speaker(speaker)
        tokens = check_tokens(tokens, vocab=self.vocab, speaker_dim=self.speaker_dim)
        cfg = self.config
        m = cfg.mcep_order
        spk = tokens.speaker.astype(np.float64)
        f0 = prosody_to_f0(tokens.prosody[0], spk[-2], cfg.vocab, cfg.f0_range_st)
        content = rvq_decode(tokens.content, self.content_codebooks)
        acoustic = rvq_decode(tokens.acoustic, self.acoustic_codebooks) / self.acoustic_weights
        mcep = np.concatenate(
            [spk[0] + acoustic[:, m : m + 1], content + acoustic[:, :m] + spk[1 : m + 1]], axis=1
        )
        sp = mcep_to_sp(mcep, cfg.alpha, cfg.fft_size)
        ap = cep_to_ap(acoustic[:, m + 1 :].astype(np.float64), cfg.alpha, cfg.fft_size)
        return synthesize(f0, sp, ap).astype(np.float32)

    # -- checkpoint -----------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(tensors, metadata) as stored in a checkpoint (also embeddable in a model's)."""
        tensors = {
            "content_codebooks": self.content_codebooks,
            "acoustic_codebooks": self.acoustic_codebooks,
            "acoustic_weights": self.acoustic_weights,
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
                f"{source}: codebooks were trained for world codec version '{version}', this "
                f"dubcli uses '{CODEC_VERSION}'; retrain them (train_world_codec) or use a "
                "matching dubcli"
            )
        fields = {f.name for f in dataclasses.fields(WorldCodecConfig)}
        raw = metadata.get("config")
        if not isinstance(raw, dict) or set(raw) - fields:
            raise CheckpointError(f"{source}: codec config is missing or has unknown fields")
        try:
            config = WorldCodecConfig(**raw).check()
            return cls(
                config,
                np.asarray(tensors["content_codebooks"], dtype=np.float32),
                np.asarray(tensors["acoustic_codebooks"], dtype=np.float32),
                np.asarray(tensors["acoustic_weights"], dtype=np.float32),
                info=metadata.get("info"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{source}: world codec tensors do not match its config ({exc})"
            ) from exc
