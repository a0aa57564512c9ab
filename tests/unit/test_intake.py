"""Webhook intake: cheap checks first, the raw body queued with its snapshot (archived on its own
only when the two would not fit one message), nothing written on refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from invoice_sync.errors import (
    BadSignature,
    InvalidPayload,
    MessageTooLarge,
    PayloadTooLarge,
    UnknownConnection,
)
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources.stripe import SIGNATURE_HEADER, signature_header
from invoice_sync.sync.intake import IntakeOutcome, IntakeService

RawEvent = Callable[[str], bytes]

SECRET = "whsec_test"
NOW = 1_767_225_700  # 2026-01-01, a little after a1 was created
MAX_BYTES = 262_144


class Journal:
    def __init__(self) -> None:
        self.entries: list[str] = []


class FakeConnections:
    def __init__(self, journal: Journal, *connections: Connection) -> None:
        self.journal = journal
        self.by_id = {c.connection_id: c for c in connections}

    def connection(self, connection_id: str) -> Connection | None:
        self.journal.entries.append(f"connection {connection_id}")
        return self.by_id.get(connection_id)


class FakeSecrets:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def webhook_secrets(self, connection_id: str) -> list[SecretStr]:
        self.journal.entries.append(f"secrets {connection_id}")
        return [SecretStr(SECRET)]


class FakeArchive:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        self.journal.entries.append(f"archive {key}")
        self.objects[key] = (body, metadata)


class FakeQueue:
    """Refuses, as ``SyncQueue`` does, a message with its raw body over ``limit`` bytes."""

    def __init__(self, journal: Journal, error: Exception | None = None, limit: int = 240_000) -> None:
        self.journal = journal
        self.error = error
        self.limit = limit
        self.messages: list[SyncMessage] = []

    def send(self, message: SyncMessage) -> None:
        self.journal.entries.append(f"queue {message.event_id}")
        if self.error:
            raise self.error
        if message.raw is not None and len(message.model_dump_json()) > self.limit:
            raise MessageTooLarge("too big with its raw body")
        self.messages.append(message)


class World:
    """The intake service wired to in-memory fakes that share one journal."""

    def __init__(self, *, queue_error: Exception | None = None) -> None:
        self.journal = Journal()
        self.connections = FakeConnections(
            self.journal,
            Connection(connection_id="acme", tenant_id="123"),
            Connection(connection_id="paused", tenant_id="456", active=False),
        )
        self.archive = FakeArchive(self.journal)
        self.queue = FakeQueue(self.journal, queue_error)
        self.service = IntakeService(
            connections=self.connections,
            secrets=FakeSecrets(self.journal),
            archive=self.archive,
            queue=self.queue,
            max_bytes=MAX_BYTES,
            tolerance_seconds=300,
            clock=lambda: float(NOW),
        )

    def nothing_written(self) -> bool:
        return not self.archive.objects and not self.queue.messages


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature_header(body, [secret], NOW)}


def test_event_is_queued_with_its_raw_body_and_no_archive_write(raw_event: RawEvent) -> None:
    """Given a correctly signed a1, accept() sends one message carrying the snapshot, the exact raw
    body and the arrival time (push archives it); nothing else is written; the outcome is QUEUED."""
    world = World()
    body = raw_event("a1")
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.QUEUED
    assert result.event_id == "evt_1QaAcmeFinalized0001"
    assert result.event_type == "invoice.finalized"
    assert world.journal.entries == ["connection acme", "secrets acme", "queue evt_1QaAcmeFinalized0001"]
    assert world.archive.objects == {}
    (message,) = world.queue.messages
    assert message.connection_id == "acme"
    assert message.archive_key is None
    assert message.raw is not None and message.raw.encode() == body
    assert message.received_at == datetime.fromtimestamp(NOW, UTC)
    assert message.invoice is not None
    assert message.invoice.total == 167786
    assert message.version == 1767225600 * 10 + 1
    # What travels reads back as exactly itself, the body byte for byte.
    assert SyncMessage.model_validate_json(message.model_dump_json()) == message


def test_body_too_big_to_travel_is_archived_on_its_own_first(raw_event: RawEvent) -> None:
    """Given a message that would not fit in the queue with its raw body, accept() archives the body
    byte for byte under the event's own key, then queues the snapshot with that key and no body."""
    world = World()
    world.queue.limit = 1_000
    body = raw_event("a1")
    assert world.service.accept("stripe", "acme", signed(body), body).outcome is IntakeOutcome.QUEUED
    key = "raw/stripe/acme/2026/01/01/evt_1QaAcmeFinalized0001.json"
    assert world.journal.entries == [
        "connection acme",
        "secrets acme",
        "queue evt_1QaAcmeFinalized0001",
        f"archive {key}",
        "queue evt_1QaAcmeFinalized0001",
    ]
    stored_body, metadata = world.archive.objects[key]
    assert stored_body == body
    assert metadata == {
        "event-id": "evt_1QaAcmeFinalized0001",
        "event-type": "invoice.finalized",
        "connection": "acme",
    }
    (message,) = world.queue.messages
    assert message.archive_key == key
    assert message.raw is None
    assert message.invoice is not None


