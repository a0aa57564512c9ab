"""The resolver: totals checked, rules applied, every missing rule reported at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from invoice_sync.errors import InvalidSnapshot, MappingMissing
from invoice_sync.mapping.resolver import check_totals, resolve
from invoice_sync.models.documents import Customer, Invoice, InvoiceStatus, LineItem, LineTax
from invoice_sync.models.mapping import Connection, CustomerPolicy, MappingRule, Mappings, RuleKind
from invoice_sync.models.money import Money
from invoice_sync.sources.stripe import parse_event

RawEvent = Callable[[str], bytes]

ALL = ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "d1", "d2", "d3"]
CONNECTION = Connection(connection_id="acme", tenant_id="123")


def invoice_of(raw_event: RawEvent, prefix: str) -> Invoice:
    event = parse_event(raw_event(prefix))
    assert event is not None
    return event.invoice


def rule(kind: RuleKind, source: str, ledger: str) -> MappingRule:
    return MappingRule(kind=kind, source_value=source, ledger_id=ledger)


FULL_RULES = (
    rule(RuleKind.PRODUCT, "prod_Consulting", "11"),
    rule(RuleKind.PRODUCT, "prod_Hosting", "12"),
    rule(RuleKind.TAX_RATE, "txr_SalesTax825", "TAX"),
    rule(RuleKind.TAX_RATE, "txr_VAT19", "VAT19"),
)
ACME = rule(RuleKind.CUSTOMER, "cus_RAcme01", "58")


def mappings(*rules: MappingRule, connection: Connection = CONNECTION) -> Mappings:
    return Mappings(connection=connection, rules=rules)


def make_invoice(
    lines: list[LineItem], *, currency: str = "USD", discount: int = 0, customer: str = "cus_RAcme01"
) -> Invoice:
    """An invoice whose totals add up by construction."""
    subtotal = sum(line.amount for line in lines)
    exclusive = sum(t.amount for line in lines for t in line.taxes if not t.inclusive)
    return Invoice(
        source_id="in_test",
        number="T-1",
        status=InvoiceStatus.OPEN,
        currency=currency,
        customer=Customer(source_id=customer, name="Acme Corp"),
        issued_on=date(2026, 1, 1),
        lines=tuple(lines),
        subtotal=subtotal,
        discount=discount,
        tax=exclusive,
        total=subtotal - discount + exclusive,
    )


def line(
    source_id: str,
    amount: int,
    *,
    product: str | None = "prod_Consulting",
    quantity: int = 1,
    taxes: tuple[LineTax, ...] = (),
    description: str | None = None,
) -> LineItem:
    return LineItem(
        source_id=source_id,
        description=description or f"Line {source_id}",
        product_id=product,
        quantity=quantity,
        amount=amount,
        taxes=taxes,
    )


# --- check_totals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ALL)
def test_every_fixture_adds_up(raw_event: RawEvent, prefix: str) -> None:
    """Given each handled fixture, check_totals passes (lines = subtotal, net + tax = total)."""
    check_totals(invoice_of(raw_event, prefix))


def test_altered_line_fails_totals(raw_event: RawEvent) -> None:
    """Given a1 with one line amount changed, check_totals raises InvalidSnapshot describing the gap."""
    invoice = invoice_of(raw_event, "a1")
    first = invoice.lines[0]
    altered = invoice.model_copy(
        update={"lines": (first.model_copy(update={"amount": 149999}), *invoice.lines[1:])}
    )
    with pytest.raises(InvalidSnapshot) as caught:
        check_totals(altered)
    assert caught.value.reason == "totals do not add up"
    assert "1549.98 USD" in str(caught.value)
    assert "1549.99 USD" in str(caught.value)


def test_altered_total_fails_totals(raw_event: RawEvent) -> None:
    """Given b1 with its total off by one cent, check_totals raises InvalidSnapshot."""
    invoice = invoice_of(raw_event, "b1")
    with pytest.raises(InvalidSnapshot, match=r"total is 385\.57 EUR"):
        check_totals(invoice.model_copy(update={"total": invoice.total + 1}))


# --- resolve ---------------------------------------------------------------------------------------


def test_all_rules_present_gives_a_decimal_draft(raw_event: RawEvent) -> None:
    """Given a1 and rules for both products, the tax rate and the customer, resolve gives a draft with
    ledger ids, exact Decimal amounts, the tax code and the invoice-sync marker."""
    resolved = resolve(invoice_of(raw_event, "a1"), mappings(*FULL_RULES), ACME)
    draft = resolved.draft
    assert resolved.customer_id == "58"
    assert draft.customer_id == "58"
    assert draft.source_id == "in_1QaCurrentAcme01"
    assert draft.number == "ACME-0001"
    assert draft.currency == "USD"
    assert [(ln.item_id, ln.quantity, ln.amount, ln.tax_code) for ln in draft.lines] == [
        ("11", 10, Decimal("1500.00"), "TAX"),
        ("12", 1, Decimal("49.99"), "TAX"),
    ]
    assert all(isinstance(ln.amount, Decimal) for ln in draft.lines)
    assert str(draft.lines[0].amount) == "1500.00"
    assert draft.lines[0].priced(7) == (Decimal(10), Decimal("150"))
    assert draft.tax == Decimal("127.87")
    assert draft.discount == Decimal("0.00")
    assert draft.total == Decimal("1677.86")
    assert draft.private_note == "invoice-sync: stripe in_1QaCurrentAcme01"
    assert draft.memo == "Consulting and hosting"
    assert draft.issued_on == date(2026, 1, 1)
    assert draft.due_on == date(2026, 1, 31)


def test_legacy_invoice_discount_and_tax_are_decimal(raw_event: RawEvent) -> None:
    """Given b1 (EUR, 10% discount, 19% VAT), the draft carries discount 36.00 and tax 61.56 as Decimal
    and lines + tax - discount equals the total."""
    draft = resolve(
        invoice_of(raw_event, "b1"),
        mappings(*FULL_RULES),
        rule(RuleKind.CUSTOMER, "cus_QBeta01", "77"),
    ).draft
    assert draft.discount == Decimal("36.00")
    assert draft.tax == Decimal("61.56")
    assert draft.total == Decimal("385.56")
    assert [(ln.item_id, ln.amount, ln.tax_code) for ln in draft.lines] == [
        ("11", Decimal("360.00"), "VAT19")
    ]
    assert sum(ln.amount for ln in draft.lines) - draft.discount + draft.tax == draft.total


def test_unit_price_times_quantity_rounds_back_to_the_amount() -> None:
    """Given a line of 100.00 for quantity 3, the unit price has 7 places and x3 rounds half-up back to
    exactly 100.00."""
    invoice = make_invoice([line("il_1", 10000, quantity=3)])
    (draft_line,) = resolve(invoice, mappings(*FULL_RULES)).draft.lines
    assert draft_line.amount == Decimal("100.00")
    quantity, unit = draft_line.priced(7)
    assert (quantity, unit) == (Decimal(3), Decimal("33.3333333"))
    assert Money.from_decimal((unit * quantity).quantize(Decimal("0.01")), "USD") == Money(
        minor=10000, currency="USD"
    )


def test_usage_priced_line_goes_as_one_unit_when_no_unit_price_multiplies_back() -> None:
    """Given 12.34 for a million units (usage pricing), no 7-place unit price times 1,000,000 gives
    12.34, so the line is priced as one unit of 12.34: the money stays exact."""
    invoice = make_invoice([line("il_1", 1234, quantity=1_000_000)])
    (draft_line,) = resolve(invoice, mappings(*FULL_RULES)).draft.lines
    assert draft_line.priced(7) == (Decimal(1), Decimal("12.34"))
    assert draft_line.priced(4) == (Decimal(1), Decimal("12.34"))


def test_untaxed_line_gets_the_no_tax_code() -> None:
    """Given a line without taxes and a connection whose no-tax code is "EXEMPT", the line uses it."""
    connection = Connection(connection_id="acme", tenant_id="123", no_tax_code="EXEMPT")
    invoice = make_invoice([line("il_1", 5000)])
    (draft_line,) = resolve(invoice, mappings(*FULL_RULES, connection=connection)).draft.lines
    assert draft_line.tax_code == "EXEMPT"


def test_untaxed_line_defaults_to_non(raw_event: RawEvent) -> None:
    """Given c1 (no tax) with its product mapped, the line's tax code is QBO US's "NON"."""
    invoice = invoice_of(raw_event, "c1")
    resolved = resolve(invoice, mappings(rule(RuleKind.PRODUCT, "prod_Mystery", "99")))
    assert [ln.tax_code for ln in resolved.draft.lines] == ["NON"]
    assert resolved.draft.tax == Decimal("0.00")


def test_missing_product_and_tax_rate_are_reported_together() -> None:
    """Given a line with an unmapped product and an unmapped tax rate, resolve raises ONE MappingMissing
    naming both, and nothing else."""
    tax = LineTax(rate_id="txr_Unknown", amount=100)
    invoice = make_invoice([line("il_1", 1000, product="prod_Mystery", taxes=(tax,))])
    with pytest.raises(MappingMissing) as caught:
        resolve(invoice, mappings(*FULL_RULES))
    missing = caught.value.missing
    assert len(missing) == 2
    assert any("prod_Mystery" in m for m in missing)
    assert any("txr_Unknown" in m for m in missing)
    assert "prod_Mystery" in str(caught.value)
    assert "txr_Unknown" in str(caught.value)
    assert caught.value.reason == "mapping missing"


def test_unmapped_fixture_product_is_named(raw_event: RawEvent) -> None:
    """Given c1 (prod_Mystery unmapped), MappingMissing names the product and its line description."""
    with pytest.raises(MappingMissing) as caught:
        resolve(invoice_of(raw_event, "c1"), mappings(*FULL_RULES))
    assert len(caught.value.missing) == 1
    assert caught.value.missing[0].startswith("product prod_Mystery")


def test_two_lines_with_the_same_missing_product_are_listed_once() -> None:
    """Given two identical-description lines of one unmapped product sharing one unmapped tax rate,
    each missing rule is listed once."""
    tax = LineTax(rate_id="txr_Unknown", amount=100)
    lines = [
        line("il_1", 1000, product="prod_Mystery", taxes=(tax,), description="Mystery box"),
        line("il_2", 1000, product="prod_Mystery", taxes=(tax,), description="Mystery box"),
    ]
    with pytest.raises(MappingMissing) as caught:
        resolve(make_invoice(lines), mappings(*FULL_RULES))
    assert caught.value.missing == ["product prod_Mystery (Mystery box)", "tax rate txr_Unknown"]


def test_same_missing_product_on_differently_described_lines_is_listed_once() -> None:
    """Given two lines of the same unmapped product with different descriptions (January, February),
    the product is listed once: the operator has one rule to add, not two."""
    lines = [
        line("il_1", 1000, product="prod_Mystery", description="Mystery - January"),
        line("il_2", 1000, product="prod_Mystery", description="Mystery - February"),
    ]
    with pytest.raises(MappingMissing) as caught:
        resolve(make_invoice(lines), mappings(*FULL_RULES))
    assert sum("prod_Mystery" in m for m in caught.value.missing) == 1


def test_required_customer_mapping_is_listed_as_missing() -> None:
    """Given CustomerPolicy.REQUIRE_MAPPING and no customer rule, the customer is among the missing,
    alongside a missing product."""
    connection = Connection(
        connection_id="acme", tenant_id="123", customer_policy=CustomerPolicy.REQUIRE_MAPPING
    )
    invoice = make_invoice([line("il_1", 1000, product="prod_Mystery")], customer="cus_New")
    with pytest.raises(MappingMissing) as caught:
        resolve(invoice, mappings(*FULL_RULES, connection=connection))
    missing = caught.value.missing
    assert len(missing) == 2
    assert any(m.startswith("customer cus_New") and "Acme Corp" in m for m in missing)


def test_auto_create_policy_leaves_customer_to_push() -> None:
    """Given the default AUTO_CREATE policy and no customer rule, resolve succeeds with customer_id None."""
    resolved = resolve(make_invoice([line("il_1", 1000)], customer="cus_New"), mappings(*FULL_RULES))
    assert resolved.customer_id is None
    assert resolved.draft.customer_id == ""


def test_line_without_product_uses_the_default_item() -> None:
    """Given a one-off line (no product) and a connection default item, the line maps to that item."""
    connection = Connection(connection_id="acme", tenant_id="123", default_item_id="1")
    invoice = make_invoice([line("il_1", 1000, product=None)])
    (draft_line,) = resolve(invoice, mappings(*FULL_RULES, connection=connection)).draft.lines
    assert draft_line.item_id == "1"


def test_line_without_product_and_no_default_is_missing() -> None:
    """Given a one-off line and no default item, MappingMissing asks for a default item."""
    with pytest.raises(MappingMissing, match="set a default item"):
        resolve(make_invoice([line("il_1", 1000, product=None)]), mappings(*FULL_RULES))


def test_several_taxes_on_one_line_need_the_combined_key() -> None:
    """Given a line taxed by txr_b and txr_a, the rule looked up is "txr_a+txr_b" (sorted, joined by +)."""
    taxes = (LineTax(rate_id="txr_b", amount=50), LineTax(rate_id="txr_a", amount=100))
    invoice = make_invoice([line("il_1", 1000, taxes=taxes)])
    with pytest.raises(MappingMissing) as caught:
        resolve(
            invoice,
            mappings(
                *FULL_RULES, rule(RuleKind.TAX_RATE, "txr_a", "A"), rule(RuleKind.TAX_RATE, "txr_b", "B")
            ),
        )
    assert caught.value.missing == ["tax rate txr_a+txr_b"]
    draft = resolve(invoice, mappings(*FULL_RULES, rule(RuleKind.TAX_RATE, "txr_a+txr_b", "AB"))).draft
    assert draft.lines[0].tax_code == "AB"
    assert draft.tax == Decimal("1.50")


def test_jpy_invoice_gives_whole_yen_decimals(raw_event: RawEvent) -> None:
    """Given d3 (JPY 12000), the draft's amounts are whole-yen Decimals (no decimals at all)."""
    draft = resolve(
        invoice_of(raw_event, "d3"),
        mappings(*FULL_RULES),
        rule(RuleKind.CUSTOMER, "cus_RDelta01", "90"),
    ).draft
    assert draft.currency == "JPY"
    assert draft.lines[0].amount == Decimal("12000")
    assert str(draft.lines[0].amount) == "12000"
    assert str(draft.total) == "12000"
    assert str(draft.tax) == "0"
    assert str(draft.discount) == "0"


