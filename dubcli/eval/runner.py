"""`dubcli eval`: dub every utterance of a prepared split and score it (paper 4; DESIGN 1, 2).

Dimensions: nv video frames (25 fps), s = nv * 640 samples (16 kHz), Dl / Df lip / face widths.

Per utterance of the split (pairs and Settings: splits.py), the systems, in table order:
  gt        its own audio (groundtruth.py says where it comes from)
  codec     its prepared tokens decoded by the dataset's codec: the ceiling of any token model
  baseline  the baseline engine (espeak-ng + WORLD) saying its text in its window, with the
            Setting's reference voice (engines/baseline.py)
  model     Dubber.dub with its phonemes, the shard's lip/face features and the Setting's
            reference (or, with audio_dir, the file <id>.wav found there)
  oracle-dur      the model with the ground-truth frames per phoneme in place of the
                  Synchronizer's MAS durations (`oracles`)
  oracle-content  ... and the prepared content tokens in place of its content head's
`compare` runs gt, codec, baseline and model, otherwise only `model`; `oracles` adds the two
oracle rows after the model's (at the first NFE), so each error has an address: timing
(model vs oracle-dur), content (oracle-dur vs oracle-content), prosody/acoustic generation
(oracle-content vs codec). Several NFEs (`nfe=(8, 32)`) make one model
system per NFE, "model-nfe8", "model-nfe32", on the same pairs and seeds: one run, one table.
Metrics: scoring.py. RTF (paper Table 4):
"gen" = the model's token generation alone (the DFM sampler at `nfe`), "e2e" = reference
encoding (once per reference) + generation + codec decoding; for the baseline both are its whole
cue synthesis, for the codec its decode. Totals over utterances (compute / audio seconds).

Nothing is dropped silently: a pair without a reference, an utterance whose ground truth cannot
be found, a system that fails on an item, and a metric that cannot be computed are all counted
and listed (EvalResult.failures, each record's `errors`). Every system's audio is written to
OUT/audio/<system>/<id>.wav; results.json, results.csv, settings.json (the pairs used) and, with
`plots`, OUT/plots/*.png and OUT/index.html (report.py, plots.py).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.console import get_logger
from dubcli.errors import DependencyError, DubcliError, InputError, OutputError
from dubcli.eval.config import EvalConfig
from dubcli.eval.systems import ORACLES, SYSTEMS, is_model, label, model_systems  # noqa: F401
from dubcli.timing import SAMPLE_RATE, VIDEO_FPS

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class EvalResult:
    out_dir: Path
    setting: int
    systems: tuple[str, ...]
    summary: dict[str, dict[str, Any]]  # system -> summary (report.summarize)
    records: list[dict[str, Any]]  # one per (utterance, system) that produced audio
    failures: list[dict[str, Any]]  # {id, system, stage, reason}
    pairs: list[dict[str, Any]]  # {id, ref_id, reason}
    config: dict[str, Any]  # split, checkpoint, device, nfe, seed, metrics, recognizer, ...
    files: dict[str, str] = field(default_factory=dict)  # name -> path written
    seconds: float = 0.0

    @property
    def n_utterances(self) -> int:
        return len(self.pairs)

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        out = {
            "setting": self.setting, "systems": list(self.systems), "config": self.config,
            "summary": self.summary, "failures": self.failures, "files": self.files,
            "utterances": self.n_utterances, "seconds": round(self.seconds, 3),
            "out_dir": str(self.out_dir),
        }  # fmt: skip
        if full:
            out["pairs"], out["records"] = self.pairs, self.records
        return out


@dataclass(frozen=True, eq=False)
class Produced:
    wav: np.ndarray  # (s,) float32
    seconds_gen: float | None = None
    seconds_e2e: float | None = None
    output: Any = None  # DubOutput (model) for attention plots
    notes: tuple[str, ...] = ()


def evaluate(
    checkpoint: str | os.PathLike | None,
    split: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    out_dir: str | os.PathLike,
    progress: Progress | None = None,
    **options: Any,
) -> EvalResult:
    """Evaluate `checkpoint` (None: the registry's default; or the audio in config.audio_dir) on
    `split` (DIR/test, DIR or a manifest) as `config` says (an EvalConfig; `options` are its
    fields put in place, e.g. nfe=(8, 32)); see the module doc. Raises InputError /
    CheckpointError / DependencyError / OutputError for the run as a whole; per-item problems
    become failures."""
    from dubcli.data.manifest import MANIFEST_FILE, load_split, read_dataset_info, read_manifest
    from dubcli.eval import report, splits
    from dubcli.eval.groundtruth import GroundTruth, aperture_from_lip
    from dubcli.eval.scoring import Scorer, parse_metrics

    t_start = time.perf_counter()
    config = EvalConfig.of(config, **options)
    nfe, limit, audio_dir, seed = config.nfe, config.limit, config.audio_dir, config.seed
    offline, oracles, temperature = config.offline, config.oracles, config.temperature
    setting = splits.check_setting(config.setting)
    nfes = tuple(dict.fromkeys([nfe] if isinstance(nfe, int) else [int(n) for n in nfe]))
    if not nfes or min(nfes) < 1:
        raise InputError(f"--nfe {nfe}: need at least 1 step")
    if audio_dir is not None and len(nfes) > 1:
        raise InputError("--audio-dir scores given audio: give at most one --nfe")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: need at least 1")
    if audio_dir is not None and not Path(audio_dir).is_dir():
        raise InputError(f"{audio_dir}: --audio-dir is not a folder")
    groups = parse_metrics(config.metrics)
    out = _out_dir(out_dir)
    root, utts = load_split(split)
    info = read_dataset_info(root) if (root / "dataset.json").exists() else {}
    everything = read_manifest(root / MANIFEST_FILE) if (root / MANIFEST_FILE).exists() else utts
    listed, source = None, "derived"
    if config.pairs is not None:
        listed, source = splits.read_pairs_file(config.pairs), str(config.pairs)
    elif (root / splits.SETTINGS_FILE).is_file():
        table = splits.read_settings(root / splits.SETTINGS_FILE)
        if setting in table:  # the dataset's own protocol, for the split asked for
            ids = {u.id for u in utts}
            listed = [(u, r) for u, r in table[setting] if u in ids]
            source = str(root / splits.SETTINGS_FILE)
    ordered = sorted(utts, key=lambda u: u.id)
    plan = splits.make_pairs(ordered, everything, setting, seed=seed, listed=listed, source=source)
    # The recognizer's vocabulary: the whole split's (or list's) texts, whatever the --limit.
    texts = [p.utt.text for p in plan if p.utt is not None]
    plan = plan[:limit] if limit is not None else plan
    systems = (*(SYSTEMS[:-1] if config.compare else ()), *model_systems(nfes))
    if oracles:
        if audio_dir is not None:
            raise InputError("--oracles runs the model: it cannot go with --audio-dir")
        systems = (*systems, *ORACLES)

    dubber = None
    if audio_dir is None:
        from dubcli.inference import Dubber

        dubber = Dubber.load(checkpoint, offline=offline, device=config.device)
    codec = _dataset_codec(root, dubber) if "codec" in systems else None
    baseline = None
    if "baseline" in systems:
        from dubcli.engines.baseline import BaselineEngine

        baseline = BaselineEngine()
    gt = GroundTruth(root, info)
    scorer = Scorer(groups, texts=texts, syncnet=config.syncnet, offline=offline,
                    device=_metric_device(dubber))  # fmt: skip
    ctx = _Context(out, dubber, codec, baseline, gt, Path(audio_dir) if audio_dir else None,
                   nfes, seed, temperature)  # fmt: skip

    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    plotted: dict[str, dict[str, str]] = {}
    for k, pair in enumerate(plan):
        if progress is not None:
            progress("utterances", k, len(plan))
        if pair.reason is not None:
            failures.append(_failure(pair.utt_id, "*", "reference", pair.reason))
            continue
        utt, ref = pair.utt, pair.ref
        try:
            gt_wav, ref_wav = gt.audio(utt), gt.audio(ref)
            lip, face, valid = gt.features(utt)
        except DependencyError:
            raise
        except DubcliError as exc:
            failures.append(_failure(utt.id, "*", "ground truth", exc.message))
            continue
        aperture, video = aperture_from_lip(lip, valid), gt.video(utt)
        wavs: dict[str, np.ndarray] = {}
        model_out = None
        for system in systems:
            try:
                got = ctx.produce(system, k, utt, ref, gt_wav, ref_wav, lip, face)
            except DependencyError:
                raise
            except Exception as exc:  # one item's failure must not cost the run
                reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                log.debug("%s / %s:\n%s", utt.id, system, traceback.format_exc())
                failures.append(_failure(utt.id, system, "generate", reason))
                continue
            wavs[system] = got.wav
            model_out = got.output if is_model(system) else model_out
            scores = scorer.score(utt, got.wav, gt_wav=gt_wav, ref_id=ref.id, ref_wav=ref_wav,
                                  aperture=aperture, video=video, is_gt=system == "gt")  # fmt: skip
            records.append(_record(out, system, utt, ref, got, scores))
        if config.plots and wavs:
            plotted[utt.id] = _plots(out, utt, wavs, model_out)
    if progress is not None:
        progress("utterances", len(plan), len(plan))

    described = {  # what results.json records of the run
        "split": str(split), "dataset": str(root), "setting": setting, "pairs_from": source,
        "nfe": nfes[0] if len(nfes) == 1 else list(nfes), "seed": seed, "oracles": oracles,
        "temperature": temperature, "limit": limit,
        "audio_dir": str(audio_dir) if audio_dir else None,
        "model": dubber.describe() if dubber is not None else None,
        "ground_truth_audio": sorted(set(gt.sources.values())), **scorer.describe(),
    }  # fmt: skip
    pair_rows = [{"id": p.utt_id, "ref_id": p.ref_id, "reason": p.reason} for p in plan]
    summary = report.summarize(records, failures, systems)
    if audio_dir is not None and "model" in summary:
        summary["model"]["label"] = f"{Path(audio_dir).name}/*.wav"
    result = EvalResult(out, setting, systems, summary, records, failures, pair_rows, described,
                        seconds=time.perf_counter() - t_start)  # fmt: skip
    splits.write_settings(out / splits.SETTINGS_FILE, {setting: plan})
    files = report.write_outputs(result, plotted if config.plots else None)
    files["settings"] = str(out / splits.SETTINGS_FILE)
    return EvalResult(**{**result.__dict__, "files": files,
                         "seconds": time.perf_counter() - t_start})  # fmt: skip


class _Context:
    """What generating one system's audio for one utterance needs."""

    def __init__(self, out, dubber, codec, baseline, gt, audio_dir, nfes, seed, temperature):
        self.out, self.dubber, self.codec, self.baseline, self.gt = out, dubber, codec, baseline, gt
        self.audio_dir, self.nfes, self.seed, self.temperature = audio_dir, nfes, seed, temperature
        self._prompts: dict[str, tuple[Any, float]] = {}  # ref id -> (prompt, seconds to encode)
        self._charged: set[tuple[str, str]] = set()  # (system, ref id) whose e2e paid the encoding
        self._nfe = dict(zip(model_systems(nfes), nfes, strict=True))  # model system -> its NFE

    def produce(self, system, k, utt, ref, gt_wav, ref_wav, lip, face) -> Produced:
        from dubcli.audio.util import fit_length
        from dubcli.eval.rtf import Timer

        n = utt.n_frames * (SAMPLE_RATE // VIDEO_FPS)
        if system == "gt":
            return Produced(gt_wav)
        if system == "codec":
            if self.codec is None:
                raise InputError("no codec: the dataset has no codec.safetensors")
            tokens = self.gt.tokens(utt)
            with Timer() as t:
                wav = self.codec.decode(tokens)
            return Produced(fit_length(wav, n), None, t.seconds)
        if system == "baseline":
            from dubcli.engines.base import CueJob

            job = CueJob(k, utt.text, tuple(utt.phonemes), 0.0, utt.n_frames / VIDEO_FPS,
                         utt.n_frames, lip, face, ref_wav, ref.id, seed=self.seed + k,
                         nfe=self.nfes[0])  # fmt: skip
            with Timer() as t:
                audio = self.baseline.synthesize_cue(job)
            return Produced(fit_length(audio.wav, n), t.seconds, t.seconds, notes=audio.notes)
        if self.audio_dir is not None:
            return self._from_dir(utt, n)
        if ref.id not in self._prompts:
            with Timer() as t:
                prompt = self.dubber.reference(ref_wav, name=f"reference {ref.id}")
            self._prompts[ref.id] = (prompt, t.seconds)
        prompt, t_ref = self._prompts[ref.id]
        if (system, ref.id) in self._charged:  # each system pays each reference's encoding once
            t_ref = 0.0
        self._charged.add((system, ref.id))
        with Timer(self.dubber._sync()) as t:
            got = self.dubber.dub(utt.phonemes, lip, face, prompt,
                                  nfe=self._nfe.get(system, self.nfes[0]),
                                  temperature=self.temperature, seed=self.seed + k,
                                  oracle=self._oracle(system, utt))  # fmt: skip
        assert len(got.wav) == n, (len(got.wav), n)
        notes = ("text-only timing (stage-1 checkpoint)",) if got.text_only else ()
        return Produced(got.wav, got.seconds_model, t_ref + t.seconds, got, notes)

    def _oracle(self, system: str, utt):
        from dubcli.inference import Oracle

        if system not in ORACLES:
            return None
        content = self.gt.tokens(utt).content if system == "oracle-content" else None
        return Oracle(durations_frames=tuple(utt.durations_frames), content=content)

    def _from_dir(self, utt, n: int) -> Produced:
        from dubcli.audio.io import load_audio
        from dubcli.audio.util import fit_length

        path = self.audio_dir / f"{utt.id}.wav"
        if not path.is_file():
            raise InputError(f"{path}: not found (--audio-dir needs <id>.wav per utterance)")
        wav = load_audio(path)
        notes = ()
        if abs(len(wav) - n) > SAMPLE_RATE // VIDEO_FPS:
            notes = (f"{path.name}: {len(wav) / SAMPLE_RATE:.2f} s, the video {n / SAMPLE_RATE:.2f}"
                     " s: padded/cropped to the video",)  # fmt: skip
        return Produced(fit_length(wav, n), notes=notes)


def _out_dir(out_dir) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror})") from exc
    return out


