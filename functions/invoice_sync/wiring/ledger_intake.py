"""The ledger webhook intake's wiring: the use case on the Mappings table (connections and the
tenant directory), the ledger-webhook secrets, the ledger events queue, and the raw archive and
alerts topic for authentic but unparseable deliveries, and the pending FreshBooks registrations.
No ledger adapter, no Stripe client: the internet-facing function holds no token and writes no
record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoice_sync.settings import get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.queue import LedgerEventsQueue
from invoice_sync.sync.intake import Refusals
from invoice_sync.sync.ledger_intake import LedgerIntake
from invoice_sync.wiring import once, stores

if TYPE_CHECKING:
    from invoice_sync.store.sync_state import PendingCallback


class PendingFreshBooksCallbacks:
    """The SyncState table's ``FBHOOK#`` items (one GetItem, the function's only read of that
    table). Its store is loaded on the first ``callback.verify``, not at cold start: a
    registration is rare, every other delivery never needs it."""

    def pending_callback(self, connection_id: str, callback_id: str) -> PendingCallback | None:
        from invoice_sync.wiring.state import state  # noqa: PLC0415

        return state().pending_callback(connection_id, callback_id)


@once
def ledger_intake() -> LedgerIntake:
    settings = get_settings()
    # S3 and SNS only for an authentic delivery refused as unparseable: their clients wait for it.
    archive = RawArchive(settings.archive_bucket, aws.OnFirstUse("s3"))
    return LedgerIntake(
        connections=stores.mappings(),
        keys=stores.secrets(),
        queue=LedgerEventsQueue(settings.ledger_events_queue_url),
        max_bytes=settings.max_webhook_bytes,
        refusals=Refusals(archive, AlertPublisher(settings.alerts_topic_arn, aws.OnFirstUse("sns"))),
        callbacks=PendingFreshBooksCallbacks(),
    )
