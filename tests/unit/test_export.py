"""The nightly export without AWS: rows, money per currency, the ledgers' import layouts, the
summary push stores, the multipart writer's part sizes, the manifest, and failure handling, all
against an in-memory S3 stand-in and a list of records."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from invoice_sync.ledgers.port import DepositDraft, DepositLine, InvoiceDraft, LineDraft
from invoice_sync.models.documents import Customer, Invoice, InvoiceStatus, LineItem, LineTax, Payment
from invoice_sync.models.mapping import Connection
from invoice_sync.models.money import Money
from invoice_sync.models.summary import MAX_SUMMARY_BYTES, DocumentSummary, invoice_summary, payment_summary
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store.exports import MIN_PART_BYTES, ExportBucket, MultipartWriter
from invoice_sync.sync import export_rows as rows
from invoice_sync.sync.daily_report import DailyReport, Outcome, run_night
from invoice_sync.sync.export import ExportFailed, ExportService, Window, previous_day
from invoice_sync.sync.payouts import SLIP_ONLY, _Plan
from invoice_sync.sync.payouts import _summary as payout_summary
from tests.unit.fake_s3 import FakeS3

DAY = date(2026, 11, 25)
MIB = 1024 * 1024


def _invoice(
    source_id: str = "in_1",
    *,
    currency: str = "USD",
    lines: tuple[LineItem, ...] | None = None,
    discount: int = 1000,  # the lines' discounts (1000 on the first), and any on the invoice itself
    status: InvoiceStatus = InvoiceStatus.OPEN,
    amount_paid: int = 0,
) -> Invoice:
    lines = lines or (
        LineItem(
            source_id="il_1",
            description="Pro plan",
            product_id="prod_pro",
            quantity=3,
            amount=30000,
            discount=1000,
            taxes=(LineTax(rate_id="txr_1", amount=2320),),
        ),
        LineItem(source_id="il_2", description="Setup", product_id="prod_setup", quantity=1, amount=5000),
    )
    subtotal = sum(line.amount for line in lines)
    tax = sum(t.amount for line in lines for t in line.taxes if not t.inclusive)
    return Invoice(
        source_id=source_id,
        number=f"N-{source_id}",
        currency=currency,
        customer=Customer(source_id="cus_1", name="Acme, Inc.", email="ap@acme.test"),
        issued_on=DAY,
        due_on=DAY + timedelta(days=30),
        lines=lines,
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        total=subtotal - discount + tax,
        status=status,
        amount_paid=amount_paid,
    )


def _draft(invoice: Invoice) -> InvoiceDraft:
    return InvoiceDraft(
        source_id=invoice.source_id,
        customer_id="58",
        number=invoice.number,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        currency=invoice.currency,
        lines=tuple(
            LineDraft(
                item_id=f"item-{n}",
                description="",
                quantity=1,
                amount=Decimal(0),
                tax_code="TAX",
                account="200",
            )
            for n, _ in enumerate(invoice.lines)
        ),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal(0),
        memo=None,
        private_note="",
    )


def _record(invoice: Invoice, *, status: SyncStatus = SyncStatus.SYNCED, summary: bool = True) -> SyncRecord:
    return SyncRecord(
        connection_id="acme",
        kind="invoice",
        source_id=invoice.source_id,
        source_number=invoice.number,
        currency=invoice.currency,
        source_total=invoice.total,
        status=status,
        ledger_id="101" if status is SyncStatus.SYNCED else None,
        ledger_total=invoice.total if status is SyncStatus.SYNCED else None,
        mapping_version=3,
        last_error="mapping missing: product prod_x" if status.parked else None,
        alerted_reason="mapping missing" if status.parked else None,
        summary=invoice_summary(invoice, _draft(invoice)) if summary else None,
        updated_at=datetime(2026, 11, 25, 10, tzinfo=UTC),
    )


class Records:
    """The day index stand-in: yields the records it holds (optionally failing after some)."""

    def __init__(self, records: list[SyncRecord], fail_after: int | None = None) -> None:
        self.records = records
        self.fail_after = fail_after
        self.asked: list[tuple[datetime, datetime | None]] = []

    def by_day(
        self, connection_id: str, since: datetime, until: datetime | None = None, *, newest_first: bool = True
    ) -> Iterator[SyncRecord]:
        self.asked.append((since, until))
        assert not newest_first
        for index, record in enumerate(self.records):
            if self.fail_after is not None and index >= self.fail_after:
                raise OSError("DynamoDB unavailable")
            yield record


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, object]]] = []

    def publish(self, subject: str, text: str, details: dict[str, object]) -> None:
        self.sent.append((subject, text, details))


class Marks:
    def __init__(self) -> None:
        self.marked: set[str] = set()

    def alert_sent(self, key: str) -> bool:
        return key in self.marked

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None:
        self.marked.add(key)


class Facts:
    def token_dates(self, connection_id: str) -> None:
        return None

    def reconciliation(self, connection_id: str, day: str) -> None:
        return None


def _service(
    s3: FakeS3,
    records: Records,
    tmp_path: Any,
    alerts: Alerts | None = None,
    marks: Marks | None = None,
    workbook_rows: int = 200_000,
) -> ExportService:
    return ExportService(
        workbook_rows=workbook_rows,
        records=records,
        bucket=ExportBucket("archive", s3, part_bytes=5 * MIB),
        alerts=alerts or Alerts(),
        marks=marks or Marks(),
        tmpdir=str(tmp_path),
    )


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


PREFIX = "exports/acme/2026/11/25/"


# --- money and rows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (167786, "USD", "1677.86"),
        (5, "USD", "0.05"),
        (-16238, "USD", "-162.38"),
        (-5, "EUR", "-0.05"),
        (12000, "JPY", "12000"),
        (1234567, "KWD", "1234.567"),
        (7, "KWD", "0.007"),
        (10000, "CLF", "1.0000"),
        (0, "USD", "0.00"),
    ],
)
def test_money_has_the_currency_decimals_and_matches_money_model(
    minor: int, currency: str, text: str
) -> None:
    """Proves amounts are written as exact decimals in the currency's own decimals (JPY 0, KWD 3),
    the very figure ``Money.to_decimal`` gives, negative amounts included."""
    assert rows.money(minor, currency) == text
    assert rows.money(minor, currency) == str(Money(minor=minor, currency=currency).to_decimal())
    assert rows.money(None, currency) == ""


@pytest.mark.parametrize(
    ("net", "quantity", "currency", "expected"),
    [
        (29000, 3, "USD", ("1", "290.00")),  # 96.666… a unit: no exact price, one unit of the amount
        (30000, 3, "USD", ("3", "100.00")),
        (1234, 1_000_000, "USD", ("1", "12.34")),
        (10, 4, "USD", ("4", "0.025")),
        (9000, 3, "JPY", ("3", "3000")),
        (1001, 7, "KWD", ("7", "0.143")),
    ],
)
def test_unit_price_multiplies_back_to_the_line_amount(
    net: int, quantity: int, currency: str, expected: tuple[str, str]
) -> None:
    """Proves the import layouts' quantity times unit price is exactly the line's net amount, and
    that a line with no exact unit price goes as one unit of its amount."""
    assert rows.unit_price(net, quantity, currency) == expected
    q, unit = expected
    assert Decimal(q) * Decimal(unit) == Money(minor=net, currency=currency).to_decimal()


def test_invoice_rows_carry_dates_customer_amounts_lines_and_ledger_codes() -> None:
    """Proves an invoice's row and its line rows say what the accountant needs, from the summary
    push stored: dates, customer, subtotal/discount/tax/total, amount due, ledger ids, mapping
    version, sync status, and each line's ledger item, account and tax code."""
    invoice = _invoice(amount_paid=10000)
    record = _record(invoice)
    summary = DocumentSummary.load(record.summary)
    row = dict(zip(rows.INVOICE_COLUMNS, rows.invoice_row(record, summary), strict=True))
    assert row["issued_on"] == "2026-11-25"
    assert row["due_on"] == "2026-12-25"
    assert (row["customer_name"], row["customer_email"]) == ("Acme, Inc.", "ap@acme.test")
    assert (row["subtotal"], row["tax"], row["total"]) == ("350.00", "23.20", "363.20")
    assert (row["amount_paid"], row["amount_due"]) == ("100.00", "263.20")
    assert (row["ledger_id"], row["mapping_version"], row["sync_status"]) == ("101", "3", "synced")
    lines = [dict(zip(rows.LINE_COLUMNS, line, strict=True)) for line in rows.line_rows(record, summary)]
    assert [line["net_amount"] for line in lines] == ["290.00", "50.00"]
    assert [(line["ledger_item"], line["ledger_account"], line["ledger_tax_code"]) for line in lines] == [
        ("item-0", "200", "TAX"),
        ("item-1", "200", "TAX"),
    ]


