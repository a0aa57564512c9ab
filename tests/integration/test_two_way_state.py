"""The state and secrets payments back (issue 7, design 3.6 to 3.8) keeps, on moto (mock_aws), with
tables from template.yaml: the new record fields and old items without them, ``ledger_paid`` set
and removed under the record's revision, record links, the prefix query, the Xero poll cursor, the
ledger webhook and Stripe writer secrets, the tenant directory and FreshBooks callbacks awaiting
verification."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from invoice_sync.errors import ConnectionBroken, UnknownConnection
from invoice_sync.models.mapping import Connection, MappingVersion
from invoice_sync.models.sync import LedgerPaid, PollCursor, SyncRecord, SyncStatus
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import LedgerWebhookNotConfigured, SecretStore
from invoice_sync.store.sync_state import (
    CALLBACK_TTL_SECONDS,
    PACKED_ATTRIBUTE,
    ConcurrentUpdate,
    SyncStateStore,
    _unpack,
)
from invoice_sync_ops.template import StackResources, create_stack_resources
from tests.integration.conftest import REGION

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
LP_KEY = "ledger_payment#190:147"


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


@pytest.fixture
def store(aws: tuple[StackResources, boto3.session.Session]) -> SyncStateStore:
    resources, session = aws
    return SyncStateStore(resources.sync_table, session.client("dynamodb"))


def _invoice(store: SyncStateStore, source_id: str = "in_1") -> int:
    return store.save(
        SyncRecord(
            connection_id="acme",
            kind="invoice",
            source_id=source_id,
            status=SyncStatus.SYNCED,
            ledger_id="147",
            source_total=10000,
        ),
        0,
    )


# --- records ------------------------------------------------------------------------------------


def test_ledger_payment_record_round_trips_with_every_new_field(store: SyncStateStore) -> None:
    """Given a ledger_payment record with direction, target, Stripe object, generation and an
    invoice with ledger_paid, when saved and read back, then every field is equal (ledger_paid as
    typed entries) and ledger_paid is stored as one compact JSON string (packed)."""
    record = SyncRecord(
        connection_id="acme",
        kind="ledger_payment",
        source_id="190:147",
        direction="to_source",
        source_target="in_1",
        stripe_object="pr_1",
        attempts_generation=2,
        ledger_id="190",
        ledger_total=4000,
        status=SyncStatus.SYNCED,
    )
    store.save(record, 0)
    read, revision = store.get("acme", "ledger_payment", "190:147")
    assert read == record and revision == 1

    invoice = SyncRecord(
        connection_id="acme",
        kind="invoice",
        source_id="in_1",
        ledger_paid={LP_KEY: LedgerPaid(amount=4000, state="done", at=AT)},
    )
    store.save(invoice, 0)
    assert store.get("acme", "invoice", "in_1")[0] == invoice
    raw = store._client.get_item(
        TableName=store.table, Key={"pk": {"S": "CONN#acme"}, "sk": {"S": "invoice#in_1"}}
    )["Item"]
    # Packed (issue 9: smaller compressed), as the same compact string; the default direction is
    # left out of the item and restored on reading.
    assert "ledger_paid" not in raw
    assert _unpack(raw[PACKED_ATTRIBUTE]["B"])["ledger_paid"] == (
        '{"ledger_payment#190:147":{"amount":4000,"at":"2026-12-01T09:30:00Z","state":"done"}}'
    )
    assert "direction" not in raw
    assert [r.source_id for r in store.find("acme", "190:147")] == ["190:147"]  # find() asks the new kind


def test_an_item_written_before_payments_back_loads_with_the_defaults(store: SyncStateStore) -> None:
    """Given an invoice item as older code wrote it (none of the new attributes), when read, then it
    loads as to_ledger, generation 0, no target, no Stripe object and no ledger_paid."""
    store._client.put_item(
        TableName=store.table,
        Item={
            "pk": {"S": "CONN#acme"},
            "sk": {"S": "invoice#in_old"},
            "revision": {"N": "3"},
            "connection_id": {"S": "acme"},
            "kind": {"S": "invoice"},
            "source_id": {"S": "in_old"},
            "status": {"S": "synced"},
            "attempts": {"N": "0"},
            "source_version": {"N": "7"},
        },
    )
    record, revision = store.get("acme", "invoice", "in_old")
    assert record is not None and revision == 3
    assert (record.direction, record.attempts_generation) == ("to_ledger", 0)
    assert record.source_target is record.stripe_object is record.ledger_paid is None
    assert record.ledger_paid_total() == 0


# --- ledger_paid under the revision -------------------------------------------------------------


def test_reserve_then_done_then_release_under_the_revision(store: SyncStateStore) -> None:
    """Given a synced invoice record, when a ledger payment is reserved pending, set again as done
    (the same key) and a second one reserved, then each write moves the revision by one, the same
    key never adds twice, and releasing one leaves the other; releasing the last clears the map,
    and releasing a key that is not there writes nothing."""
    revision = _invoice(store)
    record, revision = store.reserve_ledger_paid("acme", "in_1", LP_KEY, 4000, "pending", revision, at=AT)
    assert revision == 2 and record.ledger_paid == {LP_KEY: LedgerPaid(amount=4000, state="pending", at=AT)}
    record, revision = store.reserve_ledger_paid("acme", "in_1", LP_KEY, 4000, "done", revision, at=AT)
    record, revision = store.reserve_ledger_paid(
        "acme", "in_1", "ledger_payment#191:147", 1500, "pending", revision, at=AT
    )
    stored, stored_revision = store.get("acme", "invoice", "in_1")
    assert stored is not None and stored_revision == revision == 4
    assert stored.ledger_paid_total() == 5500
    assert stored.ledger_paid is not None and stored.ledger_paid[LP_KEY].state == "done"
    assert stored.ledger_id == "147" and stored.status is SyncStatus.SYNCED  # the rest is untouched

    record, revision = store.release_ledger_paid("acme", "in_1", "ledger_payment#191:147", revision)
    assert revision == 5 and record.ledger_paid_total() == 4000
    record, revision = store.release_ledger_paid("acme", "in_1", "ledger_payment#191:147", revision)
    assert revision == 5  # nothing to release: no write
    record, revision = store.release_ledger_paid("acme", "in_1", LP_KEY, revision)
    stored, _ = store.get("acme", "invoice", "in_1")
    assert stored is not None and stored.ledger_paid is None and revision == 6


def test_reserve_and_release_lose_a_race_with_concurrent_update(store: SyncStateStore) -> None:
    """Given an invoice record read at revision 1 that push then saved again (revision 2), when
    payments back reserves or releases under revision 1, then ConcurrentUpdate is raised and the
    record holds no ledger_paid; for an invoice with no record, ConcurrentUpdate too."""
    revision = _invoice(store)
    record, current = store.get("acme", "invoice", "in_1")
    assert record is not None
    record.attempts = 1
    store.save(record, current)  # another worker's write
    with pytest.raises(ConcurrentUpdate):
        store.reserve_ledger_paid("acme", "in_1", LP_KEY, 4000, "pending", revision)
    with pytest.raises(ConcurrentUpdate):
        store.release_ledger_paid("acme", "in_1", LP_KEY, revision)
    stored, _ = store.get("acme", "invoice", "in_1")
    assert stored is not None and stored.ledger_paid is None
    with pytest.raises(ConcurrentUpdate, match="no record"):
        store.reserve_ledger_paid("acme", "in_missing", LP_KEY, 4000, "pending", 1)


def test_reserve_loses_the_conditional_write_to_a_save_between_read_and_write(
    store: SyncStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a reserve whose read sees the expected revision, when another worker saves the record
    between that read and the reserve's write, then the conditional write refuses it
    (ConcurrentUpdate) and the other worker's write stands."""
    revision = _invoice(store)
    real_get = store.get

    def get_then_race(connection_id: str, kind: Any, source_id: str) -> tuple[SyncRecord | None, int]:
        read = real_get(connection_id, kind, source_id)
        other, other_revision = real_get(connection_id, kind, source_id)
        assert other is not None
        other.ledger_number = "INV-RACE"
        store.save(other, other_revision)
        return read

    monkeypatch.setattr(store, "get", get_then_race)
    with pytest.raises(ConcurrentUpdate):
        store.reserve_ledger_paid("acme", "in_1", LP_KEY, 4000, "pending", revision)
    monkeypatch.undo()
    stored, stored_revision = store.get("acme", "invoice", "in_1")
    assert stored is not None and stored.ledger_number == "INV-RACE" and stored.ledger_paid is None
    assert stored_revision == 2


