"""Domain errors. Adapters raise these (``raise ... from exc``); one place maps each to an outcome.

Outcomes:
- ``TransientError``: try again later (the message goes back to the queue).
- ``ParkError`` subclasses: the record is parked with its reason and status, alerted once.
- ``RequestRejected`` subclasses: a webhook is refused with an HTTP status.
"""

from __future__ import annotations

from invoice_sync.models.sync import SyncStatus


class InvoiceSyncError(Exception):
    """Base of every error invoice-sync raises on purpose. Messages never carry secrets."""


# --- webhook intake -------------------------------------------------------------------------------


class RequestRejected(InvoiceSyncError):
    status_code = 400


class BadSignature(RequestRejected):
    status_code = 401


class UnknownConnection(RequestRejected):
    status_code = 404


class PayloadTooLarge(RequestRejected):
    status_code = 413


class InvalidPayload(RequestRejected):
    status_code = 400


class MessageTooLarge(InvoiceSyncError):
    """A webhook's body and snapshot together would not fit in one queue message: intake archives
    the body on its own and sends the message without it."""


# --- sync outcomes --------------------------------------------------------------------------------


class TransientError(InvoiceSyncError):
    """Worth retrying: throttling, 5xx, timeouts, a lock held by another worker."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ParkError(InvoiceSyncError):
    """Cannot sync until a person acts. ``reason`` is short and stable (it de-duplicates alerts)."""

    status = SyncStatus.REJECTED

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MappingMissing(ParkError):
    status = SyncStatus.NEEDS_MAPPING

    def __init__(self, missing: list[str]) -> None:
        super().__init__("mapping missing", "; ".join(missing))
        self.missing = missing


class InvalidSnapshot(ParkError):
    status = SyncStatus.REJECTED


class ConnectionBroken(ParkError):
    """The connection cannot be used until it is reconnected (revoked token, lapsed company)."""

    status = SyncStatus.FAILED


# --- ledger port ----------------------------------------------------------------------------------


class LedgerError(InvoiceSyncError):
    """Base of what a ledger adapter raises; ``code`` is the ledger's own error code when it has one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class LedgerThrottled(LedgerError, TransientError):
    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        LedgerError.__init__(self, message, code=code)
        self.retry_after = retry_after


class LedgerUnavailable(LedgerError, TransientError):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        LedgerError.__init__(self, message, code=code)
        self.retry_after = None


class StaleObject(LedgerError):
    """The document changed in the ledger since we read it (QBO 5010)."""


class DuplicateNumber(LedgerError):
    """Another ledger document already has this number (QBO 6140)."""


class DuplicateName(LedgerError):
    """Another ledger contact already has this name (QBO 6240)."""


class NotFound(LedgerError):
    """The referenced ledger object does not exist (QBO 610)."""


class LedgerValidation(LedgerError):
    """The ledger refused the document's content (QBO 2xxx, 6000): park it with the ledger's words."""


class CompanyUnavailable(LedgerError):
    """The ledger company cannot take documents (QBO 6190: subscription lapsed or suspended)."""


class Unsupported(LedgerError):
    """The ledger's API has no call for this (QBO cannot pay a credit memo out): a person does it."""


class TokenRevoked(LedgerError):
    """The refresh token is gone (``invalid_grant``): the connection must be authorised again."""


class TokenExpired(LedgerError):
    """The access token was refused; refresh and try once more."""