def test_a_record_written_before_summaries_exports_with_blanks() -> None:
    """Proves a record without a summary (written before this version) gives a row with what the
    record knows and blanks for the rest, and no line rows: never a crash."""
    record = _record(_invoice(), status=SyncStatus.NEEDS_MAPPING, summary=False)
    row = dict(zip(rows.INVOICE_COLUMNS, rows.invoice_row(record, None), strict=True))
    assert (row["source_id"], row["total"], row["currency"]) == ("in_1", "363.20", "USD")
    assert row["issued_on"] == row["customer_name"] == row["lines"] == ""
    assert (row["sync_status"], row["parked_reason"]) == ("needs_mapping", "mapping missing")
    assert rows.line_rows(record, None) == []
    assert not rows.importable(record, None)
    assert DocumentSummary.load("{not json") is None


def test_a_huge_invoice_keeps_its_totals_and_drops_its_lines() -> None:
    """Proves a summary too large for a DynamoDB item keeps the header and counts the lines it
    could not store, and that such an invoice stays out of the import files (it cannot add up)."""
    many = tuple(
        LineItem(source_id=f"il_{n}", description="x" * 200, product_id="prod_a", quantity=1, amount=100)
        for n in range(2000)
    )
    invoice = _invoice(lines=many, discount=0)
    text = invoice_summary(invoice)
    assert len(text.encode()) < MAX_SUMMARY_BYTES
    summary = DocumentSummary.load(text)
    assert summary is not None
    assert (summary.lines, summary.lines_dropped, summary.total) == ((), 2000, 200000)
    record = _record(invoice).model_copy(update={"summary": text})
    assert not rows.importable(record, summary)
    assert rows.invoice_row(record, summary)[rows.INVOICE_COLUMNS.index("lines_not_stored")] == "2000"


def test_payment_summary_names_its_invoice_and_customer() -> None:
    """Proves a payment's row carries its date, invoice and customer from the summary push stores."""
    invoice = _invoice()
    payment = Payment(
        source_id="inpay_1",
        invoice_source_id="in_1",
        amount=36320,
        currency="USD",
        paid_on=DAY,
        reference="ch_1",
    )
    record = SyncRecord(
        connection_id="acme",
        kind="payment",
        source_id="inpay_1",
        currency="USD",
        source_total=36320,
        status=SyncStatus.SYNCED,
        summary=payment_summary(payment, invoice),
    )
    row = dict(
        zip(rows.PAYMENT_COLUMNS, rows.payment_row(record, DocumentSummary.load(record.summary)), strict=True)
    )
    assert (row["invoice_source_id"], row["invoice_number"], row["paid_on"]) == (
        "in_1",
        "N-in_1",
        "2026-11-25",
    )
    assert (row["customer_name"], row["amount"], row["reference"]) == ("Acme, Inc.", "363.20", "ch_1")


# --- the ledgers' import layouts ------------------------------------------------------------------


def _sums(parsed: list[dict[str, str]], number: str, amount: str, tax: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in parsed:
        totals[row[number]] = totals.get(row[number], Decimal(0)) + Decimal(row[amount]) + Decimal(row[tax])
    return totals


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_import_layouts_round_trip_to_the_invoice_totals(currency: str) -> None:
    """Proves the Xero and QuickBooks Online import rows of an invoice add up to its total (lines
    net of discounts, an undistributed invoice discount as its own line, tax per line), with the
    templates' required columns filled and dates in each template's format."""
    invoice = _invoice(currency=currency, discount=1500)  # 1000 on a line, 500 on the invoice
    record = _record(invoice)
    summary = DocumentSummary.load(record.summary)
    assert summary is not None
    assert rows.importable(record, summary)
    xero = [dict(zip(rows.XERO_COLUMNS, r, strict=True)) for r in rows.xero_rows(record, summary)]
    qbo = [dict(zip(rows.QUICKBOOKS_COLUMNS, r, strict=True)) for r in rows.quickbooks_rows(record, summary)]
    total = Money(minor=invoice.total, currency=currency).to_decimal()
    for row in xero:
        row["LineAmount"] = str(Decimal(row["*Quantity"]) * Decimal(row["*UnitAmount"]))
    assert _sums(xero, "*InvoiceNumber", "LineAmount", "TaxAmount") == {"N-in_1": total}
    assert _sums(qbo, "InvoiceNo", "ItemAmount", "ItemTaxAmount") == {"N-in_1": total}
    assert {row["Total"] for row in xero} == {str(total)}
    assert [row["*Description"] for row in xero] == ["Pro plan", "Setup", "Discount"]
    required = [c for c in rows.XERO_COLUMNS if c.startswith("*")]
    assert all(row[c] for row in xero[:2] for c in required)
    assert all(
        row[c] for row in qbo for c in ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "ItemAmount")
    )
    assert (xero[0]["*InvoiceDate"], xero[0]["*DueDate"]) == ("25/11/2026", "25/12/2026")
    assert (qbo[0]["InvoiceDate"], qbo[0]["DueDate"]) == ("11/25/2026", "12/25/2026")


