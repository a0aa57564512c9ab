"""POST /webhooks/{source}/{connection}: signed webhooks in, 200 only once archived and queued."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.errors import RequestRejected
from invoice_sync.observability import logger, metrics

app = APIGatewayHttpResolver()


def _json(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/webhooks/<source>/<connection>")
def receive(source: str, connection: str) -> Response[Any]:
    event = app.current_event
    # The signature covers the exact bytes sent, so the body is never re-encoded on the way in.
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    result = bootstrap.intake().accept(source, connection, headers, body)
    logger.info("webhook", extra={"outcome": result.outcome.value, "event_id": result.event_id})
    metrics.add_metric(name=f"Webhook{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
    return _json(200, {"outcome": result.outcome.value, "event_id": result.event_id})


@app.exception_handler(RequestRejected)  # type: ignore[untyped-decorator]
def rejected(error: RequestRejected) -> Response[Any]:
    logger.info("webhook rejected", extra={"status": error.status_code, "reason": str(error)})
    metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
    return _json(error.status_code, {"error": str(error)})


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def unexpected(_error: Exception) -> Response[Any]:
    # Nothing was acknowledged: answering 503 makes the sender retry, so nothing is lost.
    logger.exception("webhook intake failed")
    metrics.add_metric(name="WebhookFailed", unit=MetricUnit.Count, value=1)
    return _json(503, {"error": "temporarily unavailable; retry later"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
