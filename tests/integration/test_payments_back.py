"""Payments back end to end in one process: moto as AWS, the QuickBooks sandbox and the Stripe
stand-in over real HTTP. An invoice flows Stripe -> QuickBooks, a person records a cheque in
QuickBooks, the payments_back handler gets the ledger's event as an SQS batch and Stripe shows the
invoice paid out of band (or a payment record attached); when Stripe's invoice.paid then comes back
through intake and push, QuickBooks still holds only the person's payments (design two-way 3.6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import payments_back
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import SyncStatus
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.sandboxes.stripe import StripeSandbox
from tests.integration.conftest import Harness, fixture_bytes

ACCOUNT = "acct_1PaymentsBack01"
WRITER_KEY = "rk_test_payments_back_writer_0001"
INVOICE = "in_1QaCurrentAcme01"  # a1/a2: ACME-0001, USD 1,677.86


@pytest.fixture
def stripe_side(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    """The Stripe stand-in holding ACME-0001 open, payments back on for the connection, and the
    connection's stripe-writer key stored."""
    server = StripeSandbox()
    server.seed_account(
        ACCOUNT, api_key=WRITER_KEY, invoices=[json.loads(fixture_bytes("a1"))["data"]["object"]]
    )
    server.start()
    monkeypatch.setenv("STRIPE_API_BASE", server.base_url)
    bootstrap.reset()
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    connection = store.connection(harness.company.connection_id)
    assert connection is not None
    store.put_connection(connection.model_copy(update={"payments_back": True}))
    harness.secrets().put_stripe_writer_key(harness.company.connection_id, WRITER_KEY)
    yield server
    server.stop()


def _ledger_invoice(harness: Harness) -> str:
    harness.deliver("a1")
    assert harness.drain() == 0
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.ledger_id is not None
    return record.ledger_id


def _worker(harness: Harness, *payment_ids: str, operation: str = "create") -> list[str]:
    """Runs the payments_back handler on one SQS batch of ledger events; returns the failed ids."""
    records = [
        {
            "messageId": f"m{index}",
            "body": LedgerEventMessage(
                connection_id=harness.company.connection_id,
                ledger="quickbooks",
                kind="payment",
                object_id=payment_id,
                operation=operation,
                changed_at=None,
                event_id=f"qbo-{payment_id}-{operation}",
            ).to_queue_body(),
        }
        for index, payment_id in enumerate(payment_ids)
    ]
    response = payments_back.handler({"Records": records}, LocalContext("payments-back"))
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def _stripe_paid(harness: Harness, amount_paid: int, status: str, number: int) -> None:
    """Stripe's webhook after the write, as Stripe sends it: payments not expanded."""
    event: dict[str, Any] = json.loads(fixture_bytes("a2"))
    event["id"] = f"evt_payments_back_{number}"
    event["created"] += number
    event["data"]["object"].update(amount_paid=amount_paid, status=status)
    event["data"]["object"]["amount_remaining"] = event["data"]["object"]["total"] - amount_paid
    del event["data"]["object"]["payments"]
    status_code, _ = harness.post(json.dumps(event).encode())
    assert status_code == 200
    assert harness.drain() == 0


def _effects(server: StripeSandbox) -> list[str]:
    return [write["path"].rsplit("/", 1)[-1] for write in server.writes(ACCOUNT) if write["effect"]]


def test_a_cheque_for_the_whole_invoice_pays_it_out_of_band_once(
    harness: Harness, stripe_side: StripeSandbox
) -> None:
    """Given ACME-0001 synced and a cheque for all of it recorded by hand in QuickBooks, when the
    ledger's event reaches payments_back (twice: a redelivery), then Stripe's invoice is paid out of
    band by one write; and when Stripe's invoice.paid comes back, QuickBooks still has the one
    payment the person recorded and push's record says the ledger holds it already."""
    ledger_invoice = _ledger_invoice(harness)
    cheque = harness.sandbox.record_payment_by_hand(
        harness.realm_id, ledger_invoice, Decimal("1677.86"), reference="1042"
    )

    assert _worker(harness, cheque["Id"]) == []
    assert _worker(harness, cheque["Id"]) == []

    assert _effects(stripe_side) == ["pay"]
    (invoice,) = [i for i in stripe_side.documents(ACCOUNT, "invoices") if i["id"] == INVOICE]
    assert invoice["status"] == "paid"
    record = harness.record("ledger_payment", f"{cheque['Id']}:{ledger_invoice}")
    assert record is not None
    assert (record.status, record.stripe_object, record.ledger_total) == (SyncStatus.SYNCED, INVOICE, 167786)

    _stripe_paid(harness, 167786, "paid", 1)

    assert [p["Id"] for p in harness.documents("Payment")] == [cheque["Id"]]
    pushed = harness.record("payment", f"{INVOICE}:paid:167786")
    assert pushed is not None
    assert (pushed.status, pushed.last_error) == (SyncStatus.SKIPPED, "already recorded in the ledger")
    assert harness.alerts() == []


