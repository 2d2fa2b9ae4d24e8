"""Inference with a trained DiFlowDubber: reference voice -> prompt, (text, lips, face) -> speech.

Dimensions: nt phonemes, nv video frames (25 fps), n speech tokens (80/s, n = tokens_for_frames
(nv) for a dub), np prompt tokens, D speaker width, Dl / Df lip / face widths, s samples (16 kHz).

    dubber = Dubber.load("model.safetensors", device="auto")   # name | path | hf:// | run
    prompt = dubber.reference(voice_wav)                         # codec tokens of the voice
    out = dubber.dub(phonemes, lip, face, prompt, nfe=8, seed=0) # out.wav: exactly nv/25 s

Choices made here (paper section in brackets):
- Features go to the model exactly as training saw them: prepare stores the extractor's lip/face
  geometry (vision/features.py, canonical cm, order 1) as float16 and the dataset feeds them raw,
  with no normalization statistics; the checkpoint carries the features version, which
  dubcli.model.loading checks. So dub() only casts to float32 and checks shapes and NaNs.
- Phonemes get a <sil> at both ends when they lack one: every prepared dataset spells them so
  (prepare/layouts "phoneme_edges": "sil"), while the g2p frontend does not.
- The reference prompt [3.3, B.2.1 "Contextual Modeling"]: dubcli/reference.py.
- Length: the video fixes the token count [3.4]; the codec gives n * 200 samples, and the waveform
  is padded/cropped to nv * 640 (they differ only when nv is not a multiple of 5).
- Text-only timing (`tts`, a cue with no face): a stage-1 checkpoint uses its duration predictor
  (DiFlowTTS.generate). A stage-2 checkpoint's duration path was replaced by the Synchronizer
  (3.4.3), but CCTA keeps the stage-1 duration predictor, frozen: its durations, scaled to the
  wanted length, drive a synthetic talking face (synth/face_motion.py, SynthDub's face
  generator) whose lip/face features go through the normal dub path. Zero/still features (the
  alternative) give the Synchronizer nothing to align to, so the timing would be arbitrary; the
  synthetic face makes it follow the predicted durations with inputs like the training data's.
- Decoding generated tokens (GENERATED_DECODE): the DFPA samples each token's acoustic codes on
  their own; a sample is a plausible value, not the one that goes with its neighbours.
  * The cepstral residual (what the codec's phone-context table leaves of the envelope) is
    shrunk toward that table, to half scale. Measured on 12 unseen-voice GRID test sentences
    with a stage-1 model (NFE 8): WER GRID 40% at scale 1, 25% at 0.5, 32% at 0 (the table
    alone loses real detail).
  * The energy track (c0) goes through a running median of 11 tokens (137 ms): sampled token
    by token it flickers, which the recognizer hears as noise, while a median keeps the steps
    at phone boundaries. Chosen on a selection set, 36 GRID sentences of unseen SynthDub voices
    (seed 13, not the test split), default model, NFE 8, temperature 1: WER GRID 48.1% without,
    40.3 / 34.7 / 30.6 / 26.9 / 28.7% with a median of 5 / 7 / 9 / 11 / 13 tokens; a running
    mean of 9: 31.9%; smoothing aperiodicity (mean of 5) or pitch (voicing majority + median
    of 5) as well did not help (32.9%; 47.6% on the test sentences). At temperature 0.5 the
    median helps as much (42.1% -> 29.6%), so the default temperature stays 1. On the test
    split's 28 GRID sentences: 45.2% -> 29.2%.
  Pitch and aperiodicity are decoded as generated; the codec's own resynthesis uses neither.
- Content tokens of a phonetic codec (world-2: the phone, the stressed phone) are a function of
  the phonemes and their timing, so they are made from the phonemes and the model's own
  durations (stage 2: the Synchronizer's MAS spans on the lips; stage 1: the duration
  predictor) - DiFlow-TTS's "deterministic phoneme-content mapper" - instead of the content
  head's per-token argmax, which can put stray phones inside a span. Measured with the stage-2
  model at step 100 on 12 unseen-voice GRID sentences: content-token accuracy against the
  ground truth 44% (head) vs 66% (timing), WER GRID 97% vs 67%. The head still trains the
  content latent the DFPA is conditioned on; `content_from_timing = False` restores it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.audio.codec.base import GeneratedDecode
from dubcli.audio.util import fit_length
from dubcli.config import DEFAULT_TEMPERATURE
from dubcli.console import get_logger
from dubcli.errors import InputError
from dubcli.inference_types import DubOutput, DubRequest, Oracle, phoneme_symbols
from dubcli.reference import PROMPT_S, Prompt, cleanest_window, encode_reference
from dubcli.text.phonemes import encode
from dubcli.timing import (
    HOP,
    SAMPLES_PER_FRAME,
    TOKEN_RATE,
    tokens_for_frames,
)

log = get_logger(__name__)

__all__ = ["PROMPT_S", "Dubber", "DubOutput", "DubRequest", "Oracle", "Prompt", "cleanest_window",
           "phoneme_symbols"]  # fmt: skip

# decode of generated tokens: envelope detail shrunk, energy track median-smoothed (module doc)
GENERATED_DECODE = GeneratedDecode(residual_scale=0.5, energy_median=11)


def resolve_device(spec: str):
    """auto | cpu | cuda | cuda:N -> torch.device; cuda without CUDA is a DependencyError."""
    from dubcli.device import resolve_device as resolve

    return resolve(spec)


class Dubber:
    """A loaded inference checkpoint: model (DiFlowDubber or DiFlowTTS), codec and metadata."""

    def __init__(self, model, codec, metadata: dict[str, Any], *, device, source: str = "",
                 path: Path | None = None, sha256: str | None = None):  # fmt: skip
        self.model, self.codec, self.metadata = model, codec, metadata
        self.device, self.source, self.path, self._sha256 = device, source, path, sha256
        self.cfg = model.cfg
        model.drop_training_parts()  # load_model has done so too
        self._face = None  # FaceMotion for text-only timing, built on first use
        self.generated_decode = GENERATED_DECODE  # how generated tokens decode (module doc)
        self.content_from_timing = True  # content tokens from phonemes + timing (module doc)

    @classmethod
    def load(
        cls, checkpoint_spec: str | os.PathLike | None, *, offline: bool = False,
        device: str = "auto",
    ) -> Dubber:  # fmt: skip
        """NAME | PATH | hf://org/repo[@rev]/file | a training run folder or training checkpoint
        (None: the registry default) -> Dubber (dubcli.model.loading.load_model)."""
        from dubcli.model.loading import load_model

        loaded = load_model(checkpoint_spec, resolve_device(device), offline=offline)
        log.debug("loaded %s (%s, stage %s) on %s", loaded.path, loaded.model.cfg.name,
                  loaded.metadata.get("stage"), loaded.device)  # fmt: skip
        return cls(
            loaded.model,
            loaded.codec,
            loaded.metadata,
            device=loaded.device,
            source=loaded.source,
            path=loaded.path,
            sha256=loaded.sha256,
        )

    # -- facts ---------------------------------------------------------------------------------

    @property
    def stage(self) -> str:
        """ "dub" (DiFlowDubber: lips and face) or "tts" (DiFlowTTS: text only)."""
        return str(self.metadata.get("stage", "dub"))

    @property
    def n_params(self) -> int:
        from dubcli.model.dubber import n_params

        return n_params(self.model)

    @property
    def sha256(self) -> str:
        if self._sha256 is None and self.path is not None:
            from dubcli.hub import sha256_file

            self._sha256 = sha256_file(self.path)
        return self._sha256 or ""

    def describe(self) -> dict[str, Any]:
        """What a report needs to say which model produced its numbers."""
        from dubcli.device import device_name

        return {
            "checkpoint": self.source or (str(self.path) if self.path else None),
            "sha256": self.sha256 or None,
            "stage": self.stage,
            "config": self.cfg.name,
            "step": self.metadata.get("step"),
            "params": self.n_params,
            "device": device_name(self.device),
            "codec": f"{self.codec.name} ({self.codec.version}, {self.codec.vocab} codes)",
        }

    # -- reference -----------------------------------------------------------------------------

    def reference(self, wav: np.ndarray, *, prompt_s: float = PROMPT_S, name: str = "reference"):
        """(s,) 16 kHz mono reference voice -> Prompt (see the module doc for the window)."""
        return encode_reference(self.codec, wav, prompt_s=prompt_s, name=name)

    # -- generation ----------------------------------------------------------------------------

    def dub(self, phonemes, lip: np.ndarray, face: np.ndarray, prompt: Prompt, *, nfe: int = 8,
            temperature: float = DEFAULT_TEMPERATURE, seed: int | None = 0,
            oracle: Oracle | None = None) -> DubOutput:  # fmt: skip
        """phonemes (nt,), lip (nv, Dl), face (nv, Df), prompt -> speech of exactly nv / 25 s.
        `oracle` puts known durations / content tokens in place of the model's (evaluation)."""
        symbols = phoneme_symbols(phonemes)
        lip, face = (
            self._video(lip, "lip", self.cfg.lip_dim),
            self._video(face, "face", self.cfg.face_dim),
        )
        nv = lip.shape[0]
        if face.shape[0] != nv:
            raise InputError(f"lip features have {nv} frames but face features {face.shape[0]}")
        if self.stage != "dub":  # a stage-1 checkpoint: text timing, the video's length
            out = self.tts(symbols, prompt, tokens_for_frames(nv), nfe=nfe,
                           temperature=temperature, seed=seed)  # fmt: skip
            return dataclasses.replace(out, wav=fit_length(out.wav, nv * SAMPLES_PER_FRAME))
        return self._dub(symbols, lip, face, prompt, nfe, temperature, seed, text_only=False,
                         oracle=oracle)  # fmt: skip

    def tts(self, phonemes, prompt: Prompt, n_tokens: int | None = None, *, nfe: int = 8,
            temperature: float = DEFAULT_TEMPERATURE, seed: int | None = 0) -> DubOutput:  # fmt: skip
        """Text-only timing (no face): n_tokens (None: the predicted length) -> n_tokens * 200
        samples. See the module doc for how each stage times the text."""
        symbols = phoneme_symbols(phonemes)
        if n_tokens is not None and int(n_tokens) < 1:
            raise InputError(f"tts: n_tokens must be >= 1, got {n_tokens}")
        if self.stage == "dub":
            return self._tts_dub(symbols, prompt, n_tokens, nfe, temperature, seed)
        import torch

        from dubcli.timing import Timer

        ph = torch.tensor(encode(symbols), dtype=torch.long)
        with Timer(self._sync()) as t:
            g = self.model.generate(ph, *self._prompt(prompt), nfe=nfe, temperature=temperature,
                                    seed=seed, n_tokens=n_tokens)  # fmt: skip
        content = self._timed_content(symbols, _np(g.durations[0]), int(g.lengths[0]))
        wav, tokens, dt = self._decode(g, prompt, content)
        return DubOutput(wav, tokens, symbols, _np(g.durations[0]).astype(np.int64), None, None,
                         None, t.seconds, dt, text_only=True)  # fmt: skip

    # -- helpers -------------------------------------------------------------------------------

    def dub_many(self, requests: Sequence[DubRequest], *, nfe: int = 8,
                 temperature: float = DEFAULT_TEMPERATURE) -> list[DubOutput]:  # fmt: skip
        """Many cues at once: what `dub` (a face) or `tts` with the window's length (no face)
        gives each request alone, with the model's passes batched (dubcli/generation.py: each
        item keeps its own random numbers, so its output does not depend on the batch)."""
        reqs = list(requests)
        if self.stage != "dub":  # stage 1: text timing per cue (DiFlowTTS batches no video)
            return [self._one(r, nfe, temperature) for r in reqs]
        from dubcli.generation import plan_batches

        staged = [self._staged(r) for r in reqs]
        outs: list[DubOutput | None] = [None] * len(reqs)
        for batch in plan_batches([s.lip.shape[0] for s in staged]):
            done = self._generate([staged[i] for i in batch], nfe, temperature)
            for i, out in zip(batch, done, strict=True):
                outs[i] = out
        return outs  # type: ignore[return-value]

    # -- helpers -------------------------------------------------------------------------------

    def _one(self, r: DubRequest, nfe: int, temperature: float) -> DubOutput:
        if r.lip is None or r.face is None:
            return self.tts(r.phonemes, r.prompt, r.n_tokens, nfe=nfe, temperature=temperature,
                            seed=r.seed)  # fmt: skip
        return self.dub(r.phonemes, r.lip, r.face, r.prompt, nfe=nfe, temperature=temperature,
                        seed=r.seed)  # fmt: skip

    def _staged(self, r: DubRequest, oracle: Oracle | None = None) -> _Staged:
        """A request checked and made model-ready (no face: a synthetic one, module doc)."""
        symbols = phoneme_symbols(r.phonemes)
        self._prompt(r.prompt)
        if r.lip is None or r.face is None:
            if r.n_tokens is not None and int(r.n_tokens) < 1:
                raise InputError(f"tts: n_tokens must be >= 1, got {r.n_tokens}")
            lip, face, n = self._synthetic_face(symbols, r.n_tokens, r.seed)
            return _Staged(symbols, lip, face, r.prompt, r.seed, None, n)
        lip = self._video(r.lip, "lip", self.cfg.lip_dim)
        face = self._video(r.face, "face", self.cfg.face_dim)
        nv = lip.shape[0]
        if face.shape[0] != nv:
            raise InputError(f"lip features have {nv} frames but face features {face.shape[0]}")
        dur = (oracle or Oracle()).frame_durations(len(symbols), nv)
        return _Staged(symbols, lip, face, r.prompt, r.seed, dur, None)

    def _generate(self, staged: Sequence[_Staged], nfe: int, temperature: float,
                  oracle: Oracle | None = None) -> list[DubOutput]:  # fmt: skip
        from dubcli.generation import DubItem, generate_dub
        from dubcli.timing import Timer

        items = []
        for s in staged:
            p, a, spk = self._prompt(s.prompt)
            items.append(DubItem(torch_long(encode(s.symbols)), s.lip, s.face, p.numpy(),
                                 a.numpy(), spk.numpy(), s.seed, s.durations_frames))  # fmt: skip
        with Timer(self._sync()) as t:
            gens = generate_dub(self.model, items, nfe=nfe, temperature=temperature)
        per_item = t.seconds * 1.0 / max(1, sum(it.nv for it in items))

        def decode(i: int):
            s, g = staged[i], gens[i]
            content = oracle.content if oracle is not None else None
            if content is None:
                content = self._timed_content(s.symbols, _np(g.durations), g.n_tokens)
            return self._decode(g, s.prompt, content)

        outs = []
        for s, it, g, (wav, tokens, dt) in zip(staged, items, gens, _each(decode, len(items)),
                                               strict=True):  # fmt: skip
            nv = it.nv
            assert tokens.n_tokens == tokens_for_frames(nv), (tokens.n_tokens, nv)
            out = DubOutput(
                wav=fit_length(wav, nv * SAMPLES_PER_FRAME),
                tokens=tokens,
                phonemes=s.symbols,
                durations=_np(g.durations).astype(np.int64),
                durations_frames=_np(g.durations_frames).astype(np.int64),
                attn_video=_np(g.attn_video).astype(np.float32),
                attn_speech=_np(g.attn_speech).astype(np.float32),
                seconds_model=per_item * nv,  # the batch's time, shared by video length
                seconds_decode=dt,
                text_only=s.n_tokens is not None,
            )
            if s.n_tokens is not None:  # text-only: the wanted length, not the face's
                k = s.n_tokens
                out = dataclasses.replace(out, wav=fit_length(out.wav, k * HOP),
                                          tokens=out.tokens.slice(0, k))  # fmt: skip
            outs.append(out)
        return outs

    def _dub(self, symbols, lip, face, prompt, nfe, temperature, seed, *, text_only: bool,
             oracle: Oracle | None = None):  # fmt: skip
        req = DubRequest(symbols, lip, face, prompt, seed=seed)
        out = self._generate([self._staged(req, oracle)], nfe, temperature, oracle)[0]
        return dataclasses.replace(out, text_only=text_only)

    def _tts_dub(self, symbols, prompt, n_tokens, nfe, temperature, seed) -> DubOutput:
        """Stage 2 without a face: frozen stage-1 durations -> synthetic face -> dub path."""
        req = DubRequest(symbols, None, None, prompt, seed=seed, n_tokens=n_tokens)
        return self._generate([self._staged(req)], nfe, temperature)[0]

    def _synthetic_face(self, symbols, n_tokens, seed) -> tuple[np.ndarray, np.ndarray, int]:
        """Frozen stage-1 durations (scaled to n_tokens when given) -> a synthetic talking
        face's (lip (nv, Dl), face (nv, Df)) and the token count n (module doc)."""
        import torch

        from dubcli.model.content import durations_from_log
        from dubcli.vision.features import visual_features

        content = self.model.ccta.content
        ph = torch.tensor([encode(symbols)], dtype=torch.long, device=self.device)
        mask = torch.ones_like(ph, dtype=torch.bool)
        with torch.inference_mode():
            was = content.training
            content.eval()
            log_dur = content.duration(content.encode(ph, mask), mask)
            content.train(was)
        want = None if n_tokens is None else int(n_tokens)
        dur = _np(durations_from_log(log_dur, mask, want)[0]).astype(np.int64)
        n = int(dur.sum()) if want is None else want
        nv = next(k for k in range(max(1, n * 5 // 16), n + 2) if tokens_for_frames(k) >= n)
        bounds = np.concatenate([[0], np.cumsum(dur)]) / TOKEN_RATE
        timeline = [(s, float(a), float(b)) for s, a, b in zip(symbols, bounds[:-1], bounds[1:],
                                                                strict=True)]  # fmt: skip
        traj = self._face_motion().generate(timeline, seed=int(seed or 0), n_frames=nv)
        feats = visual_features(traj.points)
        return feats.lip, feats.face, n

    def _face_motion(self):
        if self._face is None:
            from dubcli.synth.face_motion import FaceMotion

            self._face = FaceMotion()
        return self._face

    def _video(self, x: np.ndarray, what: str, dim: int) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] < 1:
            raise InputError(f"{what} features: expected (nv, {dim}), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{what} features contain NaN or infinite values")
        return np.ascontiguousarray(arr)

    def _prompt(self, prompt: Prompt):
        import torch

        if not isinstance(prompt, Prompt):
            raise InputError(f"expected a Prompt from Dubber.reference, got {type(prompt)}")
        if np.shape(prompt.speaker) != (self.cfg.speaker_dim,):
            raise InputError(
                f"prompt speaker embedding has shape {np.shape(prompt.speaker)}, this model "
                f"needs ({self.cfg.speaker_dim},): was it made by another checkpoint's codec?"
            )
        p, a = torch.from_numpy(prompt.prosody), torch.from_numpy(prompt.acoustic)
        return p, a, torch.from_numpy(np.asarray(prompt.speaker, np.float32))

    def _timed_content(self, symbols, durations: np.ndarray, n: int) -> np.ndarray | None:
        """Content tokens of a phonetic codec from the phonemes and the model's own timing
        (module doc), or None to keep the content head's tokens."""
        phonetic = getattr(self.codec, "phonetic_content", None)
        if not self.content_from_timing or phonetic is None or int(durations.sum()) != n:
            return None
        return phonetic(symbols, durations)

    def _decode(self, g, prompt: Prompt, content: np.ndarray | None = None):
        """Generated tokens of one item (model Generated at index 0, or generation.ItemOutput)
        -> (wav (n * 200,), CodecTokens, decode seconds)."""
        from dubcli.audio.codec.base import CodecTokens
        from dubcli.timing import Timer

        if hasattr(g, "lengths"):  # model Generated (stage 1): item 0, cut to its length
            n = int(g.lengths[0])
            pro, con, aco = g.prosody[0, :, :n], g.content[0, :, :n], g.acoustic[0, :, :n]
        else:
            n = g.n_tokens
            pro, con, aco = g.prosody, g.content, g.acoustic
        if content is not None and np.shape(content) != (self.cfg.n_content, n):
            raise InputError(f"oracle content tokens {np.shape(content)}, the model made {n}")
        tokens = CodecTokens(
            _np(pro).astype(np.int64),
            _np(con).astype(np.int64) if content is None else np.asarray(content, np.int64),
            _np(aco).astype(np.int64),
            np.asarray(prompt.speaker, np.float32),
        )
        with Timer() as t:
            wav = self.codec.decode(tokens, generated=self.generated_decode)
        return fit_length(np.asarray(wav, np.float32), n * HOP), tokens, t.seconds

    def _sync(self):
        import torch

        if self.device.type == "cuda":
            return torch.cuda.synchronize
        return None


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def torch_long(ids):
    import torch

    return torch.tensor(ids, dtype=torch.long)


@dataclass(frozen=True, eq=False)
class _Staged:
    symbols: tuple[str, ...]
    lip: np.ndarray  # (nv, Dl) float32 (a synthetic face's when the request had none)
    face: np.ndarray  # (nv, Df) float32
    prompt: Prompt
    seed: int | None
    durations_frames: Any  # (nt,) long tensor oracle, or None
    n_tokens: int | None  # text-only: tokens wanted (the synthetic face may cover more)


def _each(fn, n: int) -> list:
    """[fn(0), ..., fn(n - 1)], on up to torch's thread count of threads: the codec's decode
    (WORLD synthesis, numpy) runs outside the GIL, so the cues of a batch decode side by side
    on the cores the model's threads just used (issue 15: 1.4 s of one core for the 33 cues of
    the 60 s benchmark clip). Each item is decoded alone, so the results do not change."""
    import torch

    threads = min(n, torch.get_num_threads())
    if threads <= 1:
        return [fn(i) for i in range(n)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="dubcli-decode") as pool:
        return list(pool.map(fn, range(n)))
