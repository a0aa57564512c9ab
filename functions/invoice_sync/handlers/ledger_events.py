"""POST /ledger-webhooks/{ledger}/{connection}: the ledgers' signed webhooks in, hints onto the
ledger events queue (``sync.ledger_intake``); no ledger or Stripe call, so it answers inside
Intuit's 3 s and Xero's 5 s.

Read like ``handlers.webhook_intake`` (the HTTP API event directly, the raw body decoded once,
headers lower-cased). The answers:

* Xero, whatever the status: no body and no cookies, as Xero requires of a webhook endpoint;
* a bad signature (401), for every ledger: no body either, and only the status is logged;
* otherwise the intake's JSON shape: ``{"outcome": "queued"|"ignored", "events": n}`` on 200,
  ``{"error": ...}`` on a refusal, and 503 when anything failed (the ledger retries).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from invoice_sync import bootstrap
from invoice_sync.errors import BadSignature, RequestRejected
from invoice_sync.handlers.webhook_intake import _body, _json
from invoice_sync.observability import logged, logger, metrics

# Loaded with the handler (Lambda's init phase), not on the first webhook; the handler asks
# ``bootstrap`` for the service so a test may stand one in.
from invoice_sync.wiring import ledger_intake as _wiring  # noqa: F401

ROUTE_KEY = "POST /ledger-webhooks/{ledger}/{connection}"


def _empty(status: int) -> dict[str, Any]:
    """No body, no headers, no cookies: every Xero answer, and every 401."""
    return {"statusCode": status, "body": "", "headers": {}, "cookies": []}


def _answer(ledger: str | None, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return _empty(status) if ledger == "xero" else _json(status, body)


def receive(event: dict[str, Any]) -> dict[str, Any]:
    parameters = event.get("pathParameters") or {}
    ledger, connection = parameters.get("ledger"), parameters.get("connection")
    if event.get("routeKey") != ROUTE_KEY or not ledger or not connection:
        # API Gateway only invokes this function for its one route: anything else is a wiring fault.
        raise LookupError(f"no route for {event.get('routeKey')!r}")
    body = _body(event)  # the exact bytes sent: the signature covers them
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    result = bootstrap.ledger_intake().accept(ledger, connection, headers, body)
    logger.info(
        "ledger webhook",
        extra={"ledger": ledger, "outcome": result.outcome.value, "events": result.events},
    )
    metrics.add_metric(name=f"LedgerWebhook{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
    return _answer(ledger, 200, {"outcome": result.outcome.value, "events": result.events})


def rejected(ledger: str | None, error: RequestRejected) -> dict[str, Any]:
    metrics.add_metric(name="LedgerWebhookRejected", unit=MetricUnit.Count, value=1)
    if isinstance(error, BadSignature):
        # A stranger's request: its status is all that is kept of it.
        logger.info("ledger webhook rejected", extra={"status": error.status_code})
        return _empty(error.status_code)
    logger.info("ledger webhook rejected", extra={"status": error.status_code, "reason": str(error)})
    return _answer(ledger, error.status_code, {"error": str(error)})


def unexpected(ledger: str | None) -> dict[str, Any]:
    # Nothing was acknowledged: 503 makes the ledger retry, and a hint sent twice is harmless.
    logger.exception("ledger webhook intake failed")
    metrics.add_metric(name="LedgerWebhookFailed", unit=MetricUnit.Count, value=1)
    return _answer(ledger, 503, {"error": "temporarily unavailable; retry later"})


@logged(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    ledger = (event.get("pathParameters") or {}).get("ledger")
    try:
        return receive(event)
    except RequestRejected as error:
        return rejected(ledger, error)
    except Exception:  # noqa: BLE001 - every failure is answered 503 and logged with its traceback
        return unexpected(ledger)
