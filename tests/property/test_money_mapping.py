"""Money and mapping: for any invoice or credit note, every ledger's payload totals the source's.

Generated documents: currencies of 0, 2 and 3 decimals (JPY, USD, EUR, KWD, BHD), up to 40 lines,
quantities up to a million, line discounts, up to three tax rates a line (exclusive or inclusive,
each rounded half-up from its rate as a billing system would). Each goes through the mapping
resolver, then through the three ledgers' payload builders (pure functions, no HTTP), and the
payload is totalled the way that ledger totals it:

- QuickBooks Online: the sales lines' ``Amount`` less the discount line, plus ``TxnTaxDetail.
  TotalTax`` (the source's tax, sent as the override).
- Xero: ``LineAmount`` plus ``TaxAmount`` over the lines (``LineAmountTypes`` Exclusive).
- FreshBooks: what its own arithmetic makes of the body (quantity times unit cost, one invoice
  percent off, a tax percent a line, each rounded half-up), as the FreshBooks sandbox does it.
  FreshBooks takes percents, not amounts, so some documents cannot be copied exactly: the builder
  must then refuse them (``LedgerValidation``, the document is parked) rather than send a total
  that differs.

The property is equality to the minor unit, with no rounding line: every ledger gets the source's
tax as amounts (QBO, Xero) or percents proven to reproduce it (FreshBooks), so there is no
difference to put on the connection's ``rounding_account`` (reserved, and still unused by push).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import combinations
from typing import Any

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from invoice_sync.errors import LedgerValidation
from invoice_sync.ledgers.freshbooks import payloads as freshbooks
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft
from invoice_sync.ledgers.quickbooks import payloads as quickbooks
from invoice_sync.ledgers.xero import payloads as xero
from invoice_sync.mapping.resolver import resolve
from invoice_sync.models.documents import (
    CreditNote,
    CreditNoteStatus,
    Customer,
    Invoice,
    InvoiceStatus,
    LineItem,
    LineTax,
)
from invoice_sync.models.mapping import Connection, LedgerKind, MappingRule, Mappings, RuleKind
from invoice_sync.models.money import Money, exponent, quantize
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox

CURRENCIES = ["JPY", "USD", "EUR", "KWD", "BHD"]
# Tax rates as fractions, keyed by the source's rate id (a ninth one has a repeating decimal).
RATES = {
    "txr_ca": Fraction(825, 10_000),
    "txr_qst": Fraction(9975, 100_000),
    "txr_gst": Fraction(5, 100),
    "txr_city": Fraction(1, 200),
    "txr_ninth": Fraction(1, 9),
}
PRODUCTS = ["prod_a", "prod_b", "prod_c"]


def half_up(value: Fraction) -> int:
    """A non-negative fraction rounded half-up to an integer (minor units)."""
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


@st.composite
def lines(draw: st.DrawFn, index: int) -> LineItem:
    amount = draw(st.one_of(st.integers(0, 10**5), st.integers(0, 10**10)))
    discount = draw(st.one_of(st.just(0), st.integers(0, amount)))
    quantity = draw(st.one_of(st.just(1), st.integers(0, 12), st.integers(0, 10**6)))
    rates = draw(st.one_of(st.just([]), st.lists(st.sampled_from(sorted(RATES)), unique=True, max_size=3)))
    inclusive = draw(st.booleans())
    taxable = amount - discount
    taxes = []
    for rate_id in rates:
        rate = RATES[rate_id]
        # An inclusive tax is the part of the (discounted) amount that is tax: t = a * r / (1 + r).
        share = taxable * rate / (1 + rate) if inclusive else taxable * rate
        taxes.append(
            LineTax(rate_id=rate_id, amount=half_up(share), inclusive=inclusive, taxable_amount=taxable)
        )
    return LineItem(
        source_id=f"li_{index}",
        description=f"Line {index}",
        product_id=draw(st.sampled_from([*PRODUCTS, None])),
        quantity=quantity,
        amount=amount,
        discount=discount,
        taxes=tuple(taxes),
    )


def _totals(items: list[LineItem]) -> dict[str, int]:
    subtotal = sum(line.amount for line in items)
    discount = sum(line.discount for line in items)
    tax = sum(t.amount for line in items for t in line.taxes if not t.inclusive)
    return {"subtotal": subtotal, "discount": discount, "tax": tax, "total": subtotal - discount + tax}


@st.composite
def documents(
    draw: st.DrawFn, *, credit_note: bool = False, currencies: tuple[str, ...] = tuple(CURRENCIES)
) -> Invoice | CreditNote:
    currency = draw(st.sampled_from(currencies))
    count = draw(st.one_of(st.integers(1, 3), st.integers(1, 40)))
    items = [draw(lines(i)) for i in range(count)]
    common: dict[str, Any] = {
        "source_id": "cn_prop" if credit_note else "in_prop",
        "number": "PROP-0001",
        "currency": currency,
        "customer": Customer(source_id="cus_prop", name="Property Ltd", email="ap@property.example"),
        "issued_on": date(2026, 1, 15),
        "lines": tuple(items),
        **_totals(items),
    }
    if credit_note:
        return CreditNote(status=CreditNoteStatus.ISSUED, invoice_source_id="in_prop", **common)
    return Invoice(status=InvoiceStatus.OPEN, due_on=date(2026, 2, 14), **common)


def mappings(ledger: LedgerKind) -> Mappings:
    """Every product mapped (with a Xero revenue account), and a tax code for every combination of
    rates a line may carry (one code per line: several rates map under their ids joined by '+')."""
    rules = [
        MappingRule(kind=RuleKind.PRODUCT, source_value=p, ledger_id=f"item-{p}", ledger_account="200")
        for p in PRODUCTS
    ]
    for size in (1, 2, 3):
        for combo in combinations(sorted(RATES), size):
            key = "+".join(combo)
            rules.append(MappingRule(kind=RuleKind.TAX_RATE, source_value=key, ledger_id=f"TAX-{key}"))
    connection = Connection(
        connection_id="prop",
        ledger=ledger,
        tenant_id="tenant",
        default_item_id="item-default",
        default_account="200",
    )
    return Mappings(connection=connection, rules=tuple(rules))


def draft_of(document: Invoice | CreditNote, ledger: LedgerKind) -> InvoiceDraft:
    return resolve(
        document,
        mappings(ledger),
        MappingRule(kind=RuleKind.CUSTOMER, source_value="cus_prop", ledger_id="42"),
    ).draft


def source_total(document: Invoice | CreditNote) -> Decimal:
    return Money(minor=document.total, currency=document.currency).to_decimal()


def minor(amount: Decimal, currency: str) -> int:
    return Money.from_decimal(amount, currency).minor


# --- how each ledger totals a payload ---------------------------------------------------------------


def quickbooks_total(payload: dict[str, Any]) -> Decimal:
    sales = sum(
        (line["Amount"] for line in payload["Line"] if line["DetailType"] == "SalesItemLineDetail"),
        Decimal(0),
    )
    discount = sum(
        (line["Amount"] for line in payload["Line"] if line["DetailType"] == "DiscountLineDetail"), Decimal(0)
    )
    tax: Decimal = payload["TxnTaxDetail"]["TotalTax"]
    return sales - discount + tax


def xero_total(body: dict[str, Any]) -> Decimal:
    assert body["LineAmountTypes"] == "Exclusive"
    return sum((item["LineAmount"] + item["TaxAmount"] for item in body["LineItems"]), Decimal(0))


def freshbooks_total(body: dict[str, Any], currency: str) -> Decimal:
    percent = Decimal(body.get("discount_value", "0"))
    _, subtotal, tax = FreshBooksSandbox._price_lines(body["lines"], currency, percent, "invoice")
    discount = (subtotal * percent / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return Decimal(subtotal - discount + tax)


# --- the properties ---------------------------------------------------------------------------------


@given(document=st.one_of(documents(), documents(credit_note=True)))
def test_quickbooks_payload_totals_the_source_to_the_minor_unit(document: Invoice | CreditNote) -> None:
    """QBO: sales lines - discount + the tax override equal the source total, to the minor unit;
    every amount has exactly the currency's decimals."""
    draft = draft_of(document, "quickbooks")
    payload = (
        quickbooks.invoice_payload(draft)
        if isinstance(document, Invoice)
        else quickbooks.credit_memo_payload(draft)
    )
    assert minor(quickbooks_total(payload), document.currency) == document.total
    assert quickbooks_total(payload) == source_total(document)
    for line in payload["Line"]:
        assert line["Amount"] == quantize(line["Amount"], document.currency)


