"""The stores' operator queries on moto (mock_aws), tables and queues from template.yaml: records
by day range over the day index, archive listing by day, batch sends, the dead-letter redrive,
and finding the archived event behind an older record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync.errors import InvalidSnapshot
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store import sync_state
from invoice_sync.store.archive import BundledEvent, RawArchive, archive_key
from invoice_sync.store.queue import DeadLetterQueue, SyncQueue
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.replay import archive_key_of, plan_redrive, rebuild
from invoice_sync_ops.template import StackResources, create_stack_resources
from tests.integration.conftest import REGION, fixture_bytes

DAY = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StackResources, boto3.session.Session]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        yield create_stack_resources(session), session


def _saved_at(
    store: SyncStateStore, monkeypatch: pytest.MonkeyPatch, when: datetime, source_id: str, **fields: Any
) -> None:
    monkeypatch.setattr(sync_state, "utcnow", lambda: when)
    fields.setdefault("status", SyncStatus.SYNCED)
    store.save(SyncRecord(connection_id="acme", kind="invoice", source_id=source_id, **fields), 0)


def _message(n: int) -> SyncMessage:
    return SyncMessage(
        connection_id="acme", source="stripe", event_id=f"evt_{n}", event_type="invoice.paid", version=n,
        archive_key=f"raw/stripe/acme/2026/11/20/evt_{n}.json",
    )  # fmt: skip


def test_records_by_day_range_cross_days_newest_first_within_exact_bounds(
    aws: tuple[StackResources, boto3.session.Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given records written over three days (and one of another connection, and one intent
    still pending), by_day returns the settled ones between the two instants only, newest first
    (or oldest first when asked), each once; the intent appears once it has settled."""
    resources, session = aws
    store = SyncStateStore(resources.sync_table, session.client("dynamodb"))
    times = {f"in_{n}": DAY + timedelta(hours=10 * n) for n in range(6)}  # 12:00 day 1 .. 14:00 day 3
    for source_id, when in times.items():
        _saved_at(store, monkeypatch, when, source_id)
    monkeypatch.setattr(sync_state, "utcnow", lambda: DAY)
    store.save(
        SyncRecord(connection_id="other", kind="invoice", source_id="in_x", status=SyncStatus.SYNCED), 0
    )
    _saved_at(store, monkeypatch, DAY + timedelta(hours=30), "in_pending", status=SyncStatus.PENDING)
    monkeypatch.undo()

    since, until = DAY + timedelta(hours=5), DAY + timedelta(hours=40)  # day 1 17:00 to day 3 04:00
    found = [r.source_id for r in store.by_day("acme", since, until)]
    assert found == ["in_4", "in_3", "in_2", "in_1"]
    assert [r.source_id for r in store.by_day("acme", since, until, newest_first=False)] == found[::-1]
    assert [r.source_id for r in store.by_day("acme", DAY, DAY)] == ["in_0"]  # bounds are inclusive
    assert list(store.by_day("acme", until, since)) == []
    pending, revision = store.get("acme", "invoice", "in_pending")
    assert pending is not None
    pending.status = SyncStatus.SYNCED
    monkeypatch.setattr(sync_state, "utcnow", lambda: DAY + timedelta(hours=31))
    store.save(pending, revision)
    assert [r.source_id for r in store.by_day("acme", since, until)] == [
        "in_4",
        "in_pending",
        "in_3",
        "in_2",
        "in_1",
    ]


