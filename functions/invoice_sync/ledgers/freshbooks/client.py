"""FreshBooks specifics of the shared HTTP plumbing: the account path, envelopes, limits, errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from invoice_sync.errors import (
    CompanyUnavailable,
    LedgerError,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    NotFound,
    StaleObject,
    TokenExpired,
)
from invoice_sync.ledgers.http import LedgerHttp

# FreshBooks publishes no rate limit (LEDGER-APIS.md 3.3); these match the local sandbox's
# defaults and stay well inside what one account sees in practice. Its 429 stays the authority.
REQUESTS_PER_MINUTE = 100
CONCURRENT_REQUESTS = 5
PER_PAGE = 100  # FreshBooks' largest page

ERRNO_CONFLICT = 409
ERRNO_ACCESS_DENIED = 1003
ERRNO_UNKNOWN_RESOURCE = 1012
ERRNO_INACTIVE_ACCOUNT = 1042
# The accounting root every call of the client is under; the events API (webhook callbacks) is
# its sibling on the same host, ``/events/account/{account_id}``, with the same bearer token.
ACCOUNTING_ROOT = "accounting/account"


def _errors(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    errors = (body.get("response") or {}).get("errors") if isinstance(body.get("response"), dict) else None
    if isinstance(errors, dict):
        errors = [errors]
    return [e for e in errors or () if isinstance(e, dict)]


def _errno(error: Mapping[str, Any]) -> int | None:
    try:
        return int(error.get("errno"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def describe(error: Mapping[str, Any]) -> str:
    """One FreshBooks error in its own words: message, then which object/field/value it names."""
    text = str(error.get("message") or "error")
    where = ".".join(str(error[k]) for k in ("object", "field") if error.get(k))
    if where:
        text += f" ({where}"
        text += f" = {error['value']!r})" if error.get("value") not in (None, "") else ")"
    return text


def error_for(status: int, body: Any, headers: Mapping[str, str]) -> LedgerError:
    """One place that turns a FreshBooks error response into the port's typed error."""
    errors = _errors(body)
    first = errors[0] if errors else {}
    errno = _errno(first)
    code = str(errno) if errno is not None else str(status)
    text = "FreshBooks: " + ("; ".join(describe(e) for e in errors) if errors else f"HTTP {status}")
    if status == 429:
        retry = headers.get("Retry-After")
        try:
            retry_after = float(retry) if retry is not None else None
        except ValueError:
            retry_after = None
        return LedgerThrottled("FreshBooks rate limit reached", code="429", retry_after=retry_after)
    if status == 401:
        # The google.rpc shape ({"code": 16, "details": [...]}) FreshBooks now answers with.
        return TokenExpired("FreshBooks refused the access token", code="401")
    if ERRNO_CONFLICT in (status, errno):
        return StaleObject(text, code=code)
    if status >= 500:
        return LedgerUnavailable(f"FreshBooks answered HTTP {status}", code=code)
    if status == 404 or errno == ERRNO_UNKNOWN_RESOURCE:
        return NotFound(text, code=code)
    if status == 403 or errno in {ERRNO_ACCESS_DENIED, ERRNO_INACTIVE_ACCOUNT}:
        return CompanyUnavailable(text, code=code)
    if not errors:
        detail = body.get("message") if isinstance(body, dict) else str(body)[:200]
        return LedgerValidation(f"FreshBooks HTTP {status}: {detail}", code=code)
    return LedgerValidation(text, code=code)


class FreshBooksClient:
    """Calls under ``/accounting/account/{account_id}``, unwrapping ``{"response": {"result": ...}}``."""

    def __init__(self, http: LedgerHttp, account_id: str) -> None:
        self.http = http
        self.account_id = account_id  # the events API (callbacks) names the account in its path

    def events_write(self, method: str, path: str, single: str, body: dict[str, Any]) -> dict[str, Any]:
        """A write to the events API (``/events/account/{account_id}/{path}``), through the same
        plumbing as accounting calls (token, limits, retries, ``error_for``). The path is written
        relative to the accounting root: ``../../../`` climbs out of ``accounting/account/{id}``
        and httpx removes dot segments before sending (RFC 3986 5.2.4), so the request goes to the
        events root of the same host."""
        account = quote(self.account_id, safe="")
        climb = "../" * (ACCOUNTING_ROOT.count("/") + 2)
        response = self.http.request(
            method, f"{climb}events/account/{account}/{path}", payload={single: body}, idempotent=True
        )
        result: dict[str, Any] = self._result(response)[single]
        return result

    def get(self, path: str, single: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(self.http.request("GET", path))[single]
        return result

    def write(self, method: str, path: str, single: str, body: dict[str, Any]) -> dict[str, Any]:
        # A POST creates, and FreshBooks cannot tell a retry from a second create.
        response = self.http.request(method, path, payload={single: body}, idempotent=method != "POST")
        result: dict[str, Any] = self._result(response)[single]
        return result

    def list(
        self,
        path: str,
        collection: str,
        search: Mapping[str, str] | None = None,
        *,
        per_page: int = PER_PAGE,
    ) -> list[dict[str, Any]]:
        """Every page of a list, filtered by ``search[...]`` (deleted objects are left out by FreshBooks)."""
        params = {f"search[{name}]": value for name, value in (search or {}).items()}
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            result = self._result(
                self.http.request(
                    "GET", path, params={**params, "page": str(page), "per_page": str(per_page)}
                )
            )
            found.extend(result.get(collection) or ())
            if page >= int(result.get("pages") or 1):
                return found
            page += 1

    def pages(
        self, path: str, collection: str, search: Mapping[str, str] | None = None, *, per_page: int = PER_PAGE
    ) -> Iterator[dict[str, Any]]:
        """``list``, one page at a time: a listing of any length in bounded memory."""
        params = {f"search[{name}]": value for name, value in (search or {}).items()}
        page = 1
        while True:
            result = self._result(
                self.http.request(
                    "GET", path, params={**params, "page": str(page), "per_page": str(per_page)}
                )
            )
            yield from result.get(collection) or ()
            if page >= int(result.get("pages") or 1):
                return
            page += 1

    @staticmethod
    def _result(response: Any) -> dict[str, Any]:
        result = (response.get("response") or {}).get("result") if isinstance(response, dict) else None
        if not isinstance(result, dict):
            raise LedgerUnavailable("FreshBooks answered without a result")
        return result
