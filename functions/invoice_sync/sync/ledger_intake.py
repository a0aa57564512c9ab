"""Ledger webhook intake: verify, answer the handshakes, normalise, enqueue; no ledger or Stripe call.

``POST /ledger-webhooks/{ledger}/{connection}`` (design two-way.md 3.2). The checks run cheapest
first, so a stranger costs a regex and a cached lookup at most:

1. ``ledger`` is one of the three (404);
2. ``connection`` has the shape of a connection id (``sync.intake.CONNECTION_ID``; 404);
3. the body is at most ``max_bytes`` (413);
4. the connection exists, is active and is wired to that ledger (404);
5. it has a ``ledger-webhook`` key (404: not configured is unknown) -- not asked of a FreshBooks
   ``callback.verify``, which comes before there is one;
6. the signature matches one of its keys, in constant time (``ledgers.webhooks``; 401, and nothing
   is written or kept: a stranger cannot make us store or send anything);
7. the handshakes: a Xero Intent-to-Receive is a signed body with no events, so it simply yields
   none (200); a FreshBooks ``callback.verify`` (unsigned: its verifier is the key to be) is
   believed only for a registration the connection has pending (``FBHOOK#``), else 404, and its
   verifier travels to the worker, which confirms it with FreshBooks before keeping it;
8. the body is parsed into events, and each event's tenant is routed to a connection (below);
   events of connections that have not turned payments back on are dropped (200 ``ignored``). An
   authentic body that cannot be parsed is refused 400, archived and alerted once a connection a
   day by ``sync.intake.Refusals``;
9. the messages are sent ten to an SQS request; any failure is left to raise (503: the ledger
   retries, and a message sent twice is harmless, since the worker re-reads what it names);
10. 200.

Routing: QuickBooks and Xero sign per app, not per company, so a delivery verified with the path
connection's key may name another company. An event whose tenant is the path connection's own goes
to it. Another tenant is looked up in the tenant directory (``MappingsStore.tenant_connection``),
and its events go to that connection only if its own keys verify this same delivery: nothing
verified with one connection's key is attributed to another that does not hold it. An event no
connection takes is logged and dropped, and the delivery is still answered 200 (Intuit stalls an
app's whole queue until a delivery is acknowledged).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, get_args

from pydantic import SecretStr

from invoice_sync.errors import BadSignature, InvalidPayload, PayloadTooLarge, UnknownConnection
from invoice_sync.ledgers import webhooks
from invoice_sync.ledgers.freshbooks import webhook as freshbooks
from invoice_sync.ledgers.quickbooks import webhook as quickbooks
from invoice_sync.ledgers.webhooks import LedgerEvent, UnparseableWebhook
from invoice_sync.ledgers.xero import webhook as xero
from invoice_sync.models.mapping import Connection, LedgerKind
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.observability import logger
from invoice_sync.sync.intake import CONNECTION_ID, Refusals

LEDGERS: frozenset[str] = frozenset(get_args(LedgerKind))

# The header each ledger signs with (the handler lower-cases every header name).
SIGNATURE_HEADERS: dict[str, str] = {
    "quickbooks": webhooks.QUICKBOOKS_HEADER,
    "xero": webhooks.XERO_HEADER,
    "freshbooks": webhooks.FRESHBOOKS_HEADER,
}


class LedgerIntakeOutcome(StrEnum):
    QUEUED = "queued"  # at least one message is on the ledger events queue
    IGNORED = "ignored"  # authentic, and nothing in it for a connection that follows payments back


@dataclass(frozen=True)
class LedgerIntakeResult:
    outcome: LedgerIntakeOutcome
    events: int = 0  # messages sent
    dropped: int = 0  # events no connection took, or whose connection has payments back off


class LedgerConnections(Protocol):
    def connection(self, connection_id: str) -> Connection | None: ...

    def tenant_connection(self, ledger: LedgerKind, tenant_id: str) -> str | None: ...


class LedgerWebhookKeys(Protocol):
    def ledger_webhook_keys(self, connection_id: str) -> list[SecretStr]:
        """Raises ``UnknownConnection`` (404) when the connection has no key configured."""


class PendingRegistration(Protocol):
    @property
    def state(self) -> str:
        """``pending`` until FreshBooks accepted the verifier, then ``verified``."""


class PendingCallbacks(Protocol):
    def pending_callback(self, connection_id: str, callback_id: str) -> PendingRegistration | None:
        """The registration of ``callback_id`` that ``invoice-sync connect freshbooks --webhooks``
        recorded for the connection (its ``FBHOOK#`` item, design 3.2), unless its hour is over."""


class LedgerEventSender(Protocol):
    def send_batch(self, messages: Sequence[LedgerEventMessage]) -> int: ...


def _verified_form(
    ledger: str, body: bytes, header: str | None, keys: Sequence[SecretStr]
) -> dict[str, str] | None:
    """Raises ``BadSignature`` unless ``body`` is signed with one of ``keys``; FreshBooks' form."""
    if ledger == "quickbooks":
        webhooks.verify_quickbooks(body, header, keys)
        return None
    if ledger == "xero":
        webhooks.verify_xero(body, header, keys)
        return None
    return webhooks.verify_freshbooks(body, header, keys)


def _parse(ledger: str, body: bytes, form: dict[str, str] | None) -> list[LedgerEvent]:
    """The events of a verified body; ``UnparseableWebhook`` for a shape no parser reads."""
    if ledger == "quickbooks":
        return quickbooks.parse(body)
    if ledger == "xero":
        return xero.parse(body)
    if form is None:  # verify_freshbooks returns the form it checked: never so
        raise UnparseableWebhook("body is not a form-encoded FreshBooks delivery")
    return freshbooks.parse(form)


def _unverified_form(body: bytes) -> dict[str, str] | None:
    """A FreshBooks body read as a form before any signature check, only to tell a
    ``callback.verify`` apart; None for a body that is no form (it will fail its signature)."""
    try:
        return webhooks.freshbooks_form(body)
    except UnparseableWebhook:
        return None


def _active(connections: LedgerConnections, ledger: str, connection_id: str) -> Connection | None:
    """The connection if it exists, is active and is wired to ``ledger``."""
    connection = connections.connection(connection_id)
    if connection is None or not connection.active or connection.ledger != ledger:
        return None
    return connection


class LedgerIntake:
    def __init__(
        self,
        *,
        connections: LedgerConnections,
        keys: LedgerWebhookKeys,
        queue: LedgerEventSender,
        max_bytes: int,
        refusals: Refusals | None = None,
        callbacks: PendingCallbacks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connections = connections
        self.keys = keys
        self.queue = queue
        self.max_bytes = max_bytes
        # None: an authentic but unparseable body is refused and kept nowhere (unit tests).
        self.refusals = refusals
        # None: no store of pending FreshBooks registrations, so every callback.verify is a
        # stranger's (404).
        self.callbacks = callbacks
        self.clock = clock

    def accept(
        self, ledger: str, connection_id: str, headers: Mapping[str, str], body: bytes
    ) -> LedgerIntakeResult:
        if ledger not in LEDGERS:
            raise UnknownConnection("unknown ledger")
        if not CONNECTION_ID.fullmatch(connection_id):
            raise UnknownConnection("unknown connection: not a connection id")
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {self.max_bytes}")
        connection = _active(self.connections, ledger, connection_id)
        if connection is None:
            raise UnknownConnection(f"unknown connection {connection_id!r}")
        if ledger == "freshbooks":
            form = _unverified_form(body)
            if form is not None and freshbooks.is_verify(form):
                return self._verify_callback(connection, form)
        try:
            keys = self.keys.ledger_webhook_keys(connection_id)
        except UnknownConnection:
            # Not configured is answered as unknown, in the same words.
            raise UnknownConnection(f"unknown connection {connection_id!r}") from None
        header = headers.get(SIGNATURE_HEADERS[ledger])
        form = _verified_form(ledger, body, header, keys)
        # Authentic from here on: what follows may be kept, logged and alerted.
        try:
            events = _parse(ledger, body, form)
        except InvalidPayload as error:
            if self.refusals is not None:
                received = datetime.fromtimestamp(self.clock(), UTC)
                self.refusals.refused(f"ledger/{ledger}", connection_id, body, error, received)
            raise
        router = _Router(self, connection, body, header)
        messages: list[LedgerEventMessage] = []
        for event in events:
            target = router.route(event)
            if target is not None:
                messages.append(event.message(target, connection.ledger))
        dropped = len(events) - len(messages)
        if not messages:
            return LedgerIntakeResult(LedgerIntakeOutcome.IGNORED, 0, dropped)
        sent = self.queue.send_batch(messages)
        return LedgerIntakeResult(LedgerIntakeOutcome.QUEUED, sent, dropped)

    def _verify_callback(self, connection: Connection, form: dict[str, str]) -> LedgerIntakeResult:
        """A FreshBooks registration handshake: it cannot be signed (the verifier it brings is the
        key), so it is believed only for a registration this connection has pending; any other is a
        stranger's or a stale one (404, nothing written). The verifier then travels to the worker,
        which confirms it with FreshBooks before it becomes a key."""
        try:
            events = freshbooks.parse(form)
        except UnparseableWebhook:
            # Not authentic either way: refused as unknown, and kept nowhere.
            raise UnknownConnection("no pending webhook registration") from None
        # One verify event, its callback id a checked string (1 to 255 characters): a key DynamoDB
        # takes, so a stranger's form cannot turn the lookup into a 5xx.
        for event in events:
            registration = (
                None
                if self.callbacks is None
                else self.callbacks.pending_callback(connection.connection_id, event.object_id)
            )
            if registration is None or registration.state != "pending":
                raise UnknownConnection("no pending webhook registration")
        messages = [event.message(connection.connection_id, connection.ledger) for event in events]
        return LedgerIntakeResult(LedgerIntakeOutcome.QUEUED, self.queue.send_batch(messages))


class _Router:
    """One delivery's tenants -> connections, each connection looked up (and checked against the
    delivery's signature) once."""

    def __init__(self, intake: LedgerIntake, path: Connection, body: bytes, header: str | None) -> None:
        self.intake = intake
        self.path = path
        self.body = body
        self.header = header
        self.ledger = path.ledger
        self.by_tenant: dict[str, Connection | None] = {}

    def route(self, event: LedgerEvent) -> str | None:
        """The connection id ``event`` is enqueued for, or None when it is dropped."""
        tenant = event.tenant_id
        connection = self.path if tenant is None or tenant == self.path.tenant_id else self._other(tenant)
        if connection is None:
            logger.info(
                "ledger event for unknown tenant",
                extra={"ledger": self.ledger, "connection_id": self.path.connection_id, "kind": event.kind},
            )
            return None
        if not connection.payments_back:
            return None
        return connection.connection_id

    def _other(self, tenant: str) -> Connection | None:
        if tenant not in self.by_tenant:
            self.by_tenant[tenant] = self._lookup(tenant)
        return self.by_tenant[tenant]

    def _lookup(self, tenant: str) -> Connection | None:
        intake = self.intake
        connection_id = intake.connections.tenant_connection(self.ledger, tenant)
        if connection_id is None or connection_id == self.path.connection_id:
            return None  # the path connection is another company's now: not this tenant's
        connection = _active(intake.connections, self.ledger, connection_id)
        if connection is None or connection.tenant_id != tenant:
            return None
        try:
            keys = intake.keys.ledger_webhook_keys(connection_id)
            _verified_form(self.ledger, self.body, self.header, keys)
        except (UnknownConnection, BadSignature):
            return None  # that connection does not hold the key this delivery was signed with
        return connection
