"""``invoice-sync reconcile`` on the local stack: the demo's Stripe webhooks over HTTP into the
QuickBooks sandbox, the Stripe stand-in holding the same invoices, then the day reconciled as an
operator runs it: clean; each kind of tampering in the ledger found, with one alert; ``--repair``
putting back the missing invoice; the demo's partial refund compared on all three sides and its
deleted refund document found; the one-line answers to a bad window and an unknown
connection; and the HTML report rendered in headless Chromium."""

from __future__ import annotations

import copy
import json
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from invoice_sync.sources.stripe import signature_header
from invoice_sync_ops import demo
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.local.stack import LocalStack
from tests.e2e.conftest import CliResult

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
ACME = "in_1QaCurrentAcme01"
Cli = Callable[..., CliResult]
# Three more invoices like the demo's ACME-0001, one for each kind of tampering.
MISSING, DUPLICATE, CHANGED = "in_1QRecon0Missing", "in_1QRecon0Duplicate", "in_1QRecon0Changed"
# The demo's partial refund of ACME-0001's charge (g1_charge.refunded.partial): its refund record.
REFUND_FIXTURE = "g1_charge.refunded.partial.current.json"
CHARGE = "ch_3QgAcmeCharge01"
REFUND = f"{CHARGE}:refunded:16238"


