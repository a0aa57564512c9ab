"""Ledger events queue -> Stripe: the payments-back worker (``sync.payments_back``). Partial batch
failures: only the messages that must be retried come back (``batchItemFailures``).

The SQS event's records are read as the dicts they are, as push reads its own. A scheduled
invocation (``{"source": "schedule", "action": "poll-xero"}``, ``XeroPollSchedule``) is the Xero
payments poll (``sync.xero_poll``): it answers a summary, one entry per connection polled.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from invoice_sync import bootstrap
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.observability import emit_parked, logged, logger, metrics
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.sync.payments_back import Outcome, PaymentsBackService
from invoice_sync.sync.xero_poll import XeroPaymentPoller

# This function's use case, loaded with the handler (Lambda's init phase) rather than on the first
# batch.
from invoice_sync.wiring import payments_back as _wiring


def service() -> PaymentsBackService:
    """The use case, looked up through ``bootstrap`` (so a bench or test may stand one in)."""
    built: PaymentsBackService = bootstrap.payments_back()
    return built


def poller() -> XeroPaymentPoller:
    """The Xero payments poll, from this function's wiring (a test may stand one in here)."""
    return _wiring.xero_poller()


def _flush_alerts(alerts: object) -> None:
    if isinstance(alerts, AlertPublisher):
        try:
            alerts.flush_due()
        except Exception as error:  # noqa: BLE001 - the work is done; the summary stays due
            logger.warning("alert summaries not sent", extra={"error": type(error).__name__})


def _scheduled(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    if action != "poll-xero":
        # A schedule this function does not know: an error, so the invocation's retries and the
        # schedule's dead-letter queue (and its alarm) show it.
        raise ValueError(f"unknown scheduled action {action!r} (expected 'poll-xero')")
    polling = poller()
    summary = polling.run(time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    metrics.add_metric(name="XeroPollSent", unit=MetricUnit.Count, value=summary.sent)
    metrics.add_metric(name="XeroPollFailed", unit=MetricUnit.Count, value=summary.failed)
    _flush_alerts(polling.alerts)
    return summary.as_dict()


@logged()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("source") == "schedule":
        return _scheduled(event, context)
    failed: list[str] = []
    accepted: list[tuple[str, LedgerEventMessage]] = []
    for record in event["Records"]:
        message_id: str = record["messageId"]
        try:
            accepted.append((message_id, LedgerEventMessage.from_queue_body(record["body"])))
        except ValidationError:
            # Never the body in the log: a FreshBooks verification carries its verifier.
            logger.error("unreadable ledger event message", extra={"message_id": message_id})
            failed.append(message_id)  # after maxReceiveCount it waits in the DLQ
    worker = service() if accepted else None
    results = (
        worker.handle_batch(
            [message for _, message in accepted],
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
        if worker is not None
        else []
    )
    parked: list[str] = []
    for (message_id, message), result in zip(accepted, results, strict=True):
        logger.set_correlation_id(message.event_id or f"{message.ledger}:{message.object_id}")
        if isinstance(result, Exception):
            logger.warning(
                "payments back failed; retried", extra={"error": type(result).__name__, "detail": str(result)}
            )
            failed.append(message_id)
            continue
        logger.info(
            "payments back",
            extra={"outcome": result.outcome.value, "object_id": result.object_id, "reason": result.reason},
        )
        metrics.add_metric(name=f"PaymentsBack{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
        parked.extend(a.reason or "unknown" for a in result.applications if a.outcome is Outcome.PARKED)
    emit_parked(parked)
    metrics.add_metric(name="PaymentsBackRetried", unit=MetricUnit.Count, value=len(failed))
    _flush_alerts(getattr(worker, "alerts", None))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
