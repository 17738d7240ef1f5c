"""The page a card's ``source.url`` opens: who made the card, from which rules and data, and their review dates."""

from __future__ import annotations

from html import escape

from cds_service import __version__
from cds_service.assess import Assessor


def about_page(assessor: Assessor) -> str:
    rows = "\n".join(
        f"<tr><td><code>{escape(r.id)}</code></td><td>{escape(r.title)}</td><td>{escape(r.card.indicator)}</td>"
        f"<td>{escape(r.provenance.date_reviewed)}</td>"
        f"<td>{escape(r.provenance.checked_by)}</td></tr>"
        for r in assessor.rule_set.rules
    )
    settings = "\n".join(
        f"<tr><td><code>{escape(s.name)}</code></td><td>{escape(str(s.value))}</td><td>{escape(s.source)}</td></tr>"
        for s in assessor.rule_set.settings.values()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Opioid safety (opioid-cds)</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}}</style></head>
<body><h1>Opioid safety (opioid-cds {escape(__version__)})</h1>
<p>Clinical decision support for opioid prescribing in UK primary care. Cards are raised by the rules below from the
patient's prescriptions: total daily oral morphine equivalent (profile <code>{escape(assessor.profile)}</code>,
factors from OpenPrescribing / BNF / Opioids Aware), risky combinations, co-prescribing with sedatives and
repeat-prescription review (NICE NG193, Opioids Aware, MHRA).</p>
<h2>Rules</h2><table><tr><th>Rule</th><th>Title</th><th>Indicator</th><th>Reviewed</th><th>Checked by</th></tr>
{rows}</table>
<h2>Thresholds</h2><table><tr><th>Setting</th><th>Value</th><th>Source</th></tr>
{settings}</table></body></html>
"""
