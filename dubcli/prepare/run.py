"""`dubcli prepare`: raw data -> the prepared-dataset format that training and eval read (DESIGN 7).

    prepare("synth", None, "feats/", n=400)                 # SynthDub, generated
    prepare("pairs", "my_videos/", "feats/", workers=2)     # videos + same-stem transcripts
    prepare("pairs", "my_videos/", "feats/", PrepareConfig(workers=2))  # the same

How it runs is a PrepareConfig (config.py); keyword options are its fields put in place.

Flow: the layout lists its items (layouts/); every split's items are paired with other
utterances of the same speaker in the same split as references (`ref_ids`, Setting 2 of paper
B.2.1); the codec's codebooks are fit on the train split's audio when OUT has none and no
`codec` is given (the audio of up to `codec_items` train items, drawn with `seed` from the FULL
item list, so every `--shard` part draws the same ones); then each item is extracted (layout)
and encoded (codec) by a worker, and the parent writes shards and manifest lines (writer.py).

Resumable: items already in OUT/manifest.jsonl are skipped, so rerunning a killed run finishes
it; items that failed are retried. A failing item goes to failures.jsonl with its reason and the
run goes on; `PrepareResult.failures` lists them and the CLI then exits with PartialFailure (8).

`workers` > 1: a spawn-started process pool; each worker extracts and encodes whole items and
sends the arrays back; results are consumed in item order, so shards and the manifest are the
same whatever the worker count. `shard="i/n"` takes items i-1, i-1+n, ... of the full list;
write each part to its own OUT and combine them with `merge_prepared` (dubcli prepare-merge).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.console import get_logger
from dubcli.data.manifest import (
    CODEC_FILE,
    DATASET_FILE,
    FAILURES_FILE,
    MANIFEST_FILE,
    SHARD_DIR,
    SPLITS,
    Utterance,
    read_manifest,
    write_dataset_info,
)
from dubcli.data.writer import (
    ShardWriter,
    folder_lock,
    remove_orphan_shards,
    shard_tag,
    summarize,
)
from dubcli.errors import InputError, OutputError
from dubcli.hashing import sha256_file
from dubcli.prepare.config import PrepareConfig
from dubcli.prepare.layouts import Context, Item, Layout, make_layout
from dubcli.prepare.workers import WorkResult, audio_job, pool_map, results

log = get_logger(__name__)

MAX_REFS = 8  # reference utterances listed per line (a sample when the speaker has more)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Failure:
    id: str
    split: str
    speaker: str
    stage: str  # where it failed: text | decode | landmarks | alignment | codec | extract
    reason: str


@dataclass(frozen=True)
class PrepareResult:
    out: Path
    counts: dict[str, int]  # utterances per split in the folder (this and earlier runs)
    failures: tuple[Failure, ...]  # items that failed in this run
    seconds: float  # wall time of this run
    processed: int = 0  # items finished in this run
    skipped: int = 0  # items already in the manifest
    audio_seconds: float = 0.0  # speech in the items finished this run
    hours: float = 0.0  # speech in the whole folder
    speakers: int = 0  # distinct speakers in the whole folder
    stage_seconds: dict[str, float] = field(default_factory=dict)  # per stage, summed over items

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["failures"] = [asdict(f) for f in self.failures]
        return d


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 1 <= i <= n."""
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise InputError(f"--shard {spec!r}: expected i/n, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise InputError(f"--shard {spec!r}: need 1 <= i <= n")
    return i, n


def pair_refs(items: Sequence[Item], seed: int, max_refs: int = MAX_REFS) -> dict[str, tuple]:
    """id -> other ids of the same speaker and split (sorted; a seeded sample of max_refs)."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for it in items:
        groups[(it.split, it.speaker)].append(it.id)
    out: dict[str, tuple[str, ...]] = {}
    for ids in groups.values():
        ids = sorted(ids)
        for uid in ids:
            others = [o for o in ids if o != uid]
            if len(others) > max_refs:
                key = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
                rng = np.random.default_rng([int(seed), key])
                others = sorted(rng.choice(others, max_refs, replace=False).tolist())
            out[uid] = tuple(others)
    return out


def prepare(
    layout: str | Layout,
    data: str | Path | None,
    out: str | Path,
    config: PrepareConfig | None = None,
    *,
    progress: Progress | None = None,
    on_result: Callable[[int, WorkResult], None] | None = None,
    **options: Any,
) -> PrepareResult:
    """Prepare `data` with `layout` into `out` (see the module doc) as `config` says (a
    PrepareConfig; `options` are its fields put in place, e.g. n=400, workers=2).

    on_result: called in the parent after each item (count so far, result): a test hook."""
    t_start = time.perf_counter()
    config = PrepareConfig.of(config, **options)
    part, nparts = parse_shard(config.shard)
    bad = sorted(set(config.only_splits) - set(SPLITS))
    if bad:
        raise InputError(f"--only-split {bad[0]}: not one of {', '.join(SPLITS)}")
    if config.workers < 1:
        raise InputError(f"--workers {config.workers}: need at least 1")
    out = Path(out)
    codec, force, seed = config.codec, config.force, config.seed
    lay = layout if isinstance(layout, Layout) else make_layout(
        layout, data, n=config.n, seed=seed, **config.layout_options
    )  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror})") from exc
    with folder_lock(out):
        keep = Path(codec) if force and codec and Path(codec).is_file() else None
        codec_bytes = keep.read_bytes() if keep else None  # --codec may live in OUT itself
        if force:
            clear_output(out)
        base = {**_base_info(lay, data, seed, part, nparts), "render": bool(config.render),
                "only_splits": sorted(set(config.only_splits)) or None}  # fmt: skip
        prev_seconds = _check_resumable(out, base)
        items = lay.items()
        _check_ids(items)
        lay.check()
        refs = pair_refs(items, seed)
        only = config.only_splits
        mine = [it for it in items[part - 1 :: nparts] if not only or it.split in only]
        existing = read_manifest(out / MANIFEST_FILE) if (out / MANIFEST_FILE).exists() else []
        remove_orphan_shards(out, existing)
        done = {u.id for u in existing}
        todo = [it for it in mine if it.id not in done]
        stages: dict[str, float] = defaultdict(float)
        t = time.perf_counter()
        codec_obj = _setup_codec(out, config, codec_bytes, lay, items, existing, progress)
        stages["codec_setup"] += time.perf_counter() - t
        base["codec"] = _codec_info(out / CODEC_FILE, codec_obj)
        base["vocab"] = int(codec_obj.vocab)

        def write_info(utts: list[Utterance], complete: bool = False) -> None:
            elapsed = prev_seconds + time.perf_counter() - t_start
            info = {**base, **summarize(utts), "complete": complete, "failed": len(failures)}
            write_dataset_info(out, {**info, "prepare_seconds": round(elapsed, 1)})

        failures: list[Failure] = []
        (out / FAILURES_FILE).unlink(missing_ok=True)  # earlier failures are retried now
        writer = ShardWriter(out, shard_tag(part, nparts), config.shard_size, existing, write_info)
        write_info(writer.utts)
        audio = 0.0
        ctx = Context(out=out, render=config.render)
        try:
            for k, res in enumerate(results(todo, lay, ctx, codec_obj, out, config.workers), 1):
                for name, s in res.timings.items():
                    stages[name] += s
                it = res.item
                if res.fields is None:
                    fail = Failure(it.id, it.split, it.speaker, res.stage, res.reason)
                    failures.append(fail)
                    _append_failure(out / FAILURES_FILE, fail)
                    log.warning("%s failed: %s", it.id, res.reason)
                else:
                    utt = Utterance(**res.fields, shard="", ref_ids=refs.get(it.id, ()))
                    writer.add(utt, res.arrays)
                    audio += utt.seconds
                if progress is not None:
                    progress("items", k, len(todo))
                if on_result is not None:
                    on_result(k, res)
        except KeyboardInterrupt:
            writer.flush_all()  # finished items are kept; the rest is redone on the next run
            raise
        writer.flush_all()
        write_info(writer.utts, complete=True)
        stats = summarize(writer.utts)
    return PrepareResult(
        out=out,
        counts=stats["counts"],
        failures=tuple(failures),
        seconds=round(time.perf_counter() - t_start, 3),
        processed=len(todo) - len(failures),
        skipped=len(mine) - len(todo),
        audio_seconds=round(audio, 3),
        hours=stats["hours"],
        speakers=stats["n_speakers"],
        stage_seconds={k: round(v, 3) for k, v in sorted(stages.items())},
    )


def clear_output(out: Path) -> None:
    """--force: remove what a previous prepare wrote here (and nothing else)."""
    for name in (MANIFEST_FILE, FAILURES_FILE, DATASET_FILE, CODEC_FILE):
        (out / name).unlink(missing_ok=True)
    for d in (SHARD_DIR, "media"):
        shutil.rmtree(out / d, ignore_errors=True)


def _base_info(lay: Layout, data, seed: int, part: int, nparts: int) -> dict[str, Any]:
    from dubcli import __version__
    from dubcli.text.phonemes import VOCAB_VERSION
    from dubcli.timing import SAMPLE_RATE, TOKEN_RATE, VIDEO_FPS
    from dubcli.vision.features import FACE_DIM, FEATURES_VERSION, LIP_DIM

    return {
        "dubcli_version": __version__,
        "layout": lay.name,
        "source": str(Path(data).resolve()) if data is not None else None,
        "seed": int(seed),
        "shard": f"{part}/{nparts}",
        "layout_options": lay.describe(),
        "features_version": FEATURES_VERSION,
        "lip_dim": LIP_DIM,
        "face_dim": FACE_DIM,
        "phoneme_vocab": VOCAB_VERSION,
        "phoneme_edges": "sil",
        "rates": {"sample_rate": SAMPLE_RATE, "token_rate": TOKEN_RATE, "video_fps": VIDEO_FPS},
    }


_MUST_MATCH = ("layout", "source", "seed", "shard", "layout_options", "render",
               "features_version", "phoneme_vocab", "phoneme_edges", "only_splits")  # fmt: skip


def _check_resumable(out: Path, base: dict[str, Any]) -> float:
    """Refuse to add to a folder prepared with other settings; returns its prepare_seconds."""
    path = out / DATASET_FILE
    if not path.exists():
        if (out / MANIFEST_FILE).exists():
            raise OutputError(f"{out}: has a manifest but no {DATASET_FILE}; use --force")
        return 0.0
    try:
        prev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path}: unreadable ({exc}); use --force to start over") from exc
    for key in _MUST_MATCH:
        if prev.get(key) != base[key]:
            raise OutputError(
                f"{out}: was prepared with {key}={prev.get(key)!r}, this run has "
                f"{base[key]!r}; use --force to start over, or another -o"
            )
    return float(prev.get("prepare_seconds", 0.0))


def _check_ids(items: Sequence[Item]) -> None:
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise InputError(f"two items have the id {it.id!r}; ids must be unique")
        if "/" in it.id or not it.id:
            raise InputError(f"item id {it.id!r} must be non-empty and contain no '/'")
        seen.add(it.id)


def _setup_codec(out: Path, config: PrepareConfig, codec_bytes: bytes | None, lay: Layout,
                 items: Sequence[Item], existing: Sequence[Utterance], progress: Progress | None):  # fmt: skip
    """The codec for this folder: reuse config.codec, or OUT's own, or fit one on train audio.
    codec_bytes: config.codec's bytes read before --force cleared OUT (it may live there)."""
    from dubcli.audio.codec import load_codec
    from dubcli.fsutil import atomic_write_bytes

    codec, seed, workers = config.codec, config.seed, config.workers
    dst = out / CODEC_FILE
    if codec is not None:
        src = Path(codec)
        data = (
            codec_bytes if codec_bytes is not None else src.read_bytes() if src.is_file() else None
        )
        if data is None:
            raise InputError(f"{src}: codec file not found")
        same = dst.exists() and dst.read_bytes() == data
        if dst.exists() and not same and existing:
            raise OutputError(
                f"{out}: its tokens were made with other codebooks than {src}; use --force"
            )
        if not same:
            atomic_write_bytes(dst, data)
        return load_codec(dst)
    if dst.exists():
        return load_codec(dst)
    if existing:
        raise OutputError(
            f"{out}: has prepared utterances but no {CODEC_FILE} (their tokens cannot be "
            "matched); use --force to start over"
        )
    from dubcli.audio.codec import WorldCodecConfig, train_world_codec

    pool = [it for it in items if it.split == "train"] or list(items)
    rng = np.random.default_rng(int(seed))
    pick = sorted(rng.choice(len(pool), min(int(config.codec_items), len(pool)), replace=False))
    chosen = [pool[i] for i in pick]
    ctx = Context(out=out, render=False)
    cfg = WorldCodecConfig(**config.codec_config)
    wavs, labels = [], []
    if workers <= 1:
        audios = (audio_job(it, lay, ctx, cfg) for it in chosen)
    else:
        audios = pool_map(audio_job, chosen, workers, (lay, None, ctx, cfg))
    for k, got in enumerate(audios, 1):
        if isinstance(got, str):
            log.debug("codec audio: %s", got)
        else:
            labels.append(got[0])
            wavs.append(got[1])  # the WORLD analysis of the audio
        if progress is not None:
            progress("codec audio", k, len(chosen))
    if not wavs:
        raise InputError("could not read the audio and phone labels of any item to fit the codec")
    log.info("fitting the codec (%d codes) on %d utterances", cfg.vocab, len(wavs))
    cb = (lambda d, t: progress("codec", d, t)) if progress is not None else None
    fitted = train_world_codec(wavs, labels, seed=int(seed), config=cfg, progress=cb)
    fitted.save(dst)
    return load_codec(dst)


def _codec_info(path: Path, codec) -> dict[str, Any]:
    from dubcli.checkpoint import read_metadata

    meta = read_metadata(path)
    return {
        "kind": meta.get("kind"),
        "name": codec.name,
        "version": codec.version,
        "vocab": int(codec.vocab),
        "speaker_dim": int(codec.speaker_dim),
        "sha256": sha256_file(path),
    }


def _append_failure(path: Path, fail: Failure) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(fail), ensure_ascii=False) + "\n")
