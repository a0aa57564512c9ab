"""The ledgers' webhook parsers: fixtures -> exactly the events kept, with their tenants; and hostile
bodies -> ``UnparseableWebhook`` (a 400) and never another exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from invoice_sync.errors import InvalidPayload
from invoice_sync.ledgers.freshbooks import webhook as freshbooks
from invoice_sync.ledgers.quickbooks import webhook as quickbooks
from invoice_sync.ledgers.webhooks import MAX_EVENTS, LedgerEvent, UnparseableWebhook, freshbooks_form
from invoice_sync.ledgers.xero import webhook as xero
from invoice_sync.models.messages import LedgerEventMessage

EVENTS = Path(__file__).resolve().parents[1] / "events"
REALM = "9341453172471531"


def fixture(path: str) -> bytes:
    return (EVENTS / path).read_bytes()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- QuickBooks -----------------------------------------------------------------------------------


def test_qbo_legacy_keeps_payment_and_credit_memo() -> None:
    """Given the legacy eventNotifications fixture (Payment Create, Invoice Update, CreditMemo Void),
    parse yields the Payment and the CreditMemo with the realm as tenant, the operation lower-cased,
    lastUpdated as an aware time (its -0800 offset kept) and no event id; the Invoice is dropped."""
    assert quickbooks.parse(fixture("quickbooks/legacy_payment_create.json")) == [
        LedgerEvent(REALM, "payment", "190", "create", at("2026-12-02T10:15:42+00:00"), None),
        LedgerEvent(
            REALM,
            "credit_note",
            "212",
            "void",
            datetime(2026, 12, 2, 2, 15, 43, tzinfo=timezone(timedelta(hours=-8))),
            None,
        ),
    ]


def test_qbo_cloudevents_payment_created() -> None:
    """Given a CloudEvents array with one qbo.payment.created.v1, parse yields one payment event:
    tenant intuitaccountid, object intuitentityid, operation "create", event id the CloudEvent id."""
    assert quickbooks.parse(fixture("quickbooks/cloudevents_payment_created.json")) == [
        LedgerEvent(
            REALM,
            "payment",
            "190",
            "create",
            at("2026-12-02T10:15:42+00:00"),
            "5d0bd3c4-8a76-4f0e-9c1c-2f8e3b1a6d01",
        )
    ]


def test_qbo_cloudevents_mixed_entities_keep_payments_and_credit_memos_only() -> None:
    """Given invoice, payment, creditmemo, customer, payment (another realm) and invoice.emailed
    events, parse yields exactly the three payment/creditmemo events in body order, each with its
    own tenant (routing is per event, the app's webhooks being per app)."""
    events = quickbooks.parse(fixture("quickbooks/cloudevents_mixed_entities.json"))
    assert [(e.tenant_id, e.kind, e.object_id, e.operation, e.event_id) for e in events] == [
        (REALM, "payment", "190", "update", "0f6c2a3e-0002-4c1d-8f1e-000000000002"),
        (REALM, "credit_note", "212", "create", "0f6c2a3e-0003-4c1d-8f1e-000000000003"),
        ("4620816365166742110", "payment", "191", "delete", "0f6c2a3e-0005-4c1d-8f1e-000000000005"),
    ]
    assert events[2].changed_at == at("2026-12-02T10:17:30+00:00")


@pytest.mark.parametrize(
    ("kind_type", "expected"),
    [
        ("qbo.payment.voided.v1", ("payment", "void")),
        ("qbo.creditmemo.merged.v2", ("credit_note", "merge")),
        ("qbo.payment.emailed.v1", ("payment", "emailed")),
        ("qbo.payment.created.v1\n", None),  # a trailing newline is not the type ($ would allow it)
        ("qbo.Payment.created.v1", None),
        ("qbo.payment.created", None),
        ("qbo.paymentx.created.v1", None),
        ("xqbo.payment.created.v1", None),
        ("qbo.refundreceipt.created.v1", None),
    ],
)
def test_qbo_cloudevent_type_is_matched_exactly(kind_type: str, expected: tuple[str, str] | None) -> None:
    """Given a CloudEvent of a given type, only ^qbo\\.(payment|creditmemo)\\.([a-z]+)\\.v\\d+$ is kept,
    its verb in the present tense; anything else is dropped, not refused."""
    body = json.dumps(
        [{"specversion": "1.0", "id": "e1", "type": kind_type, "intuitentityid": "9", "intuitaccountid": "1"}]
    ).encode()
    events = quickbooks.parse(body)
    assert [(e.kind, e.operation) for e in events] == ([expected] if expected else [])


def test_qbo_empty_shapes_yield_nothing() -> None:
    """Given an empty CloudEvents array, or a legacy body with no notifications, parse yields [] (an
    authentic delivery with nothing for us gets its 200)."""
    assert quickbooks.parse(b"[]") == []
    assert quickbooks.parse(b'{"eventNotifications": []}') == []


def test_qbo_unreadable_time_is_none_not_a_refusal() -> None:
    """Given a kept event whose time is missing or not ISO 8601, changed_at is None: the message is a
    hint and the worker re-reads the payment, so the time is not worth a 400 that stalls Intuit."""
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": "1",
                    "dataChangeEvent": {
                        "entities": [
                            {"name": "Payment", "id": "1", "operation": "Create", "lastUpdated": "yesterday"},
                            {"name": "Payment", "id": "2", "operation": "Update", "lastUpdated": 17},
                            {"name": "Payment", "id": "3", "operation": "Update"},
                        ]
                    },
                }
            ]
        }
    ).encode()
    assert [e.changed_at for e in quickbooks.parse(body)] == [None, None, None]