def test_drafts_and_void_invoices_stay_out_of_the_import_files() -> None:
    """Proves only finalized invoices are importable: a draft or a void one is not."""
    for status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        record = _record(_invoice(status=status))
        assert not rows.importable(record, DocumentSummary.load(record.summary))


# --- the multipart writer -------------------------------------------------------------------------


def test_multipart_parts_are_at_least_five_mib_except_the_last() -> None:
    """Proves the writer sends parts of the configured size (never under S3's 5 MiB but for the
    last), keeps at most one part in memory, and that the object is the bytes written."""
    s3 = FakeS3()
    writer = MultipartWriter(s3, "b", "k", "text/csv", part_bytes=MIN_PART_BYTES)
    chunk = b"x" * 700_000
    written = b""
    for _ in range(20):
        writer.write(chunk)
        written += chunk
        assert len(writer._buffer) < MIN_PART_BYTES  # one part at most waits in memory
    file = writer.close("k")
    assert s3.objects["k"] == written
    sizes = s3.part_sizes[0]
    assert len(sizes) == 3
    assert all(size >= MIN_PART_BYTES for size in sizes[:-1])
    assert sum(sizes) == len(written) == file.size
    assert file.sha256 == hashlib.sha256(written).hexdigest()


def test_a_small_file_is_one_put_and_an_aborted_upload_leaves_nothing() -> None:
    """Proves a file under one part goes up with one PutObject, that parts below S3's minimum are
    refused, and that abort drops an upload in progress."""
    s3 = FakeS3()
    small = MultipartWriter(s3, "b", "small", "text/csv", part_bytes=MIN_PART_BYTES)
    small.write(b"a,b\r\n")
    small.close("small")
    assert s3.objects["small"] == b"a,b\r\n"
    assert "create_multipart_upload" not in s3.calls
    big = MultipartWriter(s3, "b", "big", "text/csv", part_bytes=MIN_PART_BYTES)
    big.write(b"y" * (MIN_PART_BYTES + 1))
    assert s3.uploads
    big.abort()
    assert not s3.uploads
    assert "big" not in s3.objects
    with pytest.raises(ValueError, match="at least"):
        MultipartWriter(s3, "b", "k", "text/csv", part_bytes=MIN_PART_BYTES - 1)


# --- the export use case --------------------------------------------------------------------------


def test_export_writes_every_file_and_a_manifest_that_names_them(tmp_path: Any) -> None:
    """Proves a day's records become the five document CSVs, two import layouts, a workbook whose
    sheets hold the same rows, and a manifest with row counts, totals per currency and kind, every
    file's SHA-256, the window and the mapping versions; nothing is left in staging."""
    s3 = FakeS3()
    jpy = _invoice("in_2", currency="JPY")
    parked = _record(_invoice("in_3"), status=SyncStatus.NEEDS_MAPPING)
    result = _service(s3, Records([_record(_invoice()), _record(jpy), parked]), tmp_path).export(
        "acme", DAY, "Europe/London"
    )
    files = s3.under(PREFIX)
    assert set(files) == {
        PREFIX + name
        for name in (
            "invoices.csv",
            "invoice_lines.csv",
            "payments.csv",
            "credit_notes.csv",
            "refunds.csv",
            "xero_sales_invoices.csv",
            "quickbooks_invoices.csv",
            "export.xlsx",
            "manifest.json",
        )
    }
    assert not s3.under("exports/_staging/")
    assert not s3.uploads
    invoices = _csv(files[PREFIX + "invoices.csv"])
    assert [r["source_id"] for r in invoices] == ["in_1", "in_2", "in_3"]
    assert [r["total"] for r in invoices] == ["363.20", "36320", "363.20"]
    assert len(_csv(files[PREFIX + "invoice_lines.csv"])) == 6
    assert _csv(files[PREFIX + "payments.csv"]) == []
    assert files[PREFIX + "payments.csv"].startswith(b"source_id,invoice_source_id")
    manifest = json.loads(files[PREFIX + "manifest.json"])
    assert manifest == result.manifest
    for name, entry in manifest["files"].items():
        if name != "manifest.json":
            assert entry["sha256"] == hashlib.sha256(files[PREFIX + name]).hexdigest(), name
            assert entry["bytes"] == len(files[PREFIX + name])
    assert manifest["files"]["invoices.csv"]["rows"] == 3
    assert manifest["files"]["xero_sales_invoices.csv"]["rows"] == 6  # the parked one too: it has lines
    assert manifest["totals"] == {"invoice": {"JPY": "36320", "USD": "726.40"}}
    assert manifest["synced_totals"] == {"invoice": {"JPY": "36320", "USD": "363.20"}}
    assert manifest["documents"] == {"invoice": {"needs_mapping": 1, "synced": 2}}
    assert manifest["parked"] == {"mapping missing": 1}
    assert manifest["mapping_versions"] == [3]
    assert manifest["window"]["start_utc"] == "2026-11-25T00:00:00+00:00"
    assert manifest["window"]["time_zone"] == "Europe/London"
    with zipfile.ZipFile(io.BytesIO(files[PREFIX + "export.xlsx"])) as book:
        names = book.namelist()
        assert "xl/worksheets/sheet1.xml" in names
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        assert sheet.count("<row ") == 4  # header and three invoices
        assert "Acme, Inc." in sheet
        workbook = book.read("xl/workbook.xml").decode()
        assert all(f'name="{n}"' in workbook for n in ("invoices", "invoice_lines", "refunds"))


def test_the_window_is_the_calendar_day_in_the_schedule_time_zone() -> None:
    """Proves a day in New York runs between its local midnights (05:00 UTC in winter), that the
    day index is asked for exactly that window, and what "yesterday" is just after midnight."""
    window = Window.of(DAY, "America/New_York")
    assert (window.start, window.end) == (
        datetime(2026, 11, 25, 5, tzinfo=UTC),
        datetime(2026, 11, 26, 5, tzinfo=UTC),
    )
    assert previous_day(datetime(2026, 11, 26, 5, 30, tzinfo=UTC), "America/New_York") == DAY
    assert previous_day(datetime(2026, 11, 26, 4, 30, tzinfo=UTC), "America/New_York") == date(2026, 11, 24)