def test_duplicate_delivery_is_queued_again_for_push_to_ignore(raw_event: RawEvent) -> None:
    """Given the same event delivered twice, both are QUEUED with the same snapshot and version:
    there is no de-duplication marker to pay for; push's version guard makes the second a no-op
    (tests/integration/test_push.py)."""
    world = World()
    body = raw_event("a2")
    first = world.service.accept("stripe", "acme", signed(body), body)
    second = world.service.accept("stripe", "acme", signed(body), body)
    assert first.outcome is second.outcome is IntakeOutcome.QUEUED
    assert first.event_id == second.event_id == "evt_1QaAcmePaid000001"
    one, two = world.queue.messages
    assert one == two


@pytest.mark.parametrize("prefix", ["e1", "e2"])
def test_unhandled_event_type_is_ignored_and_nothing_written(raw_event: RawEvent, prefix: str) -> None:
    """Given a signed invoice.created or customer.created, accept() is IGNORED and writes nothing."""
    world = World()
    body = raw_event(prefix)
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.IGNORED
    assert world.nothing_written()
    assert not any(e.startswith("queue") for e in world.journal.entries)


def test_too_large_body_is_refused_before_any_call() -> None:
    """Given a body over max_bytes, accept() raises PayloadTooLarge before looking anything up."""
    world = World()
    body = b"x" * (MAX_BYTES + 1)
    with pytest.raises(PayloadTooLarge) as caught:
        world.service.accept("stripe", "acme", signed(body), body)
    assert caught.value.status_code == 413
    assert world.journal.entries == []


@pytest.mark.parametrize("connection_id", ["nobody", "paused"])
def test_unknown_or_inactive_connection_is_refused(raw_event: RawEvent, connection_id: str) -> None:
    """Given a connection id that does not exist (or is inactive), accept() raises UnknownConnection
    without reading secrets or writing anything."""
    world = World()
    body = raw_event("a1")
    with pytest.raises(UnknownConnection) as caught:
        world.service.accept("stripe", connection_id, signed(body), body)
    assert caught.value.status_code == 404
    assert world.journal.entries == [f"connection {connection_id}"]
    assert world.nothing_written()


def test_unknown_source_is_refused(raw_event: RawEvent) -> None:
    """Given a source other than stripe, accept() raises UnknownConnection before any call."""
    world = World()
    body = raw_event("a1")
    with pytest.raises(UnknownConnection, match="unknown source"):
        world.service.accept("paypal", "acme", signed(body), body)
    assert world.journal.entries == []


@pytest.mark.parametrize("headers", [{}, {SIGNATURE_HEADER: "t=1,v1=00"}, "wrong secret"])
def test_bad_signature_is_refused_and_nothing_written(raw_event: RawEvent, headers: object) -> None:
    """Given no header, a garbage header or a header signed with another secret, accept() raises
    BadSignature (401) and writes nothing."""
    world = World()
    body = raw_event("a1")
    sent = signed(body, "whsec_other") if headers == "wrong secret" else headers
    assert isinstance(sent, dict)
    with pytest.raises(BadSignature) as caught:
        world.service.accept("stripe", "acme", sent, body)
    assert caught.value.status_code == 401
    assert world.nothing_written()


def test_signed_invalid_json_is_refused_and_nothing_written() -> None:
    """Given a correctly signed body that is not JSON, accept() raises InvalidPayload and writes nothing."""
    world = World()
    body = b"{not json"
    with pytest.raises(InvalidPayload):
        world.service.accept("stripe", "acme", signed(body), body)
    assert world.nothing_written()


def test_signed_invoice_without_currency_is_refused_and_nothing_written(raw_event: RawEvent) -> None:
    """Given a correctly signed handled event whose invoice lacks currency, accept() raises
    InvalidPayload naming the field and writes nothing."""
    world = World()
    document = json.loads(raw_event("a1"))
    del document["data"]["object"]["currency"]
    body = json.dumps(document).encode()
    with pytest.raises(InvalidPayload, match=r"data\.object\.currency"):
        world.service.accept("stripe", "acme", signed(body), body)
    assert world.nothing_written()


def test_queue_failure_propagates_and_the_retry_is_queued(raw_event: RawEvent) -> None:
    """Given the queue failing, accept() raises (the sender gets an error and retries) having
    written nothing, and the sender's retry is accepted and queued."""
    world = World(queue_error=ConnectionError("SQS unavailable"))
    body = raw_event("a1")
    with pytest.raises(ConnectionError):
        world.service.accept("stripe", "acme", signed(body), body)
    assert world.nothing_written()
    world.queue.error = None
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.QUEUED
    assert len(world.queue.messages) == 1
