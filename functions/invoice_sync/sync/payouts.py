"""Payouts as bank deposits (issue 7, design 3.5.2): one Stripe payout becomes one deposit in the
ledger, equal to the bank line to the cent, so the bank feed can match it.

A payout settles many balance transactions: card payments (each already booked by push as a ledger
payment sitting in the clearing / undeposited-funds account), refunds (booked out of it), Stripe's
fees and adjustments (disputes, reversals). The deposit moves each payment and refund out of
clearing, adds one line for every fee together and a line per adjustment, and so equals the payout.

Nothing is written to the ledger before every transaction is read and mapped and their net adds up
to the payout: a deposit that would not match the bank line is never booked (parked instead).
Money no synced payment accounts for (a charge that paid no invoice, an invoice still parked) goes
to the connection's unmatched account, so the deposit still equals the bank line, and one alert
names it for a person.

Exactly once, as push's documents: the intent (``payout#po_...``, its idempotency key) is recorded
before the ledger write; a retry looks the deposit up by its reference and marker first. The
payments and refunds a deposit took are marked (``deposit_id`` = the payout) only after it is
booked; a retry between the two finds the same records (theirs or not yet anyone's) and so builds
the same deposit.

FreshBooks has no deposit API (design 3.9): its fees are booked as one expense and the whole
deposit is written as a slip (CSV and JSON) to the archive bucket for a person to match.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from invoice_sync.errors import MappingMissing, ParkError, TransientError
from invoice_sync.ledgers.port import DepositDraft, DepositLine, LedgerDocument, LedgerPort, marker
from invoice_sync.models.documents import Payout
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.money import Money
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.observability import logger
from invoice_sync.store.sync_state import ConcurrentUpdate
from invoice_sync.sync.push import (
    Alerts,
    Outcome,
    PushResult,
    create_once,
    finish_record,
    payment_link,
    publish_record,
)

# Balance transaction types that are Stripe's own charges to the account: one fee line with the
# ``fee`` of every transaction. (Stripe's list of ``type`` values: API reference, Balance
# Transaction object.)
FEE_TYPES = frozenset({"stripe_fee", "application_fee", "tax_fee", "stripe_fx_fee", "network_cost"})
CHARGE_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
PAYOUT_TYPES = frozenset({"payout", "payout_cancel", "payout_failure"})

MANUAL_PAYOUT_ALERT_SECONDS = 30 * 24 * 3600
UNMATCHED = "payout line without its ledger document"
SLIP_ONLY = "deposit slip only: FreshBooks has no deposit API"
PAYOUT_ADVICE = (
    "Check the payout in Stripe (Balance > Payouts) and the deposit in the ledger; then re-drive it: "
    "`invoice-sync redrive --connection {connection} --source-id {source_id}`."
)


class PayoutStripe(Protocol):
    """What a payout needs to read from Stripe (``sources.stripe_api.StripeApi``)."""

    def list_balance_transactions(self, payout_id: str) -> list[dict[str, Any]]: ...

    def invoice_of_payment_intent(self, payment_intent: str) -> str | None: ...


class PayoutState(Protocol):
    """The SyncState store, as far as payouts use it."""

    def get(self, connection_id: str, kind: Any, source_id: str) -> tuple[SyncRecord | None, int]: ...

    def save(self, record: SyncRecord, revision: int) -> int: ...

    def records_with_prefix(
        self, connection_id: str, kind: Any, source_prefix: str
    ) -> Iterator[tuple[SyncRecord, int]]: ...

    def invoice_of_charge(self, connection_id: str, charges: Sequence[str]) -> str | None: ...

    def link_charges(self, connection_id: str, charges: Sequence[str], invoice_source_id: str) -> None: ...

    def linked(self, connection_id: str, name: str) -> str | None: ...

    def alert_sent(self, key: str) -> bool: ...

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None: ...


class Slips(Protocol):
    """Where FreshBooks' deposit slips go (``store.reports.ReportBucket``)."""

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


