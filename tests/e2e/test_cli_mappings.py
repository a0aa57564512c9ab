"""``invoice-sync mappings export|import|check|history`` against the local stack over HTTP: moto's
server holds the Mappings table, the ledger sandboxes hold the charts, push syncs with what was
imported."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops import demo
from invoice_sync_ops.cli import main
from invoice_sync_ops.local.stack import LocalStack
from tests.e2e.conftest import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture(scope="class")
def xero_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A Xero local stack of this module's own, and the CLI pointed at it."""
    with LocalStack(ledger="xero") as xero:
        target = tmp_path_factory.mktemp("xero") / "target.json"
        xero.target().write(target)

        def run(*args: str, capsys: pytest.CaptureFixture[str]) -> CliResult:
            capsys.readouterr()
            code = main([*args, "--target", str(target)])
            captured = capsys.readouterr()
            return CliResult(code, captured.out, captured.err)

        yield run


def exported(cli: Cli, path: Path, *extra: str) -> dict[str, object]:
    result = cli("mappings", "export", str(path), *extra)
    assert result.code == 0, result.err
    loaded: dict[str, object] = yaml.safe_load(path.read_text())
    return loaded


def version_of(cli: Cli) -> int:
    result = cli("mappings", "history", "--json")
    assert result.code == 0, result.err
    return int(result.json()["mapping_version"])


# --- Xero (its own stack; first, so it is stopped before the QuickBooks tests send events) --------


