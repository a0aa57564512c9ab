"""Credit notes from any billing system: the generic webhook's credit_note events through intake and
push into QuickBooks, as for Stripe (created on the invoice's customer and items, applied to the
invoice, a void of applied credit parked for a person)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from invoice_sync.models.mapping import Connection, MappingRule, RuleKind
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.models.tokens import TokenSet
from invoice_sync.sources import generic
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from tests.integration.conftest import Harness

EVENTS = Path(__file__).resolve().parents[1] / "events" / "generic"
REALM = "9130355000000077"
SECRET = "generic-webhook-secret"
CONNECTION = "inhouse"
CREDIT_NOTE = "cn_1001_01"


@pytest.fixture
def inhouse(harness: Harness) -> Harness:
    """A second connection: an in-house billing system posting the generic schema, into its own
    QBO company (as in test_generic_source)."""
    harness.sandbox.seed_company(
        REALM, client_id="gen", client_secret="gen-secret", refresh_token="gen-refresh"
    )
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_connection(Connection(connection_id=CONNECTION, source="generic", tenant_id=REALM))
    for source, item in (("consulting-hour", "1"), ("support-monthly", "2")):
        store.put_rule(CONNECTION, MappingRule(kind=RuleKind.PRODUCT, source_value=source, ledger_id=item))
    store.put_rule(
        CONNECTION, MappingRule(kind=RuleKind.TAX_RATE, source_value="us-ca-8.25", ledger_id="TAX")
    )
    secrets = harness.secrets()
    secrets.put_webhook_secrets(CONNECTION, [SECRET])
    secrets.save_ledger_tokens(
        CONNECTION,
        TokenSet.model_validate(
            {"client_id": "gen", "client_secret": "gen-secret", "refresh_token": "gen-refresh"}
        ),
    )
    return harness


def _post(harness: Harness, name: str) -> str:
    """Posts a fixture signed as the sender would; returns intake's outcome."""
    body = (EVENTS / name).read_bytes()
    header = generic.signature_header(body, [SECRET], int(time.time()))
    status, answer = harness.post(
        body, headers={generic.SIGNATURE_HEADER: header}, connection=CONNECTION, source="generic"
    )
    assert status == 200
    return str(answer["outcome"])


def _sync(harness: Harness, *names: str) -> None:
    """Posts each fixture and runs push until the queue is empty, without a failure on the way."""
    for name in names:
        assert _post(harness, name) == "queued"
        assert harness.drain() == 0


def _record(harness: Harness, source_id: str) -> SyncRecord | None:
    store = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    return store.get(CONNECTION, "credit_note", source_id)[0]


INVOICE = "a1_invoice.upserted.open.json"
ISSUED = "f1_credit_note.upserted.json"
VOIDED = "f2_credit_note.voided.json"


def test_credit_note_is_created_on_the_invoice_line_item_and_applied(inhouse: Harness) -> None:
    """Given INV-1001 open in QBO, when the sender posts a credit note for one consulting hour of
    line_1 (150.00 + 12.38 tax), then QBO holds a CreditMemo of 162.38 on the invoice's customer and
    on line_1's item, applied to the invoice: its balance drops from 1677.86 to 1515.48."""
    _sync(inhouse, INVOICE, ISSUED)
    (memo,) = inhouse.sandbox.documents(REALM, "CreditMemo")
    (invoice,) = inhouse.sandbox.documents(REALM, "Invoice")
    assert memo["DocNumber"] == "INV-1001-CN-01"
    assert memo["TotalAmt"] == Decimal("162.38")
    assert memo["CustomerRef"]["value"] == invoice["CustomerRef"]["value"]
    sales = [line for line in memo["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [line["SalesItemLineDetail"]["ItemRef"]["value"] for line in sales] == ["1"]
    assert memo["RemainingCredit"] == Decimal("0.00")
    assert invoice["Balance"] == Decimal("1515.48")
    record = _record(inhouse, CREDIT_NOTE)
    assert record is not None
    assert (record.status, record.ledger_id, record.ledger_total) == (SyncStatus.SYNCED, memo["Id"], 16238)


def test_same_credit_note_posted_twice_is_one_credit_memo(inhouse: Harness) -> None:
    """Given the credit note already synced, when the sender posts it again (a retry with the same
    event id is queued again), then push finds the snapshot synced and nothing more is written to QBO."""
    _sync(inhouse, INVOICE, ISSUED)
    assert _post(inhouse, ISSUED) == "queued"
    assert inhouse.drain() == 0
    assert len(inhouse.sandbox.documents(REALM, "CreditMemo")) == 1
    (invoice,) = inhouse.sandbox.documents(REALM, "Invoice")
    assert invoice["Balance"] == Decimal("1515.48")


def test_voiding_an_applied_credit_note_is_parked_for_a_person(inhouse: Harness) -> None:
    """Given the credit note applied to INV-1001, when credit_note.voided arrives, then it is parked
    ("credit note applied in the ledger": undoing an application is a bookkeeping decision), one
    alert is sent, and QBO is left as it was."""
    _sync(inhouse, INVOICE, ISSUED, VOIDED)
    record = _record(inhouse, CREDIT_NOTE)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "applied" in (record.last_error or "")
    (alert,) = inhouse.alerts()
    assert "credit note applied in the ledger" in alert["subject"]
    (memo,) = inhouse.sandbox.documents(REALM, "CreditMemo")
    assert memo["TotalAmt"] == Decimal("162.38")
    (invoice,) = inhouse.sandbox.documents(REALM, "Invoice")
    assert invoice["Balance"] == Decimal("1515.48")


def test_credit_note_before_its_invoice_waits_for_it(inhouse: Harness) -> None:
    """Given the credit note posted before its invoice (the sender's queue reorders), then push
    sends it back to the queue without parking or alerting, and it syncs once the invoice is in."""
    assert _post(inhouse, ISSUED) == "queued"
    assert inhouse.drain(rounds=1) == 1
    assert inhouse.sandbox.documents(REALM, "CreditMemo") == []
    assert inhouse.alerts() == []
    assert _post(inhouse, INVOICE) == "queued"
    inhouse.drain()  # the credit note may be tried once more before the invoice is in
    assert inhouse.queued() == []
    (memo,) = inhouse.sandbox.documents(REALM, "CreditMemo")
    assert memo["TotalAmt"] == Decimal("162.38")
    (invoice,) = inhouse.sandbox.documents(REALM, "Invoice")
    assert invoice["Balance"] == Decimal("1515.48")
    assert inhouse.alerts() == []
