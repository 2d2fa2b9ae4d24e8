"""Eval outputs: the summary per system, the table (rich, on stderr), results.json, results.csv,
results.md (the table as Markdown, for READMEs and notes) and index.html (table, plots, audio
players; all paths relative to the output folder).

Columns in the paper's order (Tables 1-4): LSE-C, LSE-D, then our landmark AV offset (signed
mean and mean absolute) and confidence, and phone-boundary error (lip sync without SyncNet
weights), WER (corpus level: errors / words, paper 4.2) and WER GRID, SECS, DNSMOS
OVRL/SIG/BAK/P808 (in place of UTMOS), RTF (generation / end to end).
A column without any value for a system shows "n/a" (e.g. LSE without --syncnet); `ok/all`
counts the utterances a system produced audio for against all that were asked.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dubcli.fsutil import atomic_write_text

# (header, key, format) in table order; "wer" is the corpus WER, "wer_grid" the corpus WER of the
# GRID sentences with the GRID grammar (paper 4.2's grammar-constrained protocol), "rtf_*" the
# pooled RTF.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("LSE-C", "lse_c", "{:.2f}"), ("LSE-D", "lse_d", "{:.2f}"),
    ("AV off (fr)", "av_offset", "{:+.2f}"), ("Abs AV off (fr)", "av_abs_offset", "{:.2f}"),
    ("AV conf", "av_conf", "{:.3f}"),
    ("Bound. err (ms)", "boundary_ms", "{:.1f}"), ("WER %", "wer", "{:.2f}"),
    ("WER GRID %", "wer_grid", "{:.2f}"),
    ("SECS", "secs", "{:.3f}"), ("OVRL", "dnsmos_ovrl", "{:.2f}"), ("SIG", "dnsmos_sig", "{:.2f}"),
    ("BAK", "dnsmos_bak", "{:.2f}"), ("P808", "dnsmos_p808", "{:.2f}"),
    ("RTF gen", "rtf_gen", "{:.3f}"), ("RTF e2e", "rtf_e2e", "{:.3f}"),
)  # fmt: skip
# The terminal table's narrower headers and labels (the HTML/CSV keep the full ones).
SHORT = {"AV off (fr)": "AVoff", "Abs AV off (fr)": "AbsOff", "AV conf": "AVconf",
         "Bound. err (ms)": "Bnd ms", "WER %": "WER%", "RTF gen": "RTFgen",
         "RTF e2e": "RTFe2e"}  # fmt: skip
# Label prefixes and their short forms, tried in order ("DiFlowDubber NFE 8" -> "DiFlow 8").
SHORT_LABELS = {"Ground truth": "GT", "Codec (ceiling)": "Codec", "DiFlowDubber NFE ": "DiFlow ",
                "DiFlowDubber": "DiFlow", "Oracle: GT durations + content": "Or.dur+cont",
                "Oracle: GT durations": "Or.dur"}  # fmt: skip
METRIC_KEYS = tuple(k for _, k, _ in COLUMNS if not k.startswith(("rtf", "wer")))


def summarize(
    records: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]], systems: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per system: utterances ok / failed, mean and count of each metric, corpus WER, pooled
    RTF, and how often each metric group could not be computed."""
    from dubcli.eval.systems import label
    from dubcli.eval.wer import corpus_wer

    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        recs = [r for r in records if r["system"] == system]
        failed = [f for f in failures if f["system"] in (system, "*")]
        metrics = {}
        for key in METRIC_KEYS:
            vals = [r[key] for r in recs if key in r and np.isfinite(r[key])]
            metrics[key] = {"mean": float(np.mean(vals)) if vals else None, "n": len(vals)}
        wers = {}
        for key, hyp in (("wer", "hyp"), ("wer_grid", "hyp_grid")):
            scored = [r for r in recs if r.get(hyp) is not None]
            wers[key] = None
            if scored:
                w = corpus_wer([r["text"] for r in scored], [r[hyp] for r in scored])
                wers[key] = {"wer": w.wer, "substitutions": w.substitutions,
                             "deletions": w.deletions, "insertions": w.insertions,
                             "n_ref": w.n_ref, "n": len(scored),
                             "mean_utterance_wer": w.mean_utterance_wer}  # fmt: skip
        errors: dict[str, int] = {}
        for r in recs:
            for group in r.get("errors", {}):
                errors[group] = errors.get(group, 0) + 1
        out[system] = {
            "label": label(system),
            "utterances": len(recs),
            "failed": len(failed),
            "metrics": metrics,
            "wer": wers["wer"],
            "wer_grid": wers["wer_grid"],
            "rtf": _rtf(recs),
            "metric_errors": errors,
        }
    return out


