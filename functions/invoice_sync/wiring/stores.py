"""The stores the use cases share, one of each per process."""

from __future__ import annotations

from invoice_sync.settings import get_settings
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.wiring import once


@once
def mappings() -> MappingsStore:
    """The process's Mappings table store (connections and rules)."""
    return MappingsStore(get_settings().mappings_table)


@once
def state() -> SyncStateStore:
    """The process's SyncState table store."""
    return SyncStateStore(get_settings().sync_table)


@once
def secrets() -> SecretStore:
    """The process's secret store. New ledger tokens' dates go to the SyncState table (for the daily
    report); the intake, which never saves tokens, builds no SyncState store for it."""
    settings = get_settings()
    return SecretStore(
        settings.secrets_prefix,
        cache_seconds=settings.secret_cache_seconds,
        on_tokens_saved=lambda connection_id, tokens: state().record_token_dates(connection_id, tokens),
    )