def slip_key(connection_id: str, payout_id: str, suffix: str) -> str:
    """Where a FreshBooks payout's deposit slip is kept in the archive bucket (no lifecycle rule
    touches ``deposit-slips/``: a slip is a record of the books)."""
    return f"deposit-slips/{connection_id}/{payout_id}.{suffix}"


@dataclass(frozen=True)
class Txn:
    """One balance transaction of a payout, in minor units of the payout's currency."""

    id: str
    type: str
    amount: int
    fee: int
    net: int
    currency: str
    exchange_rate: object
    source: dict[str, Any] | str | None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Txn:
        try:
            amount, fee, net = raw["amount"], raw["fee"], raw["net"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (amount, fee, net)):
                raise TypeError("amounts are not integers")
            return cls(
                id=str(raw["id"]),
                type=str(raw["type"]),
                amount=amount,
                fee=fee,
                net=net,
                currency=str(raw["currency"]).upper(),
                exchange_rate=raw.get("exchange_rate"),
                source=raw.get("source"),
            )
        except (KeyError, TypeError) as error:
            raise ParkError(
                "payout transactions unreadable", f"balance transaction {raw.get('id')!r}: {error}"
            ) from error

    def source_id(self) -> str | None:
        if isinstance(self.source, dict):
            value = self.source.get("id")
            return value if isinstance(value, str) else None
        return self.source

    def source_field(self, name: str) -> str | None:
        if not isinstance(self.source, dict):
            return None
        value = self.source.get(name)
        if isinstance(value, dict):
            value = value.get("id")
        return value if isinstance(value, str) else None


@dataclass
class _Plan:
    """The deposit being built: its lines and the records whose money it takes."""

    lines: list[DepositLine] = field(default_factory=list)
    taken: list[tuple[str, str]] = field(default_factory=list)  # (kind, source id) of records
    unmatched: list[str] = field(default_factory=list)
    fees: int = 0  # minor units Stripe kept, positive

    def take(
        self,
        connection: Connection,
        txn: Txn,
        kind: Literal["payment", "refund"],
        found: list[SyncRecord] | None,
        money: Callable[[int], Decimal],
        what: str,
    ) -> None:
        """The lines of a charge or refund: one per record it is (money in for a payment, out for a
        refund), or, when no synced record is, one line to the unmatched account."""
        if found is None:
            self.lines.append(
                DepositLine(
                    kind="unmatched",
                    amount=money(txn.amount),
                    description=f"{what}: no synced ledger document",
                    account=connection.payout_unmatched_account,
                    source_id=txn.id,
                )
            )
            self.unmatched.append(txn.source_id() or txn.id)
            return
        for record in found:
            amount = money(record.ledger_total or 0)
            self.lines.append(
                DepositLine(
                    kind=kind,
                    amount=amount if kind == "payment" else -amount,
                    description=(
                        f"Payment of {record.source_number or record.source_id}"
                        if kind == "payment"
                        else f"Refund {record.ledger_number or record.source_id}"
                    ),
                    ledger_id=record.ledger_id,
                    source_id=txn.id,
                )
            )
            self.taken.append((kind, record.source_id))