def test_a_failure_mid_way_publishes_nothing_alerts_once_and_a_retry_succeeds(tmp_path: Any) -> None:
    """Proves an export whose upload fails part-way aborts its multipart uploads, leaves nothing
    under the day's key or in staging, alerts once however often it fails, and succeeds when run
    again."""
    long = (LineItem(source_id="il_1", description="d" * 4000, product_id="p", quantity=1, amount=100),)
    big = [_record(_invoice(f"in_{n}", lines=long, discount=0)) for n in range(2000)]  # 8 MB of lines
    alerts, marks = Alerts(), Marks()
    for attempt in range(2):
        s3 = FakeS3(fail_on={"upload_part": 2})
        with pytest.raises(ExportFailed, match="S3 unavailable"):
            _service(s3, Records(big), tmp_path, alerts, marks, workbook_rows=0).export("acme", DAY)
        assert not s3.under(PREFIX), attempt
        assert not s3.under("exports/_staging/")
        assert not s3.uploads
        assert s3.calls["abort_multipart_upload"] >= 1
    assert len(alerts.sent) == 1
    assert "export failed" in alerts.sent[0][0]
    s3 = FakeS3()
    _service(s3, Records(big), tmp_path, alerts, marks, workbook_rows=0).export("acme", DAY)
    assert len(_csv(s3.objects[PREFIX + "invoice_lines.csv"])) == 2000
    assert any(len(sizes) > 1 for sizes in s3.part_sizes)


def test_a_dynamodb_failure_mid_read_publishes_nothing(tmp_path: Any) -> None:
    """Proves a day index read that fails after some records leaves the day's key empty."""
    s3 = FakeS3()
    with pytest.raises(ExportFailed, match="DynamoDB unavailable"):
        _service(
            s3, Records([_record(_invoice(f"in_{n}")) for n in range(5)], fail_after=3), tmp_path
        ).export("acme", DAY)
    assert not s3.under("exports/")
    assert not s3.uploads


def test_a_day_over_the_workbook_limit_gets_a_note_instead_of_sheets(tmp_path: Any) -> None:
    """Proves a day with more rows than the workbook limit still writes every CSV row, and a
    workbook holding only a note that says where the rows are (the manifest says so too)."""
    s3 = FakeS3()
    result = _service(
        s3, Records([_record(_invoice(f"in_{n}")) for n in range(5)]), tmp_path, workbook_rows=4
    ).export("acme", DAY)
    assert len(_csv(s3.objects[PREFIX + "invoices.csv"])) == 5
    assert result.manifest["workbook_sheets_omitted"] is True
    with zipfile.ZipFile(io.BytesIO(s3.objects[PREFIX + "export.xlsx"])) as book:
        assert 'name="about"' in book.read("xl/workbook.xml").decode()
        assert "EXPORT_WORKBOOK_MAX_ROWS" in book.read("xl/worksheets/sheet1.xml").decode()


def test_a_failure_while_publishing_takes_back_what_was_published(tmp_path: Any) -> None:
    """Proves a run that fails while copying files to the day's key removes the files it had
    published there, so the day holds no mixture of this run and nothing else."""
    s3 = FakeS3(fail_on={"copy_object": 4})
    with pytest.raises(ExportFailed):
        _service(s3, Records([_record(_invoice())]), tmp_path).export("acme", DAY)
    assert not s3.under(PREFIX)
    assert not s3.under("exports/_staging/")


def test_a_rerun_that_fails_while_publishing_leaves_the_earlier_day_as_it_was(tmp_path: Any) -> None:
    """Proves a re-run of a day that fails half-way through publishing puts the earlier run's files
    and manifest back exactly (no mixture of two runs, no day without its manifest), and that a
    retry then publishes the new run whole."""
    s3 = FakeS3()
    _service(s3, Records([_record(_invoice())]), tmp_path).export("acme", DAY)
    before = dict(s3.under(PREFIX))
    assert PREFIX + "manifest.json" in before
    copies = s3.calls.get("copy_object", 0)
    # The re-run keeps the earlier files aside (one copy each), then fails on its 3rd publish.
    s3.fail_on = {"copy_object": copies + len(before) + 3}
    newer = Records([_record(_invoice()), _record(_invoice("in_2"))])
    with pytest.raises(ExportFailed):
        _service(s3, newer, tmp_path).export("acme", DAY)
    assert s3.under(PREFIX) == before
    assert not s3.under("exports/_staging/")
    s3.fail_on = {}
    _service(s3, newer, tmp_path).export("acme", DAY)
    assert len(_csv(s3.objects[PREFIX + "invoices.csv"])) == 2


def test_a_rerun_replaces_the_day_and_an_empty_day_has_headers(tmp_path: Any) -> None:
    """Proves a second run of a day replaces its files (rows are not added twice) and that an empty
    day writes every file with its header row only."""
    s3 = FakeS3()
    records = Records([_record(_invoice())])
    _service(s3, records, tmp_path).export("acme", DAY)
    _service(s3, records, tmp_path).export("acme", DAY)
    assert len(_csv(s3.objects[PREFIX + "invoices.csv"])) == 1
    empty = FakeS3()
    result = _service(empty, Records([]), tmp_path).export("acme", DAY)
    for name in ("invoices.csv", "payments.csv", "xero_sales_invoices.csv"):
        assert empty.objects[PREFIX + name].count(b"\r\n") == 1, name
    assert result.tally.count == 0
    subject, text, _ = DailyReport(
        facts=Facts(), bucket=ExportBucket("archive", empty), alerts=Alerts(), link_seconds=3600
    ).build([Outcome("acme", result.window, result)], datetime(2026, 11, 26, tzinfo=UTC))
    assert "0 synced, 0 parked" in subject
    assert "No documents were synced or parked on this day" in text
    assert "Reconciliation: not run yet" in text


def test_report_counts_documents_parked_reasons_failures_and_links(tmp_path: Any) -> None:
    """Proves the daily report says what synced by type, totals per currency, parked counts by
    reason, failures, that reconciliation has not run, the token health it knows and presigned
    links to the workbook and manifest."""
    s3 = FakeS3()
    rejected = _record(_invoice("in_4"), status=SyncStatus.REJECTED).model_copy(
        update={"alerted_reason": "totals do not add up"}
    )
    records = Records(
        [_record(_invoice()), _record(_invoice("in_3"), status=SyncStatus.NEEDS_MAPPING), rejected]
    )
    result = _service(s3, records, tmp_path).export("acme", DAY)
    report = DailyReport(
        facts=Facts(), bucket=ExportBucket("archive", s3), alerts=Alerts(), link_seconds=3600
    )
    subject, text, details = report.build(
        [Outcome("acme", result.window, result), Outcome("beta", result.window, error="OSError: boom")],
        datetime(2026, 11, 26, tzinfo=UTC),
    )
    assert subject == "invoice-sync daily report 2026-11-25: 1 synced, 2 parked, 1 export failed"
    assert "invoice: 3 (needs_mapping 1, rejected 1, synced 1)" in text
    assert "invoice: 363.20 USD" in text
    assert "mapping missing: 1" in text
    assert "totals do not add up: 1" in text
    assert "Failures: 1 rejected" in text
    assert "EXPORT FAILED: OSError: boom" in text
    assert f"https://example.test/{PREFIX}export.xlsx?expires=3600" in text
    assert "no token dates recorded yet" in text
    assert details["connections"][0]["links"]["manifest"].startswith("https://example.test/")  # type: ignore[index]


