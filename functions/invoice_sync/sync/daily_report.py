"""The daily report: one e-mail (through SNS) after the night's exports.

Per connection: the documents of the day by type and sync status, totals per currency, what is
parked and why, failures, the reconciliation verdict (issue 6 records it; until then "not run
yet"), token health from the token dates push records (never the token secrets), and presigned
links to the workbook and the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from invoice_sync.observability import logger
from invoice_sync.store.exports import ExportBucket
from invoice_sync.store.sync_state import TokenDates
from invoice_sync.sync.export import (
    Alerts,
    Connections,
    ExportFailed,
    ExportResult,
    ExportService,
    Window,
    previous_day,
)

NOT_RUN = "not run yet"


class ReportFacts(Protocol):
    def token_dates(self, connection_id: str) -> TokenDates | None: ...

    def reconciliation(self, connection_id: str, day: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Outcome:
    """One connection's night: its export, or why there is none."""

    connection_id: str
    window: Window
    result: ExportResult | None = None
    error: str | None = None


def _span(seconds: float) -> str:
    sign, seconds = ("-" if seconds < 0 else ""), abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{sign}{days}d {hours}h"
    return f"{sign}{hours}h {rest // 60}m"


def token_health(dates: TokenDates | None, now: datetime) -> dict[str, Any]:
    if dates is None:
        return {"recorded": False}

    def seconds(moment: datetime | None, later: bool) -> int | None:
        if moment is None:
            return None
        return int(((moment - now) if later else (now - moment)).total_seconds())

    return {
        "recorded": True,
        "refreshed_at": dates.refreshed_at.isoformat() if dates.refreshed_at else None,
        "age_seconds": seconds(dates.refreshed_at, later=False),
        "access_expires_at": dates.access_expires_at.isoformat() if dates.access_expires_at else None,
        "refresh_expires_at": dates.refresh_expires_at.isoformat() if dates.refresh_expires_at else None,
        "refresh_expires_in_seconds": seconds(dates.refresh_expires_at, later=True),
    }


def _token_line(health: dict[str, Any]) -> str:
    if not health["recorded"]:
        return "no token dates recorded yet (push records them when it next refreshes the tokens)"
    parts = []
    if health["age_seconds"] is not None:
        parts.append(f"refreshed {_span(health['age_seconds'])} ago")
    if health["refresh_expires_in_seconds"] is not None:
        left = health["refresh_expires_in_seconds"]
        parts.append(
            f"refresh token expires in {_span(left)} ({health['refresh_expires_at'][:10]})"
            if left > 0
            else "refresh token EXPIRED: reconnect the ledger"
        )
    return "; ".join(parts) or "dates unknown"


