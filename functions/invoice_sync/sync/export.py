"""The nightly export: a connection's day of sync records as files in S3, and the daily report.

The day is the calendar day in the export's time zone; its records are read through the
SyncState day index (page by page, never a scan) and each one becomes its rows at once, written
into every file as it goes: the document CSVs, the ledgers' own import layouts, and one workbook.
CSVs stream into S3 multipart uploads; the workbook is built by XlsxWriter in constant-memory mode
on local disk and streamed up when it is closed. So memory stays flat, whatever the day holds.

Files are staged, then published under ``exports/<connection>/<yyyy>/<mm>/<dd>/`` (the manifest
last, naming every file's SHA-256), and a re-run replaces them whole. A run that fails aborts
its uploads, removes what it staged or published, alerts once for the day, and raises so the
scheduler's retry runs it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import xlsxwriter

from invoice_sync.models.mapping import Connection
from invoice_sync.models.summary import DocumentSummary
from invoice_sync.models.sync import SyncRecord, utcnow
from invoice_sync.observability import logger
from invoice_sync.store.exports import STAGING, ExportBucket, MultipartWriter, WrittenFile, day_prefix
from invoice_sync.sync import export_rows as rows

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WORKBOOK = "export.xlsx"
MANIFEST = "manifest.json"
FAILURE_ALERT_SECONDS = 24 * 3600
XLSX_MAX_ROWS = 1_048_576  # rows per worksheet, the header included; more go on a continuation sheet

# name -> (columns, workbook sheet or None for the import layouts)
FILES: dict[str, tuple[list[str], str | None]] = {
    "invoices.csv": (rows.INVOICE_COLUMNS, "invoices"),
    "invoice_lines.csv": (rows.LINE_COLUMNS, "invoice_lines"),
    "payments.csv": (rows.PAYMENT_COLUMNS, "payments"),
    "credit_notes.csv": (rows.CREDIT_NOTE_COLUMNS, "credit_notes"),
    "refunds.csv": (rows.REFUND_COLUMNS, "refunds"),
    "xero_sales_invoices.csv": (rows.XERO_COLUMNS, None),
    "quickbooks_invoices.csv": (rows.QUICKBOOKS_COLUMNS, None),
}
# Payments back (issue 7): the ledger's own payments mirrored to Stripe. Written for a connection
# with payments back on (headers only on a day without any), and for any day that holds such
# records (a connection that had it on once); a connection that never had it gets the files above
# and nothing more.
PAYMENTS_BACK = "payments_back.csv"
PAYMENTS_BACK_FILE: tuple[list[str], str | None] = (rows.PAYMENTS_BACK_COLUMNS, "payments_back")
# Payouts as bank deposits (issue 7): one row per line of each payout's ledger deposit. Written for a
# connection with payout deposits on (headers only on a day without payouts), and for any day
# holding payout records; the other files never carry a payout.
DEPOSITS = "deposits.csv"
DEPOSITS_FILE: tuple[list[str], str | None] = (rows.DEPOSIT_COLUMNS, "deposits")
NUMBERS = {"quantity", "mapping_version", "lines", "lines_not_stored"}


# Under a run's staging prefix: the earlier run's files, kept until this one is published.
PREVIOUS = "previous/"


class DayRecords(Protocol):
    def by_day(
        self, connection_id: str, since: datetime, until: datetime | None = None, *, newest_first: bool = True
    ) -> Iterator[SyncRecord]: ...


class Connections(Protocol):
    def connections(self) -> list[Connection]: ...


class ConnectionLookup(Protocol):
    def connection(self, connection_id: str) -> Connection | None: ...


class Alerts(Protocol):
    def publish(self, subject: str, text: str, details: dict[str, object]) -> None: ...


class AlertMarks(Protocol):
    def alert_sent(self, key: str) -> bool: ...

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None: ...


@dataclass(frozen=True)
class Window:
    """A calendar day in a time zone, as the UTC instants it runs between (end excluded)."""

    day: date
    time_zone: str
    start: datetime
    end: datetime

    @classmethod
    def of(cls, day: date, time_zone: str) -> Window:
        zone = ZoneInfo(time_zone)
        start = datetime.combine(day, time.min, zone)
        end = datetime.combine(day + timedelta(days=1), time.min, zone)
        return cls(day, time_zone, start.astimezone(UTC), end.astimezone(UTC))

    def json(self) -> dict[str, str]:
        zone = ZoneInfo(self.time_zone)
        return {
            "date": self.day.isoformat(),
            "time_zone": self.time_zone,
            "start_utc": self.start.isoformat(),
            "end_utc": self.end.isoformat(),
            "start_local": self.start.astimezone(zone).isoformat(),
            "end_local": self.end.astimezone(zone).isoformat(),
        }


def previous_day(now: datetime, time_zone: str) -> date:
    """The day before ``now``'s date in the time zone: what a run after midnight exports."""
    return now.astimezone(ZoneInfo(time_zone)).date() - timedelta(days=1)


