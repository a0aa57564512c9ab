"""SQS sync queue -> ledger. Partial batch failures: only the failed messages come back."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.errors import TransientError
from invoice_sync.models.messages import SyncMessage
from invoice_sync.observability import logger, metrics
from invoice_sync.settings import get_settings

# A batch whose every record failed is still a partial response (all handed back), not an
# invocation error: the retry is the same, and the failure counts stay meaningful.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    # A record started too close to the timeout would be cut off mid-write and its whole batch
    # returned; handing it back now costs one receive, not the batch.
    reserve_ms = get_settings().push_reserve_seconds * 1000
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < reserve_ms:
        raise TransientError("not enough time left in this invocation")
    message = SyncMessage.model_validate_json(record.body)
    logger.set_correlation_id(message.event_id)
    result = bootstrap.push().handle(message)
    logger.info(
        "pushed",
        extra={"outcome": result.outcome.value, "source_id": result.source_id, "reason": result.reason},
    )
    metrics.add_metric(name=f"Push{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
    return result.outcome.value


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Messages handed back to SQS for a retry (throttling, outages, concurrent updates).
    metrics.add_metric(name="PushRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    return response