# --- links and the prefix query -----------------------------------------------------------------


def test_record_links_share_the_charge_link_partition(store: SyncStateStore) -> None:
    """Given a charge link and two record links (a ledger payment, a payment record), when read,
    then each returns its own value, a name never linked gives None, the links are not records,
    and a name of another shape (a charge) or a bad record key is refused."""
    store.link_charges("acme", ["ch_1"], "in_1")
    store.link("acme", "ledger-payment:190", "payment#in_1:ch_1")
    store.link("acme", "pr_1", LP_KEY)
    store.link("acme", "pr_1", LP_KEY)  # again: harmless
    assert store.linked("acme", "ledger-payment:190") == "payment#in_1:ch_1"
    assert store.linked("acme", "pr_1") == LP_KEY
    assert store.linked("acme", "pr_2") is None
    assert store.linked("other", "pr_1") is None
    assert store.invoice_of_charge("acme", ["ch_0", "ch_1"]) == "in_1"
    assert list(store.list("acme")) == []
    with pytest.raises(ValueError, match="not a record link"):
        store.link("acme", "ch_1", LP_KEY)
    with pytest.raises(ValueError, match="not a record link"):
        store.linked("acme", "ch_1")
    with pytest.raises(ValueError, match="sort key"):
        store.link("acme", "pr_3", "nonsense")
    with pytest.raises(ValueError, match="sort key"):
        store.link("acme", "pr_3", "deposit#po_1")  # not a kind


