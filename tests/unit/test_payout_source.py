"""Stripe payouts on the source side (design two-way 3.5.2 "Intake"): payout.* events parsed into
``Payout``, versioned, refused by name when malformed, and queued by the intake with the snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from invoice_sync.errors import InvalidPayload
from invoice_sync.models.documents import Payout, SourceEvent, version_of
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sources.stripe import HANDLED_EVENTS, parse_event, parse_payout
from invoice_sync.store.sync_state import _from_item, _to_item
from invoice_sync.sync.intake import IntakeOutcome, sync_message
from tests.unit.test_intake import World, signed

RawEvent = Callable[[str], bytes]
EventDict = Callable[[str], dict[str, Any]]

PAID_AT = 1_796_364_131  # h1's created: 2026-12-04T06:02:11Z
RECONCILED_AT = 1_796_365_900  # h2's created


def payout_of(raw_event: RawEvent, prefix: str) -> tuple[SourceEvent, Payout]:
    event = parse_event(raw_event(prefix))
    assert event is not None
    assert event.payout is not None
    return event, event.payout


def as_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- parsing -------------------------------------------------------------------------------------


def test_the_four_payout_events_are_handled() -> None:
    """Given HANDLED_EVENTS, the payout events design 3.5.2 names are in it, payout.created and
    payout.updated are not (nothing to book before the money has left Stripe)."""
    payout_events = {name for name in HANDLED_EVENTS if name.startswith("payout.")}
    assert payout_events == {
        "payout.paid",
        "payout.reconciliation_completed",
        "payout.failed",
        "payout.canceled",
    }


def test_automatic_payout_paid_parses_every_field(raw_event: RawEvent) -> None:
    """Given h1 (payout.paid of the worked example's automatic payout, reconciliation in progress),
    parse_event gives a Payout with the minor-unit amount, upper-case currency, the arrival day, the
    payout's own transaction and bank account, and the event's time; no document."""
    event, payout = payout_of(raw_event, "h1")
    assert event.event_type == "payout.paid"
    assert (event.invoice, event.credit_note, event.refund) == (None, None, None)
    assert payout == Payout(
        source_id="po_1QxYz",
        amount=20243,
        currency="USD",
        arrival_on=date(2026, 12, 4),
        automatic=True,
        status="paid",
        reconciliation_status="in_progress",
        balance_transaction="txn_1QxYzPayout01",
        destination="ba_1QxBankUsd01",
        created=PAID_AT,
    )
    assert isinstance(payout.amount, int)
    assert payout.number == "PO-1QxYz"
    assert payout.total == 20243
    assert str(payout.money(payout.amount).to_decimal()) == "202.43"
    assert event.subject is payout


def test_reconciliation_completed_is_the_same_payout_reconciled(raw_event: RawEvent) -> None:
    """Given h2 (payout.reconciliation_completed of the same payout), only the reconciliation
    status and the event time differ from h1."""
    _, paid = payout_of(raw_event, "h1")
    event, reconciled = payout_of(raw_event, "h2")
    assert event.event_type == "payout.reconciliation_completed"
    assert reconciled.reconciliation_status == "completed"
    assert reconciled.created == RECONCILED_AT
    assert reconciled.model_copy(update={"reconciliation_status": "in_progress", "created": PAID_AT}) == paid


def test_manual_payout_parses_as_not_automatic(raw_event: RawEvent) -> None:
    """Given h3 (a manual payout: automatic false, reconciliation not_applicable), the Payout says so:
    push must not trust Stripe's transaction list for it."""
    _, payout = payout_of(raw_event, "h3")
    assert payout.automatic is False
    assert payout.reconciliation_status == "not_applicable"
    assert payout.amount == 50000
    assert payout.number == "PO-1QmManual01"


def test_expanded_ids_are_read_as_ids(event_dict: EventDict) -> None:
    """Given h1 with balance_transaction and destination expanded into objects, the Payout keeps
    their ids."""
    document = event_dict("h1")
    obj = document["data"]["object"]
    obj["balance_transaction"] = {"id": "txn_1QxYzPayout01", "object": "balance_transaction"}
    obj["destination"] = {"id": "ba_1QxBankUsd01", "object": "bank_account"}
    event = parse_event(as_bytes(document))
    assert event is not None and event.payout is not None
    assert (event.payout.balance_transaction, event.payout.destination) == (
        "txn_1QxYzPayout01",
        "ba_1QxBankUsd01",
    )


@pytest.mark.parametrize("event_type", ["payout.failed", "payout.canceled"])
def test_failed_and_canceled_payouts_parse(event_dict: EventDict, event_type: str) -> None:
    """Given h1 turned into payout.failed / payout.canceled, the Payout carries that status."""
    document = event_dict("h1")
    document["type"] = event_type
    document["data"]["object"]["status"] = event_type.removeprefix("payout.")
    event = parse_event(as_bytes(document))
    assert event is not None and event.payout is not None
    assert event.payout.status == event_type.removeprefix("payout.")


def test_unhandled_payout_event_is_ignored(event_dict: EventDict) -> None:
    """Given h1 retyped payout.created, parse_event returns None (ignored, not refused)."""
    document = event_dict("h1")
    document["type"] = "payout.created"
    assert parse_event(as_bytes(document)) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda o: o.pop("amount"), r"data\.object\.amount: required field is missing"),
        (lambda o: o.update(amount="202.43"), r"data\.object\.amount"),
        (lambda o: o.update(id="tr_1QxYz"), r"data\.object\.id"),
        (lambda o: o.update(object="transfer"), r"data\.object\.object"),
        (lambda o: o.update(currency="dollars"), r"data\.object\.currency"),
        (lambda o: o.update(status="reversed"), r"data\.object\.status"),
        (lambda o: o.update(reconciliation_status="done"), r"data\.object\.reconciliation_status"),
        (lambda o: o.pop("automatic"), r"data\.object\.automatic"),
        (lambda o: o.update(arrival_date=10**20), r"data\.object\.arrival_date"),
        (lambda o: o.update(arrival_date="2026-12-04"), r"data\.object\.arrival_date"),
    ],
)
def test_malformed_payout_is_refused_naming_the_field(
    event_dict: EventDict, change: Callable[[dict[str, Any]], object], named: str
) -> None:
    """Given h1 with one payout field missing or wrong, parse_event raises InvalidPayload naming that
    field (the intake's 400), never a bare ValidationError or a silent drop."""
    document = event_dict("h1")
    change(document["data"]["object"])
    with pytest.raises(InvalidPayload, match=named):
        parse_event(as_bytes(document))