@given(document=st.one_of(documents(), documents(credit_note=True)))
def test_xero_body_totals_the_source_to_the_minor_unit(document: Invoice | CreditNote) -> None:
    """Xero: line amounts (net of their discount) plus line taxes equal the source total."""
    draft = draft_of(document, "xero")
    body = xero.invoice_body(draft) if isinstance(document, Invoice) else xero.credit_note_body(draft)
    assert xero_total(body) == source_total(document)
    assert (
        sum(item["TaxAmount"] for item in body["LineItems"])
        == document.money(sum(t.amount for line in document.lines for t in line.taxes)).to_decimal()
    )


def _freshbooks_property(document: Invoice | CreditNote) -> None:
    draft = draft_of(document, "freshbooks")
    build = freshbooks.invoice_body if isinstance(document, Invoice) else freshbooks.credit_note_body
    try:
        body = build(draft)
    except LedgerValidation as refusal:
        note(f"refused: {refusal}")
        return
    assert freshbooks_total(body, document.currency) == source_total(document)


TWO_OR_FEWER = ("JPY", "USD", "EUR")
THREE = ("KWD", "BHD")


@given(
    document=st.one_of(
        documents(currencies=TWO_OR_FEWER), documents(credit_note=True, currencies=TWO_OR_FEWER)
    )
)
def test_freshbooks_body_totals_the_source_or_is_refused(document: Invoice | CreditNote) -> None:
    """FreshBooks, currencies of 0 and 2 decimals: what FreshBooks computes from the body (its
    percents, its half-up rounding to the cent) equals the source total; a document no percent can
    reproduce is refused (parked), never sent with another total."""
    _freshbooks_property(document)


