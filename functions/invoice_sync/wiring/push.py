"""The push use case's wiring: SyncState, the Mappings table, the raw archive, alerts and the
ledger adapters. ``build_push`` is the one recipe for the use case: the push Lambda calls it with
the stores built here, the operator CLI with the stores of its target."""

from __future__ import annotations

from datetime import timedelta

from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.settings import Settings, get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher, AlertWindows
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.push import Alerts, Archive, MappingSource, PushService
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.ledgers import ledgers
from invoice_sync.wiring.state import state


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


@once
def push() -> PushService:
    settings = get_settings()
    return build_push(
        settings,
        state=state(),
        mappings=stores.mappings(),
        archive=RawArchive(settings.archive_bucket),
        # SNS only when a record parks or a connection breaks: its client waits for that. A storm
        # of one cause is counted in a window in SyncState and summarised (store/alerts.py).
        alerts=AlertPublisher(
            settings.alerts_topic_arn,
            aws.OnFirstUse("sns"),
            windows=AlertWindows(settings.sync_table, aws.OnFirstUse("dynamodb")),
        ),
        ledger_for=ledgers(),
    )
