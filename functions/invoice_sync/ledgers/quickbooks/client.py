"""QBO v3 specifics of the shared HTTP plumbing: the company path, minorversion, Fault codes."""

from __future__ import annotations

from collections.abc import Mapping
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
    StaleObject,
    TokenExpired,
)
from invoice_sync.ledgers.http import LedgerHttp

MINOR_VERSION = 75  # Intuit retired every minor version below 75
# Intuit's limits per company and app (LEDGER-APIS.md 1.3): 500 requests a minute, 10 a second
# and 10 at once, of which at most 40 a minute may be /batch requests.
REQUESTS_PER_MINUTE = 500
REQUESTS_PER_SECOND = 10
CONCURRENT_REQUESTS = 10
BATCH_REQUESTS_PER_MINUTE = 40
BATCH_WINDOW = "batch"  # the client-side window /batch requests count in


def fault_error(status: int, body: Any, _headers: Mapping[str, str] | None = None) -> LedgerError:
    """One place that turns a QBO Fault into the port's typed error."""
    errors = ((body.get("Fault") or {}).get("Error") or []) if isinstance(body, dict) else []
    first = errors[0] if errors else {}
    code = str(first.get("code", ""))
    message = str(first.get("Message", f"HTTP {status}"))
    detail = str(first.get("Detail", ""))
    text = f"QBO {code or status}: {message}" + (f" ({detail})" if detail else "")
    if status == 429 or code == "3001":
        return LedgerThrottled(text, code=code)
    if status == 401 or code in {"3200", "3100"}:
        return TokenExpired(text, code=code)
    if code == "5010":
        return StaleObject(text, code=code)
    if code == "6140":
        return DuplicateNumber(text, code=code)
    if code == "6240":
        return DuplicateName(text, code=code)
    if code == "610":
        return NotFound(text, code=code)
    if code == "6190":
        return CompanyUnavailable(text, code=code)
    if status >= 500:
        return LedgerUnavailable(text, code=code)
    return LedgerValidation(text, code=code)


class QuickBooksClient:
    """Calls under ``/v3/company/{realmId}`` with ``minorversion`` on every request."""

    def __init__(self, http: LedgerHttp) -> None:
        self.http = http

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: Any = None,
        window: str | None = None,
    ) -> dict[str, Any]:
        query = {"minorversion": str(MINOR_VERSION), **(params or {})}
        result: dict[str, Any] = self.http.request(method, path, params=query, payload=payload, window=window)
        return result

    def query(self, statement: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "query", params={"query": statement}).get(
            "QueryResponse", {}
        )
        return result