def _kwd_line_invoice(minor_amount: int) -> Invoice:
    items = [
        LineItem(source_id="li_0", description="Line 0", product_id="prod_a", quantity=1, amount=minor_amount)
    ]
    return Invoice(
        status=InvoiceStatus.OPEN,
        source_id="in_prop",
        number="PROP-0001",
        currency="KWD",
        customer=Customer(source_id="cus_prop"),
        issued_on=date(2026, 1, 15),
        lines=tuple(items),
        **_totals(items),
    )


@given(document=st.one_of(documents(currencies=THREE), documents(credit_note=True, currencies=THREE)))
@example(document=_kwd_line_invoice(1))
@example(document=_kwd_line_invoice(1235))
def test_freshbooks_body_totals_the_source_or_is_refused_in_three_decimal_currencies(
    document: Invoice | CreditNote,
) -> None:
    """As above, for KWD and BHD (three decimals)."""
    _freshbooks_property(document)


# --- line pricing: quantity x unit price must give the line amount back --------------------------


def _line_priced_back(amount: str, quantity: int, places: int, currency: str) -> tuple[Decimal, Decimal]:
    line = LineDraft(item_id="i", description="d", quantity=quantity, amount=Decimal(amount), tax_code="T")
    qty, unit = line.priced(places)
    return qty * unit, quantize(qty * unit, currency)


@settings(max_examples=300)
@given(
    currency=st.sampled_from(CURRENCIES),
    minor_amount=st.integers(0, 10**8),
    quantity=st.integers(1, 10**6),
    places=st.sampled_from([xero.UNIT_PLACES, quickbooks.UNIT_PRICE_PLACES, freshbooks.UNIT_PLACES]),
)
@example(currency="USD", minor_amount=100, quantity=150, places=xero.UNIT_PLACES)
@example(currency="KWD", minor_amount=1230, quantity=92000, places=quickbooks.UNIT_PRICE_PLACES)
def test_quantity_times_unit_price_rounds_half_up_to_the_line_amount(
    currency: str, minor_amount: int, quantity: int, places: int
) -> None:
    """Every ledger multiplies Qty by the unit price and rounds half-up to the currency's minor unit
    (QBO refuses a line where that differs from Amount; Xero recomputes LineAmount from them); so
    the pair ``priced`` sends must give the line amount back under that rounding."""
    amount = Money(minor=minor_amount, currency=currency).to_decimal()
    product, rounded = _line_priced_back(str(amount), quantity, places, currency)
    note(f"{quantity} x unit = {product}, rounded {rounded}, amount {amount}")
    assert rounded == amount


# --- money itself ------------------------------------------------------------------------------------


@given(
    currency=st.sampled_from([*CURRENCIES, "CLF", "XOF", "GBP"]),
    amount=st.integers(-(10**15), 10**15),
)
def test_money_round_trips_through_decimal_exactly(currency: str, amount: int) -> None:
    """Minor units -> Decimal (exactly the currency's decimals) -> minor units is the identity, and a
    Decimal with more decimals than the currency allows is refused, never rounded."""
    money = Money(minor=amount, currency=currency)
    value = money.to_decimal()
    assert value.as_tuple().exponent == -exponent(currency)
    assert Money.from_decimal(value, currency) == money
    finer = value + Decimal(1).scaleb(-exponent(currency) - 1)
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_decimal(finer, currency)


@given(amounts=st.lists(st.integers(-(10**12), 10**12), max_size=50), currency=st.sampled_from(CURRENCIES))
def test_money_sums_are_integer_sums(amounts: list[int], currency: str) -> None:
    """Adding Money adds minor units: no float, no drift, whatever the count."""
    total = Money.zero(currency)
    for amount in amounts:
        total = total + Money(minor=amount, currency=currency)
    assert total.minor == sum(amounts)
    assert total.to_decimal() == Decimal(sum(amounts)).scaleb(-exponent(currency))
