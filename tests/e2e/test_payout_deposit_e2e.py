"""End-to-end: a Stripe payout becomes one bank deposit in the ledger (issue 7, design two-way
3.5.2), on the local stack over HTTP, for QuickBooks, Xero and FreshBooks.

The demo's story reaches the ledger first: ACME-0001 (USD 1,677.86) finalized and paid by card
(payment intent pi_3QaAcmePay0001), then 162.38 of it refunded. Then Stripe pays out, and the
stand-in sends its signed payout.paid and payout.reconciliation_completed to the Stripe route:

| txn                | type       | amount    | fee   | net       |
| txn_1QaAcmeCharge  | charge     | 1,677.86  | 48.96 | 1,628.90  |
| txn_1QaAcmeRefund  | refund     |  -162.38  |  0.00 |  -162.38  |
| txn_1QaAcmeFee     | stripe_fee |    -0.30  |  0.00 |    -0.30  |

Payout po_1QaAcmePayout01 = 1,466.22, what the bank receives. QuickBooks: one Deposit of 1,466.22
linking the payment and the refund receipt, one fee line of -49.26. Xero: the clearing account
(payments in, refunds out) spends the fees and transfers 1,466.22 to the bank, back to zero.
FreshBooks (no deposit API): one fee expense of 49.26 and the deposit slip in the archive bucket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_sync import bootstrap
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.demo import send
from invoice_sync_ops.local.stack import LocalStack
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

PAYOUT = "po_1QaAcmePayout01"
CHARGE = "ch_3QgAcmeCharge01"  # g1's charge: the card payment of ACME-0001
INTENT = "pi_3QaAcmePay0001"
TRANSACTIONS = [
    {
        "id": "txn_1QaAcmeCharge",
        "type": "charge",
        "amount": 167786,
        "fee": 4896,
        "source": {"id": CHARGE, "object": "charge", "amount": 167786, "payment_intent": INTENT},
    },
    {
        "id": "txn_1QaAcmeRefund",
        "type": "refund",
        "amount": -16238,
        "fee": 0,
        "source": {"id": "re_1QaAcmeRefund01", "object": "refund", "amount": 16238, "charge": CHARGE},
    },
    {"id": "txn_1QaAcmeFee", "type": "stripe_fee", "amount": -30, "fee": 0},
]
NET = 167786 - 4896 - 16238 - 30  # 146622


def _payout_settings(stack: LocalStack) -> dict[str, Any]:
    tenant = stack.ledger.tenant_id
    if stack.ledger.kind == "quickbooks":
        # Payments into Undeposited Funds (no payment_account), refunds out of it (account 4).
        return {
            "payout_bank_account": "35",
            "payout_fee_account": "92",
            "payout_unmatched_account": "93",
            "refund_from_account": "4",
            "payment_account": None,
        }
    if stack.ledger.kind == "xero":
        assert isinstance(stack.sandbox, XeroSandbox)
        # Payments into the clearing account, refunds out of it.
        return {
            "payment_account": "091",
            "refund_from_account": None,
            "payout_bank_account": "090",
            "payout_fee_account": "404",
            "payout_unmatched_account": "200",
            "payout_contact_id": stack.sandbox.seed_supplier(tenant),
        }
    assert isinstance(stack.sandbox, FreshBooksSandbox)
    return {"payout_fee_account": str(stack.sandbox.category_id(tenant))}


@pytest.fixture(scope="module", params=["quickbooks", "xero", "freshbooks"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The demo stack with payout deposits on, the demo's payment and refund in the ledger, and the
    Stripe stand-in sending its webhooks to the Stripe route."""
    with LocalStack(ledger=request.param) as running:
        assert running.resources is not None
        mappings = MappingsStore(running.resources.mappings_table, running.client("dynamodb"))
        connection = mappings.connection(running.company.connection_id)
        assert connection is not None
        settings = {"payout_deposits": True, **_payout_settings(running)}
        mappings.put_connection(connection.model_copy(update=settings))
        bootstrap.reset()  # no warm function may hold the connection as it was
        for fixture in (
            "a1_invoice.finalized.current.json",
            "a2_invoice.paid.current.json",
            "g1_charge.refunded.partial.current.json",
        ):
            assert send(running, fixture).status_code == 200
            assert running.drain(timeout=90)
        running.stripe.subscribe(
            running.company.stripe_account, running.webhook_url(), running.company.webhook_secret
        )
        yield running


def _state(stack: LocalStack) -> SyncStateStore:
    assert stack.resources is not None
    return SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))


def _record(stack: LocalStack, kind: str, source_id: str) -> SyncRecord | None:
    record, _ = _state(stack).get(stack.company.connection_id, kind, source_id)  # type: ignore[arg-type]
    return record


