"""What ``try --push`` and ``backfill`` share: a Stripe invoice read outside a webhook made into
the snapshot push takes, archived as intake archives webhooks, and the push use case built in
the CLI process exactly as the push Lambda builds it (``bootstrap.build_push``).

An invoice fetched from Stripe's API has no event around it, so one is made up: an ``Event``
envelope (``object: "event"``) of the type its status implies (``invoice.finalized``, ``.paid``,
``.voided``, ``.marked_uncollectible``), stamped with the time of its last status change. The
same invoice in the same state always gives the same event id and version, so re-running an
import is a no-op for push's version guard, and ``replay``/``redrive`` re-read the archived body
with the Stripe parser like any webhook.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from invoice_sync import bootstrap
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources import SOURCES
from invoice_sync.sources.stripe_api import StripeApi, api_key
from invoice_sync.store.alerts import AlertPublisher, AlertWindows
from invoice_sync.store.archive import RawArchive, archive_key
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.sync.intake import sync_message
from invoice_sync.sync.push import PushService
from invoice_sync_ops.commands import Context

EVENT_FOR_STATUS = {
    "open": ("invoice.finalized", "finalized_at"),
    "paid": ("invoice.paid", "paid_at"),
    "void": ("invoice.voided", "voided_at"),
    "uncollectible": ("invoice.marked_uncollectible", "marked_uncollectible_at"),
}
BACKFILL_STATUSES = tuple(EVENT_FOR_STATUS)  # every finalized status; drafts are never books


def synthetic_event(invoice: dict[str, Any]) -> tuple[str, bytes]:
    """(event id, body) of the Stripe event that would carry this invoice in its current state."""
    status = str(invoice.get("status"))
    event_type, stamp = EVENT_FOR_STATUS.get(status, ("invoice.updated", "finalized_at"))
    transitions = invoice.get("status_transitions") or {}
    created = int(
        transitions.get(stamp)
        or transitions.get("finalized_at")
        or invoice.get("effective_at")
        or invoice.get("created")
        or 0
    )
    event_id = f"evt_import_{invoice.get('id')}_{status}_{created}"
    body = {
        "id": event_id,
        "object": "event",
        "api_version": None,
        "created": created,
        "data": {"object": invoice},
        "livemode": bool(invoice.get("livemode", False)),
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        # Not a Stripe field: says the event was made by invoice-sync from an API read.
        "invoice_sync": {"imported_from": "stripe-api"},
    }
    return event_id, json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def archived_message(
    archive: RawArchive, connection_id: str, source: str, body: bytes, *, received: datetime | None = None
) -> SyncMessage | None:
    """Archives ``body`` (an event of ``source``) as intake would and returns its sync message;
    None for an event push does not handle. Raises ``InvalidPayload`` for an unreadable one."""
    event = SOURCES[source].parse_event(body)
    if event is None:
        return None
    key = archive_key(source, connection_id, received or datetime.now(UTC), event.event_id)
    archive.put(
        key,
        body,
        {
            "event-id": event.event_id,
            "event-type": event.event_type,
            "connection": connection_id,
            "imported-by": "invoice-sync-cli",
        },
    )
    return sync_message(event, source=source, connection_id=connection_id, archive_key=key)


def carried_message(
    connection_id: str, source: str, body: bytes, *, received: datetime | None = None
) -> SyncMessage | None:
    """The sync message of ``body`` (an event of ``source``) as intake sends one: the raw body
    travels with it, and push archives it with the rest of its batch in one bundle before doing
    anything else (``PushService.archive_carried``), so a batch of 50 costs one S3 PUT, not 50.
    None for an event push does not handle; raises ``InvalidPayload`` for an unreadable one."""
    event = SOURCES[source].parse_event(body)
    if event is None:
        return None
    return sync_message(
        event,
        source=source,
        connection_id=connection_id,
        raw=body.decode("utf-8"),
        received_at=received or datetime.now(UTC),
    )


def archive(ctx: Context) -> RawArchive:
    return RawArchive(ctx.target.archive_bucket, ctx.target.client("s3"))


def push_service(ctx: Context) -> PushService:
    """The push Lambda's use case, on this deployment's stores and ledger adapters.

    Its mapping rules are read as the push Lambda reads them: cached while warm (``MappingsStore``'s
    default), not afresh for every invoice as the operator's own reads are (``ctx.mappings``).
    Uncached, a backfill paid two DynamoDB reads per invoice (the rules and the customer's rule)
    for what does not change during a run; push still reads afresh what it must (``forget`` on a
    re-drive or a replay).
    """
    target = ctx.target
    return bootstrap.build_push(
        target.settings(),
        state=ctx.state,
        mappings=MappingsStore(target.mappings_table, target.client("dynamodb")),
        archive=archive(ctx),
        # Windowed as push's are: a backfill that parks thousands for one missing mapping sends the
        # first alerts and one summary (the nightly export sends what this run leaves counted).
        alerts=AlertPublisher(
            target.alerts_topic_arn,
            target.client("sns"),
            windows=AlertWindows(target.sync_table, target.client("dynamodb")),
        ),
        ledger_for=ctx.ledgers,
    )


def stripe_client(ctx: Context, explicit_key: str | None, connection_id: str) -> StripeApi:
    key, source = api_key(explicit_key, ctx.secrets, connection_id)
    return StripeApi(ctx.target.stripe_api_base, key, key_source=source)
