"""The push use case's wiring: SyncState, the Mappings table, the raw archive, alerts, the
ledger adapters and, for payouts, each connection's Stripe reader (its ``stripe-api`` key) and the
archive bucket's deposit-slips/ (FreshBooks' slips). ``build_push`` is the one recipe for the use case:
the push Lambda calls it with the stores built here, the operator CLI with the stores of its
target (without payouts, which only the Lambda books)."""

from __future__ import annotations

from datetime import timedelta

from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.settings import Settings, get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher, AlertWindows
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.reports import ReportBucket
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.payouts import PayoutService
from invoice_sync.sync.push import Alerts, Archive, MappingSource, PushService
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.ledgers import ledgers
from invoice_sync.wiring.state import state
from invoice_sync.wiring.stripe import StripeClients

# A payout's balance transactions are read inside push's 120 s (template.yaml): Stripe's in-place
# retries stop well inside it, and what is left over goes back to the queue.
STRIPE_TIMEOUT_SECONDS = 10.0
STRIPE_MAX_ATTEMPTS = 3
STRIPE_MAX_WAIT_SECONDS = 10.0


def build_push(
    settings: Settings,
    *,
    state: SyncStateStore,
    mappings: MappingSource,
    archive: Archive,
    alerts: Alerts,
    ledger_for: LedgerRegistry,
    payouts: PayoutService | None = None,
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
        payouts=payouts,
    )


@once
def push() -> PushService:
    settings = get_settings()
    sync_state = state()
    # SNS only when a record parks or a connection breaks: its client waits for that. A storm
    # of one cause is counted in a window in SyncState and summarised (store/alerts.py).
    alerts = AlertPublisher(
        settings.alerts_topic_arn,
        aws.OnFirstUse("sns"),
        windows=AlertWindows(settings.sync_table, aws.OnFirstUse("dynamodb")),
    )
    secrets = stores.secrets()
    payouts = PayoutService(
        state=sync_state,
        alerts=alerts,
        stripe_for=StripeClients(
            settings.stripe_api_base,
            secrets.stripe_api_key,
            secrets.stripe_secret_name,
            timeout=STRIPE_TIMEOUT_SECONDS,
            max_attempts=STRIPE_MAX_ATTEMPTS,
            max_wait_seconds=STRIPE_MAX_WAIT_SECONDS,
        ),
        # Only a FreshBooks payout writes a slip: the S3 client waits for that.
        slips=ReportBucket(settings.archive_bucket, aws.OnFirstUse("s3")),
        intent_timeout=timedelta(seconds=settings.intent_timeout_seconds),
    )
    return build_push(
        settings,
        state=sync_state,
        mappings=stores.mappings(),
        archive=RawArchive(settings.archive_bucket),
        alerts=alerts,
        ledger_for=ledgers(),
        payouts=payouts,
    )
