"""Payments back: a payment a person recorded in the ledger marks its Stripe invoice paid.

For each ledger event (design two-way 3.3, "the worker"):
1. read the ledger payment again (a message is only a hint); deleted or voided -> its records are
   withdrawn (step 8);
2. ours? A payment carrying invoice-sync's marker, or one push booked (its ``ledger-payment:`` link),
   is never sent back (echo suppression, 3.6 loop 1);
3. for each invoice it pays, under its own ``ledger_payment#{payment}:{invoice}`` record: find the
   Stripe invoice by the ledger invoice's marker AND the invoice record's ledger id; a duplicate
   (same version) is a no-op, a change after Stripe holds the money is parked for a person;
   reserve the amount on the invoice's record (so push never books that money again, 3.6 loop
   2), record the intent with its idempotency key, then tell Stripe (``StripeSide``, 3.5.1):
   the whole amount due -> ``pay`` out of band, less -> a payment record reported and attached.

Parking goes through push's ``park_record`` (one alert per record and reason); Stripe errors
become the outcomes of section 4. A write Stripe may have acted on is re-read before it is tried
again, and its key's generation moves on only when the re-read shows Stripe did nothing (3.7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any, NoReturn, Protocol, runtime_checkable

from pydantic import SecretStr

from invoice_sync.errors import (
    InvalidSnapshot,
    InvoiceSyncError,
    LedgerValidation,
    NotFound,
    ParkError,
    TransientError,
)
from invoice_sync.ledgers.port import (
    MARKER_PREFIX,
    LedgerPayment,
    LedgerPort,
    PaymentApplication,
    marked,
)
from invoice_sync.models.mapping import Connection, LedgerKind, Mappings
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.money import Money
from invoice_sync.models.summary import DocumentSummary
from invoice_sync.models.sync import DocumentKind, LedgerPaidState, SyncRecord, SyncStatus, utcnow
from invoice_sync.observability import logger
from invoice_sync.sources.stripe_api import (
    PAYMENT_EXPANDS,
    StripeApiError,
    StripeAuthError,
    StripeConflict,
    StripeIdempotencyError,
    StripeNotFound,
    StripeRateLimited,
    StripeUnavailable,
    domain_error,
)
from invoice_sync.store.sync_state import ConcurrentUpdate, PendingCallback
from invoice_sync.sync.keys import idempotency_key
from invoice_sync.sync.outcomes import park_reason
from invoice_sync.sync.push import (
    CONNECTION_ALERT_SECONDS,
    Alerts,
    ParkState,
    intent_in_flight,
    park_record,
    publish_connection,
    publish_record,
)

# Echoes are told by the port's MARKER_PREFIX, not ``marked()``: "invoice-sync: applies credit
# memo 7" parses as a source and an id.

# The stable reasons of design section 4 (they de-duplicate alerts).
NOT_FROM_SOURCE = "invoice not from the source"
NO_PAYMENTS_BACK = "source takes no payments back"
BEFORE_SINCE = "made before payments back was turned on"
NOTHING_APPLIED = "applies no money to the invoice"
PAID_BOTH_SIDES = "paid on both sides"
EXCEEDS = "ledger payment exceeds what Stripe says is due"
CURRENCY_DIFFERS = "currency differs"
NOT_PAYABLE = "invoice not payable in Stripe"
NOT_IN_STRIPE = "invoice not found in Stripe"
CHANGED_AFTER = "ledger payment changed after it reached Stripe"
REMOVED_AFTER = "ledger payment removed after it reached Stripe"
REMOVED_BEFORE = "removed in the ledger before it was sent"
GAVE_UP = "could not update Stripe"
ORPHAN_POSSIBLE = "orphan payment record possible"
# How long Stripe keeps an idempotency key (at least a day, 2.1): past it, a retry is a new request.
STRIPE_KEY_LIFETIME = timedelta(hours=24)
# Reasons that say Stripe holds the money: such a record never sends again, and its reservation
# on the invoice stays (push must keep subtracting that money).
AFTER_STRIPE = frozenset({CHANGED_AFTER, REMOVED_AFTER})

# At the 4th failed Stripe attempt the record parks instead of raising, before SQS's 5th receive
# would send the message to the dead-letter queue (design section 4).
MAX_STRIPE_ATTEMPTS = 4
# How many times the reservation on the invoice's record is tried again when push wrote the
# record in between (a conditional write on its revision).
RESERVE_TRIES = 3

ADVICE = (
    "Decide in Stripe and in the ledger which record of the money stands (a Stripe credit note "
    "with out_of_band_amount undoes a payment Stripe holds), then re-drive it: `invoice-sync "
    "redrive --connection {connection} --kind ledger_payment --source-id {source_id}`."
)


class Outcome(StrEnum):
    SYNCED = "synced"  # Stripe holds the money now
    UNCHANGED = "unchanged"  # a duplicate, or nothing new since the last attempt
    SKIPPED = "skipped"  # nothing to tell Stripe (not from the source, removed before it was sent)
    PARKED = "parked"
    OURS = "ours"  # invoice-sync booked it: an echo, nothing written
    DROPPED = "dropped"  # an event this worker does not follow (yet), logged with its reason
    VERIFIED = "verified"  # a FreshBooks callback's verifier accepted and kept as its key


@dataclass(frozen=True)
class Applied:
    """What happened to one invoice a ledger payment pays."""

    source_id: str  # the ledger_payment record's source id: "{payment}:{invoice}"
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class BackResult:
    outcome: Outcome
    object_id: str  # the ledger object the message named
    reason: str | None = None
    applications: tuple[Applied, ...] = ()


class StripeGaveUp(ParkError):
    """Stripe kept failing (429/5xx/timeouts) for ``MAX_STRIPE_ATTEMPTS`` attempts."""

    status = SyncStatus.FAILED


class AfterStripe(ParkError):
    """The ledger payment changed or went after Stripe took the money: Stripe cannot un-pay, so a
    person decides. Its reservation stays on the invoice."""


class StripeWriter(Protocol):
    """The Stripe calls payments back makes (``sources.stripe_api.StripeApi``)."""

    def get_invoice(self, invoice_id: str, expand: Sequence[str] = ()) -> dict[str, Any]: ...

    def list_invoice_payments(
        self, invoice_id: str, *, status: str | None = None
    ) -> list[dict[str, Any]]: ...

    def pay_out_of_band(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]: ...

    def report_payment(
        self,
        *,
        amount: int,
        currency: str,
        initiated_at: int,
        display_name: str,
        idempotency_key: str,
        payment_reference: str | None = None,
        customer: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        guaranteed_at: int | None = None,
        custom_type: str | None = None,
    ) -> dict[str, Any]: ...

    def attach_payment(
        self, invoice_id: str, payment_record_id: str, idempotency_key: str
    ) -> dict[str, Any]: ...


class BackState(ParkState, Protocol):
    """What payments back needs of the SyncState store (``store.sync_state.SyncStateStore``)."""

    def get(
        self, connection_id: str, kind: DocumentKind, source_id: str
    ) -> tuple[SyncRecord | None, int]: ...

    def records_with_prefix(
        self, connection_id: str, kind: DocumentKind, source_prefix: str
    ) -> Iterator[tuple[SyncRecord, int]]: ...

    def link(self, connection_id: str, name: str, record_sk: str) -> None: ...

    def linked(self, connection_id: str, name: str) -> str | None: ...

    def reserve_ledger_paid(
        self,
        connection_id: str,
        invoice_source_id: str,
        key: str,
        amount: int,
        state: LedgerPaidState,
        expected_revision: int,
        *,
        at: datetime | None = None,
    ) -> tuple[SyncRecord, int]: ...

    def release_ledger_paid(
        self, connection_id: str, invoice_source_id: str, key: str, expected_revision: int
    ) -> tuple[SyncRecord, int]: ...

    def pending_callback(self, connection_id: str, callback_id: str) -> PendingCallback | None: ...

    def mark_callback_verified(self, connection_id: str, callback_id: str) -> bool: ...


class Connections(Protocol):
    def mappings(self, connection_id: str) -> Mappings | None: ...


class WebhookKeys(Protocol):
    """Where a verified callback's verifier is kept (``store.secrets.SecretStore``)."""

    def add_ledger_webhook_key(self, connection_id: str, key: str) -> None: ...


