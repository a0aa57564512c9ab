"""FreshBooks request bodies, the percent derivations FreshBooks forces on tax and discount, and
FreshBooks errors; bodies and sandbox answers read through the official SDK's models unchanged."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from werkzeug.test import Client

from invoice_sync.errors import (
    CompanyUnavailable,
    LedgerError,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    NotFound,
    StaleObject,
    TokenExpired,
)
from invoice_sync.ledgers.freshbooks import payloads
from invoice_sync.ledgers.freshbooks.client import error_for
from invoice_sync.ledgers.http import dumps, loads
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft, PaymentDraft, marker
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox

NOTE = marker("stripe", "in_1")


def _line(amount: str, tax: str = "0", discount: str = "0", quantity: int = 1, **changes: Any) -> LineDraft:
    return LineDraft(
        item_id=changes.pop("item_id", "Consulting"),
        description=changes.pop("description", "Consulting"),
        quantity=quantity,
        amount=Decimal(amount),
        tax_code=changes.pop("tax_code", "Sales Tax" if Decimal(tax) else ""),
        tax=Decimal(tax),
        discount=Decimal(discount),
    )


def _draft(*lines: LineDraft, **changes: Any) -> InvoiceDraft:
    lines = lines or (_line("150.00", "12.38", quantity=3), _line("20.00", description="Setup"))
    subtotal = sum((line.amount for line in lines), Decimal(0))
    discount = sum((line.discount for line in lines), Decimal(0))
    tax = sum((line.tax for line in lines), Decimal(0))
    base = InvoiceDraft(
        source_id="in_1",
        customer_id="100006",
        number="ACME-0001",
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        currency="USD",
        lines=lines,
        discount=discount,
        tax=tax,
        total=subtotal - discount + tax,
        memo="Thank you",
        private_note=NOTE,
    )
    return replace(base, **changes)


def _fb_tax(base: Decimal, percent: str) -> Decimal:
    """FreshBooks' own arithmetic: a percent of the line, half-up to the cent."""
    return (base * Decimal(percent) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_invoice_body_has_freshbooks_shape_and_exact_money_strings() -> None:
    body = payloads.invoice_body(_draft())
    assert body == {
        "customerid": 100006,
        "create_date": "2026-11-02",
        "due_offset_days": 30,
        "currency_code": "USD",
        "invoice_number": "ACME-0001",
        "notes": f"Thank you\n\n{NOTE}",
        "discount_value": "0",
        "lines": [
            {
                "type": 0,
                "name": "Consulting",
                "description": "Consulting",
                "qty": "3",
                "unit_cost": {"amount": "50.00", "code": "USD"},
                "taxName1": "Sales Tax",
                "taxAmount1": "8.25",  # the shortest percent FreshBooks turns back into 12.38
            },
            {
                "type": 0,
                "name": "Consulting",
                "description": "Setup",
                "qty": "1",
                "unit_cost": {"amount": "20.00", "code": "USD"},
            },
        ],
    }
    # On the wire every amount is a JSON string: nothing can pass through float.
    assert b'"amount": "50.00"' in dumps(body)


def test_zero_decimal_currency_and_unsplittable_unit_price_stay_exact() -> None:
    line = _line("1000", quantity=3)  # 333.33 x 3 != 1000: one unit of the whole amount
    body = payloads.invoice_body(_draft(line, currency="JPY"))
    assert body["lines"][0]["qty"] == "1"
    assert body["lines"][0]["unit_cost"] == {"amount": "1000", "code": "JPY"}


@pytest.mark.parametrize(
    ("amount", "tax", "percent"),
    [
        ("150.00", "12.38", "8.25"),
        ("300.00", "24.75", "8.25"),
        ("1000.00", "82.53", "8.253"),  # needs all three places
        ("80.00", "4.00", "5"),
        ("0.10", "0.01", "10"),
    ],
)
def test_tax_percent_is_derived_so_freshbooks_gives_back_the_source_tax(
    amount: str, tax: str, percent: str
) -> None:
    derived = payloads.tax_percent(_line(amount, tax), None)
    assert derived is not None
    assert format(derived, "f") == percent
    assert _fb_tax(Decimal(amount), percent) == Decimal(tax)


def test_tax_percent_refuses_a_tax_no_percent_can_reproduce() -> None:
    with pytest.raises(
        LedgerValidation, match=re.escape("no percent of 1000000.00 rounds to the source's tax of 0.01")
    ):
        payloads.tax_percent(_line("1000000.00", "0.01"), None)


def test_tax_without_a_tax_name_is_refused_and_zero_tax_sends_none() -> None:
    with pytest.raises(LedgerValidation, match="no FreshBooks tax name"):
        payloads.tax_percent(_line("100.00", "8.25", tax_code=""), None)
    assert payloads.tax_percent(_line("100.00", "0", tax_code="Sales Tax"), None) is None


def test_one_discount_percent_covering_every_line_is_used_and_tax_follows_it() -> None:
    draft = _draft(_line("100.00", "7.43", discount="10.00"), _line("50.00", discount="5.00"))
    body = payloads.invoice_body(draft)
    assert body["discount_value"] == "10"
    # FreshBooks taxes the line less the invoice percent; the derived percent survives that.
    assert _fb_tax(Decimal("90.00"), body["lines"][0]["taxAmount1"]) == Decimal("7.43")


def test_discounts_no_single_percent_reproduces_are_refused() -> None:
    draft = _draft(_line("100.00", discount="10.00"), _line("50.00"))
    with pytest.raises(LedgerValidation, match="one discount percent for the whole invoice"):
        payloads.invoice_body(draft)


def test_document_discount_not_spread_over_lines_is_refused() -> None:
    draft = replace(_draft(_line("100.00")), discount=Decimal("10.00"), total=Decimal("90.00"))
    with pytest.raises(LedgerValidation, match=re.escape("lines carry 0, the document 10.00")):
        payloads.invoice_body(draft)


def test_a_total_freshbooks_would_not_reach_is_refused() -> None:
    with pytest.raises(LedgerValidation, match=re.escape("the source says 182.39")):
        payloads.invoice_body(replace(_draft(), total=Decimal("182.39")))


def test_payment_and_client_bodies() -> None:
    payment = PaymentDraft(
        source_id="inpay_1",
        customer_id="100006",
        invoice_id="100007",
        amount=Decimal("182.38"),
        currency="USD",
        paid_on=date(2026, 11, 20),
        private_note=marker("stripe", "inpay_1"),
    )
    assert payloads.payment_body(payment) == {
        "invoiceid": 100007,
        "amount": {"amount": "182.38", "code": "USD"},
        "date": "2026-11-20",
        "type": "Other",
        "note": "invoice-sync: stripe inpay_1",
    }
    assert payloads.client_body("Acme", None, "USD", "cus_1") == {
        "organization": "Acme",
        "currency_code": "USD",
        "note": "cus_1",
    }


def test_refund_payout_by_hand_names_every_figure_a_person_needs() -> None:
    """FreshBooks cannot pay a credit note out, so the message is the whole record: exact amount and
    currency (Decimal as written, trailing zeros kept), date, credit note, client, the account the
    money left (or where to look when none is configured), and the marker to put in the description."""
    payout = PaymentDraft(
        source_id="re_1",
        customer_id="100006",
        invoice_id="100042",
        amount=Decimal("1000.10"),
        currency="USD",
        paid_on=date(2026, 11, 21),
        private_note=marker("stripe", "re_1"),
        account="Checking",
    )
    text = payloads.payout_by_hand(payout)
    assert "cannot pay money out of a credit note" in text
    assert "Accounting > Journal Entries > Create Journal Entry" in text
    assert "dated 2026-11-21, currency USD" in text
    assert "debit Customer Credit 1000.10 USD, credit account Checking 1000.10 USD" in text
    assert '"invoice-sync: stripe re_1: refund to client 100006 out of credit note 100042"' in text
    assert "do not apply credit note 100042 to an invoice" in text
    jpy = payloads.payout_by_hand(
        replace(payout, amount=Decimal("5000"), currency="JPY", account=None, customer_id="")
    )
    assert "debit Customer Credit 5000 JPY, credit the bank account the refund was paid from 5000 JPY" in jpy
    assert '"invoice-sync: stripe re_1: refund out of credit note 100042"' in jpy  # no empty client id


def test_marker_is_read_back_from_the_notes() -> None:
    assert marker("stripe", "x").startswith(payloads.MARKER_PREFIX)
    assert payloads.marker_of(f"Thank you\n\n{NOTE}") == NOTE
    assert payloads.marker_of(NOTE) == NOTE
    assert payloads.marker_of("typed by a person") == "typed by a person"
    assert payloads.marker_of(None) is None


def test_version_moves_with_any_change_even_within_the_same_second() -> None:
    invoice = {"id": 1, "updated": "2026-11-02 10:00:00", "amount": {"amount": "1.00", "code": "USD"}}
    same = json.loads(json.dumps(invoice))
    changed = {**invoice, "amount": {"amount": "2.00", "code": "USD"}}
    assert payloads.version(invoice) == payloads.version(same)
    assert payloads.version(invoice) != payloads.version(changed)
    assert payloads.version(invoice).startswith("2026-11-02 10:00:00#")


def _error(errno: int, message: str, field: str | None = None) -> dict[str, Any]:
    return {
        "response": {
            "errors": [
                {"errno": errno, "field": field, "message": message, "object": "invoice", "value": "x"}
            ]
        }
    }


UNAUTHENTICATED = {"code": 16, "message": "Request failed with status_code: 401", "details": []}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (429, {"message": "Too Many Requests"}, {"Retry-After": "3"}, LedgerThrottled),
        (401, UNAUTHENTICATED, {}, TokenExpired),
        (
            409,
            _error(409, "The resource being modified is being modified by another request."),
            {},
            StaleObject,
        ),
        (404, _error(1012, "Invoice not found.", "invoiceid"), {}, NotFound),
        (422, _error(1012, "Client not found.", "customerid"), {}, NotFound),
        (
            403,
            _error(1003, "You do not have access to perform the action requested."),
            {},
            CompanyUnavailable,
        ),
        (
            422,
            _error(1018, "Percent values should be strings formatted as decimals", "taxAmount1"),
            {},
            LedgerValidation,
        ),
        (400, _error(1005, "The server was unable to parse your request."), {}, LedgerValidation),
        (500, _error(500, "The ORM encountered an unexpected error."), {}, LedgerUnavailable),
        (502, "<html>502 Bad Gateway</html>", {}, LedgerUnavailable),
    ],
)
def test_error_mapping(status: int, body: Any, headers: dict[str, str], expected: type[LedgerError]) -> None:
    error = error_for(status, body, headers)
    assert type(error) is expected
    if status == 429:
        assert isinstance(error, LedgerThrottled)
        assert error.retry_after == 3.0