def test_find_looks_up_every_kind_and_last_synced(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """find returns the records of one source id whatever their kind; last_synced the newest
    synced record (parked ones do not count)."""
    resources, session = aws
    store = SyncStateStore(resources.sync_table, session.client("dynamodb"))
    store.save(SyncRecord(connection_id="acme", kind="invoice", source_id="x1", status=SyncStatus.SYNCED), 0)
    store.save(SyncRecord(connection_id="acme", kind="refund", source_id="x1", status=SyncStatus.REJECTED), 0)
    store.save(
        SyncRecord(connection_id="acme", kind="invoice", source_id="x2", status=SyncStatus.NEEDS_MAPPING), 0
    )
    assert sorted(r.kind for r in store.find("acme", "x1")) == ["invoice", "refund"]
    last = store.last_synced("acme")
    assert last is not None and last.source_id == "x1" and last.kind == "invoice"


def test_archive_lists_only_the_windows_days_of_one_connection(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given events archived over four days and for two connections, list(from, to) returns the
    window's days of the one connection, in day order, with event ids parsed from the keys."""
    resources, session = aws
    archive = RawArchive(resources.archive_bucket, session.client("s3"))
    for n in range(4):
        for connection in ("acme", "other"):
            key = archive_key("stripe", connection, DAY + timedelta(days=n), f"evt_{n}")
            archive.put(key, b"{}", {})
    listed = list(archive.list("stripe", "acme", date(2026, 11, 21), date(2026, 11, 22)))
    assert [(e.event_id, e.day.isoformat(), e.connection_id) for e in listed] == [
        ("evt_1", "2026-11-21", "acme"),
        ("evt_2", "2026-11-22", "acme"),
    ]


def _bundled(event_id: str, body: bytes, minute: int = 0) -> BundledEvent:
    return BundledEvent(
        event_id=event_id, event_type="invoice.paid", received_at=DAY + timedelta(minutes=minute), body=body
    )


def test_bundle_keeps_each_body_byte_for_byte_and_lists_beside_single_objects(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given a batch's events in one bundle (one body not UTF-8) beside a single-object event, get
    returns every body byte for byte; list gives each event once with its arrival time, bundled or
    not; the same events bundled again write the same object (a retried batch); a retried batch
    of other composition bundles an event twice and it is still listed once."""
    resources, session = aws
    s3 = session.client("s3")
    archive = RawArchive(resources.archive_bucket, s3)
    bodies = {"evt_a": b'{"id": "evt_a", "note": "caf\xc3\xa9"}', "evt_b": b"\xff\xfe not utf-8"}
    events = [_bundled(event_id, body, n) for n, (event_id, body) in enumerate(bodies.items())]
    keys = archive.put_bundle("stripe", "acme", DAY.date(), events)
    assert keys == archive.put_bundle("stripe", "acme", DAY.date(), events)
    single = archive_key("stripe", "acme", DAY, "evt_c")
    archive.put(single, b'{"id": "evt_c"}', {})
    archive.put_bundle(
        "stripe", "acme", DAY.date(), [_bundled("evt_a", bodies["evt_a"]), _bundled("evt_d", b"{}")]
    )
    objects = s3.list_objects_v2(Bucket=resources.archive_bucket)["Contents"]
    assert len(objects) == 3  # two bundles and the single object
    fresh = RawArchive(resources.archive_bucket, s3)  # nothing cached
    for key, event_id in zip(keys, bodies, strict=True):
        assert key.endswith(f".jsonl.gz#{event_id}")
        assert fresh.get(key) == bodies[event_id]
    listed = {e.event_id: e for e in fresh.list("stripe", "acme", DAY.date(), DAY.date())}
    assert sorted(listed) == ["evt_a", "evt_b", "evt_c", "evt_d"]
    assert listed["evt_b"].stored_at == DAY + timedelta(minutes=1)
    assert listed["evt_c"].key == single
    assert fresh.get(listed["evt_d"].key) == b"{}"
    with pytest.raises(InvalidSnapshot):
        fresh.get(keys[0].replace("#evt_a", "#evt_missing"))


def test_batch_send_goes_ten_at_a_time_and_every_message_arrives(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """23 messages take three SendMessageBatch requests (10, 10, 3) and all 23 arrive intact."""
    resources, session = aws
    sqs = session.client("sqs")
    counts: list[int] = []
    queue = SyncQueue(resources.sync_queue_url, sqs)
    assert queue.send_batch([_message(n) for n in range(23)], progress=counts.append) == 23
    assert counts == [10, 10, 3]
    assert queue.depth().visible == 23
    versions = set()
    while batch := sqs.receive_message(QueueUrl=resources.sync_queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for m in batch:
            versions.add(SyncMessage.model_validate_json(m["Body"]).version)
            sqs.delete_message(QueueUrl=resources.sync_queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert versions == set(range(23))


def test_dead_letter_redrive_moves_every_message_with_its_attributes(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given 12 dead letters, redrive(limit=5) moves five; redrive() the other seven; the DLQ is
    then empty and the sync queue holds all twelve bodies with their attributes."""
    resources, session = aws
    sqs = session.client("sqs")
    dead = DeadLetterQueue(resources.dead_letter_queue_url, sqs)
    SyncQueue(resources.dead_letter_queue_url, sqs).send_batch([_message(n) for n in range(12)])
    assert dead.redrive(resources.sync_queue_url, limit=5) == 5
    assert dead.redrive(resources.sync_queue_url) == 7
    assert dead.depth().total == 0
    moved = []
    while batch := sqs.receive_message(
        QueueUrl=resources.sync_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for m in batch:
            moved.append(
                (json.loads(m["Body"])["event_id"], m["MessageAttributes"]["connection"]["StringValue"])
            )
            sqs.delete_message(QueueUrl=resources.sync_queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(moved) == sorted((f"evt_{n}", "acme") for n in range(12))


def test_an_older_record_finds_its_event_by_marker_then_by_listing(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """A record without archive_key (written before this version) finds its archived event by
    listing the archive over the days it lived (and not without those dates); a re-drive plan then
    rebuilds intake's message from that body, and a parked invoice with its parked payment
    sharing one event is sent once."""
    resources, session = aws
    store = SyncStateStore(resources.sync_table, session.client("dynamodb"))
    archive = RawArchive(resources.archive_bucket, session.client("s3"))
    body = fixture_bytes("c1")
    key = archive_key("stripe", "acme", datetime.now(UTC), "evt_1QcGammaFinalized001")
    archive.put(key, body, {})
    old = SyncRecord(
        connection_id="acme", kind="invoice", source_id="in_1QcUnmapped01",
        status=SyncStatus.NEEDS_MAPPING, event_id="evt_1QcGammaFinalized001",
    )  # fmt: skip
    store.save(old, 0)
    assert archive_key_of(old, archive, "stripe") == key  # found by listing
    undated = old.model_copy(update={"created_at": None, "updated_at": None})
    assert archive_key_of(undated, archive, "stripe") is None
    payment = SyncRecord(
        connection_id="acme", kind="payment", source_id="inpay_x", status=SyncStatus.REJECTED, archive_key=key
    )
    lost = SyncRecord(connection_id="acme", kind="refund", source_id="ch_x", status=SyncStatus.REJECTED)
    plan = plan_redrive([old, payment, lost], archive, "stripe")
    assert [m.event_id for m in plan.messages] == ["evt_1QcGammaFinalized001"]
    assert plan.messages[0] == rebuild(key, body)
    assert plan.messages[0].invoice is not None and plan.messages[0].invoice.number == "GAMMA-0007"
    assert [r.source_id for r in plan.missing] == ["ch_x"]


def test_parked_records_come_newest_first_from_the_status_index(
    aws: tuple[StackResources, boto3.session.Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given parked records written at different times, the status index gives them newest first
    when asked (what `log --status` merges and stops reading at its limit), oldest first by
    default, and never a synced record."""
    resources, session = aws
    store = SyncStateStore(resources.sync_table, session.client("dynamodb"))
    for hours, source_id in ((3, "in_third"), (1, "in_first"), (2, "in_second")):
        _saved_at(
            store, monkeypatch, DAY + timedelta(hours=hours), source_id, status=SyncStatus.NEEDS_MAPPING
        )
    _saved_at(store, monkeypatch, DAY + timedelta(hours=4), "in_done", status=SyncStatus.SYNCED)
    newest = [
        r.source_id for r in store.needing_attention("acme", SyncStatus.NEEDS_MAPPING, newest_first=True)
    ]
    assert newest == ["in_third", "in_second", "in_first"]
    oldest = [r.source_id for r in store.needing_attention("acme", SyncStatus.NEEDS_MAPPING)]
    assert oldest == ["in_first", "in_second", "in_third"]