def test_text_a_spreadsheet_would_run_as_a_formula_stays_text() -> None:
    """Proves a customer name or description that starts like a formula (=, +, -, @) reaches the
    CSV with a leading apostrophe, so opening the file in a spreadsheet runs nothing, while money
    (negative amounts included) is written as plain numbers."""
    lines = (
        LineItem(
            source_id="il_1", description='=HYPERLINK("http://x")', product_id="p", quantity=1, amount=5000
        ),
    )
    invoice = _invoice(lines=lines, discount=0).model_copy(
        update={"customer": _invoice().customer.model_copy(update={"name": "@Acme"})}
    )
    record = _record(invoice)
    summary = DocumentSummary.load(record.summary)
    row = dict(zip(rows.INVOICE_COLUMNS, rows.invoice_row(record, summary), strict=True))
    assert row["customer_name"] == "'@Acme"
    (line,) = [dict(zip(rows.LINE_COLUMNS, line, strict=True)) for line in rows.line_rows(record, summary)]
    assert line["description"] == '\'=HYPERLINK("http://x")'
    assert rows.money(-1250, "USD") == "-12.50"


def test_no_workbook_scratch_is_left_behind_whatever_the_run_did(tmp_path: Any) -> None:
    """Proves a run leaves nothing in the temporary directory (a warm Lambda's /tmp is reused):
    not after a clean run, not after a day over the workbook limit, not after a failure."""
    records = Records([_record(_invoice()), _record(_invoice("in_2"))])
    _service(FakeS3(), records, tmp_path).export("acme", DAY)
    _service(FakeS3(), records, tmp_path, workbook_rows=1).export("acme", DAY)
    with pytest.raises(ExportFailed):
        _service(FakeS3(fail_on={"copy_object": 2}), records, tmp_path).export("acme", DAY)
    assert list(Path(tmp_path).iterdir()) == []


class _Connections:
    def connections(self) -> list[Connection]:
        return [Connection(connection_id=c, tenant_id="1") for c in ("acme", "beta")]


class _FailingOnce(Alerts):
    """An alerts topic whose first publish fails (SNS throttled for a moment)."""

    def publish(self, subject: str, text: str, details: dict[str, object]) -> None:
        if not self.sent and not getattr(self, "failed", False):
            self.failed = True
            raise OSError("SNS throttled")
        super().publish(subject, text, details)


def test_each_connection_gets_its_own_report_and_a_failed_send_is_redone_alone(tmp_path: Any) -> None:
    """Proves the night sends one report per connection (each far below SNS's 256 KB, whatever the
    number of connections); when one send fails the other connection is still exported and
    reported, the night fails so the scheduler retries it, and the retry reports only the one
    whose report was lost."""
    alerts, marks = _FailingOnce(), Marks()
    exporter = _service(FakeS3(), Records([_record(_invoice())]), tmp_path)

    def night() -> None:
        run_night(
            exporter=exporter,
            report=DailyReport(facts=Facts(), bucket=exporter.bucket, alerts=alerts, link_seconds=3600),
            connections=_Connections(),
            marks=marks,
            now=datetime(2026, 11, 26, 5, tzinfo=UTC),
            day=DAY,
        )

    with pytest.raises(ExportFailed, match="acme"):
        night()
    assert [details["connections"][0]["connection_id"] for _, _, details in alerts.sent] == ["beta"]
    night()
    assert [details["connections"][0]["connection_id"] for _, _, details in alerts.sent] == ["beta", "acme"]
    assert all(len(json.dumps(details)) < 256_000 for _, _, details in alerts.sent)


class _Leases:
    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        return self.held.setdefault(name, owner) == owner

    def release_lock(self, name: str, owner: str) -> None:
        if self.held.get(name) == owner:
            del self.held[name]


def test_a_second_run_of_a_day_in_progress_publishes_nothing(tmp_path: Any) -> None:
    """Proves that while one run holds a connection's day, another (an at-least-once redelivery,
    an operator's export) fails without touching the day's files, and that the lease is released
    after a run, so the next one proceeds."""
    leases = _Leases()
    s3 = FakeS3()
    service = _service(s3, Records([_record(_invoice())]), tmp_path)
    service.locks = leases
    service.export("acme", DAY)
    assert leases.held == {}
    published = dict(s3.under(PREFIX))
    leases.held[f"export#acme#{DAY.isoformat()}"] = "the-other-run"
    with pytest.raises(ExportFailed, match="another export of acme"):
        service.export("acme", DAY)
    assert s3.under(PREFIX) == published


# --- payments back: the ledger's own payments mirrored to Stripe (issue 7) -----------------------


def _back(
    payment: str = "190",
    invoice: str = "147",
    *,
    status: SyncStatus = SyncStatus.SYNCED,
    amount: int = 4000,
    currency: str = "USD",
    stripe_object: str | None = "pr_1",
    last_error: str | None = None,
    alerted_reason: str | None = None,
    summary: str | None = None,
) -> SyncRecord:
    """A ``ledger_payment`` record as payments back writes it (design two-way 3.8)."""
    return SyncRecord(
        connection_id="acme",
        kind="ledger_payment",
        source_id=f"{payment}:{invoice}",
        direction="to_source",
        status=status,
        ledger_id=payment,
        ledger_version="3",
        ledger_number=invoice,
        ledger_total=amount,
        currency=currency,
        source_target="in_1",
        source_number="N-in_1",
        stripe_object=stripe_object,
        last_error=last_error,
        alerted_reason=alerted_reason,
        summary=summary,
        updated_at=datetime(2026, 11, 25, 11, tzinfo=UTC),
    )


class Lookup:
    """The Mappings table stand-in: one connection and whether payments back is on for it."""

    def __init__(self, *, payments_back: bool, ledger: str = "quickbooks") -> None:
        self.found = Connection(
            connection_id="acme", ledger=ledger, tenant_id="9130", payments_back=payments_back
        )

    def connection(self, connection_id: str) -> Connection | None:
        return self.found if connection_id == "acme" else None


def _back_service(s3: FakeS3, records: Records, tmp_path: Any, lookup: Lookup) -> ExportService:
    return ExportService(
        records=records,
        bucket=ExportBucket("archive", s3, part_bytes=5 * MIB),
        alerts=Alerts(),
        marks=Marks(),
        tmpdir=str(tmp_path),
        connections=lookup,
    )