class PayoutService:
    def __init__(
        self,
        *,
        state: PayoutState,
        alerts: Alerts,
        stripe_for: Callable[[str], PayoutStripe],
        slips: Slips,
        intent_timeout: timedelta = timedelta(seconds=120),
    ) -> None:
        self.state = state
        self.alerts = alerts
        self.stripe_for = stripe_for
        self.slips = slips
        self.intent_timeout = intent_timeout

    def converge(
        self,
        message: SyncMessage,
        payout: Payout,
        record: SyncRecord,
        revision: int,
        mappings: Mappings,
        ledger_for: Callable[[Mappings], LedgerPort],
    ) -> PushResult:
        connection = mappings.connection
        content_hash = payout.content_hash()
        record.source_number = payout.number
        record.currency = payout.currency
        record.source_total = payout.amount

        def finish(status: SyncStatus, note: str | None) -> PushResult:
            return finish_record(self.state, record, revision, message.version, content_hash, status, note)

        if not connection.payout_deposits:
            return finish(SyncStatus.SKIPPED, "payout deposits not enabled")
        if payout.status in {"failed", "canceled"}:
            if record.status is SyncStatus.SYNCED and record.ledger_id:
                raise ParkError(
                    "payout failed after its deposit was booked",
                    f"payout {payout.source_id} is {payout.status} in Stripe but deposit {record.ledger_id} "
                    "is in the ledger: void the deposit there (invoice-sync never deletes ledger documents)",
                )
            return finish(SyncStatus.SKIPPED, f"payout {payout.status}: no money arrived")
        if not payout.automatic or payout.reconciliation_status == "not_applicable":
            self._alert_manual(record)
            return finish(
                SyncStatus.SKIPPED, "manual payout: Stripe does not say which transactions it settles"
            )
        if payout.status != "paid":
            return finish(SyncStatus.SKIPPED, f"not paid yet ({payout.status})")
        if payout.amount <= 0:
            raise ParkError(
                "payout debits the bank",
                f"payout {payout.number} takes {payout.money(-payout.amount)} from the bank (Stripe "
                "reclaiming a negative balance): book it by hand",
            )
        if record.status is SyncStatus.SYNCED and record.ledger_id:
            return PushResult(Outcome.UNCHANGED, payout.source_id, record.ledger_id)
        if payout.reconciliation_status == "in_progress":
            # payout.reconciliation_completed follows; this delivery comes back meanwhile.
            raise TransientError(f"payout {payout.source_id}: Stripe is still reconciling it")
        ledger = ledger_for(mappings)
        txns = self._transactions(connection.connection_id, payout)
        plan = self._plan(connection, payout, txns)
        draft = self._draft(connection, payout, plan, ledger)
        # One deposit (QBO), transfer (Xero) or fee expense (FreshBooks: a payout without fees is
        # a deposit of 0 the adapter names by the payout), created once.
        document, revision, _ = create_once(
            self.state,
            self.intent_timeout,
            message.connection_id,
            payout.source_id,
            draft.number,
            record,
            revision,
            find=lambda _number: ledger.find_deposit(draft),
            create=lambda key: ledger.create_deposit(draft, key),
            adopt=lambda found: found,  # find_deposit adopts only a deposit with our marker
            request=draft,
        )
        note: str | None = None
        if ledger.deposit_support == "fees_only":
            self._write_slip(message.connection_id, draft, document)
            note = SLIP_ONLY
        record.ledger_id = document.id
        record.ledger_number = document.number or draft.number
        record.ledger_total = Money.from_decimal(document.total, payout.currency).minor
        record.summary = _summary(draft, plan)
        record.mapping_version = connection.mapping_version
        self._mark_taken(connection.connection_id, payout.source_id, plan.taken)
        if plan.unmatched and record.alerted_reason != UNMATCHED:
            where = (
                "listed on the deposit slip with no ledger document"
                if ledger.deposit_support == "fees_only"
                else f"booked to the unmatched account {connection.payout_unmatched_account}"
            )
            publish_record(
                self.alerts,
                record,
                UNMATCHED,
                f"payout {payout.number}: {len(plan.unmatched)} transaction(s) {where}: "
                f"{', '.join(plan.unmatched[:10])}",
                advice=PAYOUT_ADVICE,
            )
            record.alerted_reason = UNMATCHED
        result = finish(SyncStatus.SYNCED, note)
        logger.info(
            "payout booked",
            extra={
                "payout": payout.source_id,
                "deposit": record.ledger_id,
                "lines": len(draft.lines),
                "unmatched": len(plan.unmatched),
            },
        )
        return result

    # --- reading and mapping ----------------------------------------------------------------------

    def _transactions(self, connection_id: str, payout: Payout) -> list[Txn]:
        # The Stripe client's module loads with the first payout (push's init does not need it).
        from invoice_sync.sources.stripe_api import StripeApiError, domain_error  # noqa: PLC0415

        try:
            raw = self.stripe_for(connection_id).list_balance_transactions(payout.source_id)
        except StripeApiError as error:
            raise domain_error(error) from error
        txns = [
            txn
            for txn in (Txn.of(item) for item in raw)
            if txn.id != payout.balance_transaction and txn.type not in PAYOUT_TYPES
        ]
        foreign = [t.id for t in txns if t.currency != payout.currency.upper() or t.exchange_rate is not None]
        if foreign:
            raise ParkError(
                "multi-currency payout not supported yet",
                f"payout {payout.number} settles transactions converted from another currency "
                f"({', '.join(foreign[:5])}): book its deposit by hand",
            )
        net = sum(t.net for t in txns)
        if net != payout.amount:
            raise ParkError(
                "payout does not add up",
                f"payout {payout.number} is {payout.amount} but its {len(txns)} transactions net {net} "
                f"({payout.currency} minor units): nothing was booked",
            )
        return txns

    def _plan(self, connection: Connection, payout: Payout, txns: list[Txn]) -> _Plan:
        plan = _Plan()
        money = partial_money(payout.currency)
        fee_types = 0  # the amounts of fee-type transactions (negative: money Stripe took)
        used: set[tuple[str, str]] = set()
        for txn in txns:
            plan.fees += txn.fee
            if txn.type in FEE_TYPES:
                fee_types += txn.amount
            elif txn.type in CHARGE_TYPES:
                found = self._payments_of(connection.connection_id, payout, txn, used)
                plan.take(
                    connection, txn, "payment", found, money, f"Stripe charge {txn.source_id() or txn.id}"
                )
            elif txn.type in REFUND_TYPES:
                found = self._refunds_of(connection.connection_id, payout, txn, used)
                plan.take(
                    connection, txn, "refund", found, money, f"Stripe refund {txn.source_id() or txn.id}"
                )
            else:
                # Disputes, reversals, failed refunds, top-ups and every type not named above.
                plan.lines.append(
                    DepositLine(
                        kind="adjustment",
                        amount=money(txn.amount),
                        description=f"Stripe {txn.type.replace('_', ' ')} {txn.source_id() or txn.id}",
                        account=connection.payout_adjustment_account,
                        source_id=txn.id,
                    )
                )
        fee_total = plan.fees - fee_types  # positive: what Stripe kept
        plan.fees = fee_total
        if fee_total:
            plan.lines.append(
                DepositLine(
                    kind="fee",
                    amount=-money(fee_total),
                    description=f"Stripe fees, payout {payout.number}",
                    account=connection.payout_fee_account,
                )
            )
        return plan

    def _payments_of(
        self, connection_id: str, payout: Payout, txn: Txn, used: set[tuple[str, str]]
    ) -> list[SyncRecord] | None:
        """The synced payment records (not taken by another payout) whose ledger totals make up the
        charge's amount, oldest first; None when none do."""
        charge = txn.source_id()
        intent = txn.source_field("payment_intent")
        charges = [c for c in (charge, intent) if c]
        if not charges:
            return None
        candidates: dict[str, SyncRecord] = {}
        for name in charges:
            record_sk = self.state.linked(connection_id, payment_link(name))
            if record_sk and record_sk.startswith("payment#"):
                found, _ = self.state.get(connection_id, "payment", record_sk.split("#", 1)[1])
                if found is not None:
                    candidates[found.source_id] = found
        invoice = self.state.invoice_of_charge(connection_id, charges)
        if invoice is None and intent is not None:
            from invoice_sync.sources.stripe_api import StripeApiError, domain_error  # noqa: PLC0415

            try:
                invoice = self.stripe_for(connection_id).invoice_of_payment_intent(intent)
            except StripeApiError as error:
                raise domain_error(error) from error
            if invoice is not None:
                self.state.link_charges(connection_id, charges, invoice)
        if invoice is not None:
            for found, _ in self.state.records_with_prefix(connection_id, "payment", f"{invoice}:"):
                candidates.setdefault(found.source_id, found)
        return _making_up(
            [r for r in candidates.values() if ("payment", r.source_id) not in used],
            txn.amount,
            payout.source_id,
            used,
            "payment",
        )

    def _refunds_of(
        self, connection_id: str, payout: Payout, txn: Txn, used: set[tuple[str, str]]
    ) -> list[SyncRecord] | None:
        charge = txn.source_field("charge")
        if charge is None:
            return None
        candidates = [
            r
            for r, _ in self.state.records_with_prefix(connection_id, "refund", f"{charge}:")
            if ("refund", r.source_id) not in used
        ]
        return _making_up(candidates, -txn.amount, payout.source_id, used, "refund")

    def _draft(self, connection: Connection, payout: Payout, plan: _Plan, ledger: LedgerPort) -> DepositDraft:
        missing: list[str] = []
        support = ledger.deposit_support
        if support != "fees_only" and not connection.payout_bank_account:
            missing.append("payout_bank_account: the bank account payouts land in")
        for kind, setting, what in (
            ("fee", "payout_fee_account", "the account Stripe's fees post to"),
            ("adjustment", "payout_adjustment_account", "the account disputes and adjustments post to"),
            ("unmatched", "payout_unmatched_account", "the account money with no synced payment posts to"),
        ):
            if any(line.kind == kind for line in plan.lines) and not getattr(connection, setting):
                if support == "fees_only" and kind != "fee":
                    continue  # FreshBooks books only the fees; the slip carries the rest
                missing.append(f"{setting}: {what}")
        if support == "transfer":
            if not connection.payment_account:
                missing.append("payment_account: the clearing account Stripe payments land in")
            if not connection.payout_contact_id:
                missing.append("payout_contact_id: the Stripe supplier contact")
        if missing:
            raise MappingMissing(missing)
        total = partial_money(payout.currency)(payout.amount)
        return DepositDraft(
            source_id=payout.source_id,
            number=payout.number,
            arrival_on=payout.arrival_on,
            currency=payout.currency,
            bank_account=connection.payout_bank_account,
            clearing_account=connection.payment_account,
            contact_id=connection.payout_contact_id,
            lines=tuple(plan.lines),
            total=total,
            private_note=marker(payout.source, payout.source_id),
        )

    # --- writing ----------------------------------------------------------------------------------

    def _write_slip(self, connection_id: str, draft: DepositDraft, fees: LedgerDocument) -> None:
        """FreshBooks: the deposit slip a person matches the bank line with (CSV and JSON)."""
        self.slips.put(slip_key(connection_id, draft.source_id, "csv"), slip_csv(draft), "text/csv")
        self.slips.put(
            slip_key(connection_id, draft.source_id, "json"),
            json.dumps(slip_document(draft, fees), indent=2).encode(),
            "application/json",
        )

    def _mark_taken(self, connection_id: str, payout_id: str, taken: list[tuple[str, str]]) -> None:
        """Marks each payment and refund the deposit took as deposited by this payout, so another
        payout never takes it again. Each is a conditional write, read again on a conflict."""
        for kind, source_id in taken:
            for _attempt in range(3):
                found, found_revision = self.state.get(connection_id, kind, source_id)
                if found is None or found.deposit_id == payout_id:
                    break
                found.deposit_id = payout_id
                try:
                    self.state.save(found, found_revision)
                    break
                except ConcurrentUpdate:
                    continue
            else:
                raise TransientError(f"{kind} {source_id} kept changing while its deposit was recorded")

    def _alert_manual(self, record: SyncRecord) -> None:
        key = f"{record.connection_id}#manual-payout"
        if self.state.alert_sent(key):
            return
        self.alerts.publish(
            f"invoice-sync: connection {record.connection_id}: manual payout not booked",
            f"Payout {record.source_id} of connection {record.connection_id} is a manual payout: Stripe "
            "does not say which transactions it settles, so invoice-sync cannot book it as a deposit. "
            "Book it by hand, or switch the Stripe account to automatic payouts (Settings > Payouts).",
            {"connection_id": record.connection_id, "kind": "payout", "reason": "manual payout"},
        )
        self.state.mark_alert_sent(key, MANUAL_PAYOUT_ALERT_SECONDS)