class TestXero:
    """Xero on its own stack."""

    def test_xero_export_check_and_wrong_account_types(
        self, xero_cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Given the seeded Xero connection, export names each product's item code and revenue account
        and check finds nothing wrong (exit 0); after importing an expense account for a product and a
        revenue account as the payment account, check exits 1 naming both, with Xero's account types."""
        path = tmp_path / "xero.yaml"
        result = xero_cli("mappings", "export", str(path), capsys=capsys)
        assert result.code == 0, result.err
        document = yaml.safe_load(path.read_text())
        assert document["ledger"] == "xero"
        assert {
            "source_value": "prod_Consulting",
            "ledger_id": "CONSULT",
            "ledger_account": "200",
        } in document["products"]
        assert document["settings"]["payment_account"] == "090"
        clean = xero_cli("mappings", "check", "--json", capsys=capsys)
        assert (clean.code, clean.json()["problems"]) == (0, []), clean.err
        assert clean.json()["checked"]["chart"]["accounts"] == 6
        document["products"][0]["ledger_account"] = "400"  # Advertising, an EXPENSE account
        document["settings"]["payment_account"] = "200"  # Sales: revenue, takes no payments
        path.write_text(yaml.safe_dump(document))
        assert xero_cli("mappings", "import", str(path), capsys=capsys).code == 0
        found = xero_cli("mappings", "check", "--json", capsys=capsys)
        assert found.code == 1
        problems = {
            (p["kind"], p["source_value"], p["ledger_id"]): p["problem"] for p in found.json()["problems"]
        }
        assert problems == {
            (
                "product",
                "prod_Consulting",
                "400",
            ): "account 400 (Advertising) is EXPENSE: not a revenue account",
            ("setting", "payment_account", "200"): "account 200 (Sales) is REVENUE: payments cannot be made "
            "to or from it",
        }

    def test_xero_product_without_account_is_refused(
        self, xero_cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Given a Xero file whose product rule has an item code but no revenue account, import exits 1
        with one line naming the file, line and field, and the version does not move."""
        path = tmp_path / "xero.csv"
        assert xero_cli("mappings", "export", str(path), capsys=capsys).code == 0
        text = path.read_text().replace("product,prod_Hosting,HOSTING,260,", "product,prod_Hosting,HOSTING,,")
        path.write_text(text)
        before = xero_cli("mappings", "history", "--json", capsys=capsys).json()["mapping_version"]
        result = xero_cli("mappings", "import", str(path), capsys=capsys)
        line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("product,prod_Hosting"))
        assert result.code == 1
        assert result.err.strip().splitlines() == [
            f"invoice-sync: {path}:{line}: ledger_account: product prod_Hosting: "
            "Xero lines need a revenue account code"
        ]
        assert xero_cli("mappings", "history", "--json", capsys=capsys).json()["mapping_version"] == before


# --- QuickBooks (the shared local stack, connection "acme") -------------------------------------


def test_export_gives_the_seeded_rules_in_both_forms(cli: Cli, tmp_path: Path) -> None:
    """Given the stack's seeded QBO connection, export writes its settings and rules: YAML sections
    and a CSV row per rule, the same content either way; --json reports the counts."""
    document = exported(cli, tmp_path / "acme.yaml")
    assert document["connection"] == "acme"
    assert document["settings"]["refund_item_id"] == "1"  # type: ignore[index]
    assert document["products"] == [
        {"source_value": "prod_Consulting", "ledger_id": "1"},
        {"source_value": "prod_Hosting", "ledger_id": "3"},
    ]
    assert document["tax_rates"] == [{"source_value": "txr_SalesTax825", "ledger_id": "TAX"}]
    result = cli("mappings", "export", str(tmp_path / "acme.csv"), "--json")
    assert result.code == 0
    assert result.json()["counts"] == {"customers": 0, "products": 2, "tax_rates": 1, "currencies": 0}
    rows = (tmp_path / "acme.csv").read_text().splitlines()
    assert "product,prod_Hosting,3,,,," in rows
    assert "tax_rate,txr_SalesTax825,TAX,,,," in rows


def test_a_clean_mapping_checks_clean(cli: Cli) -> None:
    """Given the seeded mapping, every rule and setting points at an active entry: exit 0, no problems."""
    result = cli("mappings", "check", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["problems"] == []
    assert data["checked"]["chart"] == {"items": 4, "tax_codes": 2, "accounts": 6}


def test_import_bumps_the_version_and_push_uses_the_new_rules(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    """Given prod_Hosting re-mapped from item 3 to item 2 and a currency rule for USD in an edited
    file, a dry run lists the change and writes nothing; the import then moves the mapping version
    by one and records it; an invoice pushed afterwards books its Hosting line on item 2 and its
    sync record names the new version."""
    path = tmp_path / "acme.yaml"
    document = exported(cli, path)
    before = version_of(cli)
    document["products"][1]["ledger_id"] = "2"  # type: ignore[index]
    document["currencies"] = [{"source_value": "USD", "ledger_id": "USD"}]
    path.write_text(yaml.safe_dump(document))
    dry = cli("mappings", "import", str(path), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["changes"]["rules"]["products"]["changed"] == ["prod_Hosting"]
    assert dry.json()["changes"]["rules"]["currencies"]["added"] == ["USD"]
    assert (dry.json()["written"], version_of(cli)) == (False, before)
    done = cli("mappings", "import", str(path), "--json")
    assert done.code == 0, done.err
    assert done.json()["mapping_version"] == before + 1 == version_of(cli)
    history = cli("mappings", "history", "--json").json()["versions"]
    assert history[-1]["version"] == before + 1
    assert history[-1]["changes"] == {"added": 1, "changed": 1, "removed": 0, "settings": 0}
    again = cli("mappings", "import", str(path), "--json")
    assert (again.code, again.json()["written"]) == (0, False)  # the same file again changes nothing

    assert demo.send(stack, "a1_invoice.finalized.current.json").json()["outcome"] == "queued"
    assert stack.drain()
    (invoice,) = [
        d for d in stack.sandbox.documents(stack.ledger.tenant_id, "Invoice") if d["DocNumber"] == "ACME-0001"
    ]
    items = {
        line["Description"]: line["SalesItemLineDetail"]["ItemRef"]["value"]
        for line in invoice["Line"]
        if line.get("DetailType") == "SalesItemLineDetail"
    }
    assert "2" in items.values()
    assert "3" not in items.values()
    record = {r.source_id: r for r in demo.sync_log(stack)}["in_1QaCurrentAcme01"]
    assert record.mapping_version == before + 1

    older = cli("mappings", "export", "-", "--version", str(before + 1), "--format", "csv")
    assert "product,prod_Hosting,2,,,," in older.out.splitlines()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "bad.yaml",
            "settings:\n  customer_policy: auto_create\n  no_tax_code: [NON\n",
            "bad.yaml:4: not valid YAML",
        ),
        (
            "row.csv",
            "kind,source_value,ledger_id\nsetting,customer_policy,auto_create\nsetting,no_tax_code,NON\n"
            "product,prod_Consulting,\n",
            "row.csv:4: ledger_id: missing",
        ),
        (
            "kind.csv",
            "kind,source_value,ledger_id\nsetting,customer_policy,auto_create\nsetting,no_tax_code,NON\n"
            "product,prod_Consulting,1\nwidget,w,1\n",
            "kind.csv:5: kind: unknown kind 'widget'",
        ),
        (
            "dup.yaml",
            "settings:\n  customer_policy: auto_create\n  no_tax_code: NON\nproducts:\n"
            "  - {source_value: prod_Consulting, ledger_id: '1'}\n"
            "  - {source_value: prod_Consulting, ledger_id: '2'}\n",
            "dup.yaml:6: source_value: duplicate product rule for 'prod_Consulting' (first on line 5)",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_writes_nothing(
    cli: Cli, tmp_path: Path, name: str, text: str, expected: str
) -> None:
    """Given a bad file (YAML syntax, an empty required cell, an unknown kind, a duplicate rule),
    import exits 1 with exactly one line on stderr naming file, line and field, no traceback, and
    the mapping (rules, settings, version) is exactly what it was."""
    before = cli("mappings", "export", "-", "--format", "csv").out
    version = version_of(cli)
    path = tmp_path / name
    path.write_text(text)
    result = cli("mappings", "import", str(path))
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"invoice-sync: {tmp_path / expected.split(':', 1)[0]}")
    assert expected.split(":", 1)[1] in lines[0]
    assert "Traceback" not in result.err
    assert cli("mappings", "export", "-", "--format", "csv").out == before
    assert version_of(cli) == version


def test_check_finds_the_inactive_item_and_a_missing_tax_code(cli: Cli, tmp_path: Path) -> None:
    """Given rules pointing at QBO item 9 (Old plan, inactive) and tax code GST (not in a US
    company), check exits 1 and lists exactly those two, in the table and in --json; importing
    the previous file again makes it clean."""
    path = tmp_path / "acme.yaml"
    document = exported(cli, path)
    original = path.read_text()
    document["products"].append({"source_value": "prod_Legacy", "ledger_id": "9"})  # type: ignore[union-attr]
    document["tax_rates"].append({"source_value": "txr_GST", "ledger_id": "GST"})  # type: ignore[union-attr]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    assert cli("mappings", "import", str(broken)).code == 0
    result = cli("mappings", "check", "--json")
    assert result.code == 1
    assert [
        (p["kind"], p["source_value"], p["ledger_id"], p["problem"]) for p in result.json()["problems"]
    ] == [
        ("product", "prod_Legacy", "9", "item 9 (Old plan) is inactive"),
        ("tax_rate", "txr_GST", "GST", "no tax code GST in the ledger"),
    ]
    table = cli("mappings", "check")
    assert table.code == 1
    assert "Old plan" in table.out
    assert "2 problem(s)" in table.out
    path.write_text(original)
    assert cli("mappings", "import", str(path)).code == 0
    assert cli("mappings", "check").code == 0


def test_learned_customers_survive_an_import_that_does_not_name_them(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    """Given a customer push learned (the a1 invoice created Acme Corp in the ledger), an export without
    --with-learned leaves it out and importing that file keeps it; --with-learned exports it marked
    learned."""
    demo.send(stack, "a1_invoice.finalized.current.json")
    assert stack.drain()
    learned = cli("mappings", "export", str(tmp_path / "all.csv"), "--with-learned", "--json")
    rows = [r for r in (tmp_path / "all.csv").read_text().splitlines() if r.startswith("customer,")]
    assert rows
    assert all(r.endswith(",true") for r in rows)
    assert learned.json()["counts"]["customers"] == len(rows)
    path = tmp_path / "operator.yaml"
    assert exported(cli, path)["customers"] == []
    changed = path.read_text().replace("payment_account: null", "payment_account: '4'")
    path.write_text(changed)
    result = cli("mappings", "import", str(path), "--json")
    assert result.code == 0, result.err
    assert result.json()["changes"]["kept_learned_customers"] == len(rows)
    assert result.json()["changes"]["rules"]["customers"]["removed"] == []
    again = cli("mappings", "export", str(tmp_path / "after.csv"), "--with-learned")
    assert again.code == 0
    assert [r for r in (tmp_path / "after.csv").read_text().splitlines() if r.startswith("customer,")] == rows


def test_a_file_of_no_known_form_is_one_line_for_import_and_export(cli: Cli, tmp_path: Path) -> None:
    """Given a file name whose extension is neither YAML nor CSV, import and export each exit 1
    with one line saying so, no traceback, and nothing written."""
    version = version_of(cli)
    (tmp_path / "rules.txt").write_text("products: []\n")
    for args in (("import", str(tmp_path / "rules.txt")), ("export", str(tmp_path / "out.txt"))):
        result = cli("mappings", *args)
        assert result.code == 1, args
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not (tmp_path / "out.txt").exists()
    assert version_of(cli) == version


def test_an_import_waits_for_no_other_and_a_reconnect_keeps_its_version(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    """Given another import of the connection holding its lease, an import is refused in one line
    and writes nothing; once the lease is free it commits a new version, and pointing the
    connection at its tenant again (what `connect` does on a reconnect) keeps that version and its
    rules rather than putting back the connection as it was read before the import."""
    assert stack.resources is not None
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    mappings = MappingsStore(stack.resources.mappings_table, stack.client("dynamodb"), cache_seconds=0)
    read_before = mappings.connection("acme")
    assert read_before is not None
    path = tmp_path / "rules.yaml"
    document = exported(cli, path)
    products = document["products"]
    assert isinstance(products, list)
    products.append({"source_value": "prod_LeaseTest", "ledger_id": "2"})
    path.write_text(yaml.safe_dump(document))

    assert state.acquire_lock("mappings-import#acme", "someone-else", 60)
    try:
        refused = cli("mappings", "import", str(path))
    finally:
        state.release_lock("mappings-import#acme", "someone-else")
    assert refused.code == 1 and "another mappings import of acme is running" in refused.err
    assert version_of(cli) == read_before.mapping_version

    assert cli("mappings", "import", str(path)).code == 0
    mappings.set_tenant("acme", read_before.tenant_id)
    after = mappings.mappings("acme")
    assert after is not None
    assert after.connection.mapping_version == read_before.mapping_version + 1
    assert any(rule.source_value == "prod_LeaseTest" for rule in after.rules)