@runtime_checkable
class CallbackVerifier(Protocol):
    """A ledger whose webhook callbacks are verified by sending a code back (FreshBooks)."""

    def verify_callback(self, callback_id: str, verifier: SecretStr) -> None: ...


LedgerFactory = Callable[[Mappings], LedgerPort]
StripeFactory = Callable[[Connection], StripeWriter]
PaymentReader = Callable[[dict[str, Any]], LedgerPayment]

LEDGER_NAMES: dict[str, str] = {"quickbooks": "QuickBooks", "xero": "Xero", "freshbooks": "FreshBooks"}


# --- Stripe's side: what the invoice says, and what to do about it (pure) -----------------------


class Step(StrEnum):
    DONE = "done"  # Stripe holds this payment already (a crash after the call, before the state)
    FULL = "full"  # pay out of band: the amount is what remains due
    PARTIAL = "partial"  # report a payment record, then attach it
    ATTACH = "attach"  # the payment record is reported (on the record), not yet attached


@dataclass(frozen=True)
class StripeInvoice:
    """What payments back reads of a Stripe invoice (``expand[]=payments,amount_paid_off_stripe``)."""

    id: str
    status: str
    currency: str  # upper case
    amount_remaining: int
    amount_paid_off_stripe: int | None
    customer: str | None
    number: str | None
    attached: frozenset[str]  # payment records (pr_…) among its paid InvoicePayments

    @classmethod
    def of(cls, raw: Mapping[str, Any], payments: Sequence[Mapping[str, Any]]) -> StripeInvoice:
        customer = raw.get("customer")
        return cls(
            id=str(raw["id"]),
            status=str(raw.get("status") or ""),
            currency=str(raw.get("currency") or "").upper(),
            amount_remaining=int(raw.get("amount_remaining") or 0),
            amount_paid_off_stripe=_int_or_none(raw.get("amount_paid_off_stripe")),
            customer=customer if isinstance(customer, str) else (customer or {}).get("id"),
            number=raw.get("number"),
            attached=frozenset(
                str(ref["payment_record"])
                for payment in payments
                if payment.get("status") == "paid"
                and isinstance(ref := payment.get("payment"), Mapping)
                and ref.get("type") == "payment_record"
                and isinstance(ref.get("payment_record"), str)
            ),
        )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def already_done(invoice: StripeInvoice, record: SyncRecord, amount: int) -> bool:
    """Whether Stripe already holds this record's payment (3.5.1 step 2): its payment record is
    attached and paid, or (a full payment) the invoice it meant to pay out of band is paid with at
    least this much of it paid outside Stripe."""
    target = record.stripe_object
    if target is None:
        return False
    if target.startswith("pr_"):
        return target in invoice.attached
    return (
        target == invoice.id
        and invoice.status == "paid"
        and (invoice.amount_paid_off_stripe is None or invoice.amount_paid_off_stripe >= amount)
    )