def test_a_ledger_payment_row_names_both_sides_and_the_stripe_object() -> None:
    """Given a synced ledger payment of 40.00 that reached Stripe as a payment record, with the
    summary giving its date and reference, when its row is built, then it names the ledger, the
    ledger payment and invoice, the Stripe invoice and number, the exact amount, pr_1 and no reason."""
    summary = DocumentSummary(issued_on=DAY, reference="cheque 5512", total=4000).dump()
    row = dict(
        zip(
            rows.PAYMENTS_BACK_COLUMNS,
            rows.payments_back_row(_back(summary=summary), DocumentSummary.load(summary), "quickbooks"),
            strict=True,
        )
    )
    assert row == {
        "ledger": "quickbooks",
        "ledger_payment_id": "190",
        "ledger_invoice_id": "147",
        "stripe_invoice_id": "in_1",
        "stripe_invoice_number": "N-in_1",
        "paid_on": "2026-11-25",
        "reference": "cheque 5512",
        "currency": "USD",
        "amount": "40.00",
        "stripe_object": "pr_1",
        "sync_status": "synced",
        "reason": "",
        "last_error": "",
        "updated_at": "2026-11-25T11:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("record", "reason", "amount"),
    [
        (
            _back(
                status=SyncStatus.SKIPPED,
                stripe_object=None,
                last_error="invoice not from the source",
                currency="JPY",
                amount=12000,
            ),
            "invoice not from the source",
            "12000",
        ),
        (
            _back(
                status=SyncStatus.REJECTED,
                stripe_object=None,
                last_error="paid on both sides: Stripe says in_1 is paid",
                alerted_reason="paid on both sides",
                currency="KWD",
                amount=1234,
            ),
            "paid on both sides",
            "1.234",
        ),
    ],
)
def test_a_skipped_or_parked_ledger_payment_says_why_in_its_currencys_decimals(
    record: SyncRecord, reason: str, amount: str
) -> None:
    """Given a ledger payment skipped (not from the source) or parked (paid on both sides) and no
    summary (payments back kept none), when its row is built, then ``reason`` is the skip reason or
    the parked short reason, the amount has the currency's decimals, and the date is blank."""
    row = dict(zip(rows.PAYMENTS_BACK_COLUMNS, rows.payments_back_row(record, None, "xero"), strict=True))
    assert (row["reason"], row["amount"], row["stripe_object"], row["paid_on"]) == (reason, amount, "", "")
    assert row["sync_status"] == record.status.value


def test_payments_back_on_adds_its_file_and_keeps_ledger_payments_out_of_payments(tmp_path: Any) -> None:
    """Given a connection with payments back on and a day holding an invoice, a Stripe payment and
    two ledger payments (one synced, one parked), when the day is exported, then payments_back.csv
    holds the two ledger payments and payments.csv only the Stripe payment, the workbook has a
    payments_back sheet, and the manifest counts the file's rows and the ledger payments' totals."""
    s3 = FakeS3()
    payment = SyncRecord(
        connection_id="acme",
        kind="payment",
        source_id="inpay_1",
        currency="USD",
        source_total=36320,
        status=SyncStatus.SYNCED,
        updated_at=datetime(2026, 11, 25, 10, tzinfo=UTC),
    )
    parked = _back(
        "191",
        status=SyncStatus.REJECTED,
        stripe_object=None,
        amount=500,
        last_error="ledger payment exceeds what Stripe says is due: 5.00",
        alerted_reason="ledger payment exceeds what Stripe says is due",
    )
    records = Records([_record(_invoice()), payment, _back(), parked])
    result = _back_service(s3, records, tmp_path, Lookup(payments_back=True)).export("acme", DAY)
    files = s3.under(PREFIX)
    assert [r["source_id"] for r in _csv(files[PREFIX + "payments.csv"])] == ["inpay_1"]
    back = _csv(files[PREFIX + "payments_back.csv"])
    assert [(r["ledger"], r["ledger_payment_id"], r["amount"], r["sync_status"]) for r in back] == [
        ("quickbooks", "190", "40.00", "synced"),
        ("quickbooks", "191", "5.00", "rejected"),
    ]
    assert back[1]["reason"] == "ledger payment exceeds what Stripe says is due"
    manifest = result.manifest
    assert manifest["files"]["payments_back.csv"]["rows"] == 2
    assert (
        manifest["files"]["payments_back.csv"]["sha256"]
        == hashlib.sha256(files[PREFIX + "payments_back.csv"]).hexdigest()
    )
    assert manifest["totals"]["ledger_payment"] == {"USD": "45.00"}
    assert manifest["synced_totals"]["ledger_payment"] == {"USD": "40.00"}
    assert manifest["documents"]["ledger_payment"] == {"rejected": 1, "synced": 1}
    with zipfile.ZipFile(io.BytesIO(files[PREFIX + "export.xlsx"])) as book:
        assert 'name="payments_back"' in book.read("xl/workbook.xml").decode()


def test_payments_back_on_writes_the_header_on_an_empty_day_and_off_changes_nothing(tmp_path: Any) -> None:
    """Given payments back on and a day without ledger payments, when exported, then
    payments_back.csv is there with its header only; given it off (or no connection lookup), the
    same day's files are exactly the existing ones, byte for byte: nothing new for a connection
    that never had payments back."""
    on = FakeS3()
    records = [_record(_invoice())]
    _back_service(on, Records(records), tmp_path, Lookup(payments_back=True)).export("acme", DAY)
    assert (
        on.objects[PREFIX + "payments_back.csv"] == (",".join(rows.PAYMENTS_BACK_COLUMNS) + "\r\n").encode()
    )

    off, plain = FakeS3(), FakeS3()
    _back_service(off, Records(records), tmp_path, Lookup(payments_back=False)).export("acme", DAY)
    _service(plain, Records(records), tmp_path).export("acme", DAY)
    assert PREFIX + "payments_back.csv" not in off.objects
    for name in ("invoices.csv", "invoice_lines.csv", "payments.csv", "credit_notes.csv", "refunds.csv"):
        assert off.objects[PREFIX + name] == plain.objects[PREFIX + name] == on.objects[PREFIX + name], name
    assert set(off.under(PREFIX)) == set(plain.under(PREFIX))


