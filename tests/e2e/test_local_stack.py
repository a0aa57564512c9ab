"""The skeleton end to end over HTTP: signed Stripe webhooks in, QuickBooks documents out."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from invoice_sync.models.sync import SyncStatus
from invoice_sync.sources.stripe import signature_header
from invoice_sync_ops import demo
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.local.stack import DemoCompany, LocalStack


def _documents(stack: LocalStack, entity: str) -> list[dict[str, object]]:
    """Read over the sandbox's own HTTP control API, as another process would."""
    response = httpx.get(f"{stack.ledger_url}/_sandbox/companies/{stack.ledger.tenant_id}/{entity}")
    response.raise_for_status()
    documents: list[dict[str, object]] = response.json()
    return documents


def test_invoice_and_payment_arrive_in_quickbooks_exactly_once(stack: LocalStack) -> None:
    """Given finalized, paid, a duplicate delivery and payment_succeeded posted over HTTP, when the
    event source drains the queue, then the sandbox (read over its HTTP API) holds one invoice and
    one payment for the source total, and the sync log says synced."""
    answers = [
        demo.send(stack, f).json()["outcome"]
        for f in (
            "a1_invoice.finalized.current.json",
            "a2_invoice.paid.current.json",
            "a2_invoice.paid.current.json",
            "a3_invoice.payment_succeeded.current.json",
        )
    ]
    assert answers == ["queued", "queued", "queued", "queued"]  # push drops the duplicate
    assert stack.drain()
    invoices = [d for d in _documents(stack, "Invoice") if d["DocNumber"] == "ACME-0001"]
    assert len(invoices) == 1
    assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("1677.86")
    assert Decimal(str(invoices[0]["Balance"])) == Decimal("0")
    payments = [p for p in _documents(stack, "Payment") if p["PaymentRefNum"] == "inpay_1QaAcmePay0001"[-21:]]
    assert len(payments) == 1
    log = {r.source_id: r for r in demo.sync_log(stack)}
    assert log["in_1QaCurrentAcme01"].status is SyncStatus.SYNCED
    assert log["inpay_1QaAcmePay0001"].status is SyncStatus.SYNCED


def test_unmapped_product_is_parked_and_alerted(stack: LocalStack) -> None:
    """Given an invoice for an unmapped product, then it is parked with the product named and one
    e-mail-shaped alert reaches the SNS topic (read through its SQS subscription)."""
    assert demo.send(stack, "c1_invoice.finalized.unmapped_product.current.json").status_code == 200
    assert stack.drain()
    log = {r.source_id: r for r in demo.sync_log(stack)}
    assert log["in_1QcUnmapped01"].status is SyncStatus.NEEDS_MAPPING
    alerts = demo.alerts(stack)
    assert [a["subject"] for a in alerts] == ["invoice-sync: mapping missing (GAMMA-0007)"]
    assert "prod_Mystery" in alerts[0]["message"]


def test_http_statuses_for_bad_requests(stack: LocalStack) -> None:
    """Over real HTTP: forged signature 401, unknown connection 404, malformed JSON 400, oversized
    413, unknown route 404; each with a JSON reason and no stack trace."""
    body = b'{"id": "evt_x", "type": "invoice.paid"'
    signed = {"Stripe-Signature": signature_header(body, [stack.company.webhook_secret], int(time.time()))}
    cases = {
        "forged": httpx.post(
            stack.webhook_url(),
            content=b"{}",
            headers={"Stripe-Signature": signature_header(b"{}", ["whsec_forged"], int(time.time()))},
        ),
        "unknown connection": httpx.post(
            stack.webhook_url(connection_id="ghost"), content=body, headers=signed
        ),
        "malformed": httpx.post(stack.webhook_url(), content=body, headers=signed),
        "oversized": httpx.post(stack.webhook_url(), content=b"x" * 300_000, headers=signed),
        "no route": httpx.post(f"{stack.api_url}/webhooks/stripe", content=body),
    }
    statuses = {name: response.status_code for name, response in cases.items()}
    assert statuses == {
        "forged": 401,
        "unknown connection": 404,
        "malformed": 400,
        "oversized": 413,
        "no route": 404,
    }
    for response in cases.values():
        assert "Traceback" not in response.text
        json.loads(response.text)


@pytest.mark.parametrize("ledger", ["quickbooks", "xero", "freshbooks"])
def test_demo_command_runs_and_exits_zero(ledger: str) -> None:
    """`invoice-sync demo --ledger L` (what `make demo LEDGER=L` runs) starts its own stack, prints
    the sync log, the ledger sandbox's documents (a refund among them) and the alerts (FreshBooks
    adds one: its API cannot pay the refund out), exits 0, and leaves no server behind."""
    result = subprocess.run(
        [sys.executable, "-m", "invoice_sync_ops.cli", "demo", "--ledger", ledger],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "Sync log",
        f"{LEDGERS[ledger].title} sandbox documents",
        "ACME-0001",
        "mapping missing (GAMMA-0007)",
        "demo finished: one invoice, one payment, one refund, "
        + ("2 alerts" if ledger == "freshbooks" else "one alert"),
    ):
        assert expected in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    ports = [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", result.stdout)]
    assert len(ports) >= 3  # moto, the ledger sandbox, the HTTP API
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_local_up_serves_until_terminated(tmp_path: Path) -> None:
    """`invoice-sync local up` prints its endpoints, syncs a webhook posted to it, and stops cleanly
    on SIGTERM with exit code 0. Its target file goes to this test's own runtime directory, so a
    `local up` someone is using on this machine keeps its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "invoice_sync_ops.cli", "local", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        # Lines arrive through a reader thread, so a child that stalls fails the test at the
        # deadline instead of blocking make test forever.
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True
        )
        reader.start()
        endpoints: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while "Stripe webhooks" not in endpoints and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                break
            for label in ("ledger sandbox", "Stripe webhooks"):
                if line.strip().startswith(label):
                    endpoints[label] = line.split()[-1]
        webhook, sandbox = endpoints["Stripe webhooks"], endpoints["ledger sandbox"]
        body = (demo.EVENTS / "d3_invoice.finalized.jpy.current.json").read_bytes()
        header = signature_header(body, [DemoCompany().webhook_secret], int(time.time()))
        assert httpx.post(webhook, content=body, headers={"Stripe-Signature": header}).status_code == 200
        realm = LEDGERS["quickbooks"].tenant_id
        invoices: list[dict[str, object]] = []
        while not invoices and time.monotonic() < deadline:
            invoices = httpx.get(f"{sandbox}/_sandbox/companies/{realm}/Invoice").json()
            time.sleep(0.2)
        assert [i["DocNumber"] for i in invoices] == ["JP-0001"]
        assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("12000")
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_local_up_with_payments_back_prints_the_ledger_webhook_route(tmp_path: Path) -> None:
    """`invoice-sync local up --payments-back` runs the payments-back worker and prints the ledger
    webhook route and its key, the connection's own; it stops cleanly on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "invoice_sync_ops.cli", "local", "up", "--payments-back"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True
        )
        reader.start()
        shown: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while "CLI target" not in shown and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                break
            for label in ("ledger webhooks", "ledger webhook key", "CLI target"):
                if line.strip().startswith(label + " "):
                    shown[label] = line.split()[len(label.split())]
        assert shown["ledger webhooks"].endswith("/ledger-webhooks/quickbooks/acme"), shown
        assert shown["ledger webhook key"] == DemoCompany().ledger_webhook_key
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
