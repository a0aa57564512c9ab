"""Wires the use cases to their stores and ledgers, once per process (cold start).

Handlers ask here for a service; tests call ``reset()`` after changing the environment, or build
services directly with fakes. ``build_push`` is the one recipe for the push use case: the push
Lambda calls it with the stores built here, the operator CLI with the stores of its target.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.models.mapping import Connection
from invoice_sync.settings import Settings, get_settings
from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.exports import MIB, ExportBucket
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.queue import SyncQueue
from invoice_sync.store.reports import ReportBucket
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.daily_report import DailyReport
from invoice_sync.sync.export import ExportService
from invoice_sync.sync.intake import IntakeService
from invoice_sync.sync.push import Alerts, Archive, MappingSource, PushService
from invoice_sync.sync.reconcile_service import ReconcileService


@cache
def _mappings() -> MappingsStore:
    return MappingsStore(get_settings().mappings_table)


@cache
def _state() -> SyncStateStore:
    return SyncStateStore(get_settings().sync_table)


@cache
def _secrets() -> SecretStore:
    settings = get_settings()
    return SecretStore(
        settings.secrets_prefix,
        cache_seconds=settings.secret_cache_seconds,
        on_tokens_saved=_state().record_token_dates,
    )


@cache
def intake() -> IntakeService:
    settings = get_settings()
    return IntakeService(
        connections=_mappings(),
        secrets=_secrets(),
        archive=RawArchive(settings.archive_bucket),
        queue=SyncQueue(settings.sync_queue_url),
        events=_state(),
        max_bytes=settings.max_webhook_bytes,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
    )


@cache
def ledgers() -> LedgerRegistry:
    return LedgerRegistry(get_settings(), _state(), _secrets())


def build_push(
    settings: Settings,
    *,
    state: SyncStateStore,
    mappings: MappingSource,
    archive: Archive,
    alerts: Alerts,
    ledger_for: LedgerRegistry,
) -> PushService:
    """The push use case on the given stores, tuned by ``settings``: the one way it is built, for
    the push Lambda (``push()``) and for the operator CLI (``try --push``, ``backfill``)."""
    return PushService(
        state=state,
        mappings=mappings,
        archive=archive,
        alerts=alerts,
        ledger_for=ledger_for,
        intent_timeout=timedelta(seconds=settings.intent_timeout_seconds),
        refund_settle=timedelta(seconds=settings.refund_settle_seconds),
        reserve_seconds=settings.push_reserve_seconds,
        ledger_usage=ledger_for.usage_since_last,
    )


@cache
def push() -> PushService:
    settings = get_settings()
    return build_push(
        settings,
        state=_state(),
        mappings=_mappings(),
        archive=RawArchive(settings.archive_bucket),
        alerts=AlertPublisher(settings.alerts_topic_arn),
        ledger_for=ledgers(),
    )


def build_export(
    settings: Settings,
    *,
    state: SyncStateStore,
    s3_client: Any | None = None,
    alerts: AlertPublisher,
) -> tuple[ExportService, DailyReport]:
    """The export use case and its report on the given stores: for the nightly_export Lambda
    (``nightly_export()``) and for the operator CLI (``invoice-sync export``)."""
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
    )
    report = DailyReport(facts=state, bucket=bucket, alerts=alerts, link_seconds=settings.export_link_seconds)
    return exporter, report


def mappings() -> MappingsStore:
    """The process's Mappings table store (connections and rules)."""
    return _mappings()


def state() -> SyncStateStore:
    """The process's SyncState table store."""
    return _state()


@cache
def nightly_export() -> tuple[ExportService, DailyReport]:
    settings = get_settings()
    return build_export(settings, state=_state(), alerts=AlertPublisher(settings.alerts_topic_arn))


@cache
def reconcile() -> ReconcileService:
    """The reconcile use case for the reconcile Lambda (the CLI builds its own on its target)."""
    settings = get_settings()
    return ReconcileService(
        records=_state(),
        reports=ReportBucket(settings.archive_bucket),
        alerts=AlertPublisher(settings.alerts_topic_arn),
        link_seconds=settings.export_link_seconds,
    )


def reconcile_sides(connection: Connection) -> tuple[StripeApi, LedgerPort]:
    """A connection's Stripe client (its stripe-api secret) and ledger adapter (its tokens
    refreshed and saved as push does), for the reconcile Lambda."""
    settings = get_settings()
    secrets = _secrets()
    mappings = _mappings().mappings(connection.connection_id)
    if mappings is None:
        raise LookupError(f"connection {connection.connection_id} has no mappings")
    stripe = StripeApi(
        settings.stripe_api_base,
        secrets.stripe_api_key(connection.connection_id),
        key_source=f"the secret {secrets.stripe_secret_name(connection.connection_id)}",
    )
    return stripe, ledgers()(mappings)


def reset() -> None:
    """Forget every wired object (tests change the environment between cases)."""
    for function in (
        _mappings,
        _state,
        _secrets,
        intake,
        ledgers,
        push,
        nightly_export,
        reconcile,
        get_settings,
        aws.client,
    ):
        function.cache_clear()
