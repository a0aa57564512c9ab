"""How SyncState records are stored (issue 9, cost per million invoices), on moto (mock_aws) with
tables from template.yaml: the JSON attributes packed into one compressed binary attribute when
that is smaller, defaults and key-held fields left out, every kind read back unchanged through
``get``, the day index and the attention index, and items written before the change loading as
they are. Sizes are DynamoDB's, by ``bench/cost_meter.py``'s ``item_size``."""

from __future__ import annotations

import importlib.util
import json
import random
import string
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync.models.summary import DocumentSummary, SummaryLine
from invoice_sync.models.sync import LedgerPaid, SyncRecord, SyncStatus
from invoice_sync.store.sync_state import PACKED_ATTRIBUTE, SyncStateStore, _from_item, _to_item
from invoice_sync_ops.template import StackResources, create_stack_resources
from tests.integration.conftest import REGION

_METER = Path(__file__).resolve().parents[2] / "bench" / "cost_meter.py"
_spec = importlib.util.spec_from_file_location("bench_cost_meter", _METER)
assert _spec is not None and _spec.loader is not None
cost_meter = sys.modules.setdefault("bench_cost_meter", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(cost_meter)
item_size = cost_meter.item_size

AT = datetime(2026, 12, 2, 17, 0, 28, 162822, tzinfo=UTC)
KB = 1024


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
def client(aws: tuple[StackResources, boto3.session.Session]) -> Any:
    return aws[1].client("dynamodb", region_name=REGION)


@pytest.fixture
def store(aws: tuple[StackResources, boto3.session.Session], client: Any) -> SyncStateStore:
    return SyncStateStore(aws[0].sync_table, client)


def _stripe_id(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))


def _summary(lines: int, rng: random.Random) -> tuple[str, str]:
    """An invoice summary and line products as push writes them (``invoice_summary``'s shape),
    with Stripe-shaped random line ids (they do not compress: about 18 bytes of entropy each)."""
    rows = []
    for n in range(lines):
        amount = rng.randrange(500, 250_000)
        description = f"{rng.choice(['Hosting', 'Support plan', 'API calls', 'Storage'])} - March ({n})"
        product = rng.choice(["prod_Hosting", "prod_Consulting"])
        tax = (amount * 825 + 5000) // 10000
        rows.append(
            SummaryLine(
                _stripe_id("il_1Q", rng), description, product, 1, amount, 0, tax, 0, "3", None, "TAX"
            )
        )
    summary = DocumentSummary(
        status="paid",
        issued_on=AT.date(),
        due_on=AT.date() + timedelta(days=30),
        customer_id="cus_RAcme01",
        customer_name="Acme Corp",
        customer_email="ap@acme.example",
        subtotal=sum(r.amount for r in rows),
        discount=0,
        tax=sum(r.tax for r in rows),
        total=sum(r.amount + r.tax for r in rows),
        amount_paid=sum(r.amount + r.tax for r in rows),
        lines=tuple(rows),
    ).dump()
    products = json.dumps({r.source_id: r.product_id for r in rows})
    return summary, products


def _invoice(lines: int = 2, seed: int = 9, **changes: Any) -> SyncRecord:
    """An invoice record with every field push sets on a paid, partly refunded invoice."""
    summary, products = _summary(lines, random.Random(seed))
    record = SyncRecord(
        connection_id="acme",
        kind="invoice",
        source_id="in_1QaCurrentAcme01",
        source_version=17673120002,
        content_hash="2b42e2084f74d919a5f12ae7cd72bb8beb8d021b3a952bc8bb650e2268c17f59",
        status=SyncStatus.SYNCED,
        idempotency_key="063e42bc-bc95-50da-a722-7f54f90b749f",
        ledger_id="101",
        ledger_version="1",
        ledger_number="ACME-0001",
        ledger_customer_id="100",
        line_products=products,
        draft_hash="1734956981f50bac6a24987ce04e6697",
        refunds=json.dumps(
            {
                "booked": {"ch_3QgAcmeCharge01:refunded:16238": 16238},
                "charges": {"ch_3QgAcmeCharge01": 16238},
                "credit": {},
            },
            sort_keys=True,
        ),
        source_number="ACME-0001",
        currency="USD",
        source_total=167786,
        ledger_total=167786,
        mapping_version=1,
        attempts=2,
        event_id="evt_1QaAcmePaid000001",
        archive_key="raw/stripe/acme/2026/12/02/f8cc600ae142a2e1e7bd88414b3b8520.jsonl.gz#evt_1QaAcmePaid000001",
        summary=summary,
        created_at=AT - timedelta(seconds=1),
        updated_at=AT,
    )
    return record.model_copy(update=changes)


