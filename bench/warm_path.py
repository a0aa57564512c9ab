"""Warm path of a webhook and of mapping, AWS calls stubbed, one core.

1. Intake per webhook. ``bench/intake_warm.py`` measures the use case (``IntakeService.accept``:
   signature, parse, snapshot and its serialisation); it is run as it is, in a subprocess, and its
   figures are printed here. Then the whole Lambda handler is timed in this process: the API
   Gateway HTTP event through ``webhook_intake.handler`` (Powertools' resolver, the Lambda-context
   logger, the metrics flush, the JSON response) with ``bootstrap.intake`` returning the same
   stubbed service, beside a bare ``json.loads`` of the body. Target: under 2 ms per webhook.
   The log lines and EMF metrics Lambda would send to CloudWatch are written to /dev/null.

2. Mapping throughput: generated invoices of many lines through ``mapping.resolver.resolve``
   and each ledger's invoice payload builder (QBO ``invoice_payload``, Xero ``invoice_body``,
   FreshBooks ``invoice_body``), in invoice lines per second; beside ``json.dumps`` of the
   payloads built (the serialisation that follows on the way to the ledger) in the same run.
   Target: at least 5,000 lines per second per core (this is one thread).

    .venv/bin/python bench/warm_path.py [--iterations 5000] [--invoices 200] [--lines 100]

Last line: ``mapping_lines_per_second=<n> lines/s`` (the slowest ledger).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from intake_warm import FIXTURE, SECRET, stubbed_service  # the intake bench's stand-ins, not a copy
from invoice_sync import bootstrap
from invoice_sync.handlers import webhook_intake
from invoice_sync.ledgers.freshbooks import payloads as freshbooks
from invoice_sync.ledgers.port import InvoiceDraft
from invoice_sync.ledgers.quickbooks import payloads as quickbooks
from invoice_sync.ledgers.xero import payloads as xero
from invoice_sync.mapping.resolver import resolve
from invoice_sync.models.documents import Customer, Invoice, InvoiceStatus, LineItem, LineTax
from invoice_sync.models.mapping import Connection, MappingRule, Mappings, RuleKind
from invoice_sync.sources.stripe import signature_header

HERE = Path(__file__).resolve().parent
WEBHOOK_TARGET_MS = 2.0
LINES_TARGET = 5_000
PRODUCTS = 40
RATES = [("txr_std", 20), ("txr_low", 10), ("txr_zero", 0)]


class _Context:
    """What Powertools reads from a Lambda context."""

    function_name = "bench-WebhookIntakeFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-WebhookIntakeFunction"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def http_event(body: bytes, signature: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for ``POST /webhooks/stripe/bench``."""
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}/{connection}",
        "rawPath": "/webhooks/stripe/bench",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature,
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "content-length": str(len(body)),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": "POST",
                "path": "/webhooks/stripe/bench",
                "protocol": "HTTP/1.1",
                "sourceIp": "3.18.12.63",
                "userAgent": "Stripe/1.0",
            },
            "requestId": "bench-request",
            "routeKey": "POST /webhooks/{source}/{connection}",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000,
        },
        "pathParameters": {"source": "stripe", "connection": "bench"},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


@contextlib.contextmanager
def stdout_discarded() -> Iterator[None]:
    """Point fd 1 at /dev/null: Powertools' log handler and the EMF print both write there."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def intake_use_case(iterations: int) -> list[str]:
    """bench/intake_warm.py as it is: its figures, one per line."""
    out = subprocess.run(  # noqa: S603 - this interpreter, the sibling bench
        [sys.executable, str(HERE / "intake_warm.py"), "--iterations", str(iterations)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if "=" in line]


def intake_handler(iterations: int) -> tuple[float, float]:
    """(seconds per webhook through the Lambda handler, seconds per bare json.loads)."""
    body = FIXTURE.read_bytes()
    now = int(time.time())
    service = stubbed_service(now)
    wiring: Any = bootstrap
    wiring.intake = lambda: service  # the handler's one service, stubbed
    event = http_event(body, signature_header(body, [SECRET], now))
    context = _Context()
    with stdout_discarded():
        for _ in range(200):  # warm up
            response = webhook_intake.handler(event, context)
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"])["outcome"] == "queued", response
        start = time.perf_counter()
        for _ in range(iterations):
            json.loads(body)
        floor = (time.perf_counter() - start) / iterations
        start = time.perf_counter()
        for _ in range(iterations):
            webhook_intake.handler(event, context)
        per_webhook = (time.perf_counter() - start) / iterations
    return per_webhook, floor


def invoices(count: int, lines: int, currency: str = "USD") -> list[Invoice]:
    """Invoices of ``lines`` lines each: products of a catalogue, 20%, 10% and 0% tax, amounts in
    whole multiples so every ledger's percent and unit-price rules hold (nothing is refused)."""
    made = []
    for n in range(count):
        items = []
        tax_total = 0
        for i in range(lines):
            rate_id, percent = RATES[(n + i) % len(RATES)]
            quantity = 1 + (i % 7)
            amount = quantity * (1_000 + 100 * ((n * 31 + i) % 50))
            tax = amount * percent // 100
            tax_total += tax
            items.append(
                LineItem(
                    source_id=f"il_{n}_{i}",
                    description=f"Product {(n + i) % PRODUCTS}, seat tier {i % 7}",
                    product_id=f"prod_{(n + i) % PRODUCTS}",
                    quantity=quantity,
                    amount=amount,
                    taxes=(LineTax(rate_id=rate_id, amount=tax),) if percent else (),
                )
            )
        subtotal = sum(item.amount for item in items)
        made.append(
            Invoice(
                source_id=f"in_bench_{n}",
                number=f"BENCH-{n:05d}",
                currency=currency,
                customer=Customer(source_id=f"cus_{n % 50}", name=f"Customer {n % 50}"),
                issued_on=date(2026, 12, 1),
                due_on=date(2026, 12, 31),
                lines=tuple(items),
                subtotal=subtotal,
                tax=tax_total,
                total=subtotal + tax_total,
                status=InvoiceStatus.OPEN,
            )
        )
    return made


