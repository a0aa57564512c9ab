"""The nightly export's wiring: the export use case and its daily report on SyncState, the
archive bucket's export prefix and alerts."""

from __future__ import annotations

from typing import Any

from invoice_sync.settings import Settings, get_settings
from invoice_sync.store.alerts import AlertPublisher, AlertWindows
from invoice_sync.store.exports import MIB, ExportBucket
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.daily_report import DailyReport
from invoice_sync.sync.export import ConnectionLookup, ExportService
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.state import state


def build_export(
    settings: Settings,
    *,
    state: SyncStateStore,
    s3_client: Any | None = None,
    alerts: AlertPublisher,
    connections: ConnectionLookup | None = None,
) -> tuple[ExportService, DailyReport]:
    """The export use case and its report on the given stores: for the nightly_export Lambda
    (``nightly_export()``) and for the operator CLI (``invoice-sync export``). ``connections``
    says which connections have payments back on (their ``payments_back.csv``)."""
    bucket = ExportBucket(settings.archive_bucket, s3_client, part_bytes=settings.export_part_mib * MIB)
    exporter = ExportService(
        records=state,
        bucket=bucket,
        alerts=alerts,
        marks=state,
        time_zone=settings.export_time_zone,
        tmpdir=settings.export_tmpdir,
        workbook_rows=settings.export_workbook_max_rows,
        locks=state,
        connections=connections,
    )
    report = DailyReport(facts=state, bucket=bucket, alerts=alerts, link_seconds=settings.export_link_seconds)
    return exporter, report


@once
def nightly_export() -> tuple[ExportService, DailyReport]:
    settings = get_settings()
    # The windows too: the nightly run sends the summaries of alert storms no push process is
    # left to send (store/alerts.py).
    alerts = AlertPublisher(settings.alerts_topic_arn, windows=AlertWindows(settings.sync_table))
    return build_export(settings, state=state(), alerts=alerts, connections=stores.mappings())
