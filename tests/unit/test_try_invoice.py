"""``invoice-sync try``: the payload it shows is the adapters' own, the ledger totals are what each
ledger computes from that payload, and unmapped rules, customers and bad files are reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from invoice_sync.ledgers.port import LedgerContact
from invoice_sync.models.documents import Invoice
from invoice_sync.models.mapping import Connection, CustomerPolicy, MappingRule, Mappings, RuleKind
from invoice_sync.sources.stripe import parse_event, parse_invoice
from invoice_sync_ops.commands import CliError
from invoice_sync_ops.commands.try_invoice import (
    EXIT_NOT_READY,
    EXIT_UNMAPPED,
    NEW_CUSTOMER,
    Preview,
    freshbooks_totals,
    load_file,
    preview,
    quickbooks_totals,
    xero_totals,
)
from invoice_sync_ops.stripe_import import synthetic_event

RawEvent = Callable[[str], bytes]
GENERIC = Path(__file__).resolve().parents[1] / "events" / "generic"


def invoice_of(raw_event: RawEvent, prefix: str) -> Invoice:
    return parse_invoice(json.loads(raw_event(prefix))["data"]["object"])


def rules(ledger: str) -> tuple[MappingRule, ...]:
    """What a person maps for each ledger: the fixtures' products and both tax rates."""
    accounts = {"xero": "200"}
    items = {
        "quickbooks": ("1", "3"),
        "xero": ("CONSULT", "HOSTING"),
        "freshbooks": ("Consulting", "Hosting"),
    }
    taxes = {"quickbooks": ("TAX", "VAT"), "xero": ("OUTPUT2", "OUTPUT"), "freshbooks": ("Sales Tax", "VAT")}
    return (
        MappingRule(
            kind=RuleKind.PRODUCT,
            source_value="prod_Consulting",
            ledger_id=items[ledger][0],
            ledger_account=accounts.get(ledger),
        ),
        MappingRule(
            kind=RuleKind.PRODUCT,
            source_value="prod_Hosting",
            ledger_id=items[ledger][1],
            ledger_account=accounts.get(ledger),
        ),
        MappingRule(kind=RuleKind.TAX_RATE, source_value="txr_SalesTax825", ledger_id=taxes[ledger][0]),
        MappingRule(kind=RuleKind.TAX_RATE, source_value="txr_VAT19", ledger_id=taxes[ledger][1]),
    )


def mappings_for(ledger: str, **connection: Any) -> Mappings:
    return Mappings(
        connection=Connection(connection_id="acme", ledger=ledger, tenant_id="t-1", **connection),  # type: ignore[arg-type]
        rules=rules(ledger),
    )


CUSTOMER_RULE = MappingRule(kind=RuleKind.CUSTOMER, source_value="cus_RAcme01", ledger_id="58")


class FakeLedger:
    """Only what try asks a ledger: find a customer by name (read only)."""

    def __init__(self, contacts: list[LedgerContact]) -> None:
        self.contacts = contacts
        self.asked: list[str] = []

    def find_customer(self, name: str) -> LedgerContact | None:
        self.asked.append(name)
        return next((c for c in self.contacts if c.name == name), None)


# --- totals per ledger, on the fixtures ------------------------------------------------------------


def test_quickbooks_payload_with_tax_sends_the_source_tax_and_totals_to_the_cent(raw_event: RawEvent) -> None:
    """ACME-0001 (two taxed lines, 8.25 % rounded per line by Stripe): QBO gets TotalTax 127.87
    as the override, and the ledger's total is 1677.86, no cent apart."""
    result = preview(invoice_of(raw_event, "a1"), mappings_for("quickbooks"), customer_rule=CUSTOMER_RULE)
    assert result.unmapped == [] and result.problems == []
    assert result.payload is not None
    assert result.payload["TxnTaxDetail"] == {"TotalTax": Decimal("127.87")}
    assert [line["Amount"] for line in result.payload["Line"]] == [Decimal("1500.00"), Decimal("49.99")]
    assert result.payload["CustomerRef"] == {"value": "58"}
    assert result.ledger_totals is not None
    assert result.ledger_totals.total == Decimal("1677.86") == result.source.total
    assert result.difference == 0
    assert result.exit_code == 0


