"""EventBridge Scheduler -> the night's exports and the daily report.

The schedule's input may name a day (``{"date": "2026-11-25"}``) to export that day instead of
the one before now in the export's time zone (a manual re-run from the console). A failed export
raises, so Lambda's asynchronous retries (then the dead-letter queue) take it from there; the
connections already exported and reported that night are not done again.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.models.sync import utcnow
from invoice_sync.observability import logged, logger, metrics, token_days_left
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.sync.daily_report import run_night

# This function's use case, loaded with the handler (Lambda's init phase) rather than on the first
# night; the handler asks ``bootstrap`` for the service so a test may stand one in.
from invoice_sync.wiring import export as _wiring  # noqa: F401


@logged()
@metrics.log_metrics
def handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    day = date.fromisoformat(event["date"]) if isinstance(event, dict) and event.get("date") else None
    exporter, report = bootstrap.nightly_export()
    now = utcnow()
    outcomes = run_night(
        exporter=exporter,
        report=report,
        connections=bootstrap.mappings(),
        marks=bootstrap.state(),
        now=now,
        day=day,
    )
    documents = sum(o.result.tally.count for o in outcomes if o.result)
    metrics.add_metric(name="ExportedConnections", unit=MetricUnit.Count, value=len(outcomes))
    metrics.add_metric(name="ExportedDocuments", unit=MetricUnit.Count, value=documents)
    # Once a night, the soonest refresh-token expiry of any connection (the alarm's 14 days).
    dates = (bootstrap.state().token_dates(c.connection_id) for c in bootstrap.mappings().connections())
    days_left = token_days_left((d.refresh_expires_at if d else None for d in dates), now)
    if days_left is not None:
        metrics.add_metric(name="TokenExpiresInDays", unit=MetricUnit.Count, value=days_left)
    # Summaries of alert storms whose push processes are gone: sent at the latest tonight. One
    # refused stays due (not marked sent) for the next flush, so the night's run goes on.
    if isinstance(report.alerts, AlertPublisher):
        try:
            summaries = report.alerts.flush_due(everything=True)
        except Exception as error:  # noqa: BLE001 - the export is done; the summary stays due
            logger.error("alert summaries not sent", extra={"error": type(error).__name__})
        else:
            metrics.add_metric(name="AlertSummaries", unit=MetricUnit.Count, value=summaries)
    return {
        "exported": [
            {"connection_id": o.connection_id, "location": f"s3://{o.result.bucket}/{o.result.prefix}"}
            for o in outcomes
            if o.result
        ]
    }
