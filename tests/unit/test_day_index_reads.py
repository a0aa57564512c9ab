"""The day index holds keys only: by_day reads the records it names with BatchGetItem, in the
index's order, asking again for the keys DynamoDB left unprocessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invoice_sync.errors import TransientError
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store import sync_state
from invoice_sync.store.sync_state import SyncStateStore, _to_item

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeDynamo:
    """A day's index page of ``count`` keys; BatchGetItem answers ``served`` keys a call at most."""

    def __init__(self, count: int, served: int) -> None:
        self.items = {}
        for n in range(count):
            record = SyncRecord(
                connection_id="acme", kind="invoice", source_id=f"in_{n:03}", status=SyncStatus.SYNCED
            )
            record.updated_at = NOW - timedelta(minutes=n)
            item = _to_item(record, 1)
            self.items[(item["pk"]["S"], item["sk"]["S"])] = item
        self.served = served
        self.batch_sizes: list[int] = []

    def get_paginator(self, _name: str) -> Any:
        store = self

        class Pages:
            def paginate(self, **_kwargs: Any) -> list[dict[str, Any]]:
                keys = [
                    {"pk": i["pk"], "sk": i["sk"], "day_pk": i["day_pk"], "day_sk": i["day_sk"]}
                    for i in store.items.values()
                ]
                return [{"Items": keys}]

        return Pages()

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.batch_sizes.append(len(keys))
        answered, left = keys[: self.served], keys[self.served :]
        # DynamoDB returns what it read in any order.
        items = [self.items[(k["pk"]["S"], k["sk"]["S"])] for k in reversed(answered)]
        response: dict[str, Any] = {"Responses": {table: items}}
        if left:
            response["UnprocessedKeys"] = {table: {"Keys": left}}
        return response


def test_records_come_whole_in_index_order_with_unprocessed_keys_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given 250 keys on the day's page and DynamoDB answering 40 keys a call, by_day yields all 250
    records whole, in the index's order, asking for at most 100 keys a request."""
    monkeypatch.setattr(sync_state.time, "sleep", lambda _s: None)
    monkeypatch.setattr(sync_state, "utcnow", lambda: NOW)
    fake = FakeDynamo(250, served=40)
    store = SyncStateStore("sync", fake)
    found = list(store.by_day("acme", NOW - timedelta(hours=5), NOW, newest_first=False))
    assert [r.source_id for r in found] == [f"in_{n:03}" for n in range(250)]
    assert all(r.status is SyncStatus.SYNCED for r in found)
    # 100 keys a request; each time the 40 answered are dropped and the rest asked for again.
    assert fake.batch_sizes == [100, 60, 20, 100, 60, 20, 50, 10]


def test_keys_left_unread_after_every_attempt_are_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given DynamoDB answering nothing, by_day gives up after its attempts with a TransientError
    (the export or reconciliation run is retried), never a silent short list."""
    monkeypatch.setattr(sync_state.time, "sleep", lambda _s: None)
    monkeypatch.setattr(sync_state, "utcnow", lambda: NOW)
    store = SyncStateStore("sync", FakeDynamo(3, served=0))
    with pytest.raises(TransientError, match="unread"):
        list(store.by_day("acme", NOW - timedelta(hours=1), NOW))
