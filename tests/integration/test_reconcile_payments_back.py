"""Reconciliation of payments back (ledger -> Stripe) on moto in-process, with the QuickBooks
sandbox and the Stripe stand-in over real HTTP: a cheque a person records in QuickBooks that no
ledger event brought to payments back is ``ledger_payment_not_sent``; once payments back has sent
it, the day is clean both ways (Stripe's ``amount_paid_off_stripe`` is what the record sent); and
money recorded outside Stripe in Stripe itself on that invoice is ``off_stripe_mismatch``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from invoice_sync import bootstrap
from invoice_sync.handlers import payments_back, reconcile
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import SyncStatus, utcnow
from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync.store.mappings import MappingsStore
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.sandboxes.stripe import StripeSandbox
from tests.integration.conftest import Harness, fixture_bytes

INVOICE = "in_1QaCurrentAcme01"  # a1: ACME-0001, USD 1,677.86, open


@pytest.fixture
def stripe(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    """The Stripe stand-in holding ACME-0001 (created now: the window's), payments back on for the
    connection, its stripe-writer key the same account's key as reconcile's stripe-api one."""
    server = StripeSandbox()
    url = server.start()
    monkeypatch.setenv("STRIPE_API_BASE", url)
    bootstrap.reset()
    invoices = [dict(json.loads(fixture_bytes("a1"))["data"]["object"], created=int(time.time()))]
    server.seed_account(
        harness.company.stripe_account, api_key=harness.company.stripe_api_key, invoices=invoices
    )
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    connection = store.connection(harness.company.connection_id)
    assert connection is not None
    store.put_connection(connection.model_copy(update={"payments_back": True}))
    harness.secrets().put_stripe_writer_key(harness.company.connection_id, harness.company.stripe_api_key)
    yield server
    server.stop()


def _reconciled(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Today reconciled two hours from now: a ledger payment changed within the last hour may
    still be on its way to payments back, and is judged only by a later run."""
    day = utcnow().date().isoformat()
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(reconcile, "utcnow", lambda: later)
    out = reconcile.handler({"date": day}, LocalContext("reconcile"))
    assert [r["date"] for r in out["reconciled"]] == [day]
    key = f"reports/{harness.company.connection_id}/{day}/report.json"
    body = harness.client("s3").get_object(Bucket=harness.resources.archive_bucket, Key=key)["Body"]
    report: dict[str, Any] = json.loads(body.read())
    return report


def _send_back(harness: Harness, payment_id: str) -> None:
    """The ledger event for the payment, through the payments_back handler (what --repair queues)."""
    body = LedgerEventMessage(
        connection_id=harness.company.connection_id,
        ledger="quickbooks",
        kind="payment",
        object_id=payment_id,
        operation="redrive",
        changed_at=None,
        event_id=None,
    ).to_queue_body()
    response = payments_back.handler({"Records": [{"messageId": "m0", "body": body}]}, LocalContext("pb"))
    assert response["batchItemFailures"] == []


def test_a_missed_cheque_then_sent_then_money_recorded_in_stripe_itself(
    harness: Harness, stripe: StripeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given ACME-0001 synced to QuickBooks and a 1,000.00 cheque recorded there by hand whose
    event never reached payments back, the day's report has one ledger_payment_not_sent (to the
    source) naming the cheque; once payments back has sent it (a payment record attached), the day
    is clean both ways, the cheque checked against its record and Stripe's 1,000.00 paid outside
    Stripe against what was sent, and Stripe's paid total (all of it the cheque's) is not
    expected in the ledger as push's payment; and 50.00 more recorded outside Stripe in Stripe
    itself is an off_stripe_mismatch of Stripe's 1,050.00 against the records' 1,000.00 (and,
    to the ledger, the 50.00 of the paid total push has not booked yet)."""
    assert harness.deliver("a1")[0] == 200
    assert harness.drain() == 0
    invoice = harness.record("invoice", INVOICE)
    assert invoice is not None and invoice.ledger_id is not None
    cheque = harness.sandbox.record_payment_by_hand(
        harness.realm_id, invoice.ledger_id, Decimal("1000.00"), reference="1042"
    )
    harness.alerts()

    missed = _reconciled(harness, monkeypatch)
    assert [
        (d["class"], d["direction"], d["source_id"], d["ledger_amount"]) for d in missed["differences"]
    ] == [("ledger_payment_not_sent", "to_source", cheque["Id"], "1000.00")]
    assert missed["summary"]["directions"]["to_source"]["differences"] == 1
    assert missed["summary"]["directions"]["to_ledger"]["differences"] == 0

    _send_back(harness, cheque["Id"])
    record = harness.record("ledger_payment", f"{cheque['Id']}:{invoice.ledger_id}")
    assert record is not None and record.status is SyncStatus.SYNCED
    clean = _reconciled(harness, monkeypatch)
    assert clean["status"] == "clean", clean["differences"]
    back = clean["summary"]["directions"]["to_source"]
    assert (back["ledger_payments_checked"], back["invoices_checked"], back["records"]) == (
        1,
        1,
        {"synced": 1},
    )
    assert clean["summary"]["unmarked_in_ledger"] == 0

    api = StripeApi(stripe.base_url, SecretStr(harness.company.stripe_api_key))
    reported = api.report_payment(
        amount=5000,
        currency="usd",
        initiated_at=int(time.time()),
        display_name="Bank transfer",
        idempotency_key="by-hand-in-stripe-1",
        customer=None,
    )
    api.attach_payment(INVOICE, str(reported["id"]), "by-hand-in-stripe-1:attach")
    mismatch = _reconciled(harness, monkeypatch)
    assert sorted(
        (d["class"], d["direction"], d["source_id"], d["source_amount"], d["ledger_amount"])
        for d in mismatch["differences"]
    ) == [
        ("off_stripe_mismatch", "to_source", INVOICE, "1050.00", "1000.00"),
        # and, as push has not had Stripe's webhook for it yet, the 50.00 of Stripe's paid total
        # that payments back did not send is not in the ledger
        ("payment_not_applied", "to_ledger", f"{INVOICE}:paid:105000", "50.00", None),
    ]
