"""Stripe's API, read with the connection's secret key: by the operator CLI (``try``, ``backfill``,
``reconcile``) and by the reconcile Lambda. One client for both.

Only reads (``GET /v1/invoices/{id}`` and the paged ``GET /v1/invoices``, ``/v1/credit_notes``
and ``/v1/refunds``), over httpx, with
Stripe's Bearer authentication. Errors become ``StripeApiError`` with one line a person can act
on (the key is never in it); 429 and 5xx are retried in place with ``Retry-After`` when Stripe
sends one, else exponential back-off, within a bounded number of attempts and wait.

Where the key comes from, first match: ``--stripe-key``, ``STRIPE_API_KEY``, the connection's
secret ``{prefix}/{connection}/stripe-api`` in Secrets Manager.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from invoice_sync.errors import ConnectionBroken
from invoice_sync.store.secrets import SecretStore

PAGE_LIMIT = 100  # the most Stripe lists per page
API_VERSION = "2026-06-24.dahlia"  # the invoice shape the fixtures and the parser know best
KEY_ENV = "STRIPE_API_KEY"


class StripeApiError(Exception):
    """A Stripe API call that did not work, in one line; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class StripeAuthError(StripeApiError):
    """The key was refused (401) or lacks the permission (403)."""


class StripeNotFound(StripeApiError):
    """No such object (404 ``resource_missing``)."""


class StripeRateLimited(StripeApiError):
    """Still 429 after the retries allowed."""


class StripeUnavailable(StripeApiError):
    """Stripe could not be reached or kept failing (5xx, timeouts)."""


@dataclass
class StripeUse:
    """What this client spent: requests sent (retries included) and 429 answers."""

    requests: int = 0
    throttled: int = 0
    retried: int = 0
    waited_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def api_key(
    explicit: str | None, secrets: SecretStore | None, connection_id: str | None
) -> tuple[SecretStr, str]:
    """The Stripe secret key and where it came from (for messages; never the key itself)."""
    if explicit:
        return SecretStr(explicit), "--stripe-key"
    if os.environ.get(KEY_ENV):
        return SecretStr(os.environ[KEY_ENV]), KEY_ENV
    if secrets is None or connection_id is None:
        raise StripeAuthError(f"no Stripe API key: pass --stripe-key or set {KEY_ENV}")
    try:
        key = secrets.stripe_api_key(connection_id)
    except ConnectionBroken as exc:
        raise StripeAuthError(
            f"{exc.detail}: store one with `invoice-sync secret stripe-api --connection "
            f"{connection_id}` (read from stdin), or set {KEY_ENV}"
        ) from None
    return key, f"the secret {secrets.stripe_secret_name(connection_id)}"


class StripeApi:
    def __init__(
        self,
        base_url: str,
        key: SecretStr,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        max_wait_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        key_source: str = "the Stripe API key",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._key_source = key_source
        self._http = http or httpx.Client(timeout=timeout)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self.use = StripeUse()

    # --- the calls ---------------------------------------------------------------------------------

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        found = self._get(f"/v1/invoices/{invoice_id}", {})
        if found.get("object") != "invoice":
            raise StripeApiError(f"Stripe answered a {found.get('object')!r} for invoice {invoice_id}")
        return found

    def get_object(self, collection: str, object_id: str) -> dict[str, Any]:
        """One object of a list (``credit_notes``, ``refunds``) by id; ``StripeNotFound`` if none."""
        return self._get(f"/v1/{collection}/{object_id}", {})

    def list_invoices(
        self,
        *,
        created_gte: int | None = None,
        created_lte: int | None = None,
        status: str | None = None,
        page_size: int = PAGE_LIMIT,
    ) -> Iterator[list[dict[str, Any]]]:
        """The matching invoices, newest first, one page (a list of invoice objects) at a time,
        following ``starting_after`` while Stripe says ``has_more``."""
        extra = {"status": status} if status is not None else {}
        return self.list_objects(
            "invoices", created_gte=created_gte, created_lte=created_lte, page_size=page_size, **extra
        )

    def list_objects(
        self,
        collection: str,
        *,
        created_gte: int | None = None,
        created_lte: int | None = None,
        page_size: int = PAGE_LIMIT,
        **filters: str,
    ) -> Iterator[list[dict[str, Any]]]:
        """One of Stripe's lists (``invoices``, ``credit_notes``, ``refunds``), newest first, a page
        at a time, ``created[gte|lte]`` (Unix seconds) and any other filters applied, following
        ``starting_after`` while Stripe says ``has_more``."""
        params: dict[str, str] = {"limit": str(min(max(page_size, 1), PAGE_LIMIT)), **filters}
        if created_gte is not None:
            params["created[gte]"] = str(created_gte)
        if created_lte is not None:
            params["created[lte]"] = str(created_lte)
        path = f"/v1/{collection}"
        while True:
            page = self._get(path, params)
            if page.get("object") != "list" or not isinstance(page.get("data"), list):
                raise StripeApiError(f"Stripe answered something other than a list for {path}")
            data: list[dict[str, Any]] = page["data"]
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            params = {**params, "starting_after": str(data[-1]["id"])}

    # --- the HTTP --------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Stripe-Version": API_VERSION,
            "User-Agent": "invoice-sync-cli",
        }
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            self.use.requests += 1
            try:
                response = self._http.get(f"{self.base_url}{path}", params=params, headers=headers)
            except httpx.TransportError as exc:
                # The exception text may carry the request; only its class and the host are kept.
                failure: StripeApiError = StripeUnavailable(
                    f"Stripe API at {self.base_url} unreachable ({exc.__class__.__name__})"
                )
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                self.use.statuses[status] = self.use.statuses.get(status, 0) + 1
                if status < 400:
                    body: dict[str, Any] = response.json()
                    return body
                failure = self._error(response, path)
                if not isinstance(failure, StripeRateLimited | StripeUnavailable):
                    raise failure
                if status == 429:
                    self.use.throttled += 1
                delay = _retry_after(response) or self._backoff(attempt)
            if attempt == self.max_attempts or waited + delay > self.max_wait_seconds:
                raise failure
            self.use.retried += 1
            waited += delay
            self.use.waited_seconds += delay
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))

    def _error(self, response: httpx.Response, path: str) -> StripeApiError:
        status = response.status_code
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        code = error.get("code") if isinstance(error, dict) else None
        # Stripe's own message is shown, except for authentication, where it echoes (part of) the key.
        message = _scrub(str(error.get("message") or ""), self._key) if isinstance(error, dict) else ""
        if status in (401, 403):
            what = "refused" if status == 401 else "lacks permission for"
            return StripeAuthError(
                f"Stripe {what} {self._key_source} ({status}): check it, or pass --stripe-key",
                status=status,
                code=code,
            )
        if status == 404:
            return StripeNotFound(message or f"Stripe has no {path}", status=status, code=code)
        if status == 429:
            return StripeRateLimited(
                f"Stripe kept answering 429 (rate limited) for {path} after {self.max_attempts} attempts",
                status=status,
                code=code,
            )
        if status >= 500:
            return StripeUnavailable(
                f"Stripe failed ({status}) for {path}: {message}", status=status, code=code
            )
        return StripeApiError(f"Stripe refused {path} ({status}): {message}", status=status, code=code)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(float(raw), 0.0) if raw is not None else None
    except ValueError:
        return None


def _scrub(text: str, key: SecretStr) -> str:
    secret = key.get_secret_value()
    return text.replace(secret, "****") if secret else text