def test_records_with_prefix_finds_one_ledger_payments_records_only(store: SyncStateStore) -> None:
    """Given ledger_payment records of payments 190 (two invoices), 1901 and 19, when queried with
    the prefix "190:", then the two records of payment 190 come back with their revisions, in sort
    order; synced_total still adds up synced records by prefix."""
    for source_id in ("190:147", "190:148", "1901:147", "19:147"):
        store.save(
            SyncRecord(
                connection_id="acme",
                kind="ledger_payment",
                source_id=source_id,
                direction="to_source",
                ledger_total=100,
                status=SyncStatus.SYNCED,
            ),
            0,
        )
    found = list(store.records_with_prefix("acme", "ledger_payment", "190:"))
    assert [(r.source_id, revision) for r, revision in found] == [("190:147", 1), ("190:148", 1)]
    assert list(store.records_with_prefix("acme", "payment", "190:")) == []
    assert store.synced_total("acme", "ledger_payment", "190") == 300


# --- the poll cursor ----------------------------------------------------------------------------


def test_poll_cursor_saves_conditionally_on_its_revision(store: SyncStateStore) -> None:
    """Given no cursor, when one is saved at revision 0, then it reads back at revision 1 with every
    field; when two polls save from revision 1, then the second gets ConcurrentUpdate and the first
    one's cursor stands; a first save that races another first save loses too."""
    assert store.poll_cursor("acme") is None
    first = PollCursor(since=AT, last_run_at=AT + timedelta(minutes=1), last_count=3)
    saved = store.save_poll_cursor("acme", first, 0)
    assert saved.revision == 1
    assert store.poll_cursor("acme") == saved
    with pytest.raises(ConcurrentUpdate):
        store.save_poll_cursor("acme", first, 0)

    later = PollCursor(since=AT + timedelta(minutes=15))
    moved = store.save_poll_cursor("acme", later, saved.revision)
    with pytest.raises(ConcurrentUpdate):
        store.save_poll_cursor("acme", PollCursor(since=AT + timedelta(hours=1)), saved.revision)
    read = store.poll_cursor("acme")
    assert read == moved and read is not None and read.revision == 2
    assert read.since == AT + timedelta(minutes=15) and read.last_count is None
    assert store.poll_cursor("other") is None


# --- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def secrets(aws: tuple[StackResources, boto3.session.Session]) -> SecretStore:
    return SecretStore("invoice-sync/test", aws[1].client("secretsmanager"), cache_seconds=0)


