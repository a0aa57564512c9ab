"""The nightly export at scale: a day of generated records through the export use case, beside a
plain ``csv.writer`` writing the same rows to a local file, each in a fresh subprocess.

The records are generated (80% invoices with two lines each, 20% payments; USD, EUR, JPY, KWD)
and fed straight into ``ExportService`` by a record source standing in for the day index; S3 is
a stand-in that checks every multipart part (at least 5 MiB but the last), hashes and counts the
bytes, and discards them. So the figure is the exporter's own: row building, money formatting,
CSV encoding, the import layouts, the workbook (up to its row limit) and hashing.

Peak memory is the child's peak resident set (``resource.getrusage``): what Lambda's memory
limit counts, C buffers and XlsxWriter's included, which tracemalloc would not see; a fresh
subprocess per measurement so neither run inherits the other's heap.

    .venv/bin/python bench/export.py [--records 1000000]

Last line: ``export_rows_per_second=<n> rows/s``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store.exports import MIN_PART_BYTES, ExportBucket
from invoice_sync.sync import export_rows as rows
from invoice_sync.sync.export import ExportService

DAY = date(2026, 11, 25)
CURRENCIES = [("USD", 1), ("EUR", 1), ("JPY", 0.01), ("KWD", 10)]


def generate(count: int) -> Iterator[SyncRecord]:
    """``count`` records of one day, each with the summary push would have stored."""
    moment = datetime(2026, 11, 25, 12, tzinfo=UTC)
    for n in range(count):
        currency, scale = CURRENCIES[n % len(CURRENCIES)]
        a, b = int(12000 * scale) + n % 97, int(3500 * scale)
        tax = (a + b) // 10
        if n % 5 == 4:
            summary = json.dumps(
                {
                    "iss": "2026-11-25",
                    "cid": f"cus_{n % 5000}",
                    "cn": f"Customer {n % 5000}",
                    "tot": a + b + tax,
                    "inv": f"in_{n - 1}",
                    "invn": f"INV-{n - 1:07d}",
                    "ref": f"ch_{n}",
                },
                separators=(",", ":"),
            )
            yield SyncRecord.model_construct(
                connection_id="bench",
                kind="payment",
                source_id=f"inpay_{n}",
                source_number=f"INV-{n - 1:07d}",
                currency=currency,
                source_total=a + b + tax,
                status=SyncStatus.SYNCED,
                ledger_id=str(n),
                ledger_total=a + b + tax,
                mapping_version=2,
                summary=summary,
                updated_at=moment,
                ledger_number=None,
                last_error=None,
                alerted_reason=None,
            )
            continue
        summary = json.dumps(
            {
                "st": "open",
                "iss": "2026-11-25",
                "due": "2026-12-25",
                "cid": f"cus_{n % 5000}",
                "cn": f"Customer {n % 5000}, Ltd",
                "ce": f"ap{n % 5000}@example.test",
                "sub": a + b,
                "dis": 0,
                "tax": tax,
                "tot": a + b + tax,
                "paid": 0,
                "ln": [
                    [f"il_{n}_1", "Pro plan (monthly)", "prod_pro", 1, a, 0, tax, 0, "12", "4000", "TAX"],
                    [f"il_{n}_2", "Seats", "prod_seat", 5, b, 0, 0, 0, "13", "4000", "NON"],
                ],
            },
            separators=(",", ":"),
        )
        yield SyncRecord.model_construct(
            connection_id="bench",
            kind="invoice",
            source_id=f"in_{n}",
            source_number=f"INV-{n:07d}",
            currency=currency,
            source_total=a + b + tax,
            status=SyncStatus.SYNCED,
            ledger_id=str(n),
            ledger_total=a + b + tax,
            mapping_version=2,
            summary=summary,
            updated_at=moment,
            ledger_number=str(n),
            last_error=None,
            alerted_reason=None,
        )


class Records:
    def __init__(self, count: int) -> None:
        self.count = count

    def by_day(
        self, connection_id: str, since: datetime, until: datetime | None = None, *, newest_first: bool = True
    ) -> Iterator[SyncRecord]:
        return generate(self.count)


class CountingS3:
    """Checks part sizes as S3 would, hashes and counts the bytes, keeps none of them."""

    def __init__(self) -> None:
        self.bytes = 0
        self.parts = 0
        self._uploads: dict[str, list[int]] = {}
        self._hash = hashlib.sha256()

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        upload = f"u{len(self._uploads)}"
        self._uploads[upload] = []
        return {"UploadId": upload}

    def upload_part(self, *, UploadId: str, Body: bytes, **_: Any) -> dict[str, str]:
        self._uploads[UploadId].append(len(Body))
        self._hash.update(Body)
        self.bytes += len(Body)
        self.parts += 1
        return {"ETag": "e"}

    def complete_multipart_upload(self, *, UploadId: str, **_: Any) -> dict[str, Any]:
        sizes = self._uploads.pop(UploadId)
        assert all(size >= MIN_PART_BYTES for size in sizes[:-1]), sizes
        return {}

    def put_object(self, *, Body: bytes, **_: Any) -> dict[str, Any]:
        self._hash.update(Body)
        self.bytes += len(Body)
        return {}

    def abort_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}

    def copy_object(self, **_: Any) -> dict[str, Any]:
        return {}

    def delete_objects(self, **_: Any) -> dict[str, Any]:
        return {}

    def get_paginator(self, name: str) -> Any:
        class Empty:
            def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
                yield {"Contents": []}

        return Empty()


class _Marks:
    def alert_sent(self, key: str) -> bool:
        return False

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None:
        pass


class _Alerts:
    def publish(self, subject: str, text: str, details: dict[str, object]) -> None:
        raise AssertionError(f"the export failed: {subject}")


def child_exporter(count: int) -> dict[str, Any]:
    s3 = CountingS3()
    with tempfile.TemporaryDirectory() as tmpdir:
        service = ExportService(
            records=Records(count),
            bucket=ExportBucket("bench", s3),
            alerts=_Alerts(),
            marks=_Marks(),
            tmpdir=tmpdir,
        )
        start = time.perf_counter()
        result = service.export("bench", DAY)
        seconds = time.perf_counter() - start
    written = sum(f.rows for name, f in result.files.items() if name.endswith(".csv"))
    return {"rows": written, "seconds": seconds, "bytes": s3.bytes, "parts": s3.parts}


def child_plain(count: int) -> dict[str, Any]:
    """The same rows, built by the same row functions, through one plain csv.writer to a file."""
    start = time.perf_counter()
    written = 0
    from invoice_sync.models.summary import DocumentSummary  # noqa: PLC0415 - timed with the rest

    with tempfile.TemporaryFile("w", newline="") as handle:
        writer = csv.writer(handle)
        for record in generate(count):
            summary = DocumentSummary.load(record.summary)
            if record.kind == "invoice":
                out = [rows.invoice_row(record, summary), *rows.line_rows(record, summary)]
                if summary is not None and rows.importable(record, summary):
                    out += rows.xero_rows(record, summary) + rows.quickbooks_rows(record, summary)
            else:
                out = [rows.payment_row(record, summary)]
            writer.writerows(out)
            written += len(out)
    return {"rows": written, "seconds": time.perf_counter() - start}


def measure(kind: str, count: int) -> dict[str, Any]:
    output = subprocess.run(  # noqa: S603 - this interpreter, this file
        [sys.executable, __file__, "--child", kind, "--records", str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["exporter", "plain"])
    args = parser.parse_args()
    if args.child:
        figures = child_exporter(args.records) if args.child == "exporter" else child_plain(args.records)
        figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    exporter = measure("exporter", args.records)
    plain = measure("plain", args.records)
    export_rate = exporter["rows"] / exporter["seconds"]
    plain_rate = plain["rows"] / plain["seconds"]
    print(f"records: {args.records:,} (one day)")
    print(
        f"exporter: {exporter['rows']:,} CSV rows (+ workbook up to its limit) "
        f"in {exporter['seconds']:.1f} s, {exporter['bytes'] / 2**20:.0f} MiB "
        f"in {exporter['parts']} parts, peak RSS {exporter['peak_mib']:.0f} MiB"
    )
    print(
        f"plain csv.writer: {plain['rows']:,} rows in {plain['seconds']:.1f} s, "
        f"peak RSS {plain['peak_mib']:.0f} MiB"
    )
    print(f"exporter speed / plain writer: {export_rate / plain_rate:.2f}")
    print(f"export_peak_memory={exporter['peak_mib']:.0f} MiB")
    print(f"export_seconds={exporter['seconds']:.0f} s")
    print(f"export_rows_per_second={export_rate:.0f} rows/s")


if __name__ == "__main__":
    main()
