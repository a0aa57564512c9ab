"""HTTP plumbing every ledger adapter shares: exact-decimal JSON, bearer tokens, client-side
limits, in-place retries with back-off, refresh on 401, and the OAuth refresh grant.

Each adapter supplies only what differs: its base URL, its headers, and ``error_for``, the
function that turns its error bodies into the port's typed errors.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from invoice_sync.errors import (
    LedgerError,
    LedgerThrottled,
    LedgerUnavailable,
    TokenExpired,
    TokenRevoked,
)
from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.models.tokens import TokenSet, expires_in

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


ErrorFor = Callable[[int, Any, Mapping[str, str]], LedgerError]


@dataclass
class Quota:
    """What the ledger says is left of its limits, from its response headers (where it says)."""

    requests: int = 0
    throttled: int = 0
    remaining: dict[str, int] = field(default_factory=dict)


class LedgerHttp:
    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenManager,
        http: httpx.Client,
        limiter: RateLimiter,
        error_for: ErrorFor,
        name: str,
        headers: Mapping[str, str] | None = None,
        quota_headers: tuple[str, ...] = (),
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._http = http
        self.limiter = limiter
        self._error_for = error_for
        self.name = name
        self._headers = dict(headers or {})
        self._quota_headers = quota_headers
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self.quota = Quota()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        window: str | None = None,
    ) -> Any:
        """One API call, retried in place on 429/5xx/timeouts with capped back-off.

        ``window`` names a client-side limit the call counts in besides the general ones (QBO's
        ``batch``). A 429's Retry-After holds every call of this worker to the ledger, not only
        this one: the limit it reports is the company's, so the others would be refused too.

        A write retried here carries the same idempotency key, so a ledger that honours keys
        answers a retry of a write it already committed with the original response. A write the
        ledger cannot recognise again (``idempotent=False``: a FreshBooks create) is retried in
        place only after a 429, which says it was not executed; after a timeout or a 5xx it may
        have been, so the error goes up and push looks the document up before trying again.
        """
        body = dumps(payload) if payload is not None else None
        token = self._tokens.access_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.limiter.slot(window):
                    self.quota.requests += 1
                    response = self._http.request(
                        method,
                        f"{self._base}/{path}",
                        params=params,
                        content=body,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Accept": "application/json",
                            "Content-Type": "application/json",
                            **self._headers,
                            **(headers or {}),
                        },
                    )
            except httpx.TransportError as exc:
                if attempt >= self._max_attempts or not idempotent:
                    raise LedgerUnavailable(f"{self.name} unreachable: {exc.__class__.__name__}") from None
                self._sleep(self._delay(attempt, None))
                continue
            self._read_quota(response.headers)
            if response.status_code < 400:
                return loads(response.content) if response.content else {}
            try:
                parsed = loads(response.content)
            except ValueError:
                parsed = response.text
            error = self._error_for(response.status_code, parsed, response.headers)
            if isinstance(error, TokenExpired) and not refreshed:
                token = self._tokens.rejected(token)
                refreshed = True
                continue
            retryable = isinstance(error, LedgerThrottled) or (
                idempotent and isinstance(error, LedgerUnavailable)
            )
            retry_after = retry_after_seconds(response.headers)
            if isinstance(error, LedgerThrottled):
                self.quota.throttled += 1
                if retry_after is not None:
                    self.limiter.pause(retry_after)
            wait = self._delay(attempt, retry_after)
            if retryable and attempt < self._max_attempts and wait <= self._max_backoff:
                self._sleep(wait)
                continue
            if isinstance(error, LedgerThrottled) and error.retry_after is None:
                error.retry_after = retry_after
            raise error

    def set_patience(self, seconds: float) -> None:
        """Wait in place up to ``seconds`` for the ledger: for room in a client-side window and
        for a 429's Retry-After, before giving the work back as throttled. The push Lambda keeps
        the short defaults (its invocation is the budget and the queue waits for free); a caller
        with no deadline (the CLI's backfill) waits out the ledger's minute instead, so a batch is
        sent late rather than failed and sent again one invoice at a time."""
        self.limiter.max_wait = max(self.limiter.max_wait, seconds)
        self._max_backoff = max(self._max_backoff, seconds)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        # Full jitter: workers throttled together do not come back together.
        return random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (attempt - 1)))  # noqa: S311

    def _read_quota(self, headers: Mapping[str, str]) -> None:
        for name in self._quota_headers:
            value = headers.get(name)
            if value is not None and value.strip().lstrip("-").isdigit():
                self.quota.remaining[name] = int(value)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; None when absent or given as an HTTP date (then our back-off decides)."""
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def oauth_refresher(
    http: httpx.Client,
    token_url: str,
    *,
    name: str,
    json_body: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[TokenSet], TokenSet]:
    """The OAuth2 refresh grant. ``invalid_grant`` means the connection must be authorised again.

    QBO and Xero take a form body with HTTP Basic client credentials; FreshBooks takes a JSON body
    carrying the client credentials (``json_body=True``). All three rotate the refresh token, so
    the one in the latest response is always kept.
    """

    def refresh(tokens: TokenSet) -> TokenSet:
        return token_grant(
            http,
            token_url,
            {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token.get_secret_value()},
            client_id=tokens.client_id,
            client_secret=tokens.client_secret,
            name=name,
            json_body=json_body,
            previous_refresh=tokens.refresh_token,
            clock=clock,
        )

    return refresh


def token_grant(
    http: httpx.Client,
    token_url: str,
    grant: Mapping[str, str],
    *,
    client_id: str,
    client_secret: SecretStr,
    name: str,
    json_body: bool = False,
    previous_refresh: SecretStr | None = None,
    what: str = "token refresh",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TokenSet:
    """One grant at the token endpoint (``refresh_token``, or the CLI's ``authorization_code``),
    its answer parsed into the token set to store. Error messages name the OAuth error code only,
    never a token, code or secret."""
    secret = client_secret.get_secret_value()
    try:
        if json_body:
            response = http.post(
                token_url,
                json={**grant, "client_id": client_id, "client_secret": secret},
                headers={"Accept": "application/json"},
            )
        else:
            response = http.post(
                token_url, data=dict(grant), auth=(client_id, secret), headers={"Accept": "application/json"}
            )
    except httpx.TransportError as exc:
        raise LedgerUnavailable(f"{name} token endpoint unreachable: {exc.__class__.__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code in {400, 401} and error in {"invalid_grant", "invalid_client"}:
        raise TokenRevoked(f"{name} {what} refused: {error}", code=error)
    if response.status_code == 429:
        raise LedgerThrottled(f"{name} token endpoint throttled")
    if response.status_code >= 400 or not isinstance(body, dict) or "access_token" not in body:
        detail = f": {error}" if isinstance(error, str) and error.isidentifier() else ""
        raise LedgerUnavailable(f"{name} token endpoint answered HTTP {response.status_code}{detail}")
    refresh_token = body.get("refresh_token") or previous_refresh
    if refresh_token is None:
        raise LedgerUnavailable(f"{name} token endpoint gave no refresh token (is offline access granted?)")
    now = clock()
    return TokenSet(
        client_id=client_id,
        client_secret=client_secret,
        access_token=body["access_token"],
        access_expires_at=expires_in(now, body.get("expires_in", 1800)),
        refresh_token=refresh_token,
        refresh_expires_at=expires_in(now, body.get("x_refresh_token_expires_in")),
        refreshed_at=now,
    )