def _settled(stack: LocalStack, timeout: float = 90.0) -> SyncRecord:
    """Waits for the payout's record to settle (the stand-in's webhooks, push's retry of the
    payout.paid that came before Stripe finished reconciling)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.drain(timeout=10)
        record = _record(stack, "payout", PAYOUT)
        if record is not None and record.status is not SyncStatus.PENDING:
            return record
        time.sleep(0.5)
    raise AssertionError(f"payout {PAYOUT} did not settle: {_record(stack, 'payout', PAYOUT)}")


def _seed_payout(stack: LocalStack) -> None:
    stack.stripe.seed_payout(
        stack.company.stripe_account,
        {
            "id": PAYOUT,
            "amount": NET,
            "currency": "usd",
            "arrival_date": int(time.time()),
            "automatic": True,
            "status": "paid",
            "reconciliation_status": "completed",
        },
        TRANSACTIONS,
    )


def _payment_and_refund(stack: LocalStack) -> tuple[SyncRecord, SyncRecord]:
    state = _state(stack)
    connection = stack.company.connection_id
    payments = [
        r for r, _ in state.records_with_prefix(connection, "payment", "") if r.status is SyncStatus.SYNCED
    ]
    refunds = [r for r, _ in state.records_with_prefix(connection, "refund", f"{CHARGE}:")]
    assert len(payments) == 1, payments
    assert len(refunds) == 1, refunds
    return payments[0], refunds[0]


def test_a_payout_becomes_one_deposit_equal_to_the_bank_line(stack: LocalStack) -> None:
    """Given the demo's payment and refund in the ledger, when Stripe pays them out (its signed
    payout webhooks), then the ledger holds one deposit equal to the payout to the cent, and the
    payment and refund it took are marked with the payout."""
    payment, refund = _payment_and_refund(stack)
    _seed_payout(stack)

    record = _settled(stack)

    assert record.status is SyncStatus.SYNCED, record.last_error
    assert record.source_total == NET
    tenant = stack.ledger.tenant_id
    payment, refund_after = _payment_and_refund(stack)
    assert payment.deposit_id == PAYOUT
    if stack.ledger.kind == "quickbooks":
        (deposit,) = stack.sandbox.documents(tenant, "Deposit")
        assert Decimal(str(deposit["TotalAmt"])) == Decimal("1466.22")
        linked = {
            (link["TxnType"], link["TxnId"]) for line in deposit["Line"] for link in line.get("LinkedTxn", [])
        }
        assert linked == {("Payment", payment.ledger_id), ("RefundReceipt", refund.ledger_id)}
        fees = [line for line in deposit["Line"] if not line.get("LinkedTxn")]
        assert [Decimal(str(line["Amount"])) for line in fees] == [Decimal("-49.26")]
        assert refund_after.deposit_id == PAYOUT
        assert record.ledger_id == deposit["Id"] and record.ledger_total == NET
    elif stack.ledger.kind == "xero":
        assert isinstance(stack.sandbox, XeroSandbox)
        balances = stack.sandbox.balances(tenant)
        assert balances["091"] == Decimal("0.00"), balances  # the clearing account is empty again
        (transfer,) = stack.sandbox.documents(tenant, "BankTransfers")
        assert Decimal(str(transfer["Amount"])) == Decimal("1466.22")
        assert record.ledger_id == transfer["BankTransferID"]
    else:
        assert isinstance(stack.sandbox, FreshBooksSandbox)
        (expense,) = stack.sandbox.documents(tenant, "expenses")
        assert Decimal(str(expense["amount"]["amount"])) == Decimal("49.26")
        assert record.last_error == "deposit slip only: FreshBooks has no deposit API"
        assert stack.resources is not None
        slip = stack.client("s3").get_object(
            Bucket=stack.resources.archive_bucket, Key=f"deposit-slips/acme/{PAYOUT}.csv"
        )
        text = slip["Body"].read().decode()
        assert "total,1466.22" in text
        assert f"payment,1677.86,Payment of ACME-0001,{payment.ledger_id}" in text


def test_the_same_payout_again_books_nothing_more(stack: LocalStack) -> None:
    """Given the payout booked, when Stripe delivers its payout events again (signed anew, as a
    retry would be), then the ledger still holds one deposit (one transfer, one fee expense)."""
    payout_events = [
        d["body"].encode()
        for d in stack.stripe.deliveries(stack.company.stripe_account)
        if str(d["event"]).startswith("payout.")
    ]
    assert len(payout_events) == 2  # payout.paid, then payout.reconciliation_completed
    for body in payout_events:
        header = signature_header(body, [stack.company.webhook_secret], int(time.time()))
        response = httpx.post(
            stack.webhook_url(),
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text

    record = _settled(stack)

    assert record.status is SyncStatus.SYNCED
    tenant = stack.ledger.tenant_id
    entity = {"quickbooks": "Deposit", "xero": "BankTransfers", "freshbooks": "expenses"}[stack.ledger.kind]
    assert len(stack.sandbox.documents(tenant, entity)) == 1