QBO_HOSTILE: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe{}",
    b"NaN",
    b'{"eventNotifications": NaN}',
    b"[" * 100_000 + b"]" * 100_000,
    b"{}",
    b'{"other": []}',
    b"null",
    b"42",
    b'"eventNotifications"',
    b"[1, 2]",
    b'[{"id": "no specversion"}]',
    b'[{"specversion": "1.0"}, 3]',
    b'{"eventNotifications": {}}',
    b'{"eventNotifications": [1]}',
    b'{"eventNotifications": [{"realmId": 5, "dataChangeEvent": {"entities": []}}]}',
    b'{"eventNotifications": [{"realmId": "1"}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": "x"}}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [[]]}}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": 1}]}}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Payment"}]}}]}',
    b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": '
    b'[{"name": "Payment", "id": {"$gt": ""}, "operation": "Create"}]}}]}',
    b'{"eventNotifications": [{"realmId": "\\ud800", "dataChangeEvent": {"entities": []}}]}',
    b'{"eventNotifications": [{"realmId": "' + b"9" * 256 + b'", "dataChangeEvent": {"entities": []}}]}',
    b'[{"specversion": "1.0", "type": 7}]',
    b'[{"specversion": ["1.0"], "type": "qbo.payment.created.v1"}]',
    b'[{"specversion": "1.0", "type": "qbo.payment.created.v1", "intuitaccountid": "1", "id": "e"}]',
    b'[{"specversion": "1.0", "type": "qbo.payment.created.v1", "intuitentityid": "1", "id": "e"}]',
    b'[{"specversion": "1.0", "type": "qbo.payment.created.v1", "intuitentityid": 1, '
    b'"intuitaccountid": "1", "id": "e"}]',
    b'[{"specversion": "1.0", "type": "qbo.payment.created.v1", "intuitentityid": "1", '
    b'"intuitaccountid": "1"}]',
]


@pytest.mark.parametrize("body", QBO_HOSTILE, ids=range(len(QBO_HOSTILE)))
def test_qbo_hostile_body_is_unparseable_only(body: bytes) -> None:
    """Given a body that is not JSON, not either shape, or has wrong types, missing or oversized
    fields, a lone surrogate or a deep nest, parse raises UnparseableWebhook (an InvalidPayload,
    400) and nothing else escapes."""
    with pytest.raises(UnparseableWebhook) as caught:
        quickbooks.parse(body)
    assert isinstance(caught.value, InvalidPayload)
    assert caught.value.status_code == 400


