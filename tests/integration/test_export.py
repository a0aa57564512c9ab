"""The nightly export on moto in-process: Stripe webhooks through intake and push into the
QuickBooks sandbox, then the day exported to S3 and reported on the alerts topic, as the
nightly_export Lambda does it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import nightly_export
from invoice_sync.models.sync import SyncRecord, SyncStatus, utcnow
from invoice_sync.settings import get_settings
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.daily_report import Outcome
from invoice_sync.sync.export import ExportFailed
from invoice_sync_ops.local.lambda_runtime import LocalContext
from tests.integration.conftest import Harness


def _today() -> date:
    return utcnow().date()


def _prefix(harness: Harness, day: date) -> str:
    return f"exports/{harness.company.connection_id}/{day:%Y/%m/%d}/"


def _objects(harness: Harness, prefix: str) -> dict[str, bytes]:
    s3 = harness.client("s3")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=harness.resources.archive_bucket, Prefix=prefix).get(
            "Contents", []
        )
    ]
    return {
        key.removeprefix(prefix): s3.get_object(Bucket=harness.resources.archive_bucket, Key=key)[
            "Body"
        ].read()
        for key in keys
    }


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _export(harness: Harness, s3: Any | None = None) -> Any:
    exporter, report = bootstrap.build_export(
        get_settings(),
        state=SyncStateStore(harness.resources.sync_table, harness.client("dynamodb")),
        s3_client=s3 or harness.client("s3"),
        alerts=AlertPublisher(harness.resources.alerts_topic_arn, harness.client("sns")),
    )
    return exporter, report


@pytest.fixture
def synced_day(harness: Harness) -> Harness:
    """ACME-0001 finalized and paid (an invoice and a payment in QBO), part of it refunded,
    GAMMA-0007 parked for an unmapped product, a JPY invoice."""
    for prefix in ("a1", "a2", "c1", "d3", "g1"):
        status, body = harness.deliver(prefix)
        assert status == 200, body
    harness.drain()
    harness.alerts()  # push's own alerts (the unmapped product), read out of the way
    harness.alerts_seen.clear()
    return harness


def test_a_pushed_day_exports_its_rows_and_reports(synced_day: Harness) -> None:
    """Proves records push wrote (with their export summaries) come out of S3 as rows with dates,
    customer, exact amounts in each currency's decimals, ledger ids and lines with their ledger
    item, the parked invoice with its reason, import files adding up to the invoice totals, a
    manifest whose hashes match, and a daily report on the topic with presigned links."""
    harness = synced_day
    exporter, report = _export(harness)
    result = exporter.export(harness.company.connection_id, _today())
    files = _objects(harness, _prefix(harness, _today()))
    assert set(files) >= {
        "invoices.csv",
        "invoice_lines.csv",
        "payments.csv",
        "refunds.csv",
        "export.xlsx",
        "manifest.json",
        "xero_sales_invoices.csv",
        "quickbooks_invoices.csv",
    }
    invoices = {row["number"]: row for row in _csv(files["invoices.csv"])}
    acme = invoices["ACME-0001"]
    assert (acme["total"], acme["currency"], acme["sync_status"]) == ("1677.86", "USD", "synced")
    assert acme["issued_on"] and acme["customer_name"] and acme["ledger_id"]
    assert acme["mapping_version"] == "1"
    gamma = invoices["GAMMA-0007"]
    assert (gamma["sync_status"], gamma["parked_reason"]) == ("needs_mapping", "mapping missing")
    jpy = next(row for row in invoices.values() if row["currency"] == "JPY")
    assert "." not in jpy["total"]
    lines = [row for row in _csv(files["invoice_lines.csv"]) if row["invoice_number"] == "ACME-0001"]
    assert lines
    assert all(row["ledger_item"] for row in lines)
    payments = _csv(files["payments.csv"])
    assert [(p["invoice_number"], p["amount"], p["sync_status"]) for p in payments] == [
        ("ACME-0001", "1677.86", "synced")
    ]
    assert payments[0]["paid_on"]
    refunds = _csv(files["refunds.csv"])
    assert refunds
    assert refunds[0]["refunded_so_far"] == "162.38"
    qbo = [row for row in _csv(files["quickbooks_invoices.csv"]) if row["InvoiceNo"] == "ACME-0001"]
    assert sum(Decimal(r["ItemAmount"]) + Decimal(r["ItemTaxAmount"]) for r in qbo) == Decimal("1677.86")
    manifest = json.loads(files["manifest.json"])
    assert manifest["files"]["invoices.csv"]["sha256"] == hashlib.sha256(files["invoices.csv"]).hexdigest()
    assert manifest["totals"]["payment"] == {"USD": "1677.86"}
    assert files["export.xlsx"][:2] == b"PK"
    subject = report.send([_outcome(result)], utcnow())
    (alert,) = harness.alerts()
    assert alert["subject"] == subject
    assert "mapping missing: 1" in alert["message"]
    assert "Reconciliation: not run yet" in alert["message"]
    assert "X-Amz-Signature=" in alert["message"] or "Signature=" in alert["message"]


def _outcome(result: Any) -> Outcome:
    return Outcome(result.connection_id, result.window, result)


def test_a_rerun_replaces_the_day_and_old_records_export_with_blanks(synced_day: Harness) -> None:
    """Proves a second export of the day replaces its files (the same rows, not twice as many),
    and that a record written before summaries existed exports with blanks instead of failing."""
    harness = synced_day
    state = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    state.save(
        SyncRecord(
            connection_id=harness.company.connection_id,
            kind="invoice",
            source_id="in_old",
            source_number="OLD-1",
            currency="USD",
            source_total=1000,
            status=SyncStatus.SYNCED,
        ),
        0,
    )
    exporter, _ = _export(harness)
    exporter.export(harness.company.connection_id, _today())
    first = _csv(_objects(harness, _prefix(harness, _today()))["invoices.csv"])
    exporter.export(harness.company.connection_id, _today())
    second = _csv(_objects(harness, _prefix(harness, _today()))["invoices.csv"])
    assert second == first
    old = next(row for row in second if row["source_id"] == "in_old")
    assert (old["total"], old["issued_on"], old["customer_name"]) == ("10.00", "", "")


class FailingS3:
    """moto's S3 client, except that the n-th call of one operation fails."""

    def __init__(self, client: Any, operation: str, nth: int) -> None:
        self._client, self._operation, self._nth, self.count = client, operation, nth, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != self._operation:
            return attribute

        def call(**kwargs: Any) -> Any:
            self.count += 1
            if self.count == self._nth:
                raise OSError(f"connection reset during {name}")
            return attribute(**kwargs)

        return call


