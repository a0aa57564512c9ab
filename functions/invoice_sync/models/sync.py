"""Sync state: what invoice-sync knows about one source object in one connection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# ``ledger_payment``: a payment made in the ledger and mirrored to the source (issue 7, payments
# back); its records are ``direction="to_source"``. ``payout``: a Stripe payout booked as one ledger
# deposit (issue 7, design two-way 3.5.2; sort key ``payout#po_...``).
DocumentKind = Literal["invoice", "payment", "customer", "credit_note", "refund", "ledger_payment", "payout"]

# Which way a record's document travels: Stripe -> ledger (everything push writes) or ledger ->
# Stripe (payments back).
Direction = Literal["to_ledger", "to_source"]

LedgerPaidState = Literal["pending", "done"]


class SyncStatus(StrEnum):
    PENDING = "pending"  # intent recorded: a ledger create may be in flight
    SYNCED = "synced"
    NEEDS_MAPPING = "needs_mapping"
    REJECTED = "rejected"  # the ledger refused the document (validation) or the snapshot is invalid
    FAILED = "failed"  # the connection cannot be used (revoked token, lapsed subscription)
    SKIPPED = "skipped"  # nothing to put in the books (a draft)

    @property
    def parked(self) -> bool:
        return self in {SyncStatus.NEEDS_MAPPING, SyncStatus.REJECTED, SyncStatus.FAILED}


def utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerPaid(BaseModel):
    """One ledger payment's share of an invoice, as payments back records it on the invoice's record
    (design 3.6, loop 2): ``pending`` from before the Stripe call until its outcome is known,
    ``done`` once Stripe holds the money. Push subtracts these amounts from Stripe's cumulative
    ``amount_paid``, and waits while one is pending."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(gt=0)  # minor units of the invoice's currency
    state: LedgerPaidState
    at: AwareDatetime  # when the entry was last set


class PollCursor(BaseModel):
    """Where a ledger poll (the Xero payments poll) resumes, and the revision it was read at."""

    model_config = ConfigDict(frozen=True)

    since: AwareDatetime  # the newest change seen (Xero: UpdatedDateUTC), the next poll's If-Modified-Since
    revision: int = Field(default=0, ge=0)  # 0: never saved
    last_run_at: AwareDatetime | None = None
    last_count: int | None = Field(default=None, ge=0)


class SyncRecord(BaseModel):
    """One item per (connection, kind, source id) in the SyncState table."""

    model_config = ConfigDict(validate_assignment=True)

    connection_id: str
    kind: DocumentKind
    source_id: str
    source_version: int = 0
    content_hash: str | None = None
    status: SyncStatus = SyncStatus.PENDING
    idempotency_key: str | None = None
    ledger_id: str | None = None
    ledger_version: str | None = None
    ledger_number: str | None = None
    ledger_customer_id: str | None = None
    # Invoices: their lines' products ({"il_…": "prod_…"} as JSON), so a credit note crediting a
    # line posts to the same item.
    line_products: str | None = None
    # Invoices: a digest of the ledger draft last written, so that a replay with a newer mapping
    # rewrites only the invoices today's mapping would write differently.
    draft_hash: str | None = None
    # Invoices: the refunds on them as JSON ({"charges": {"ch_…": refunded so far}, "credit":
    # {"cn_…": refunded through that credit note}, "booked": refunded cash booked as refund
    # documents}), so that money a credit note already gives back is never refunded twice.
    refunds: str | None = None
    source_number: str | None = None
    currency: str | None = None
    source_total: int | None = None
    ledger_total: int | None = None
    mapping_version: int | None = None
    attempts: int = 0
    last_error: str | None = None
    alerted_reason: str | None = None
    event_id: str | None = None
    # The raw archive's key of the event that last brought this record's snapshot (for a payment:
    # its invoice's event), so the operator CLI can re-drive a parked record from its source.
    archive_key: str | None = None
    # What the nightly export writes for this document (dates, customer, amounts, lines with their
    # ledger item, account and tax code), as compact JSON (``invoice_sync.models.summary``). None
    # on records written before the export existed: they export with blanks.
    summary: str | None = None
    # Payments back (issue 7). All optional: records written before them load unchanged.
    direction: Direction = "to_ledger"
    # ledger_payment records: the Stripe invoice (in_…) the ledger payment pays, and the Stripe
    # object that now holds the money: the invoice itself (paid out of band) or a payment record
    # (pr_…, a partial payment).
    source_target: str | None = None
    stripe_object: str | None = None
    # Part of the Stripe idempotency key; bumped only after a 5xx or a timeout that a re-read shows
    # Stripe did not act on (Stripe keeps a 500 under its key for 24 hours).
    attempts_generation: int = Field(default=0, ge=0)
    # Invoices: the ledger payments mirrored to Stripe, by their record's sort key
    # (``ledger_payment#{payment}:{invoice}``). Stored as compact JSON; None when there are none.
    ledger_paid: dict[str, LedgerPaid] | None = None
    # Payment and refund records (payouts as deposits, design two-way 3.5.2 step 10): the ledger
    # deposit that took their money out of the clearing account (its ledger id), so a later payout
    # never links the same payment twice. None: not deposited (yet).
    deposit_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("ledger_paid", mode="before")
    @classmethod
    def _ledger_paid_json(cls, value: Any) -> Any:
        """The store keeps the map as a JSON string; a model or dict is taken as it is."""
        if isinstance(value, str):
            value = json.loads(value) if value else None
        return value or None  # no entries: none

    def ledger_paid_total(self) -> int:
        """Minor units the ledger's own payments (pending or done) account for on this invoice."""
        return sum(entry.amount for entry in (self.ledger_paid or {}).values())

    def ledger_paid_pending(self, now: datetime, within: timedelta) -> list[str]:
        """The keys of the entries still pending that were set less than ``within`` before ``now``:
        a Stripe call for them may be in flight (push waits rather than guess)."""
        return sorted(
            key
            for key, entry in (self.ledger_paid or {}).items()
            if entry.state == "pending" and now - entry.at < within
        )
