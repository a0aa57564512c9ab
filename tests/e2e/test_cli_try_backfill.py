"""End-to-end: ``invoice-sync try`` and ``backfill`` against the local stack (moto's server, the
QuickBooks sandbox and the Stripe stand-in, all over HTTP), run as a person types them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from invoice_sync.sources.stripe import parse_event
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.cli import main
from invoice_sync_ops.local.stack import SECRETS_PREFIX, LocalStack
from invoice_sync_ops.sandboxes.stripe import generate_invoices

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
Cli = Callable[..., Any]
# 35 invoices, one a day from 2024-03-01: more than one QBO batch of 30.
BACKFILL_START = 1_709_251_200
BACKFILL_COUNT = 35


def qbo_invoices(stack: LocalStack) -> list[dict[str, Any]]:
    return stack.ledger.documents(stack.sandbox, "invoice")


def test_try_shows_the_exact_payload_and_the_totals_side_by_side(cli: Cli) -> None:
    """A fixture event file: the totals panel shows source and QuickBooks totals (1677.86 both,
    no difference), the customer resolution and the QBO payload with the tax override; exit 0."""
    result = cli("try", str(EVENTS / "a1_invoice.finalized.current.json"))
    assert result.code == 0, result.err
    assert "try ACME-0001 (in_1QaCurrentAcme01)" in result.out
    assert "1677.86" in result.out
    assert '"TotalTax": 127.87' in result.out
    assert '"DocNumber": "ACME-0001"' in result.out
    assert "customer Acme Corp (cus_RAcme01)" in result.out


def test_try_json_names_the_unmapped_product_and_exits_3(cli: Cli) -> None:
    """GAMMA-0007's product has no rule: --json lists it under unmapped, no payload, exit 3; the
    document has the same keys as always."""
    result = cli("try", str(EVENTS / "c1_invoice.finalized.unmapped_product.current.json"), "--json")
    assert result.code == 3
    document = result.json()
    assert list(document) == [
        "connection",
        "ledger",
        "invoice",
        "source",
        "ledger_totals",
        "difference",
        "unmapped",
        "problems",
        "customer",
        "payload",
        "pushed",
    ]
    assert document["unmapped"] == ["product prod_Mystery (Mystery box)"]
    assert (document["payload"], document["pushed"], document["connection"]) == (None, None, "acme")
    assert document["source"] == {
        "currency": "USD",
        "subtotal": "50.00",
        "discount": "0.00",
        "tax": "0.00",
        "total": "50.00",
    }


def test_a_bad_file_is_one_line_on_stderr_and_exit_1(cli: Cli, tmp_path: Path) -> None:
    """Not JSON, or no file at all: one line on stderr naming the file, exit 1, no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text("this is not json")
    for path in (bad, tmp_path / "missing.json"):
        result = cli("try", str(path))
        assert result.code == 1
        assert result.err.count("\n") == 1 and str(path) in result.err
        assert "Traceback" not in result.err and result.out == ""


