"""SQS sync queue -> ledger. Partial batch failures: only the failed messages come back.

The batch is handed to push whole rather than record by record (Powertools' BatchProcessor):
fresh invoices of one connection then reach the ledger as one batch request. The SQS event's
records are read as the dicts they are (Powertools' data classes cost some 40 ms of cold start to
read two fields).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from invoice_sync import bootstrap
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.sync import utcnow
from invoice_sync.observability import (
    day_quota_used_percent,
    emit_parked,
    logged,
    logger,
    metrics,
    webhook_to_ledger_ms,
)
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.sync.push import Outcome

# This function's use case, loaded with the handler (Lambda's init phase) rather than on the first
# batch; the handler asks ``bootstrap`` for the service so a bench or test may stand one in.
from invoice_sync.wiring import push as _wiring  # noqa: F401


@logged()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed: list[str] = []
    accepted: list[tuple[str, SyncMessage]] = []
    for record in event["Records"]:
        message_id: str = record["messageId"]
        try:
            accepted.append((message_id, SyncMessage.model_validate_json(record["body"])))
        except ValidationError:
            logger.error("unreadable sync message", extra={"message_id": message_id})
            failed.append(message_id)  # after maxReceiveCount it waits in the DLQ
    results = (
        bootstrap.push().handle_batch(
            [message for _, message in accepted],
            # Work cut off by the timeout would come back whole; what is not started goes back now.
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
        if accepted
        else []
    )
    finished = utcnow()
    parked: list[str] = []
    for (message_id, message), result in zip(accepted, results, strict=True):
        logger.set_correlation_id(message.event_id)
        if isinstance(result, Exception):
            logger.warning(
                "push failed; retried", extra={"error": type(result).__name__, "detail": str(result)}
            )
            failed.append(message_id)
            continue
        logger.info(
            "pushed",
            extra={"outcome": result.outcome.value, "source_id": result.source_id, "reason": result.reason},
        )
        metrics.add_metric(name=f"Push{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
        if result.outcome is Outcome.PARKED:
            parked.append(result.reason or "unknown")
        elif result.outcome is Outcome.SYNCED:
            latency = webhook_to_ledger_ms(message.received_at, finished)
            if latency is not None:
                metrics.add_metric(name="WebhookToLedger", unit=MetricUnit.Milliseconds, value=latency)
    emit_parked(parked)
    # Messages handed back to SQS for a retry (throttling, outages, concurrent updates).
    metrics.add_metric(name="PushRetried", unit=MetricUnit.Count, value=len(failed))
    quotas = bootstrap.ledgers().quotas() if accepted else {}
    # The connections of this batch only: a warm process keeps the last figures of every
    # connection it has served, which for one not called since may be yesterday's.
    batch = {message.connection_id for _, message in accepted}
    used = day_quota_used_percent(quota for connection_id, quota in quotas.items() if connection_id in batch)
    if used is not None:
        metrics.add_metric(name="LedgerDayQuotaUsed", unit=MetricUnit.Percent, value=used)
    for connection_id, quota in quotas.items():
        # Cumulative for this warm process: the ledger's own remaining counts say what is left today.
        logger.info(
            "ledger quota",
            extra={
                "connection_id": connection_id,
                "requests": quota.requests,
                "throttled": quota.throttled,
                "remaining": quota.remaining,
            },
        )
    # Summaries of alert storms this process counted into whose window is over (no I/O otherwise).
    alerts = getattr(bootstrap.push(), "alerts", None) if accepted else None
    if isinstance(alerts, AlertPublisher):
        try:
            alerts.flush_due()
        except Exception as error:  # noqa: BLE001 - the batch is done; the summary stays due
            logger.warning("alert summaries not sent", extra={"error": type(error).__name__})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