def plan(invoice: StripeInvoice, record: SyncRecord, amount: int, currency: str) -> Step:
    """What to ask of Stripe for ``amount`` minor units of ``currency`` (3.5.1 steps 2-5); a
    ``ParkError`` where a person must decide."""
    if already_done(invoice, record, amount):
        return Step.DONE
    if currency.upper() != invoice.currency:
        raise ParkError(
            CURRENCY_DIFFERS,
            f"the ledger payment is in {currency.upper()}, {invoice.id} in {invoice.currency}",
        )
    if invoice.status == "paid":
        raise ParkError(
            PAID_BOTH_SIDES,
            f"Stripe invoice {invoice.id} is paid already and the ledger recorded another payment of "
            f"{Money(minor=amount, currency=currency.upper())} on it: the money is recorded twice",
        )
    if invoice.status not in {"open", "uncollectible"}:
        raise ParkError(NOT_PAYABLE, f"Stripe invoice {invoice.id} is {invoice.status or 'in no status'}")
    if amount > invoice.amount_remaining:
        due = Money(minor=invoice.amount_remaining, currency=invoice.currency)
        raise ParkError(
            EXCEEDS,
            f"{Money(minor=amount, currency=currency.upper())} recorded in the ledger, "
            f"{due} due on {invoice.id}",
        )
    if record.stripe_object is not None and record.stripe_object.startswith("pr_"):
        return Step.ATTACH
    return Step.FULL if amount == invoice.amount_remaining else Step.PARTIAL


class StripeSide:
    """Stripe's invoice as payments back reads it, and the writes that tell it about a payment."""

    def __init__(self, client: StripeWriter) -> None:
        self.client = client

    def read(self, invoice_id: str) -> StripeInvoice:
        raw = self.client.get_invoice(invoice_id, expand=PAYMENT_EXPANDS)
        payments = raw.get("payments")
        data: list[dict[str, Any]] = []
        if isinstance(payments, Mapping):
            data = list(payments.get("data") or [])
            if payments.get("has_more"):
                data = self.client.list_invoice_payments(invoice_id)
        return StripeInvoice.of(raw, data)


# --- the worker ---------------------------------------------------------------------------------


@dataclass
class _Work:
    """One ledger payment on its way to Stripe: what every invoice it pays shares."""

    message: LedgerEventMessage
    mappings: Mappings
    ledger: LedgerPort
    payment: LedgerPayment

    @property
    def connection(self) -> Connection:
        return self.mappings.connection

    @property
    def connection_id(self) -> str:
        return self.mappings.connection.connection_id