def test_inclusive_tax_is_taken_out_of_the_line_and_total_is_unchanged() -> None:
    """Given a 119.00 line that includes 19.00 VAT, the draft line is 100.00 net, the tax 19.00, and
    net lines + tax = 119.00 = the invoice total."""
    vat = LineTax(rate_id="txr_VAT19", amount=1900, inclusive=True)
    invoice = make_invoice([line("il_1", 11900, taxes=(vat,))], currency="EUR")
    check_totals(invoice)
    assert invoice.total == 11900
    draft = resolve(invoice, mappings(*FULL_RULES)).draft
    assert draft.lines[0].amount == Decimal("100.00")
    assert draft.lines[0].tax_code == "VAT19"
    assert draft.tax == Decimal("19.00")
    assert draft.total == Decimal("119.00")
    assert sum(ln.amount for ln in draft.lines) - draft.discount + draft.tax == draft.total


def test_invoice_without_lines_is_invalid() -> None:
    """Given an invoice with no lines, resolve raises InvalidSnapshot."""
    with pytest.raises(InvalidSnapshot, match="no lines"):
        resolve(make_invoice([]), mappings(*FULL_RULES))


def test_incomplete_lines_are_invalid(raw_event: RawEvent) -> None:
    """Given an invoice whose webhook carried only the first page of lines, resolve refuses it."""
    invoice = invoice_of(raw_event, "a1").model_copy(update={"lines_complete": False})
    with pytest.raises(InvalidSnapshot, match="incomplete"):
        resolve(invoice, mappings(*FULL_RULES))