def test_payout_error_does_not_echo_the_value() -> None:
    """Given a payout whose status is a crafted string, the refusal names the field, not the value."""
    with pytest.raises(InvalidPayload) as caught:
        parse_payout({"id": "po_1", "status": "<script>secret</script>"}, PAID_AT)
    assert "secret" not in str(caught.value)
    assert "status" in str(caught.value)


# --- versions and hashes -------------------------------------------------------------------------


def test_versions_order_event_time_then_status(raw_event: RawEvent) -> None:
    """Given h1 then h2 (later), h2's version is higher; in one second, pending < in_transit <
    paid < paid and reconciled < failed = canceled."""
    first, _ = payout_of(raw_event, "h1")
    second, paid = payout_of(raw_event, "h2")
    assert second.version > first.version
    assert first.version == PAID_AT * 10 + 4

    def at(status: str, reconciliation: str = "in_progress") -> int:
        changed = paid.model_copy(update={"status": status, "reconciliation_status": reconciliation})
        return version_of(PAID_AT, changed)

    assert at("pending") < at("in_transit") < at("paid") < at("paid", "completed") < at("failed")
    assert at("failed") == at("canceled")
    assert at("canceled", "completed") < version_of(
        PAID_AT + 1, paid.model_copy(update={"status": "pending"})
    )


