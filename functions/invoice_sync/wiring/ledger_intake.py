"""The ledger webhook intake's wiring: the use case on the Mappings table (connections and the
tenant directory), the ledger-webhook secrets, the ledger events queue, and the raw archive and
alerts topic for authentic but unparseable deliveries. No SyncState store, no ledger adapter, no
Stripe client: the internet-facing function holds no token and writes no record."""

from __future__ import annotations

import os

from invoice_sync.settings import get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.queue import LedgerEventsQueue
from invoice_sync.sync.intake import Refusals
from invoice_sync.sync.ledger_intake import LedgerIntake
from invoice_sync.wiring import once, stores

# template.yaml's Globals give every function the queue's URL, as they give SYNC_QUEUE_URL.
QUEUE_URL_VARIABLE = "LEDGER_EVENTS_QUEUE_URL"


@once
def ledger_intake() -> LedgerIntake:
    settings = get_settings()
    # S3 and SNS only for an authentic delivery refused as unparseable: their clients wait for it.
    archive = RawArchive(settings.archive_bucket, aws.OnFirstUse("s3"))
    return LedgerIntake(
        connections=stores.mappings(),
        keys=stores.secrets(),
        queue=LedgerEventsQueue(os.environ[QUEUE_URL_VARIABLE]),
        max_bytes=settings.max_webhook_bytes,
        refusals=Refusals(archive, AlertPublisher(settings.alerts_topic_arn, aws.OnFirstUse("sns"))),
    )