@dataclass
class Tally:
    """What the manifest and the report say about a day: counts, totals, reasons, versions."""

    documents: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    totals: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    synced_totals: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    parked: Counter[str] = field(default_factory=Counter)
    mapping_versions: set[int] = field(default_factory=set)
    without_summary: int = 0
    lines_not_stored: int = 0

    def add(self, record: SyncRecord, summary: DocumentSummary | None) -> None:
        self.documents[record.kind][record.status.value] += 1
        if record.kind == "payout":
            # A payout's summary is its deposit's lines (``export_rows.payout_summary``), not a
            # document summary; its total is the payout's amount, the bank line.
            self._add_payout(record)
            return
        # A ledger payment's money is the ledger's (``ledger_total``): it has no source total.
        amount = record.ledger_total if record.direction == "to_source" else record.source_total
        if record.currency and amount is not None:
            self.totals[record.kind][record.currency] += amount
            if record.status.value == "synced":
                self.synced_totals[record.kind][record.currency] += amount
        if record.status.parked:
            self.parked[rows.parked_reason(record)] += 1
        if record.mapping_version is not None:
            self.mapping_versions.add(record.mapping_version)
        if summary is None:
            self.without_summary += 1
        elif summary.lines_dropped:
            self.lines_not_stored += 1

    def _add_payout(self, record: SyncRecord) -> None:
        if record.currency and record.source_total is not None:
            self.totals[record.kind][record.currency] += record.source_total
            if record.status.value == "synced":
                self.synced_totals[record.kind][record.currency] += record.source_total
        if record.status.parked:
            self.parked[rows.parked_reason(record)] += 1
        if record.mapping_version is not None:
            self.mapping_versions.add(record.mapping_version)
        if record.status.value == "synced" and rows.payout_summary(record) is None:
            self.without_summary += 1

    @property
    def count(self) -> int:
        return sum(sum(c.values()) for c in self.documents.values())

    def json(self) -> dict[str, Any]:
        def amounts(table: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
            return {
                kind: {currency: rows.money(minor, currency) for currency, minor in sorted(by.items())}
                for kind, by in sorted(table.items())
            }

        return {
            "documents": {kind: dict(sorted(c.items())) for kind, c in sorted(self.documents.items())},
            "totals": amounts(self.totals),
            "synced_totals": amounts(self.synced_totals),
            "parked": dict(sorted(self.parked.items())),
            "mapping_versions": sorted(self.mapping_versions),
            "records_without_summary": self.without_summary,
            "documents_with_lines_not_stored": self.lines_not_stored,
        }


class CsvFile:
    """One CSV streamed into an upload: rows gather as text and go up a megabyte at a time."""

    FLUSH_CHARS = 1 << 20

    def __init__(self, name: str, columns: Sequence[str], upload: MultipartWriter) -> None:
        self.name = name
        self.rows = 0
        self._upload = upload
        self._text = io.StringIO()
        # RFC 4180 line ends; every field quoted only where it must be.
        self._writer = csv.writer(self._text, lineterminator="\r\n")
        self._writer.writerow(columns)

    def write(self, row: Sequence[str]) -> None:
        self._writer.writerow(row)
        self.rows += 1
        if self._text.tell() >= self.FLUSH_CHARS:
            self._flush()

    def _flush(self) -> None:
        self._upload.write(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()

    def close(self) -> WrittenFile:
        self._flush()
        return self._upload.close(self.name)

    def abort(self) -> None:
        self._upload.abort()


class _Sheet:
    def __init__(self, book: Workbook, name: str, columns: Sequence[str]) -> None:
        self.book = book
        self.name = name
        self.columns = list(columns)
        self.kinds = [
            "amount" if c in rows.AMOUNTS else "number" if c in NUMBERS else "text" for c in self.columns
        ]
        self.currency = self.columns.index("currency") if "currency" in self.columns else None
        self.parts = 0
        self.row = XLSX_MAX_ROWS  # the first write opens the first worksheet
        self.rows = 0
        self.worksheet: Any = None

    def _open(self) -> None:
        self.parts += 1
        title = self.name if self.parts == 1 else f"{self.name} ({self.parts})"
        self.worksheet = self.book.book.add_worksheet(title)
        for column, name in enumerate(self.columns):
            self.worksheet.write_string(0, column, name, self.book.header)
        self.row = 1

    def write(self, values: Sequence[str]) -> None:
        if self.row >= XLSX_MAX_ROWS:
            self._open()
        sheet, row, kinds = self.worksheet, self.row, self.kinds
        money = self.book.money_format(values[self.currency] if self.currency is not None else "")
        for column, value in enumerate(values):
            if not value:
                continue
            kind = kinds[column]
            if kind == "text":
                # write_string keeps a description that starts with "=" text, never a formula, so
                # the apostrophe the CSVs put before such text is not needed (nor shown) here.
                sheet.write_string(row, column, rows.as_typed(value))
            elif kind == "amount":
                # A number for Excel to add up (exact in a double below 15 significant digits).
                sheet.write_number(row, column, float(value), money)
            else:
                sheet.write_number(row, column, int(value))
        self.row += 1
        self.rows += 1


class Workbook:
    """The day's sheets in one .xlsx, built row by row in XlsxWriter's constant-memory mode: each
    row goes to a temporary file as it is written, so memory does not grow with the day.

    XlsxWriter spends about 25 times what a CSV row costs on a row (bench/export.py), so a day of
    more than ``max_rows`` rows gets a workbook with a note instead of the sheets: the CSVs carry
    every row, and the export stays inside Lambda's 15 minutes at a million invoices a day.
    """

    def __init__(self, directory: str | None, max_rows: int) -> None:
        self.directory = directory
        self.max_rows = max_rows
        self.rows = 0
        self.omitted = False
        self._start()

    def _start(self) -> None:
        handle, self.path = tempfile.mkstemp(suffix=".xlsx", dir=self.directory)
        os.close(handle)
        self.book = xlsxwriter.Workbook(
            self.path,
            {"constant_memory": True, "tmpdir": self.directory or tempfile.gettempdir(), "use_zip64": True},
        )
        self.header = self.book.add_format({"bold": True})
        self._formats = {
            places: self.book.add_format({"num_format": "0" if places == 0 else "0." + "0" * places})
            for places in range(5)
        }
        self.sheets: dict[str, _Sheet] = {}

    def sheet(self, name: str, columns: Sequence[str]) -> _Sheet:
        self.sheets[name] = _Sheet(self, name, columns)
        return self.sheets[name]

    def write(self, sheet: _Sheet, row: Sequence[str]) -> None:
        if self.omitted:
            return
        self.rows += 1
        if self.rows > self.max_rows:
            self._omit()
            return
        sheet.write(row)

    def _omit(self) -> None:
        """Drops the sheets written so far (their temporary files go with the workbook object)
        and starts the note-only workbook the day gets instead."""
        self.omitted = True
        self.sheets = {}
        self.discard()
        self._start()
        note = self.book.add_worksheet("about")
        note.write_string(
            0,
            0,
            f"This day has more than {self.max_rows} rows, the workbook's limit "
            "(EXPORT_WORKBOOK_MAX_ROWS): the CSV files beside this workbook hold every row.",
        )

    def money_format(self, currency: str) -> Any:
        return self._formats[min(rows._exponent(currency), 4)] if currency else self._formats[2]

    def close(self) -> str:
        for sheet in self.sheets.values():
            if sheet.worksheet is None:
                sheet._open()  # an empty day still has every sheet, with its header
        self.book.close()
        return self.path

    def discard(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


@dataclass(frozen=True)
class FileInfo:
    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    connection_id: str
    window: Window
    bucket: str
    prefix: str
    files: dict[str, FileInfo]
    tally: Tally
    manifest: dict[str, Any]

    @property
    def workbook_key(self) -> str:
        return self.prefix + WORKBOOK

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST

    def json(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "window": self.window.json(),
            "location": f"s3://{self.bucket}/{self.prefix}",
            "files": {
                name: {"key": f.key, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
                for name, f in self.files.items()
            },
            **self.tally.json(),
        }


class ExportFailed(Exception):
    """An export did not complete; nothing of it is left under the day's key."""


class _Run:
    """One export's open files, so that a failure can take every one of them back."""

    def __init__(
        self,
        bucket: ExportBucket,
        staging: str,
        tmpdir: str | None,
        workbook_rows: int,
        *,
        payments_back: bool = False,
        payout_deposits: bool = False,
        ledger: str = "",
    ) -> None:
        self.bucket = bucket
        self.staging = staging
        self.ledger = ledger
        self.files = dict(FILES)
        if payments_back:
            self.files[PAYMENTS_BACK] = PAYMENTS_BACK_FILE
        if payout_deposits:
            self.files[DEPOSITS] = DEPOSITS_FILE
        self.csv = {
            name: CsvFile(name, columns, bucket.writer(staging + name, CSV_TYPE))
            for name, (columns, _) in self.files.items()
        }
        # The workbook and XlsxWriter's per-sheet temporary files live in a directory of this run's
        # own, removed however the run ends: a warm Lambda's /tmp must not fill up across runs.
        self._scratch = tempfile.TemporaryDirectory(dir=tmpdir, prefix="export-")
        self.workbook = Workbook(self._scratch.name, workbook_rows)
        self.sheets = {
            name: self.workbook.sheet(sheet, columns)
            for name, (columns, sheet) in self.files.items()
            if sheet is not None
        }
        self.staged: list[WrittenFile] = []

    def open(self, name: str, layout: tuple[list[str], str | None]) -> None:
        """Opens a file the run did not start with (a kind of record the day turned out to hold),
        and its sheet unless the workbook already gave way to its note."""
        if name in self.csv:
            return
        columns, sheet = layout
        self.files[name] = layout
        self.csv[name] = CsvFile(name, columns, self.bucket.writer(self.staging + name, CSV_TYPE))
        if sheet is not None and not self.workbook.omitted:
            self.sheets[name] = self.workbook.sheet(sheet, columns)

    def write(self, name: str, row: Sequence[str]) -> None:
        self.csv[name].write(row)
        sheet = self.sheets.get(name)
        if sheet is not None:
            self.workbook.write(sheet, row)

    def close(self) -> list[WrittenFile]:
        for file in self.csv.values():
            self.staged.append(file.close())
        path = self.workbook.close()
        with open(path, "rb") as handle:
            self.staged.append(self.bucket.upload_file(handle, self.staging + WORKBOOK, WORKBOOK, XLSX_TYPE))
        self.workbook.discard()
        self._scratch.cleanup()
        return self.staged

    def abort(self) -> None:
        for file in self.csv.values():
            try:
                file.abort()
            except Exception as error:  # noqa: BLE001 - the lifecycle rule aborts what is left
                logger.warning("upload not aborted", extra={"file": file.name, "error": str(error)})
        self.workbook.discard()
        self._scratch.cleanup()


class Locks(Protocol):
    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...


class ExportBusy(Exception):
    """Another run holds the connection's day: this one publishes nothing."""


# Longer than the export function may run (its timeout is 900 s): a crashed run's lease lapses.
EXPORT_LEASE_SECONDS = 960


class ExportService:
    def __init__(
        self,
        *,
        records: DayRecords,
        bucket: ExportBucket,
        alerts: Alerts,
        marks: AlertMarks,
        time_zone: str = "UTC",
        tmpdir: str | None = None,
        workbook_rows: int = 200_000,
        clock: Callable[[], datetime] = utcnow,
        locks: Locks | None = None,
        connections: ConnectionLookup | None = None,
    ) -> None:
        ZoneInfo(time_zone)  # an unknown zone fails here, at cold start, not at midnight
        self.locks = locks
        # Whether a connection has payments back on (its payments_back.csv) or payout deposits on
        # (its deposits.csv), and its ledger's name; without it, those files are written only for a
        # day holding such records.
        self.connections = connections
        self.records = records
        self.bucket = bucket
        self.alerts = alerts
        self.marks = marks
        self.time_zone = time_zone
        self.tmpdir = tmpdir
        self.workbook_rows = workbook_rows
        self.clock = clock

    def export(self, connection_id: str, day: date, time_zone: str | None = None) -> ExportResult:
        """Writes the day's files and publishes them; ``ExportFailed`` (alerted) when it cannot."""
        window = Window.of(day, time_zone or self.time_zone)
        try:
            return self._export(connection_id, window)
        except Exception as error:
            self._alert_failure(connection_id, window, error)
            raise ExportFailed(f"export of {connection_id} for {day} failed: {error}") from error

    def _export(self, connection_id: str, window: Window) -> ExportResult:
        run = uuid.uuid4().hex
        if self.locks is None:
            return self._export_run(connection_id, window, run)
        # One run of a connection's day at a time (Lambda's at-least-once invokes, an operator's
        # `invoice-sync export` during the night's): two publishing at once would interleave files
        # and leave a manifest whose digests name the other run's bytes.
        lease = f"export#{connection_id}#{window.day.isoformat()}"
        if not self.locks.acquire_lock(lease, run, EXPORT_LEASE_SECONDS):
            raise ExportBusy(f"another export of {connection_id} for {window.day.isoformat()} is running")
        try:
            return self._export_run(connection_id, window, run)
        finally:
            self.locks.release_lock(lease, run)

    def _export_run(self, connection_id: str, window: Window, run: str) -> ExportResult:
        staging = f"{STAGING}/{run}/{day_prefix(connection_id, window.day).removeprefix('exports/')}"
        prefix = day_prefix(connection_id, window.day)
        connection = self.connections.connection(connection_id) if self.connections is not None else None
        files = _Run(
            self.bucket,
            staging,
            self.tmpdir,
            self.workbook_rows,
            payments_back=connection is not None and connection.payments_back,
            payout_deposits=connection is not None and connection.payout_deposits,
            ledger=connection.ledger if connection is not None else "",
        )
        tally = Tally()
        published: list[str] = []
        previous: list[WrittenFile] = []  # the earlier run's files, kept under the staging prefix
        old: list[str] = []
        try:
            # ``by_day`` takes inclusive bounds; the window's end belongs to the next day.
            until = window.end - timedelta(microseconds=1)
            for record in self.records.by_day(connection_id, window.start, until, newest_first=False):
                self._write(files, record, tally)
            staged = files.close()
            counts = {name: file.rows for name, file in files.csv.items()}
            counts[WORKBOOK] = 0 if files.workbook.omitted else sum(counts[name] for name in files.sheets)
            manifest = self._manifest(connection_id, window, staged, counts, tally)
            manifest["workbook_sheets_omitted"] = files.workbook.omitted
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            writer = self.bucket.writer(staging + MANIFEST, "application/json")
            writer.write(body)
            staged.append(writer.close(MANIFEST))
            # An earlier run's files are kept aside first, so that a failure while publishing puts
            # the day back as it was instead of leaving a mix. Then: its manifest goes (a folder
            # without one is incomplete), every file is published, and the manifest that names them.
            old = list(self.bucket.keys(prefix))
            for key in old:
                kept = self.bucket.described(key, key.removeprefix(prefix))
                self.bucket.publish(kept, f"{staging}{PREVIOUS}{kept.name}")
                previous.append(replace(kept, key=f"{staging}{PREVIOUS}{kept.name}"))
            self.bucket.delete([prefix + MANIFEST] if prefix + MANIFEST in old else [])
            for file in staged:
                self.bucket.publish(file, prefix + file.name)
                published.append(prefix + file.name)
        except BaseException:
            files.abort()
            self._restore(prefix, previous, published)
            self._clean(staging, [])
            raise
        # Published: what the earlier run had and this one has not is only stale now, and a failure
        # to remove it must not take back a complete day.
        stale = [key for key in old if key not in set(published)]
        try:
            self.bucket.delete(stale)
        except Exception as error:  # noqa: BLE001 - the day is complete; the manifest names its files
            logger.warning("stale export files not removed", extra={"keys": len(stale), "error": str(error)})
        self._clean(staging, [])
        infos = {
            file.name: FileInfo(prefix + file.name, counts.get(file.name, 0), file.size, file.sha256)
            for file in staged
        }
        logger.info(
            "exported",
            extra={"connection_id": connection_id, "day": window.day.isoformat(), "documents": tally.count},
        )
        return ExportResult(connection_id, window, self.bucket.bucket, prefix, infos, tally, manifest)

    @staticmethod
    def _write(files: _Run, record: SyncRecord, tally: Tally) -> None:
        summary = DocumentSummary.load(record.summary)
        tally.add(record, summary)
        if record.kind == "invoice":
            files.write("invoices.csv", rows.invoice_row(record, summary))
            for line in rows.line_rows(record, summary):
                files.write("invoice_lines.csv", line)
            if summary is not None and rows.importable(record, summary):
                for row in rows.xero_rows(record, summary):
                    files.csv["xero_sales_invoices.csv"].write(row)
                for row in rows.quickbooks_rows(record, summary):
                    files.csv["quickbooks_invoices.csv"].write(row)
        elif record.kind == "payment":
            files.write("payments.csv", rows.payment_row(record, summary))
        elif record.kind == "credit_note":
            files.write("credit_notes.csv", rows.credit_note_row(record, summary))
        elif record.kind == "refund":
            files.write("refunds.csv", rows.refund_row(record, summary))
        elif record.kind == "ledger_payment":
            files.open(PAYMENTS_BACK, PAYMENTS_BACK_FILE)
            files.write(PAYMENTS_BACK, rows.payments_back_row(record, summary, files.ledger))
        elif record.kind == "payout":
            files.open(DEPOSITS, DEPOSITS_FILE)
            for row in rows.deposit_rows(record, files.ledger):
                files.write(DEPOSITS, row)

    def _manifest(
        self,
        connection_id: str,
        window: Window,
        staged: list[WrittenFile],
        counts: dict[str, int],
        tally: Tally,
    ) -> dict[str, Any]:
        return {
            "connection_id": connection_id,
            "window": window.json(),
            "generated_at": self.clock().isoformat(),
            "files": {
                file.name: {"rows": counts.get(file.name, 0), "bytes": file.size, "sha256": file.sha256}
                for file in staged
            },
            **tally.json(),
        }

    def _restore(self, prefix: str, previous: list[WrittenFile], published: list[str]) -> None:
        """After a failed publish: the day as the earlier run left it (its files and manifest put
        back), nothing of this run's. Best effort, logged: the alert says the day needs a re-run."""
        try:
            kept = {prefix + file.name for file in previous}
            self.bucket.delete([key for key in published if key not in kept])
            for file in sorted(previous, key=lambda f: f.name == MANIFEST):  # the manifest last
                self.bucket.publish(file, prefix + file.name)
        except Exception as error:  # noqa: BLE001 - the failure itself is already on its way up
            logger.warning("earlier export not restored", extra={"prefix": prefix, "error": str(error)})

    def _clean(self, staging: str, published: list[str]) -> None:
        """Removes the run's staging copies (and, after a failure, what it had published)."""
        try:
            self.bucket.delete([*self.bucket.keys(staging), *published])
        except Exception as error:  # noqa: BLE001 - the staging prefix expires by lifecycle rule anyway
            logger.warning("staging not removed", extra={"prefix": staging, "error": str(error)})

    def _alert_failure(self, connection_id: str, window: Window, error: BaseException) -> None:
        """One alert per connection and day, however many retries fail."""
        key = f"export#{connection_id}#{window.day.isoformat()}"
        try:
            if self.marks.alert_sent(key):
                return
            self.alerts.publish(
                f"invoice-sync: export failed ({connection_id}, {window.day.isoformat()})",
                f"The export of connection {connection_id} for {window.day.isoformat()} "
                f"({window.time_zone}) failed: {type(error).__name__}: {error}.\nNothing of it was "
                "published; the scheduler retries it, or run `invoice-sync export --date "
                f"{window.day.isoformat()} --connection {connection_id}`.",
                {
                    "connection_id": connection_id,
                    "kind": "export",
                    "reason": "export failed",
                    "date": window.day.isoformat(),
                    "detail": f"{type(error).__name__}: {error}",
                },
            )
            self.marks.mark_alert_sent(key, FAILURE_ALERT_SECONDS)
        except Exception as failure:  # noqa: BLE001 - the export's own error is what must surface
            logger.error("export failure not alerted", extra={"error": str(failure)})
