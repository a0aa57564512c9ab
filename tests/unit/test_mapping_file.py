"""Mapping files: both forms read back what was written, and every bad file is one precise line."""

from __future__ import annotations

import random

import pytest

from invoice_sync.ledgers.port import Chart, ChartEntry
from invoice_sync.mapping import file as mf
from invoice_sync.mapping.changes import plan
from invoice_sync.mapping.check import check
from invoice_sync.mapping.file import MappingDocument, MappingFileError, Settings
from invoice_sync.models.mapping import Connection, CustomerPolicy, MappingRule, RuleKind

HEADER = "kind,source_value,ledger_id,ledger_account,ledger_name,source_name\n"
SETTINGS_CSV = "setting,customer_policy,auto_create,,,\nsetting,no_tax_code,NON,,,\n"
SETTINGS_YAML = "settings:\n  customer_policy: auto_create\n  no_tax_code: NON\n"
# Values that trip naive YAML or CSV handling: octal-looking ids, commas, quotes, unicode, "null".
AWKWARD = ["0123", "1e3", "null", "yes", "a,b", 'say "hi"', "Café & Co", "x: y", "- dash", "#hash", "~"]


def generated(seed: int) -> MappingDocument:
    """A random but valid mapping: every kind, awkward values, optional fields on or off."""
    rng = random.Random(seed)
    rules: list[MappingRule] = []

    def text() -> str:
        return rng.choice([*AWKWARD, f"id_{rng.randrange(10**6)}"])

    for kind, count in ((RuleKind.CUSTOMER, 6), (RuleKind.PRODUCT, 5), (RuleKind.TAX_RATE, 3)):
        for index in range(count):
            rules.append(
                MappingRule(
                    kind=kind,
                    source_value=f"{kind.value}_{index}_{text()}",
                    ledger_id=text(),
                    ledger_account=text() if kind is RuleKind.PRODUCT and rng.random() < 0.6 else None,
                    ledger_name=text() if rng.random() < 0.5 else None,
                    source_name=text() if rng.random() < 0.5 else None,
                    learned=rng.random() < 0.5 if kind is RuleKind.CUSTOMER else None,
                )
            )
    rules.append(MappingRule(kind=RuleKind.TAX_RATE, source_value="txr_a+txr_b", ledger_id="COMBO"))
    for code in rng.sample(["USD", "EUR", "JPY", "KWD"], 2):
        rules.append(MappingRule(kind=RuleKind.CURRENCY, source_value=code, ledger_id=code))
    settings = Settings(
        customer_policy=rng.choice(list(CustomerPolicy)),
        no_tax_code=rng.choice(["NON", "", "NONE", "0123"]),
        default_item_id=text() if rng.random() < 0.5 else None,
        payment_account=text() if rng.random() < 0.5 else None,
        refund_from_account=text() if rng.random() < 0.5 else None,
        rounding_account=text() if rng.random() < 0.5 else None,
    )
    return MappingDocument(
        settings=settings, rules=tuple(rules), connection="acme", ledger=rng.choice(["quickbooks", "xero"])
    )


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("form", ["yaml", "csv"])
def test_export_then_import_is_identity(seed: int, form: mf.FileFormat) -> None:
    """Given any generated mapping (awkward values included), what is written in either form reads
    back as the same document, and writing that again gives the same text."""
    document = generated(seed)
    text = mf.dump(document, form)
    again = mf.parse(text, f"m.{form}", form)
    assert again == document
    assert mf.dump(again, form) == text


def test_the_two_forms_agree() -> None:
    """The same document written as YAML and as CSV reads back equal: one model, two spellings."""
    document = generated(99)
    assert mf.parse_yaml(mf.dump_yaml(document)) == mf.parse_csv(mf.dump_csv(document))