def partial_money(currency: str) -> Callable[[int], Decimal]:
    """Minor units of ``currency`` -> its exact decimal amount."""
    return lambda minor: Money(minor=minor, currency=currency).to_decimal()


def _making_up(
    candidates: list[SyncRecord], amount: int, payout_id: str, used: set[tuple[str, str]], kind: str
) -> list[SyncRecord] | None:
    """The records that make up ``amount`` (minor units): synced, in the ledger, not deposited by
    another payout; one of exactly that amount if there is one, else the oldest that add up to it.
    None when none do (the money then goes to the unmatched account). Marks them used."""
    eligible = sorted(
        (
            r
            for r in candidates
            if r.status is SyncStatus.SYNCED
            and r.ledger_id
            and (r.ledger_total or 0) > 0
            and r.deposit_id in (None, payout_id)
        ),
        key=lambda r: (r.created_at.isoformat() if r.created_at else "", r.source_id),
    )
    exact = next((r for r in eligible if r.ledger_total == amount), None)
    chosen: list[SyncRecord] = []
    if exact is not None:
        chosen = [exact]
    else:
        total = 0
        for r in eligible:
            if total + (r.ledger_total or 0) <= amount:
                chosen.append(r)
                total += r.ledger_total or 0
            if total == amount:
                break
        if total != amount:
            return None
    used.update((kind, r.source_id) for r in chosen)
    return chosen or None


