"""Naturalness: DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS, offline (DESIGN 2).

The paper reports UTMOS (4.2), whose weights are not available offline; DNSMOS (Reddy et al.
2022, Microsoft's DNS challenge) is the embedded substitute: its two ONNX models ship in the
`speechmos` wheel. We run them with onnxruntime exactly as speechmos.dnsmos does (9.01 s
windows hopped by 1 s, shorter clips repeated to 9.01 s, the P.835 polynomial calibration,
scores averaged over windows) but compute the P.808 model's 120-band mel input in numpy
(dubcli.eval.secs.melspectrogram, identical to librosa's) so no librosa/numba kernels have to be
compiled, and nothing is imported until the first call.

Scores are 1..5, higher is better; they are comparable between systems, not to UTMOS numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dubcli.errors import DependencyError, InputError
from dubcli.timing import SAMPLE_RATE

INPUT_SECONDS = 9.01  # the models' fixed input length
_INSTALL_HINT = "pip install 'dubcli[eval]' (speechmos, onnxruntime)"

# speechmos.dnsmos.DNSMOS.get_polyfit_val, non-personalized: raw -> calibrated P.835 scores
_P_SIG = (-0.08397278, 1.22083953, 0.0052439)
_P_BAK = (-0.13166888, 1.60915514, -0.39604546)
_P_OVR = (-0.06766283, 1.11546468, 0.04602535)


@dataclass(frozen=True)
class DnsmosScores:
    ovrl: float  # P.835 overall quality
    sig: float  # P.835 speech signal quality
    bak: float  # P.835 background noise (higher = cleaner)
    p808: float  # P.808 overall MOS


@lru_cache(maxsize=1)
def _sessions():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(f"DNSMOS needs onnxruntime: {_INSTALL_HINT}") from exc
    import importlib.util

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            f"DNSMOS needs the speechmos package (its ONNX models): {_INSTALL_HINT}"
        )
    root = os.path.join(list(spec.submodule_search_locations)[0], "dnsmos_models")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(4, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1

    def make(filename: str):
        path = os.path.join(root, filename)
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    try:
        return make("sig_bak_ovr.onnx"), make("model_v8.onnx")
    except Exception as exc:  # missing/corrupt model files in a broken install
        raise DependencyError(f"cannot load DNSMOS models from {root} ({exc})") from exc


def _p808_features(seg: np.ndarray) -> np.ndarray:
    """(1, t, 120) speechmos's audio_melspec: mel power (n_fft 321, hop 160) in dB re max,
    floored 80 dB below, mapped by (dB + 40) / 40; the last 10 ms of the window dropped."""
    from dubcli.eval.secs import melspectrogram

    mel = melspectrogram(seg[:-160], sr=SAMPLE_RATE, n_fft=321, hop=160, n_mels=120)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).T[None].astype(np.float32)


def dnsmos(wav: np.ndarray, *, name: str = "audio") -> DnsmosScores:
    """DNSMOS of one 16 kHz mono clip in [-1, 1] (any length; see the module docstring)."""
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1 or len(x) == 0:
        raise InputError(f"{name}: expected non-empty 1-D 16 kHz audio, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: audio has NaN or infinite samples")
    if np.abs(x).max() > 1.0:
        raise InputError(
            f"{name}: samples exceed [-1, 1] (peak {np.abs(x).max():.2f}); normalize first"
        )
    primary, p808 = _sessions()
    need = int(INPUT_SECONDS * SAMPLE_RATE)
    while len(x) < need:  # speechmos repeats short clips to fill the window
        x = np.concatenate([x, x])
    n_windows = int(np.floor(len(x) / SAMPLE_RATE) - INPUT_SECONDS) + 1
    scores = []
    for k in range(n_windows):
        seg = x[k * SAMPLE_RATE : k * SAMPLE_RATE + need]
        if len(seg) < need:
            continue
        sig, bak, ovr = primary.run(None, {"input_1": seg[None]})[0][0]
        p = p808.run(None, {"input_1": _p808_features(seg)})[0][0][0]
        scores.append(
            (np.polyval(_P_OVR, ovr), np.polyval(_P_SIG, sig), np.polyval(_P_BAK, bak), p)
        )
    ovrl, s, b, p = np.mean(np.asarray(scores, dtype=np.float64), axis=0)
    return DnsmosScores(ovrl=float(ovrl), sig=float(s), bak=float(b), p808=float(p))