def test_validation_quotes_freshbooks_message_and_field() -> None:
    error = error_for(
        422, _error(1018, "Percent values should be strings formatted as decimals", "taxAmount1"), {}
    )
    assert str(error) == (
        "FreshBooks: Percent values should be strings formatted as decimals (invoice.taxAmount1 = 'x')"
    )
    assert error.code == "1018"


def _sandbox_invoice(body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to the sandbox's WSGI app in-process (no sockets) and return its raw answer."""
    sandbox = FreshBooksSandbox()
    sandbox.seed_account("zDmNq", business_id=1, client_id="c", client_secret="s", refresh_token="r")
    http = Client(sandbox.wsgi_app)
    token = http.post(
        "/auth/oauth/token",
        json={"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"},
    ).json["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = "/accounting/account/zDmNq"
    client = http.post(
        f"{base}/users/clients", data=dumps({"client": {"organization": "Acme"}}), headers=headers
    )
    body = {**body, "customerid": client.json["response"]["result"]["client"]["id"]}
    created = http.post(f"{base}/invoices/invoices", data=dumps({"invoice": body}), headers=headers)
    assert created.status_code == 200, created.get_data(as_text=True)
    answer: dict[str, Any] = loads(created.get_data())  # as the SDK parses: parse_float=Decimal
    return answer


def test_payload_and_sandbox_answer_load_through_the_sdk_models_without_loss() -> None:
    models = pytest.importorskip("freshbooks.models")
    body = payloads.invoice_body(_draft())
    sent = models.Result("invoice", {"invoice": body})
    assert sent.lines[0].unit_cost.amount == "50.00"
    assert sent.lines[0].taxAmount1 == "8.25"
    assert sent.data == body

    answer = _sandbox_invoice(body)["response"]["result"]
    result = models.Result("invoice", answer)
    document = payloads.invoice_document(result.data)
    assert document.total == Decimal(str(result.amount.amount)) == Decimal("182.38")
    assert document.balance == Decimal("182.38")
    assert document.number == result.invoice_number == "ACME-0001"
    assert document.private_note == NOTE
    assert [line.taxAmount1 for line in result.lines] == ["8.25", "0"]
    assert str(result.lines[0].unit_cost.amount) == "50.00"
