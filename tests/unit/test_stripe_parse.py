"""Stripe events parsed into the domain: both Invoice shapes, exact minor units, refusals by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from invoice_sync.errors import InvalidPayload
from invoice_sync.models.documents import Invoice, InvoiceStatus, SourceEvent
from invoice_sync.sources.stripe import parse_event

RawEvent = Callable[[str], bytes]
EventDict = Callable[[str], dict[str, Any]]

HANDLED = ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "d1", "d2", "d3"]


def parsed(raw_event: RawEvent, prefix: str) -> SourceEvent:
    event = parse_event(raw_event(prefix))
    assert event is not None
    return event


def as_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- every fixture -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "source_id", "currency", "subtotal", "tax", "total", "status"),
    [
        ("a1", "in_1QaCurrentAcme01", "USD", 154999, 12787, 167786, InvoiceStatus.OPEN),
        ("a4", "in_1QaCurrentAcme01", "USD", 154999, 12787, 167786, InvoiceStatus.OPEN),
        ("a2", "in_1QaCurrentAcme01", "USD", 154999, 12787, 167786, InvoiceStatus.PAID),
        ("a3", "in_1QaCurrentAcme01", "USD", 154999, 12787, 167786, InvoiceStatus.PAID),
        ("b1", "in_1PbLegacyBeta01", "EUR", 36000, 6156, 38556, InvoiceStatus.OPEN),
        ("b2", "in_1PbLegacyBeta01", "EUR", 36000, 6156, 38556, InvoiceStatus.PAID),
        ("c1", "in_1QcUnmapped01", "USD", 5000, 0, 5000, InvoiceStatus.OPEN),
        ("d1", "in_1QdVoid01", "USD", 30000, 2475, 32475, InvoiceStatus.VOID),
        ("d2", "in_1QdBad01", "USD", 15000, 1238, 16238, InvoiceStatus.UNCOLLECTIBLE),
        ("d3", "in_1QdJpy01", "JPY", 12000, 0, 12000, InvoiceStatus.OPEN),
    ],
)
def test_fixture_totals_stay_integers_in_minor_units(
    raw_event: RawEvent,
    prefix: str,
    source_id: str,
    currency: str,
    subtotal: int,
    tax: int,
    total: int,
    status: InvoiceStatus,
) -> None:
    """Given each handled fixture, parse_event gives the README's totals as ints, the currency
    upper-cased and the status of the snapshot."""
    invoice = parsed(raw_event, prefix).invoice
    assert invoice.source_id == source_id
    assert invoice.currency == currency
    assert invoice.status is status
    assert (invoice.subtotal, invoice.tax, invoice.total) == (subtotal, tax, total)
    for value in (invoice.subtotal, invoice.tax, invoice.total, *(line.amount for line in invoice.lines)):
        assert type(value) is int
    assert sum(line.amount for line in invoice.lines) == invoice.subtotal
    assert invoice.lines_complete is True


def test_current_shape_lines_products_and_taxes(raw_event: RawEvent) -> None:
    """Given a1 (current shape), lines take their product from pricing.price_details.product and their
    tax from `taxes` with the rate id of tax_rate_details."""
    event = parsed(raw_event, "a1")
    invoice = event.invoice
    assert event.event_id == "evt_1QaAcmeFinalized0001"
    assert event.event_type == "invoice.finalized"
    assert event.created == 1767225600
    assert [(ln.source_id, ln.product_id, ln.quantity, ln.amount) for ln in invoice.lines] == [
        ("il_1QaAcmeConsult01", "prod_Consulting", 10, 150000),
        ("il_1QaAcmeHosting01", "prod_Hosting", 1, 4999),
    ]
    taxes = [[(t.rate_id, t.amount, t.inclusive, t.taxable_amount) for t in ln.taxes] for ln in invoice.lines]
    assert taxes == [[("txr_SalesTax825", 12375, False, 150000)], [("txr_SalesTax825", 412, False, 4999)]]
    assert invoice.number == "ACME-0001"
    assert invoice.customer.source_id == "cus_RAcme01"
    assert invoice.issued_on == date(2026, 1, 1)
    assert invoice.due_on == date(2026, 1, 31)
    assert invoice.discount == 0
    assert invoice.payments == ()
    assert invoice.amount_paid == 0


def test_legacy_shape_lines_products_taxes_and_discount(raw_event: RawEvent) -> None:
    """Given b1 (legacy shape), the product comes from price.product, the line tax from tax_amounts,
    the discount from total_discount_amounts, and an unpaid invoice has no payment."""
    invoice = parsed(raw_event, "b1").invoice
    assert invoice.currency == "EUR"
    (line,) = invoice.lines
    assert (line.product_id, line.quantity, line.amount, line.discount) == ("prod_Consulting", 3, 36000, 3600)
    assert [(t.rate_id, t.amount, t.inclusive, t.taxable_amount) for t in line.taxes] == [
        ("txr_VAT19", 6156, False, 32400)
    ]
    assert invoice.discount == 3600
    assert invoice.tax == 6156
    assert invoice.payments == ()


def test_current_shape_payment_comes_from_paid_invoice_payments(raw_event: RawEvent) -> None:
    """Given a2 (current shape, paid), the one InvoicePayment with status paid becomes the Payment,
    with its own id and paid_at day."""
    invoice = parsed(raw_event, "a2").invoice
    (payment,) = invoice.payments
    assert payment.source_id == "inpay_1QaAcmePay0001"
    assert payment.invoice_source_id == "in_1QaCurrentAcme01"
    assert payment.amount == 167786
    assert payment.currency == "USD"
    assert payment.paid_on == date(2026, 1, 1)  # paid_at 1767311990 = 2026-01-01T23:59:50Z
    assert invoice.amount_paid == 167786


def test_legacy_shape_payment_is_cumulative_and_names_the_charge(raw_event: RawEvent) -> None:
    """Given b2 (legacy shape, paid:true, charge), the Payment is the cumulative amount_paid, its
    id derives from the invoice and the amount (so a later partial payment is a new record), and
    the charge is kept as its reference."""
    (payment,) = parsed(raw_event, "b2").invoice.payments
    assert payment.source_id == "in_1PbLegacyBeta01:paid:38556"
    assert payment.reference == "ch_3PbLegacyBeta01"
    assert payment.amount == 38556
    assert payment.cumulative
    assert payment.currency == "EUR"


def test_current_shape_without_expanded_payments_is_cumulative(event_dict: EventDict) -> None:
    """Given a paid current-shape invoice whose webhook carries no ``payments`` list (webhooks never
    expand it), the Payment is the cumulative amount_paid."""
    event = event_dict("a2")
    del event["data"]["object"]["payments"]
    result = parse_event(as_bytes(event))
    assert result is not None
    (payment,) = result.invoice.payments
    assert (payment.source_id, payment.amount, payment.cumulative) == (
        "in_1QaCurrentAcme01:paid:167786",
        167786,
        True,
    )


def test_canceled_invoice_payment_is_not_a_payment(raw_event: RawEvent) -> None:
    """Given d1 (void) whose only InvoicePayment is canceled with amount_paid null, no Payment is made."""
    assert parsed(raw_event, "d1").invoice.payments == ()


def test_only_paid_invoice_payments_count(event_dict: EventDict) -> None:
    """Given an InvoicePayment list mixing paid, open and canceled entries, only the paid one is kept."""
    event = event_dict("a2")
    paid = event["data"]["object"]["payments"]["data"][0]
    event["data"]["object"]["payments"]["data"] = [
        {**paid, "id": "inpay_open", "status": "open", "amount_paid": 0},
        paid,
        {**paid, "id": "inpay_canceled", "status": "canceled", "amount_paid": None},
    ]
    invoice = parse_event(as_bytes(event))
    assert invoice is not None
    assert [p.source_id for p in invoice.invoice.payments] == ["inpay_1QaAcmePay0001"]


def test_payment_record_payment_keeps_its_payment_record(event_dict: EventDict) -> None:
    """Given an invoice.paid whose payments list holds a card payment and a payment record (money
    recorded off Stripe, as payments back attaches), the record's Payment names its ``pr_`` id and
    no charge, while the card payment names no payment record (push skips a linked record by it)."""
    event = event_dict("a2")
    card = event["data"]["object"]["payments"]["data"][0]
    recorded = {
        **card,
        "id": "inpay_recorded",
        "amount_paid": 1000,
        "payment": {"type": "payment_record", "payment_record": "pr_1QaBackCheque01"},
    }
    event["data"]["object"]["payments"]["data"] = [card, recorded]
    result = parse_event(as_bytes(event))
    assert result is not None
    by_id = {p.source_id: p for p in result.invoice.payments}
    assert by_id["inpay_recorded"].payment_record == "pr_1QaBackCheque01"
    assert by_id["inpay_recorded"].charges == ()
    assert by_id["inpay_recorded"].amount == 1000
    assert by_id["inpay_1QaAcmePay0001"].payment_record is None


def test_payment_record_id_is_read_from_an_expanded_record(event_dict: EventDict) -> None:
    """Given a payment_record payment whose record is expanded into its object, its id is kept."""
    event = event_dict("a2")
    card = event["data"]["object"]["payments"]["data"][0]
    card["payment"] = {
        "type": "payment_record",
        "payment_record": {"id": "pr_expanded", "object": "payment_record"},
    }
    result = parse_event(as_bytes(event))
    assert result is not None
    (payment,) = result.invoice.payments
    assert payment.payment_record == "pr_expanded"


def test_legacy_payment_without_charge_gets_a_stable_id(event_dict: EventDict) -> None:
    """Given a legacy paid invoice with no charge (paid out of band), the Payment id is derived from the
    invoice id, so every delivery yields the same id."""
    event = event_dict("b2")
    event["data"]["object"]["charge"] = None
    first = parse_event(as_bytes(event))
    second = parse_event(as_bytes(event))
    assert first is not None
    assert second is not None
    (payment,) = first.invoice.payments
    assert payment.source_id == "in_1PbLegacyBeta01:paid:38556"
    assert payment.reference is None
    assert first.invoice.payments == second.invoice.payments


def test_jpy_amounts_are_whole_yen(raw_event: RawEvent) -> None:
    """Given d3 (JPY), amounts are yen as sent (JPY has no minor unit), not multiplied or divided."""
    invoice = parsed(raw_event, "d3").invoice
    assert invoice.currency == "JPY"
    assert invoice.total == 12000
    assert invoice.money(invoice.total).to_decimal() == 12000


def test_untaxed_line_has_no_taxes(raw_event: RawEvent) -> None:
    """Given c1 (no tax), the line's taxes are empty and the invoice tax is 0."""
    invoice = parsed(raw_event, "c1").invoice
    assert [line.taxes for line in invoice.lines] == [()]
    assert invoice.lines[0].product_id == "prod_Mystery"