def _payment() -> SyncRecord:
    return SyncRecord(
        connection_id="acme",
        kind="payment",
        source_id="inpay_1QaAcmePay0001",
        status=SyncStatus.SYNCED,
        idempotency_key="c500a2b8-83d3-5b6a-bc47-51ab9f21a19f",
        ledger_id="102",
        ledger_number="inpay_1QaAcmePay0001",
        source_number="ACME-0001",
        currency="USD",
        source_total=167786,
        ledger_total=167786,
        mapping_version=1,
        archive_key="raw/stripe/acme/2026/12/02/f8cc600ae142a2e1e7bd88414b3b8520.jsonl.gz#evt_1QaAcmePaid000001",
        summary='{"iss":"2026-01-01","cid":"cus_RAcme01","cn":"Acme Corp","ce":"ap@acme.example",'
        '"tot":167786,"inv":"in_1QaCurrentAcme01","invn":"ACME-0001","ref":"inpay_1QaAcmePay0001"}',
        created_at=AT,
        updated_at=AT,
    )


def _credit_note() -> SyncRecord:
    return SyncRecord(
        connection_id="acme",
        kind="credit_note",
        source_id="cn_1QfAcmeCredit01",
        source_version=17672400001,
        content_hash="14018d9e89b1486c5a59611be5b8af61cdf3bba6372912a050dcc1df708a4feb",
        status=SyncStatus.SYNCED,
        idempotency_key="038da64c-3cf1-5a08-afef-b1f25b1f3985",
        ledger_id="103",
        ledger_version="0",
        ledger_number="ACME-0001-CN-01",
        ledger_customer_id="100",
        source_number="ACME-0001-CN-01",
        currency="USD",
        source_total=16238,
        ledger_total=16238,
        mapping_version=1,
        attempts=1,
        event_id="evt_1QfAcmeCreditCreated",
        summary='{"st":"issued","iss":"2026-01-01","cid":"cus_RAcme01","cn":"cus_RAcme01","sub":15000,"dis":0,'
        '"tax":1238,"tot":16238,"paid":0,"inv":"in_1QaCurrentAcme01","ln":[["cnli_1QfAcmeCredit01",'
        '"Consulting hours",null,1,15000,0,1238,0,"1",null,"TAX"]]}',
        created_at=AT,
        updated_at=AT,
    )


def _refund() -> SyncRecord:
    return SyncRecord(
        connection_id="acme",
        kind="refund",
        source_id="ch_3QgAcmeCharge01:refunded:16238",
        status=SyncStatus.SYNCED,
        ledger_id="104",
        source_total=16238,
        summary='{"iss":"2026-01-03","cid":"cus_RAcme01","tot":16238,"ref":"ch_3QgAcmeCharge01"}',
        created_at=AT,
        updated_at=AT,
    )


def _saved(store: SyncStateStore, record: SyncRecord) -> SyncRecord:
    """``record`` as ``save`` leaves it (it stamps the times) after saving it new."""
    store.save(record, 0)
    return record