def test_two_cheques_are_a_payment_record_then_the_rest_and_push_books_neither(
    harness: Harness, stripe_side: StripeSandbox
) -> None:
    """Given a 1,000.00 cheque then one for the 677.86 left, then Stripe gets a payment record
    reported and attached for the first and an out-of-band pay for the rest; Stripe's webhooks for
    each change book nothing in QuickBooks, which keeps the person's two payments."""
    ledger_invoice = _ledger_invoice(harness)
    first = harness.sandbox.record_payment_by_hand(harness.realm_id, ledger_invoice, Decimal("1000.00"))
    assert _worker(harness, first["Id"]) == []
    _stripe_paid(harness, 100000, "open", 1)
    rest = harness.sandbox.record_payment_by_hand(harness.realm_id, ledger_invoice, Decimal("677.86"))
    assert _worker(harness, rest["Id"]) == []
    _stripe_paid(harness, 167786, "paid", 2)

    assert _effects(stripe_side) == ["report_payment", "attach_payment", "pay"]
    assert sorted(p["Id"] for p in harness.documents("Payment")) == sorted([first["Id"], rest["Id"]])
    state = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    invoice_record = harness.record("invoice", INVOICE)
    assert invoice_record is not None
    assert {k: (v.amount, v.state) for k, v in (invoice_record.ledger_paid or {}).items()} == {
        f"ledger_payment#{first['Id']}:{ledger_invoice}": (100000, "done"),
        f"ledger_payment#{rest['Id']}:{ledger_invoice}": (67786, "done"),
    }
    (record_id,) = [
        r.stripe_object
        for r, _ in state.records_with_prefix(
            harness.company.connection_id, "ledger_payment", f"{first['Id']}:"
        )
    ]
    assert record_id is not None and record_id.startswith("pr_")
    assert (
        state.linked(harness.company.connection_id, record_id)
        == f"ledger_payment#{first['Id']}:{ledger_invoice}"
    )


def test_the_payment_push_booked_is_never_sent_back(harness: Harness, stripe_side: StripeSandbox) -> None:
    """Given push booked Stripe's card payment of ACME-0001 in QuickBooks (payments back on, so it is
    linked), when QuickBooks' event for that payment reaches payments_back, then nothing is written
    to Stripe and no ledger_payment record exists."""
    harness.deliver("a1")
    harness.deliver("a2")
    assert harness.drain() == 0
    (payment,) = harness.documents("Payment")

    assert _worker(harness, payment["Id"]) == []

    state = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    assert state.linked(harness.company.connection_id, f"ledger-payment:{payment['Id']}") is not None
    assert list(state.records_with_prefix(harness.company.connection_id, "ledger_payment", "")) == []
    assert stripe_side.writes(ACCOUNT) == []


def test_a_stripe_outage_goes_back_to_the_queue_and_the_retry_pays_once(
    harness: Harness, stripe_side: StripeSandbox
) -> None:
    """Given Stripe answers the pay with 500s (saved under the key, as Stripe saves them), then the
    message is handed back, and the retry, under the next generation's key, pays the invoice once."""
    ledger_invoice = _ledger_invoice(harness)
    cheque = harness.sandbox.record_payment_by_hand(harness.realm_id, ledger_invoice, Decimal("1677.86"))
    stripe_side.inject_write_status(ACCOUNT, 500, count=1)

    assert _worker(harness, cheque["Id"]) == ["m0"]
    assert _worker(harness, cheque["Id"]) == []

    assert _effects(stripe_side) == ["pay"]
    keys = [write["key"] for write in stripe_side.writes(ACCOUNT)]
    assert len(set(keys)) == 2
