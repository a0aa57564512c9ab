"""The outcome table: which errors park a record (and with what status), which are retried."""

from __future__ import annotations

import pytest

from invoice_sync.errors import (
    CompanyUnavailable,
    DuplicateName,
    DuplicateNumber,
    InvoiceSyncError,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    MappingMissing,
    NotFound,
    StaleObject,
    TokenExpired,
    TokenRevoked,
    TransientError,
)
from invoice_sync.models.sync import SyncStatus
from invoice_sync.sync.outcomes import park_reason


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (MappingMissing(["product prod_X"]), SyncStatus.NEEDS_MAPPING, "mapping missing"),
        (LedgerValidation("QBO 6000: bad", code="6000"), SyncStatus.REJECTED, "ledger refused the document"),
        (NotFound("QBO 610", code="610"), SyncStatus.REJECTED, "ledger reference not found"),
        (DuplicateNumber("QBO 6140", code="6140"), SyncStatus.REJECTED, "duplicate document number"),
        (DuplicateName("QBO 6240", code="6240"), SyncStatus.REJECTED, "ledger name taken"),
        (TokenRevoked("invalid_grant"), SyncStatus.FAILED, "ledger authorisation revoked"),
        (TokenExpired("QBO 3200", code="3200"), SyncStatus.FAILED, "ledger authorisation refused"),
        (CompanyUnavailable("QBO 6190", code="6190"), SyncStatus.FAILED, "ledger company unavailable"),
    ],
)
def test_permanent_errors_park_with_status_and_reason(
    error: InvoiceSyncError, status: SyncStatus, reason: str
) -> None:
    """Given an error a retry cannot fix, then it parks the record with a stable reason and status."""
    park = park_reason(error)
    assert park is not None
    assert (park.status, park.reason) == (status, reason)


@pytest.mark.parametrize(
    "error",
    [LedgerThrottled("429"), LedgerUnavailable("503"), TransientError("lease busy"), StaleObject("5010")],
)
def test_transient_errors_are_retried(error: InvoiceSyncError) -> None:
    """Given throttling, an outage, a busy lease or a stale object twice over, then no park: retry."""
    assert park_reason(error) is None
