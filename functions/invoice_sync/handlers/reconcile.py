"""EventBridge Scheduler -> the daily reconciliation of every active connection.

By default a run checks the UTC day before now, and before it every day of the last
``RECONCILE_PICKUP_DAYS`` left incomplete (a ledger or Stripe that failed mid-listing): so an
outage yields a report marked incomplete and the next run completes it. Reconciliation's days are
UTC days, as the CLI's; the schedule's time zone only says when it fires (the UTC day before now
is over in every zone, where "yesterday" east of UTC may still be running in UTC). The input may
name a day (``{"date": "2026-11-25"}``) to check that day again.

Differences and incomplete runs are reported and alerted, not raised: they are findings, not
failures. A connection that cannot be set up at all (no Stripe key, no mappings) raises after the
others are checked, so Lambda's asynchronous retries, then the dead-letter queue, take it; the
retry skips the days already given a complete verdict. Nothing is re-queued from here: repair is
an operator's ``invoice-sync reconcile --repair`` after reading the report.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.models.sync import utcnow
from invoice_sync.observability import logged, metrics
from invoice_sync.settings import get_settings
from invoice_sync.sync.reconcile_service import ReconcileFailed, run_schedule

# This function's use case, loaded with the handler (Lambda's init phase) rather than on the first
# run; the handler asks ``bootstrap`` for the service so a test may stand one in.
from invoice_sync.wiring import reconcile as _wiring  # noqa: F401


@logged()
@metrics.log_metrics
def handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    now = utcnow()
    named = date.fromisoformat(event["date"]) if isinstance(event, dict) and event.get("date") else None
    try:
        runs = run_schedule(
            bootstrap.reconcile(),
            connections=bootstrap.mappings(),
            sides=bootstrap.reconcile_sides,
            day=named or (now - timedelta(days=1)).date(),
            now=now,
            lookback=settings.reconcile_pickup_days,
            again=named is not None,
        )
    except ReconcileFailed:
        metrics.add_metric(name="ReconcileFailed", unit=MetricUnit.Count, value=1)
        raise
    checked = [r for r in runs if r.result]
    differences = sum(len(r.result.comparison.differences) for r in checked if r.result)
    incomplete = sum(1 for r in checked if r.result and r.result.comparison.incomplete)
    metrics.add_metric(name="ReconciledDays", unit=MetricUnit.Count, value=len(checked))
    metrics.add_metric(name="ReconcileDifferences", unit=MetricUnit.Count, value=differences)
    metrics.add_metric(name="ReconcileIncomplete", unit=MetricUnit.Count, value=incomplete)
    # Days far below their weekday's usual count of synced records (none synced on a day that
    # normally has traffic among them): the QuietDay alarm's figure.
    quiet = sum(1 for r in checked if r.result and r.result.report.get("absence"))
    metrics.add_metric(name="QuietDays", unit=MetricUnit.Count, value=quiet)
    return {
        "reconciled": [
            {
                "connection_id": r.connection_id,
                "date": r.day.isoformat(),
                "status": r.result.comparison.status,
                "report": f"s3://{bootstrap.reconcile().reports.bucket}/{r.result.prefix}report.html",
                "alerted": r.result.alerted,
            }
            for r in checked
            if r.result
        ]
    }
