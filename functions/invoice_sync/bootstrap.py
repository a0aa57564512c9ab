"""Wires the use cases to their stores and ledgers, once per process (cold start).

Handlers ask here for a service; tests call ``reset()`` after changing the environment, or build
services directly with fakes.
"""

from __future__ import annotations

from functools import cache

import httpx

from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.ledgers.quickbooks.client import (
    CONCURRENT_REQUESTS,
    REQUESTS_PER_MINUTE,
    QuickBooksClient,
    refresh_tokens,
)
from invoice_sync.models.mapping import Mappings
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
            tokens = TokenManager(
                connection.connection_id,
                self._secrets,
                self._state,
                refresh_tokens(self._http, self._settings.quickbooks_token_url),
            )
            client = QuickBooksClient(
                base_url=self._settings.quickbooks_api_base,
                realm_id=connection.tenant_id,
                tokens=tokens,
                http=self._http,
                limiter=RateLimiter(REQUESTS_PER_MINUTE, CONCURRENT_REQUESTS),
                max_attempts=self._settings.ledger_max_attempts,
                backoff_seconds=self._settings.ledger_backoff_seconds,
                max_backoff_seconds=self._settings.ledger_max_backoff_seconds,
            )
            ledger = self._ledgers[connection.connection_id] = QuickBooksLedger(client)
        return ledger


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
