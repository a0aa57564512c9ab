"""The payments_back handler: an SQS batch of ledger events to the service, and back only the
messages that must be retried (an unreadable body, a transient failure); a scheduled poll takes no
message. The service is a stand-in set on ``bootstrap``, as a bench or test may set it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.errors import TransientError
from invoice_sync.handlers import payments_back
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.sync.payments_back import Applied, BackResult, Outcome
from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event


class StandIn:
    def __init__(self) -> None:
        self.seen: list[LedgerEventMessage] = []

    def handle_batch(
        self, messages: Sequence[LedgerEventMessage], *, time_left: Callable[[], float] | None = None
    ) -> list[BackResult | Exception]:
        self.seen.extend(messages)
        assert time_left is not None and time_left() > 0
        return [
            TransientError("Stripe failed (503)")
            if message.object_id == "P2"
            else BackResult(
                Outcome.PARKED,
                message.object_id,
                None,
                (Applied("P1:L1", Outcome.PARKED, "paid on both sides"),),
            )
            for message in messages
        ]


def _body(object_id: str, **fields: Any) -> str:
    values: dict[str, Any] = {
        "connection_id": "acme",
        "ledger": "quickbooks",
        "kind": "payment",
        "object_id": object_id,
        "operation": "create",
        "changed_at": None,
        "event_id": f"evt-{object_id}",
        **fields,
    }
    return LedgerEventMessage(**values).to_queue_body()


def test_only_unreadable_and_transient_messages_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a batch of a parked payment, a transient one and a body that is no ledger event, then
    the service sees the two readable ones and the batch item failures are the other two."""
    stand_in = StandIn()
    monkeypatch.setattr(bootstrap, "payments_back", lambda: stand_in, raising=False)
    bodies = [_body("P1"), _body("P2"), '{"not": "a ledger event"}']
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {}}
        for i, body in enumerate(bodies)
    ]

    response = payments_back.handler(
        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:ledger-events"), LocalContext("payments-back")
    )

    assert [m.object_id for m in stand_in.seen] == ["P1", "P2"]
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["m1", "m2"]


def test_a_verifier_never_reaches_the_log_of_an_unreadable_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a callback_verify body broken after its verifier, then the message comes back and the
    log holds its id, not the verifier."""
    monkeypatch.setattr(bootstrap, "payments_back", StandIn, raising=False)
    broken = _body("cb1", kind="callback_verify", verifier="fb-verifier-7731").replace(
        '"operation":"create"', '"operation":7'
    )
    messages = [{"MessageId": "m0", "ReceiptHandle": "r0", "Body": broken, "Attributes": {}}]

    response = payments_back.handler(
        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"), LocalContext("payments-back")
    )

    assert response["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert "fb-verifier-7731" not in capsys.readouterr().out
