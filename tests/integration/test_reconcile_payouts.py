"""Reconciliation of payouts as bank deposits (issue 7, design two-way 3.5.3) on moto in-process,
with the QuickBooks sandbox and the Stripe stand-in over real HTTP: ACME-0001 and its card payment
pushed to QuickBooks, then Stripe's payout of that payment (its signed
``payout.reconciliation_completed`` through intake, push booking one Deposit of 1,628.60). The
day is clean with the deposit read and compared; the deposit's total edited in QuickBooks is
``deposit_total_differs``; the deposit deleted is ``deposit_missing``; and a payout push parked
(its transactions do not add up) is listed as ``deposit_missing`` with its reason. The night's
export of that day has the deposit's lines in deposits.csv."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import nightly_export, reconcile
from invoice_sync.models.sync import SyncStatus, utcnow
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, fixture_invoices
from tests.integration.conftest import Harness, fixture_bytes

ACME = "in_1QaCurrentAcme01"  # a1 finalized, a2 paid by card (pi_3QaAcmePay0001): USD 1,677.86
PAYOUT = "po_1QaAcmePayout01"
CHARGE = "ch_3QgAcmeCharge01"
INTENT = "pi_3QaAcmePay0001"
# The payment less Stripe's fee on it and a billing fee: 1,677.86 - 48.96 - 0.30 = 1,628.60.
TRANSACTIONS = [
    {
        "id": "txn_1QaAcmeCharge",
        "type": "charge",
        "amount": 167786,
        "fee": 4896,
        "source": {"id": CHARGE, "object": "charge", "amount": 167786, "payment_intent": INTENT},
    },
    {"id": "txn_1QaAcmeFee", "type": "stripe_fee", "amount": -30, "fee": 0},
]
NET = 167786 - 4896 - 30


@pytest.fixture
def stripe(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    """The Stripe stand-in holding ACME-0001 as paid (created now: the window's), and payout
    deposits on for the connection with the QuickBooks sandbox's accounts (bank 35, fees 92,
    unmatched 93; payments into Undeposited Funds, refunds out of account 4)."""
    server = StripeSandbox()
    url = server.start()
    monkeypatch.setenv("STRIPE_API_BASE", url)
    invoices = [dict(obj, created=int(time.time())) for obj in fixture_invoices() if obj["id"] == ACME]
    assert invoices, "the a1/a2 fixtures' invoice"
    server.seed_account(
        harness.company.stripe_account, api_key=harness.company.stripe_api_key, invoices=invoices
    )
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    connection = store.connection(harness.company.connection_id)
    assert connection is not None
    settings = {
        "payout_deposits": True,
        "payout_bank_account": "35",
        "payout_fee_account": "92",
        "payout_unmatched_account": "93",
        "refund_from_account": "4",
        "payment_account": None,
    }
    store.put_connection(connection.model_copy(update=settings))
    bootstrap.reset()  # no warm function may hold the connection as it was
    yield server
    server.stop()


def _paid_out(
    harness: Harness, stripe: StripeSandbox, payout: str, amount: int, txns: list[dict[str, Any]]
) -> None:
    """Stripe pays out: the payout and its balance transactions in the stand-in, and its signed
    ``payout.reconciliation_completed`` (the event's shape from tests/events/stripe/h2) through
    intake, then push."""
    seeded = stripe.seed_payout(
        harness.company.stripe_account,
        {
            "id": payout,
            "amount": amount,
            "currency": "usd",
            "arrival_date": int(time.time()),
            "automatic": True,
            "status": "paid",
            "reconciliation_status": "completed",
        },
        txns,
        emit=False,
    )
    event = json.loads(fixture_bytes("h2"))
    event["id"] = f"evt_{payout}_recon"
    event["created"] = int(time.time())
    event["data"]["object"] = seeded
    assert harness.post(json.dumps(event).encode())[0] == 200
    assert harness.drain() == 0


def _reconciled(harness: Harness) -> dict[str, Any]:
    day = utcnow().date().isoformat()
    out = reconcile.handler({"date": day}, LocalContext("reconcile"))
    assert [r["date"] for r in out["reconciled"]] == [day]
    key = f"reports/{harness.company.connection_id}/{day}/report.json"
    body = harness.client("s3").get_object(Bucket=harness.resources.archive_bucket, Key=key)["Body"]
    report: dict[str, Any] = json.loads(body.read())
    return report


def _payout_differences(report: dict[str, Any]) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (d["class"], d["direction"], d["source_id"], d["source_amount"], d["ledger_amount"])
        for d in report["differences"]
        if d["kind"] == "payout"
    ]


def test_a_payouts_deposit_is_checked_edited_deleted_and_a_parked_payout_listed(
    harness: Harness, stripe: StripeSandbox
) -> None:
    """Given ACME-0001 and its card payment in QuickBooks and Stripe's payout of it booked as one
    Deposit of 1,628.60, the day's report is clean, the deposit read and counted on the ledger's
    side and among the to-ledger records; the deposit's fee line changed in QuickBooks by a person
    (total 1,578.60) is one deposit_total_differs, to the ledger, of the booked 1,628.60 against
    1,578.60; the deposit deleted is deposit_missing; and a second payout whose transactions do
    not add up, parked by push, is deposit_missing too, its detail naming the parked reason."""
    for prefix in ("a1", "a2"):
        assert harness.deliver(prefix)[0] == 200
    assert harness.drain() == 0
    _paid_out(harness, stripe, PAYOUT, NET, TRANSACTIONS)
    record = harness.record("payout", PAYOUT)
    assert record is not None and record.status is SyncStatus.SYNCED, record
    (deposit,) = harness.documents("Deposit")
    assert Decimal(str(deposit["TotalAmt"])) == Decimal("1628.60")
    assert record.ledger_id == deposit["Id"] and record.ledger_total == NET
    harness.alerts()

    clean = _reconciled(harness)
    assert clean["status"] == "clean", clean["differences"]
    to_ledger = clean["summary"]["directions"]["to_ledger"]
    assert (to_ledger["deposits_checked"], to_ledger["manual_deposit"]) == (1, 0)
    assert to_ledger["records"]["synced"] >= 3  # the invoice, its payment and the payout
    assert clean["summary"]["sides"]["records"]["counts"]["payout"] == 1
    assert clean["summary"]["sides"]["ledger"]["counts"]["payout"] == 1

    # A person in QuickBooks changes the fee line (-49.26 -> -99.26), behind invoice-sync's back.
    with harness.sandbox._lock:
        stored = harness.sandbox._tenant(harness.realm_id).table("Deposit")[deposit["Id"]]
        (fee,) = [line for line in stored["Line"] if not line.get("LinkedTxn")]
        fee["Amount"] = Decimal("-99.26")
        stored["TotalAmt"] = Decimal("1578.60")
    edited = _reconciled(harness)
    assert _payout_differences(edited) == [
        ("deposit_total_differs", "to_ledger", PAYOUT, "1628.60", "1578.60")
    ]
    assert edited["summary"]["directions"]["to_ledger"]["differences"] == 1
    (difference,) = edited["differences"]
    assert difference["ledger_ids"] == [deposit["Id"]]
    assert difference["number"] == record.source_number

    with harness.sandbox._lock:
        del harness.sandbox._tenant(harness.realm_id).table("Deposit")[deposit["Id"]]
    _paid_out(
        harness,
        stripe,
        "po_1QaAcmePayout02",
        100_000,  # the bank line; its one transaction is a 0.30 fee
        [{"id": "txn_1QaAcmeFee2", "type": "stripe_fee", "amount": -30, "fee": 0}],
    )
    parked = harness.record("payout", "po_1QaAcmePayout02")
    assert parked is not None and parked.status.parked, parked
    gone = _reconciled(harness)
    found = _payout_differences(gone)
    assert found == [
        ("deposit_missing", "to_ledger", PAYOUT, "1628.60", None),
        ("deposit_missing", "to_ledger", "po_1QaAcmePayout02", "1000.00", None),
    ]
    details = {d["source_id"]: d["detail"] for d in gone["differences"]}
    assert "which the ledger does not hold" in details[PAYOUT]
    assert f"record {parked.status.value} ({parked.alerted_reason})" in details["po_1QaAcmePayout02"]
    assert gone["summary"]["directions"]["to_ledger"]["deposits_checked"] == 1


def test_the_nights_export_has_the_payouts_deposit_lines(harness: Harness, stripe: StripeSandbox) -> None:
    """Given the same payout booked as one QBO Deposit of 1,628.60, when the nightly_export handler
    exports the day (as the schedule invokes it), then deposits.csv holds the deposit's two lines,
    the payment moved out of Undeposited Funds (1,677.86, its QBO Payment, the charge's balance
    transaction) and Stripe's fees (-49.26 to account 92), adding up to the bank line; payments.csv
    names no payout; and the manifest counts the payout and its 1,628.60."""
    for prefix in ("a1", "a2"):
        assert harness.deliver(prefix)[0] == 200
    assert harness.drain() == 0
    _paid_out(harness, stripe, PAYOUT, NET, TRANSACTIONS)
    store = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    (payment,) = [
        r
        for r, _ in store.records_with_prefix(harness.company.connection_id, "payment", "")
        if r.status is SyncStatus.SYNCED
    ]
    (deposit,) = harness.documents("Deposit")
    day = utcnow().date()
    nightly_export.handler({"date": day.isoformat()}, LocalContext("nightly-export"))
    prefix = f"exports/{harness.company.connection_id}/{day:%Y/%m/%d}/"
    s3 = harness.client("s3")

    def read(name: str) -> bytes:
        body: bytes = s3.get_object(Bucket=harness.resources.archive_bucket, Key=prefix + name)["Body"].read()
        return body

    rows = list(csv.DictReader(io.StringIO(read("deposits.csv").decode())))
    assert [
        (
            r["payout_id"],
            r["deposit_ledger_id"],
            r["line_kind"],
            r["amount"],
            r["line_ledger_id"],
            r["account"],
        )
        for r in rows
    ] == [
        (PAYOUT, deposit["Id"], "payment", "1677.86", payment.ledger_id, ""),
        (PAYOUT, deposit["Id"], "fee", "-49.26", "", "92"),
    ]
    assert rows[0]["stripe_balance_transaction"] == "txn_1QaAcmeCharge"
    assert {(r["payout_reference"], r["ledger"], r["sync_status"]) for r in rows} == {
        ("PO-1QaAcmePayout01", "quickbooks", "synced")  # the reference the deposit carries
    }
    (booked,) = [r for r in rows if r["line_kind"] == "payment"]
    assert booked["payout_reference"] == deposit["DocNumber"]
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("1628.60")
    assert b"po_" not in read("payments.csv")
    manifest = json.loads(read("manifest.json"))
    assert manifest["documents"]["payout"] == {"synced": 1}
    assert manifest["totals"]["payout"] == {"USD": "1628.60"}
    assert manifest["files"]["deposits.csv"]["rows"] == 2