def test_expanded_product_object_gives_its_id(event_dict: EventDict) -> None:
    """Given a line whose product is expanded into an object, the product id is still read."""
    event = event_dict("a1")
    line = event["data"]["object"]["lines"]["data"][0]
    line["pricing"]["price_details"]["product"] = {"id": "prod_Consulting", "object": "product"}
    result = parse_event(as_bytes(event))
    assert result is not None
    assert result.invoice.lines[0].product_id == "prod_Consulting"


def test_has_more_lines_is_recorded(event_dict: EventDict) -> None:
    """Given lines.has_more true (only the first page arrived), the invoice says its lines are incomplete."""
    event = event_dict("a1")
    event["data"]["object"]["lines"]["has_more"] = True
    result = parse_event(as_bytes(event))
    assert result is not None
    assert result.invoice.lines_complete is False


@pytest.mark.parametrize("prefix", ["e1", "e2"])
def test_unhandled_event_types_give_none(raw_event: RawEvent, prefix: str) -> None:
    """Given invoice.created (e1) or customer.created (e2), parse_event returns None (not handled)."""
    assert parse_event(raw_event(prefix)) is None


# --- version ---------------------------------------------------------------------------------------


def test_paid_ranks_above_open_in_the_same_second(event_dict: EventDict) -> None:
    """Given an open and a paid snapshot stamped with the same `created` second, the paid one has the
    higher version, so it is never overwritten by the open one."""
    paid_doc = event_dict("a2")
    open_doc = event_dict("a1")
    open_doc["created"] = paid_doc["created"]
    paid = parse_event(as_bytes(paid_doc))
    opened = parse_event(as_bytes(open_doc))
    assert paid is not None
    assert opened is not None
    assert paid.version > opened.version


