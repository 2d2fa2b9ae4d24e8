"""Eval figures (PNG, matplotlib's Agg backend, written atomically).

Dimensions: nv video frames, n speech tokens, nt phonemes, m mel bands, t mel frames.

- attention_png: the Synchronizer's two attention maps, lip frames -> phonemes (nv, nt) and
  speech tokens -> phonemes (n, nt), side by side as in the paper's Figure 5 (appendix D.1): a
  clean monotonic diagonal means the phoneme timing follows the lips.
- mel_png: log-mel spectrograms of the same utterance by several systems, stacked on one time
  axis with the ground truth first, as in Figure 3 (appendix D.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dubcli.timing import SAMPLE_RATE, TOKEN_RATE

N_MELS = 80
N_FFT = 1024
HOP = SAMPLE_RATE // TOKEN_RATE  # 200: one mel frame per speech token


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    from dubcli.fsutil import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def log_mel(wav: np.ndarray) -> np.ndarray:
    """(s,) 16 kHz -> (m, t) log10 mel power, floored 80 dB below its peak."""
    from dubcli.eval.secs import melspectrogram

    x = np.asarray(wav, np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    mel = melspectrogram(x, sr=SAMPLE_RATE, n_fft=N_FFT, hop=HOP, n_mels=N_MELS)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, db.max() - 80.0)


def mel_png(path: str | os.PathLike, wavs: Mapping[str, np.ndarray], *, title: str = "") -> Path:
    """One log-mel panel per system (label -> (s,) 16 kHz audio), shared time axis."""
    plt = _pyplot()
    k = max(1, len(wavs))
    fig, axes = plt.subplots(k, 1, figsize=(10, 1.9 * k + 0.6), sharex=True, squeeze=False)
    for ax, (label, wav) in zip(axes[:, 0], wavs.items(), strict=False):
        db = log_mel(wav)
        secs = db.shape[1] * HOP / SAMPLE_RATE
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, secs, 0, N_MELS))
        ax.set_ylabel(label, fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("seconds")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def attention_png(path: str | os.PathLike, attn_video: np.ndarray, attn_speech: np.ndarray | None,
                  phonemes: Sequence[str], *, title: str = "",
                  durations_frames: Sequence[int] | None = None,
                  durations_tokens: Sequence[int] | None = None) -> Path:  # fmt: skip
    """Lip->phoneme (nv, nt) and speech->phoneme (n, nt) attention maps, phonemes on y; the
    alignment the model used (MAS frame spans, their token spans) drawn over them in white."""
    plt = _pyplot()
    maps = [("video frames", np.asarray(attn_video, np.float32), durations_frames)]
    if attn_speech is not None:
        maps.append(("speech tokens", np.asarray(attn_speech, np.float32), durations_tokens))
    nt = maps[0][1].shape[1]
    fig, axes = plt.subplots(1, len(maps), figsize=(6 * len(maps), 0.12 * nt + 2.2),
                             squeeze=False)  # fmt: skip
    for ax, (xlabel, a, dur) in zip(axes[0], maps, strict=True):
        ax.imshow(a.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        if dur is not None:
            ends = np.cumsum(np.asarray(dur, np.int64))
            for i, (lo, hi) in enumerate(zip(ends - np.asarray(dur), ends, strict=True)):
                if hi > lo:
                    ax.plot([lo - 0.5, hi - 0.5], [i, i], color="white", lw=1.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("phonemes")
        if nt <= 60:
            ax.set_yticks(range(nt))
            ax.set_yticklabels(list(phonemes)[:nt], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
