"""The one place that decides what an error means for a sync record: park it, or retry later.

Everything not named here is retried: the message goes back to the queue, and after the queue's
maxReceiveCount it waits in the dead-letter queue. A retry is the safe default because push is
idempotent; parking is for errors a retry cannot fix.
"""

from __future__ import annotations

from invoice_sync.errors import (
    CompanyUnavailable,
    ConnectionBroken,
    DuplicateName,
    DuplicateNumber,
    InvoiceSyncError,
    LedgerValidation,
    NotFound,
    ParkError,
    TokenExpired,
    TokenRevoked,
    Unsupported,
)


def park_reason(error: InvoiceSyncError) -> ParkError | None:
    """The park this error calls for, or None when it should be retried."""
    if isinstance(error, ParkError):
        return error
    if isinstance(error, TokenRevoked):
        return ConnectionBroken("ledger authorisation revoked", "reconnect the ledger")
    if isinstance(error, TokenExpired):
        # Raised only when a freshly refreshed token is refused too.
        return ConnectionBroken("ledger authorisation refused", str(error))
    if isinstance(error, CompanyUnavailable):
        return ConnectionBroken("ledger company unavailable", str(error))
    if isinstance(error, LedgerValidation):
        return ParkError("ledger refused the document", str(error))
    if isinstance(error, NotFound):
        return ParkError("ledger reference not found", str(error))
    if isinstance(error, DuplicateNumber):
        return ParkError("duplicate document number", str(error))
    if isinstance(error, Unsupported):
        return ParkError("ledger cannot do this through its API", str(error))
    if isinstance(error, DuplicateName):
        return ParkError("ledger name taken", str(error))
    return None
