"""The Xero payments poll (design two-way 3.3, "The Xero poll"): Xero's webhooks have no payment
category, so a schedule reads each Xero connection's changed Payments and hands every payment a
person may have recorded to the payments-back worker, as a ``LedgerEventMessage`` on the ledger
events queue. The INVOICE webhook is only a fast path; this poll is the guarantee.

Per active Xero connection with ``payments_back`` on:

1. take the lease ``LOCK#poll-xero#{connection}`` (240 s), so two overlapping runs never read
   the same window;
2. read the cursor (``POLL#{connection}`` / ``xero-payments``). The first run starts at the
   connection's ``payments_back_since`` (``connect`` sets it to when payments back was turned
   on); a connection without one starts *now*, and that start is saved as its cursor at once, so
   nothing older than the first poll is ever mirrored. A cursor older than ``payments_back_since``
   (the setting moved forward since) starts at the setting: the worker would skip older ones;
3. read ``GET /Payments`` (the adapter's ``list_ledger_payments``: ``If-Modified-Since`` one second
   early, ``order=UpdatedDateUTC ASC``, 100 a page) while pages come back full;
4. send one message per ``ACCRECPAYMENT`` (credit notes, prepayments and overpayments are not
   mirrored in phase 1) that does not carry invoice-sync's marker (push's own payments, echo rule
   1 of 3.6), with the Payment element as its payload when the ledger hands elements out and the
   element fits in 8 KiB (the worker then needs no GET for it);
5. move the cursor to the newest ``UpdatedDateUTC`` read, with a write conditional on the cursor's
   revision;
6. stop early when what Xero says is left of the minute or the day (``X-MinLimit-Remaining``,
   ``X-DayLimit-Remaining``) is down to the reserve kept for push (10 a minute, 500 a day), or the
   invocation's time runs short; the cursor then moves only to what was read.

Order of writes: a page's messages are sent before the cursor may pass them, so a crash or a
failure anywhere costs a re-read (duplicates, which the worker's version guard turns into
no-ops), never a payment. After a full page the next read starts again at page 1 from the newest
moment read (keyset paging) instead of asking for page N+1: a payment edited while the poll pages
moves to the end of Xero's order, and with page numbers the payment that slid into the page already
read would be skipped while the cursor moved past it. Only when a whole page shares one second (the
header's precision) does the poll go on to page N+1 of that second.

A connection whose poll fails (token revoked, Xero down, the queue refusing) does not stop the
others: a broken connection is alerted once a day (the key the worker and push share), anything
else is logged and left to the next run, which starts from the same cursor.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from invoice_sync.errors import InvoiceSyncError, ParkError
from invoice_sync.ledgers.port import MARKER_PREFIX, LedgerPayment, LedgerPort
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import PollCursor, SyncStatus
from invoice_sync.observability import logger
from invoice_sync.store.sync_state import ConcurrentUpdate
from invoice_sync.sync.outcomes import park_reason
from invoice_sync.sync.push import CONNECTION_ALERT_SECONDS, Alerts

POLL_NAME = "xero-payments"  # the cursor's sort key under POLL#{connection}
LEASE_SECONDS = 240  # longer than one invocation (60 s), shorter than the schedule (15 minutes)
# The only payment type that applies money to a sales invoice [P: xero_accounting.yaml Payment
# PaymentType enum: ACCRECPAYMENT, ACCPAYPAYMENT, ARCREDITPAYMENT, APCREDITPAYMENT,
# AROVERPAYMENTPAYMENT, ARPREPAYMENTPAYMENT, APPREPAYMENTPAYMENT, APOVERPAYMENTPAYMENT].
RECEIVED_ON_INVOICE = "ACCRECPAYMENT"
# A payload above this travels without its element (the worker reads the payment itself).
MAX_PAYLOAD_BYTES = 8 * 1024
# What the poll leaves to push of Xero's per-tenant limits (60 a minute, 5,000 a day [P:
# https://developer.xero.com/faq/limits; shared/LEDGER-APIS.md 2.3]).
MINUTE_RESERVE = 10
DAY_RESERVE = 500
# Nothing new starts with less than this much of the invocation left.
RESERVE_SECONDS = 10.0


@dataclass(frozen=True)
class Budget:
    """What the ledger last said is left of a connection's limits (None: it has not said)."""

    minute: int | None
    day: int | None


