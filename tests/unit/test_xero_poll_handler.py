"""The payments_back handler's scheduled branch: the poll-xero event runs the Xero payments poll
and answers its summary; a scheduled action it does not know is an error (so the invocation's
retries and the schedule's dead-letter queue show it), never a silent answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from invoice_sync.handlers import payments_back
from invoice_sync.sync.xero_poll import XeroPaymentPoller
from invoice_sync_ops.local.lambda_runtime import LocalContext
from tests.unit.test_xero_poll import T0, FakeXero, Rig, element, xero_connection


def test_the_poll_xero_schedule_runs_the_poll_and_answers_its_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given two Xero connections, one with a cheque recorded by hand, when the schedule's event
    arrives, then the poll runs with the invocation's time and the answer counts one message
    sent, no failure, and names both connections polled."""
    connections = (xero_connection("acme"), xero_connection("other"))
    rig = Rig(*connections, ledgers={c.connection_id: FakeXero() for c in connections})
    rig.ledgers["acme"].elements = [element("CHEQUE", T0 + timedelta(hours=1))]
    seen: dict[str, Any] = {}
    real: XeroPaymentPoller = rig.poller()
    original_run = real.run

    def run(**options: Any) -> Any:
        seen.update(options)
        return original_run(**options)

    monkeypatch.setattr(real, "run", run)
    monkeypatch.setattr(payments_back, "poller", lambda: real)

    answer = payments_back.handler(
        {"source": "schedule", "action": "poll-xero"}, LocalContext("payments-back", timeout_seconds=60)
    )

    assert (answer["polled"], answer["sent"], answer["failed"]) == (2, 1, 0)
    assert [c["connection_id"] for c in answer["connections"]] == ["acme", "other"]
    assert [m.object_id for m in rig.queue.sent] == ["CHEQUE"]
    assert seen["time_left"]() > 50


def test_an_unknown_scheduled_action_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a scheduled event with another action, then the handler raises and polls nothing."""
    monkeypatch.setattr(payments_back, "poller", lambda: pytest.fail("no poll for another action"))

    with pytest.raises(ValueError, match="unknown scheduled action"):
        payments_back.handler({"source": "schedule", "action": "poll-qbo"}, LocalContext("payments-back"))