class PaymentsBackService:
    def __init__(
        self,
        *,
        state: BackState,
        mappings: Connections,
        alerts: Alerts,
        ledger_for: LedgerFactory,
        stripe_for: StripeFactory,
        intent_timeout: timedelta = timedelta(seconds=120),
        payload_readers: Mapping[LedgerKind, PaymentReader] | None = None,
        max_stripe_attempts: int = MAX_STRIPE_ATTEMPTS,
        webhook_keys: WebhookKeys | None = None,
    ) -> None:
        self.state = state
        self.mappings = mappings
        self.alerts = alerts
        self.ledger_for = ledger_for
        self.stripe_for = stripe_for
        # An intent younger than this may still be in the hands of a live worker.
        self.intent_timeout = intent_timeout
        # Pure readers of a payment element a poll sent along (saves a GET), per ledger.
        self.payload_readers = dict(payload_readers or {})
        self.max_stripe_attempts = max_stripe_attempts
        # Only FreshBooks' callback verification writes a key; without a store it is dropped.
        self.webhook_keys = webhook_keys

    def handle_batch(
        self,
        messages: Sequence[LedgerEventMessage],
        *,
        time_left: Callable[[], float] | None = None,
        reserve_seconds: float = 10.0,
    ) -> list[BackResult | Exception]:
        """Each message on its own; an exception in place of a result sends that message back to
        the queue (``batchItemFailures``). Nothing new starts with less than ``reserve_seconds``
        of the invocation left."""
        results: list[BackResult | Exception] = []
        for message in messages:
            if time_left is not None and time_left() < reserve_seconds:
                results.append(TransientError("not enough time left in this invocation"))
                continue
            try:
                results.append(self.handle(message))
            except Exception as error:  # noqa: BLE001 - any failure hands this message back to SQS
                results.append(error)
        return results

    def handle(self, message: LedgerEventMessage) -> BackResult:
        """What one ledger event means for Stripe. Raises what should be retried."""
        logger.set_correlation_id(message.event_id or f"{message.ledger}:{message.kind}:{message.object_id}")
        mappings = self.mappings.mappings(message.connection_id)
        if mappings is None or not mappings.connection.active:
            return self._dropped(message, "connection not configured")
        if not mappings.connection.payments_back:
            return self._dropped(message, "payments back is off for this connection")
        if mappings.connection.ledger != message.ledger:
            return self._dropped(message, f"the connection's ledger is {mappings.connection.ledger}")
        if message.kind == "credit_note":
            return self._dropped(message, "ledger credit notes are not mirrored to Stripe yet (phase 2)")
        if message.kind == "callback_verify":
            return self._verify_callback(message, mappings)
        if message.kind == "invoice":
            return self._invoice(message, mappings)
        return self._payment(message, mappings)

    def _invoice(self, message: LedgerEventMessage, mappings: Mappings) -> BackResult:
        """The Xero fast path (3.3 step 4): an invoice event; each payment on a marked invoice that
        is neither push's (its link) nor synced already goes through the payment steps. The poll
        stays the guarantee: this only makes the common case quicker."""
        ledger = self.ledger_for(mappings)
        connection_id = mappings.connection.connection_id
        try:
            document = ledger.get_invoice(message.object_id)
        except NotFound:
            return self._dropped(message, "invoice not in the ledger")
        except InvoiceSyncError as error:
            return self._unread(message, mappings, error)
        if marked(document.private_note) is None:
            return self._dropped(message, NOT_FROM_SOURCE)
        results: list[Applied] = []
        for payment_id in document.linked_payment_ids:
            if self.state.linked(connection_id, f"ledger-payment:{payment_id}") is not None:
                continue  # push booked it: ours, and no GET spent on it
            record, _ = self.state.get(connection_id, "ledger_payment", f"{payment_id}:{document.id}")
            if record is not None and record.status is SyncStatus.SYNCED:
                continue
            hint = message.model_copy(update={"kind": "payment", "object_id": payment_id, "payload": None})
            results.extend(self._payment(hint, mappings).applications)
        return (
            _summary(message.object_id, results)
            if results
            else BackResult(Outcome.UNCHANGED, message.object_id)
        )

    @staticmethod
    def _dropped(message: LedgerEventMessage, reason: str) -> BackResult:
        logger.info(
            "ledger event dropped",
            extra={"kind": message.kind, "object_id": message.object_id, "reason": reason},
        )
        return BackResult(Outcome.DROPPED, message.object_id, reason)

    # --- a FreshBooks callback's verification (design 3.2) ------------------------------------------

    def _verify_callback(self, message: LedgerEventMessage, mappings: Mappings) -> BackResult:
        """Completes the handshake of a callback ``connect`` registered: the message is only a
        hint, so the registration must still be pending here; FreshBooks must accept the verifier
        (a forged one costs one PUT it refuses); only then is the verifier the connection's
        ledger webhook key and the registration verified. The verifier is never logged, and
        leaves its ``SecretStr`` only for the secret's put. Raises what should be retried."""
        connection_id = mappings.connection.connection_id
        callback_id = message.object_id
        verifier = message.verifier
        if verifier is None or not verifier.get_secret_value():
            return self._dropped(message, "callback verification without a verifier")
        pending = self.state.pending_callback(connection_id, callback_id)
        if pending is None or pending.state != "pending":
            return self._dropped(message, "no pending callback registration")
        ledger = self.ledger_for(mappings)
        if not isinstance(ledger, CallbackVerifier) or self.webhook_keys is None:
            return self._dropped(message, "this worker cannot verify the ledger's callbacks")
        try:
            ledger.verify_callback(callback_id, verifier)
        except (LedgerValidation, NotFound) as error:
            # Only the ledger's error code is logged: its words could quote what was sent.
            logger.warning(
                "callback verifier refused by the ledger",
                extra={"callback_id": callback_id, "code": error.code},
            )
            return BackResult(Outcome.DROPPED, callback_id, "ledger refused the verifier")
        except InvoiceSyncError as error:
            return self._unread(message, mappings, error)
        self.webhook_keys.add_ledger_webhook_key(connection_id, verifier.get_secret_value())
        if not self.state.mark_callback_verified(connection_id, callback_id):
            # Its hour ran out, or another delivery of the same verify got here first: the key is
            # stored either way (adding it again changes nothing).
            logger.info("callback registration no longer pending", extra={"callback_id": callback_id})
        logger.info("ledger callback verified", extra={"callback_id": callback_id})
        return BackResult(Outcome.VERIFIED, callback_id)

    # --- one ledger payment -----------------------------------------------------------------------

    def _payment(self, message: LedgerEventMessage, mappings: Mappings) -> BackResult:
        ledger = self.ledger_for(mappings)
        connection_id = mappings.connection.connection_id
        try:
            payment: LedgerPayment | None = self._read(message, ledger)
        except NotFound:
            payment = None  # QBO answers 610 for a deleted payment
        except InvoiceSyncError as error:
            return self._unread(message, mappings, error)
        if payment is None or payment.voided:
            return self._removed(message, mappings, payment)
        if self._ours(connection_id, payment):
            logger.info("ledger payment is ours", extra={"ledger_payment": payment.id})
            return BackResult(Outcome.OURS, payment.id)
        since = mappings.connection.payments_back_since
        if since is not None and payment.updated_at is not None and payment.updated_at < since:
            logger.info("ledger payment older than payments back", extra={"ledger_payment": payment.id})
            return BackResult(Outcome.SKIPPED, payment.id, BEFORE_SINCE)
        work = _Work(message, mappings, ledger, payment)
        applied: list[Applied] = []
        amounts = _by_invoice(payment.applications)
        for record, revision in list(
            self.state.records_with_prefix(connection_id, "ledger_payment", f"{payment.id}:")
        ):
            if record.source_id.removeprefix(f"{payment.id}:") not in amounts:
                # The payment no longer pays this invoice (moved to another one in the ledger).
                applied.append(
                    self._guarded(
                        work,
                        record.source_id,
                        record,
                        partial(self._withdraw, work, record, revision, CHANGED_AFTER),
                    )
                )
        for invoice_id, amount in amounts.items():
            source_id = f"{payment.id}:{invoice_id}"
            applied.append(
                self._guarded(work, source_id, None, partial(self._application, work, invoice_id, amount))
            )
        return _summary(payment.id, applied)

    def _read(self, message: LedgerEventMessage, ledger: LedgerPort) -> LedgerPayment:
        reader = self.payload_readers.get(message.ledger)
        if message.payload is not None and reader is not None:
            return reader(message.payload)
        return ledger.get_ledger_payment(message.object_id)

    def _ours(self, connection_id: str, payment: LedgerPayment) -> bool:
        """Echo rules 1 and 2 (3.6): our marker on its note or reference, or push's link to it."""
        if any((text or "").strip().startswith(MARKER_PREFIX) for text in (payment.note, payment.reference)):
            return True
        return self.state.linked(connection_id, f"ledger-payment:{payment.id}") is not None

    def _unread(self, message: LedgerEventMessage, mappings: Mappings, error: InvoiceSyncError) -> BackResult:
        """The ledger payment could not be read, for a reason a retry cannot fix. There is no record
        to park yet: a broken connection alerts (once a day), and the event is left to
        reconciliation (``ledger_payment_not_sent``) and a re-drive."""
        park = park_reason(error)
        if park is None:
            raise error
        logger.warning(
            "ledger payment unreadable", extra={"object_id": message.object_id, "reason": park.reason}
        )
        connection_id = mappings.connection.connection_id
        if park.status is SyncStatus.FAILED:
            key = f"{connection_id}#{park.reason}"
            if not self.state.alert_sent(key):
                publish_connection(self.alerts, connection_id, park)
                self.state.mark_alert_sent(key, CONNECTION_ALERT_SECONDS)
        return BackResult(Outcome.DROPPED, message.object_id, park.reason)

    # --- one invoice the payment pays -------------------------------------------------------------

    def _guarded(
        self, work: _Work, source_id: str, record: SyncRecord | None, step: Callable[[], Applied]
    ) -> Applied:
        """Runs one record's step; a parkable error parks the record (and releases its reservation
        unless Stripe holds the money), anything else is raised for the queue to retry."""
        try:
            return step()
        except InvoiceSyncError as error:
            park = park_reason(error)
            if park is None:
                raise
            current, revision = self.state.get(work.connection_id, "ledger_payment", source_id)
            parked = current or record or self._new_record(work, source_id)
            if parked.ledger_id is None:
                # Parked before it was described (the ledger invoice unreadable): enough to find it.
                parked.ledger_id = work.payment.id
                parked.ledger_version = work.payment.version
                parked.ledger_number = source_id.removeprefix(f"{work.payment.id}:")
            if not isinstance(park, AfterStripe) and parked.status is not SyncStatus.SYNCED:
                self._release(work.connection_id, parked)
            park_record(self.state, self.alerts, parked, revision, 0, park, advice=ADVICE)
            return Applied(source_id, Outcome.PARKED, park.reason)

    def _application(self, work: _Work, invoice_id: str, amount_applied: Decimal) -> Applied:
        payment, connection_id = work.payment, work.connection_id
        source_id = f"{payment.id}:{invoice_id}"
        record, revision = self.state.get(connection_id, "ledger_payment", source_id)
        try:
            amount = Money.from_decimal(amount_applied, payment.currency).minor
        except ValueError as error:
            raise InvalidSnapshot("ledger amount finer than its currency", str(error)) from error
        settled = self._settled(work, record, revision, amount)
        if settled is not None:
            return settled
        if amount <= 0:
            return self._skip(work, record, revision, source_id, invoice_id, amount, NOTHING_APPLIED)
        if work.connection.source != "stripe":
            return self._skip(work, record, revision, source_id, invoice_id, amount, NO_PAYMENTS_BACK)
        invoice_record, invoice_revision = self._source_invoice(work, invoice_id)
        if invoice_record is None:
            return self._skip(work, record, revision, source_id, invoice_id, amount, NOT_FROM_SOURCE)
        record = record or self._new_record(work, source_id)
        if record.status.parked and work.message.operation == "redrive":
            record.attempts = 0  # a person re-drove it: fresh tries
        if self._in_flight(record):
            raise TransientError(f"ledger payment {source_id} is being sent to Stripe by another worker")
        self._orphan_check(record)
        if record.stripe_object is not None and record.ledger_total not in {None, amount}:
            # An earlier attempt, for another amount, did not finish: what it named in Stripe (a
            # payment record not attached changes no invoice) is not this amount's, and its keys
            # were sent with other parameters.
            record.stripe_object = None
            record.attempts_generation += 1
        self._describe(record, work, invoice_id, amount)
        record.source_target = invoice_record.source_id
        record.source_number = invoice_record.source_number
        # Reserve first (push then never books this money), then the intent, then Stripe.
        self._reserve(connection_id, invoice_record.source_id, invoice_revision, record, "pending")
        record.idempotency_key = idempotency_key(
            connection_id, "ledger_payment", source_id, "stripe", str(record.attempts_generation)
        )
        record.status = SyncStatus.PENDING
        record.last_error = None  # until the outcome is known: a worker may be at it (``_in_flight``)
        revision = self.state.save(record, revision)
        return self._tell_stripe(work, record, revision, amount)

    def _orphan_check(self, record: SyncRecord) -> None:
        """3.7's one gap: an attempt that died after Stripe made a payment record but before the
        record named it, retried after Stripe has forgotten the key (24 h), reports a second one.
        The first changes no invoice; a person is told once to look for it."""
        if (
            record.status is not SyncStatus.PENDING
            or record.last_error is not None
            or record.stripe_object is not None
            or record.updated_at is None
            or utcnow() - record.updated_at < STRIPE_KEY_LIFETIME
            or record.alerted_reason == ORPHAN_POSSIBLE
        ):
            return
        publish_record(
            self.alerts,
            record,
            ORPHAN_POSSIBLE,
            f"an attempt {int((utcnow() - record.updated_at).total_seconds() // 3600)} hours ago may have "
            "left a payment record in Stripe attached to no invoice (its metadata "
            f"invoice_sync_record=ledger_payment#{record.source_id})",
            advice="Look for it in Stripe's payment records and leave it unattached; nothing else is needed.",
        )
        record.alerted_reason = ORPHAN_POSSIBLE

    def _in_flight(self, record: SyncRecord) -> bool:
        """An intent so fresh that the worker that recorded it may still be calling Stripe. One
        whose attempt ended in a failure it recorded (``last_error``) is not: that worker is done."""
        return record.last_error is None and intent_in_flight(record, self.intent_timeout)

    def _settled(self, work: _Work, record: SyncRecord | None, revision: int, amount: int) -> Applied | None:
        """The version guard (3.3 step 3.4): what a record already settled says about this event,
        or None when it must be (re)done."""
        if record is None:
            return None
        same_version = record.ledger_version == work.payment.version
        if record.status is SyncStatus.SYNCED or record.alerted_reason in AFTER_STRIPE:
            if record.ledger_total != amount:
                raise AfterStripe(
                    CHANGED_AFTER,
                    f"the ledger payment {work.payment.id} now applies "
                    f"{Money(minor=amount, currency=work.payment.currency)} to invoice "
                    f"{record.ledger_number}; Stripe {record.source_target} holds "
                    f"{Money(minor=record.ledger_total or 0, currency=work.payment.currency)} from it "
                    f"({record.stripe_object})",
                )
            if record.status is not SyncStatus.SYNCED and work.message.operation != "redrive":
                return Applied(record.source_id, Outcome.UNCHANGED, record.alerted_reason)
            if not same_version or record.status is not SyncStatus.SYNCED:
                # A memo edited in the ledger, or a re-drive of an amount changed back: nothing to tell.
                record.ledger_version = work.payment.version
                record.status = SyncStatus.SYNCED
                record.last_error = None
                record.alerted_reason = None
                self.state.save(record, revision)
            self._reserve(work.connection_id, record.source_target, None, record, "done")
            return Applied(record.source_id, Outcome.UNCHANGED)
        if same_version and work.message.operation != "redrive":
            if record.status is SyncStatus.SKIPPED:
                return Applied(record.source_id, Outcome.UNCHANGED, record.last_error)
            if record.status.parked:
                # Parked for this very version: a person decides; a redelivery alerts no more.
                return Applied(record.source_id, Outcome.UNCHANGED, record.alerted_reason)
        return None

    def _source_invoice(self, work: _Work, invoice_id: str) -> tuple[SyncRecord | None, int]:
        """The source invoice's record, when the ledger invoice carries our marker AND that record
        names this very ledger invoice (a marker copied onto a stranger's invoice matches neither)."""
        try:
            document = work.ledger.get_invoice(invoice_id)
        except NotFound:
            return None, 0
        found = marked(document.private_note)
        if found is None or found[0] != work.connection.source:
            return None, 0
        record, revision = self.state.get(work.connection_id, "invoice", found[1])
        if record is None or record.ledger_id != invoice_id:
            return None, 0
        return record, revision

    def _skip(
        self,
        work: _Work,
        record: SyncRecord | None,
        revision: int,
        source_id: str,
        invoice_id: str,
        amount: int,
        reason: str,
    ) -> Applied:
        """Nothing to tell Stripe: logged and recorded, no alert (the issue: "logged, not forced")."""
        record = record or self._new_record(work, source_id)
        self._describe(record, work, invoice_id, amount)
        self._release(work.connection_id, record)
        record.status = SyncStatus.SKIPPED
        record.last_error = reason
        record.attempts += 1
        self.state.save(record, revision)
        logger.info("ledger payment skipped", extra={"source_id": source_id, "reason": reason})
        return Applied(source_id, Outcome.SKIPPED, reason)

    def _new_record(self, work: _Work, source_id: str) -> SyncRecord:
        return SyncRecord(
            connection_id=work.connection_id,
            kind="ledger_payment",
            source_id=source_id,
            direction="to_source",
        )

    @staticmethod
    def _describe(record: SyncRecord, work: _Work, invoice_id: str, amount: int) -> None:
        record.direction = "to_source"
        record.ledger_id = work.payment.id
        record.ledger_version = work.payment.version
        record.ledger_number = invoice_id
        record.ledger_total = amount
        record.source_total = amount  # what Stripe is told: the log's amount column
        record.currency = work.payment.currency.upper()
        record.event_id = work.message.event_id
        # What the nightly export's payments_back.csv shows: when it was paid and how.
        record.summary = DocumentSummary(
            issued_on=work.payment.paid_on,
            reference=work.payment.reference or work.payment.method,
            total=amount,
        ).dump()

    # --- Stripe -----------------------------------------------------------------------------------

    def _tell_stripe(self, work: _Work, record: SyncRecord, revision: int, amount: int) -> Applied:
        """3.5.1: read the invoice, decide, write; each write under the recorded intent's key."""
        assert record.source_target is not None
        assert record.idempotency_key is not None
        side = StripeSide(self.stripe_for(work.connection))
        invoice = self._read_stripe(side, record, revision)
        step = plan(invoice, record, amount, work.payment.currency)
        key = record.idempotency_key
        try:
            if step is Step.FULL:
                # Named before the call: after a crash, the re-read knows whose pay it was.
                record.stripe_object = invoice.id
                revision = self.state.save(record, revision)
                side.client.pay_out_of_band(invoice.id, key)
            elif step in {Step.PARTIAL, Step.ATTACH}:
                if step is Step.PARTIAL:
                    reported = side.client.report_payment(
                        **self._report(work, record, invoice, amount, f"{key}:report")
                    )
                    record.stripe_object = str(reported["id"])
                    revision = self.state.save(record, revision)
                    # Before the attach: push must know this payment record is the ledger's money.
                    self.state.link(
                        work.connection_id, record.stripe_object, f"ledger_payment#{record.source_id}"
                    )
                assert record.stripe_object is not None
                side.client.attach_payment(invoice.id, record.stripe_object, f"{key}:attach")
        except StripeApiError as error:
            revision = self._write_failed(work, side, record, revision, amount, error)
        return self._synced(work, record, revision)

    def _read_stripe(self, side: StripeSide, record: SyncRecord, revision: int) -> StripeInvoice:
        assert record.source_target is not None
        try:
            return side.read(record.source_target)
        except StripeNotFound as error:
            raise ParkError(NOT_IN_STRIPE, f"{record.source_target}: {error}") from error
        except StripeApiError as error:
            self._stripe_failed(record, revision, error)

    def _write_failed(
        self,
        work: _Work,
        side: StripeSide,
        record: SyncRecord,
        revision: int,
        amount: int,
        error: StripeApiError,
    ) -> int:
        """A write Stripe refused or may not have done (3.5.1 step 8, 3.7). Returns the record's
        revision when a re-read shows Stripe did it after all; raises otherwise."""
        if isinstance(error, StripeAuthError | StripeIdempotencyError | StripeNotFound):
            raise domain_error(error) from error
        if isinstance(error, StripeRateLimited | StripeConflict):
            # Turned away before Stripe acted, nothing saved under the key: the same key again.
            self._stripe_failed(record, revision, error)
        invoice = self._read_stripe(side, record, revision)
        if already_done(invoice, record, amount):
            logger.info("Stripe had done it", extra={"source_id": record.source_id, "error": error.code})
            return revision
        if isinstance(error, StripeUnavailable):
            # Stripe did nothing, and keeps the 500 under the key for a day: the next try gets a new key.
            record.attempts_generation += 1
            record.idempotency_key = idempotency_key(
                work.connection_id,
                "ledger_payment",
                record.source_id,
                "stripe",
                str(record.attempts_generation),
            )
            self._stripe_failed(record, revision, error)
        # Refused (400): what the invoice says now decides, else Stripe's own words park it.
        plan(invoice, record, amount, work.payment.currency)
        raise domain_error(error) from error

    def _stripe_failed(self, record: SyncRecord, revision: int, error: StripeApiError) -> NoReturn:
        """Counts a failed Stripe attempt on the record and raises: transient until the
        ``max_stripe_attempts``-th, then parked (``could not update Stripe``)."""
        if not isinstance(domain_error(error), TransientError):
            raise domain_error(error) from error
        record.attempts += 1
        record.last_error = f"{GAVE_UP}: {error}"
        self.state.save(record, revision)
        if record.attempts >= self.max_stripe_attempts:
            raise StripeGaveUp(GAVE_UP, f"{record.attempts} attempts: {error}") from error
        raise TransientError(f"{GAVE_UP} (attempt {record.attempts}): {error}") from error

    def _report(
        self, work: _Work, record: SyncRecord, invoice: StripeInvoice, amount: int, key: str
    ) -> dict[str, Any]:
        payment = work.payment
        ledger_name = LEDGER_NAMES.get(work.connection.ledger, work.connection.ledger)
        at = int(datetime.combine(payment.paid_on, time(12), UTC).timestamp())
        what = (payment.reference or payment.method or "Payment").strip()
        return {
            "amount": amount,
            "currency": invoice.currency.lower(),
            "initiated_at": at,
            "guaranteed_at": at,
            "display_name": f"Recorded in {ledger_name}",
            "idempotency_key": key,
            "payment_reference": f"{work.connection.ledger}:{payment.id}"[:255],
            "customer": invoice.customer,
            "description": f"{what} recorded in {ledger_name} (payment {payment.id})"[:1000],
            "metadata": {
                "invoice_sync_connection": work.connection_id,
                "invoice_sync_record": f"ledger_payment#{record.source_id}",
            },
        }

    def _synced(self, work: _Work, record: SyncRecord, revision: int) -> Applied:
        record.status = SyncStatus.SYNCED
        record.last_error = None
        record.alerted_reason = None
        record.attempts = 0
        self.state.save(record, revision)
        if record.stripe_object is not None and record.stripe_object.startswith("pr_"):
            self.state.link(work.connection_id, record.stripe_object, f"ledger_payment#{record.source_id}")
        self._reserve(work.connection_id, record.source_target, None, record, "done")
        logger.info(
            "ledger payment in Stripe", extra={"source_id": record.source_id, "stripe": record.stripe_object}
        )
        return Applied(record.source_id, Outcome.SYNCED)

    # --- deleted, voided, moved -------------------------------------------------------------------

    def _removed(
        self, message: LedgerEventMessage, mappings: Mappings, payment: LedgerPayment | None
    ) -> BackResult:
        """3.3 step 8: the ledger payment is gone (or voided); each of its records is withdrawn."""
        connection_id = mappings.connection.connection_id
        records = list(
            self.state.records_with_prefix(connection_id, "ledger_payment", f"{message.object_id}:")
        )
        if not records:
            return BackResult(Outcome.SKIPPED, message.object_id, "removed in the ledger; nothing was sent")
        ledger = self.ledger_for(mappings)
        placeholder = payment or LedgerPayment(
            id=message.object_id,
            version=None,
            currency=records[0][0].currency or "USD",
            total=Decimal(0),
            paid_on=datetime.now(UTC).date(),
            note=None,
            reference=None,
            method=None,
            applications=(),
            voided=True,
        )
        work = _Work(message, mappings, ledger, placeholder)
        applied = [
            self._guarded(
                work,
                record.source_id,
                record,
                partial(self._withdraw, work, record, revision, REMOVED_AFTER),
            )
            for record, revision in records
        ]
        return _summary(message.object_id, applied)

    def _withdraw(self, work: _Work, record: SyncRecord, revision: int, reason_after: str) -> Applied:
        """A record whose ledger payment no longer pays its invoice: parked for a person when Stripe
        holds the money, else skipped and its reservation released."""
        if record.status is SyncStatus.SKIPPED and record.last_error == REMOVED_BEFORE:
            return Applied(record.source_id, Outcome.UNCHANGED, REMOVED_BEFORE)
        if record.status is SyncStatus.PENDING and record.idempotency_key and record.source_target:
            if self._in_flight(record):
                raise TransientError(
                    f"ledger payment {record.source_id} is being sent to Stripe by another worker"
                )
            # A crash may have come after Stripe took it: look before calling it never sent.
            invoice = self._read_stripe(StripeSide(self.stripe_for(work.connection)), record, revision)
            if already_done(invoice, record, record.ledger_total or 0):
                record.status = SyncStatus.SYNCED
                revision = self.state.save(record, revision)
        if record.status is SyncStatus.SYNCED or record.alerted_reason in AFTER_STRIPE:
            money = Money(minor=record.ledger_total or 0, currency=record.currency or "USD")
            raise AfterStripe(
                reason_after,
                f"Stripe invoice {record.source_target} holds {money} from ledger payment {record.ledger_id} "
                f"({record.stripe_object}), which no longer pays ledger invoice {record.ledger_number}",
            )
        self._release(work.connection_id, record)
        record.status = SyncStatus.SKIPPED
        record.last_error = REMOVED_BEFORE
        self.state.save(record, revision)
        logger.info("ledger payment withdrawn", extra={"source_id": record.source_id})
        return Applied(record.source_id, Outcome.SKIPPED, REMOVED_BEFORE)

    # --- the reservation on the invoice's record (3.6 loop 2) -------------------------------------

    def _reserve(
        self,
        connection_id: str,
        invoice_source_id: str | None,
        revision: int | None,
        record: SyncRecord,
        state: LedgerPaidState,
    ) -> None:
        """Sets this record's share on the invoice's ``ledger_paid``, under the invoice record's
        revision; push writing the record in between costs a re-read, not the message."""
        if invoice_source_id is None or record.ledger_total is None or record.ledger_total <= 0:
            return
        key = f"ledger_payment#{record.source_id}"
        for attempt in range(RESERVE_TRIES):
            if revision is None or attempt:
                current, revision = self.state.get(connection_id, "invoice", invoice_source_id)
                if current is None:
                    raise TransientError(f"invoice {invoice_source_id} has no record to reserve on")
                entry = (current.ledger_paid or {}).get(key)
                if (
                    entry is not None
                    and entry.state == state
                    and entry.amount == record.ledger_total
                    and state == "done"
                ):
                    return
            try:
                self.state.reserve_ledger_paid(
                    connection_id, invoice_source_id, key, record.ledger_total, state, revision
                )
                return
            except ConcurrentUpdate:
                revision = None
        raise TransientError(f"invoice {invoice_source_id} kept changing while its payment was reserved")

    def _release(self, connection_id: str, record: SyncRecord) -> None:
        """Removes this record's share from its invoice's ``ledger_paid`` (Stripe does not hold it)."""
        if record.source_target is None:
            return
        key = f"ledger_payment#{record.source_id}"
        for _ in range(RESERVE_TRIES):
            current, revision = self.state.get(connection_id, "invoice", record.source_target)
            if current is None or key not in (current.ledger_paid or {}):
                return
            try:
                self.state.release_ledger_paid(connection_id, record.source_target, key, revision)
                return
            except ConcurrentUpdate:
                continue
        raise TransientError(
            f"invoice {record.source_target} kept changing while its reservation was released"
        )


def _by_invoice(applications: Sequence[PaymentApplication]) -> dict[str, Decimal]:
    """The money a payment applies per invoice (two lines on one invoice are one share)."""
    amounts: dict[str, Decimal] = {}
    for application in applications:
        amounts[application.invoice_id] = amounts.get(application.invoice_id, Decimal(0)) + application.amount
    return amounts


def _summary(object_id: str, applied: Sequence[Applied]) -> BackResult:
    """One outcome for the message: the most telling of its records'."""
    for outcome in (Outcome.PARKED, Outcome.SYNCED, Outcome.SKIPPED, Outcome.UNCHANGED):
        reasons = [a.reason for a in applied if a.outcome is outcome and a.reason]
        if any(a.outcome is outcome for a in applied):
            return BackResult(outcome, object_id, "; ".join(dict.fromkeys(reasons)) or None, tuple(applied))
    return BackResult(Outcome.SKIPPED, object_id, "pays no invoice", tuple(applied))
