"""End-to-end: payments back (issue 7) the whole way round on the local stack, over HTTP only,
for QuickBooks, Xero and FreshBooks (whose callback is first verified: FreshBooks posts its code
to the ledger webhook route, ``ledger_events`` queues it, the worker sends it back and keeps it).

An invoice is finalized in Stripe (the stand-in) and its signed invoice.finalized posted to the
Stripe route; push makes it in the ledger sandbox. A person then records a cheque by hand in the
ledger: the sandbox posts its signed webhook (QuickBooks: a CloudEvents payment event; Xero: an
INVOICE event) to the ledger webhook route,
``ledger_events`` queues it, the ``payments_back`` worker tells the Stripe stand-in (paid out of
band, or a payment record attached), the stand-in posts its signed invoice.updated/invoice.paid
back to the Stripe route, and push, seeing money the ledger holds already, books nothing more.
(FreshBooks: a payment.create form signed with the callback's verifier.)

Xero's webhooks have no payment category, so its guarantee is the scheduled poll: with the
sandbox's INVOICE event on payments switched off (whether real Xero sends one is not known), a
cheque reaches Stripe only through ``stack.poll_xero()`` (the XeroPollSchedule's invocation).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.demo import EVENTS
from invoice_sync_ops.local.stack import SECRETS_PREFIX, LocalStack
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

TOTAL = 167786  # a1's invoice: USD 1,677.86


# The field that holds each ledger's payment id.
PAYMENT_ID = {"quickbooks": "Id", "xero": "PaymentID", "freshbooks": "id"}


@pytest.fixture(scope="module", params=["quickbooks", "xero", "freshbooks"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The demo stack on a ledger with payments back on and its worker running: the sandbox sends
    its webhooks to the ledger webhook route, the Stripe stand-in its own to the Stripe route."""
    with LocalStack(ledger=request.param, payments_back_worker=True) as running:
        yield running


