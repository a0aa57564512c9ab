"""The ledger adapters of push and reconciliation, one registry per process: each connection's
adapter is kept while warm, so its rate limiter and OAuth tokens carry over between invocations."""

from __future__ import annotations

from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.settings import get_settings
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.state import state


@once
def ledgers() -> LedgerRegistry:
    return LedgerRegistry(get_settings(), state(), stores.secrets())
