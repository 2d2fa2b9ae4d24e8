"""Ground truth for evaluation: an utterance's own audio and mouth signal, from a prepared dataset.

Dimensions: nv video frames (25 fps), s = nv * 640 samples (16 kHz), Dl lip feature width.

`prepare` keeps tokens and features, not waveforms (data/manifest.py). The audio is found again,
first match wins, always cut/padded to exactly nv * 640 samples as prepare saw it
(layouts: n = nv * 640 for video; SynthDub pads to whole 0.2 s blocks, the same length):
  1. a shard field "wav" (int16 or float), should a future prepare store it;
  2. SynthDub: re-synthesized from its spec as the manifest line records it (text, speaker,
     style, and source voice/kind/seed; rendering is deterministic). This needs the synth
     programs (espeak-ng + mbrola / festival), as prepare did;
  3. other layouts: the layout rebuilt from dataset.json (layout, source folder, seed, options)
     and its own `audio(item)` (the clip's start/end included) - the raw data must still be at
     the path prepare read;
  4. the manifest's `source` audio or video path (absolute, or relative to the dataset folder).
The mouth signal is the extractor's midline inner-lip aperture (landmarks 13 -> 14, the
`aperture_2` lip feature, the same number vision.features.mouth_aperture gives), NaN on frames
without a face.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.audio.util import fit_length
from dubcli.console import get_logger
from dubcli.data.manifest import ShardReader, Utterance
from dubcli.errors import DubcliError, InputError
from dubcli.timing import SAMPLES_PER_FRAME

log = get_logger(__name__)

_SYNTH_ID = re.compile(r"^synth-(train|valid|test)-s(\d+)-(\d{6})$")


def aperture_from_lip(lip: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(nv, Dl) lip features (LIP_NAMES order) -> (nv,) mouth aperture in cm, NaN where invalid."""
    from dubcli.vision.features import LIP_NAMES

    lip = np.asarray(lip, np.float64)
    ap = lip[:, LIP_NAMES.index("aperture_2")].copy()
    if valid is not None:
        ap[~np.asarray(valid, bool)] = np.nan
    return ap


class GroundTruth:
    """Audio, features and media of a prepared dataset's utterances (see the module doc)."""

    def __init__(self, root: str | Path, info: dict[str, Any]):
        self.root, self.info = Path(root), dict(info)
        self.reader = ShardReader(self.root)
        self._items: dict[str, Any] | None = None
        self._layout = None
        self._cache: dict[str, np.ndarray] = {}
        self.sources: dict[str, str] = {}  # utterance id -> how its audio was found

    def audio(self, utt: Utterance) -> np.ndarray:
        """(n_frames * 640,) float32 16 kHz ground-truth audio; InputError/DependencyError when
        it cannot be had (the message says what is needed)."""
        if utt.id not in self._cache:
            wav, how = self._find(utt)
            self._cache[utt.id] = fit_length(wav, utt.n_frames * SAMPLES_PER_FRAME)
            self.sources[utt.id] = how
        return self._cache[utt.id]

    def features(self, utt: Utterance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lip (nv, Dl), face (nv, Df), valid (nv,) bool) float32 from the shard."""
        lip = self.reader.get(utt, "lip").astype(np.float32)
        face = self.reader.get(utt, "face").astype(np.float32)
        valid = (
            self.reader.get(utt, "video_valid").astype(bool)
            if self.reader.has(utt, "video_valid")
            else np.ones(len(lip), bool)
        )
        if lip.shape[0] != utt.n_frames or face.shape[0] != utt.n_frames:
            raise InputError(f"{self.root / utt.shard}: {utt.id} has {lip.shape[0]} feature "
                             f"frames, the manifest says {utt.n_frames}")  # fmt: skip
        return lip, face, valid

    def tokens(self, utt: Utterance):
        """The utterance's CodecTokens as prepared (what the model was trained to produce)."""
        from dubcli.audio.codec.base import CodecTokens

        get = self.reader.get
        return CodecTokens(*(get(utt, k).astype(np.int64) for k in ("prosody", "content",
                                                                   "acoustic")),
                           get(utt, "speaker").astype(np.float32))  # fmt: skip

    def video(self, utt: Utterance) -> Path | None:
        """The utterance's video file (SynthDub: only with prepare --render), or None."""
        path = (utt.source or {}).get("video")
        if not path:
            return None
        p = Path(path)
        p = p if p.is_absolute() else self.root / p
        return p if p.is_file() else None

    # -- finding the audio ---------------------------------------------------------------------

    def _find(self, utt: Utterance) -> tuple[np.ndarray, str]:
        if self.reader.has(utt, "wav"):
            wav = self.reader.get(utt, "wav")
            scale = 32768.0 if wav.dtype == np.int16 else 1.0
            return wav.astype(np.float32) / scale, "shard"
        layout = self.info.get("layout")
        errors = []
        if layout == "synth" or _SYNTH_ID.match(utt.id):
            try:
                return self._synth(utt), "re-synthesized from the SynthDub spec"
            except DubcliError as exc:
                errors.append(exc.message)
        elif layout:
            try:
                return self._from_layout(utt), f"{layout} layout data"
            except DubcliError as exc:
                errors.append(exc.message)
        for key in ("audio", "video"):
            path = (utt.source or {}).get(key)
            if path:
                p = Path(path) if Path(path).is_absolute() else self.root / path
                if p.is_file():
                    from dubcli.audio.io import load_audio

                    return load_audio(p), f"source {key} {p}"
                errors.append(f"source {key} {p} not found")
        why = "; ".join(errors) or "the manifest names no source audio or video"
        raise InputError(f"{utt.id}: no ground-truth audio ({why})")

    def _synth(self, utt: Utterance) -> np.ndarray:
        """Re-render a SynthDub utterance from the spec its manifest line records (text,
        speaker, style, voice, kind, seed), so a corpus keeps its ground truth whatever later
        versions draw for the same id."""
        from dubcli.synth.prosody import ProsodyStyle
        from dubcli.synth.speech import UtteranceSpec, synthesize

        if _SYNTH_ID.match(utt.id) is None:
            raise InputError(f"{utt.id}: not a SynthDub id; cannot re-synthesize it")
        src = utt.source or {}
        try:
            spec = UtteranceSpec(id=utt.id, text=utt.text, voice=str(src["voice"]),
                                 speaker=utt.speaker, style=ProsodyStyle.from_dict(utt.style),
                                 seed=int(src["seed"]), kind=str(src["kind"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{utt.id}: its manifest line lacks the SynthDub spec ({exc}); "
                             "re-run dubcli prepare") from None  # fmt: skip
        return synthesize(spec).wav

    def _from_layout(self, utt: Utterance) -> np.ndarray:
        from dubcli.prepare.layouts import ItemFailed, make_layout

        if self._items is None:
            info = self.info
            opts = {k: v for k, v in (info.get("layout_options") or {}).items() if v is not None}
            self._layout = make_layout(info["layout"], info.get("source"),
                                       seed=int(info.get("seed", 0)), **opts)  # fmt: skip
            self._items = {it.id: it for it in self._layout.items()}
        item = self._items.get(utt.id)
        if item is None:
            raise InputError(f"{utt.id}: the {self.info['layout']} data at "
                             f"{self.info.get('source')} no longer lists it")  # fmt: skip
        try:
            return self._layout.audio(item)
        except ItemFailed as exc:
            raise InputError(f"{utt.id}: {exc.reason}") from None
