"""The stores the use cases share, one of each per process.

The SyncState store is ``wiring.state``'s: the intake never touches the SyncState table, so it
does not load that store (nor the sync record model) at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoice_sync.settings import get_settings
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.wiring import once

if TYPE_CHECKING:
    from invoice_sync.models.tokens import TokenSet


@once
def mappings() -> MappingsStore:
    """The process's Mappings table store (connections and rules)."""
    return MappingsStore(get_settings().mappings_table)


def _record_token_dates(connection_id: str, tokens: TokenSet) -> None:
    # Only push and reconciliation save tokens, and both have loaded the SyncState store by then.
    from invoice_sync.wiring.state import state  # noqa: PLC0415

    state().record_token_dates(connection_id, tokens)


@once
def secrets() -> SecretStore:
    """The process's secret store; new ledger tokens' dates go to the SyncState table (for the
    daily report)."""
    settings = get_settings()
    return SecretStore(
        settings.secrets_prefix,
        cache_seconds=settings.secret_cache_seconds,
        on_tokens_saved=_record_token_dates,
    )