def test_version_orders_by_created_first(raw_event: RawEvent) -> None:
    """Given a1, a4 and a2 (created in that order), their versions increase in that order."""
    versions = [parsed(raw_event, p).version for p in ("a1", "a4", "a2")]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b""])
def test_not_json_is_invalid_payload(body: bytes) -> None:
    """Given a body that is not JSON, parse_event raises InvalidPayload saying so."""
    with pytest.raises(InvalidPayload, match="not valid JSON"):
        parse_event(body)


@pytest.mark.parametrize("body", [b"[]", b'[{"id": "evt_1"}]', b'"evt_1"', b"42", b"null"])
def test_json_that_is_not_an_object_is_invalid_payload(body: bytes) -> None:
    """Given a JSON array or scalar, parse_event raises InvalidPayload asking for an object."""
    with pytest.raises(InvalidPayload, match="JSON object"):
        parse_event(body)


@pytest.mark.parametrize(
    ("path", "field"),
    [(("id",), "id"), (("type",), "type"), (("data", "object"), "data.object"), (("data",), "data")],
)
def test_event_missing_required_field_names_it(
    event_dict: EventDict, path: tuple[str, ...], field: str
) -> None:
    """Given an event without id, type or data.object, InvalidPayload names the missing field."""
    event = event_dict("a1")
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(InvalidPayload) as caught:
        parse_event(as_bytes(event))
    assert field in str(caught.value)