class DailyReport:
    def __init__(
        self, *, facts: ReportFacts, bucket: ExportBucket, alerts: Alerts, link_seconds: int
    ) -> None:
        self.facts = facts
        self.bucket = bucket
        self.alerts = alerts
        self.link_seconds = link_seconds

    def build(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[str, str, dict[str, Any]]:
        """(subject, text, details) of the report on these connections' night."""
        sections: list[str] = []
        details: list[dict[str, Any]] = []
        synced = parked = failed = 0
        days = sorted({o.window.day for o in outcomes})
        for outcome in outcomes:
            text, data = self._section(outcome, now)
            sections.append(text)
            details.append(data)
            documents = data.get("documents", {})
            synced += sum(c.get("synced", 0) for c in documents.values())
            parked += sum(data.get("parked", {}).values())
            failed += outcome.error is not None
        day = days[0].isoformat() if len(days) == 1 else ", ".join(d.isoformat() for d in days)
        subject = f"invoice-sync daily report {day}: {synced} synced, {parked} parked"
        if failed:
            subject += f", {failed} export{'s' if failed > 1 else ''} failed"
        text = "\n\n".join(sections) or "No connections are registered."
        return subject, text, {"kind": "daily_report", "date": day, "connections": details}

    def send(self, outcomes: Sequence[Outcome], now: datetime) -> str:
        subject, text, details = self.build(outcomes, now)
        self.alerts.publish(subject, text, details)
        return subject

    def _section(self, outcome: Outcome, now: datetime) -> tuple[str, dict[str, Any]]:
        window = outcome.window
        head = f"== {outcome.connection_id}: {window.day.isoformat()} ({window.time_zone})"
        reconciliation = self.facts.reconciliation(outcome.connection_id, window.day.isoformat())
        recon_text = f"{reconciliation[0]}: {reconciliation[1]}" if reconciliation else NOT_RUN
        health = token_health(self.facts.token_dates(outcome.connection_id), now)
        data: dict[str, Any] = {
            "connection_id": outcome.connection_id,
            "window": window.json(),
            "reconciliation": recon_text,
            "tokens": health,
        }
        if outcome.result is None:
            data["export_error"] = outcome.error
            lines = [
                head,
                f"EXPORT FAILED: {outcome.error}. Nothing was published for this day; it is retried.",
                f"Reconciliation: {recon_text}",
                f"Tokens: {_token_line(health)}",
            ]
            return "\n".join(lines), data
        result = outcome.result
        tally = result.tally.json()
        data.update(tally)
        lines = [head]
        if result.tally.count == 0:
            lines.append("No documents were synced or parked on this day: the files hold their headers only.")
        else:
            lines.append("Documents:")
            for kind, statuses in tally["documents"].items():
                detail = ", ".join(f"{status} {count}" for status, count in statuses.items())
                lines.append(f"  {kind}: {sum(statuses.values())} ({detail})")
            lines.append("Totals synced, per currency:")
            for kind, by_currency in tally["synced_totals"].items():
                amounts = ", ".join(f"{amount} {currency}" for currency, amount in by_currency.items())
                lines.append(f"  {kind}: {amounts}")
        parked = tally["parked"]
        lines.append(f"Parked: {sum(parked.values())}" if parked else "Parked: none")
        lines.extend(f"  {reason}: {count}" for reason, count in parked.items())
        failures = {
            status: sum(statuses.get(status, 0) for statuses in tally["documents"].values())
            for status in ("rejected", "failed")
        }
        failing = {status: count for status, count in failures.items() if count}
        lines.append(
            "Failures: " + (", ".join(f"{count} {status}" for status, count in failing.items()) or "none")
        )
        if tally["records_without_summary"]:
            lines.append(
                f"  {tally['records_without_summary']} records predate export summaries: blanks in the files"
            )
        lines.append(f"Reconciliation: {recon_text}")
        lines.append(f"Tokens: {_token_line(health)}")
        links = {
            "workbook": self.bucket.presign(result.workbook_key, self.link_seconds),
            "manifest": self.bucket.presign(result.manifest_key, self.link_seconds),
        }
        data["links"] = links
        data["location"] = f"s3://{result.bucket}/{result.prefix}"
        if result.manifest.get("workbook_sheets_omitted"):
            lines.append("  The day is too large for a workbook: open the CSV files (the workbook says so).")
        hours = self.link_seconds // 3600
        lines.append(f"Files: s3://{result.bucket}/{result.prefix}")
        lines.append(f"  workbook ({hours} h link, or until the signing session ends): {links['workbook']}")
        lines.append(f"  manifest: {links['manifest']}")
        return "\n".join(lines), data


REPORTED_SECONDS = 3 * 24 * 3600


class Marks(Protocol):
    def alert_sent(self, key: str) -> bool: ...

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None: ...


def run_night(
    *,
    exporter: ExportService,
    report: DailyReport,
    connections: Connections,
    marks: Marks,
    now: datetime,
    day: date | None = None,
) -> list[Outcome]:
    """Exports every active connection's day (by default the one before ``now`` in the export's
    time zone) and sends each connection's report as soon as its export ends: one message per
    connection keeps each well under SNS's 256 KB (presigned links are long), and a failure to
    send one never makes the others' exports run again. A connection exported and reported by an
    earlier attempt of the same night is left alone, so the scheduler's retry of a night where one
    export failed redoes that one only. Raises ``ExportFailed`` (after the reports) if any failed."""
    day = day or previous_day(now, exporter.time_zone)
    outcomes: list[Outcome] = []
    unsent: list[str] = []
    for connection in connections.connections():
        if not connection.active or marks.alert_sent(_reported(connection.connection_id, day)):
            continue
        try:
            result = exporter.export(connection.connection_id, day)
            outcome = Outcome(connection.connection_id, result.window, result)
        except ExportFailed as error:
            cause = error.__cause__ or error
            outcome = Outcome(
                connection.connection_id,
                Window.of(day, exporter.time_zone),
                error=f"{type(cause).__name__}: {cause}",
            )
        outcomes.append(outcome)
        try:
            report.send([outcome], now)
        except Exception as error:  # noqa: BLE001 - the next connections still export; retried below
            logger.warning(
                "report not sent", extra={"connection_id": outcome.connection_id, "error": str(error)}
            )
            unsent.append(outcome.connection_id)
            continue
        if outcome.result is not None:
            marks.mark_alert_sent(_reported(outcome.connection_id, day), REPORTED_SECONDS)
    failed = [o.connection_id for o in outcomes if o.error or o.connection_id in unsent]
    if failed:
        raise ExportFailed(f"exports failed for {', '.join(failed)} ({day.isoformat()})")
    return outcomes


def _reported(connection_id: str, day: date) -> str:
    return f"report#{connection_id}#{day.isoformat()}"