def error(form: str, text: str) -> str:
    with pytest.raises(MappingFileError) as caught:
        mf.parse(text, f"m.{form}", form)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("settings: [\n", "m.yaml:2: not valid YAML"),
        ("- a\n", "m.yaml:1: a mapping file is a YAML mapping"),
        (SETTINGS_YAML + "widgets:\n  - source_value: a\n", "m.yaml:4: widgets: unknown section"),
        (
            SETTINGS_YAML
            + "products:\n  - source_value: p\n    ledger_id: '1'\n  - source_value: p\n    ledger_id: '2'\n",
            "m.yaml:7: source_value: duplicate product rule for 'p' (first on line 5)",
        ),
        (SETTINGS_YAML + "products:\n  - source_value: p\n", "m.yaml:5: ledger_id: missing"),
        (
            SETTINGS_YAML + "products:\n  - source_value: p\n    ledger_id: 1\n    colour: red\n",
            "m.yaml:7: colour: unknown field",
        ),
        (
            SETTINGS_YAML + "tax_rates:\n  - source_value: t\n    ledger_id: X\n    ledger_account: '200'\n",
            "ledger_account: only product rules",
        ),
        (
            "settings:\n  customer_policy: maybe\n  no_tax_code: NON\n",
            "m.yaml:2: customer_policy: must be one of",
        ),
        ("settings:\n  customer_policy: auto_create\n", "no_tax_code: missing"),
        (
            SETTINGS_YAML + "  item_policy: auto_create\n",
            "m.yaml:4: item_policy: 'auto_create' is not supported",
        ),
        (SETTINGS_YAML + "  colour: red\n", "m.yaml:4: colour: unknown setting"),
        (
            SETTINGS_YAML + "currencies:\n  - source_value: EURO\n    ledger_id: EUR\n",
            "not an ISO 4217 currency code",
        ),
        (
            SETTINGS_YAML + "currencies:\n  - source_value: eur\n    ledger_id: USD\n",
            "ledger_id: must be the same ISO code",
        ),
        (
            SETTINGS_YAML + "customers:\n  - source_value: c\n    ledger_id: '5'\n    learned: maybe\n",
            "learned: must be true or false",
        ),
        (SETTINGS_YAML + "settings:\n  no_tax_code: X\n", "settings: given twice"),
    ],
)
def test_bad_yaml_is_one_line_naming_line_and_field(text: str, expected: str) -> None:
    """Each kind of bad YAML file gives one line with the file, the line, the field and the fault."""
    assert expected in error("yaml", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "m.csv:1: empty"),
        ("kind,source_value\n", "m.csv:1: ledger_id: column missing"),
        ("kind,source_value,ledger_id,colour\n", "m.csv:1: colour: unknown column"),
        (HEADER + SETTINGS_CSV + "widget,a,b,,,\n", "m.csv:4: kind: unknown kind 'widget'"),
        (
            HEADER + SETTINGS_CSV + "product,p,1,,,\nproduct,p,2,,,\n",
            "m.csv:5: source_value: duplicate product rule for 'p' (first on line 4)",
        ),
        (HEADER + SETTINGS_CSV + "product,,1,,,\n", "m.csv:4: source_value: missing"),
        (HEADER + SETTINGS_CSV + "product,p,1,,,,extra\n", "m.csv:4: 7 cells but the header names 6"),
        (
            HEADER + SETTINGS_CSV + "setting,no_tax_code,TAX,,,\n",
            "m.csv:4: no_tax_code: set twice (first on line 3)",
        ),
        (HEADER + "setting,customer_policy,auto_create,,,\n", "no_tax_code: missing"),
        (HEADER + SETTINGS_CSV + 'product,"p,1,,,\n', "m.csv"),
    ],
)
def test_bad_csv_is_one_line_naming_row_and_field(text: str, expected: str) -> None:
    """Each kind of bad CSV file gives one line with the file, the line, the field and the fault."""
    assert expected in error("csv", text)


def test_several_problems_are_counted_in_the_one_line() -> None:
    message = error("csv", HEADER + SETTINGS_CSV + "widget,a,b,,,\nproduct,,1,,,\n")
    assert message.startswith("m.csv:4: kind: unknown kind") and message.endswith("(and 1 more)")


def test_not_utf8_is_one_line() -> None:
    with pytest.raises(MappingFileError, match=r"m.csv:2: not UTF-8"):
        mf.read("m.csv", "csv", b"kind,source_value,ledger_id\n\xff\xfe,x,y\n")


def test_combined_tax_rates_are_sorted_as_the_resolver_looks_them_up() -> None:
    """Several rates on a line map under their ids sorted and joined by '+', whatever order the file uses."""
    document = mf.parse_csv(HEADER + SETTINGS_CSV + "tax_rate,txr_b + txr_a,COMBO,,,\n")
    assert [r.source_value for r in document.rules] == ["txr_a+txr_b"]


