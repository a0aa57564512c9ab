"""OAuth2 access tokens for one ledger connection: refreshed under one lock, saved before use.

Refresh tokens rotate (QBO often, Xero and FreshBooks on every use), so two workers refreshing at
once would leave one of them holding a dead token and, worse, might persist it. The rule here:
take the connection's lease, re-read the stored token set (someone may have refreshed already),
refresh only if still needed, write the new set to the store, and only then use it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from invoice_sync.errors import TransientError
from invoice_sync.models.tokens import TokenSet


class TokenVault(Protocol):
    def ledger_tokens(self, connection_id: str) -> TokenSet: ...

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None: ...


class Lease(Protocol):
    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...


Refresher = Callable[[TokenSet], TokenSet]


class TokenManager:
    def __init__(
        self,
        connection_id: str,
        vault: TokenVault,
        lease: Lease,
        refresher: Refresher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_seconds: int = 30,
        wait_seconds: float = 10.0,
    ) -> None:
        self.connection_id = connection_id
        self._vault = vault
        self._lease = lease
        self._refresher = refresher
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._wait_seconds = wait_seconds
        self._tokens: TokenSet | None = None
        self._local = threading.Lock()
        self._owner = f"{uuid.uuid4()}"

    def access_token(self) -> str:
        """A valid access token, from memory, the store, or a refresh, in that order."""
        with self._local:
            if self._tokens is None:
                self._tokens = self._vault.ledger_tokens(self.connection_id)
            if not self._tokens.access_valid(self._clock()):
                self._tokens = self._refresh(rejected=None)
            assert self._tokens.access_token is not None
            return self._tokens.access_token.get_secret_value()

    def rejected(self, token: str) -> str:
        """The ledger refused ``token`` (401): refresh unless another worker already did."""
        with self._local:
            self._tokens = self._refresh(rejected=token)
            assert self._tokens.access_token is not None
            return self._tokens.access_token.get_secret_value()

    def _refresh(self, rejected: str | None) -> TokenSet:
        name = f"oauth#{self.connection_id}"
        deadline = time.monotonic() + self._wait_seconds
        while not self._lease.acquire_lock(name, self._owner, self._lease_seconds):
            if time.monotonic() > deadline:
                raise TransientError(f"token refresh of {self.connection_id} is held by another worker")
            time.sleep(0.2)
        try:
            stored = self._vault.ledger_tokens(self.connection_id)
            current = stored.access_token.get_secret_value() if stored.access_token else None
            if stored.access_valid(self._clock()) and current != rejected:
                return stored  # another worker refreshed while we waited
            fresh = self._refresher(stored)
            # Saved before use: if this process dies now, the rotated token is not lost.
            self._vault.save_ledger_tokens(self.connection_id, fresh)
            return fresh
        finally:
            self._lease.release_lock(name, self._owner)