def test_a_discount_is_one_qbo_discount_line_and_a_line_discount_in_xero(raw_event: RawEvent) -> None:
    """BETA-0042 (EUR, 10 % coupon before 19 % VAT): QBO shows a 36.00 discount line, Xero puts
    it on the line; both ledgers total 385.56 like Stripe."""
    invoice = invoice_of(raw_event, "b1")
    qbo = preview(invoice, mappings_for("quickbooks"))
    xero = preview(invoice, mappings_for("xero"))
    assert qbo.payload is not None and xero.payload is not None
    discount_lines = [line for line in qbo.payload["Line"] if line["DetailType"] == "DiscountLineDetail"]
    assert [line["Amount"] for line in discount_lines] == [Decimal("36.00")]
    assert xero.payload["LineItems"][0]["DiscountAmount"] == Decimal("36.00")
    for result in (qbo, xero):
        assert result.ledger_totals is not None
        assert (result.ledger_totals.discount, result.ledger_totals.tax) == (
            Decimal("36.00"),
            Decimal("61.56"),
        )
        assert result.ledger_totals.total == Decimal("385.56")
        assert result.difference == 0


def test_freshbooks_takes_the_discount_as_one_percent_and_tax_as_a_percent(raw_event: RawEvent) -> None:
    """FreshBooks recomputes: 10 % off 360.00, then 19 % on 324.00 = 61.56; total 385.56."""
    result = preview(invoice_of(raw_event, "b1"), mappings_for("freshbooks"))
    assert result.payload is not None
    assert result.payload["discount_value"] == "10"
    assert result.payload["lines"][0]["taxAmount1"] == "19"
    assert result.ledger_totals is not None
    assert result.ledger_totals.total == Decimal("385.56")
    assert result.difference == 0


def test_jpy_has_no_decimals_anywhere(raw_event: RawEvent) -> None:
    """JP-0001 (¥12000, zero-decimal currency): payload amount 12000, totals with no decimals."""
    result = preview(invoice_of(raw_event, "d3"), mappings_for("quickbooks"))
    assert result.payload is not None
    assert result.payload["Line"][0]["Amount"] == Decimal("12000")
    assert result.payload["CurrencyRef"] == {"value": "JPY"}
    assert result.ledger_totals is not None
    assert result.ledger_totals.as_json() == {
        "subtotal": "12000",
        "discount": "0",
        "tax": "0",
        "total": "12000",
    }
    assert result.source.as_json()["total"] == "12000"


def test_xero_totals_read_line_amount_types() -> None:
    """Xero adds TaxAmount on top of Exclusive lines, finds it inside Inclusive ones, and takes
    none for NoTax."""
    line = {
        "Quantity": 2,
        "UnitAmount": Decimal("50.00"),
        "LineAmount": Decimal("100.00"),
        "TaxAmount": Decimal("8.25"),
    }
    assert xero_totals({"LineAmountTypes": "Exclusive", "LineItems": [line]}).total == Decimal("108.25")
    inclusive = xero_totals({"LineAmountTypes": "Inclusive", "LineItems": [line]})
    assert (inclusive.subtotal, inclusive.total) == (Decimal("91.75"), Decimal("100.00"))
    assert xero_totals({"LineAmountTypes": "NoTax", "LineItems": [line]}).tax == 0


def test_the_one_cent_problem_freshbooks_rounds_tax_per_line() -> None:
    """Two lines of 0.05 at 10 %: Stripe taxing the invoice would say 0.01, FreshBooks rounds each
    line's 0.005 up and shows 0.02. The totals function computes the ledger's figure, not the
    source's, so try shows the cent."""
    body = {
        "discount_value": "0",
        "lines": [
            {"qty": "1", "unit_cost": {"amount": "0.05", "code": "USD"}, "taxName1": "T", "taxAmount1": "10"},
            {"qty": "1", "unit_cost": {"amount": "0.05", "code": "USD"}, "taxName1": "T", "taxAmount1": "10"},
        ],
    }
    totals = freshbooks_totals(body)
    assert (totals.subtotal, totals.tax, totals.total) == (Decimal("0.10"), Decimal("0.02"), Decimal("0.12"))