def _raw(client: Any, store: SyncStateStore, record: SyncRecord) -> dict[str, Any]:
    key = {"pk": {"S": f"CONN#{record.connection_id}"}, "sk": {"S": f"{record.kind}#{record.source_id}"}}
    item: dict[str, Any] = client.get_item(TableName=store.table, Key=key, ConsistentRead=True)["Item"]
    return item


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: _invoice(2),
        lambda: _invoice(100),
        lambda: _invoice(
            2, ledger_paid={"ledger_payment#190:147": LedgerPaid(amount=500, state="done", at=AT)}
        ),
        _payment,
        _credit_note,
        _refund,
    ],
    ids=["invoice", "invoice-100-lines", "invoice-ledger-paid", "payment", "credit-note", "refund"],
)
def test_every_kind_round_trips_packed_through_get_and_the_day_index(
    store: SyncStateStore, client: Any, make: Any
) -> None:
    """Given a record of each kind as push writes it, when it is saved, then its JSON attributes
    are stored packed (one binary attribute, none of them plain) and ``get`` and ``by_day`` give
    back exactly the record saved."""
    record = _saved(store, make())
    item = _raw(client, store, record)
    assert isinstance(item[PACKED_ATTRIBUTE]["B"], bytes)
    assert not {"summary", "line_products", "refunds", "ledger_paid"} & set(item)
    assert store.get("acme", record.kind, record.source_id) == (record, 1)
    assert record.updated_at is not None
    assert list(store.by_day("acme", record.updated_at - timedelta(seconds=1), record.updated_at)) == [record]


def test_a_record_whose_json_would_not_shrink_stays_plain_and_round_trips(
    store: SyncStateStore, client: Any
) -> None:
    """Given a record whose only JSON is a tiny summary (compressing it would make it larger),
    when it is saved, then the summary is stored as a plain string and reads back unchanged."""
    record = _saved(store, _refund().model_copy(update={"summary": '{"tot":1}'}))
    item = _raw(client, store, record)
    assert item["summary"] == {"S": '{"tot":1}'}
    assert PACKED_ATTRIBUTE not in item
    assert store.get("acme", "refund", record.source_id) == (record, 1)


def test_a_parked_record_round_trips_through_the_attention_index(store: SyncStateStore) -> None:
    """Given a parked invoice with a packed summary, then ``needing_attention`` (which reads the
    by_status index, projecting everything) gives it back whole."""
    record = _saved(store, _invoice(30, status=SyncStatus.NEEDS_MAPPING, last_error="no rule for prod_X"))
    assert list(store.needing_attention("acme", SyncStatus.NEEDS_MAPPING)) == [record]


def test_defaults_and_key_fields_are_left_out_and_restored(store: SyncStateStore, client: Any) -> None:
    """Given a pending intent with every field at its default, when it is saved, then the item
    holds only its key, revision and times (no connection, kind or source id, no zero attempts,
    no direction), and it reads back equal, defaults and all."""
    record = _saved(store, SyncRecord(connection_id="acme", kind="payment", source_id="inpay_1"))
    item = _raw(client, store, record)
    assert set(item) == {"pk", "sk", "revision", "created_at", "updated_at"}
    loaded, _ = store.get("acme", "payment", "inpay_1")
    assert loaded == record
    assert loaded is not None
    assert (loaded.direction, loaded.attempts, loaded.status) == ("to_ledger", 0, SyncStatus.PENDING)


def test_a_source_id_holding_a_hash_comes_back_from_the_key() -> None:
    """Given a record whose source id holds ``#`` and ``:``, then the id read back from the sort
    key is the whole id (only the first ``#`` separates the kind)."""
    record = SyncRecord(connection_id="acme", kind="refund", source_id="ch_1:refunded#2", updated_at=AT)
    assert _from_item(_to_item(record, 4)) == (record, 4)


# --- items written before ------------------------------------------------------------------------


def _old_item(record: SyncRecord) -> dict[str, Any]:
    """An item exactly as the store wrote it before issue 9 (a frozen copy of that encoder, kept
    apart from the store's code): every field not None plain, defaults and the key's fields
    included, ``summary`` and the other JSON as S attributes, ``ledger_paid`` as compact JSON."""
    item: dict[str, Any] = {
        "pk": {"S": "CONN#acme"},
        "sk": {"S": f"{record.kind}#{record.source_id}"},
        "revision": {"N": "4"},
        "day_pk": {"S": "acme#2026-12-02"},
        "day_sk": {"S": f"2026-12-02T17:00:28.162822+00:00#{record.kind}#{record.source_id}"},
    }
    for name, value in record.model_dump(mode="json", exclude_none=True).items():
        if isinstance(value, dict):
            item[name] = {"S": json.dumps(value, sort_keys=True, separators=(",", ":"))}
        elif isinstance(value, bool) or not isinstance(value, int):
            item[name] = {"S": str(value)}
        else:
            item[name] = {"N": str(value)}
    return item


