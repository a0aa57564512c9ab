"""TokenManager: refresh under the connection's lease, save before use, never refresh twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from invoice_sync.errors import LedgerUnavailable, TokenRevoked, TransientError
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.models.tokens import TokenSet

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CONNECTION = "acme"


def tokens(access: str | None, expires_in: timedelta, refresh: str = "rt_1") -> TokenSet:
    return TokenSet(
        client_id="client",
        client_secret=SecretStr("client-secret"),
        refresh_token=SecretStr(refresh),
        access_token=SecretStr(access) if access else None,
        access_expires_at=NOW + expires_in,
    )


class Journal:
    """One ordered record of what every fake did, to check the order across collaborators."""

    def __init__(self) -> None:
        self.entries: list[str] = []


class FakeVault:
    def __init__(self, journal: Journal, stored: TokenSet) -> None:
        self.journal = journal
        self.stored: dict[str, TokenSet] = {CONNECTION: stored}
        self.saved: list[TokenSet] = []

    def ledger_tokens(self, connection_id: str) -> TokenSet:
        self.journal.entries.append("vault.read")
        return self.stored[connection_id]

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None:
        self.journal.entries.append("vault.save")
        self.stored[connection_id] = tokens
        self.saved.append(tokens)


class FakeLease:
    def __init__(self, journal: Journal, *, busy: bool = False) -> None:
        self.journal = journal
        self.busy = busy
        self.held: dict[str, str] = {}
        self.attempts = 0

    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        self.attempts += 1
        if self.busy or name in self.held:
            return False
        self.journal.entries.append(f"lease.acquire {name}")
        self.held[name] = owner
        return True

    def release_lock(self, name: str, owner: str) -> None:
        self.journal.entries.append(f"lease.release {name}")
        assert self.held.pop(name) == owner


class FakeRefresher:
    """Rotates the refresh token like QBO/Xero do; can be told to fail."""

    def __init__(self, journal: Journal, error: Exception | None = None) -> None:
        self.journal = journal
        self.error = error
        self.calls: list[TokenSet] = []

    def __call__(self, current: TokenSet) -> TokenSet:
        self.journal.entries.append("refresh")
        self.calls.append(current)
        if self.error:
            raise self.error
        n = len(self.calls)
        return tokens(f"at_new_{n}", timedelta(hours=1), refresh=f"rt_rotated_{n}")


def manager(
    stored: TokenSet, *, busy: bool = False, error: Exception | None = None
) -> tuple[TokenManager, FakeVault, FakeLease, FakeRefresher, Journal]:
    journal = Journal()
    vault = FakeVault(journal, stored)
    lease = FakeLease(journal, busy=busy)
    refresher = FakeRefresher(journal, error)
    tm = TokenManager(CONNECTION, vault, lease, refresher, clock=lambda: NOW, wait_seconds=0.05)
    return tm, vault, lease, refresher, journal


def test_valid_access_token_is_used_without_refresh() -> None:
    """Given a stored access token valid for an hour, access_token() returns it with no refresh and no
    lease; a second call does not even re-read the vault."""
    tm, vault, lease, refresher, journal = manager(tokens("at_valid", timedelta(hours=1)))
    assert tm.access_token() == "at_valid"
    assert tm.access_token() == "at_valid"
    assert refresher.calls == []
    assert lease.attempts == 0
    assert vault.saved == []
    assert journal.entries == ["vault.read"]


def test_expired_token_is_refreshed_once_and_saved_before_use() -> None:
    """Given an expired access token, access_token() takes the lease, refreshes once, saves the rotated
    set to the vault, releases the lease, and only then returns the new token."""
    tm, vault, _lease, refresher, journal = manager(tokens("at_old", timedelta(seconds=-1)))
    assert tm.access_token() == "at_new_1"
    assert len(refresher.calls) == 1
    assert refresher.calls[0].refresh_token.get_secret_value() == "rt_1"
    assert vault.stored[CONNECTION].refresh_token.get_secret_value() == "rt_rotated_1"
    assert journal.entries == [
        "vault.read",
        "lease.acquire oauth#acme",
        "vault.read",
        "refresh",
        "vault.save",
        "lease.release oauth#acme",
    ]
    assert tm.access_token() == "at_new_1"
    assert len(refresher.calls) == 1


def test_token_inside_the_safety_margin_is_refreshed() -> None:
    """Given an access token expiring in 60 s (inside the 120 s margin), it is refreshed before use."""
    tm, _vault, _lease, refresher, _journal = manager(tokens("at_soon", timedelta(seconds=60)))
    assert tm.access_token() == "at_new_1"
    assert len(refresher.calls) == 1


def test_lease_is_released_when_refresh_fails() -> None:
    """Given a refresher that fails with an outage, the error propagates, nothing is saved and the
    lease is released."""
    tm, vault, lease, _refresher, journal = manager(
        tokens("at_old", timedelta(seconds=-1)), error=LedgerUnavailable("token endpoint down")
    )
    with pytest.raises(LedgerUnavailable):
        tm.access_token()
    assert vault.saved == []
    assert lease.held == {}
    assert journal.entries[-1] == "lease.release oauth#acme"


def test_rejected_token_when_another_worker_already_refreshed() -> None:
    """Given the ledger refused our token but the vault already holds a newer valid token (another
    worker refreshed), rejected() returns the stored token without calling the refresher."""
    tm, vault, lease, refresher, _journal = manager(tokens("at_mine", timedelta(hours=1)))
    assert tm.access_token() == "at_mine"
    vault.stored[CONNECTION] = tokens("at_from_other_worker", timedelta(hours=1), refresh="rt_2")
    assert tm.rejected("at_mine") == "at_from_other_worker"
    assert refresher.calls == []
    assert vault.saved == []
    assert lease.held == {}


def test_rejected_token_still_in_the_vault_is_refreshed() -> None:
    """Given the ledger refused the token the vault still holds (looks valid by its expiry), rejected()
    refreshes once and saves the new set."""
    tm, vault, _lease, refresher, _journal = manager(tokens("at_mine", timedelta(hours=1)))
    assert tm.rejected("at_mine") == "at_new_1"
    assert len(refresher.calls) == 1
    assert vault.saved[-1].access_token is not None
    assert vault.saved[-1].access_token.get_secret_value() == "at_new_1"


def test_revoked_refresh_token_propagates_and_saves_nothing() -> None:
    """Given the refresher raising TokenRevoked (invalid_grant), access_token() lets it through (the
    outcome table parks it: reconnect the ledger), nothing is saved and the lease is released."""
    tm, vault, lease, _refresher, _journal = manager(
        tokens("at_old", timedelta(seconds=-1)), error=TokenRevoked("invalid_grant", code="invalid_grant")
    )
    with pytest.raises(TokenRevoked):
        tm.access_token()
    assert vault.saved == []
    assert lease.held == {}


def test_lease_always_busy_gives_transient_error() -> None:
    """Given another worker holding the lease for longer than the wait, access_token() raises a
    TransientError (retry later) without refreshing or releasing a lease it never held."""
    tm, vault, lease, refresher, journal = manager(tokens("at_old", timedelta(seconds=-1)), busy=True)
    with pytest.raises(TransientError, match="held by another worker"):
        tm.access_token()
    assert lease.attempts >= 2
    assert refresher.calls == []
    assert vault.saved == []
    assert not any(entry.startswith("lease.release") for entry in journal.entries)