def _dataset_codec(root: Path, dubber):
    from dubcli.data.manifest import CODEC_FILE

    if (root / CODEC_FILE).is_file():
        from dubcli.audio.codec import load_codec

        return load_codec(root / CODEC_FILE)
    return dubber.codec if dubber is not None else None


def _metric_device(dubber) -> str:
    return str(dubber.device) if dubber is not None else "cpu"


def _failure(uid: str, system: str, stage: str, reason: str) -> dict[str, Any]:
    log.warning("%s%s: %s failed: %s", uid, "" if system == "*" else f" [{system}]", stage,
                reason)  # fmt: skip
    return {"id": uid, "system": system, "stage": stage, "reason": reason}


def _record(out: Path, system, utt, ref, got: Produced, scores) -> dict[str, Any]:
    from dubcli.audio.io import save_audio

    rel = Path("audio") / system / f"{utt.id}.wav"
    save_audio(out / rel, np.clip(got.wav, -1.0, 1.0), SAMPLE_RATE)
    secs = len(got.wav) / SAMPLE_RATE
    return {
        "id": utt.id, "ref_id": ref.id, "system": system, "speaker": utt.speaker,
        "text": utt.text, "hyp": scores.hyp, "hyp_grid": scores.hyp_grid,
        "seconds": round(secs, 4),
        "seconds_gen": got.seconds_gen, "seconds_e2e": got.seconds_e2e,
        "audio": rel.as_posix(), "notes": list(got.notes), "errors": dict(scores.errors),
        **{k: float(v) for k, v in scores.values.items()},
    }  # fmt: skip


def _plots(out: Path, utt, wavs: dict[str, np.ndarray], model_out) -> dict[str, str]:
    from dubcli.eval import plots

    made = {}
    rel = Path("plots") / f"{utt.id}.mel.png"
    plots.mel_png(out / rel, {label(s): w for s, w in wavs.items()}, title=utt.text)
    made["mel"] = rel.as_posix()
    if model_out is not None and model_out.attn_video is not None:
        rel = Path("plots") / f"{utt.id}.attention.png"
        plots.attention_png(out / rel, model_out.attn_video, model_out.attn_speech,
                            model_out.phonemes, title=utt.id,
                            durations_frames=model_out.durations_frames,
                            durations_tokens=model_out.durations)  # fmt: skip
        made["attention"] = rel.as_posix()
    return made