# --- currency rules --------------------------------------------------------------------------------


def currency(code: str) -> MappingRule:
    return rule(RuleKind.CURRENCY, code, code)


def test_without_currency_rules_every_currency_is_accepted() -> None:
    """Given a connection with no currency rule, a EUR invoice resolves in EUR, as before currency rules."""
    invoice = make_invoice([line("l1", 1000)], currency="EUR")
    assert resolve(invoice, mappings(*FULL_RULES), ACME).draft.currency == "EUR"


def test_a_mapped_currency_resolves_to_its_ledger_code() -> None:
    """Given currency rules for USD and EUR, a EUR invoice resolves with the rule's ledger code."""
    invoice = make_invoice([line("l1", 1000)], currency="EUR")
    resolved = resolve(invoice, mappings(*FULL_RULES, currency("USD"), currency("EUR")), ACME)
    assert resolved.draft.currency == "EUR"


def test_an_unmapped_currency_parks_with_the_accepted_ones_named() -> None:
    """Given a connection that maps only USD, a JPY invoice is parked needs_mapping naming JPY and
    what the connection accepts, together with any other missing rule (one pass for the operator)."""
    invoice = make_invoice([line("l1", 1000, product="prod_Unknown")], currency="JPY")
    with pytest.raises(MappingMissing) as caught:
        resolve(invoice, mappings(*FULL_RULES, currency("USD")), ACME)
    assert caught.value.missing == [
        "product prod_Unknown (Line l1)",
        "currency JPY (the connection accepts USD)",
    ]