def test_a_file_for_another_connection_or_ledger_is_refused() -> None:
    document = mf.parse_yaml("connection: beta\nledger: xero\n" + SETTINGS_YAML)
    with pytest.raises(MappingFileError, match="the file is for 'beta', not 'acme'"):
        mf.check_for(document, Connection(connection_id="acme", tenant_id="1"), "m.yaml")


def test_xero_products_need_a_revenue_account() -> None:
    document = mf.parse_yaml(SETTINGS_YAML + "products:\n  - source_value: p\n    ledger_id: CONSULT\n")
    with pytest.raises(MappingFileError, match=r"m.yaml:5: ledger_account: product p: Xero lines need"):
        mf.check_for(document, Connection(connection_id="acme", tenant_id="1", ledger="xero"), "m.yaml")


def rule(kind: RuleKind, source: str, ledger: str, learned: bool | None = None) -> MappingRule:
    return MappingRule(kind=kind, source_value=source, ledger_id=ledger, learned=learned)


def test_plan_adds_changes_removes_and_keeps_learned_customers() -> None:
    """A file is the whole state: rules it omits are removed, except customers push learned (kept
    unless the file names them, which turns them into the operator's rule); settings changes listed."""
    current = MappingDocument(
        rules=(
            rule(RuleKind.PRODUCT, "p1", "1"),
            rule(RuleKind.PRODUCT, "p2", "2"),
            rule(RuleKind.CUSTOMER, "cus_set", "10", learned=False),
            rule(RuleKind.CUSTOMER, "cus_learned", "11", learned=True),
            rule(RuleKind.CUSTOMER, "cus_old", "12"),  # stored before origins: kept like a learned one
            rule(RuleKind.CUSTOMER, "cus_renamed", "13", learned=True),
        )
    )
    wanted = MappingDocument(
        settings=Settings(payment_account="35"),
        rules=(
            rule(RuleKind.PRODUCT, "p1", "1"),
            rule(RuleKind.PRODUCT, "p2", "3"),
            rule(RuleKind.PRODUCT, "p3", "4"),
            rule(RuleKind.CUSTOMER, "cus_renamed", "14", learned=False),
        ),
    )
    changes = plan(current, wanted)
    assert changes.sections["products"] == {"added": ["p3"], "changed": ["p2"], "removed": []}
    assert changes.sections["customers"] == {"added": [], "changed": ["cus_renamed"], "removed": ["cus_set"]}
    assert changes.kept_learned == 2
    assert {r.source_value for r in changes.deletes} == {"cus_set"}
    assert changes.setting_changes == {"payment_account": (None, "35")}
    assert not changes.empty
    assert plan(wanted, wanted).empty


def test_check_reports_missing_inactive_and_misused_entries() -> None:
    """Against a Xero-like chart: a missing item, an inactive tax code, an expense account used as
    revenue, a revenue account used for payments and an unset payment account are each one problem."""
    chart = Chart(
        items=(ChartEntry("CONSULT", "Consulting", True),),
        tax_codes=(ChartEntry("OUTPUT2", "Sales", True), ChartEntry("OLD", "Old", False)),
        accounts=(
            ChartEntry("200", "Sales", True, "REVENUE", sales=True),
            ChartEntry("400", "Advertising", True, "EXPENSE", sales=False),
        ),
    )
    connection = Connection(
        connection_id="acme", tenant_id="t", ledger="xero", no_tax_code="OUTPUT2", refund_from_account="200"
    )
    rules = [
        MappingRule(kind=RuleKind.PRODUCT, source_value="p_ok", ledger_id="CONSULT", ledger_account="200"),
        MappingRule(kind=RuleKind.PRODUCT, source_value="p_gone", ledger_id="GONE", ledger_account="400"),
        MappingRule(kind=RuleKind.TAX_RATE, source_value="t_old", ledger_id="OLD"),
        MappingRule(kind=RuleKind.CUSTOMER, source_value="cus_1", ledger_id="x"),
    ]
    problems, checked = check(connection, rules, chart)
    assert [(p.kind, p.source_value, p.ledger_id) for p in problems] == [
        ("product", "p_gone", "GONE"),
        ("product", "p_gone", "400"),
        ("tax_rate", "t_old", "OLD"),
        ("setting", "payment_account", ""),
        ("setting", "refund_from_account", "200"),
    ]
    assert problems[1].problem == "account 400 (Advertising) is EXPENSE: not a revenue account"
    assert problems[2].problem == "tax code OLD (Old) is inactive"
    assert checked == 5  # three product/tax rules and two settings; customers are not in the chart