def test_qbo_huge_arrays_are_refused_before_the_work() -> None:
    """Given more than MAX_EVENTS CloudEvents, or legacy entities over all notifications, parse
    refuses the body; exactly MAX_EVENTS is still read."""
    event = {"specversion": "1.0", "id": "e", "type": "qbo.payment.created.v1"}
    event |= {"intuitentityid": "1", "intuitaccountid": "1"}
    assert len(quickbooks.parse(json.dumps([event] * MAX_EVENTS).encode())) == MAX_EVENTS
    with pytest.raises(UnparseableWebhook, match="more than"):
        quickbooks.parse(json.dumps([event] * (MAX_EVENTS + 1)).encode())
    entity = {"name": "Invoice", "id": "1", "operation": "Update"}
    half = {"realmId": "1", "dataChangeEvent": {"entities": [entity] * (MAX_EVENTS // 2 + 1)}}
    with pytest.raises(UnparseableWebhook, match="more than"):
        quickbooks.parse(json.dumps({"eventNotifications": [half, half]}).encode())


# --- Xero -----------------------------------------------------------------------------------------


def test_xero_intent_to_receive_yields_no_event() -> None:
    """Given an Intent-to-Receive body (events [], sequences 0), parse yields []: a correctly signed
    one then gets its 200, which is the whole handshake."""
    assert xero.parse(fixture("xero/itr.json")) == []


def test_xero_invoice_and_credit_note_events_are_kept_contact_dropped() -> None:
    """Given INVOICE UPDATE, CONTACT UPDATE, CREDITNOTE CREATE and INVOICE CREATE, parse yields the
    two invoices and the credit note with their tenants, eventType lower-cased, eventDateUtc read as
    UTC, and event ids "{firstEventSequence}:{index in the body}" (the dropped contact counts)."""
    assert xero.parse(fixture("xero/invoice_events.json")) == [
        LedgerEvent(
            "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
            "invoice",
            "9b1f5c3a-2d4e-4f6a-8b7c-0d1e2f3a4b5c",
            "update",
            datetime(2026, 12, 2, 10, 15, 42, 123000, tzinfo=UTC),
            "76:0",
        ),
        LedgerEvent(
            "aef86862-2015-4b6b-88bc-d89032cecc50",
            "credit_note",
            "55d84274-a3da-4829-a7c0-0cab601b95cc",
            "create",
            datetime(2026, 12, 2, 0, 44, 9, 923000, tzinfo=UTC),
            "76:2",
        ),
        LedgerEvent(
            "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
            "invoice",
            "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d",
            "create",
            datetime(2026, 12, 2, 10, 20, 0, 500000, tzinfo=UTC),
            "76:3",
        ),
    ]


def test_xero_spec_examples_parse() -> None:
    """Given the two examples of shared/specs/xero/xero-webhooks.yaml (a CONTACT UPDATE; an
    ACCPAYCREDIT credit note CREATE), the contact is dropped and the credit note kept."""
    contact = {
        "events": [
            {
                "resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
                "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
                "eventDateUtc": "2024-06-21T01:15:39.902",
                "eventType": "UPDATE",
                "eventCategory": "CONTACT",
                "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
                "tenantType": "ORGANISATION",
            }
        ],
        "lastEventSequence": 1,
        "firstEventSequence": 1,
        "entropy": "S0m3r4Nd0mt3xt",
    }
    assert xero.parse(json.dumps(contact).encode()) == []
    credit = {
        "events": [
            {
                "resourceUrl": "https://api.xero.com/api.xro/2.0/CreditNotes/55d84274-a3da-4829-a7c0-0cab601b95cc",
                "resourceId": "55d84274-a3da-4829-a7c0-0cab601b95cc",
                "tenantId": "aef86862-2015-4b6b-88bc-d89032cecc50",
                "tenantType": "ORGANISATION",
                "eventCategory": "CREDITNOTE",
                "eventType": "CREATE",
                "eventDateUtc": "2025-12-02T00:44:09.923",
                "data": {"Type": "ACCPAYCREDIT", "Status": "DRAFT"},
            }
        ],
        "firstEventSequence": 76,
        "lastEventSequence": 76,
        "entropy": "FXNGWLCCGVANWHKILRUB",
    }
    [event] = xero.parse(json.dumps(credit).encode())
    assert (event.kind, event.object_id, event.event_id) == (
        "credit_note",
        "55d84274-a3da-4829-a7c0-0cab601b95cc",
        "76:0",
    )


def _xero(**overrides: Any) -> bytes:
    body: dict[str, Any] = {"events": [], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "E"}
    body.update(overrides)
    return json.dumps(body).encode()


INVOICE = {"eventCategory": "INVOICE", "eventType": "UPDATE", "resourceId": "r", "tenantId": "t"}

XERO_HOSTILE: list[bytes] = [
    b"",
    b"<xml/>",
    b"[]",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"firstEventSequence": 1, "lastEventSequence": 1, "entropy": "E"}',
    _xero(events={}),
    _xero(events=None),
    _xero(events=[1]),
    _xero(events=[[]]),
    _xero(firstEventSequence="1"),
    _xero(firstEventSequence=True),
    _xero(firstEventSequence=-1),
    _xero(firstEventSequence=2**31),
    _xero(firstEventSequence=1.5),
    _xero(lastEventSequence=None),
    _xero(entropy=None),
    _xero(events=[{"eventCategory": 1}]),
    _xero(events=[{**INVOICE, "resourceId": None}]),
    _xero(events=[{**INVOICE, "tenantId": ["t"]}]),
    _xero(events=[{**INVOICE, "eventType": {}}]),
    _xero(events=[{**INVOICE, "resourceId": ""}]),
    _xero(events=[INVOICE] * (MAX_EVENTS + 1)),
]


@pytest.mark.parametrize("body", XERO_HOSTILE, ids=range(len(XERO_HOSTILE)))
def test_xero_hostile_body_is_unparseable_only(body: bytes) -> None:
    """Given a body that is not JSON, not Xero's object, has wrong or missing fields (a bool for a
    sequence, a list for a tenant), or more than MAX_EVENTS events, parse raises
    UnparseableWebhook and nothing else."""
    with pytest.raises(UnparseableWebhook):
        xero.parse(body)


def test_xero_dropped_categories_need_no_fields() -> None:
    """Given SUBSCRIPTION and CONTACT events with none of the fields a kept event needs, parse yields
    [] without refusing: only what is kept is checked."""
    assert xero.parse(_xero(events=[{"eventCategory": "SUBSCRIPTION"}, {"eventCategory": "CONTACT"}])) == []


# --- FreshBooks -----------------------------------------------------------------------------------


def test_freshbooks_payment_create() -> None:
    """Given the SDK docs' payment.create delivery, parse yields one payment event for the account,
    operation "create", with no time or event id (FreshBooks sends neither)."""
    form = freshbooks_form(fixture("freshbooks/payment_create.form"))
    assert freshbooks.parse(form) == [LedgerEvent("6BApk", "payment", "1234567", "create", None, None)]
    assert not freshbooks.is_verify(form)


@pytest.mark.parametrize("name", ["payment.update", "payment.delete"])
def test_freshbooks_other_payment_events(name: str) -> None:
    """Given payment.update and payment.delete, each is a payment event with its action."""
    [event] = freshbooks.parse({"name": name, "object_id": "9", "account_id": "A"})
    assert (event.kind, event.operation) == ("payment", name.split(".")[1])


@pytest.mark.parametrize("name", ["invoice.create", "payment", "payment.created", "credit_note.create", ""])
def test_freshbooks_other_names_are_dropped(name: str) -> None:
    """Given another event name (an invoice, a bare parent, a near miss), parse yields [] and checks
    nothing else; an empty name is refused (there is no event without one)."""
    if not name:
        with pytest.raises(UnparseableWebhook):
            freshbooks.parse({"name": name})
        return
    assert freshbooks.parse({"name": name}) == []


def test_freshbooks_callback_verify_carries_the_verifier_as_a_secret() -> None:
    """Given the callback.verify delivery, parse yields one callback_verify event: object id the
    callback id, the verifier as a SecretStr that no repr shows, and its queue message carries it."""
    form = freshbooks_form(fixture("freshbooks/callback_verify.form"))
    assert freshbooks.is_verify(form)
    [event] = freshbooks.parse(form)
    assert (event.tenant_id, event.kind, event.object_id, event.operation) == (
        "6BApk",
        "callback_verify",
        "2208",
        "verify",
    )
    assert isinstance(event.verifier, SecretStr)
    assert event.verifier.get_secret_value() == "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"
    assert "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd" not in repr(event)
    message = event.message("acme-fb", "freshbooks")
    back = LedgerEventMessage.from_queue_body(message.to_queue_body())
    assert back.verifier is not None
    assert back.verifier.get_secret_value() == "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"


def test_freshbooks_callback_verify_without_account_has_no_tenant() -> None:
    """Given a callback.verify without account_id (its field names are not confirmed), the event's
    tenant is None: the intake routes a verify by its path and its pending registration."""
    [event] = freshbooks.parse({"name": "callback.verify", "object_id": "7", "verifier": "v"})
    assert event.tenant_id is None


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"name": "payment.create", "account_id": "A"},
        {"name": "payment.create", "object_id": "1"},
        {"name": "payment.create", "object_id": "", "account_id": "A"},
        {"name": "payment.create", "object_id": "1" * 256, "account_id": "A"},
        {"name": "callback.verify", "object_id": "7"},
        {"name": "callback.verify", "object_id": "7", "verifier": ""},
        {"name": "callback.verify", "verifier": "v"},
    ],
)
def test_freshbooks_form_missing_what_it_needs_is_unparseable(form: dict[str, str]) -> None:
    """Given a payment event without its object or account, or a verify without its code or callback
    id, parse raises UnparseableWebhook (never KeyError)."""
    with pytest.raises(UnparseableWebhook):
        freshbooks.parse(form)


