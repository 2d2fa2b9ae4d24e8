"""The `diflow` engine: DiFlowDubber (paper section 3) behind the dubbing pipeline's Engine contract.

Dimensions: nv video frames in the cue window (25 fps), n = tokens_for_frames(nv) speech tokens,
s samples (16 kHz).

Per cue: the reference voice becomes a prompt once per voice (`CueJob.reference_id`), then
- a face in the window: Dubber.dub(phonemes, lip, face) -> exactly nv / 25 s of speech whose
  phoneme timing the Synchronizer took from the lips (3.4.2) and whose prosody FaPro took from
  the face (3.4.1); no time-stretching;
- no face in the window: Dubber.tts with the window's token count (text-only timing, see
  dubcli/inference.py), and CueAudio.notes says so.
The audio always starts at the window start and lasts the window (nv frames).
`synthesize_many` takes a group of cues through the model in padded batches (Dubber.dub_many,
dubcli/generation.py); each cue keeps its own seed's random numbers, so its audio is the same as
`synthesize_cue` gives it (up to float rounding) whatever else shares its batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from dubcli.config import DEFAULT_TEMPERATURE
from dubcli.console import get_logger
from dubcli.device import CpuShare
from dubcli.engines.base import CueAudio, CueJob
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS, tokens_for_frames

log = get_logger(__name__)

VERSION = "diflow-v3"  # v2: generated energy median-smoothed at decode; v3: 2 s prompt window
TEXT_ONLY_NOTE = "no face in the window: phoneme timing from the text (synthetic face), not lips"


def checkpoint_identity(checkpoint: str | None, *, offline: bool = False,
                        temperature: float = DEFAULT_TEMPERATURE) -> str:  # fmt: skip
    """The fingerprint's model part without loading it: engine version + checkpoint sha256."""
    from dubcli.hub import sha256_file
    from dubcli.model.loading import resolve_model

    resolved = resolve_model(checkpoint, offline=offline)
    st = resolved.path.stat()
    key = (str(resolved.path), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = resolved.sha256 or sha256_file(resolved.path)
    return f"{VERSION}:{_SHA[key][:16]}:t={temperature:g}"


_SHA: dict[tuple[str, int, int], str] = {}


class DiFlowEngine:
    """Loads one checkpoint (hub name | path | hf:// | training run; None = the registry default)."""

    name = "diflow"

    def __init__(self, checkpoint: str | None = None, *, offline: bool = False,
                 device: str = "auto", temperature: float = DEFAULT_TEMPERATURE):  # fmt: skip
        from dubcli.inference import Dubber

        self.dubber = Dubber.load(checkpoint, offline=offline, device=device)
        self.temperature = float(temperature)
        # torch's threads take every core on the CPU: the dub prepares cues between its calls
        # (dubbing/schedule.py), and each call takes the cores other programs leave free
        self.uses_all_cores = self.dubber.device.type == "cpu"
        self._cpu_share = None
        if self.uses_all_cores:  # at most the threads torch has now (OMP_NUM_THREADS, a caller's)
            import torch

            self._cpu_share = CpuShare(torch.get_num_threads())
        self._prompts: dict[str, object] = {}

    def fingerprint(self) -> str:
        """Engine version + the checkpoint's sha256 (+ the device type, whose random numbers
        differ): a new model never reuses cached cues."""
        return (
            f"{VERSION}:{self.dubber.sha256[:16]}:t={self.temperature:g}:{self.dubber.device.type}"
        )

    def prompt(self, ident: str, wav: np.ndarray):
        """The reference's Prompt, encoded once per voice in a process, and across runs kept in
        the cache dir (prompt_cache_path: checkpoint + audio content), as encoding a 12 s
        reference (WORLD analysis) takes about a second."""
        if ident not in self._prompts:
            path = prompt_cache_path(self.dubber.sha256, wav)
            prompt = load_prompt(path)
            if prompt is None:
                prompt = self.dubber.reference(wav, name=f"reference {ident}")
                save_prompt(path, prompt)
            self._prompts[ident] = prompt
        return self._prompts[ident]

    def synthesize_cue(self, job: CueJob) -> CueAudio:
        return self.synthesize_many([job])[0]

    def synthesize_many(self, jobs: Sequence[CueJob]) -> list[CueAudio]:
        """Cues through the model in padded batches (Dubber.dub_many); each cue's audio is what
        it gets alone (its own seed), so batching never changes a cached cue. Jobs with other
        NFE values go in separate groups."""
        from dubcli.inference import DubRequest

        out: list[CueAudio | None] = [None] * len(jobs)
        for nfe in sorted({j.nfe for j in jobs}):
            idx = [i for i, j in enumerate(jobs) if j.nfe == nfe]
            reqs = []
            for i in idx:
                j = jobs[i]
                prompt = self.prompt(j.reference_id, j.reference)
                face = j.lip is not None and j.face is not None
                reqs.append(DubRequest(j.phonemes, j.lip if face else None,
                                       j.face if face else None, prompt, seed=j.seed,
                                       n_tokens=None if face else tokens_for_frames(j.nv)))  # fmt: skip
            with self._cpu_threads(len(idx)):
                made = self.dubber.dub_many(reqs, nfe=nfe, temperature=self.temperature)
            for i, o in zip(idx, made, strict=True):
                out[i] = self._audio(jobs[i], o)
        return out  # type: ignore[return-value]

    @contextlib.contextmanager
    def _cpu_threads(self, n_cues: int) -> Iterator[None]:
        """On the CPU, torch's threads for one call: what CpuShare leaves (never more than torch
        had when the engine was made), set back afterwards for the rest of the process."""
        if self._cpu_share is None:
            yield
            return
        import torch

        before, threads = torch.get_num_threads(), self._cpu_share.threads()
        log.debug("%d cues on %d CPU threads", n_cues, threads)
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _audio(self, job: CueJob, out) -> CueAudio:
        n_samples = job.nv * SAMPLE_RATE // VIDEO_FPS
        notes: list[str] = []
        if job.lip is None or job.face is None:
            notes.append(TEXT_ONLY_NOTE)
        elif out.text_only:  # a stage-1 checkpoint has no visual path
            notes.append("stage-1 (tts) checkpoint: phoneme timing from the text, not lips")
        wav = np.zeros(n_samples, np.float32)
        k = min(n_samples, len(out.wav))
        wav[:k] = out.wav[:k]
        return CueAudio(wav, tokens=out.n_tokens, model_seconds=round(out.seconds_model, 4),
                        notes=tuple(notes))  # fmt: skip


PROMPT_CACHE_VERSION = 1  # bump when Dubber.reference's output changes for the same inputs


def prompt_cache_path(checkpoint_sha256: str, wav: np.ndarray):
    """cache_dir()/prompts/<key>.npz, key = sha256 of (version, checkpoint, the prompt window
    length, the reference's float32 samples)."""
    import hashlib

    from dubcli.fsutil import cache_dir
    from dubcli.inference import PROMPT_S

    h = hashlib.sha256(f"{PROMPT_CACHE_VERSION}:{checkpoint_sha256}:{PROMPT_S}:".encode())
    h.update(np.ascontiguousarray(wav, np.float32).tobytes())
    return cache_dir() / "prompts" / f"{h.hexdigest()[:32]}.npz"


def load_prompt(path):
    """The cached Prompt, or None (missing or unreadable: it is made again)."""
    from dubcli.inference import Prompt

    try:
        with np.load(path, allow_pickle=False) as z:
            return Prompt(z["prosody"].astype(np.int64), z["acoustic"].astype(np.int64),
                          z["speaker"].astype(np.float32), float(z["start_s"]),
                          float(z["seconds"]), float(z["reference_s"]))  # fmt: skip
    except (OSError, ValueError, KeyError) as exc:
        if path.exists():
            log.debug("%s: unreadable cached prompt (%s); encoding the reference again", path, exc)
        return None


def save_prompt(path, prompt) -> None:
    """Write atomically; a cache that cannot be written is skipped (debug log), never an error."""
    from dubcli.fsutil import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, prosody=prompt.prosody, acoustic=prompt.acoustic, speaker=prompt.speaker,
                     start_s=prompt.start_s, seconds=prompt.seconds,
                     reference_s=prompt.reference_s)  # fmt: skip
    except OSError as exc:
        log.debug("%s: prompt cache not written (%s)", path, exc)
