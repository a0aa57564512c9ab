"""Reconciliation's report: JSON (stable schema, ``SCHEMA``), CSV (one row per difference) and an
HTML page for a bookkeeper (summary, an inline SVG chart of the last runs, the differences with
links). Pure functions: the caller stores the bytes."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from invoice_sync.sync.reconcile import SCHEMA, Comparison, DifferenceClass, Links

CSV_COLUMNS = (
    "class",
    "kind",
    "source_id",
    "number",
    "currency",
    "source_amount",
    "ledger_amount",
    "difference",
    "ledger_ids",
    "detail",
    "source_url",
    "ledger_urls",
    "direction",
)
# One colour per class (DifferenceClass order).
COLOURS = (
    "#c0392b",
    "#8e44ad",
    "#d35400",
    "#2980b9",
    "#16a085",
    "#f39c12",
    "#7f8c8d",
    "#27ae60",
    "#2c3e50",
    "#e84393",
    "#6c5ce7",
    "#00b894",
    "#fd79a8",
    "#0984e3",
)


def report_json(
    comparison: Comparison,
    *,
    connection_id: str,
    ledger: str,
    start: date,
    end: date,
    generated_at: datetime,
    links: Links,
    absence: str | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "connection_id": connection_id,
        "ledger": ledger,
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "generated_at": generated_at.isoformat(),
        "status": comparison.status,
        "complete": not comparison.incomplete,
        "incomplete": [
            {"side": side, "error": error} for side, error in sorted(comparison.incomplete.items())
        ],
        "summary": {
            "sides": {side: tally.as_json() for side, tally in comparison.sides.items()},
            "differences": comparison.counts(),
            "synced": comparison.synced,
            "unmarked_in_ledger": comparison.unmarked,
            # FreshBooks' payouts: a deposit slip a person matches, never a difference (design 3.9).
            "manual_deposit": comparison.manual_deposit,
            "directions": comparison.directions(),
        },
        "absence": absence,
        "differences": [d.as_json(links) for d in comparison.differences],
    }


def report_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["differences"]:
        writer.writerow(
            [
                " ".join(row[c]) if isinstance(row[c], list) else ("" if row[c] is None else row[c])
                for c in CSV_COLUMNS
            ]
        )
    return out.getvalue().encode()


def _chart(history: Sequence[dict[str, Any]]) -> str:
    """Stacked bars, one per run (oldest left), one colour per class; plain SVG, no script."""
    runs = list(history)[-30:]
    width, height, pad = 640, 200, 24
    classes = [c.value for c in DifferenceClass]
    highest = max([sum(r.get("differences", {}).values()) for r in runs] + [1])
    bar = (width - 2 * pad) / max(len(runs), 1)
    legend = height + 22 + -(-len(classes) // 3) * 16  # the legend: three classes a row
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{legend}" role="img" '
        f'aria-label="differences by class over the last {len(runs)} runs">',
        f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/>',
        f'<text x="2" y="{pad}" font-size="10">{highest}</text>',
    ]
    for index, run in enumerate(runs):
        y = float(height)
        for cls, colour in zip(classes, COLOURS, strict=False):
            count = int(run.get("differences", {}).get(cls, 0))
            if not count:
                continue
            h = (height - pad) * count / highest
            y -= h
            parts.append(
                f'<rect x="{pad + index * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(str(run.get("date")))} {cls}: '
                f"{count}</title></rect>"
            )
        if run.get("status") == "incomplete":
            parts.append(f'<text x="{pad + index * bar + 2:.1f}" y="{height - 4}" font-size="9">?</text>')
    for index, (cls, colour) in enumerate(zip(classes, COLOURS, strict=False)):
        x, y = pad + (index % 3) * 200, height + 18 + (index // 3) * 16
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" font-size="11">{cls}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _directions(directions: dict[str, Any] | None) -> str:
    """Both directions side by side: Stripe to the ledger (push) and the ledger to Stripe
    (payments back), their records by status and their differences."""
    if not directions:
        return ""
    e = html.escape
    to_ledger, to_source = directions["to_ledger"], directions["to_source"]

    def records(counts: dict[str, int]) -> str:
        return e(", ".join(f"{status} {n}" for status, n in counts.items()) or "none")

    back = (
        f"<td>{records(to_source['records'])}</td><td class=n>{to_source['differences']}</td>"
        f"<td>{to_source['ledger_payments_checked']} ledger payments matched to their records, "
        f"{to_source['invoices_checked']} Stripe invoices' money paid outside Stripe compared</td>"
        if to_source["payments_back"]
        else "<td>-</td><td class=n>-</td><td>payments back is off for this connection</td>"
    )
    return (
        '<table id="directions"><tr><th>direction</th><th>records</th><th>differences</th>'
        "<th>checked</th></tr>"
        f"<tr><th>Stripe to the ledger</th><td>{records(to_ledger['records'])}</td>"
        f"<td class=n>{to_ledger['differences']}</td><td>invoices, credit notes, payments, refunds; "
        f"{to_ledger.get('deposits_checked', 0)} payout deposits read from the ledger, "
        f"{to_ledger.get('manual_deposit', 0)} manual (a deposit slip to match by hand)</td></tr>"
        f"<tr><th>the ledger to Stripe</th>{back}</tr></table>"
    )


def report_html(report: dict[str, Any], history: Sequence[dict[str, Any]]) -> bytes:
    e = html.escape
    window = report["window"]
    status = report["status"]
    sides = report["summary"]["sides"]
    kinds = sorted({k for side in sides.values() for k in side["counts"]})
    summary_rows = "".join(
        f"<tr><th>{e(side)}</th>"
        + "".join(f"<td>{tally['counts'].get(k, 0)}</td>" for k in kinds)
        + f"<td>{e(', '.join(f'{v} {c}' for c, v in tally['invoice_totals'].items()) or '-')}</td></tr>"
        for side, tally in sides.items()
    )
    counts = "".join(
        f"<li>{e(cls)}: <strong>{n}</strong></li>" for cls, n in report["summary"]["differences"].items() if n
    )
    rows = "".join(
        "<tr>"
        f"<td>{e(d['class'])}</td><td>{e(d['kind'])}</td>"
        f'<td><a href="{e(d["source_url"])}">{e(d["source_id"])}</a></td>'
        f"<td>{e(d['number'] or '')}</td><td>{e(d['currency'] or '')}</td>"
        f"<td class=n>{e(d['source_amount'] or '')}</td><td class=n>{e(d['ledger_amount'] or '')}</td>"
        f"<td class=n>{e(d['difference'] or '')}</td>"
        "<td>"
        + " ".join(
            f'<a href="{e(u)}">{e(i)}</a>' for i, u in zip(d["ledger_ids"], d["ledger_urls"], strict=True)
        )
        + f"</td><td>{e(d['detail'])}</td></tr>"
        for d in report["differences"]
    )
    incomplete = "".join(
        f"<p class=warn>Incomplete: the {e(i['side'])} could not be read to the end ({e(i['error'])}). "
        "What could not be proven absent is not reported; the next run checks this window again.</p>"
        for i in report["incomplete"]
    )
    absence = f"<p class=warn>Absence: {e(report['absence'])}</p>" if report.get("absence") else ""
    directions = _directions(report["summary"].get("directions"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Reconciliation {e(report["connection_id"])} {e(window["from"])} to {e(window["to"])}</title>
<style>
body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:left}} td.n{{text-align:right}}
.clean{{color:#27ae60}} .differences{{color:#c0392b}} .incomplete{{color:#d35400}} .warn{{color:#d35400}}
</style></head><body>
<h1>Reconciliation: {e(report["connection_id"])} ({e(report["ledger"])})</h1>
<p>Window {e(window["from"])} to {e(window["to"])}, generated {e(report["generated_at"])}.
Status: <strong id="status" class="{e(status)}">{e(status)}</strong></p>
{incomplete}{absence}
<h2>Summary</h2>
<table id="summary"><tr><th>side</th>{"".join(f"<th>{e(k)}</th>" for k in kinds)}<th>invoice totals</th></tr>
{summary_rows}</table>
<ul>{counts or "<li>no differences</li>"}</ul>
{directions}
<p>{report["summary"]["synced"]} records synced in the window; {report["summary"]["unmarked_in_ledger"]}
ledger documents carry no invoice-sync marker and are not compared.</p>
<h2>Differences by class, last {min(len(history), 30)} runs</h2>
{_chart(history)}
<h2>Differences</h2>
<table id="differences"><tr><th>class</th><th>kind</th><th>source</th><th>number</th><th>currency</th>
<th>source amount</th><th>ledger amount</th><th>difference</th><th>ledger</th><th>detail</th></tr>
{rows}</table>
<p>Duplicates are never voided by invoice-sync: void the extra documents in the ledger.</p>
</body></html>
"""
    return page.encode()
