"""The mappings store's warm cache stays bounded whatever connection ids the intake is asked about."""

from __future__ import annotations

from typing import Any

import pytest

from invoice_sync.store import mappings
from invoice_sync.store.mappings import MappingsStore


class UnknownEverywhere:
    """A DynamoDB client that has no item at all, and counts the reads it answered."""

    def __init__(self) -> None:
        self.reads = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        self.reads += 1
        return {}


def test_unknown_connection_ids_do_not_grow_the_cache_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a cap of 50 entries, when 500 different unknown ids are looked up, then the cache holds
    at most 50, the most recent ids are still answered from it, and the oldest are read again."""
    monkeypatch.setattr(mappings, "MAX_CACHED", 50)
    client = UnknownEverywhere()
    store = MappingsStore("table", client)
    for n in range(500):
        assert store.connection(f"random-{n:04d}") is None
    assert len(store._cache) <= 50
    assert client.reads == 500
    assert store.connection("random-0499") is None
    assert client.reads == 500  # still cached
    assert store.connection("random-0000") is None
    assert client.reads == 501  # evicted, read again