@pytest.mark.parametrize("operation", ["put_object", "copy_object"])
def test_a_failure_mid_way_leaves_nothing_and_a_retry_succeeds(synced_day: Harness, operation: str) -> None:
    """Proves an export that fails while writing or while publishing leaves no file under the
    day's key, no staged file and no open multipart upload, alerts once, and that the next run
    publishes the whole day."""
    harness = synced_day
    s3 = harness.client("s3")
    for _ in range(2):
        exporter, _ = _export(harness, FailingS3(s3, operation, 3))
        with pytest.raises(ExportFailed, match="connection reset"):
            exporter.export(harness.company.connection_id, _today())
        assert _objects(harness, "exports/") == {}
        assert not s3.list_multipart_uploads(Bucket=harness.resources.archive_bucket).get("Uploads")
    alerts = harness.alerts()
    assert [a["subject"] for a in alerts] == [
        f"invoice-sync: export failed ({harness.company.connection_id}, {_today().isoformat()})"
    ]
    exporter, _ = _export(harness)
    exporter.export(harness.company.connection_id, _today())
    assert "manifest.json" in _objects(harness, _prefix(harness, _today()))


def test_the_handler_exports_an_empty_day_and_says_so(harness: Harness) -> None:
    """Proves the nightly_export handler, invoked as the schedule invokes it (with a day), writes
    every file with its header only for a day with nothing in it, and reports that."""
    result = nightly_export.handler({"date": "2026-01-05"}, LocalContext("nightly-export"))
    assert result["exported"][0]["location"].endswith("/exports/acme/2026/01/05/")
    files = _objects(harness, f"exports/{harness.company.connection_id}/2026/01/05/")
    assert files["invoices.csv"].count(b"\r\n") == 1
    (alert,) = harness.alerts()
    assert "No documents were synced or parked on this day" in alert["message"]
    # The same night again (a retry): already exported and reported, so nothing is redone.
    assert nightly_export.handler({"date": "2026-01-05"}, LocalContext("nightly-export"))["exported"] == []
    assert harness.alerts() == [alert]
