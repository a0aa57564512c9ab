"""Push archives the raw bodies that travel with intake's messages, one object per connection and
day of a batch, before anything else; a group that cannot be archived goes back whole."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from invoice_sync.models.messages import SyncMessage
from invoice_sync.store.archive import BundledEvent
from invoice_sync.sync.push import PushService

EVENING = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
MORNING = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)


class FakeArchive:
    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.bundles: list[tuple[str, str, date, list[BundledEvent]]] = []

    def get(self, key: str) -> bytes:
        raise AssertionError("push must not read back what it archives")

    def put_bundle(
        self, source: str, connection_id: str, day: date, events: Sequence[BundledEvent]
    ) -> list[str]:
        if connection_id == self.refuse:
            raise ConnectionError("S3 unavailable")
        self.bundles.append((source, connection_id, day, list(events)))
        name = f"raw/{source}/{connection_id}/{day:%Y/%m/%d}/b{len(self.bundles)}.jsonl.gz"
        return [f"{name}#{event.event_id}" for event in events]


def _service(archive: FakeArchive) -> PushService:
    unused = cast(Any, None)  # archive_carried touches nothing but the archive
    return PushService(state=unused, mappings=unused, archive=archive, alerts=unused, ledger_for=unused)


def _carried(event_id: str, connection_id: str, received_at: datetime) -> SyncMessage:
    return SyncMessage(
        connection_id=connection_id,
        source="stripe",
        event_id=event_id,
        event_type="invoice.paid",
        version=1,
        raw=f'{{"id": "{event_id}", "note": "caf\u00e9"}}',
        received_at=received_at,
    )


def test_one_object_per_connection_and_day_and_keys_in_place_of_bodies() -> None:
    """Given a batch of two connections' webhooks across midnight and one already archived, then
    three bundles (acme's two days, beta's one), each body byte for byte in UTF-8, every carried
    message back with its key and without its body, the archived one untouched."""
    archive = FakeArchive()
    messages = [
        _carried("evt_1", "acme", EVENING),
        _carried("evt_2", "beta", MORNING),
        _carried("evt_3", "acme", MORNING),
        SyncMessage(
            connection_id="acme",
            source="stripe",
            event_id="evt_4",
            event_type="invoice.paid",
            version=1,
            archive_key="raw/stripe/acme/2026/12/01/evt_4.json",
        ),
        _carried("evt_5", "acme", MORNING),
    ]
    out = _service(archive).archive_carried(messages)
    assert [(b[1], b[2].isoformat(), [e.event_id for e in b[3]]) for b in archive.bundles] == [
        ("acme", "2026-11-30", ["evt_1"]),
        ("beta", "2026-12-01", ["evt_2"]),
        ("acme", "2026-12-01", ["evt_3", "evt_5"]),
    ]
    assert archive.bundles[0][3][0].body == '{"id": "evt_1", "note": "café"}'.encode()
    assert archive.bundles[0][3][0].received_at == EVENING
    assert all(isinstance(m, SyncMessage) for m in out)
    keys = [m.archive_key for m in out if isinstance(m, SyncMessage)]
    assert keys == [
        "raw/stripe/acme/2026/11/30/b1.jsonl.gz#evt_1",
        "raw/stripe/beta/2026/12/01/b2.jsonl.gz#evt_2",
        "raw/stripe/acme/2026/12/01/b3.jsonl.gz#evt_3",
        "raw/stripe/acme/2026/12/01/evt_4.json",
        "raw/stripe/acme/2026/12/01/b3.jsonl.gz#evt_5",
    ]
    assert all(isinstance(m, SyncMessage) and m.raw is None and m.received_at is None for m in out)
    assert out[3] is messages[3]


def test_a_group_that_cannot_be_archived_comes_back_as_its_error() -> None:
    """Given S3 refusing beta's bundle, then beta's message is the error (it goes back to the
    queue, nothing else happens to it) and acme's is archived as usual."""
    archive = FakeArchive(refuse="beta")
    out = _service(archive).archive_carried(
        [_carried("evt_1", "acme", MORNING), _carried("evt_2", "beta", MORNING)]
    )
    assert isinstance(out[0], SyncMessage) and out[0].archive_key is not None
    assert isinstance(out[1], ConnectionError)
    assert [b[1] for b in archive.bundles] == ["acme"]
