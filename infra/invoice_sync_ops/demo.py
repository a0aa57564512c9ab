"""``invoice-sync demo``: the skeleton end to end on the local stack, in a minute.

Sends signed Stripe events over HTTP (an invoice finalized, then paid; the same delivery again;
a partial refund of its payment; an invoice for a product nobody mapped), waits for push to drain
the queue, then shows the sync log, the documents in the ledger sandbox (QuickBooks, Xero or
FreshBooks) and the alerts raised.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from invoice_sync.models.money import Money
from invoice_sync.models.sync import SyncRecord
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.stack import LocalStack

EVENTS = Path(__file__).resolve().parents[2] / "tests" / "events" / "stripe"


@dataclass(frozen=True)
class Delivery:
    label: str
    fixture: str
    # Let what was sent so far reach the ledger first, as time would in real life.
    drain_before: bool = False


SCENARIO = (
    Delivery("invoice ACME-0001 finalized", "a1_invoice.finalized.current.json"),
    Delivery("invoice ACME-0001 paid", "a2_invoice.paid.current.json", drain_before=True),
    Delivery("the same paid event delivered again", "a2_invoice.paid.current.json"),
    Delivery("invoice.payment_succeeded for ACME-0001", "a3_invoice.payment_succeeded.current.json"),
    Delivery(
        "162.38 of ACME-0001's payment refunded", "g1_charge.refunded.partial.current.json", drain_before=True
    ),
    Delivery(
        "invoice GAMMA-0007 with an unmapped product", "c1_invoice.finalized.unmapped_product.current.json"
    ),
    Delivery("customer.created (not an invoice event)", "e2_customer.created.json"),
)


def send(stack: LocalStack, fixture: str, *, secret: str | None = None) -> httpx.Response:
    body = (EVENTS / fixture).read_bytes()
    header = signature_header(body, [secret or stack.company.webhook_secret], int(time.time()))
    return httpx.post(
        stack.webhook_url(),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def alerts(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.resources is not None
    sqs = stack.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=stack.resources.alerts_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            envelope = json.loads(message["Body"])
            found.append({"subject": envelope.get("Subject", ""), "message": envelope.get("Message", "")})
            sqs.delete_message(
                QueueUrl=stack.resources.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"]
            )


def sync_log(stack: LocalStack) -> list[SyncRecord]:
    assert stack.resources is not None
    store = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    return sorted(store.list(stack.company.connection_id), key=lambda r: (r.created_at is None, r.created_at))


def run(console: Console | None = None, ledger: str = "quickbooks") -> int:
    console = console or Console()
    with LocalStack(ledger=ledger) as stack:
        console.print(
            f"[bold]Local stack up[/]: AWS (moto) {stack.aws_endpoint}, "
            f"{stack.ledger.title} sandbox {stack.ledger_url}, webhooks {stack.webhook_url()}"
        )
        deliveries = Table(title="Webhook deliveries", show_lines=False)
        for column in ("event", "HTTP", "answer"):
            deliveries.add_column(column)
        for delivery in SCENARIO:
            if delivery.drain_before:
                stack.drain()
            response = send(stack, delivery.fixture)
            deliveries.add_row(delivery.label, str(response.status_code), response.text)
        forged = send(stack, "a1_invoice.finalized.current.json", secret="whsec_not_the_secret")  # noqa: S106
        deliveries.add_row("a forged signature", str(forged.status_code), forged.text)
        console.print(deliveries)
        if not stack.drain():
            console.print("[red]the sync queue did not drain in time[/]")
            return 1

        log = Table(title="Sync log (SyncState table)")
        for column in ("kind", "source", "number", "status", "ledger id", "total", "mapping v", "note"):
            log.add_column(column)
        for record in sync_log(stack):
            total = (
                str(Money(minor=record.source_total, currency=record.currency))
                if record.source_total is not None and record.currency
                else ""
            )
            log.add_row(
                record.kind,
                record.source_id,
                record.source_number or "",
                record.status.value,
                record.ledger_id or "",
                total,
                str(record.mapping_version or ""),
                record.last_error or "",
            )
        console.print(log)

        documents = Table(title=f"{stack.ledger.title} sandbox documents")
        for column in ("type", "id", "number / reference", "customer", "total", "open"):
            documents.add_column(column)
        for row in stack.ledger.rows(stack.sandbox):
            documents.add_row(*row)
        console.print(documents)

        raised = alerts(stack)
        console.print(f"[bold]Alerts on the SNS topic[/]: {len(raised)}")
        for alert in raised:
            console.print(f"  [yellow]{alert['subject']}[/]")
            console.print("    " + alert["message"].split("\n\n")[0].replace("\n", "\n    "))
        counts = {
            kind: len(stack.ledger.documents(stack.sandbox, kind))
            for kind in ("invoice", "payment", "refund")
        }
        # FreshBooks' API cannot pay a credit note out: that refund's payout is parked and alerted.
        expected_alerts = 2 if stack.ledger.kind == "freshbooks" else 1
        ok = counts == {"invoice": 1, "payment": 1, "refund": 1} and len(raised) == expected_alerts
        alerts_said = "one alert" if expected_alerts == 1 else f"{expected_alerts} alerts"
        console.print(
            f"[green]demo finished: one invoice, one payment, one refund, {alerts_said}[/]"
            if ok
            else f"[red]demo finished with unexpected results: {counts}, {len(raised)} alerts[/]"
        )
        return 0 if ok else 1