def test_content_hash_ignores_only_the_event_time(raw_event: RawEvent) -> None:
    """Given the same payout stamped by two events, the hash is equal; a changed status or
    reconciliation status changes it."""
    _, paid = payout_of(raw_event, "h1")
    _, reconciled = payout_of(raw_event, "h2")
    assert paid.content_hash() == paid.model_copy(update={"created": PAID_AT + 60}).content_hash()
    assert paid.content_hash() != reconciled.content_hash()
    assert paid.content_hash() != paid.model_copy(update={"status": "failed"}).content_hash()


def test_payout_model_refuses_what_a_deposit_cannot_be() -> None:
    """Given a Payout built with a non-payout id, pydantic refuses it; a debit of the bank (amount
    zero or less) is a payout too (push parks it, design two-way 3.5.2)."""
    good: dict[str, Any] = {
        "source_id": "po_1",
        "amount": 1,
        "currency": "usd",
        "arrival_on": date(2026, 12, 4),
        "automatic": True,
        "status": "paid",
        "reconciliation_status": "completed",
        "balance_transaction": None,
        "destination": None,
        "created": PAID_AT,
    }
    assert Payout(**good).currency == "USD"
    assert Payout(**(good | {"amount": -500})).amount == -500
    with pytest.raises(ValueError, match=r"source_id"):
        Payout(**(good | {"source_id": "tr_1"}))


# --- the event and the message -------------------------------------------------------------------


def test_payout_event_has_no_document_and_says_so(raw_event: RawEvent) -> None:
    """Given h1's event, ``document`` raises a TypeError naming the event (callers that can see a
    payout read ``subject``), while an invoice event's ``document`` still works."""
    event, _ = payout_of(raw_event, "h1")
    with pytest.raises(TypeError, match=r"evt_1QxYzPayoutPaid01.*payout"):
        _ = event.document
    invoice = parse_event(raw_event("a1"))
    assert invoice is not None
    assert invoice.document is invoice.subject is invoice.invoice


def test_an_event_carries_exactly_one_subject(raw_event: RawEvent) -> None:
    """Given a payout and an invoice in one SourceEvent, or neither, construction is refused."""
    _, payout = payout_of(raw_event, "h1")
    invoice = parse_event(raw_event("a1"))
    assert invoice is not None
    with pytest.raises(ValueError, match="exactly one subject"):
        SourceEvent(
            event_id="evt_1", event_type="payout.paid", created=1, payout=payout, invoice=invoice.invoice
        )
    with pytest.raises(ValueError, match="exactly one subject"):
        SourceEvent(event_id="evt_1", event_type="payout.paid", created=1)


def test_sync_message_carries_the_payout_and_no_document(raw_event: RawEvent) -> None:
    """Given h2's event, sync_message builds a message with the payout, ``document`` None and
    ``subject`` the payout, that reads back from JSON as itself."""
    event, payout = payout_of(raw_event, "h2")
    message = sync_message(event, source="stripe", connection_id="acme", archive_key="raw/stripe/acme/k")
    assert message.payout == payout
    assert message.document is None
    assert message.subject == payout
    assert message.version == RECONCILED_AT * 10 + 5
    assert SyncMessage.model_validate_json(message.model_dump_json()) == message


def test_sync_message_refuses_two_snapshots(raw_event: RawEvent) -> None:
    """Given a message with both an invoice and a payout, construction is refused."""
    _, payout = payout_of(raw_event, "h1")
    invoice = parse_event(raw_event("a1"))
    assert invoice is not None
    with pytest.raises(ValueError, match="at most one snapshot"):
        SyncMessage(
            connection_id="acme",
            source="stripe",
            event_id="evt_1",
            event_type="payout.paid",
            version=1,
            archive_key="k",
            invoice=invoice.invoice,
            payout=payout,
        )


