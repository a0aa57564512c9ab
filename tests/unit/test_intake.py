"""Webhook intake: cheap checks first, archive then queue then mark seen, nothing written on refusal."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from invoice_sync.errors import BadSignature, InvalidPayload, PayloadTooLarge, UnknownConnection
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
    def __init__(self, journal: Journal, error: Exception | None = None) -> None:
        self.journal = journal
        self.error = error
        self.messages: list[SyncMessage] = []

    def send(self, message: SyncMessage) -> None:
        self.journal.entries.append(f"queue {message.event_id}")
        if self.error:
            raise self.error
        self.messages.append(message)


class FakeEvents:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.seen: dict[tuple[str, str], tuple[str, int]] = {}

    def event_seen(self, connection_id: str, event_id: str) -> bool:
        self.journal.entries.append(f"seen? {event_id}")
        return (connection_id, event_id) in self.seen

    def mark_event_seen(self, connection_id: str, event_id: str, archive_key: str, ttl_seconds: int) -> None:
        self.journal.entries.append(f"mark {event_id}")
        self.seen[(connection_id, event_id)] = (archive_key, ttl_seconds)


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
        self.events = FakeEvents(self.journal)
        self.service = IntakeService(
            connections=self.connections,
            secrets=FakeSecrets(self.journal),
            archive=self.archive,
            queue=self.queue,
            events=self.events,
            max_bytes=MAX_BYTES,
            tolerance_seconds=300,
            dedupe_ttl_seconds=604_800,
            clock=lambda: float(NOW),
        )

    def nothing_written(self) -> bool:
        return not self.archive.objects and not self.queue.messages and not self.events.seen


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature_header(body, [secret], NOW)}


def test_event_is_archived_then_queued_then_marked_seen(raw_event: RawEvent) -> None:
    """Given a correctly signed a1, accept() archives the raw bytes, queues the snapshot and only then
    marks the event seen; the outcome is QUEUED."""
    world = World()
    body = raw_event("a1")
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.QUEUED
    assert result.event_id == "evt_1QaAcmeFinalized0001"
    assert result.event_type == "invoice.finalized"
    key = "raw/stripe/acme/2026/01/01/evt_1QaAcmeFinalized0001.json"
    assert world.journal.entries == [
        "connection acme",
        "secrets acme",
        "seen? evt_1QaAcmeFinalized0001",
        f"archive {key}",
        "queue evt_1QaAcmeFinalized0001",
        "mark evt_1QaAcmeFinalized0001",
    ]
    stored_body, metadata = world.archive.objects[key]
    assert stored_body == body
    assert metadata == {
        "event-id": "evt_1QaAcmeFinalized0001",
        "event-type": "invoice.finalized",
        "connection": "acme",
    }
    (message,) = world.queue.messages
    assert message.connection_id == "acme"
    assert message.archive_key == key
    assert message.invoice is not None
    assert message.invoice.total == 167786
    assert message.version == 1767225600 * 10 + 1
    assert world.events.seen[("acme", "evt_1QaAcmeFinalized0001")] == (key, 604_800)


def test_duplicate_event_is_not_archived_or_queued_again(raw_event: RawEvent) -> None:
    """Given the same event delivered twice, the second accept() is DUPLICATE and writes nothing more."""
    world = World()
    body = raw_event("a2")
    world.service.accept("stripe", "acme", signed(body), body)
    archived, queued = dict(world.archive.objects), list(world.queue.messages)
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.DUPLICATE
    assert result.event_id == "evt_1QaAcmePaid000001"
    assert world.archive.objects == archived
    assert world.queue.messages == queued
    assert len(world.queue.messages) == 1


@pytest.mark.parametrize("prefix", ["e1", "e2"])
def test_unhandled_event_type_is_ignored_and_nothing_written(raw_event: RawEvent, prefix: str) -> None:
    """Given a signed invoice.created or customer.created, accept() is IGNORED and writes nothing."""
    world = World()
    body = raw_event(prefix)
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.IGNORED
    assert world.nothing_written()
    assert not any(e.startswith("seen?") for e in world.journal.entries)


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


def test_queue_failure_propagates_and_event_is_not_marked_seen(raw_event: RawEvent) -> None:
    """Given the queue failing, accept() raises (the sender gets an error and retries) and the event is
    NOT marked seen, so the retry is accepted and queued."""
    world = World(queue_error=ConnectionError("SQS unavailable"))
    body = raw_event("a1")
    with pytest.raises(ConnectionError):
        world.service.accept("stripe", "acme", signed(body), body)
    assert world.events.seen == {}
    assert world.queue.messages == []
    world.queue.error = None
    result = world.service.accept("stripe", "acme", signed(body), body)
    assert result.outcome is IntakeOutcome.QUEUED
    assert len(world.queue.messages) == 1
