"""The daily reconciliation's wiring: the reconcile use case on SyncState, the report prefix and
alerts, and per connection its Stripe client and ledger adapter."""

from __future__ import annotations

from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.models.mapping import Connection
from invoice_sync.settings import get_settings
from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.reports import ReportBucket
from invoice_sync.sync.reconcile_service import ReconcileService
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.ledgers import ledgers
from invoice_sync.wiring.state import state


@once
def reconcile() -> ReconcileService:
    """The reconcile use case for the reconcile Lambda (the CLI builds its own on its target)."""
    settings = get_settings()
    return ReconcileService(
        records=state(),
        reports=ReportBucket(settings.archive_bucket),
        # SNS only for a day with differences or left incomplete: its client waits for that.
        alerts=AlertPublisher(settings.alerts_topic_arn, aws.OnFirstUse("sns")),
        link_seconds=settings.export_link_seconds,
    )


def reconcile_sides(connection: Connection) -> tuple[StripeApi, LedgerPort]:
    """A connection's Stripe client (its stripe-api secret) and ledger adapter (its tokens
    refreshed and saved as push does), for the reconcile Lambda."""
    settings = get_settings()
    secrets = stores.secrets()
    mappings = stores.mappings().mappings(connection.connection_id)
    if mappings is None:
        raise LookupError(f"connection {connection.connection_id} has no mappings")
    stripe = StripeApi(
        settings.stripe_api_base,
        secrets.stripe_api_key(connection.connection_id),
        key_source=f"the secret {secrets.stripe_secret_name(connection.connection_id)}",
    )
    return stripe, ledgers()(mappings)
