"""The evaluation protocol: which reference voice each test utterance is dubbed with (paper 4.1).

Settings (the paper's tables use 1.0 and 2.0; V2C-style benchmarks add a third):
  1  the reference is the utterance's own ground-truth audio (Setting 1.0);
  2  another utterance of the same speaker (Setting 2.0);
  3  an utterance of a speaker never seen in training (zero-shot voice).

Where the pairs come from, first match wins:
  1. a pairs file (`dubcli eval --pairs FILE`): one `utt_id ref_id` per line, `#` comments and
     blank lines allowed; this is how the GRID / Chem / V2C test lists are given. A Setting-1
     file may hold only `utt_id` (the reference is the utterance itself).
  2. ROOT/settings.json of the prepared dataset, when it has one:
         {"version": 1, "settings": {"2": [["utt", "ref"], ...], "3": [...]}}
  3. derived, deterministically from (seed, utterance id): Setting 2 picks one of the manifest's
     `ref_ids` (other utterances of the speaker in the same split, prepare/run.py) that the
     dataset holds; Setting 3 picks an utterance whose speaker differs and never occurs in the
     train split (SynthDub's test voices are unseen by construction), from the evaluated split
     first, else from any split.
Every eval run writes the pairs it used to OUT/settings.json (format 2.), so it can be repeated
exactly, or the file copied next to the dataset as its protocol. `derive_settings` writes all
three settings at once for a prepared folder.

A pair without a usable reference is not dropped: it comes back with `reason` set and the runner
lists it among the failures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dubcli.data.manifest import Utterance
from dubcli.errors import InputError
from dubcli.hashing import seeded_hash

SETTINGS = (1, 2, 3)
SETTINGS_FILE = "settings.json"
SETTINGS_VERSION = 1


@dataclass(frozen=True)
class EvalPair:
    utt_id: str
    ref_id: str | None
    utt: Utterance | None  # None: the id is not in the prepared dataset
    ref: Utterance | None  # the reference utterance (Setting 1: utt itself); None: see reason
    reason: str | None = None  # why this pair cannot be evaluated
    source: str = "derived"  # "derived" | "settings.json" | the pairs file's path


def check_setting(setting: int) -> int:
    if setting not in SETTINGS:
        raise InputError(f"--setting {setting}: choose 1 (own audio), 2 (same speaker) or 3 "
                         "(unseen speaker)")  # fmt: skip
    return int(setting)


def read_pairs_file(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """`utt_id [ref_id]` per line -> [(utt_id, ref_id or None)]; InputError names file:line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: pairs file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the pairs file ({exc})") from None
    out: list[tuple[str, str | None]] = []
    for k, line in enumerate(lines, 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.replace(",", " ").replace("\t", " ").split()
        if len(parts) > 2:
            raise InputError(f"{path}:{k}: expected 'utt_id ref_id', got {len(parts)} fields")
        out.append((parts[0], parts[1] if len(parts) == 2 else None))
    if not out:
        raise InputError(f"{path}: the pairs file lists no utterances")
    return out


def read_settings(path: str | os.PathLike) -> dict[int, list[tuple[str, str | None]]]:
    """A settings.json -> {setting: [(utt_id, ref_id)]}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        table = data["settings"]
        if data.get("version") != SETTINGS_VERSION or not isinstance(table, dict):
            raise ValueError(f"version {data.get('version')}, expected {SETTINGS_VERSION}")
        return {
            check_setting(int(k)): [(str(p[0]), None if p[1] is None else str(p[1])) for p in v]
            for k, v in table.items()
        }
    except FileNotFoundError:
        raise InputError(f"{path}: settings file not found") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{path}: not a valid eval settings file ({exc})") from None


def write_settings(path: str | os.PathLike, settings: dict[int, Sequence[EvalPair]]) -> Path:
    from dubcli.fsutil import atomic_write_text

    table = {
        str(s): [[p.utt_id, p.ref_id] for p in pairs if p.ref_id is not None]
        for s, pairs in sorted(settings.items())
    }
    body = {"version": SETTINGS_VERSION, "settings": table}
    return atomic_write_text(path, json.dumps(body, indent=1) + "\n")


def make_pairs(
    utts: Sequence[Utterance],
    everything: Sequence[Utterance],
    setting: int,
    *,
    seed: int = 0,
    listed: Sequence[tuple[str, str | None]] | None = None,
    source: str = "derived",
) -> list[EvalPair]:
    """Pairs for the utterances `utts` (the split evaluated) in `setting`; `everything`: all
    utterances of the dataset (references may come from any split). `listed`: pairs read from a
    file (then `utts` is ignored and the listed ids are looked up in `everything`)."""
    check_setting(setting)
    by_id = {u.id: u for u in everything}
    if listed is not None:
        return [_listed(u, r, by_id, setting, source) for u, r in listed]
    train = {u.speaker for u in everything if u.split == "train"}
    return [_derived(u, utts, everything, by_id, train, setting, seed) for u in utts]


def derive_settings(
    utts: Sequence[Utterance], everything: Sequence[Utterance], seed: int = 0
) -> dict[int, list[EvalPair]]:
    """All three settings, derived (for writing a dataset's settings.json)."""
    return {s: make_pairs(utts, everything, s, seed=seed) for s in SETTINGS}


# --- helpers ----------------------------------------------------------------------------------


def _pick(key: str, seed: int, candidates: list[Utterance]) -> Utterance:
    h = seeded_hash(key, seed)
    return sorted(candidates, key=lambda u: u.id)[h % len(candidates)]


def _derived(u, utts, everything, by_id, train, setting, seed) -> EvalPair:
    if setting == 1:
        return EvalPair(u.id, u.id, u, u)
    if setting == 2:
        refs = [by_id[r] for r in u.ref_ids if r in by_id and r != u.id]
        refs = [r for r in refs if r.speaker == u.speaker]
        if not refs:
            return EvalPair(u.id, None, u, None, f"no other utterance of speaker {u.speaker} "
                            "in the dataset (Setting 2 needs one)")  # fmt: skip
        r = _pick(u.id, seed, refs)
        return EvalPair(u.id, r.id, u, r)
    for pool in (utts, everything):  # Setting 3: an unseen speaker, the evaluated split first
        cands = [x for x in pool if x.speaker != u.speaker and x.speaker not in train]
        if cands:
            r = _pick(u.id, seed, cands)
            return EvalPair(u.id, r.id, u, r)
    return EvalPair(u.id, None, u, None, "no utterance of another speaker unseen in training "
                    "(Setting 3 needs one)")  # fmt: skip


def _listed(uid, rid, by_id, setting, source) -> EvalPair:
    u = by_id.get(uid)
    if u is None:
        return EvalPair(uid, rid, None, None, f"{uid} is not in the prepared dataset (did it "
                        "fail in prepare? see failures.jsonl)", source)  # fmt: skip
    if rid is None:
        if setting != 1:
            return EvalPair(uid, None, u, None, f"no reference listed (Setting {setting})", source)
        return EvalPair(uid, uid, u, u, None, source)
    r = by_id.get(rid)
    if r is None:
        return EvalPair(uid, rid, u, None, f"reference {rid} is not in the prepared dataset",
                        source)  # fmt: skip
    if setting == 1 and rid != uid:
        return EvalPair(uid, rid, u, None, "Setting 1 uses the utterance itself as reference, "
                        f"the list gives {rid}", source)  # fmt: skip
    if setting == 2 and r.speaker != u.speaker:
        return EvalPair(uid, rid, u, None, f"reference {rid} is speaker {r.speaker}, not "
                        f"{u.speaker} (Setting 2 is same-speaker)", source)  # fmt: skip
    if setting == 3 and r.speaker == u.speaker:
        return EvalPair(uid, rid, u, None, f"reference {rid} is the same speaker (Setting 3 is "
                        "an unseen speaker)", source)  # fmt: skip
    return EvalPair(uid, rid, u, r, None, source)
