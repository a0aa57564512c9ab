"""The SyncState table's store, one per process: push, the export and reconciliation share it."""

from __future__ import annotations

from invoice_sync.settings import get_settings
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.wiring import once


@once
def state() -> SyncStateStore:
    """The process's SyncState table store."""
    return SyncStateStore(get_settings().sync_table)