def test_event_id_must_look_like_a_stripe_event_id(event_dict: EventDict) -> None:
    """Given an id that is not evt_..., parse_event refuses the event."""
    event = event_dict("a1")
    event["id"] = "not-an-event"
    with pytest.raises(InvalidPayload, match="id"):
        parse_event(as_bytes(event))


@pytest.mark.parametrize("field", ["currency", "lines", "customer", "total", "status", "id"])
def test_invoice_missing_field_names_it(event_dict: EventDict, field: str) -> None:
    """Given a handled event whose invoice lacks a required field, InvalidPayload names the field by
    its path under data.object."""
    event = event_dict("a1")
    del event["data"]["object"][field]
    with pytest.raises(InvalidPayload) as caught:
        parse_event(as_bytes(event))
    assert f"data.object.{field}" in str(caught.value)


def test_invalid_payload_message_does_not_echo_input_values(event_dict: EventDict) -> None:
    """Given a handled invoice with wrong values (a secret-looking customer name in a bad field,
    a non-integer amount), the message names the fields but never repeats the values sent."""
    event = event_dict("a1")
    invoice = event["data"]["object"]
    invoice["total"] = "sk_live_SECRET_total"
    invoice["status"] = "sk_live_SECRET_status"
    invoice["lines"]["data"][0]["amount"] = "sk_live_SECRET_amount"
    del invoice["currency"]
    with pytest.raises(InvalidPayload) as caught:
        parse_event(as_bytes(event))
    message = str(caught.value)
    assert "data.object.currency" in message
    assert "data.object.total" in message
    assert "sk_live" not in message
    assert "SECRET" not in message


def test_bad_currency_value_is_not_echoed(event_dict: EventDict) -> None:
    """Given a handled invoice whose currency is three non-letters, the InvalidPayload names
    data.object.currency but does not repeat the value sent."""
    event = event_dict("a1")
    event["data"]["object"]["currency"] = "9z9"
    with pytest.raises(InvalidPayload) as caught:
        parse_event(as_bytes(event))
    message = str(caught.value)
    assert "currency" in message
    assert "9Z9" not in message.upper()


def test_invoice_with_unknown_status_is_refused(event_dict: EventDict) -> None:
    """Given a status Stripe does not define, the event is refused rather than guessed."""
    event = event_dict("a1")
    event["data"]["object"]["status"] = "pending"
    with pytest.raises(InvalidPayload, match=r"data\.object\.status"):
        parse_event(as_bytes(event))


def test_parse_result_is_a_frozen_invoice(raw_event: RawEvent) -> None:
    """Given a parsed invoice, it is the domain Invoice model (what travels on the queue)."""
    invoice = parsed(raw_event, "a1").invoice
    assert isinstance(invoice, Invoice)
    assert Invoice.model_validate_json(invoice.model_dump_json()) == invoice
