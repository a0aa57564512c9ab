"""Webhook intake: verify, validate and queue with the raw body; only then acknowledge.

Cheap checks come first (size, connection, signature) so a hostile sender costs little. The
accepted webhook's exact body travels in its queue message, and push archives a whole batch of
them in one S3 object before it does anything else (``store.archive``): a webhook costs one SQS
send, not an S3 PUT (12 times the price) and two DynamoDB requests as well. A body too big to
travel beside its snapshot is archived on its own first, as before.

There is no de-duplication marker: a sender's duplicate is queued again, and push's version guard
and content hash make it a no-op (DESIGN principle 1). A duplicate costs a queue message; the
marker cost a read and a write on every webhook, duplicate or not.

A request refused before its signature is verified (size, route, connection, signature) writes
nothing at all: a stranger cannot make us store or send anything. An *authentic* webhook (its
signature verified) that is still refused as invalid is the sender's bug or a schema change we
must hear about, so ``Refusals`` keeps it: the body is archived under its digest, beside the
accepted ones but where replay does not list it, and the connection's first such refusal of the
day is alerted; later ones that day are archived without another e-mail (a broken sender retries
every webhook for days: one alert, not thousands). It is still answered 400.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import SecretStr

from invoice_sync.errors import InvalidPayload, MessageTooLarge, PayloadTooLarge, UnknownConnection
from invoice_sync.models.documents import SourceEvent
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import archive_key, refused_key

# The shape every connection id has (``models.mapping.Connection``): anything else in the path is
# answered 404 without a lookup (a 3 KB id would otherwise reach DynamoDB's key limit as a 5xx).
CONNECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


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


class NewObjects(Protocol):
    def put_new(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """Writes ``key`` unless it exists; True when this call created it."""


class Alerts(Protocol):
    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None: ...


class Refusals:
    """Authentic webhooks refused as invalid: archived by digest, alerted once a connection a day."""

    def __init__(self, archive: NewObjects, alerts: Alerts) -> None:
        self.archive = archive
        self.alerts = alerts

    def refused(
        self, source: str, connection_id: str, body: bytes, error: InvalidPayload, received: datetime
    ) -> str:
        """Archives ``body`` (the same body again writes the same object); alerts on the day's first."""
        digest = hashlib.sha256(body).hexdigest()[:32]
        key = refused_key(source, connection_id, received, digest)
        # Metadata is ASCII only (S3): the reason, which names fields, never values, is cut short.
        reason = "".join(c if " " <= c < "\x7f" else "?" for c in str(error))[:500]
        self.archive.put_new(key, body, {"connection": connection_id, "reason": reason})
        day = refused_key(source, connection_id, received, "_alerted")
        if self.archive.put_new(day, b"", {"connection": connection_id, "first": key}):
            self.alerts.publish(
                f"invoice-sync: invalid webhook refused ({connection_id})",
                f"A correctly signed {source} webhook for connection {connection_id} was refused as "
                f"invalid (answered 400): {reason}. Its body is archived at {key}. Further invalid "
                f"webhooks of this connection today are archived beside it without another alert.",
                {
                    "kind": "invalid_webhook",
                    "reason": "invalid webhook",
                    "connection_id": connection_id,
                    "source": source,
                    "archive_key": key,
                    "error": reason,
                },
            )
        return key


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
        payout=event.payout,
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
        refusals: Refusals | None = None,
    ) -> None:
        self.connections = connections
        self.secrets = secrets
        self.archive = archive
        self.queue = queue
        self.max_bytes = max_bytes
        self.tolerance_seconds = tolerance_seconds
        self.clock = clock
        # None: an authentic but invalid webhook is refused and kept nowhere (unit tests, benches).
        self.refusals = refusals

    def accept(
        self, source: str, connection_id: str, headers: Mapping[str, str], body: bytes
    ) -> IntakeResult:
        if source not in SOURCES:
            raise UnknownConnection(
                f"unknown source {source!r}: expected one of {', '.join(sorted(SOURCES))}"
            )
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {self.max_bytes}")
        if not CONNECTION_ID.fullmatch(connection_id):
            raise UnknownConnection("unknown connection: not a connection id")
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
        received = datetime.fromtimestamp(now, UTC)
        try:
            event = parser.parse_event(body)
        except InvalidPayload as error:
            if self.refusals is not None:
                self.refusals.refused(source, connection_id, body, error, received)
            raise
        if event is None:
            return IntakeResult(IntakeOutcome.IGNORED)
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
