"""Outputs of a batch run: CSV, and a self-contained HTML report (counts, distribution, patients to invite)."""

from __future__ import annotations

import csv
import heapq
import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

SEDATIVES = {"gabapentinoid", "benzodiazepine", "z-drug"}
SEVERITY = {"critical": 100, "warning": 10, "info": 1}
BINS = [0, 1, 50, 90, 120, 200, 300, 500]
INVITE_LIMIT = 500


def _records(path: Path):
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def write_csv(records: Path, out: Path) -> None:
    columns = [
        "patient",
        "source",
        "total_ome_mg_per_day",
        "total_ome_mg_per_day_min",
        "ome_complete",
        "rules",
        "card_summaries",
        "data_quality",
        "not_counted",
        "error",
    ]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in _records(records):
            writer.writerow(
                [
                    r["patient"],
                    r["source"],
                    r["total_ome_mg_per_day"],
                    r["total_ome_mg_per_day_min"],
                    r["ome_complete"],
                    " ".join(r["rules"]),
                    " | ".join(c["summary"] for c in r["cards"]),
                    " | ".join(r["data_quality"]),
                    " | ".join(r["not_counted"]),
                    r["error"] or "",
                ]
            )


def summarise(records: Path, high: float = 120) -> dict[str, Any]:
    """Counts for the report, streamed (only the top patients to invite are kept)."""
    total = errors = at_or_above = on_opioid = 0
    rules: Counter[str] = Counter()
    bins = [0] * len(BINS)
    searches = Counter()
    invite: list[tuple[float, int, dict[str, Any]]] = []
    for index, record in enumerate(_records(records)):
        total += 1
        if record.get("error"):
            errors += 1
        rules.update(record["rules"])
        ome = record.get("total_ome_mg_per_day") or 0
        classes = set(record.get("classes") or [])
        if "opioid" in classes:
            on_opioid += 1
            bins[max(i for i, b in enumerate(BINS) if ome >= b)] += 1
        if ome >= high:
            at_or_above += 1
            searches["OME at or above 120 mg/day"] += 1
        if "immediate-release-fentanyl" in classes:
            searches["Immediate-release fentanyl"] += 1
        if "opioid" in classes and classes & SEDATIVES:
            searches["Opioid with a gabapentinoid, benzodiazepine or Z-drug"] += 1
        if {"strong-opioid", "weak-opioid"} <= classes:
            searches["Strong and weak opioids together"] += 1
        score = sum(SEVERITY[c["indicator"]] for c in record["cards"]) + ome / 100
        if record["cards"]:
            entry = (
                score,
                -index,
                {
                    "patient": record["patient"],
                    "ome": ome,
                    "score": score,
                    "cards": [c["summary"] for c in record["cards"]],
                },
            )
            if len(invite) < INVITE_LIMIT:
                heapq.heappush(invite, entry)
            else:
                heapq.heappushpop(invite, entry)
    return {
        "total": total,
        "errors": errors,
        "on_opioid": on_opioid,
        "at_or_above": at_or_above,
        "rules": rules,
        "bins": bins,
        "searches": searches,
        "invite": [e[2] for e in sorted(invite, reverse=True)],
        "high": high,
    }


def _histogram(bins: list[int], width: int = 640, height: int = 220) -> str:
    left, bottom, top = 40, 40, 16
    peak = max(bins) or 1
    bar = (width - left - 10) / len(bins)
    parts = []
    for i, count in enumerate(bins):
        h = (height - top - bottom) * count / peak
        x, y = left + i * bar, height - bottom - h
        label = f"{BINS[i]}+" if i == len(BINS) - 1 else f"{BINS[i]}-{BINS[i + 1]}"
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar - 4:.1f}" height="{h:.1f}" fill="#005eb8"/>'
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
            f'font-size="11">{label}</text>'
            f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="11">{count}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Patients on opioids by total daily OME">{"".join(parts)}'
        f'<text x="{width / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11">'
        f"total daily oral morphine equivalent, mg/day</text></svg>"
    )


def write_report(records: Path, out: Path, profile: str = "uk", high: float = 120) -> dict[str, Any]:
    data = summarise(records, high)
    share = 100 * data["at_or_above"] / data["on_opioid"] if data["on_opioid"] else 0
    rules = "".join(f"<tr><td><code>{escape(r)}</code></td><td>{n}</td></tr>" for r, n in data["rules"].most_common())
    searches = "".join(
        f"<tr><td>{escape(s)}</td><td>{data['searches'].get(s, 0)}</td></tr>"
        for s in (
            "OME at or above 120 mg/day",
            "Immediate-release fentanyl",
            "Opioid with a gabapentinoid, benzodiazepine or Z-drug",
            "Strong and weak opioids together",
        )
    )
    invite = "".join(
        f"<tr><td>{i + 1}</td><td>{escape(p['patient'])}</td><td>{p['ome']:.0f}</td>"
        f"<td>{'<br>'.join(escape(c) for c in p['cards'])}</td></tr>"
        for i, p in enumerate(data["invite"])
    )
    out.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Opioid review: practice report</title>
<style>body{{font-family:Arial,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#212b32}}
table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #aeb7bd;padding:.25rem .5rem;text-align:left;
vertical-align:top;font-size:13px}}th{{background:#e8edee}}.big{{font-size:28px;font-weight:bold}}</style></head>
<body><h1>Opioid review: practice report</h1>
<p>{data["total"]} patients evaluated ({data["errors"]} with errors); {data["on_opioid"]} on an opioid.
OME profile <code>{escape(profile)}</code>.</p>
<p><span class="big">{share:.1f}%</span> of patients on opioids are at or above {high:.0f} mg/day oral morphine
equivalent ({data["at_or_above"]}).</p>
<h2>Distribution of total daily OME</h2>{_histogram(data["bins"])}
<h2>UK opioid searches</h2><table><tr><th>Search</th><th>Patients</th></tr>{searches}</table>
<h2>Cards raised, by rule</h2><table><tr><th>Rule</th><th>Patients</th></tr>{rules}</table>
<h2>Patients to invite for review</h2><p>Most urgent first (critical cards, then warnings, then total OME); the first
{INVITE_LIMIT} shown.</p>
<table><tr><th>#</th><th>Patient</th><th>OME mg/day</th><th>Cards</th></tr>{invite}</table>
</body></html>
""",
        encoding="utf-8",
    )
    return data