def test_items_written_before_the_change_load_unchanged(store: SyncStateStore, client: Any) -> None:
    """Given an invoice item (with summary, line products, refunds and ledger_paid as plain
    strings) and a payment item written in the old form, then ``get`` and ``by_day`` read them as
    the records they were, and saving one again writes it in the new form at the next revision."""
    invoice = _invoice(
        10,
        ledger_paid={"ledger_payment#190:147": LedgerPaid(amount=500, state="pending", at=AT)},
        created_at=AT - timedelta(seconds=1),
    )
    payment = _payment()
    for record in (invoice, payment):
        client.put_item(TableName=store.table, Item=_old_item(record))
    loaded, revision = store.get("acme", "invoice", invoice.source_id)
    assert revision == 4
    assert loaded is not None
    assert loaded == invoice
    assert {"summary", "line_products", "refunds", "ledger_paid"} <= set(_old_item(invoice))
    listed = {r.source_id: r for r in store.by_day("acme", AT - timedelta(seconds=1), AT)}
    assert set(listed) == {invoice.source_id, payment.source_id}
    assert listed[invoice.source_id] == loaded
    assert store.get("acme", "payment", payment.source_id) == (payment, 4)
    assert store.save(loaded, revision) == 5
    assert PACKED_ATTRIBUTE in _raw(client, store, loaded)
    assert store.get("acme", "invoice", invoice.source_id) == (loaded, 5)


def test_old_form_and_new_form_read_back_the_same_record() -> None:
    """Given any record of the fixtures, then the form written before (``compact=False``) and the
    stored form decode to the same record."""
    for record in (_invoice(2), _invoice(100), _payment(), _credit_note(), _refund()):
        assert _from_item(_to_item(record, 2, compact=False)) == _from_item(_to_item(record, 2))


def test_a_packed_attribute_in_an_unknown_format_is_refused_not_dropped() -> None:
    """Given an item whose packed attribute starts with a format byte this version does not know,
    then reading it fails with a clear error instead of loading a record without its summary."""
    item = _to_item(_invoice(2), 1)
    item[PACKED_ATTRIBUTE] = {"B": b"\x07" + item[PACKED_ATTRIBUTE]["B"][1:]}
    with pytest.raises(ValueError, match="unknown format"):
        _from_item(item)


# --- sizes: what the encoding buys ---------------------------------------------------------------


def test_a_two_line_invoice_record_fits_one_write_unit_where_it_took_two() -> None:
    """Given a settled, paid and refunded 2-line invoice record as push writes it, then its stored
    item is under 1 KB (one write unit), where the old form was over (two); and the payment,
    credit note and refund records are under 1 KB too."""
    record = _invoice(2)
    assert item_size(_to_item(record, 4, compact=False)) > KB
    assert item_size(_to_item(record, 4)) < KB
    for other in (_payment(), _credit_note(), _refund()):
        assert item_size(_to_item(other, 2)) < KB, other.kind


def test_a_hundred_line_invoice_record_is_stored_in_under_a_third_of_its_plain_size() -> None:
    """Given a 100-line invoice record whose line ids are Stripe-shaped random ids, then packed it
    is under a third of its plain size (the ids themselves, random, are most of what is left)."""
    record = _invoice(100)
    plain, stored = item_size(_to_item(record, 4, compact=False)), item_size(_to_item(record, 4))
    assert stored * 3 < plain


def test_a_text_holding_a_nul_stays_plain_beside_the_packed_ones() -> None:
    """Given an invoice whose ``refunds`` text holds a NUL (the blob's separator; JSON never writes
    one raw, but the field is a plain string), then that attribute is stored plain, the others
    packed, and the record reads back unchanged."""
    record = _invoice(2, refunds='{"note": "a\x00b"}')
    item = _to_item(record, 1)
    assert item["refunds"] == {"S": '{"note": "a\x00b"}'}
    assert PACKED_ATTRIBUTE in item and "summary" not in item
    assert _from_item(item) == (record, 1)