@pytest.mark.parametrize("body", [b"name", b"a=1&&b=2", b"name=%ff", b"\xff", b"&".join([b"f=1"] * 101)])
def test_freshbooks_body_that_is_no_form_is_unparseable(body: bytes) -> None:
    """Given a body that is no form (read unverified, as the intake reads a callback.verify), the
    form reader raises UnparseableWebhook and nothing else."""
    with pytest.raises(UnparseableWebhook):
        freshbooks_form(body)


# --- events -> queue messages ---------------------------------------------------------------------


def test_event_becomes_a_message_that_round_trips_through_json() -> None:
    """Given a parsed QuickBooks event, its message for a routed connection carries every field, and
    model_dump_json / model_validate_json give back an equal message."""
    [event] = quickbooks.parse(fixture("quickbooks/cloudevents_payment_created.json"))
    message = event.message("acme-qbo", "quickbooks")
    assert message == LedgerEventMessage(
        connection_id="acme-qbo",
        ledger="quickbooks",
        kind="payment",
        object_id="190",
        operation="create",
        changed_at=at("2026-12-02T10:15:42+00:00"),
        event_id="5d0bd3c4-8a76-4f0e-9c1c-2f8e3b1a6d01",
    )
    assert LedgerEventMessage.model_validate_json(message.model_dump_json()) == message
    assert LedgerEventMessage.from_queue_body(message.to_queue_body()) == message