def _rtf(recs: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    out = {}
    for kind in ("gen", "e2e"):
        timed = [r for r in recs if r.get(f"seconds_{kind}") is not None]
        audio = sum(r["seconds"] for r in timed)
        if timed and audio > 0:
            out[kind] = sum(r[f"seconds_{kind}"] for r in timed) / audio
    if not out:
        return None
    return {**out, "seconds_audio": sum(r["seconds"] for r in recs)}


def cell(summary: dict[str, Any], key: str) -> float | None:
    """The number a table shows for one system and column (None: n/a). WER in percent."""
    if key in ("wer", "wer_grid"):
        w = summary.get(key)
        return None if w is None else 100.0 * w["wer"]
    if key.startswith("rtf_"):
        r = summary.get("rtf") or {}
        return r.get(key[4:])
    return (summary["metrics"].get(key) or {}).get("mean")


def _partial(summary: dict[str, Any], key: str) -> bool:
    """True when a mean covers fewer utterances than the system produced audio for."""
    if key.startswith("rtf_") or key == "wer_grid":  # wer_grid: only GRID sentences, by design
        return False
    n = (summary.get("wer") or {}).get("n", 0) if key == "wer" else summary["metrics"][key]["n"]
    return n < summary["utterances"]


PARTIAL_NOTE = ("* mean over fewer utterances than were dubbed: the metric failed on the others "
                "(metric_errors in results.json)")  # fmt: skip


def table_rows(result) -> list[list[str]]:
    """[system label, one string per COLUMNS entry, 'ok/all'] per system."""
    rows = []
    for system in result.systems:
        s = result.summary[system]
        vals = [cell(s, key) for _, key, _ in COLUMNS]
        texts = [
            "n/a" if v is None else fmt.format(v) + ("*" if _partial(s, key) else "")
            for (_, key, fmt), v in zip(COLUMNS, vals, strict=True)
        ]
        rows.append([s["label"], *texts, f"{s['utterances']}/{result.n_utterances}"])
    return rows


def measured_columns(rows: Sequence[Sequence[str]]) -> tuple[list[int], list[str]]:
    """(indices into COLUMNS with a value for at least one row, headers of the others)."""
    keep = [i for i in range(len(COLUMNS)) if any(r[1 + i] != "n/a" for r in rows)]
    return keep, [COLUMNS[i][0] for i in range(len(COLUMNS)) if i not in keep]


def print_table(result, console=None) -> None:
    """The summary table on stderr (rich), with the setup line under it."""
    from rich import box
    from rich.table import Table

    from dubcli.console import console as default_console
    from dubcli.console import print_table as print_whole

    con = console or default_console()
    table = Table(title=f"dubcli eval: Setting {result.setting}, {result.n_utterances} "
                  f"utterances ({result.config.get('split')})", box=box.SIMPLE_HEAD,
                  padding=(0, 1), collapse_padding=True)  # fmt: skip
    rows = table_rows(result)
    keep, dropped = measured_columns(rows)
    table.add_column("System", no_wrap=True)
    for i in keep:
        table.add_column(SHORT.get(COLUMNS[i][0], COLUMNS[i][0]), justify="right", no_wrap=True)
    table.add_column("ok", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(_short_label(row[0]), *(row[1 + i] for i in keep), row[-1])
    print_whole(table, con)
    con.print(setup_line(result), markup=False, highlight=False)
    if dropped:
        con.print(f"not measured: {', '.join(dropped)}", markup=False, highlight=False)
    if any("*" in c for row in rows for c in row[1:]):
        con.print(PARTIAL_NOTE, markup=False, highlight=False)
    if result.failures:
        con.print(f"{len(result.failures)} failure(s): see {result.files.get('json', 'results')}",
                  markup=False)  # fmt: skip


def _short_label(text: str) -> str:
    for long, short in SHORT_LABELS.items():
        if text.startswith(long):
            return short + text[len(long) :]
    return text


def setup_line(result) -> str:
    m = result.config.get("model") or {}
    nfe = result.config.get("nfe")
    nfe = ", ".join(map(str, nfe)) if isinstance(nfe, list) else nfe
    parts = [f"NFE {nfe}", f"seed {result.config.get('seed')}"]
    if m:
        parts += [f"{m.get('config')} model, {m.get('params'):,} params", str(m.get("device"))]
    parts.append(str(result.config.get("recognizer")))
    return "; ".join(parts)


def write_outputs(result, plotted: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """results.json, results.csv, results.md and (with plots) index.html in result.out_dir."""
    out = result.out_dir
    files = {"json": str(out / "results.json"), "csv": str(out / "results.csv"),
             "md": str(out / "results.md")}  # fmt: skip
    if plotted is not None:
        files["html"] = str(out / "index.html")
    body = {**result.to_json(full=True), "files": files}
    atomic_write_text(out / "results.json", json.dumps(body, indent=1, default=_json) + "\n")
    atomic_write_text(out / "results.csv", to_csv(result))
    atomic_write_text(out / "results.md", to_markdown(result))
    if plotted is not None:
        atomic_write_text(out / "index.html", to_html(result, plotted))
    return files


def _json(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def to_csv(result) -> str:
    """One row per (utterance, system), then one summary row per system (row = "summary")."""
    keys = ["row", "system", "id", "ref_id", "speaker", "seconds", *METRIC_KEYS, "wer",
            "wer_grid", "rtf_gen", "rtf_e2e", "seconds_gen", "seconds_e2e", "hyp", "hyp_grid",
            "text", "errors",
            "notes"]  # fmt: skip
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.records:
        row = {**r, "row": "utterance", "errors": "; ".join(f"{k}: {v}" for k, v in
                                                             r["errors"].items()),
               "notes": "; ".join(r["notes"])}  # fmt: skip
        w.writerow(row)
    for f in result.failures:
        w.writerow({"row": "failure", "system": f["system"], "id": f["id"],
                    "errors": f"{f['stage']}: {f['reason']}"})  # fmt: skip
    for system in result.systems:
        s = result.summary[system]
        row = {"row": "summary", "system": system, "id": f"{s['utterances']}/"
               f"{result.n_utterances}"}  # fmt: skip
        for key in (*METRIC_KEYS, "wer", "wer_grid", "rtf_gen", "rtf_e2e"):
            v = cell(s, key)
            row[key] = "" if v is None else (v / 100.0 if key.startswith("wer") else v)
        w.writerow(row)
    return buf.getvalue()


def to_markdown(result) -> str:
    """The summary table as a GitHub Markdown table, with its title, setup line and notes."""
    rows = table_rows(result)
    keep, dropped = measured_columns(rows)
    heads = ["System", *(COLUMNS[i][0] for i in keep), "ok"]
    lines = [f"Setting {result.config.get('setting', result.setting)}, "
             f"{result.n_utterances} utterances of {result.config.get('split')}; "
             f"{setup_line(result)}", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]  # fmt: skip
    for r in rows:
        lines.append("| " + " | ".join([r[0], *(r[1 + i] for i in keep), r[-1]]) + " |")
    if dropped:
        lines += ["", f"Not measured (n/a for every system): {', '.join(dropped)}."]
    if any("*" in c for r in rows for c in r[1:]):
        lines += ["", "\\" + PARTIAL_NOTE]  # escaped: a leading "* " would start a list
    return "\n".join(lines) + "\n"


def to_html(result, plotted: dict[str, dict[str, str]]) -> str:
    """A self-contained page: the table, then per utterance its text, players and plots."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in ["System", *[c[0] for c in COLUMNS], "ok/all"])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                   for row in table_rows(result))  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>dubcli eval, Setting {result.setting}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child"
        "{text-align:left}img{max-width:100%}.utt{margin-top:2em;border-top:1px solid #999}"
        "</style></head><body>",
        f"<h1>dubcli eval: Setting {result.setting}</h1>",
        f"<p>{e(str(result.config.get('split')))}, {result.n_utterances} utterances; "
        f"{e(setup_line(result))}</p>",
        f"<table><tr>{head}</tr>{body}</table><p><small>{e(PARTIAL_NOTE)}</small></p>",
    ]
    if result.failures:
        items = "".join(f"<li>{e(f['id'])} [{e(f['system'])}] {e(f['stage'])}: "
                        f"{e(f['reason'])}</li>" for f in result.failures)  # fmt: skip
        parts.append(f"<h2>Failures ({len(result.failures)})</h2><ul>{items}</ul>")
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in result.records:
        by_id.setdefault(r["id"], []).append(r)
    for uid, recs in by_id.items():
        parts.append(f"<div class='utt'><h3>{e(uid)}</h3><p>&ldquo;{e(recs[0]['text'])}"
                     f"&rdquo; (reference {e(str(recs[0]['ref_id']))})</p><table>")  # fmt: skip
        for r in recs:
            label = result.summary[r["system"]]["label"]
            hyp = f"heard: {e(r['hyp'])}" if r.get("hyp") is not None else ""
            parts.append(f"<tr><td>{e(label)}</td><td><audio controls preload='none' "
                         f"src='{e(r['audio'])}'></audio></td><td>{hyp}</td></tr>")  # fmt: skip
        parts.append("</table>")
        for name, rel in sorted(plotted.get(uid, {}).items()):
            parts.append(f"<p><img alt='{e(name)}' src='{e(rel)}'></p>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
