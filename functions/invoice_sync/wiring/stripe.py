"""Stripe clients per connection, for the functions that call Stripe (push's payouts, payments
back): one client per connection, kept while warm and rebuilt when the connection's secret holds
another key (a rotation). The key is read through the secret store's cache on every use.

The Stripe client's module loads with the first client: push calls Stripe only for a payout, so
its cold start does not pay for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from invoice_sync.sources.stripe_api import StripeApi


class StripeClients:
    def __init__(
        self,
        base_url: str,
        key_of: Callable[[str], SecretStr],
        secret_name_of: Callable[[str], str],
        *,
        timeout: float,
        max_attempts: int,
        max_wait_seconds: float,
    ) -> None:
        self.base_url = base_url
        self.key_of = key_of  # connection id -> its key; ConnectionBroken when none is stored
        self.secret_name_of = secret_name_of
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait_seconds = max_wait_seconds
        self._clients: dict[str, tuple[SecretStr, StripeApi]] = {}
        self._lock = threading.Lock()

    def __call__(self, connection_id: str) -> StripeApi:
        from invoice_sync.sources.stripe_api import StripeApi  # noqa: PLC0415 - on first use

        key = self.key_of(connection_id)
        with self._lock:
            held = self._clients.get(connection_id)
            if held is not None and held[0].get_secret_value() == key.get_secret_value():
                return held[1]
            client = StripeApi(
                self.base_url,
                key,
                timeout=self.timeout,
                max_attempts=self.max_attempts,
                max_wait_seconds=self.max_wait_seconds,
                key_source=f"the secret {self.secret_name_of(connection_id)}",
            )
            self._clients[connection_id] = (key, client)
            return client
