"""Per-utterance metrics of one system's audio (paper 4.2), in the paper's column order.

Dimensions: nv video frames (25 fps), s samples (16 kHz), e speaker embedding width.

Metric groups (`--metrics`, all by default) and the keys they fill:
  lse       lse_c, lse_d        SyncNet (syncnet.py) on face crops of the utterance's video, only
                                with SyncNet weights (--syncnet) and a video (SynthDub: --render)
  sync      av_offset, av_abs_offset, av_conf   landmark sync (engines/sync.py): the shard's mouth
                                aperture vs the audio; offset in frames, > 0 = the audio lags
                                the lips; |offset| too, since a mean of signed offsets can
                                hide large ones of both signs
  boundary  boundary_ms         phone-boundary error vs ground truth: both audios force-aligned
                                to the utterance's phonemes (align/forced.py). The ground truth
                                must pass the aligner's mismatch check; a hypothesis is aligned
                                without it, so a poor dub still gets boundaries (scored, not
                                skipped); an alignment that fails is listed as an error
  wer       wer (+ hyp text)    pocketsphinx: the GRID grammar when every text is a GRID
                                sentence, else a uniform unigram LM over the evaluated texts'
                                vocabulary; wer_grid (+ hyp_grid): GRID sentences only, always
                                with the GRID grammar (the grammar-constrained protocol)
  secs      secs                resemblyzer cosine vs the Setting's reference audio
  mos       dnsmos_ovrl/sig/bak/p808   DNSMOS (UTMOS's offline stand-in, mos.py)
A metric that cannot be computed for an item leaves its keys out and records why in `errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.console import get_logger
from dubcli.data.manifest import Utterance
from dubcli.errors import DependencyError, DubcliError, InputError

log = get_logger(__name__)

METRICS = ("lse", "sync", "boundary", "wer", "secs", "mos")
KEYS = {
    "lse": ("lse_c", "lse_d"),
    "sync": ("av_offset", "av_abs_offset", "av_conf"),
    "boundary": ("boundary_ms",),
    "wer": ("wer", "wer_grid"),
    "secs": ("secs",),
    "mos": ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"),
}


@dataclass
class Scores:
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # metric group -> why it is missing
    hyp: str | None = None  # recognized text (wer)
    hyp_grid: str | None = None  # recognized with the GRID grammar (GRID sentences only)


def parse_metrics(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """'sync,wer' | ['sync', 'wer'] | None (all) -> metric groups in METRICS order."""
    if spec is None:
        return METRICS
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {s.strip().lower() for s in items if s.strip()}
    bad = sorted(names - set(METRICS))
    if bad or not names:
        raise InputError(f"--metrics: unknown {bad or 'empty list'}; choose from "
                         f"{', '.join(METRICS)}")  # fmt: skip
    return tuple(m for m in METRICS if m in names)


def is_grid_sentence(text: str) -> bool:
    from dubcli.eval.wer import GRID_SLOTS, default_normalize

    words = default_normalize(text)
    slots = list(GRID_SLOTS.values())
    return len(words) == len(slots) and all(w in s for w, s in zip(words, slots, strict=True))


class Scorer:
    """Holds the recognizer, SyncNet and caches shared by all systems of one eval run."""

    def __init__(self, metrics: Sequence[str], *, texts: Sequence[str], syncnet=None,
                 offline: bool = False, device: str = "cpu"):  # fmt: skip
        # Without SyncNet weights LSE is not computed at all (shown as n/a), not failed per item.
        self.metrics = tuple(m for m in metrics if m != "lse" or syncnet is not None)
        self.device = device
        self.texts = list(texts)
        self.grid = bool(self.texts) and all(is_grid_sentence(t) for t in self.texts)
        self._recognizer = None
        self._grid_recognizer = None
        self.syncnet = None
        self.syncnet_source = None
        if "lse" in self.metrics:
            from dubcli.eval.syncnet import load_syncnet

            self.syncnet = load_syncnet(syncnet, offline=offline, device=device)
            self.syncnet_source = str(syncnet)
        self._gt_align: dict[str, Any] = {}
        self._ref_emb: dict[str, np.ndarray | str] = {}
        self._crops: dict[str, np.ndarray | str] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metrics),
            "recognizer": "pocketsphinx, GRID grammar" if self.grid
            else "pocketsphinx, unigram LM over the evaluated texts' vocabulary",
            "syncnet": self.syncnet_source or "none: LSE-C / LSE-D n/a (pass --syncnet)",
            "mos": "DNSMOS P.835 + P.808 (speechmos ONNX)",
            "secs": "resemblyzer d-vector cosine",
        }  # fmt: skip

    @property
    def recognizer(self):
        if self._recognizer is None:
            from dubcli.eval.wer import PocketsphinxRecognizer, default_normalize

            if self.grid:
                self._recognizer = PocketsphinxRecognizer(grammar="grid")
            else:
                vocab = {w for t in self.texts for w in default_normalize(t)}
                self._recognizer = PocketsphinxRecognizer(vocabulary=sorted(vocab))
        return self._recognizer

    @property
    def grid_recognizer(self):
        """The GRID grammar for the GRID sentences of a mixed split (wer_grid)."""
        if self._grid_recognizer is None:
            from dubcli.eval.wer import PocketsphinxRecognizer

            self._grid_recognizer = PocketsphinxRecognizer(grammar="grid")
        return self._grid_recognizer

    def score(self, utt: Utterance, wav: np.ndarray, *, gt_wav: np.ndarray, ref_id: str,
              ref_wav: np.ndarray, aperture: np.ndarray, video: Path | None,
              is_gt: bool = False) -> Scores:  # fmt: skip
        """All selected metrics of `wav` (s,) for utterance `utt` (see the module doc)."""
        s = Scores()
        wav = np.asarray(wav, np.float32)
        for group in self.metrics:
            try:
                if group == "lse":
                    self._lse(s, utt, wav, video)
                elif group == "sync":
                    self._sync(s, utt, wav, aperture)
                elif group == "boundary":
                    self._boundary(s, utt, wav, gt_wav, is_gt)
                elif group == "wer":
                    s.hyp = self.recognizer.transcribe(_peak_safe(wav))
                    from dubcli.eval.wer import corpus_wer

                    s.values["wer"] = corpus_wer([utt.text], [s.hyp]).wer
                    if is_grid_sentence(utt.text):  # the grammar-constrained protocol too
                        # an all-GRID split's recognizer is the grammar already: reuse its hyp
                        s.hyp_grid = (
                            s.hyp if self.grid else self.grid_recognizer.transcribe(_peak_safe(wav))
                        )
                        s.values["wer_grid"] = corpus_wer([utt.text], [s.hyp_grid]).wer
                elif group == "secs":
                    self._secs(s, wav, ref_id, ref_wav)
                elif group == "mos":
                    from dubcli.eval.mos import dnsmos

                    m = dnsmos(_peak_safe(wav), name=utt.id)
                    s.values.update(dnsmos_ovrl=m.ovrl, dnsmos_sig=m.sig, dnsmos_bak=m.bak,
                                    dnsmos_p808=m.p808)  # fmt: skip
            except DependencyError:  # a missing package: no item could be scored, stop the run
                raise
            except (DubcliError, ValueError) as exc:
                s.errors[group] = getattr(exc, "message", None) or str(exc)
        return s

    # -- groups --------------------------------------------------------------------------------

    def _lse(self, s: Scores, utt: Utterance, wav: np.ndarray, video: Path | None) -> None:
        if self.syncnet is None:
            raise InputError("no SyncNet weights (pass --syncnet PATH|hf://...)")
        crops = self._face_crops(utt, video)
        from dubcli.eval.syncnet import syncnet_scores

        r = syncnet_scores(self.syncnet, crops, _peak_safe(wav), device=self.device, name=utt.id)
        s.values.update(lse_c=r.lse_c, lse_d=r.lse_d)

    def _face_crops(self, utt: Utterance, video: Path | None) -> np.ndarray:
        got = self._crops.get(utt.id)
        if got is None:
            try:
                got = _syncnet_crops(utt, video)
            except DubcliError as exc:
                got = exc.message
            self._crops[utt.id] = got
        if isinstance(got, str):
            raise InputError(got)
        return got

    def _sync(self, s: Scores, utt: Utterance, wav: np.ndarray, aperture: np.ndarray) -> None:
        from dubcli.engines.sync import landmark_sync

        r = landmark_sync(aperture, wav, name=utt.id)
        offset = float(r.offset_frames)
        s.values.update(av_offset=offset, av_abs_offset=abs(offset), av_conf=float(r.confidence))

    def _boundary(self, s, utt, wav, gt_wav, is_gt) -> None:
        from dubcli.align.forced import force_align
        from dubcli.eval.sync import boundary_error_ms
        from dubcli.text.phonemes import PhonemeSequence

        seq = PhonemeSequence(tuple(utt.phonemes))
        if utt.id not in self._gt_align:
            self._gt_align[utt.id] = force_align(gt_wav, seq, name=f"{utt.id} (ground truth)")
        ref = self._gt_align[utt.id]
        if not ref.ok:
            raise InputError(f"ground truth does not align: {ref.reason}")
        hyp = ref if is_gt else force_align(wav, seq, name=utt.id, max_mismatch=None)
        if not hyp.ok:
            raise InputError(f"does not align to its phonemes: {hyp.reason}")
        s.values["boundary_ms"] = boundary_error_ms(ref, hyp)

    def _secs(self, s: Scores, wav: np.ndarray, ref_id: str, ref_wav: np.ndarray) -> None:
        from dubcli.eval.secs import speaker_embedding

        ref = self._ref_emb.get(ref_id)
        if ref is None:
            try:
                ref = speaker_embedding(ref_wav, name=f"reference {ref_id}")
            except DubcliError as exc:
                ref = exc.message
            self._ref_emb[ref_id] = ref
        if isinstance(ref, str):
            raise InputError(ref)
        emb = speaker_embedding(wav, name="generated audio")
        s.values["secs"] = float(np.dot(emb, ref))


def _peak_safe(wav: np.ndarray) -> np.ndarray:
    """Scale down (never clip) audio whose peak exceeds full scale: DNSMOS and the recognizer
    expect [-1, 1]."""
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    return wav if peak <= 1.0 else (wav * (0.99 / peak)).astype(np.float32)


def _syncnet_crops(utt: Utterance, video: Path | None) -> np.ndarray:
    """(nv, 224, 224, 3) face crops of the utterance's video, as syncnet_python makes them."""
    if video is None:
        raise InputError("no video for this utterance (SynthDub: prepare with --render)")
    from dubcli.eval.syncnet import syncnet_face_crops
    from dubcli.media import read_frames
    from dubcli.vision.landmarks import track_faces

    frames = read_frames(video, fps=25)[: utt.n_frames]
    track = track_faces(iter(frames), source=str(video))
    pts = track.points[..., :2]
    ok = np.isfinite(pts).all(axis=(1, 2))
    if ok.sum() < 6:
        raise InputError(f"{video}: a face was found in only {int(ok.sum())} frames")
    boxes = np.full((len(frames), 4), np.nan)
    boxes[ok] = np.concatenate([np.nanmin(pts[ok], axis=1), np.nanmax(pts[ok], axis=1)], axis=1)
    idx = np.arange(len(frames))
    for j in range(4):  # frames without a face: the nearest detected box (interpolated)
        boxes[:, j] = np.interp(idx, idx[ok], boxes[ok, j])
    return syncnet_face_crops(frames, boxes)
