"""The webhook intake's wiring: the intake use case on the Mappings table, the webhook secrets,
the raw archive and the sync queue, and the alerts topic for authentic but invalid webhooks."""

from __future__ import annotations

from invoice_sync.settings import get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.queue import SyncQueue
from invoice_sync.sync.intake import IntakeService, Refusals
from invoice_sync.wiring import once, stores


@once
def intake() -> IntakeService:
    settings = get_settings()
    archive = RawArchive(settings.archive_bucket, aws.OnFirstUse("s3"))
    return IntakeService(
        connections=stores.mappings(),
        secrets=stores.secrets(),
        # S3 only for a body that cannot travel in its queue message: its client waits for that.
        archive=archive,
        queue=SyncQueue(settings.sync_queue_url),
        max_bytes=settings.max_webhook_bytes,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        # Only an authentic webhook refused as invalid reaches these (its archive and one alert).
        refusals=Refusals(archive, AlertPublisher(settings.alerts_topic_arn, aws.OnFirstUse("sns"))),
    )