class PollOutcome(StrEnum):
    POLLED = "polled"  # read up to the newest change
    STOPPED = "stopped"  # stopped early (budget or time): the cursor moved to what was read
    CONFLICT = "conflict"  # another poll saved the cursor first: its cursor stands
    BUSY = "busy"  # another poll holds the connection's lease: nothing read
    FAILED = "failed"  # the ledger or the queue failed: the cursor moved to what was sent, if any


@dataclass(frozen=True)
class ConnectionPoll:
    """One connection's poll, as the run's summary and its log line show it."""

    connection_id: str
    outcome: PollOutcome
    read: int = 0  # payments Xero listed (overlap included)
    sent: int = 0  # messages on the ledger events queue
    skipped: int = 0  # not an ACCRECPAYMENT
    ours: int = 0  # carrying invoice-sync's marker: push booked them
    pages: int = 0  # GET /Payments calls
    since: datetime | None = None  # where the poll started
    cursor: datetime | None = None  # the cursor it saved (None: none saved)
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        for name in ("since", "cursor"):
            moment = data[name]
            data[name] = moment.isoformat() if moment is not None else None
        return data


@dataclass(frozen=True)
class PollSummary:
    connections: tuple[ConnectionPoll, ...]

    @property
    def sent(self) -> int:
        return sum(poll.sent for poll in self.connections)

    @property
    def failed(self) -> int:
        return sum(poll.outcome is PollOutcome.FAILED for poll in self.connections)

    def as_dict(self) -> dict[str, Any]:
        """What the handler answers: counts, and each connection's poll."""
        return {
            "polled": sum(poll.outcome is not PollOutcome.BUSY for poll in self.connections),
            "sent": self.sent,
            "failed": self.failed,
            "connections": [poll.as_dict() for poll in self.connections],
        }


class PollState(Protocol):
    """What the poll needs of the SyncState store (``store.sync_state.SyncStateStore``)."""

    def poll_cursor(self, connection_id: str, name: str = POLL_NAME) -> PollCursor | None: ...

    def save_poll_cursor(
        self, connection_id: str, cursor: PollCursor, expected_revision: int, name: str = POLL_NAME
    ) -> PollCursor: ...

    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...

    def alert_sent(self, key: str) -> bool: ...

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None: ...


class PollConnections(Protocol):
    """The connection directory (``store.mappings.MappingsStore``: ``pk=CONNECTIONS``, no scan)."""

    def connections(self) -> list[Connection]: ...

    def mappings(self, connection_id: str) -> Mappings | None: ...


class EventQueue(Protocol):
    """The ledger events queue (``store.queue.LedgerEventsQueue``)."""

    def send_batch(self, messages: Sequence[LedgerEventMessage]) -> int: ...


@runtime_checkable
class PaymentElementPages(Protocol):
    """A ledger that hands out the Payment elements it lists, as ``list_ledger_payments`` lists
    them (same request, same filtering), so the poll can send each element along."""

    def list_ledger_payment_elements(
        self, since: datetime, page: int
    ) -> tuple[list[dict[str, Any]], bool]: ...


LedgerFactory = Callable[[Mappings], LedgerPort]
PaymentReader = Callable[[dict[str, Any]], LedgerPayment]
BudgetSource = Callable[[str], Budget | None]


def _no_budget(_connection_id: str) -> Budget | None:
    return None