def _post(stack: LocalStack, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    header = signature_header(body, [stack.company.webhook_secret], int(time.time()))
    response = httpx.post(
        stack.webhook_url(),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def _invoice_event(invoice_id: str, number: str) -> dict[str, Any]:
    """The demo's finalized ACME-0001 as a new invoice of its own, created now."""
    event: dict[str, Any] = json.loads((EVENTS / "a1_invoice.finalized.current.json").read_text())
    event["id"] = f"evt_{invoice_id}"
    obj = event["data"]["object"]
    obj.update(id=invoice_id, number=number, created=int(time.time()))
    for line in obj["lines"]["data"]:
        line["id"] = f"{line['id']}_{number}"
    return event


def _alerts(stack: LocalStack) -> list[dict[str, Any]]:
    return [a for a in demo.alerts(stack) if "reconciliation" in a["subject"]]


def _qbo_invoices(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return stack.sandbox._tenant(stack.ledger.tenant_id).table("Invoice")  # type: ignore[attr-defined,no-any-return]


def _qbo_refunds(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return stack.sandbox._tenant(stack.ledger.tenant_id).table("RefundReceipt")  # type: ignore[attr-defined,no-any-return]


def _stripe_refunds() -> list[dict[str, Any]]:
    """The refunds the demo's partial refund event carries, as Stripe's ``/v1/refunds`` lists them,
    created now (the window)."""
    event = json.loads((EVENTS / REFUND_FIXTURE).read_text())
    refunds: list[dict[str, Any]] = event["data"]["object"]["refunds"]["data"]
    for refund in refunds:
        refund["created"] = int(time.time())
    return refunds


def _ledger_id(stack: LocalStack, source_id: str) -> str:
    (found,) = [i for i, d in _qbo_invoices(stack).items() if source_id in str(d.get("PrivateNote", ""))]
    return found


@pytest.fixture(scope="module")
def synced(stack: LocalStack) -> LocalStack:
    """The demo's ACME-0001 (finalized, then paid) and three invoices like it, synced; the Stripe
    stand-in holds the same invoices, created today (the stack seeds the fixtures' old dates)."""
    for fixture in ("a1_invoice.finalized.current.json", "a2_invoice.paid.current.json"):
        assert demo.send(stack, fixture).status_code == 200
    account = stack.company.stripe_account
    (acme,) = [o for o in stack.stripe.documents(account, "invoices") if o["id"] == ACME]
    acme["created"] = int(time.time())
    objects = [acme]
    for n, invoice_id in enumerate((MISSING, DUPLICATE, CHANGED), start=1):
        event = _invoice_event(invoice_id, f"RECON-000{n}")
        _post(stack, event)
        objects.append(event["data"]["object"])
    stack.stripe.add_invoices(account, objects)
    assert stack.drain()
    # The demo's partial refund of ACME-0001's payment, once the payment it traces is booked; the
    # stand-in holds its refund too.
    assert demo.send(stack, REFUND_FIXTURE).status_code == 200
    stack.stripe.add_objects(account, "refunds", _stripe_refunds())
    assert stack.drain()
    demo.alerts(stack)  # push's alerts, read out of the way
    return stack


def _classes(result: CliResult) -> set[tuple[str, str]]:
    return {(d["class"], d["source_id"]) for d in result.json()["differences"]}


def test_clean_then_tampered_then_repaired(synced: LocalStack, cli: Cli) -> None:
    """Proves the synced day reconciles clean (exit 0, no alert, equal counts and totals on the
    three sides); that a deleted ledger invoice, a duplicate carrying invoice-sync's marker and a
    changed amount are each found as their class (exit 3) with exactly one alert; that --repair
    re-queues the missing and the changed invoice, push puts them right, and the next run reports
    only the duplicate, which is a person's to void."""
    stack = synced
    clean = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert clean.code == 0, clean.err + clean.out
    data = clean.json()
    assert (data["status"], data["differences"], data["alerted"]) == ("clean", [], False)
    sides = data["summary"]["sides"]
    assert sides["source"]["counts"] == sides["ledger"]["counts"] == {"invoice": 4, "payment": 1, "refund": 1}
    assert sides["records"]["counts"]["refund"] == 1
    assert sides["source"]["invoice_totals"] == sides["ledger"]["invoice_totals"]
    assert _alerts(stack) == []

    with stack.sandbox._lock:  # type: ignore[attr-defined]
        invoices = _qbo_invoices(stack)
        del invoices[_ledger_id(stack, MISSING)]
        original = invoices[_ledger_id(stack, DUPLICATE)]
        extra = copy.deepcopy(original)
        extra["Id"] = str(max(int(i) for i in invoices) + 100)
        extra["DocNumber"] = f"{original['DocNumber']}-B"
        invoices[extra["Id"]] = extra
        changed = invoices[_ledger_id(stack, CHANGED)]
        changed["TotalAmt"] = Decimal(changed["TotalAmt"]) + Decimal("25.00")
        changed["Balance"] = Decimal(changed["Balance"]) + Decimal("25.00")

    found = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert found.code == 3, found.err
    assert _classes(found) == {
        ("missing_in_ledger", MISSING),
        ("duplicate_in_ledger", DUPLICATE),
        ("amount_differs", CHANGED),
    }
    (changed_row,) = [d for d in found.json()["differences"] if d["class"] == "amount_differs"]
    assert changed_row["difference"] == "25.00"
    alerts = _alerts(stack)
    assert len(alerts) == 1
    assert "3 difference(s)" in alerts[0]["subject"]
    assert "report.html" in alerts[0]["message"]

    repair = cli("reconcile", "--from", "today", "--to", "today", "--repair", "--json")
    assert repair.code == 3, repair.err
    assert repair.json()["repaired"]["queued"] >= 1
    assert stack.drain()
    demo.alerts(stack)
    _ledger_id(stack, MISSING)  # back in the ledger, exactly once

    after = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert after.code == 3, after.err
    # The missing invoice is back and the changed amount is put right; the duplicate is left for
    # a person to void (invoice-sync never deletes or voids in the ledger).
    assert _classes(after) == {("duplicate_in_ledger", DUPLICATE)}


def test_a_deleted_refund_document_is_missing_in_the_ledger(synced: LocalStack, cli: Cli) -> None:
    """Proves the demo's partial refund (162.38 of ACME-0001's charge) agrees on the three sides:
    Stripe's refunded total on the charge is the refund record's, and the ledger holds one
    RefundReceipt of the booked 162.38 with its marker; then that, with the RefundReceipt deleted
    from the ledger, the refund is missing_in_ledger with its booked amount (exit 3). The
    RefundReceipt is put back after, for the tests that follow."""
    stack = synced

    def refund_rows(result: CliResult) -> list[dict[str, Any]]:
        return [d for d in result.json()["differences"] if d["kind"] == "refund"]

    before = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert before.code in (0, 3), before.err
    assert refund_rows(before) == []
    assert before.json()["summary"]["sides"]["ledger"]["counts"]["refund"] == 1

    with stack.sandbox._lock:  # type: ignore[attr-defined]
        refunds = _qbo_refunds(stack)
        (receipt_id,) = [i for i, d in refunds.items() if REFUND in str(d.get("PrivateNote", ""))]
        receipt = refunds.pop(receipt_id)
    try:
        found = cli("reconcile", "--from", "today", "--to", "today", "--json")
    finally:
        with stack.sandbox._lock:  # type: ignore[attr-defined]
            _qbo_refunds(stack)[receipt_id] = receipt
    assert found.code == 3, found.err
    (row,) = refund_rows(found)
    assert (row["class"], row["source_id"], row["source_amount"]) == ("missing_in_ledger", REFUND, "162.38")
    assert receipt_id in row["detail"]
    demo.alerts(stack)  # this run's alert, read out of the way

    back = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert refund_rows(back) == []


def test_bad_window_and_unknown_connection_are_one_line(cli: Cli) -> None:
    """Proves a window that cannot be read or runs backwards exits 2 and an unknown connection
    exits 1, each with one line on stderr and no traceback."""
    bad = cli("reconcile", "--from", "2026-13-01", "--to", "today")
    assert (bad.code, bad.err.count("\n")) == (2, 1)
    assert "cannot read" in bad.err
    backwards = cli("reconcile", "--from", "today", "--to", "2026-01-01")
    assert (backwards.code, backwards.err.count("\n")) == (2, 1)
    assert "is after" in backwards.err
    unknown = cli("reconcile", "--from", "today", "--to", "today", "--connection", "nobody")
    assert (unknown.code, unknown.err.count("\n")) == (1, 1)
    assert "unknown connection" in unknown.err
    assert "Traceback" not in bad.err + backwards.err + unknown.err


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _png_colours(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct pixel rows) of an 8-bit RGB/RGBA PNG, read with zlib only."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, b"", b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            chunks += data
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    stride = width * (3 if colour == 2 else 4)
    raw = zlib.decompress(chunks)
    # Filtered scanlines: distinct (filter, bytes) rows tell a blank page (one row) from content.
    rows = {raw[y * (stride + 1) : (y + 1) * (stride + 1)] for y in range(height)}
    return width, height, len(rows)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (.ci/run installs it)"
)
def test_the_html_report_renders_in_headless_chromium(synced: LocalStack, cli: Cli, tmp_path: Path) -> None:
    """Proves the report.html written to S3 renders in headless Chromium from file:// (it loads
    nothing from the network): the screenshot is a real PNG of the asked size with content, not
    one colour, and the rendered DOM holds the status, the summary table and the differences."""
    result = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert result.code in (0, 3), result.err
    assert synced.resources is not None
    key = result.json()["location"].split("/", 3)[3] + "report.html"
    html = synced.client("s3").get_object(Bucket=synced.resources.archive_bucket, Key=key)["Body"].read()
    page = tmp_path / "report.html"
    page.write_bytes(html)
    shot = tmp_path / "report.png"
    common = [shutil.which("chromium") or "chromium", *CHROMIUM_FLAGS]
    subprocess.run(
        [
            *common,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={shot}",
            "--window-size=1280,900",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    png = shot.read_bytes()
    assert len(png) > 10_000
    width, height, rows = _png_colours(png)
    assert (width, height) == (1280, 900)
    assert rows > 50, "the screenshot is (nearly) one colour"
    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert '<table id="summary">' in dom
    assert '<table id="differences">' in dom
    assert 'id="status"' in dom
    assert "<svg" in dom
    assert result.json()["status"] in dom


def test_the_reconcile_lambda_on_the_local_stack_agrees_with_the_cli(synced: LocalStack, cli: Cli) -> None:
    """Proves the reconcile function, invoked as the schedule would with a named day, reads the
    same three sides on the local stack as the CLI (Stripe stand-in, moto, QBO sandbox) and comes
    to the same verdict and counts for the day."""
    # Imported only now, as the local stack imports its handlers: Powertools reads its settings
    # from the environment the stack has set by now.
    from invoice_sync.handlers import reconcile as reconcile_handler  # noqa: PLC0415

    by_cli = cli("reconcile", "--from", "today", "--to", "today", "--json")
    assert by_cli.code in (0, 3), by_cli.err
    today = by_cli.json()["window"]["from"]
    out = reconcile_handler.handler({"date": today}, LocalContext("reconcile"))
    (run,) = out["reconciled"]
    assert (run["connection_id"], run["date"], run["status"]) == ("acme", today, by_cli.json()["status"])
    assert synced.resources is not None
    key = f"reports/acme/{today}/report.json"
    body = synced.client("s3").get_object(Bucket=synced.resources.archive_bucket, Key=key)["Body"].read()
    assert json.loads(body)["summary"]["differences"] == by_cli.json()["summary"]["differences"]