def test_ledger_payments_of_a_connection_with_payments_back_off_are_still_exported(tmp_path: Any) -> None:
    """Given a connection that has since turned payments back off, and a day that still holds a
    ledger payment record (a re-drive), when exported, then payments_back.csv is written with it:
    a record of the day is never left out of the files."""
    s3 = FakeS3()
    result = _back_service(
        s3, Records([_record(_invoice()), _back()]), tmp_path, Lookup(payments_back=False, ledger="xero")
    ).export("acme", DAY)
    (row,) = _csv(s3.objects[PREFIX + "payments_back.csv"])
    assert (row["ledger"], row["stripe_invoice_id"], row["amount"]) == ("xero", "in_1", "40.00")
    assert result.manifest["files"]["payments_back.csv"]["rows"] == 1
    with zipfile.ZipFile(io.BytesIO(s3.objects[PREFIX + "export.xlsx"])) as book:
        assert 'name="payments_back"' in book.read("xl/workbook.xml").decode()


# --- payouts as bank deposits: deposits.csv (issue 7) --------------------------------------------


def _deposit_summary(currency: str = "USD") -> str:
    """The summary push writes on a payout record (``payouts._summary``), for design two-way
    3.5.2's worked example: two payments, a refund and the aggregated fee line, 202.43 in all."""
    lines = (
        DepositLine("payment", Decimal("150.00"), "INV-1001 (in_A)", ledger_id="190", source_id="txn_a"),
        DepositLine("payment", Decimal("80.00"), "INV-1002 (in_B)", ledger_id="191", source_id="txn_b"),
        DepositLine("refund", Decimal("-20.00"), "refund of ch_a", ledger_id="77", source_id="txn_c"),
        DepositLine("fee", Decimal("-7.57"), "Stripe fees", account="92"),
    )
    draft = DepositDraft(
        source_id="po_1QxYz",
        number="PO-1QxYz",
        arrival_on=date(2026, 12, 4),
        currency=currency,
        bank_account="35",
        clearing_account=None,
        contact_id=None,
        lines=lines,
        total=Decimal("202.43"),
        private_note="invoice-sync: stripe po_1QxYz",
    )
    return payout_summary(draft, _Plan(lines=list(lines), fees=757))


def _payout(
    source_id: str = "po_1QxYz",
    *,
    status: SyncStatus = SyncStatus.SYNCED,
    amount: int = 20243,
    currency: str = "USD",
    summary: str | None = None,
    ledger_id: str | None = "4021",
    last_error: str | None = None,
    alerted_reason: str | None = None,
) -> SyncRecord:
    """A ``payout`` record as push's PayoutService leaves it (design two-way 3.5.2 step 10)."""
    return SyncRecord(
        connection_id="acme",
        kind="payout",
        source_id=source_id,
        status=status,
        source_number="PO-" + source_id.removeprefix("po_"),
        currency=currency,
        source_total=amount,
        ledger_id=ledger_id,
        ledger_total=amount if ledger_id else None,
        summary=summary,
        last_error=last_error,
        alerted_reason=alerted_reason,
        updated_at=datetime(2026, 11, 25, 12, tzinfo=UTC),
    )


class PayoutLookup:
    """The Mappings table stand-in: one connection and whether payout deposits are on for it."""

    def __init__(self, *, payout_deposits: bool, ledger: str = "quickbooks") -> None:
        self.found = Connection(
            connection_id="acme", ledger=ledger, tenant_id="9130", payout_deposits=payout_deposits
        )

    def connection(self, connection_id: str) -> Connection | None:
        return self.found if connection_id == "acme" else None


def _deposit_service(s3: FakeS3, records: Records, tmp_path: Any, lookup: PayoutLookup) -> ExportService:
    return ExportService(
        records=records,
        bucket=ExportBucket("archive", s3, part_bytes=5 * MIB),
        alerts=Alerts(),
        marks=Marks(),
        tmpdir=str(tmp_path),
        connections=lookup,
    )


def test_a_booked_payout_is_one_row_per_deposit_line_that_adds_up_to_the_bank_line() -> None:
    """Given the worked example's payout booked as QBO Deposit 4021 (two payments, a refund, the
    fee line), when its rows are built, then there is one row per line naming the payout, its
    reference, arrival day, the ledger and the deposit, each line's kind, ledger document or
    account and Stripe transaction, exact amounts that add up to 202.43, and no reason."""
    built = [
        dict(zip(rows.DEPOSIT_COLUMNS, row, strict=True))
        for row in rows.deposit_rows(_payout(summary=_deposit_summary()), "quickbooks")
    ]
    assert built[0] == {
        "payout_id": "po_1QxYz",
        "payout_reference": "PO-1QxYz",
        "arrival_on": "2026-12-04",
        "ledger": "quickbooks",
        "deposit_ledger_id": "4021",
        "line_kind": "payment",
        "description": "INV-1001 (in_A)",
        "currency": "USD",
        "amount": "150.00",
        "line_ledger_id": "190",
        "account": "",
        "stripe_balance_transaction": "txn_a",
        "sync_status": "synced",
        "reason": "",
        "last_error": "",
        "updated_at": "2026-11-25T12:00:00+00:00",
    }
    assert [(r["line_kind"], r["amount"], r["line_ledger_id"], r["account"]) for r in built] == [
        ("payment", "150.00", "190", ""),
        ("payment", "80.00", "191", ""),
        ("refund", "-20.00", "77", ""),
        ("fee", "-7.57", "", "92"),
    ]
    assert sum(Decimal(r["amount"]) for r in built) == Decimal("202.43")


@pytest.mark.parametrize(
    ("record", "reason", "amount"),
    [
        (
            _payout(status=SyncStatus.SKIPPED, ledger_id=None, last_error="not paid yet (in_transit)"),
            "not paid yet (in_transit)",
            "202.43",
        ),
        (
            _payout(
                status=SyncStatus.REJECTED,
                ledger_id=None,
                currency="JPY",
                amount=12000,
                last_error="payout 12000 JPY, its transactions add up to 11000 JPY",
                alerted_reason="payout does not add up",
            ),
            "payout does not add up",
            "12000",
        ),
    ],
)
def test_a_payout_without_lines_is_one_row_of_its_amount_saying_why(
    record: SyncRecord, reason: str, amount: str
) -> None:
    """Given a payout skipped (not paid yet) or parked (does not add up) and so without deposit
    lines, when its rows are built, then it is one row with the line columns blank, the payout's
    own amount in its currency's decimals, no deposit, and the skip or parked short reason."""
    (row,) = (dict(zip(rows.DEPOSIT_COLUMNS, r, strict=True)) for r in rows.deposit_rows(record, "xero"))
    assert (row["line_kind"], row["amount"], row["deposit_ledger_id"], row["reason"]) == (
        "",
        amount,
        "",
        reason,
    )
    assert (row["payout_id"], row["payout_reference"], row["sync_status"]) == (
        "po_1QxYz",
        "PO-1QxYz",
        record.status.value,
    )