# --- any JSON at all ------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_keys = st.sampled_from(
    [
        "eventNotifications", "realmId", "dataChangeEvent", "entities", "name", "id", "operation",
        "lastUpdated", "specversion", "type", "intuitentityid", "intuitaccountid", "time", "events",
        "firstEventSequence", "lastEventSequence", "entropy", "eventCategory", "eventType",
        "resourceId", "tenantId", "eventDateUtc", "Payment", "INVOICE", "qbo.payment.created.v1",
    ]
)  # fmt: skip
_values = st.recursive(
    _scalars | _keys,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_any_json_is_events_or_unparseable(document: Any) -> None:
    """Given any JSON built from the fields the parsers read (right names, any types, any nesting),
    the QuickBooks and Xero parsers return events with string fields or raise UnparseableWebhook:
    no TypeError, KeyError or AttributeError escapes."""
    body = json.dumps(document).encode()
    for parse in (quickbooks.parse, xero.parse):
        try:
            events = parse(body)
        except UnparseableWebhook:
            continue
        for event in events:
            assert isinstance(event.tenant_id, str)
            assert isinstance(event.object_id, str)
            assert isinstance(event.operation, str)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "object_id", "account_id", "verifier"]), st.text(max_size=6)))
def test_any_form_is_events_or_unparseable(form: dict[str, str]) -> None:
    """Given any form of FreshBooks' field names with any values, parse returns at most one event or
    raises UnparseableWebhook."""
    try:
        events = freshbooks.parse(form)
    except UnparseableWebhook:
        return
    assert len(events) <= 1
