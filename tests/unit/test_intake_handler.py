"""The webhook intake handler reads the HTTP API event itself: the answers it gives for each outcome
(status, JSON body, content type), and what it hands the intake use case (path parameters,
lower-cased headers, the exact body bytes, base64 bodies decoded)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.errors import BadSignature, PayloadTooLarge, UnknownConnection
from invoice_sync.handlers import webhook_intake
from invoice_sync.sync.intake import IntakeOutcome, IntakeResult
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event

ROUTE = "POST /webhooks/{source}/{connection}"


@dataclass
class StandIn:
    """The intake use case, answering ``answer`` (or raising it) and keeping what it was given."""

    answer: IntakeResult | Exception
    calls: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def accept(
        self, source: str, connection_id: str, headers: Mapping[str, str], body: bytes
    ) -> IntakeResult:
        self.calls.append((source, connection_id, dict(headers), body))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    service = StandIn(IntakeResult(IntakeOutcome.QUEUED, "evt_1", "invoice.paid"))
    monkeypatch.setattr(bootstrap, "intake", lambda: service)
    return service


def post(raw: bytes = b'{"id":"evt_1"}', **changes: Any) -> dict[str, Any]:
    event = http_api_event(
        "POST",
        "/webhooks/stripe/acme",
        ROUTE,
        {"source": "stripe", "connection": "acme"},
        {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=abc"},
        raw,
    )
    event.update(changes)
    response: dict[str, Any] = webhook_intake.handler(event, LocalContext("webhook-intake"))
    return response


def answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """What Powertools' HTTP API resolver answered, and the handler still does."""
    return {
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def test_accepted_webhook_is_200_with_outcome_and_event_id(stand_in: StandIn) -> None:
    assert post() == answer(200, {"outcome": "queued", "event_id": "evt_1"})
    assert stand_in.calls == [
        (
            "stripe",
            "acme",
            {"content-type": "application/json", "stripe-signature": "t=1,v1=abc"},
            b'{"id":"evt_1"}',
        )
    ]


def test_ignored_event_is_200_with_a_null_event_id(stand_in: StandIn) -> None:
    stand_in.answer = IntakeResult(IntakeOutcome.IGNORED)
    assert post() == answer(200, {"outcome": "ignored", "event_id": None})


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnknownConnection("unknown connection 'acme'"), 404),
        (BadSignature("bad"), 401),
        (PayloadTooLarge("big"), 413),
    ],
)
def test_rejected_request_answers_its_status_and_reason(
    stand_in: StandIn, error: Exception, status: int
) -> None:
    stand_in.answer = error
    assert post() == answer(status, {"error": str(error)})


def test_unexpected_failure_is_503_and_logged_with_its_traceback(
    stand_in: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.answer = RuntimeError("DynamoDB is down")
    assert post() == answer(503, {"error": "temporarily unavailable; retry later"})
    (failure,) = [r for r in caplog.records if r.getMessage() == "webhook intake failed"]
    assert failure.levelname == "ERROR"
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], RuntimeError)


def test_base64_body_reaches_the_use_case_as_the_bytes_sent(stand_in: StandIn) -> None:
    binary = b"\xff\xfe\x00 not utf-8"
    post(binary)  # http_api_event base64-encodes a body that is not UTF-8 text, as API Gateway does
    assert stand_in.calls[0][3] == binary


def test_body_is_not_re_encoded(stand_in: StandIn) -> None:
    body = '{"name":"Café"}'.encode()
    post(body)
    assert stand_in.calls[0][3] == body


def test_headers_are_lower_cased_and_a_missing_body_is_empty(stand_in: StandIn) -> None:
    post(headers={"Stripe-Signature": "t=1,v1=abc"}, body=None)
    assert stand_in.calls == [("stripe", "acme", {"stripe-signature": "t=1,v1=abc"}, b"")]


@pytest.mark.parametrize(
    "changes",
    [{"routeKey": "GET /webhooks/{source}/{connection}"}, {"routeKey": "$default"}, {"pathParameters": None}],
)
def test_any_other_route_is_a_503_not_a_call(stand_in: StandIn, changes: dict[str, Any]) -> None:
    assert post(**changes)["statusCode"] == 503
    assert stand_in.calls == []


def test_log_lines_carry_the_request_not_what_the_log_group_already_says(
    stand_in: StandIn,
) -> None:
    """Given two webhooks, each 'webhook' log line carries the request id, cold start and the API
    Gateway request as correlation id, and not the function's name, memory or ARN (its log group
    names the function; those keys were a third of the bytes an intake invocation logs)."""
    written = io.StringIO()
    # A handler of our own with the logger's formatter: what CloudWatch would receive, whatever
    # other tests did to the logger's own handler.
    capture = logging.StreamHandler(written)
    capture.setFormatter(webhook_intake.logger.registered_formatter)
    underlying = logging.getLogger(webhook_intake.logger.name)
    underlying.addHandler(capture)
    level = underlying.level  # a local stack started earlier in this process quiets it to ERROR
    underlying.setLevel(logging.INFO)
    try:
        for _ in range(2):
            assert post()["statusCode"] == 200
    finally:
        underlying.removeHandler(capture)
        underlying.setLevel(level)
    lines = [json.loads(line) for line in written.getvalue().splitlines() if '"message":"webhook"' in line]
    assert len(lines) == 2
    for line in lines:
        assert {"function_request_id", "cold_start", "correlation_id", "outcome", "event_id"} <= set(line)
        assert not {"function_name", "function_memory_size", "function_arn"} & set(line)