def _post_finalized(stack: LocalStack, invoice: dict[str, Any]) -> None:
    """Stripe's signed invoice.finalized for ``invoice``, posted to the Stripe route."""
    event: dict[str, Any] = json.loads((EVENTS / "a1_invoice.finalized.current.json").read_bytes())
    event["id"] = f"evt_{invoice['id'][3:]}Finalized"
    event["created"] = int(time.time())
    event["data"]["object"] = invoice
    body = json.dumps(event).encode()
    header = signature_header(body, [stack.company.webhook_secret], int(time.time()))
    response = httpx.post(
        stack.webhook_url(),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def _synced_invoice(stack: LocalStack, name: str) -> tuple[str, str]:
    """An open invoice like a1's (its own id and number) held by the Stripe stand-in, finalized and
    synced to the ledger; returns (Stripe invoice id, the ledger invoice id)."""
    event = json.loads((EVENTS / "a1_invoice.finalized.current.json").read_bytes())
    invoice = copy.deepcopy(event["data"]["object"])
    invoice["id"] = f"in_1QaBack{name}"
    invoice["number"] = f"BACK-{name}"
    stack.stripe.add_invoices(stack.company.stripe_account, [invoice])
    _post_finalized(stack, invoice)
    assert stack.drain(timeout=90)
    record = _record(stack, "invoice", invoice["id"])
    assert record.status is SyncStatus.SYNCED
    assert record.ledger_id is not None
    return invoice["id"], record.ledger_id


def _record(stack: LocalStack, kind: str, source_id: str) -> SyncRecord:
    assert stack.resources is not None
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    record, _ = state.get(stack.company.connection_id, kind, source_id)  # type: ignore[arg-type]
    assert record is not None, f"no {kind} record for {source_id}"
    return record


def _stripe_invoice(stack: LocalStack, invoice_id: str) -> dict[str, Any]:
    (invoice,) = [
        i for i in stack.stripe.documents(stack.company.stripe_account, "invoices") if i["id"] == invoice_id
    ]
    return invoice


def _effects(stack: LocalStack, since: int) -> list[str]:
    """The Stripe writes that changed something, after the first ``since`` writes."""
    writes = stack.stripe.writes(stack.company.stripe_account)[since:]
    return [write["path"].rsplit("/", 1)[-1] for write in writes if write["effect"]]


def _applied_to(payment: dict[str, Any]) -> set[str]:
    if "PaymentID" in payment:  # Xero: one invoice a payment, deleted ones kept
        return set() if payment.get("Status") == "DELETED" else {str(payment["Invoice"]["InvoiceID"])}
    if "invoiceid" in payment:  # FreshBooks: one invoice a payment, deleted ones kept (vis_state 1)
        return set() if payment.get("vis_state") == 1 else {str(payment["invoiceid"])}
    return {
        str(linked["TxnId"])
        for line in payment.get("Line", [])
        for linked in line.get("LinkedTxn", [])
        if linked.get("TxnType") == "Invoice"
    }


def _payments_on(stack: LocalStack, ledger_invoice: str) -> list[str]:
    """The ids of the ledger's payments applied to ``ledger_invoice``."""
    key = PAYMENT_ID[stack.ledger.kind]
    return sorted(
        str(payment[key])
        for payment in stack.ledger.documents(stack.sandbox, "payment")
        if ledger_invoice in _applied_to(payment)
    )


def _id(stack: LocalStack, payment: dict[str, Any]) -> str:
    return str(payment[PAYMENT_ID[stack.ledger.kind]])


def _delivered(deliveries: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    return [d for d in deliveries if d["url"] == url and d["state"] == "delivered"]


def test_a_cheque_for_the_whole_invoice_marks_it_paid_in_stripe_and_comes_back_as_nothing(
    stack: LocalStack,
) -> None:
    """Given an invoice finalized in Stripe and synced to the ledger, when a person records a cheque
    for all of it by hand in the ledger, then the sandbox's signed webhook reaches ledger_events (a
    2xx), the worker pays the Stripe invoice out of band with one write, Stripe's invoice.paid comes
    back through intake and push (a 2xx; push's record: already in the ledger), and the ledger
    still holds exactly one payment on the invoice: the person's."""
    invoice_id, ledger_invoice = _synced_invoice(stack, "Full01")
    writes_before = len(stack.stripe.writes(stack.company.stripe_account))
    ledger_before = len(
        _delivered(stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url())
    )

    cheque = stack.sandbox.record_payment_by_hand(
        stack.ledger.tenant_id, ledger_invoice, Decimal("1677.86"), reference="1042"
    )
    assert stack.drain(timeout=120)

    ledger_deliveries = _delivered(
        stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url()
    )
    assert len(ledger_deliveries) > ledger_before
    assert _effects(stack, writes_before) == ["pay"]
    stripe_invoice = _stripe_invoice(stack, invoice_id)
    assert (stripe_invoice["status"], stripe_invoice["amount_remaining"]) == ("paid", 0)
    back = _record(stack, "ledger_payment", f"{_id(stack, cheque)}:{ledger_invoice}")
    assert (back.status, back.stripe_object) == (SyncStatus.SYNCED, invoice_id)
    paid_events = [
        d
        for d in _delivered(stack.stripe.deliveries(stack.company.stripe_account), stack.webhook_url())
        if json.loads(d["body"])["type"] == "invoice.paid"
        and json.loads(d["body"])["data"]["object"]["id"] == invoice_id
    ]
    assert len(paid_events) == 1
    pushed = _record(stack, "payment", f"{invoice_id}:paid:{TOTAL}")
    assert pushed.status is SyncStatus.SKIPPED
    assert _payments_on(stack, ledger_invoice) == [_id(stack, cheque)]


def test_a_cheque_for_part_attaches_a_payment_record_then_the_rest_pays_it(stack: LocalStack) -> None:
    """Given a synced invoice, when a person records a cheque for 1,000.00 of its 1,677.86, then
    Stripe gets a payment record reported and attached and the invoice stays open with 677.86
    remaining; when they then record the 677.86 left, Stripe pays the invoice out of band; after
    each of Stripe's webhooks comes back, the ledger holds the person's two payments and no more."""
    invoice_id, ledger_invoice = _synced_invoice(stack, "Part01")
    writes_before = len(stack.stripe.writes(stack.company.stripe_account))

    first = stack.sandbox.record_payment_by_hand(
        stack.ledger.tenant_id, ledger_invoice, Decimal("1000.00"), reference="1043"
    )
    assert stack.drain(timeout=120)

    assert _effects(stack, writes_before) == ["report_payment", "attach_payment"]
    stripe_invoice = _stripe_invoice(stack, invoice_id)
    assert (stripe_invoice["status"], stripe_invoice["amount_remaining"]) == ("open", TOTAL - 100000)
    assert _payments_on(stack, ledger_invoice) == [_id(stack, first)]

    rest = stack.sandbox.record_payment_by_hand(
        stack.ledger.tenant_id, ledger_invoice, Decimal("677.86"), reference="1044"
    )
    assert stack.drain(timeout=120)

    assert _effects(stack, writes_before) == ["report_payment", "attach_payment", "pay"]
    stripe_invoice = _stripe_invoice(stack, invoice_id)
    assert (stripe_invoice["status"], stripe_invoice["amount_remaining"]) == ("paid", 0)
    assert _payments_on(stack, ledger_invoice) == sorted([_id(stack, first), _id(stack, rest)])


def test_the_card_payment_push_booked_is_never_sent_to_stripe(stack: LocalStack) -> None:
    """Given a synced invoice paid by card in Stripe (its invoice.paid posted to the Stripe route),
    when push books that payment in the ledger and the sandbox's webhook for it reaches the worker,
    then nothing at all is written to Stripe, and the ledger holds push's one payment."""
    invoice_id, ledger_invoice = _synced_invoice(stack, "Card01")
    writes_before = len(stack.stripe.writes(stack.company.stripe_account))
    ledger_before = len(
        _delivered(stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url())
    )
    event: dict[str, Any] = json.loads((EVENTS / "a2_invoice.paid.current.json").read_bytes())
    paid = event["data"]["object"]
    paid.update(id=invoice_id, number="BACK-Card01")
    for payment in paid["payments"]["data"]:
        payment["id"] = payment["id"] + "Card"
        payment["invoice"] = invoice_id
    event["id"] = "evt_1QaBackCard01Paid"
    event["created"] = int(time.time())
    body = json.dumps(event).encode()
    header = signature_header(body, [stack.company.webhook_secret], int(time.time()))
    assert (
        httpx.post(stack.webhook_url(), content=body, headers={"Stripe-Signature": header}).status_code == 200
    )
    assert stack.drain(timeout=120)

    pushed = _payments_on(stack, ledger_invoice)
    assert len(pushed) == 1
    # The sandbox told the ledger webhook route of push's payment, and the worker took it off the
    # queue: and still Stripe received no write.
    assert (
        len(_delivered(stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url()))
        > ledger_before
    )
    assert stack.stripe.writes(stack.company.stripe_account)[writes_before:] == []
    assert stack.ledger_events() == []


def _ledger_webhook_keys(stack: LocalStack) -> list[str]:
    raw = stack.client("secretsmanager").get_secret_value(
        SecretId=f"{SECRETS_PREFIX}/{stack.company.connection_id}/ledger-webhook"
    )
    keys: list[str] = json.loads(raw["SecretString"])["keys"]
    return keys


# FreshBooks' callbacks only: the module's FreshBooks stack, not a skip on the other two.
FRESHBOOKS_ONLY = pytest.mark.parametrize("stack", ["freshbooks"], indirect=True)


def _freshbooks(stack: LocalStack) -> FreshBooksSandbox:
    assert isinstance(stack.sandbox, FreshBooksSandbox)
    return stack.sandbox


@FRESHBOOKS_ONLY
def test_freshbooks_callback_is_verified_by_the_worker_and_its_code_kept_as_the_key(
    stack: LocalStack,
) -> None:
    """Given the stack registered FreshBooks' payment callback as `connect` does, then FreshBooks'
    verification went ledger_events -> queue -> worker -> FreshBooks: the sandbox shows the one
    callback verified, the connection's ledger-webhook secret holds the code FreshBooks issued as
    its first key, the registration is no longer pending, and nothing is left on the queue."""
    sandbox = _freshbooks(stack)
    assert stack.drain(timeout=60)
    callback_id = stack.freshbooks_callback_id
    assert callback_id is not None

    callbacks = [
        c for c in sandbox.callbacks(stack.ledger.tenant_id) if c["uri"] == stack.ledger_webhook_url()
    ]
    assert [(str(c["callbackid"]), c["verified"]) for c in callbacks] == [(callback_id, True)]
    code = sandbox.callback_verifier(stack.ledger.tenant_id, int(callback_id))
    assert _ledger_webhook_keys(stack)[0] == code
    assert stack.resources is not None
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    pending = state.pending_callback(stack.company.connection_id, callback_id)
    assert pending is not None and pending.state == "verified"
    assert stack.ledger_events() == []


@FRESHBOOKS_ONLY
def test_a_forged_freshbooks_verify_leaves_nothing(stack: LocalStack) -> None:
    """Given the verified callback, when a stranger posts an unsigned callback.verify for a callback
    the connection never registered, then ledger_events answers 404 and queues nothing; and when
    such a verify reaches the queue anyway (the message is only a hint), the worker drops it:
    no call verifies anything, the secret's keys and FreshBooks' callbacks are as they were."""
    sandbox = _freshbooks(stack)
    assert stack.drain(timeout=60)
    keys_before = _ledger_webhook_keys(stack)
    callbacks_before = sandbox.callbacks(stack.ledger.tenant_id)
    form = {
        "name": "callback.verify",
        "object_id": "999999",
        "verifier": "forgedVerifier0000000000000000001",
        "account_id": stack.ledger.tenant_id,
    }

    response = httpx.post(
        stack.ledger_webhook_url(),
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 404
    assert stack.ledger_events() == []

    assert stack.resources is not None
    forged = LedgerEventMessage(
        connection_id=stack.company.connection_id,
        ledger="freshbooks",
        kind="callback_verify",
        object_id="999999",
        operation="verify",
        changed_at=None,
        event_id=None,
        verifier=SecretStr(form["verifier"]),
    )
    stack.client("sqs").send_message(
        QueueUrl=stack.resources.ledger_events_queue_url, MessageBody=forged.to_queue_body()
    )
    assert stack.drain(timeout=60)

    assert stack.ledger_events() == []
    assert _ledger_webhook_keys(stack) == keys_before
    assert form["verifier"] not in _ledger_webhook_keys(stack)
    assert sandbox.callbacks(stack.ledger.tenant_id) == callbacks_before


@FRESHBOOKS_ONLY
def test_a_verifier_freshbooks_refuses_is_never_kept(stack: LocalStack) -> None:
    """Given a second callback the connection registered (pending) whose code went elsewhere, when
    a verify with a wrong code for it reaches the worker, then the worker's PUT is refused by
    FreshBooks (400, errno 1004) and the message is dropped, not retried: the callback stays
    unverified, the secret's keys are as they were, the registration is still pending."""
    sandbox = _freshbooks(stack)
    assert stack.drain(timeout=60)
    assert stack.resources is not None
    keys_before = _ledger_webhook_keys(stack)
    # Its code is posted to a connection that does not exist (404), so no true verify comes.
    other = sandbox.register_callback(
        stack.ledger.tenant_id, "payment", stack.ledger_webhook_url(connection_id="nobody")
    )
    callback_id = str(other["callbackid"])
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    state.put_pending_callback(stack.company.connection_id, callback_id, "payment")
    wrong = LedgerEventMessage(
        connection_id=stack.company.connection_id,
        ledger="freshbooks",
        kind="callback_verify",
        object_id=callback_id,
        operation="verify",
        changed_at=None,
        event_id=None,
        verifier=SecretStr("wrongVerifier00000000000000000001"),
    )
    stack.client("sqs").send_message(
        QueueUrl=stack.resources.ledger_events_queue_url, MessageBody=wrong.to_queue_body()
    )
    assert stack.drain(timeout=60)

    (listed,) = [c for c in sandbox.callbacks(stack.ledger.tenant_id) if str(c["callbackid"]) == callback_id]
    assert listed["verified"] is False
    assert _ledger_webhook_keys(stack) == keys_before
    pending = state.pending_callback(stack.company.connection_id, callback_id)
    assert pending is not None and pending.state == "pending"
    assert stack.ledger_events() == []


# The Xero poll only: the module's Xero stack.
XERO_ONLY = pytest.mark.parametrize("stack", ["xero"], indirect=True)


def _xero(stack: LocalStack) -> XeroSandbox:
    assert isinstance(stack.sandbox, XeroSandbox)
    return stack.sandbox


@XERO_ONLY
def test_a_cheque_xero_announces_no_webhook_for_reaches_stripe_through_the_poll(stack: LocalStack) -> None:
    """Given a synced invoice and the connection polled once (its first poll: the cursor starts
    then), and the sandbox's INVOICE event on payments switched off (real Xero has no payment
    webhook), when a person records a cheque for all of it by hand in Xero, then nothing reaches
    the ledger webhook route and Stripe is unchanged; when the schedule's poll runs, it sends the
    cheque to the worker, which pays the Stripe invoice out of band with one write, and the ledger
    still holds only the person's payment; and a second poll sends nothing new to Stripe (the
    overlap's re-read is a duplicate the worker's version guard absorbs)."""
    sandbox = _xero(stack)
    invoice_id, ledger_invoice = _synced_invoice(stack, "Poll01")
    first = stack.poll_xero()
    assert (first["polled"], first["failed"]) == (1, 0)
    sandbox.invoice_events_on_payment = False
    try:
        account = stack.company.stripe_account
        writes_before = len(stack.stripe.writes(account))
        ledger_before = len(
            _delivered(stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url())
        )

        cheque = sandbox.record_payment_by_hand(
            stack.ledger.tenant_id, ledger_invoice, Decimal("1677.86"), reference="1045"
        )
        assert stack.drain(timeout=60)
        ledger_deliveries = _delivered(
            stack.sandbox.deliveries(stack.ledger.tenant_id), stack.ledger_webhook_url()
        )
        assert len(ledger_deliveries) == ledger_before
        assert _effects(stack, writes_before) == []

        polled = stack.poll_xero()
        assert stack.drain(timeout=120)

        (connection,) = polled["connections"]
        assert (connection["connection_id"], connection["outcome"]) == (stack.company.connection_id, "polled")
        assert connection["sent"] >= 1 and polled["failed"] == 0
        assert _effects(stack, writes_before) == ["pay"]
        stripe_invoice = _stripe_invoice(stack, invoice_id)
        assert (stripe_invoice["status"], stripe_invoice["amount_remaining"]) == ("paid", 0)
        back = _record(stack, "ledger_payment", f"{_id(stack, cheque)}:{ledger_invoice}")
        assert (back.status, back.stripe_object) == (SyncStatus.SYNCED, invoice_id)
        assert _payments_on(stack, ledger_invoice) == [_id(stack, cheque)]
        writes_after = len(stack.stripe.writes(account))

        again = stack.poll_xero()
        assert stack.drain(timeout=60)

        assert again["failed"] == 0
        assert stack.stripe.writes(account)[writes_after:] == []
        assert _payments_on(stack, ledger_invoice) == [_id(stack, cheque)]
        assert stack.ledger_events() == []
    finally:
        sandbox.invoice_events_on_payment = True