def test_try_reads_an_invoice_id_from_stripes_api(cli: Cli, stack: LocalStack) -> None:
    """An in_... id is fetched from the Stripe stand-in with the connection's stored key and mapped
    as a file would be."""
    result = cli("try", "in_1Hist000004", "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["invoice"] == {"source_id": "in_1Hist000004", "number": "HIST-0004", "status": "open"}
    assert document["ledger_totals"]["total"] == document["source"]["total"] == "703.61"
    assert any(path.startswith("/v1/invoices/in_1Hist000004") for _, path, _ in stack.stripe.request_log)


def test_an_unknown_invoice_id_and_a_wrong_key_are_one_line_each(cli: Cli) -> None:
    """Stripe's 404 and 401 come back as one line and exit 1; the refused key is never printed."""
    missing = cli("try", "in_1NoSuchInvoice")
    assert missing.code == 1 and "No such invoice: 'in_1NoSuchInvoice'" in missing.err
    refused = cli("try", "in_1Hist000004", "--stripe-key", "sk_test_wrong_key_9876")
    assert refused.code == 1
    assert "refused --stripe-key (401)" in refused.err
    assert "sk_test_wrong_key_9876" not in refused.err + refused.out
    assert refused.err.count("\n") == 1


def test_push_to_another_ledger_than_the_connections_is_a_usage_error(cli: Cli) -> None:
    """--ledger xero only previews for a QBO connection: with --push it is exit 2, nothing sent."""
    result = cli("try", str(EVENTS / "a1_invoice.finalized.current.json"), "--ledger", "xero", "--push")
    assert result.code == 2
    assert "--push sends to the connection's ledger (quickbooks)" in result.err


def test_try_push_creates_exactly_one_invoice_and_a_second_push_nothing(cli: Cli, stack: LocalStack) -> None:
    """--push runs the push use case: one QBO invoice with the payload's number and total, a synced
    sync record; pushing again is 'unchanged' and the sandbox holds no second document."""
    file = str(EVENTS / "d2_invoice.marked_uncollectible.current.json")
    before = len(qbo_invoices(stack))
    first = cli("try", file, "--push", "--json")
    assert first.code == 0, first.err
    pushed = first.json()["pushed"]
    assert pushed["outcome"] == "synced"
    assert (pushed["number"], pushed["total"]) == ("GAMMA-0008", "162.38")
    assert len(qbo_invoices(stack)) == before + 1
    again = cli("try", file, "--push")
    assert again.code == 0, again.err
    assert f"pushed: unchanged; ledger document {pushed['ledger_id']} number GAMMA-0008" in again.out
    assert len(qbo_invoices(stack)) == before + 1
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))  # type: ignore[union-attr]
    record, _ = state.get("acme", "invoice", "in_1QdBad01")
    assert record is not None and record.status.value == "synced" and record.ledger_id == pushed["ledger_id"]


def test_backfill_imports_in_batches_and_a_rerun_creates_nothing(cli: Cli, stack: LocalStack) -> None:
    """35 invoices in a window of Stripe's history: listed, archived as Stripe events, pushed as two
    QBO /batch requests (30 + 5); every one synced, progress and quota printed. Run again: all
    35 unchanged, no new QBO document, same JSON keys."""
    history = generate_invoices(BACKFILL_COUNT, start=BACKFILL_START, prefix="BF", id_prefix="in_1Backfill")
    stack.stripe.add_invoices(stack.company.stripe_account, history)
    window = ("--since", "2024-03-01", "--until", "2024-04-30")
    before = len(qbo_invoices(stack))
    batches_before = sum("/batch" in path for _, path, _ in stack.sandbox.request_log)

    first = cli("backfill", *window)
    assert first.code == 0, first.err
    assert f"{BACKFILL_COUNT} of {BACKFILL_COUNT} listed invoices selected" in first.out
    assert f"synced {BACKFILL_COUNT}" in first.out
    assert "quickbooks: 2 batches of up to 30; this run" in first.out
    assert "today" in first.out and "Stripe: 1 requests, 0 throttled" in first.out
    assert len(qbo_invoices(stack)) == before + BACKFILL_COUNT
    assert sum("/batch" in path for _, path, _ in stack.sandbox.request_log) - batches_before == 2
    numbers = {d["DocNumber"] for d in qbo_invoices(stack)}
    assert {f"BF-{n:04d}" for n in range(1, BACKFILL_COUNT + 1)} <= numbers

    again = cli("backfill", *window, "--json")
    assert again.code == 0, again.err
    document = again.json()
    assert set(document) == {
        "batch_size",
        "batches",
        "connection",
        "counts",
        "dry_run",
        "invoices",
        "invoices_not_listed",
        "ledger",
        "ledger_quota",
        "ledger_use_today",
        "listed",
        "selected",
        "since",
        "statuses",
        "stripe",
        "until",
    }
    assert document["counts"] == {
        "synced": 0,
        "unchanged": BACKFILL_COUNT,
        "stale": 0,
        "skipped": 0,
        "parked": 0,
        "failed": 0,
        "invalid": 0,
    }
    assert (document["batch_size"], document["selected"]) == (30, BACKFILL_COUNT)
    assert document["ledger_use_today"]["requests"] > 0
    assert len(qbo_invoices(stack)) == before + BACKFILL_COUNT