def test_ledger_webhook_keys_put_get_add_and_missing(secrets: SecretStore) -> None:
    """Given no ledger webhook secret, when read, then LedgerWebhookNotConfigured (an
    UnknownConnection: the intake's 404) without any key in its message; once put, the keys read
    back in order as SecretStr; an added verifier goes first and is never listed twice."""
    with pytest.raises(LedgerWebhookNotConfigured) as missing:
        secrets.ledger_webhook_keys("acme")
    assert isinstance(missing.value, UnknownConnection)
    secrets.put_ledger_webhook_keys("acme", ["verifier-new", "verifier-old"])
    keys = secrets.ledger_webhook_keys("acme")
    assert all(isinstance(k, SecretStr) for k in keys)
    assert [k.get_secret_value() for k in keys] == ["verifier-new", "verifier-old"]
    assert "verifier" not in repr(keys)
    secrets.add_ledger_webhook_key("acme", "fb-verifier")
    secrets.add_ledger_webhook_key("acme", "fb-verifier")
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("acme")] == [
        "fb-verifier",
        "verifier-new",
        "verifier-old",
    ]
    secrets.add_ledger_webhook_key("other", "first")
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("other")] == ["first"]
    secrets.ensure_ledger_webhook_secret("fresh")
    with pytest.raises(LedgerWebhookNotConfigured):
        secrets.ledger_webhook_keys("fresh")  # created empty: still not configured
    secrets.add_ledger_webhook_key("fresh", "fb-verifier")
    secrets.ensure_ledger_webhook_secret("fresh")  # exists: left alone
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("fresh")] == ["fb-verifier"]
    with pytest.raises(ValueError, match="non-empty"):
        secrets.put_ledger_webhook_keys("acme", [])
    with pytest.raises(ValueError, match="non-empty"):
        secrets.put_ledger_webhook_keys("acme", [" "])


