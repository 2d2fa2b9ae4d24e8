"""LSE-C / LSE-D: lip-sync error with SyncNet (Chung & Zisserman 2016), as in paper 4.2.

A faithful port of the evaluation in syncnet_python (SyncNetModel.S + SyncNetInstance.evaluate),
the protocol behind the LSE numbers of Wav2Lip and every dubbing paper since:
- video: 224x224 face crops at 25 fps, BGR, 0..255, no normalization; 5-frame windows;
- audio: 13 MFCCs at 100 Hz exactly as python_speech_features.mfcc computes them on int16
  samples (re-implemented here in numpy); 20-frame windows (0.2 s = 5 video frames), the window
  for video frame v starting at MFCC frame 4 v;
- for each video frame, the distances to the audio embeddings of frames v-15..v+15 (zero
  embeddings beyond the ends, as syncnet_python pads); mean over frames -> mdist (k,);
  LSE-D = min(mdist), LSE-C = median(mdist) - min(mdist), AV offset = vshift - argmin(mdist).
  With this sign, a positive AV offset means the audio LEADS the video (dubcli.eval.sync uses
  the opposite sign, "audio lags").

Weights are never downloaded here: load a converted .safetensors (local path, hf://, or a
registry name via dubcli.hub) with `load_syncnet`. The original `syncnet_v2.model` is a pickled
state dict; `convert_syncnet_weights` turns it into a safetensors checkpoint once, reading it
with torch.load(weights_only=True), which refuses anything but tensors and containers.

Dimension legend: b batch, nv video frames (25 fps), na MFCC frames (100 Hz), c cepstra (13),
k offsets (2*vshift+1), d embedding (1024).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dubcli.console import get_logger
from dubcli.errors import CheckpointError, InputError
from dubcli.timing import SAMPLE_RATE, SAMPLES_PER_FRAME

log = get_logger(__name__)

KIND = "eval/syncnet"
VSHIFT = 15  # offsets searched either way, in video frames (syncnet_python's --vshift)
CROP = 224  # face crop size
WINDOW_FRAMES = 5  # video frames per SyncNet input
MFCC_PER_FRAME = 4  # 100 Hz MFCCs per 25 fps video frame
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME  # 20


class SyncNet(nn.Module):
    """syncnet_python's SyncNetModel.S, with the same attribute names so state dicts match."""

    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        bn2, bn3 = nn.BatchNorm2d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1),
            bn2(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=1, stride=1),
            nn.Conv2d(64, 192, kernel_size=3, stride=1, padding=1),
            bn2(192),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            bn2(384),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            bn2(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            bn2(256),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=0),
            bn2(512),
            nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim)
        )
        self.netfclip = nn.Sequential(
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim)
        )
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
            bn3(96),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            bn3(256),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            bn3(256),
            nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            bn3(256),
            nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            bn3(256),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0),
            bn3(512),
            nn.ReLU(inplace=True),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 1, 13, 20) MFCC windows -> (b, d)."""
        assert x.shape[1:] == (1, 13, MFCC_WINDOW), f"audio input {tuple(x.shape)}"
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 5, 224, 224) BGR 0..255 face crops -> (b, d)."""
        assert x.shape[1:] == (3, WINDOW_FRAMES, CROP, CROP), f"video input {tuple(x.shape)}"
        return self.netfclip(self.netcnnlip(x).flatten(1))


@dataclass(frozen=True, eq=False)
class SyncNetScores:
    lse_d: float  # min over offsets of the mean embedding distance (lower = better sync)
    lse_c: float  # median - min of the mean distances (higher = more confident sync)
    offset: int  # syncnet_python's AV offset = vshift - argmin; > 0: audio leads video
    mean_dists: np.ndarray  # (k,) mean distance per offset; index j: audio frame v + j - vshift
    n_frames: int  # video windows evaluated


# ---------------------------------------------------------------------------------------------
# MFCC: python_speech_features.mfcc(signal_int16, 16000) with its defaults