def test_a_freshbooks_payout_says_it_is_a_deposit_slip_only() -> None:
    """Given a FreshBooks payout (its fees booked as expense 88, the rest on the deposit slip),
    when its rows are built, then every line is there with the expense as the deposit's ledger id
    and the reason says that only a slip stands for the deposit."""
    record = _payout(summary=_deposit_summary(), ledger_id="88", last_error=SLIP_ONLY)
    built = [dict(zip(rows.DEPOSIT_COLUMNS, r, strict=True)) for r in rows.deposit_rows(record, "freshbooks")]
    assert len(built) == 4
    assert {(r["deposit_ledger_id"], r["reason"]) for r in built} == {("88", SLIP_ONLY)}


def test_a_line_amount_is_exact_in_the_currencys_decimals() -> None:
    """Given line amounts as the summary keeps them, when written, then they carry the currency's
    decimals (JPY none, KWD three) exactly; one with more decimals than its currency is written
    whole, never rounded; one that is no amount fails loudly."""
    assert rows.decimal_money("-49.26", "USD") == "-49.26"
    assert rows.decimal_money("1466.2", "USD") == "1466.20"
    assert rows.decimal_money("12000", "JPY") == "12000"
    assert rows.decimal_money("1.5", "KWD") == "1.500"
    assert rows.decimal_money("0.125", "USD") == "0.125"
    with pytest.raises(ValueError, match="not an amount"):
        rows.decimal_money("12,00", "EUR")


def test_payout_deposits_on_adds_deposits_csv_and_keeps_payouts_out_of_the_other_files(
    tmp_path: Any,
) -> None:
    """Given payout deposits on and a day holding an invoice, a Stripe payment, a booked payout and
    a parked one, when the day is exported, then deposits.csv holds the booked payout's four lines
    and the parked payout's row, no other file names a payout, the workbook has a deposits sheet,
    and the manifest counts the file's rows and the payouts by status with their totals."""
    s3 = FakeS3()
    payment = SyncRecord(
        connection_id="acme",
        kind="payment",
        source_id="inpay_1",
        currency="USD",
        source_total=36320,
        status=SyncStatus.SYNCED,
        updated_at=datetime(2026, 11, 25, 10, tzinfo=UTC),
    )
    parked = _payout(
        "po_2",
        status=SyncStatus.REJECTED,
        ledger_id=None,
        amount=5000,
        last_error="payout 50.00 USD, its transactions add up to 49.00 USD",
        alerted_reason="payout does not add up",
    )
    records = Records([_record(_invoice()), payment, _payout(summary=_deposit_summary()), parked])
    result = _deposit_service(s3, records, tmp_path, PayoutLookup(payout_deposits=True)).export("acme", DAY)
    files = s3.under(PREFIX)
    deposits = _csv(files[PREFIX + "deposits.csv"])
    assert [(r["payout_id"], r["line_kind"], r["amount"], r["sync_status"]) for r in deposits] == [
        ("po_1QxYz", "payment", "150.00", "synced"),
        ("po_1QxYz", "payment", "80.00", "synced"),
        ("po_1QxYz", "refund", "-20.00", "synced"),
        ("po_1QxYz", "fee", "-7.57", "synced"),
        ("po_2", "", "50.00", "rejected"),
    ]
    assert deposits[4]["reason"] == "payout does not add up"
    for name, data in files.items():
        if name.endswith(".csv") and not name.endswith("deposits.csv"):
            assert b"po_" not in data, name
    assert [r["source_id"] for r in _csv(files[PREFIX + "payments.csv"])] == ["inpay_1"]
    manifest = result.manifest
    assert manifest["files"]["deposits.csv"]["rows"] == 5
    assert (
        manifest["files"]["deposits.csv"]["sha256"]
        == hashlib.sha256(files[PREFIX + "deposits.csv"]).hexdigest()
    )
    assert manifest["documents"]["payout"] == {"rejected": 1, "synced": 1}
    assert manifest["totals"]["payout"] == {"USD": "252.43"}
    assert manifest["synced_totals"]["payout"] == {"USD": "202.43"}
    assert manifest["parked"]["payout does not add up"] == 1
    # Only the Stripe payment lacks a summary: a payout's summary is its deposit lines.
    assert manifest["records_without_summary"] == 1
    with zipfile.ZipFile(io.BytesIO(files[PREFIX + "export.xlsx"])) as book:
        assert 'name="deposits"' in book.read("xl/workbook.xml").decode()


def test_payout_deposits_on_writes_the_header_on_an_empty_day_and_off_changes_nothing(tmp_path: Any) -> None:
    """Given payout deposits on and a day without payouts, when exported, then deposits.csv is there
    with its header only; given it off (or no connection lookup), the same day's files are exactly
    the existing ones, byte for byte."""
    on = FakeS3()
    records = [_record(_invoice())]
    _deposit_service(on, Records(records), tmp_path, PayoutLookup(payout_deposits=True)).export("acme", DAY)
    assert on.objects[PREFIX + "deposits.csv"] == (",".join(rows.DEPOSIT_COLUMNS) + "\r\n").encode()

    off, plain = FakeS3(), FakeS3()
    _deposit_service(off, Records(records), tmp_path, PayoutLookup(payout_deposits=False)).export("acme", DAY)
    _service(plain, Records(records), tmp_path).export("acme", DAY)
    assert PREFIX + "deposits.csv" not in off.objects
    for name in ("invoices.csv", "invoice_lines.csv", "payments.csv", "credit_notes.csv", "refunds.csv"):
        assert off.objects[PREFIX + name] == plain.objects[PREFIX + name] == on.objects[PREFIX + name], name
    assert set(off.under(PREFIX)) == set(plain.under(PREFIX))


def test_payouts_of_a_connection_with_payout_deposits_off_are_still_exported(tmp_path: Any) -> None:
    """Given a connection with payout deposits off and a day holding the payout push skipped for
    it, when exported, then deposits.csv is written with that payout and its reason: a record of
    the day is never left out of the files."""
    s3 = FakeS3()
    skipped = _payout(status=SyncStatus.SKIPPED, ledger_id=None, last_error="payout deposits not enabled")
    result = _deposit_service(
        s3,
        Records([_record(_invoice()), skipped]),
        tmp_path,
        PayoutLookup(payout_deposits=False, ledger="xero"),
    ).export("acme", DAY)
    (row,) = _csv(s3.objects[PREFIX + "deposits.csv"])
    assert (row["ledger"], row["payout_id"], row["amount"], row["reason"]) == (
        "xero",
        "po_1QxYz",
        "202.43",
        "payout deposits not enabled",
    )
    assert result.manifest["files"]["deposits.csv"]["rows"] == 1
    with zipfile.ZipFile(io.BytesIO(s3.objects[PREFIX + "export.xlsx"])) as book:
        assert 'name="deposits"' in book.read("xl/workbook.xml").decode()