def payload_of(element: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The element as a message payload, or None above ``MAX_PAYLOAD_BYTES`` (as JSON)."""
    if element is None:
        return None
    size = len(json.dumps(element, separators=(",", ":"), default=str).encode())
    return dict(element) if size <= MAX_PAYLOAD_BYTES else None


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


@dataclass
class _Progress:
    """What one connection's poll has read and sent so far."""

    start: datetime
    newest: datetime
    read: int = 0
    sent: int = 0
    skipped: int = 0
    ours: int = 0
    pages: int = 0


class _Stopped(Exception):
    """Paging stopped before the newest change (budget, time); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class XeroPaymentPoller:
    def __init__(
        self,
        *,
        state: PollState,
        connections: PollConnections,
        alerts: Alerts,
        ledger_for: LedgerFactory,
        queue: EventQueue,
        budget: BudgetSource = _no_budget,
        reader: PaymentReader | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        minute_reserve: int = MINUTE_RESERVE,
        day_reserve: int = DAY_RESERVE,
        reserve_seconds: float = RESERVE_SECONDS,
    ) -> None:
        self.state = state
        self.connections = connections
        self.alerts = alerts
        self.ledger_for = ledger_for
        self.queue = queue
        self.budget = budget
        # Reads a Payment element into a LedgerPayment (``ledgers.xero.payloads.ledger_payment``);
        # used only with a ledger that hands elements out (``PaymentElementPages``).
        self.reader = reader
        self.clock = clock
        self.minute_reserve = minute_reserve
        self.day_reserve = day_reserve
        self.reserve_seconds = reserve_seconds

    # --- the run --------------------------------------------------------------------------------

    def run(self, *, time_left: Callable[[], float] | None = None) -> PollSummary:
        """Polls every Xero connection with payments back on; one failing connection is recorded
        and alerted, and the others are polled all the same."""
        results: list[ConnectionPoll] = []
        for connection in self._fairly(list(self._polled())):
            cid = connection.connection_id
            if time_left is not None and time_left() < self.reserve_seconds:
                result = ConnectionPoll(cid, PollOutcome.STOPPED, reason="not enough time left")
            else:
                try:
                    result = self.poll(connection, time_left=time_left)
                except Exception as error:  # noqa: BLE001 - one connection never stops the others
                    result = self._failed(cid, error)
            log = logger.warning if result.outcome is PollOutcome.FAILED else logger.info
            log("xero payments poll", extra=result.as_dict())
            results.append(result)
        return PollSummary(tuple(results))

    def _polled(self) -> Iterator[Connection]:
        for connection in self.connections.connections():
            if connection.ledger == "xero" and connection.active and connection.payments_back:
                yield connection

    def _fairly(self, connections: list[Connection]) -> list[Connection]:
        """The connections polled longest ago first (never polled: before all): a run that runs
        out of time leaves the others for the next, which then starts with them, so no connection
        waits behind the same ones run after run. The cursor is read again under the lease."""
        oldest = datetime.min.replace(tzinfo=UTC)

        def last_run(connection: Connection) -> datetime:
            try:
                cursor = self.state.poll_cursor(connection.connection_id, POLL_NAME)
            except Exception:  # noqa: BLE001 - an order only; the poll itself reports the failure
                return oldest
            return (cursor.last_run_at or oldest) if cursor is not None else oldest

        return sorted(connections, key=last_run)  # stable: ties keep the directory's order

    def poll(self, connection: Connection, *, time_left: Callable[[], float] | None = None) -> ConnectionPoll:
        """One connection's poll under its lease. Raises what failed before anything was read."""
        cid = connection.connection_id
        mappings = self.connections.mappings(cid)
        if mappings is None:
            raise ParkError("connection not configured", f"{cid} has no mapping")
        lock, owner = f"poll-xero#{cid}", uuid.uuid4().hex
        if not self.state.acquire_lock(lock, owner, LEASE_SECONDS):
            return ConnectionPoll(cid, PollOutcome.BUSY, reason="another poll holds the lease")
        try:
            return self._poll(mappings, time_left)
        finally:
            try:
                self.state.release_lock(lock, owner)
            except Exception as error:  # noqa: BLE001 - the lease runs out by itself
                logger.warning(
                    "poll lease not released", extra={"connection_id": cid, "error": type(error).__name__}
                )

    def _poll(self, mappings: Mappings, time_left: Callable[[], float] | None) -> ConnectionPoll:
        connection = mappings.connection
        cid = connection.connection_id
        cursor = self.state.poll_cursor(cid, POLL_NAME)
        start = self._start(connection, cursor)
        if cursor is None:
            # The first run's start is kept before anything is read: a run that then fails (a
            # revoked token) leaves the next one to start here, not at a later "now".
            try:
                cursor = self.state.save_poll_cursor(cid, PollCursor(since=start), 0, POLL_NAME)
            except ConcurrentUpdate:
                return ConnectionPoll(
                    cid, PollOutcome.CONFLICT, since=start, reason="the cursor was saved by another poll"
                )
        progress = _Progress(start=start, newest=start)
        outcome, reason = PollOutcome.POLLED, None
        failure: Exception | None = None
        try:
            self._read(mappings, progress, time_left)
        except _Stopped as stopped:
            outcome, reason = PollOutcome.STOPPED, stopped.reason
        except Exception as error:  # noqa: BLE001 - recorded below, after the cursor keeps what was sent
            failure = error
        if failure is not None and progress.newest <= start:
            raise failure  # nothing sent past the cursor: nothing to save
        saved: datetime | None = progress.newest
        try:
            self.state.save_poll_cursor(
                cid,
                PollCursor(since=progress.newest, last_run_at=self.clock(), last_count=progress.sent),
                cursor.revision,
                POLL_NAME,
            )
        except ConcurrentUpdate:
            # Another poll moved the cursor meanwhile (a lease that ran out): its cursor stands;
            # what this one sent is sent, and a re-read of it later is a duplicate at worst.
            saved, outcome, reason = None, PollOutcome.CONFLICT, "the cursor was saved by another poll"
        if failure is not None:
            failed = self._failed(cid, failure)
            outcome, reason = PollOutcome.FAILED, failed.reason
        return ConnectionPoll(
            cid,
            outcome,
            read=progress.read,
            sent=progress.sent,
            skipped=progress.skipped,
            ours=progress.ours,
            pages=progress.pages,
            since=start,
            cursor=saved,
            reason=reason,
        )

    def _start(self, connection: Connection, cursor: PollCursor | None) -> datetime:
        """Where this poll reads from: the cursor, never before ``payments_back_since``; the first
        run at ``payments_back_since``, or now when the connection has none."""
        floor = connection.payments_back_since
        if cursor is not None:
            return max(cursor.since, floor) if floor is not None else cursor.since
        if floor is not None:
            return floor
        logger.warning(
            "payments_back_since not set: the first Xero poll starts now",
            extra={"connection_id": connection.connection_id},
        )
        return self.clock()

    # --- paging ---------------------------------------------------------------------------------

    def _read(self, mappings: Mappings, progress: _Progress, time_left: Callable[[], float] | None) -> None:
        """Pages from ``progress.start`` to the newest change, sending each page before the next
        is read; ``progress.newest`` moves only past what was sent. Raises ``_Stopped``."""
        ledger = self.ledger_for(mappings)
        cid = mappings.connection.connection_id
        since, page = progress.start, 1
        while True:
            rows, more = self._page(ledger, since, page)
            progress.pages += 1
            messages: list[LedgerEventMessage] = []
            for payment, element in rows:
                progress.read += 1
                message = self._message(cid, payment, element, progress)
                if message is not None:
                    messages.append(message)
            if messages:
                self.queue.send_batch(messages)  # raises before the cursor may pass them
                progress.sent += len(messages)
            moments = [payment.updated_at for payment, _ in rows if payment.updated_at is not None]
            if moments:
                progress.newest = max(progress.newest, *moments)
            if not more:
                return
            self._check_budget(cid, time_left)
            if _second(progress.newest) > _second(since):
                since, page = progress.newest, 1  # keyset: from the newest read, page 1 again
            else:
                page += 1  # a whole page in one second: the next page of that second

    def _page(
        self, ledger: LedgerPort, since: datetime, page: int
    ) -> tuple[list[tuple[LedgerPayment, dict[str, Any] | None]], bool]:
        if self.reader is not None and isinstance(ledger, PaymentElementPages):
            elements, more = ledger.list_ledger_payment_elements(since, page)
            reader = self.reader
            return [(reader(element), element) for element in elements], more
        payments, more = ledger.list_ledger_payments(since, page)
        return [(payment, None) for payment in payments], more

    def _message(
        self, cid: str, payment: LedgerPayment, element: dict[str, Any] | None, progress: _Progress
    ) -> LedgerEventMessage | None:
        """The worker's message for one listed payment, or None (counted) when it is not one a
        person recorded against an invoice."""
        if element is not None:
            received_on_invoice = element.get("PaymentType") == RECEIVED_ON_INVOICE
        else:
            # The reader gives applications to ACCRECPAYMENTs only (ledgers.xero.payloads).
            received_on_invoice = bool(payment.applications)
        if not received_on_invoice:
            progress.skipped += 1
            return None
        if any((text or "").strip().startswith(MARKER_PREFIX) for text in (payment.note, payment.reference)):
            progress.ours += 1
            return None
        return LedgerEventMessage(
            connection_id=cid,
            ledger="xero",
            kind="payment",
            object_id=payment.id,
            operation="poll",
            changed_at=payment.updated_at,
            event_id=None,
            payload=payload_of(element),
        )

    def _check_budget(self, cid: str, time_left: Callable[[], float] | None) -> None:
        """``_Stopped`` when one more page would eat into what is left for push, or into the
        invocation's last seconds. The budget is what Xero said on this run's last response."""
        budget = self.budget(cid)
        if budget is not None and budget.minute is not None and budget.minute <= self.minute_reserve:
            raise _Stopped(f"{budget.minute} calls left this minute, kept for push")
        if budget is not None and budget.day is not None and budget.day <= self.day_reserve:
            raise _Stopped(f"{budget.day} calls left today, kept for push")
        if time_left is not None and time_left() < self.reserve_seconds:
            raise _Stopped("not enough time left")

    # --- failures -------------------------------------------------------------------------------

    def _failed(self, cid: str, error: Exception) -> ConnectionPoll:
        """A failed poll: a broken connection (token revoked, company gone) alerts once a day, as
        the worker's and push's do; anything else waits for the next run, which resumes from the
        cursor."""
        park = park_reason(error) if isinstance(error, InvoiceSyncError) else None
        if park is not None and park.status is SyncStatus.FAILED:
            key = f"{cid}#{park.reason}"
            try:
                if not self.state.alert_sent(key):
                    self._alert(cid, park)
                    self.state.mark_alert_sent(key, CONNECTION_ALERT_SECONDS)
            except Exception as alert_error:  # noqa: BLE001 - the next run alerts again
                logger.warning(
                    "poll alert not sent", extra={"connection_id": cid, "error": type(alert_error).__name__}
                )
            return ConnectionPoll(cid, PollOutcome.FAILED, reason=park.reason)
        reason = park.reason if park is not None else f"{type(error).__name__}: {error}"
        return ConnectionPoll(cid, PollOutcome.FAILED, reason=reason)

    def _alert(self, cid: str, error: ParkError) -> None:
        self.alerts.publish(
            f"invoice-sync: connection {cid}: {error.reason}",
            f"The Xero payments poll of connection {cid} cannot read Xero: {error}.\nPayments "
            "recorded in Xero meanwhile are not lost: the poll resumes from where it stopped once "
            f"the connection works again. Reconnect the ledger (`invoice-sync connect xero "
            f"--connection {cid}`).",
            {"connection_id": cid, "reason": error.reason, "detail": str(error), "kind": "connection"},
        )