def _hz2mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel2hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def _psf_filterbank(nfilt: int = 26, nfft: int = 512, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(nfilt, nfft//2+1) triangular filters on floor-rounded FFT bins, as python_speech_features."""
    mel = np.linspace(_hz2mel(0.0), _hz2mel(sr / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel2hz(mel) / sr)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(lo), int(mid)):
            fb[j, i] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            fb[j, i] = (hi - i) / (hi - mid)
    return fb


def mfcc(wav: np.ndarray) -> np.ndarray:
    """(na, 13) MFCCs of 16 kHz float audio in [-1, 1], matching SyncNet's training features.

    syncnet_python feeds scipy's int16 samples to python_speech_features.mfcc: 25 ms rectangular
    windows every 10 ms (the last zero-padded), pre-emphasis 0.97, 512-point power spectrum / 512,
    26 mel filters, log, orthonormal DCT-II, lifter 22, c0 replaced by the log frame energy. The
    int16 scale matters (it shifts c0), so float audio is scaled by 32768 first.
    """
    from scipy.fft import dct

    x = np.asarray(wav, dtype=np.float64) * 32768.0
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"mfcc expects non-empty 1-D audio, got shape {x.shape}")
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    flen, step, nfft = 400, 160, 512
    n = 1 if len(x) <= flen else 1 + int(np.ceil((len(x) - flen) / step))
    x = np.concatenate([x, np.zeros((n - 1) * step + flen - len(x))])
    frames = x[np.arange(flen)[None, :] + step * np.arange(n)[:, None]]
    pspec = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    eps = np.finfo(float).eps
    energy = pspec.sum(1)
    energy = np.where(energy == 0, eps, energy)
    feat = pspec @ _psf_filterbank(nfft=nfft).T
    feat = np.where(feat == 0, eps, feat)
    cep = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :13]
    cep *= 1 + (22 / 2.0) * np.sin(np.pi * np.arange(13) / 22)
    cep[:, 0] = np.log(energy)
    return cep


# ---------------------------------------------------------------------------------------------
# Evaluation


def offset_distances(
    video: torch.Tensor, audio: torch.Tensor, vshift: int = VSHIFT
) -> torch.Tensor:
    """(nv, k) distance of video embedding v to audio embedding v + j - vshift (calc_pdist).

    Audio embeddings beyond either end are zero vectors, exactly as syncnet_python pads them,
    so edge frames keep all k entries (this is part of the published protocol).
    """
    n = video.shape[0]
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    idx = torch.arange(n)[:, None] + torch.arange(2 * vshift + 1)[None, :]  # (nv, k)
    # pairwise_distance adds eps=1e-6 to the difference before the norm, as the original does
    rows = video[:, None, :].expand(-1, idx.shape[1], -1)
    return torch.nn.functional.pairwise_distance(rows, padded[idx])


def scores_from_distances(dists: torch.Tensor | np.ndarray, vshift: int = VSHIFT) -> SyncNetScores:
    """LSE-D, LSE-C and the AV offset from (nv, k) per-frame offset distances."""
    d = torch.as_tensor(dists, dtype=torch.float32)
    mdist = d.mean(0)
    minval, minidx = torch.min(mdist, 0)
    return SyncNetScores(
        lse_d=float(minval),
        lse_c=float(torch.median(mdist) - minval),
        offset=int(vshift - int(minidx)),
        mean_dists=mdist.numpy(),
        n_frames=int(d.shape[0]),
    )


