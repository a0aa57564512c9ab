"""QBO v3 over HTTP: auth header, limits, 429/5xx back-off, and Fault codes mapped to typed errors."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

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
    TokenRevoked,
)
from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.models.tokens import TokenSet, expires_in

MINOR_VERSION = 75  # Intuit retired every minor version below 75
REQUESTS_PER_MINUTE = 500
CONCURRENT_REQUESTS = 10

_DECIMAL = re.compile(r'"\\u0000dec:(-?\d+(?:\.\d+)?)\\u0000"')


def dumps(payload: Any) -> bytes:
    """JSON with ``Decimal`` written as exact numbers (``150.10``, not ``150.1`` or a float)."""

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"\x00dec:{value:f}\x00"  # fixed-point: never "0E-7"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    return _DECIMAL.sub(r"\1", json.dumps(mark(payload))).encode()


def loads(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal)


def _fault_error(status: int, body: Any) -> LedgerError:
    """One place that turns a QBO Fault into the port's typed error."""
    errors = (body.get("Fault") or {}).get("Error") or [] if isinstance(body, dict) else []
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
    def __init__(
        self,
        *,
        base_url: str,
        realm_id: str,
        tokens: TokenManager,
        http: httpx.Client,
        limiter: RateLimiter | None = None,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/v3/company/{realm_id}"
        self._tokens = tokens
        self._http = http
        self.limiter = limiter or RateLimiter(REQUESTS_PER_MINUTE, CONCURRENT_REQUESTS)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self.throttled = 0

    def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, payload: Any = None
    ) -> dict[str, Any]:
        """One API call, retried in place on 429/5xx/timeouts with capped back-off.

        A write retried here carries the same ``requestid``, so QBO answers a retry of a write it
        already committed with the original response instead of a second document.
        """
        query = {"minorversion": str(MINOR_VERSION), **(params or {})}
        body = dumps(payload) if payload is not None else None
        token = self._tokens.access_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.limiter.slot():
                    response = self._http.request(
                        method,
                        f"{self._base}/{path}",
                        params=query,
                        content=body,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Accept": "application/json",
                            "Content-Type": "application/json",
                        },
                    )
            except httpx.TransportError as exc:
                error: LedgerError = LedgerUnavailable(f"QBO unreachable: {exc.__class__.__name__}")
                if attempt >= self._max_attempts:
                    raise error from None
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code < 400:
                result: dict[str, Any] = loads(response.content)
                return result
            try:
                parsed = loads(response.content)
            except ValueError:
                parsed = None
            error = _fault_error(response.status_code, parsed)
            if isinstance(error, TokenExpired) and not refreshed:
                token = self._tokens.rejected(token)
                refreshed = True
                continue
            if isinstance(error, LedgerThrottled | LedgerUnavailable) and attempt < self._max_attempts:
                self.throttled += isinstance(error, LedgerThrottled)
                retry_after = response.headers.get("Retry-After")
                self._sleep(self._delay(attempt, float(retry_after) if retry_after else None))
                continue
            raise error

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._max_backoff)
        # Full jitter: workers throttled together do not come back together.
        return random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (attempt - 1)))  # noqa: S311

    def query(self, statement: str) -> dict[str, Any]:
        response = self.request("GET", "query", params={"query": statement})
        result: dict[str, Any] = response.get("QueryResponse", {})
        return result


def refresh_tokens(
    http: httpx.Client, token_url: str, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[TokenSet], TokenSet]:
    """The QBO refresh grant. ``invalid_grant`` means the connection must be authorised again."""

    def refresh(tokens: TokenSet) -> TokenSet:
        try:
            response = http.post(
                token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens.refresh_token.get_secret_value(),
                },
                auth=(tokens.client_id, tokens.client_secret.get_secret_value()),
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise LedgerUnavailable(f"QBO token endpoint unreachable: {exc.__class__.__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in {400, 401} and body.get("error") in {"invalid_grant", "invalid_client"}:
            raise TokenRevoked(f"QBO token refresh refused: {body['error']}", code=body["error"])
        if response.status_code == 429:
            raise LedgerThrottled("QBO token endpoint throttled")
        if response.status_code >= 400 or "access_token" not in body:
            raise LedgerUnavailable(f"QBO token endpoint answered HTTP {response.status_code}")
        now = clock()
        return TokenSet(
            client_id=tokens.client_id,
            client_secret=tokens.client_secret,
            access_token=body["access_token"],
            access_expires_at=expires_in(now, body.get("expires_in", 3600)),
            # Always keep the refresh token of the latest response: QBO rotates it.
            refresh_token=body.get("refresh_token") or tokens.refresh_token,
            refresh_expires_at=expires_in(now, body.get("x_refresh_token_expires_in")),
            refreshed_at=now,
        )

    return refresh
