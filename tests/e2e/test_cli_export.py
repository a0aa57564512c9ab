"""``invoice-sync export`` on the local stack: Stripe webhooks over HTTP into the QuickBooks
sandbox, then the day exported to moto's S3 and reported on the alerts topic, as an operator
runs it; and the one-line answers to a bad date, a future date and an unknown connection."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from invoice_sync_ops import demo
from invoice_sync_ops.local.stack import LocalStack
from tests.e2e.conftest import CliResult

Cli = Callable[..., CliResult]


def test_export_today_writes_the_files_and_sends_the_report(stack: LocalStack, cli: Cli) -> None:
    """Proves the demo's invoice, payment and unmapped invoice come back from S3 as CSV rows, a
    workbook that opens (its sheets' XML holds the rows), and a manifest, with --json giving the
    files' keys and the report's subject, and the report landing on the topic."""
    for fixture in (
        "a1_invoice.finalized.current.json",
        "a2_invoice.paid.current.json",
        "c1_invoice.finalized.unmapped_product.current.json",
    ):
        assert demo.send(stack, fixture).status_code == 200
    assert stack.drain()
    demo.alerts(stack)  # push's alerts, read out of the way
    result = cli("export", "--date", "today", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["report"]["sent"] is True
    assert set(data["files"]) >= {"invoices.csv", "payments.csv", "export.xlsx", "manifest.json"}
    s3 = stack.client("s3")
    assert stack.resources is not None
    bucket = stack.resources.archive_bucket

    def read(name: str) -> bytes:
        body: bytes = s3.get_object(Bucket=bucket, Key=data["files"][name]["key"])["Body"].read()
        return body

    invoices = {row["number"]: row for row in csv.DictReader(io.StringIO(read("invoices.csv").decode()))}
    assert invoices["ACME-0001"]["total"] == "1677.86"
    assert invoices["ACME-0001"]["sync_status"] == "synced"
    assert invoices["GAMMA-0007"]["parked_reason"] == "mapping missing"
    payments = list(csv.DictReader(io.StringIO(read("payments.csv").decode())))
    assert [p["invoice_number"] for p in payments] == ["ACME-0001"]
    with zipfile.ZipFile(io.BytesIO(read("export.xlsx"))) as book:
        assert book.testzip() is None
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        assert "ACME-0001" in sheet
        assert "GAMMA-0007" in sheet
    alerts = demo.alerts(stack)
    report = [a for a in alerts if a["subject"] == data["report"]["subject"]]
    assert len(report) == 1
    assert "Reconciliation: not run yet" in report[0]["message"]
    assert re.search(r"export\.xlsx\?\S*Signature", report[0]["message"])


def test_bad_dates_and_unknown_connections_are_one_line(cli: Cli) -> None:
    """Proves a date that cannot be read exits 2, a future date and an unknown connection exit 1,
    each with one line on stderr and no traceback."""
    bad = cli("export", "--date", "25/11/2026")
    assert (bad.code, bad.err.count("\n")) == (2, 1)
    assert "cannot read" in bad.err
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    future = cli("export", "--date", tomorrow)
    assert (future.code, future.err.count("\n")) == (1, 1)
    assert "in the future" in future.err
    unknown = cli("export", "--date", "2026-01-01", "--connection", "nobody")
    assert (unknown.code, unknown.err.count("\n")) == (1, 1)
    assert "unknown connection" in unknown.err
    assert "Traceback" not in bad.err + future.err + unknown.err