@torch.no_grad()
def syncnet_scores(
    model: nn.Module,
    frames: np.ndarray,
    wav: np.ndarray,
    *,
    vshift: int = VSHIFT,
    rgb: bool = True,
    batch_size: int = 20,
    device: str | torch.device = "cpu",
    name: str = "utterance",
) -> SyncNetScores:
    """SyncNetInstance.evaluate on arrays: frames (nv, 224, 224, 3) uint8 face crops (RGB unless
    rgb=False; SyncNet was trained on BGR, so RGB is flipped), wav (n,) 16 kHz in [-1, 1].
    `model` needs forward_lip / forward_aud (a SyncNet)."""
    frames = np.asarray(frames)
    wav = np.asarray(wav, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[3] != 3 or wav.ndim != 1:
        raise InputError(
            f"{name}: expected frames (nv, H, W, 3) and 1-D audio, got {frames.shape} and "
            f"{wav.shape}"
        )
    n = min(len(frames), len(wav) // SAMPLES_PER_FRAME)
    last = n - WINDOW_FRAMES  # windows start at 0..last-1 (syncnet_python's `lastframe`)
    if last < 1:
        raise InputError(
            f"{name}: too short for SyncNet: {n} frames with audio (need more than {WINDOW_FRAMES})"
        )
    if frames.shape[1:3] != (CROP, CROP):
        raise InputError(f"{name}: SyncNet needs {CROP}x{CROP} face crops, got {frames.shape}")
    if rgb:
        frames = frames[..., ::-1]
    # (1, 3, nv, H, W) float 0..255, as SyncNetInstance builds it from cv2 images
    video = torch.from_numpy(np.ascontiguousarray(frames[:n]).astype(np.float32))
    video = video.permute(3, 0, 1, 2)[None]
    cep = torch.from_numpy(mfcc(wav).T.astype(np.float32))[None, None]  # (1, 1, 13, na)
    model.eval()
    im_feat, cc_feat = [], []
    for i in range(0, last, batch_size):
        starts = range(i, min(last, i + batch_size))
        im = torch.cat([video[:, :, v : v + WINDOW_FRAMES] for v in starts])
        a0 = [v * MFCC_PER_FRAME for v in starts]  # MFCC window of video frame v
        cc = torch.cat([cep[..., a : a + MFCC_WINDOW] for a in a0])
        im_feat.append(model.forward_lip(im.to(device)).float().cpu())
        cc_feat.append(model.forward_aud(cc.to(device)).float().cpu())
    dists = offset_distances(torch.cat(im_feat), torch.cat(cc_feat), vshift)
    return scores_from_distances(dists, vshift)


def syncnet_face_crops(
    frames: np.ndarray, boxes: np.ndarray, *, crop_scale: float = 0.4, size: int = CROP
) -> np.ndarray:
    """(nv, size, size, 3) face crops as syncnet_python's run_pipeline.crop_video makes them.

    frames: (nv, H, W, 3) uint8; boxes: (nv, 4) face boxes x1, y1, x2, y2 in pixels (e.g. the
    landmark extent). Box centre and half-size are median-filtered over 13 frames, the frame is
    padded with grey 110, and the crop spans from 1 half-size above the centre to (1 + 2 * scale)
    below (it includes the chin), then is resized with bilinear interpolation.
    """
    import cv2
    from scipy.signal import medfilt

    frames = np.asarray(frames)
    boxes = np.asarray(boxes, dtype=np.float64)
    if frames.ndim != 4 or boxes.shape != (len(frames), 4):
        raise InputError(f"expected frames (nv, H, W, 3) and boxes (nv, 4), got {boxes.shape}")
    s = medfilt(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2, 13)
    y = medfilt((boxes[:, 1] + boxes[:, 3]) / 2, 13)
    x = medfilt((boxes[:, 0] + boxes[:, 2]) / 2, 13)
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    cs = crop_scale
    for i, frame in enumerate(frames):
        bs = s[i]
        bsi = int(bs * (1 + 2 * cs))
        pad = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), constant_values=110)
        my, mx = y[i] + bsi, x[i] + bsi
        rows = slice(int(my - bs), int(my + bs * (1 + 2 * cs)))
        cols = slice(int(mx - bs * (1 + cs)), int(mx + bs * (1 + cs)))
        face = pad[rows, cols]
        out[i] = cv2.resize(face, (size, size))
    return out


# ---------------------------------------------------------------------------------------------
# Weights


def load_syncnet(spec: str | os.PathLike, *, offline: bool = False, device: str = "cpu") -> SyncNet:
    """A SyncNet with weights from a .safetensors path, hf://org/repo/file or a registry name.

    Accepts dubcli checkpoints (kind "eval/syncnet", from `convert_syncnet_weights`) and plain
    safetensors state dicts with syncnet_python's key names.
    """
    from safetensors import safe_open

    from dubcli.checkpoint import METADATA_KEY, load_checkpoint
    from dubcli.hub import resolve_checkpoint

    path = resolve_checkpoint(str(spec), offline=offline).path
    try:
        with safe_open(str(path), framework="pt") as f:
            has_meta = METADATA_KEY in (f.metadata() or {})
            tensors = None if has_meta else {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from exc
    if has_meta:
        tensors = load_checkpoint(path, expect_kind=KIND).tensors
    model = SyncNet()
    _load_state(model, tensors, path)
    return model.to(device).eval()


def _strip_prefixes(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "__S__."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def _load_state(model: SyncNet, state: dict, path: Path | str) -> None:
    state = _strip_prefixes(state)
    own = model.state_dict()
    # Checkpoints from PyTorch < 0.4.1 lack BatchNorm's num_batches_tracked (unused in eval).
    need = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(need - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not a SyncNet state dict (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, {len(missing)} / {len(unexpected)} in all)"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{path}: {k} has shape {tuple(v.shape)}, SyncNet expects {tuple(own[k].shape)}"
            )
    model.load_state_dict({**own, **state})


def convert_syncnet_weights(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """One-off: syncnet_python's syncnet_v2.model (a torch.save'd state dict) -> safetensors.

    The pickle is read with torch.load(weights_only=True): PyTorch's restricted unpickler that
    only rebuilds tensors and plain containers, so a tampered file cannot run code. The result
    is a dubcli checkpoint of kind "eval/syncnet" that `load_syncnet` reads.
    """
    from dubcli.checkpoint import save_checkpoint

    src = Path(src)
    if not src.is_file():
        raise InputError(f"{src}: SyncNet weights file not found")
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError for corrupt archives, ...
        raise CheckpointError(
            f"{src}: cannot read as a weights-only PyTorch state dict ({exc})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{src}: does not hold a state dict of tensors")
    model = SyncNet()
    _load_state(model, state, src)  # validates names and shapes before anything is written
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    meta = {"kind": KIND, "source": src.name, "protocol": "syncnet_python SyncNetInstance"}
    return save_checkpoint(dst, tensors, meta)
