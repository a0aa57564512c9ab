"""Xero specifics: the tenant header, its limits, and its error bodies mapped to typed errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from invoice_sync.errors import (
    CompanyUnavailable,
    DuplicateName,
    DuplicateNumber,
    LedgerError,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    NotFound,
    TokenExpired,
)
from invoice_sync.ledgers.http import retry_after_seconds

# Per organisation (LEDGER-APIS.md 2.3): 60 calls a minute, 5 at once, 5,000 a day.
CALLS_PER_MINUTE = 60
CONCURRENT_CALLS = 5
CALLS_PER_DAY = 5000
QUOTA_HEADERS = ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining")


def validation_messages(element: Mapping[str, Any]) -> list[str]:
    return [str(e.get("Message", "")) for e in element.get("ValidationErrors") or () if e.get("Message")]


def classify(messages: Iterable[str]) -> LedgerError:
    """Xero says what is wrong only in words; these are the words that mean a specific error."""
    text = "; ".join(messages) or "validation error"
    lowered = text.lower()
    if "must be unique" in lowered and ("invoice #" in lowered or "credit note" in lowered):
        return DuplicateNumber(f"Xero: {text}", code="ValidationException")
    if "already assigned to another contact" in lowered:
        return DuplicateName(f"Xero: {text}", code="ValidationException")
    return LedgerValidation(f"Xero: {text}", code="ValidationException")


def error_for(status: int, body: Any, headers: Mapping[str, str]) -> LedgerError:
    """One place that turns a Xero error response into the port's typed error."""
    if status == 429:
        problem = headers.get("X-Rate-Limit-Problem", "minute")
        return LedgerThrottled(
            f"Xero {problem} rate limit reached", code=problem, retry_after=retry_after_seconds(headers)
        )
    if status == 401:
        return TokenExpired("Xero refused the access token", code="401")
    if status == 403:
        return CompanyUnavailable("Xero organisation is not connected to this app", code="403")
    if status == 404:
        return NotFound("Xero: the resource cannot be found", code="404")
    if status >= 500:
        return LedgerUnavailable(f"Xero answered HTTP {status}", code=str(status))
    if isinstance(body, dict) and body.get("Type") == "ValidationException":
        messages = [m for element in body.get("Elements") or () for m in validation_messages(element)]
        return classify(messages or [str(body.get("Message", ""))])
    detail = body.get("Detail") or body.get("Message") if isinstance(body, dict) else str(body)[:200]
    return LedgerValidation(f"Xero HTTP {status}: {detail}", code=str(status))
