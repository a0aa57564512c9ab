"""POST /webhooks/{source}/{connection}: signed webhooks in, 200 only once queued with their raw body.

The function has one route, so the HTTP API event (payload format 2.0) is read here directly:
its route key, path parameters, headers and body. (Powertools' event-handler resolver did the
same and cost some 0.1-0.2 s of cold start for routing a single route.) The answers are the ones
the resolver gave: JSON bodies, a ``Content-Type: application/json`` header, no cookies.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.errors import InvalidPayload, RequestRejected
from invoice_sync.observability import logged, logger, metrics

# This function's use case, loaded with the handler (Lambda's init phase) rather than on the first
# webhook; the handler asks ``bootstrap`` for the service so a bench or test may stand one in.
from invoice_sync.wiring import intake as _wiring  # noqa: F401

ROUTE_KEY = "POST /webhooks/{source}/{connection}"


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def _body(event: dict[str, Any]) -> bytes:
    """The exact bytes sent. API Gateway base64-encodes a body that is not UTF-8 text; a body that
    is neither valid base64 when flagged nor encodable text is the sender's fault (400), not ours."""
    raw = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            return base64.b64decode(raw, validate=True)
        return str(raw).encode()
    except (binascii.Error, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise InvalidPayload("body is not valid base64 or UTF-8 text") from None


def receive(event: dict[str, Any]) -> dict[str, Any]:
    parameters = event.get("pathParameters") or {}
    source, connection = parameters.get("source"), parameters.get("connection")
    if event.get("routeKey") != ROUTE_KEY or not source or not connection:
        # API Gateway only invokes this function for its one route: anything else is a wiring fault.
        raise LookupError(f"no route for {event.get('routeKey')!r}")
    # The signature covers the exact bytes sent, so the body is never re-encoded on the way in.
    body = _body(event)
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    result = bootstrap.intake().accept(source, connection, headers, body)
    logger.info("webhook", extra={"outcome": result.outcome.value, "event_id": result.event_id})
    metrics.add_metric(name=f"Webhook{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
    return _json(200, {"outcome": result.outcome.value, "event_id": result.event_id})


def rejected(error: RequestRejected) -> dict[str, Any]:
    logger.info("webhook rejected", extra={"status": error.status_code, "reason": str(error)})
    metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
    return _json(error.status_code, {"error": str(error)})


def unexpected() -> dict[str, Any]:
    # Nothing was acknowledged: answering 503 makes the sender retry, so nothing is lost.
    logger.exception("webhook intake failed")
    metrics.add_metric(name="WebhookFailed", unit=MetricUnit.Count, value=1)
    return _json(503, {"error": "temporarily unavailable; retry later"})


@logged(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    try:
        return receive(event)
    except RequestRejected as error:
        return rejected(error)
    except Exception:  # noqa: BLE001 - every failure is answered 503 and logged with its traceback
        return unexpected()
