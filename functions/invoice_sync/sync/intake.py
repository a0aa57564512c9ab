"""Webhook intake: verify, validate and queue with the raw body; only then acknowledge.

Cheap checks come first (size, connection, signature) so a hostile sender costs little. The
accepted webhook's exact body travels in its queue message, and push archives a whole batch of
them in one S3 object before it does anything else (``store.archive``): a webhook costs one SQS
send, not an S3 PUT (12 times the price) and two DynamoDB requests as well. A body too big to
travel beside its snapshot is archived on its own first, as before.

There is no de-duplication marker: a sender's duplicate is queued again, and push's version guard
and content hash make it a no-op (DESIGN principle 1). A duplicate costs a queue message; the
marker cost a read and a write on every webhook, duplicate or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import SecretStr

from invoice_sync.errors import MessageTooLarge, PayloadTooLarge, UnknownConnection
from invoice_sync.models.documents import SourceEvent
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import archive_key


class IntakeOutcome(StrEnum):
    QUEUED = "queued"
    IGNORED = "ignored"


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    event_id: str | None = None
    event_type: str | None = None


class Connections(Protocol):
    def connection(self, connection_id: str) -> Connection | None: ...


class WebhookSecrets(Protocol):
    def webhook_secrets(self, connection_id: str) -> list[SecretStr]: ...


class Archive(Protocol):
    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None: ...


class Queue(Protocol):
    def send(self, message: SyncMessage) -> None:
        """Raises ``MessageTooLarge`` for a message with its raw body that cannot travel."""


def sync_message(
    event: SourceEvent,
    *,
    source: str,
    connection_id: str,
    archive_key: str | None = None,
    raw: str | None = None,
    received_at: datetime | None = None,
) -> SyncMessage:
    """The queue message of one accepted event: what intake sends (with its archive key, or its
    raw body to be archived by push), and what a re-drive or a replay rebuilds from the archived
    body (``invoice_sync.sync.replay``)."""
    return SyncMessage(
        connection_id=connection_id,
        source=source,
        event_id=event.event_id,
        event_type=event.event_type,
        version=event.version,
        archive_key=archive_key,
        invoice=event.invoice,
        credit_note=event.credit_note,
        refund=event.refund,
        raw=raw,
        received_at=received_at,
    )


class IntakeService:
    def __init__(
        self,
        *,
        connections: Connections,
        secrets: WebhookSecrets,
        archive: Archive,
        queue: Queue,
        max_bytes: int,
        tolerance_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connections = connections
        self.secrets = secrets
        self.archive = archive
        self.queue = queue
        self.max_bytes = max_bytes
        self.tolerance_seconds = tolerance_seconds
        self.clock = clock

    def accept(
        self, source: str, connection_id: str, headers: Mapping[str, str], body: bytes
    ) -> IntakeResult:
        if source not in SOURCES:
            raise UnknownConnection(
                f"unknown source {source!r}: expected one of {', '.join(sorted(SOURCES))}"
            )
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {self.max_bytes}")
        connection = self.connections.connection(connection_id)
        if connection is None or connection.source != source or not connection.active:
            raise UnknownConnection(f"unknown connection {connection_id!r}")
        secrets = [s.get_secret_value() for s in self.secrets.webhook_secrets(connection_id)]
        now = self.clock()
        parser = SOURCES[source]
        parser.verify_signature(
            body,
            headers.get(parser.SIGNATURE_HEADER),
            secrets,
            now=now,
            tolerance=self.tolerance_seconds,
        )
        event = parser.parse_event(body)
        if event is None:
            return IntakeResult(IntakeOutcome.IGNORED)
        received = datetime.fromtimestamp(now, UTC)
        text = _text(body)
        if text is not None:
            carried = sync_message(
                event, source=source, connection_id=connection_id, raw=text, received_at=received
            )
            try:
                self.queue.send(carried)
                return IntakeResult(IntakeOutcome.QUEUED, event.event_id, event.event_type)
            except MessageTooLarge:
                pass  # archived on its own, below
        key = archive_key(source, connection_id, received, event.event_id)
        self.archive.put(
            key,
            body,
            {"event-id": event.event_id, "event-type": event.event_type, "connection": connection_id},
        )
        self.queue.send(sync_message(event, source=source, connection_id=connection_id, archive_key=key))
        return IntakeResult(IntakeOutcome.QUEUED, event.event_id, event.event_type)


def _text(body: bytes) -> str | None:
    """The body as text, if it round-trips to the very same bytes (valid UTF-8 does)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None
