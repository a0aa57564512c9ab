"""Builds each connection's ledger adapter the way it runs in production, once per warm process.

Every adapter gets the shared HTTP plumbing (``ledgers.http``) configured with its ledger's base
URL, limits, error mapping and OAuth token endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from invoice_sync.errors import ConnectionBroken
from invoice_sync.ledgers.freshbooks import client as freshbooks
from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.freshbooks.client import FreshBooksClient
from invoice_sync.ledgers.http import LedgerHttp, Quota, oauth_refresher
from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import Lease, TokenManager, TokenVault
from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.ledgers.quickbooks import client as qbo
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.ledgers.quickbooks.client import QuickBooksClient
from invoice_sync.ledgers.xero import client as xero
from invoice_sync.ledgers.xero.adapter import XeroLedger
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.settings import Settings


class LedgerRegistry:
    """One adapter per connection, kept while warm so its limiter and tokens carry over."""

    def __init__(
        self,
        settings: Settings,
        lease: Lease,
        vault: TokenVault,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._lease = lease
        self._vault = vault
        self._http = httpx.Client(timeout=settings.ledger_timeout_seconds)
        self._ledgers: dict[str, LedgerPort] = {}
        self._quotas: dict[str, Quota] = {}
        self._counted: dict[str, tuple[int, int]] = {}  # (requests, throttled) already handed out
        # What the limits and back-off wait by (bench/ledger_efficiency.py scales both with the
        # sandbox's clock); and how long a caller with no deadline may wait for them.
        self._clock = clock
        self._sleep = sleep
        self._patience: float | None = None
        self._https: list[LedgerHttp] = []
        self._lock = threading.Lock()  # threads of one backfill share the registry

    def quotas(self) -> dict[str, Quota]:
        """Per connection: requests made, throttled answers and what the ledger says is left."""
        return dict(self._quotas)

    def usage_since_last(self) -> dict[str, tuple[int, int]]:
        """Per connection, the (requests, throttled) made since the last call: what to add to the
        day's tally of ledger use. Connections with nothing new are left out."""
        fresh: dict[str, tuple[int, int]] = {}
        with self._lock:
            for connection_id, quota in self._quotas.items():
                requests, throttled = self._counted.get(connection_id, (0, 0))
                delta = (quota.requests - requests, quota.throttled - throttled)
                if delta != (0, 0):
                    fresh[connection_id] = delta
                    self._counted[connection_id] = (quota.requests, quota.throttled)
        return fresh

    def set_patience(self, seconds: float) -> None:
        """Every adapter, built or to come, waits up to ``seconds`` for the ledger's limits
        instead of handing the work back as throttled (``LedgerHttp.set_patience``): for a caller
        with no invocation deadline, the CLI's backfill."""
        with self._lock:
            self._patience = seconds
            for http in self._https:
                http.set_patience(seconds)

    def __call__(self, mappings: Mappings) -> LedgerPort:
        connection = mappings.connection
        with self._lock:
            # Built once even when threads ask together: two adapters would mean two limiters.
            ledger = self._ledgers.get(connection.connection_id)
            if ledger is None:
                ledger = self._ledgers[connection.connection_id] = self._build(connection)
        return ledger

    def _limiter(self, per_minute: int, concurrent: int, **windows: Any) -> RateLimiter:
        return RateLimiter(per_minute, concurrent, clock=self._clock, sleep=self._sleep, **windows)

    def _http_for(self, connection: Connection, **options: Any) -> LedgerHttp:
        settings = self._settings
        token_url, name = {
            "quickbooks": (settings.quickbooks_token_url, "QBO"),
            "xero": (settings.xero_token_url, "Xero"),
            "freshbooks": (settings.freshbooks_token_url, "FreshBooks"),
        }[connection.ledger]
        tokens = TokenManager(
            connection.connection_id,
            self._vault,
            self._lease,
            # FreshBooks takes the refresh grant as a JSON body with the client credentials in it.
            oauth_refresher(self._http, token_url, name=name, json_body=connection.ledger == "freshbooks"),
        )
        http = LedgerHttp(
            tokens=tokens,
            http=self._http,
            name=name,
            max_attempts=settings.ledger_max_attempts,
            backoff_seconds=settings.ledger_backoff_seconds,
            max_backoff_seconds=settings.ledger_max_backoff_seconds,
            sleep=self._sleep,
            **options,
        )
        if self._patience is not None:
            http.set_patience(self._patience)
        self._https.append(http)
        self._quotas[connection.connection_id] = http.quota
        return http

    def _build(self, connection: Connection) -> LedgerPort:
        settings = self._settings
        if connection.ledger == "quickbooks":
            return QuickBooksLedger(
                QuickBooksClient(
                    self._http_for(
                        connection,
                        base_url=f"{settings.quickbooks_api_base.rstrip('/')}/v3/company/{connection.tenant_id}",
                        limiter=self._limiter(
                            qbo.REQUESTS_PER_MINUTE,
                            qbo.CONCURRENT_REQUESTS,
                            per_second=qbo.REQUESTS_PER_SECOND,
                            named={qbo.BATCH_WINDOW: qbo.BATCH_REQUESTS_PER_MINUTE},
                        ),
                        error_for=qbo.fault_error,
                    )
                )
            )
        if connection.ledger == "xero":
            return XeroLedger(
                self._http_for(
                    connection,
                    base_url=settings.xero_api_base,
                    limiter=self._limiter(
                        xero.CALLS_PER_MINUTE, xero.CONCURRENT_CALLS, per_day=xero.CALLS_PER_DAY
                    ),
                    error_for=xero.error_for,
                    headers={"xero-tenant-id": connection.tenant_id},
                    quota_headers=xero.QUOTA_HEADERS,
                )
            )
        if connection.ledger == "freshbooks":
            return FreshBooksLedger(
                FreshBooksClient(
                    self._http_for(
                        connection,
                        base_url=f"{settings.freshbooks_api_base.rstrip('/')}/accounting/account/{connection.tenant_id}",
                        limiter=self._limiter(freshbooks.REQUESTS_PER_MINUTE, freshbooks.CONCURRENT_REQUESTS),
                        error_for=freshbooks.error_for,
                    ),
                    account_id=connection.tenant_id,
                )
            )
        raise ConnectionBroken(
            "ledger not supported yet", f"{connection.ledger} has no adapter in this version"
        )
