"""Model validation for payments back (issue 7, design 3.6 to 3.8): the new ``SyncRecord`` fields,
``ledger_paid`` entries, the poll cursor and the connection's payments-back settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from pydantic import ValidationError

from invoice_sync.mapping import file as mf
from invoice_sync.mapping.check import check_payments_back
from invoice_sync.models.mapping import Connection
from invoice_sync.models.sync import DocumentKind, LedgerPaid, PollCursor, SyncRecord

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _invoice(**fields: object) -> SyncRecord:
    return SyncRecord(connection_id="acme", kind="invoice", source_id="in_1", **fields)  # type: ignore[arg-type]


def test_document_kinds_gain_ledger_payment_and_payout() -> None:
    """Given the kinds, then ledger_payment and payout are two (design two-way 3.8), and a kind
    outside them is still refused."""
    assert {"ledger_payment", "payout"} <= set(get_args(DocumentKind))
    assert SyncRecord(connection_id="acme", kind="payout", source_id="po_1").deposit_id is None
    with pytest.raises(ValidationError):
        SyncRecord(connection_id="acme", kind="deposit", source_id="po_1")  # type: ignore[arg-type]


def test_new_record_fields_default_so_old_records_validate() -> None:
    """Given a record built from the fields older code knew, then it is to_ledger, generation 0, and
    has no target, Stripe object or ledger_paid."""
    record = _invoice()
    assert record.direction == "to_ledger" and record.attempts_generation == 0
    assert record.source_target is None and record.stripe_object is None and record.ledger_paid is None


def test_direction_and_generation_are_checked() -> None:
    """Given a direction not in the two, or a negative generation, then validation refuses it, on
    construction and on assignment alike."""
    with pytest.raises(ValidationError):
        _invoice(direction="sideways")
    with pytest.raises(ValidationError):
        _invoice(attempts_generation=-1)
    record = _invoice()
    with pytest.raises(ValidationError):
        record.direction = "both"  # type: ignore[assignment]


def test_ledger_paid_accepts_its_stored_json_and_typed_entries() -> None:
    """Given ledger_paid as the store keeps it (a JSON string), then it validates into typed
    entries; an empty string is none; the total and the equal typed form agree."""
    stored = '{"ledger_payment#190:147":{"amount":4000,"at":"2026-12-01T09:30:00Z","state":"pending"}}'
    record = _invoice(ledger_paid=stored)
    assert record.ledger_paid == {"ledger_payment#190:147": LedgerPaid(amount=4000, state="pending", at=AT)}
    assert record.ledger_paid_total() == 4000
    assert _invoice(ledger_paid="").ledger_paid is None
    assert _invoice(ledger_paid="{}").ledger_paid is None and _invoice(ledger_paid={}).ledger_paid is None
    assert _invoice(ledger_paid={"k": {"amount": 1, "state": "done", "at": AT}}).ledger_paid_total() == 1


@pytest.mark.parametrize(
    "entry",
    [
        {"amount": 0, "state": "done", "at": "2026-12-01T09:30:00Z"},  # no money
        {"amount": -5, "state": "done", "at": "2026-12-01T09:30:00Z"},
        {"amount": 10.5, "state": "done", "at": "2026-12-01T09:30:00Z"},  # minor units are whole
        {"amount": 100, "state": "sent", "at": "2026-12-01T09:30:00Z"},
        {"amount": 100, "state": "done", "at": "2026-12-01T09:30:00"},  # no zone
        {"amount": 100, "state": "done"},  # no time
        {"amount": 100, "state": "done", "at": "2026-12-01T09:30:00Z", "extra": 1},
    ],
)
def test_ledger_paid_entries_are_validated(entry: dict[str, object]) -> None:
    """Given an entry with no or negative or fractional money, an unknown state, a naive or missing
    time, or an unknown field, then the record is refused."""
    with pytest.raises(ValidationError):
        _invoice(ledger_paid={"ledger_payment#1:2": entry})


def test_malformed_ledger_paid_json_is_a_validation_error() -> None:
    """Given a stored ledger_paid that is not JSON, then validation fails (not a bare JSON error)."""
    with pytest.raises(ValidationError):
        _invoice(ledger_paid="{not json")


def test_ledger_paid_pending_lists_only_recent_pending_entries() -> None:
    """Given entries pending 30 s ago, pending 10 min ago and done 5 s ago, when asked which are
    pending within 120 s, then only the first: an old pending entry is stranded, not in flight."""
    record = _invoice(
        ledger_paid={
            "ledger_payment#3:1": LedgerPaid(amount=100, state="pending", at=AT - timedelta(seconds=30)),
            "ledger_payment#2:1": LedgerPaid(amount=200, state="pending", at=AT - timedelta(minutes=10)),
            "ledger_payment#1:1": LedgerPaid(amount=300, state="done", at=AT - timedelta(seconds=5)),
        }
    )
    assert record.ledger_paid_pending(AT, timedelta(seconds=120)) == ["ledger_payment#3:1"]
    assert record.ledger_paid_pending(AT, timedelta(hours=1)) == ["ledger_payment#2:1", "ledger_payment#3:1"]
    assert record.ledger_paid_total() == 600


def test_poll_cursor_needs_an_aware_since() -> None:
    """Given a cursor, then its since must carry a zone, its revision starts at 0 and counts are
    not negative."""
    assert PollCursor(since=AT).revision == 0
    with pytest.raises(ValidationError):
        PollCursor(since=datetime(2026, 12, 1))
    with pytest.raises(ValidationError):
        PollCursor(since=AT, last_count=-1)


def test_connection_payments_back_defaults_off() -> None:
    """Given a connection as stored before payments back, then it is off with no start; a start
    must carry a zone."""
    connection = Connection(connection_id="acme", tenant_id="9130")
    assert connection.payments_back is False and connection.payments_back_since is None
    on = Connection(connection_id="acme", tenant_id="9130", payments_back=True, payments_back_since=AT)
    assert on.payments_back and on.payments_back_since == AT
    with pytest.raises(ValidationError):
        Connection(connection_id="acme", tenant_id="9130", payments_back_since=datetime(2026, 12, 1))


# --- the mapping file and `mappings check` ------------------------------------------------------

YAML_ON = (
    "settings:\n  customer_policy: auto_create\n  no_tax_code: NON\n"
    "  payments_back: true\n  payments_back_since: {since}\n"
)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T10:30:00+01:00", AT),
        ("'2026-12-01T09:30:00Z'", AT),
    ],
)
def test_mapping_file_carries_payments_back_in_both_forms(written: str, meant: datetime) -> None:
    """Given a YAML file turning payments back on from a date or a zoned time, when parsed, then the
    settings hold True and that moment in UTC; written as YAML or CSV and read again, it is equal,
    and applied to a connection it sets both fields."""
    document = mf.parse_yaml(YAML_ON.format(since=written))
    assert document.settings.payments_back is True
    assert document.settings.payments_back_since == meant
    for form in ("yaml", "csv"):
        assert mf.parse(mf.dump(document, form), f"m.{form}", form) == document  # type: ignore[arg-type]
    connection = document.settings.applied_to(Connection(connection_id="acme", tenant_id="9130"))
    assert connection.payments_back is True and connection.payments_back_since == meant
    assert mf.Settings.of(connection) == document.settings


def test_mapping_file_without_payments_back_leaves_it_off() -> None:
    """Given a file that does not mention payments back, then it is off with no start (a file is
    state: importing an older file turns the flow off, as it clears any other absent setting)."""
    document = mf.parse_yaml("settings:\n  customer_policy: auto_create\n  no_tax_code: NON\n")
    assert document.settings.payments_back is False and document.settings.payments_back_since is None
    assert "setting,payments_back,false" in mf.dump_csv(document)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("payments_back", "maybe", "must be true or false"),
        ("payments_back", "", "must be true or false"),
        ("payments_back_since", "yesterday", "not a date"),
        ("payments_back_since", "2026-12-01T09:30:00", "not a date"),  # no zone
    ],
)
def test_mapping_file_refuses_bad_payments_back_values(setting: str, value: str, message: str) -> None:
    """Given a payments-back setting that is not a boolean, or a start that is not a date or a zoned
    time, then the file is refused naming the line and the setting."""
    text = f"settings:\n  customer_policy: auto_create\n  no_tax_code: NON\n  {setting}: '{value}'\n"
    with pytest.raises(mf.MappingFileError) as caught:
        mf.parse_yaml(text, "m.yaml")
    assert str(caught.value).startswith(f"m.yaml:4: {setting}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("ledger", "writer", "webhook", "problems"),
    [
        ("quickbooks", True, True, []),
        ("quickbooks", False, True, ["Stripe writer key"]),
        ("freshbooks", True, False, ["freshbooks webhook key"]),
        ("xero", True, False, []),  # Xero's payments are polled
        ("xero", False, False, ["Stripe writer key"]),
    ],
)
def test_check_payments_back_needs_its_secrets(
    ledger: str, writer: bool, webhook: bool, problems: list[str]
) -> None:
    """Given payments back on, then a missing Stripe writer key is a problem, and so is a missing
    ledger webhook key except for Xero; with the flow off nothing is asked."""
    connection = Connection(connection_id="acme", tenant_id="1", ledger=ledger, payments_back=True)  # type: ignore[arg-type]
    found = check_payments_back(connection, writer_key=writer, webhook_keys=webhook)
    assert [p.source_value for p in found] == ["payments_back"] * len(problems)
    assert all(want in p.problem for p, want in zip(found, problems, strict=True))
    off = connection.model_copy(update={"payments_back": False})
    assert check_payments_back(off, writer_key=False, webhook_keys=False) == []
