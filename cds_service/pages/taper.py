"""The printable taper plan (pure): HTML with an inline SVG step chart, no script and no external assets."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from cds_service.clinical.taper import TaperPlan

ADVICE = [
    (
        "Do not stop suddenly",
        "Stopping an opioid suddenly can cause withdrawal and make pain worse. Follow the "
        "steps: each one is small on purpose.",
    ),
    (
        "Withdrawal",
        "In the days after a step you may feel restless, sweaty, anxious, achy or have a runny nose, "
        "stomach cramps or diarrhoea, and poor sleep. This usually settles within a week or two.",
    ),
    (
        "If a step is too hard",
        "Stay on the current dose for longer rather than going back up, and speak to the "
        "practice. Severe withdrawal, much worse pain or low mood are reasons to pause.",
    ),
    (
        "Overdose risk",
        "Your body loses its tolerance as the dose comes down. Taking your old, higher dose after "
        "tapering could cause an overdose. Do not keep old supplies: return them to a pharmacy.",
    ),
    (
        "When to call the practice",
        "Call if you cannot cope with withdrawal, your pain or mood is much worse, you "
        "are using more than planned, or you have any questions.",
    ),
]


def _ome(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1')).normalize():f}"


def step_chart(plan: TaperPlan, width: int = 640, height: int = 240) -> str:
    """An SVG step chart of the daily OME over time."""
    left, right, top, bottom = 48, 16, 24, 36
    days = max(plan.duration_days, 1)
    peak = max((s.total_ome for s in plan.steps), default=Decimal(1)) or Decimal(1)

    def x(day: int) -> float:
        return left + (width - left - right) * day / days

    def y(value: Decimal) -> float:
        return top + float((height - top - bottom) * (1 - value / peak))

    start = plan.steps[0].starts
    points: list[str] = []
    for index, step in enumerate(plan.steps):
        day = (step.starts - start).days
        if index:
            points.append(f"{x(day):.1f},{y(plan.steps[index - 1].total_ome):.1f}")
        points.append(f"{x(day):.1f},{y(step.total_ome):.1f}")
    ticks = "".join(
        f'<line x1="{left - 4}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
        f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.0f}</text>'
        for v in (peak, peak / 2, Decimal(0))
    )
    weeks = "".join(
        f'<text x="{x(w * 7):.1f}" y="{height - 16}" text-anchor="middle" font-size="11">{w}</text>'
        for w in range(0, days // 7 + 1, max(1, days // 7 // 8 or 1))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Daily oral morphine equivalent over the weeks of the plan">'
        f"{ticks}{weeks}"
        f'<text x="{(left + width) / 2:.0f}" y="{height - 2}" text-anchor="middle" font-size="11">weeks</text>'
        f'<text x="{left}" y="{top - 4}" font-size="11">OME mg/day</text>'
        f'<polyline fill="none" stroke="#005eb8" stroke-width="2.5" points="{" ".join(points)}"/></svg>'
    )


def render_page(plan: TaperPlan, title: str = "Your opioid reduction plan") -> str:
    """The whole printable page (A4)."""
    rows = "".join(
        f"<tr><td>Week {plan.week_of(i)}<br><small>{step.starts.strftime('%d %b %Y')}</small></td>"
        f"<td>{escape(step.describe())}</td><td>{_ome(step.total_ome)}</td>"
        f"<td>{escape('; '.join(step.notes))}</td></tr>"
        for i, step in enumerate(plan.steps)
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in plan.notes + [f"Slower plan: {r}" for r in plan.slow_reasons])
    advice = "".join(f"<h3>{escape(h)}</h3><p>{escape(t)}</p>" for h, t in ADVICE)
    weeks = plan.duration_days // 7
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
@page {{ size: A4; margin: 15mm; }}
body {{ font-family: Arial, Helvetica, sans-serif; color: #212b32; max-width: 180mm; margin: 0 auto; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin-top: 18px; }} h3 {{ font-size: 14px;
margin: 10px 0 2px; }} p, li, td, th {{ font-size: 13px; line-height: 1.35; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border: 1px solid #aeb7bd; padding: 4px 6px;
text-align: left; vertical-align: top; }} th {{ background: #e8edee; }}
tr {{ page-break-inside: avoid; }} .chart {{ margin: 8px 0; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Starting dose: <strong>{plan.original_ome:.0f} mg a day</strong> oral morphine equivalent. The plan takes about
<strong>{weeks} weeks</strong> ({escape(plan.strategy)}, {escape(plan.pace)} pace). Each step lasts until the next
date; hold a step for longer if you need to, and never go back up.</p>
<div class="chart">{step_chart(plan)}</div>
<h2>Steps</h2>
<table><tr><th>When</th><th>Dose</th><th>OME mg/day</th><th>Notes</th></tr>{rows}</table>
{f"<h2>About this plan</h2><ul>{notes}</ul>" if notes else ""}
<h2>Advice for you</h2>{advice}
<p><small>Based on primary-care opioid tapering guidance (Opioids Aware, Faculty of Pain Medicine; NICE NG193).
Do not taper another dependence-forming medicine at the same time.</small></p>
</body></html>
"""