def test_ledger_webhook_keys_cached_while_warm_and_refreshed_on_put(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given a caching store that read the keys, when another writer replaces them, then the warm
    store keeps its copy; when the store itself puts keys, then its next read is the new ones; a
    malformed secret is not configured either."""
    client = aws[1].client("secretsmanager")
    warm = SecretStore("invoice-sync/test", client, cache_seconds=300)
    warm.put_ledger_webhook_keys("acme", ["k1"])
    assert [k.get_secret_value() for k in warm.ledger_webhook_keys("acme")] == ["k1"]
    SecretStore("invoice-sync/test", client).put_ledger_webhook_keys("acme", ["k2"])
    assert [k.get_secret_value() for k in warm.ledger_webhook_keys("acme")] == ["k1"]
    warm.put_ledger_webhook_keys("acme", ["k3"])
    assert [k.get_secret_value() for k in warm.ledger_webhook_keys("acme")] == ["k3"]
    client.create_secret(Name="invoice-sync/test/bad/ledger-webhook", SecretString='{"keys": []}')
    with pytest.raises(LedgerWebhookNotConfigured, match="malformed"):
        warm.ledger_webhook_keys("bad")
    client.create_secret(Name="invoice-sync/test/bare/ledger-webhook", SecretString="bare-verifier")
    with pytest.raises(LedgerWebhookNotConfigured, match="malformed") as bare:
        warm.ledger_webhook_keys("bare")
    assert "bare-verifier" not in repr(bare.value)
    assert bare.value.__suppress_context__  # the JSON error, which holds the value, is not chained
    with pytest.raises(LedgerWebhookNotConfigured, match="malformed"):
        warm.add_ledger_webhook_key("bare", "fb-verifier")  # a value it cannot read is never overwritten
    assert client.get_secret_value(SecretId="invoice-sync/test/bare/ledger-webhook")["SecretString"] == (
        "bare-verifier"
    )


def test_stripe_writer_key_is_its_own_secret(secrets: SecretStore) -> None:
    """Given a read key only, when the writer key is asked for, then ConnectionBroken (and the read
    key is not used); once put, it is read from ``…/stripe-writer`` as a SecretStr, and a value that
    is no Stripe key is refused without being echoed."""
    secrets.put_stripe_api_key("acme", "rk_test_read")
    with pytest.raises(ConnectionBroken, match="Stripe writer key missing"):
        secrets.stripe_writer_key("acme")
    secrets.put_stripe_writer_key("acme", "rk_test_write")
    assert secrets.stripe_writer_secret_name("acme") == "invoice-sync/test/acme/stripe-writer"
    assert secrets.stripe_writer_key("acme").get_secret_value() == "rk_test_write"
    assert secrets.stripe_api_key("acme").get_secret_value() == "rk_test_read"
    secrets.put_stripe_writer_key("acme", "pk_test_publishable")
    with pytest.raises(ConnectionBroken) as malformed:
        secrets.stripe_writer_key("acme")
    assert "pk_test_publishable" not in str(malformed.value) + repr(malformed.value)


# --- the tenant directory -----------------------------------------------------------------------


def test_tenant_directory_names_the_connection_of_a_ledger_company(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given a tenant recorded for QBO, when looked up, then its connection comes back, the same id
    under another ledger is unknown, and a later put replaces the owner (its cached answer too);
    the connection items themselves are untouched."""
    resources, session = aws
    mappings = MappingsStore(resources.mappings_table, session.client("dynamodb"))
    mappings.put_connection(Connection(connection_id="acme", tenant_id="9130"))
    assert mappings.tenant_connection("quickbooks", "9130") is None
    mappings.put_tenant_connection("quickbooks", "9130", "acme")
    assert mappings.tenant_connection("quickbooks", "9130") == "acme"
    assert mappings.tenant_connection("xero", "9130") is None
    mappings.put_tenant_connection("quickbooks", "9130", "acme-2")
    assert mappings.tenant_connection("quickbooks", "9130") == "acme-2"
    assert [c.connection_id for c in mappings.connections()] == ["acme"]


def test_connection_payments_back_settings_round_trip(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given a connection with payments back on since a date, when stored and read, then both
    settings come back (a bool and an aware datetime); one stored before them reads them off."""
    resources, session = aws
    mappings = MappingsStore(resources.mappings_table, session.client("dynamodb"), cache_seconds=0)
    mappings.put_connection(
        Connection(connection_id="acme", tenant_id="9130", payments_back=True, payments_back_since=AT)
    )
    read = mappings.connection("acme")
    assert read is not None and read.payments_back is True and read.payments_back_since == AT
    mappings.put_connection(Connection(connection_id="old", tenant_id="1"))
    old = mappings.connection("old")
    assert old is not None and old.payments_back is False and old.payments_back_since is None


def test_a_mapping_import_sets_and_clears_the_payments_back_settings(
    aws: tuple[StackResources, boto3.session.Session],
) -> None:
    """Given a connection, when an import's version turns payments back on from a start, then the
    stored connection has it on as a boolean with the start; when the next import leaves the start
    out and the flow off, then both read back as off and unset."""
    resources, session = aws
    mappings = MappingsStore(resources.mappings_table, session.client("dynamodb"), cache_seconds=0)
    connection = Connection(connection_id="acme", tenant_id="9130")
    mappings.put_connection(connection)

    def version(number: int) -> MappingVersion:
        return MappingVersion(
            version=number, at=AT.isoformat(), actor="test", file="m.yaml", file_sha256="0" * 64,
            counts={}, changes={},
        )  # fmt: skip

    on = connection.model_copy(update={"payments_back": True, "payments_back_since": AT})
    mappings.commit_version(on, 1, version(2))
    read = mappings.connection("acme")
    assert read is not None and read.payments_back is True and read.payments_back_since == AT
    raw = session.client("dynamodb").get_item(
        TableName=resources.mappings_table, Key={"pk": {"S": "CONN#acme"}, "sk": {"S": "CONNECTION"}}
    )["Item"]
    assert raw["payments_back"] == {"BOOL": True}
    mappings.commit_version(connection, 2, version(3))
    read = mappings.connection("acme")
    assert read is not None and read.payments_back is False and read.payments_back_since is None
    assert read.mapping_version == 3


# --- FreshBooks callbacks awaiting verification -------------------------------------------------


def test_pending_callback_lives_an_hour_and_is_verified_once(store: SyncStateStore) -> None:
    """Given a callback registered, when read, then it is pending with its event; once verified it
    reads verified and a second verification is refused; a stranger's callback id is unknown, and
    once its hour is over a callback is gone (read and verify alike), even before DynamoDB's TTL
    removes the item."""
    registered = store.put_pending_callback("acme", "cb_1", "payment.create")
    assert store.pending_callback("acme", "cb_1") == registered
    assert registered.state == "pending" and registered.event == "payment.create"
    assert store.pending_callback("acme", "cb_2") is None
    assert store.pending_callback("other", "cb_1") is None
    assert store.mark_callback_verified("acme", "cb_1") is True
    read = store.pending_callback("acme", "cb_1")
    assert read is not None and read.state == "verified"
    assert store.mark_callback_verified("acme", "cb_1") is False
    assert store.mark_callback_verified("acme", "cb_2") is False

    assert registered.expires_at - CALLBACK_TTL_SECONDS == pytest.approx(time.time(), abs=5)
    store.put_pending_callback("acme", "cb_3", "payment.update", ttl_seconds=0)  # its hour is over
    assert store.pending_callback("acme", "cb_3") is None
    assert store.mark_callback_verified("acme", "cb_3") is False