def mappings(ledger: str) -> Mappings:
    rules = [
        MappingRule(
            kind=RuleKind.PRODUCT,
            source_value=f"prod_{p}",
            ledger_id=str(100 + p),
            ledger_account="200" if ledger == "xero" else None,
        )
        for p in range(PRODUCTS)
    ]
    rules += [
        MappingRule(kind=RuleKind.TAX_RATE, source_value=rate_id, ledger_id=f"TAX{percent}")
        for rate_id, percent in RATES
    ]
    connection = Connection(connection_id="bench", ledger=ledger, tenant_id="1")
    return Mappings(connection=connection, rules=tuple(rules))


BUILDERS: dict[str, Callable[[InvoiceDraft], dict[str, Any]]] = {
    "quickbooks": quickbooks.invoice_payload,
    "xero": xero.invoice_body,
    "freshbooks": freshbooks.invoice_body,
}


def mapping_throughput(
    ledger: str, batch: list[Invoice], rounds: int
) -> tuple[float, float, list[dict[str, Any]]]:
    """(lines per second through resolve + builder, lines per second of json.dumps, payloads)."""
    rules = mappings(ledger)
    build = BUILDERS[ledger]
    customer = MappingRule(kind=RuleKind.CUSTOMER, source_value="cus", ledger_id="58")
    lines = sum(len(invoice.lines) for invoice in batch) * rounds
    payloads = [build(resolve(invoice, rules, customer).draft) for invoice in batch]  # warm up
    start = time.perf_counter()
    for _ in range(rounds):
        payloads = [build(resolve(invoice, rules, customer).draft) for invoice in batch]
    mapped = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        for payload in payloads:
            json.dumps(payload, default=str)
    dumped = time.perf_counter() - start
    return lines / mapped, lines / dumped, payloads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--invoices", type=int, default=200)
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print("intake, use case (bench/intake_warm.py):")
    for line in intake_use_case(args.iterations):
        print(f"  {line}")
    per_webhook, floor = intake_handler(args.iterations)
    verdict = "meets" if per_webhook * 1000 < WEBHOOK_TARGET_MS else "MISSES"
    print(
        f"intake, whole Lambda handler: {per_webhook * 1000:.3f} ms per webhook, "
        f"{per_webhook / floor:.1f} x a bare json.loads ({floor * 1000:.3f} ms) "
        f"({verdict} the {WEBHOOK_TARGET_MS:g} ms target)"
    )

    batch = invoices(args.invoices, args.lines)
    print(f"mapping: {args.invoices} invoices x {args.lines} lines, {args.rounds} rounds, one thread")
    slowest = float("inf")
    for ledger in BUILDERS:
        rate, dump_rate, payloads = mapping_throughput(ledger, batch, args.rounds)
        slowest = min(slowest, rate)
        verdict = "meets" if rate >= LINES_TARGET else "MISSES"
        size = len(json.dumps(payloads[0], default=str))
        print(
            f"  resolve + {ledger:<10} {rate:9,.0f} lines/s; json.dumps of the payloads {dump_rate:9,.0f} "
            f"lines/s ({dump_rate / rate:.2f} x faster); {size:,} bytes per {args.lines}-line payload "
            f"({verdict} {LINES_TARGET:,} lines/s)"
        )
    print(f"intake_handler_per_webhook={per_webhook * 1000:.3f} ms")
    print(f"mapping_lines_per_second={slowest:.0f} lines/s")


if __name__ == "__main__":
    main()
