"""SECS: speaker-encoder cosine similarity (paper 4.2), with resemblyzer's bundled d-vector model.

resemblyzer (Apache-2.0) ships `pretrained.pt`, a 3-layer LSTM speaker encoder (GE2E, 256-d
embeddings), inside its wheel, so SECS works offline. We use its network, its weights and its
preprocessing (volume normalization to -30 dBFS, webrtcvad trimming of long silences, 1.6 s
partials at 1.3 per second, mean of L2-normalized partial embeddings), but compute the 40-band
mel spectrogram here in numpy instead of calling librosa: librosa's numba kernels take ~25 s to
compile on a fresh install (measured), and this is the exact same computation
(librosa.feature.melspectrogram defaults: centred zero-padded periodic-Hann STFT, power 2,
Slaney mel filters). Measured against librosa 0.11: relative difference 2e-7, and embeddings
equal to resemblyzer's own embed_utterance(preprocess_wav(wav)) to 1e-7.

The paper's Settings 1.0 / 2.0 differ only in which reference the generated speech is compared
with (the runner chooses the pairs); `secs_batch` embeds each distinct waveform once.

Dimension legend: n samples (16 kHz), t mel frames (100 Hz), m mel bands, e embedding (256).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from dubcli.errors import DependencyError, InputError
from dubcli.timing import SAMPLE_RATE

_INSTALL_HINT = "pip install 'dubcli[eval]' (resemblyzer, webrtcvad, librosa)"


# ---------------------------------------------------------------------------------------------
# librosa-compatible mel spectrogram (also used by dubcli.eval.mos)


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(
        f >= min_log_hz,
        min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
        mel,
    )


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(m, n_fft//2+1) librosa.filters.mel(sr=, n_fft=, n_mels=) defaults: Slaney scale + norm."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz_slaney(
        np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2.0), n_mels + 2)
    )
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def melspectrogram(wav: np.ndarray, *, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """(m, t) power mel spectrogram == librosa.feature.melspectrogram(y, sr=, n_fft=,
    hop_length=, n_mels=) with its defaults (center=True, pad_mode="constant", hann, power 2)."""
    y = np.asarray(wav, dtype=np.float32)
    y = np.pad(y, (n_fft // 2, n_fft // 2))
    n = 1 + (len(y) - n_fft) // hop
    if n < 1:
        raise ValueError(f"audio too short for a {n_fft}-point STFT")
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:n] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (t, n_fft//2+1)
    return (mel_filters(sr, n_fft, n_mels) @ power.T.astype(np.float32)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Speaker embeddings


@lru_cache(maxsize=2)
def _encoder(device: str = "cpu"):
    try:
        with warnings.catch_warnings():
            # resemblyzer imports scipy.ndimage.morphology and webrtcvad imports pkg_resources:
            # both deprecated upstream, neither actionable by a user
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise DependencyError(
            f"SECS needs resemblyzer ({exc.name} is missing): {_INSTALL_HINT}"
        ) from exc
    # resemblyzer calls torch.load on its bundled pretrained.pt; with torch >= 2.6 that is
    # weights_only=True by default, so no code in the file can run.
    return VoiceEncoder(device=device, verbose=False)


def speaker_embedding(wav: np.ndarray, *, device: str = "cpu", name: str = "audio") -> np.ndarray:
    """(e,) L2-normalized d-vector of one utterance: resemblyzer's embed_utterance(preprocess_wav).

    wav: (n,) 16 kHz mono float in [-1, 1]. Raises InputError for silence / too little speech.
    """
    import torch

    enc = _encoder(device)
    from resemblyzer import hparams
    from resemblyzer.audio import normalize_volume, trim_long_silences

    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise InputError(f"{name}: expected 1-D 16 kHz audio, got shape {x.shape}")
    if not np.isfinite(x).all() or not np.any(x):
        raise InputError(f"{name}: audio is silent or not finite; no speaker embedding")
    assert hparams.sampling_rate == SAMPLE_RATE
    x = normalize_volume(x, hparams.audio_norm_target_dBFS, increase_only=True)
    x = trim_long_silences(x)
    if len(x) < hparams.sampling_rate // 10:
        raise InputError(
            f"{name}: no speech found (voice activity detection kept {len(x)} samples)"
        )
    wav_slices, mel_slices = enc.compute_partial_slices(len(x), rate=1.3, min_coverage=0.75)
    if wav_slices[-1].stop >= len(x):
        x = np.pad(x, (0, wav_slices[-1].stop - len(x)))
    mel = melspectrogram(
        x,
        sr=hparams.sampling_rate,
        n_fft=hparams.sampling_rate * hparams.mel_window_length // 1000,
        hop=hparams.sampling_rate * hparams.mel_window_step // 1000,
        n_mels=hparams.mel_n_channels,
    ).T  # (t, m)
    mels = np.stack([mel[s] for s in mel_slices])
    with torch.no_grad():
        partial = enc(torch.from_numpy(mels).to(enc.device)).cpu().numpy()
    raw = partial.mean(0)
    return (raw / np.linalg.norm(raw)).astype(np.float32)


def speaker_similarity(wav_a: np.ndarray, wav_b: np.ndarray, *, device: str = "cpu") -> float:
    """Cosine similarity of two utterances' d-vectors (SECS; 1 = same voice)."""
    ea = speaker_embedding(wav_a, device=device, name="first audio")
    eb = speaker_embedding(wav_b, device=device, name="second audio")
    return float(np.dot(ea, eb))


def secs_batch(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, device: str = "cpu"
) -> np.ndarray:
    """(p,) SECS per (generated, reference) pair; each distinct array object is embedded once
    (a reference shared by many pairs costs one embedding)."""
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (array kept alive, embedding)

    def emb(x: np.ndarray, what: str) -> np.ndarray:
        hit = cache.get(id(x))
        if hit is None:
            hit = cache[id(x)] = (x, speaker_embedding(x, device=device, name=what))
        return hit[1]

    out = [
        float(np.dot(emb(a, f"pair {k} generated"), emb(b, f"pair {k} reference")))
        for k, (a, b) in enumerate(pairs)
    ]
    return np.asarray(out, dtype=np.float64)
