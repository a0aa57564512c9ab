"""Wires the use cases to their stores and ledgers, once per process (cold start).

Handlers ask here for a service; tests call ``reset()`` after changing the environment, or build
services directly with fakes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx

from invoice_sync.errors import ConnectionBroken
from invoice_sync.ledgers.http import LedgerHttp, oauth_refresher
from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.ledgers.quickbooks import client as qbo
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.ledgers.quickbooks.client import QuickBooksClient
from invoice_sync.ledgers.xero import client as xero
from invoice_sync.ledgers.xero.adapter import XeroLedger
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.settings import Settings, get_settings
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.queue import SyncQueue
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.intake import IntakeService
from invoice_sync.sync.push import PushService


@cache
def _mappings() -> MappingsStore:
    return MappingsStore(get_settings().mappings_table)


@cache
def _state() -> SyncStateStore:
    return SyncStateStore(get_settings().sync_table)


@cache
def _secrets() -> SecretStore:
    settings = get_settings()
    return SecretStore(settings.secrets_prefix, cache_seconds=settings.secret_cache_seconds)


@cache
def intake() -> IntakeService:
    settings = get_settings()
    return IntakeService(
        connections=_mappings(),
        secrets=_secrets(),
        archive=RawArchive(settings.archive_bucket),
        queue=SyncQueue(settings.sync_queue_url),
        events=_state(),
        max_bytes=settings.max_webhook_bytes,
        tolerance_seconds=settings.stripe_tolerance_seconds,
        dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
    )


class LedgerRegistry:
    """One adapter per connection, kept while warm so its limiter and tokens carry over."""

    def __init__(self, settings: Settings, state: SyncStateStore, secrets: SecretStore) -> None:
        self._settings = settings
        self._state = state
        self._secrets = secrets
        self._http = httpx.Client(timeout=settings.ledger_timeout_seconds)
        self._ledgers: dict[str, LedgerPort] = {}

    def __call__(self, mappings: Mappings) -> LedgerPort:
        connection = mappings.connection
        ledger = self._ledgers.get(connection.connection_id)
        if ledger is None:
            ledger = self._ledgers[connection.connection_id] = self._build(connection)
        return ledger

    def _http_for(self, connection: Connection, **options: Any) -> LedgerHttp:
        settings = self._settings
        token_url, name = {
            "quickbooks": (settings.quickbooks_token_url, "QBO"),
            "xero": (settings.xero_token_url, "Xero"),
        }[connection.ledger]
        tokens = TokenManager(
            connection.connection_id,
            self._secrets,
            self._state,
            oauth_refresher(self._http, token_url, name=name),
        )
        return LedgerHttp(
            tokens=tokens,
            http=self._http,
            name=name,
            max_attempts=settings.ledger_max_attempts,
            backoff_seconds=settings.ledger_backoff_seconds,
            max_backoff_seconds=settings.ledger_max_backoff_seconds,
            **options,
        )

    def _build(self, connection: Connection) -> LedgerPort:
        settings = self._settings
        if connection.ledger == "quickbooks":
            return QuickBooksLedger(
                QuickBooksClient(
                    self._http_for(
                        connection,
                        base_url=f"{settings.quickbooks_api_base.rstrip('/')}/v3/company/{connection.tenant_id}",
                        limiter=RateLimiter(qbo.REQUESTS_PER_MINUTE, qbo.CONCURRENT_REQUESTS),
                        error_for=qbo.fault_error,
                    )
                )
            )
        if connection.ledger == "xero":
            return XeroLedger(
                self._http_for(
                    connection,
                    base_url=settings.xero_api_base,
                    limiter=RateLimiter(xero.CALLS_PER_MINUTE, xero.CONCURRENT_CALLS),
                    error_for=xero.error_for,
                    headers={"xero-tenant-id": connection.tenant_id},
                    quota_headers=xero.QUOTA_HEADERS,
                )
            )
        raise ConnectionBroken(
            "ledger not supported yet", f"{connection.ledger} has no adapter in this version"
        )


@cache
def push() -> PushService:
    settings = get_settings()
    return PushService(
        state=_state(),
        mappings=_mappings(),
        archive=RawArchive(settings.archive_bucket),
        alerts=AlertPublisher(settings.alerts_topic_arn),
        ledger_for=LedgerRegistry(settings, _state(), _secrets()),
    )


def reset() -> None:
    """Forget every wired object (tests change the environment between cases)."""
    for function in (_mappings, _state, _secrets, intake, push, get_settings, aws.client):
        function.cache_clear()