def test_backfill_archives_events_the_stripe_parser_reads_again(cli: Cli, stack: LocalStack) -> None:
    """What backfill archived under raw/stripe/acme/ (push bundles a batch's raw events, as it
    does intake's) is, at its sync record's archive key, a Stripe event the webhook parser reads
    back to the invoice it came from (what replay and redrive rely on)."""
    result = cli("backfill", "--since", "2025-06-01", "--until", "2025-06-03", "--json")
    assert result.code == 0, result.err
    assert result.json()["selected"] == 3
    assert stack.resources is not None
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    record, _ = state.get("acme", "invoice", "in_1Hist000002")
    assert record is not None and record.archive_key is not None
    assert record.archive_key.startswith("raw/stripe/acme/")
    archive = RawArchive(stack.resources.archive_bucket, stack.client("s3"))
    event = parse_event(archive.get(record.archive_key))
    assert event is not None and event.invoice is not None
    assert (event.invoice.source_id, event.invoice.number, event.event_type) == (
        "in_1Hist000002",
        "HIST-0002",
        "invoice.finalized",
    )


def test_backfill_dry_run_lists_and_sends_nothing(cli: Cli, stack: LocalStack) -> None:
    """--dry-run lists and counts (drafts left out) but archives, pushes and records nothing."""
    before = len(qbo_invoices(stack))
    ledger_calls = len(stack.sandbox.request_log)
    result = cli("backfill", "--since", "2025-12-01", "--dry-run", "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["dry_run"] is True
    selected = {row["source_id"] for row in document["invoices"]}
    assert "in_1QeDraft01" not in selected and "in_1QaCurrentAcme01" in selected
    assert document["listed"] == document["selected"] + 1  # the draft
    assert {row["outcome"] for row in document["invoices"]} == {"listed"}
    assert len(qbo_invoices(stack)) == before and len(stack.sandbox.request_log) == ledger_calls


def test_backfill_refuses_drafts_and_bad_dates_as_usage_errors(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """--status draft and a --since that is no date are argparse errors: exit 2, no traceback."""
    for args in (("--since", "2025-06-01", "--status", "draft"), ("--since", "June")):
        with pytest.raises(SystemExit) as exited:
            cli("backfill", *args)
        assert exited.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def test_an_unreachable_ledger_is_one_line_and_exit_1(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the ledger's API and token endpoint on a port nobody listens on, try on an invoice whose
    customer has no rule yet (so it must be looked up in the ledger) ends with one line on stderr
    and exit 1, not a traceback."""
    dead = "http://127.0.0.1:9"
    target = stack.target().model_copy(
        update={"ledger_environment": {"QUICKBOOKS_API_BASE": dead, "QUICKBOOKS_TOKEN_URL": f"{dead}/token"}}
    )
    path = tmp_path / "dead-ledger.json"
    target.write(path)
    capsys.readouterr()
    code = main(["try", str(EVENTS / "d3_invoice.finalized.jpy.current.json"), "--target", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("invoice-sync: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_backfill_without_a_stripe_key_is_one_line_naming_the_command_to_store_one(
    cli: Cli, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given no Stripe key anywhere (no option, no STRIPE_API_KEY, no stored secret), backfill exits
    1 with one line that says how to store one, never a traceback; the stored key comes back."""
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert stack.resources is not None
    client = stack.client("secretsmanager")
    name = f"{SECRETS_PREFIX}/acme/stripe-api"
    client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    try:
        result = cli("backfill", "--since", "2025-06-01", "--dry-run")
    finally:
        SecretStore(SECRETS_PREFIX, client).put_stripe_api_key("acme", stack.company.stripe_api_key)
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "invoice-sync secret stripe-api" in result.err