def test_quickbooks_totals_use_the_tax_override_not_the_lines() -> None:
    """QBO's total is the item lines less the discount line plus TxnTaxDetail.TotalTax."""
    payload = {
        "Line": [
            {"Amount": Decimal("10.00"), "DetailType": "SalesItemLineDetail"},
            {"Amount": Decimal("2.50"), "DetailType": "SalesItemLineDetail"},
            {"Amount": Decimal("1.25"), "DetailType": "DiscountLineDetail"},
        ],
        "TxnTaxDetail": {"TotalTax": Decimal("0.93")},
    }
    assert quickbooks_totals(payload).total == Decimal("12.18")


def test_a_ledger_total_apart_from_the_source_is_a_problem(
    raw_event: RawEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the ledger to show a cent more than Stripe, try says by how much and exits 4."""
    from invoice_sync_ops.commands import try_invoice  # noqa: PLC0415

    real = try_invoice.LEDGER_TOTALS["quickbooks"]

    def one_cent_more(payload: dict[str, Any]) -> try_invoice.Totals:
        shown = real(payload)
        return try_invoice.Totals(
            shown.subtotal, shown.discount, shown.tax + Decimal("0.01"), shown.total + Decimal("0.01")
        )

    monkeypatch.setitem(try_invoice.LEDGER_TOTALS, "quickbooks", one_cent_more)
    result = preview(invoice_of(raw_event, "a1"), mappings_for("quickbooks"))
    assert result.difference == Decimal("0.01")
    assert any("+0.01 apart" in problem for problem in result.problems)
    assert result.exit_code == EXIT_NOT_READY


# --- what is missing --------------------------------------------------------------------------------


def test_an_unmapped_product_is_listed_with_no_payload_and_exit_3(raw_event: RawEvent) -> None:
    """GAMMA-0007's prod_Mystery has no rule: it is named, nothing is built, exit status 3."""
    result = preview(invoice_of(raw_event, "c1"), mappings_for("quickbooks"))
    assert result.unmapped == ["product prod_Mystery (Mystery box)"]
    assert result.payload is None
    assert result.exit_code == EXIT_UNMAPPED


def test_another_ledger_reads_the_connections_rules_as_that_ledger_would(raw_event: RawEvent) -> None:
    """A QBO connection previewed for Xero: QBO product rules carry no Xero account code, so each
    product is reported as missing one; the customer is not looked up."""
    qbo = mappings_for("quickbooks")
    result = preview(invoice_of(raw_event, "a1"), qbo, ledger="xero", adapter=FakeLedger([]))  # type: ignore[arg-type]
    assert result.ledger == "xero" and result.connection_ledger == "quickbooks"
    assert result.unmapped == [
        "product prod_Consulting (Consulting hours): no revenue account code",
        "product prod_Hosting (Hosting - March): no revenue account code",
    ]


def test_a_draft_and_an_invoice_whose_totals_do_not_add_up_are_problems(
    event_dict: Callable[[str], dict[str, Any]],
) -> None:
    """A draft is kept out of the books and a total that is not lines - discount + tax is refused:
    both listed, exit 4."""
    obj = event_dict("a1")["data"]["object"]
    obj["status"] = "draft"
    obj["total"] += 1
    result = preview(parse_invoice(obj), mappings_for("quickbooks"))
    assert any("draft" in problem for problem in result.problems)
    assert any("totals do not add up" in problem for problem in result.problems)
    assert result.exit_code == EXIT_NOT_READY


# --- the customer ------------------------------------------------------------------------------------


def test_customer_by_rule_found_by_name_or_created(raw_event: RawEvent) -> None:
    """A rule wins without asking the ledger; otherwise a same-named customer is found (its id in
    the payload) or push would create it (the payload carries a placeholder)."""
    invoice = invoice_of(raw_event, "a1")
    ruled = preview(invoice, mappings_for("quickbooks"), customer_rule=CUSTOMER_RULE, adapter=FakeLedger([]))  # type: ignore[arg-type]
    assert ruled.customer["resolution"] == "rule"
    found = preview(
        invoice, mappings_for("quickbooks"), adapter=FakeLedger([LedgerContact("7", "Acme Corp")])
    )  # type: ignore[arg-type]
    assert (found.customer["resolution"], found.customer["ledger_id"]) == ("found by name", "7")
    assert found.payload is not None and found.payload["CustomerRef"] == {"value": "7"}
    created = preview(invoice, mappings_for("quickbooks"), adapter=FakeLedger([]))  # type: ignore[arg-type]
    assert created.customer["resolution"] == "created by name"
    assert created.payload is not None and created.payload["CustomerRef"] == {"value": NEW_CUSTOMER}


def test_a_namesake_made_for_another_source_customer_is_not_reused(raw_event: RawEvent) -> None:
    """As push does: 'Acme Corp' created for cus_Other makes this customer 'Acme Corp (cus_RAcme01)'."""
    ledger = FakeLedger([LedgerContact("7", "Acme Corp", reference="cus_Other")])
    result = preview(invoice_of(raw_event, "a1"), mappings_for("quickbooks"), adapter=ledger)  # type: ignore[arg-type]
    assert ledger.asked == ["Acme Corp", "Acme Corp (cus_RAcme01)"]
    assert result.customer["ledger_name"] == "Acme Corp (cus_RAcme01)"


def test_require_mapping_lists_the_customer_as_unmapped(raw_event: RawEvent) -> None:
    """With the require_mapping policy and no rule, the customer is one of the missing rules."""
    mappings = mappings_for("quickbooks", customer_policy=CustomerPolicy.REQUIRE_MAPPING)
    result: Preview = preview(invoice_of(raw_event, "a1"), mappings)
    assert result.unmapped == ["customer cus_RAcme01 (Acme Corp)"]


# --- reading files ---------------------------------------------------------------------------------------


def test_files_are_detected_as_event_invoice_or_generic_event(tmp_path: Path, raw_event: RawEvent) -> None:
    """A Stripe event, the bare invoice object inside it and a generic-source event all load; the
    event's own bytes are kept for the archive, the bare invoice gets an event made up."""
    event_file = tmp_path / "event.json"
    event_file.write_bytes(raw_event("a1"))
    invoice_file = tmp_path / "invoice.json"
    invoice_file.write_text(json.dumps(json.loads(raw_event("a1"))["data"]["object"]))
    event, bare = load_file(event_file), load_file(invoice_file)
    assert event.invoice == bare.invoice
    assert event.body == raw_event("a1") and bare.body is None
    generic = load_file(GENERIC / "a1_invoice.upserted.open.json")
    assert (generic.source, generic.invoice.number) == ("generic", "INV-1001")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not JSON (JSONDecodeError at line 1 column 2)"),
        ("[1, 2]", "expected a JSON object"),
        ('{"object": "invoice", "id": "in_1"}', "not a valid invoice"),
        ('{"object": "customer"}', "neither a Stripe invoice"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, content: str, expected: str) -> None:
    """Bad content is a CliError (exit 1) whose one line names the file and what is wrong."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CliError) as refused:
        load_file(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert expected in str(refused.value)
    assert "\n" not in str(refused.value) and refused.value.code == 1


def test_a_non_invoice_stripe_event_is_refused(tmp_path: Path, raw_event: RawEvent) -> None:
    """customer.created is a Stripe event, but not one try can map."""
    path = tmp_path / "customer.json"
    path.write_bytes(raw_event("e2"))
    with pytest.raises(CliError, match=r"a Stripe customer\.created event"):
        load_file(path)
    with pytest.raises(CliError, match="no such file"):
        load_file(tmp_path / "missing.json")


# --- the event made up for an API read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "event_type"),
    [
        ("a1", "invoice.finalized"),
        ("a2", "invoice.paid"),
        ("d1", "invoice.voided"),
        ("d2", "invoice.marked_uncollectible"),
    ],
)
def test_the_synthetic_event_reads_back_as_the_same_invoice(
    raw_event: RawEvent, prefix: str, event_type: str
) -> None:
    """An invoice read from the API becomes an event the Stripe parser reads back to the same
    invoice, of the type its status implies, with the same id and version every time (so a
    re-run is a no-op for the version guard)."""
    obj = json.loads(raw_event(prefix))["data"]["object"]
    event_id, body = synthetic_event(obj)
    again_id, again = synthetic_event(json.loads(json.dumps(obj)))
    assert (event_id, body) == (again_id, again)
    event = parse_event(body)
    assert event is not None
    assert event.event_type == event_type
    assert event.invoice == parse_invoice(obj)
    assert event.event_id == event_id
