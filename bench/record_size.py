"""What a SyncState record costs to write: each kind's item size and write units, as push writes
them, in the stored form (``_to_item``, compact) and in the form written before issue 9 (every
attribute plain, ``compact=False``).

The records are push's own: for each invoice size, a fresh moto world (tables from template.yaml)
and the QuickBooks sandbox over HTTP, as ``tests/integration`` runs them; the Stripe fixtures
``a1`` (finalized), ``a2`` (paid), ``f1`` (a credit note on its first line) and ``g1`` (a partial
refund) go through ``webhook_intake.handler`` and ``push.handler``. The invoice gets ``N`` lines:
the fixture's two, then generated ones with Stripe-shaped random ids (``il_`` + 24 characters),
varied descriptions and amounts, 8.25 % tax, on the two mapped products; its totals and payment
are adjusted so they add up.

Every ``SyncStateStore.save`` is watched: the item before and after it (read apart, uncounted).
Write units as DynamoDB bills them (``bench/cost_meter.py``): 1 KB a unit on the larger of the
before and after image, plus each index the item enters, leaves or changes in, at its projection
(``by_day`` keys only, ``by_status`` everything). The "before" column re-encodes the same records
(both images) in the old form.

    .venv/bin/python bench/record_size.py [--lines 2,10,30,100]

Last line: ``record_write_units_per_invoice=<n> WRU`` (the stored form, 2-line invoice: the
invoice, its payment and 10 % of a credit note and of a refund, every save of each).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import string
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from cost_meter import Index, TableShape, index_writes, item_size, write_units
from invoice_sync import bootstrap
from invoice_sync.handlers import push, webhook_intake
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store import sync_state
from invoice_sync.store.sync_state import SyncStateStore, _from_item, _to_item
from invoice_sync_ops.local.event_source import SqsEventSource
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.local.stack import SECRETS_PREFIX, DemoCompany, seed_demo
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.template import create_stack_resources

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "events" / "stripe"
REGION = "us-east-1"
KINDS = ("invoice", "payment", "credit_note", "refund")
DESCRIPTIONS = ("Hosting", "Support plan", "API calls", "Storage", "Seat licence", "Onboarding")
MONTHS = ("January", "February", "March", "April", "May", "June")


def _fixture(prefix: str) -> dict[str, Any]:
    (path,) = FIXTURES.glob(f"{prefix}_*.json")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _stripe_id(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))


def with_lines(document: dict[str, Any], lines: int, seed: int = 9) -> dict[str, Any]:
    """The invoice event with ``lines`` lines (the fixture's first two kept), its totals, amount
    due, paid or remaining and its payment adjusted to the added lines."""
    document = copy.deepcopy(document)
    invoice = document["data"]["object"]
    rng = random.Random(seed)  # the same lines for the finalized and the paid snapshot
    template = invoice["lines"]["data"][1]
    added_amount = added_tax = 0
    for n in range(2, lines):
        line = copy.deepcopy(template)
        amount = rng.randrange(500, 250_000)
        tax = (amount * 825 + 5000) // 10000
        line["id"] = _stripe_id("il_1Q", rng)
        line["description"] = f"{rng.choice(DESCRIPTIONS)} - {rng.choice(MONTHS)} ({n})"
        line["amount"] = line["subtotal"] = amount
        line["quantity"] = 1
        line["parent"]["invoice_item_details"]["invoice_item"] = _stripe_id("ii_1Q", rng)
        line["pricing"]["price_details"]["product"] = rng.choice(("prod_Hosting", "prod_Consulting"))
        line["pricing"]["unit_amount_decimal"] = str(amount)
        line["taxes"][0]["amount"] = tax
        line["taxes"][0]["taxable_amount"] = amount
        invoice["lines"]["data"].append(line)
        added_amount += amount
        added_tax += tax
    if "total_count" in invoice["lines"]:
        invoice["lines"]["total_count"] = len(invoice["lines"]["data"])
    added = added_amount + added_tax
    for name in ("subtotal", "subtotal_excluding_tax", "total_excluding_tax"):
        invoice[name] += added_amount
    invoice["total"] += added
    invoice["total_taxes"][0]["amount"] += added_tax
    invoice["total_taxes"][0]["taxable_amount"] += added_amount
    for name in ("amount_due", "amount_paid", "amount_remaining"):
        if invoice.get(name):
            invoice[name] += added
    for payment in (invoice.get("payments") or {}).get("data", []):
        for name in ("amount_paid", "amount_requested"):
            if payment.get(name):
                payment[name] += added
    return document


class Saves:
    """Every record save: (kind, item before, item after), the images read apart."""

    def __init__(self, lookup: Any, table: str) -> None:
        self.lookup, self.table = lookup, table
        self.seen: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []

    def watch(self, save: Callable[..., int]) -> Callable[..., int]:
        def watched(store: SyncStateStore, record: Any, revision: int) -> int:
            key = sync_state._record_key(record.connection_id, record.kind, record.source_id)
            before = self.lookup.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            new_revision = save(store, record, revision)
            after = self.lookup.get_item(TableName=self.table, Key=key, ConsistentRead=True)["Item"]
            self.seen.append((record.kind, before, after))
            return new_revision

        return watched


def _plain(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The same record in the form written before issue 9."""
    if item is None:
        return None
    record, revision = _from_item(item)
    return _to_item(record, revision, compact=False)


def run(
    lines: int,
) -> tuple[dict[str, dict[str, int]], list[tuple[str, dict[str, Any] | None, dict[str, Any]]], TableShape]:
    """Push's records for one invoice of ``lines`` lines, its payment, credit note and refund: the
    final item of each kind, and every save."""
    sandbox = QuickBooksSandbox()
    sandbox.start()
    original_save = SyncStateStore.save
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = REGION
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            session = boto3.session.Session(region_name=REGION)
            resources = create_stack_resources(session)
            quickbooks = LEDGERS["quickbooks"]
            os.environ.update(
                {
                    **resources.environment(),
                    "SECRETS_PREFIX": SECRETS_PREFIX,
                    "QUICKBOOKS_API_BASE": sandbox.base_url,
                    "QUICKBOOKS_TOKEN_URL": f"{sandbox.base_url}/oauth2/v1/tokens/bearer",
                    "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
                    "POWERTOOLS_SERVICE_NAME": "invoice-sync",
                    "POWERTOOLS_LOG_LEVEL": "ERROR",
                    "SECRET_CACHE_SECONDS": "0",
                    "REFUND_SETTLE_SECONDS": "0",
                }
            )
            bootstrap.reset()
            company = DemoCompany()
            seed_demo(
                resources, quickbooks, sandbox, company, lambda s: session.client(s, region_name=REGION)
            )
            lookup = session.client("dynamodb", region_name=REGION)
            described = lookup.describe_table(TableName=resources.sync_table)["Table"]
            shape = TableShape(
                keys=tuple(k["AttributeName"] for k in described["KeySchema"]),
                indexes=tuple(
                    Index(
                        i["IndexName"],
                        tuple(k["AttributeName"] for k in i["KeySchema"]),
                        i["Projection"]["ProjectionType"],
                        tuple(i["Projection"].get("NonKeyAttributes", [])),
                    )
                    for i in described.get("GlobalSecondaryIndexes", [])
                ),
            )
            saves = Saves(lookup, resources.sync_table)
            SyncStateStore.save = saves.watch(original_save)  # type: ignore[method-assign]
            sqs = session.client("sqs", region_name=REGION)
            source = SqsEventSource(
                sqs, resources.sync_queue_url, push.handler, wait_seconds=0, retry_seconds=0
            )
            events = [with_lines(_fixture("a1"), lines), with_lines(_fixture("a2"), lines)]
            events += [_fixture("f1"), _fixture("g1")]
            for document in events:
                body = json.dumps(document).encode()
                headers = {
                    "content-type": "application/json",
                    "stripe-signature": signature_header(body, [company.webhook_secret], int(time.time())),
                }
                path = f"/webhooks/stripe/{company.connection_id}"
                event = http_api_event(
                    "POST",
                    path,
                    "POST /webhooks/{source}/{connection}",
                    {"source": "stripe", "connection": company.connection_id},
                    headers,
                    body,
                )
                response = webhook_intake.handler(event, LocalContext("webhook-intake"))
                if response["statusCode"] != 200:
                    raise SystemExit(f"intake refused {document['type']}: {response['body']}")
                for _ in range(10):
                    if source.poll_once() == 0:
                        break
                if source.failures:
                    raise SystemExit(f"push failed on {document['type']}")
            finals: dict[str, dict[str, Any]] = {}
            for page in lookup.get_paginator("scan").paginate(TableName=resources.sync_table):
                for item in page["Items"]:
                    if item["pk"]["S"].startswith("CONN#"):
                        record, _ = _from_item(item)
                        if record.status.value != "synced":
                            raise SystemExit(f"{record.kind} {record.source_id} is {record.status.value}")
                        finals[record.kind] = item
            bootstrap.reset()
    finally:
        SyncStateStore.save = original_save  # type: ignore[method-assign]
        sandbox.stop()
    sizes = {}
    for kind, item in finals.items():
        plain = _plain(item)
        sizes[kind] = {"before": item_size(plain), "after": item_size(item)}
    return sizes, saves.seen, shape


def units(shape: TableShape, before: dict[str, Any] | None, after: dict[str, Any]) -> float:
    return write_units(max(item_size(before), item_size(after))) + index_writes(shape, before, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", default="2,10,30,100", help="invoice line counts, comma-separated")
    args = parser.parse_args()
    counts = [int(n) for n in args.lines.split(",")]
    per_invoice = {}
    print("item sizes (bytes, DynamoDB's rules) of the final record, old form -> stored form:")
    print(f"{'lines':>5}  " + "  ".join(f"{kind:>18}" for kind in KINDS))
    write_rows = []
    for lines in counts:
        sys.stdout.flush()
        saved = os.dup(1)
        with open(os.devnull, "w") as quiet:
            os.dup2(quiet.fileno(), 1)  # the functions' log lines and metrics
            try:
                sizes, seen, shape = run(lines)
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
        print(
            f"{lines:>5}  "
            + "  ".join(
                f"{sizes[k]['before']:>8} -> {sizes[k]['after']:>6}" if k in sizes else f"{'-':>18}"
                for k in KINDS
            )
        )
        tally: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for kind, before, after in seen:
            tally[kind][0] += 1
            tally[kind][1] += units(shape, _plain(before), _plain(after) or after)
            tally[kind][2] += units(shape, before, after)
        write_rows.append((lines, dict(tally)))
        # Per invoice as the cost bench counts it: every invoice paid, 10 % credited and refunded.
        share = {"invoice": 1.0, "payment": 1.0, "credit_note": 0.1, "refund": 0.1}
        per_invoice[lines] = (
            sum(share[k] * t[1] for k, t in tally.items() if k in share),
            sum(share[k] * t[2] for k, t in tally.items() if k in share),
        )
    print("\nwrite units over every save of each record (table + indexes), old form -> stored form:")
    for lines, tally in write_rows:
        cells = "  ".join(
            f"{k} {int(tally[k][0])} saves {tally[k][1]:g} -> {tally[k][2]:g}" for k in KINDS if k in tally
        )
        print(f"{lines:>5} lines: {cells}")
        old, new = per_invoice[lines]
        print(
            f"{'':>13}per invoice (1 invoice + 1 payment + 0.1 credit note + 0.1 refund): "
            f"{old:.2f} -> {new:.2f} WRU"
        )
    first = counts[0]
    sys.stdout.flush()
    print(f"record_write_units_per_invoice={per_invoice[first][1]:.2f} WRU")


if __name__ == "__main__":
    main()