# --- the intake ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "event_id", "reconciliation"),
    [
        ("h1", "evt_1QxYzPayoutPaid01", "in_progress"),
        ("h2", "evt_1QxYzPayoutRecon01", "completed"),
        ("h3", "evt_1QmManualPaid01", "not_applicable"),
    ],
)
def test_intake_queues_a_signed_payout_event_with_its_snapshot(
    raw_event: RawEvent, prefix: str, event_id: str, reconciliation: str
) -> None:
    """Given a correctly signed payout event, accept() queues one message carrying the payout
    snapshot (so push need not re-parse the raw body) and the exact body; nothing is archived."""
    world = World()
    body = raw_event(prefix)
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.QUEUED
    assert result.event_id == event_id
    assert world.archive.objects == {}
    (message,) = world.queue.messages
    assert message.payout is not None
    assert message.payout.reconciliation_status == reconciliation
    assert message.document is None
    assert message.raw is not None and message.raw.encode() == body


def test_intake_refuses_a_signed_malformed_payout_and_writes_nothing(event_dict: EventDict) -> None:
    """Given a correctly signed payout.paid whose payout lacks its amount, accept() raises
    InvalidPayload naming the field (a 400) and queues nothing."""
    world = World()
    document = event_dict("h1")
    del document["data"]["object"]["amount"]
    body = as_bytes(document)
    with pytest.raises(InvalidPayload, match=r"data\.object\.amount"):
        world.service.accept("stripe", "acme", signed(body), body)
    assert world.nothing_written()


# --- sync state ----------------------------------------------------------------------------------


def test_payout_and_deposited_payment_records_round_trip_through_the_item_shape() -> None:
    """Given a payout record and a payment record with its ``deposit_id``, the SyncState item shape
    (``_to_item`` / ``_from_item``) writes them flat and reads them back unchanged, and a record
    without ``deposit_id`` (written before payouts) reads back with None."""
    payout = SyncRecord(
        connection_id="acme",
        kind="payout",
        source_id="po_1QxYz",
        status=SyncStatus.SYNCED,
        source_total=20243,
        ledger_id="deposit-1",
        ledger_number="PO-1QxYz",
    )
    payment = SyncRecord(
        connection_id="acme",
        kind="payment",
        source_id="inpay_1",
        status=SyncStatus.SYNCED,
        deposit_id="deposit-1",
    )
    for record in (payout, payment):
        item = _to_item(record, 3)
        assert item["sk"] == {"S": f"{record.kind}#{record.source_id}"}
        assert all(set(value) <= {"S", "N"} for value in item.values())
        assert _from_item(item) == (record, 3)
    assert _to_item(payment, 1)["deposit_id"] == {"S": "deposit-1"}
    older = _to_item(payment.model_copy(update={"deposit_id": None}), 1)
    assert "deposit_id" not in older
    assert _from_item(older)[0].deposit_id is None


def test_a_payout_debiting_the_bank_is_accepted_for_push_to_park(event_dict: EventDict) -> None:
    """Given h1 with a negative amount (Stripe reclaiming a negative balance from the bank), then it
    parses: a 400 would have Stripe retry it for days, while push parks it for a person."""
    document = event_dict("h1")
    document["data"]["object"]["amount"] = -500
    event = parse_event(as_bytes(document))
    assert event is not None and event.payout is not None
    assert event.payout.amount == -500


def test_the_deposit_reference_fits_quickbooks_doc_number() -> None:
    """Given a payout id of Stripe's real length, then its reference keeps the id's tail and fits
    QuickBooks' 21-character DocNumber."""
    payout = Payout(
        source_id="po_1QxYzAbCdEfGhIjKlMnOpQrSt",
        amount=100,
        currency="usd",
        arrival_on=date(2026, 12, 4),
        automatic=True,
        status="paid",
        reconciliation_status="completed",
        balance_transaction=None,
        destination=None,
        created=PAID_AT,
    )
    assert payout.number == "PO-CdEfGhIjKlMnOpQrSt"
    assert len(payout.number) <= 21
