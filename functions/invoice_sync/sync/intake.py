"""Webhook intake: verify, validate, archive, de-duplicate and queue; only then acknowledge.

Cheap checks come first (size, connection, signature) so a hostile sender costs little; the raw
body is archived before it is queued, and the de-duplication marker is written last, so a crash
at any point leaves the sender's retry able to finish the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import SecretStr

from invoice_sync.errors import PayloadTooLarge, UnknownConnection
from invoice_sync.models.documents import SourceEvent
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import archive_key


class IntakeOutcome(StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
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
    def send(self, message: SyncMessage) -> None: ...


class EventLog(Protocol):
    def event_seen(self, connection_id: str, event_id: str) -> bool: ...

    def mark_event_seen(
        self, connection_id: str, event_id: str, archive_key: str, ttl_seconds: int
    ) -> None: ...


def sync_message(event: SourceEvent, *, source: str, connection_id: str, archive_key: str) -> SyncMessage:
    """The queue message of one accepted event: what intake sends, and what a re-drive or a
    replay rebuilds from the archived body (``invoice_sync.sync.replay``)."""
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
    )


class IntakeService:
    def __init__(
        self,
        *,
        connections: Connections,
        secrets: WebhookSecrets,
        archive: Archive,
        queue: Queue,
        events: EventLog,
        max_bytes: int,
        tolerance_seconds: int,
        dedupe_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connections = connections
        self.secrets = secrets
        self.archive = archive
        self.queue = queue
        self.events = events
        self.max_bytes = max_bytes
        self.tolerance_seconds = tolerance_seconds
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
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
        if self.events.event_seen(connection_id, event.event_id):
            return IntakeResult(IntakeOutcome.DUPLICATE, event.event_id, event.event_type)
        key = archive_key(source, connection_id, datetime.fromtimestamp(now, UTC), event.event_id)
        self.archive.put(
            key,
            body,
            {"event-id": event.event_id, "event-type": event.event_type, "connection": connection_id},
        )
        self.queue.send(sync_message(event, source=source, connection_id=connection_id, archive_key=key))
        self.events.mark_event_seen(connection_id, event.event_id, key, self.dedupe_ttl_seconds)
        return IntakeResult(IntakeOutcome.QUEUED, event.event_id, event.event_type)