def _summary(draft: DepositDraft, plan: _Plan) -> str:
    """The payout record's summary: the deposit's lines as the export and reconcile read them."""
    return json.dumps(
        {
            "payout": draft.source_id,
            "number": draft.number,
            "arrival_on": draft.arrival_on.isoformat(),
            "currency": draft.currency,
            "total": str(draft.total),
            "fees": str(partial_money(draft.currency)(plan.fees)),
            "unmatched": plan.unmatched,
            "lines": [_line_json(line) for line in draft.lines],
        },
        separators=(",", ":"),
    )


def _line_json(line: DepositLine) -> dict[str, str]:
    return {k: str(v) for k, v in asdict(line).items() if v is not None}


SLIP_COLUMNS = ("kind", "amount", "description", "ledger_id", "account", "stripe_transaction")


def slip_csv(draft: DepositDraft) -> bytes:
    """The deposit slip a person matches the bank line with: one row per line, then the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("payout", draft.source_id, "arrival", draft.arrival_on.isoformat(), draft.currency))
    writer.writerow(SLIP_COLUMNS)
    for line in draft.lines:
        writer.writerow(
            (
                line.kind,
                str(line.amount),
                line.description,
                line.ledger_id or "",
                line.account or "",
                line.source_id or "",
            )
        )
    writer.writerow(("total", str(draft.total), "the bank line", "", "", ""))
    return out.getvalue().encode()


def slip_document(draft: DepositDraft, fees: LedgerDocument) -> dict[str, object]:
    return {
        "payout": draft.source_id,
        "number": draft.number,
        "arrival_on": draft.arrival_on.isoformat(),
        "currency": draft.currency,
        "total": str(draft.total),
        "fee_expense": fees.id if fees.total else None,
        "lines": [_line_json(line) for line in draft.lines],
    }
