"""Any billing system: the generic webhook through intake and push into QuickBooks, with the same
guarantees as Stripe (signature, validation, archive, queue, exactly one document, payments)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from invoice_sync.models.mapping import Connection, MappingRule, RuleKind
from invoice_sync.models.tokens import TokenSet
from invoice_sync.sources import generic
from invoice_sync.store.mappings import MappingsStore
from tests.integration.conftest import Harness

EVENTS = Path(__file__).resolve().parents[1] / "events" / "generic"
REALM = "9130355000000077"
SECRET = "generic-webhook-secret"


@pytest.fixture
def inhouse(harness: Harness) -> Harness:
    """A second connection: an in-house billing system posting the generic schema, into its own
    QBO company."""
    harness.sandbox.seed_company(
        REALM, client_id="gen", client_secret="gen-secret", refresh_token="gen-refresh"
    )
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_connection(Connection(connection_id="inhouse", source="generic", tenant_id=REALM))
    for source, item in (("consulting-hour", "1"), ("support-monthly", "2")):
        store.put_rule("inhouse", MappingRule(kind=RuleKind.PRODUCT, source_value=source, ledger_id=item))
    store.put_rule("inhouse", MappingRule(kind=RuleKind.TAX_RATE, source_value="us-ca-8.25", ledger_id="TAX"))
    secrets = harness.secrets()
    secrets.put_webhook_secrets("inhouse", [SECRET])
    secrets.save_ledger_tokens(
        "inhouse",
        TokenSet.model_validate(
            {"client_id": "gen", "client_secret": "gen-secret", "refresh_token": "gen-refresh"}
        ),
    )
    return harness


def _post(harness: Harness, name: str, *, secret: str = SECRET) -> tuple[int, dict[str, object]]:
    body = (EVENTS / name).read_bytes()
    header = generic.signature_header(body, [secret], int(time.time()))
    return harness.post(
        body, headers={generic.SIGNATURE_HEADER: header}, connection="inhouse", source="generic"
    )


def test_invoice_and_two_partial_payments_from_a_generic_sender(inhouse: Harness) -> None:
    """Given an open invoice, then a partial and a final payment posted by a generic sender, then
    QBO holds one invoice for the sender's total and two payments that settle it."""
    for name in (
        "a1_invoice.upserted.open.json",
        "a2_payment.recorded.partial.json",
        "a3_payment.recorded.paid.json",
    ):
        status, answer = _post(inhouse, name)
        assert (status, answer["outcome"]) == (200, "queued")
        assert inhouse.drain() == 0
    (invoice,) = inhouse.sandbox.documents(REALM, "Invoice")
    assert invoice["DocNumber"] == "INV-1001"
    assert invoice["TotalAmt"] == Decimal("1677.86")
    assert invoice["Balance"] == Decimal("0.00")
    payments = inhouse.sandbox.documents(REALM, "Payment")
    assert sum(p["TotalAmt"] for p in payments) == Decimal("1677.86")
    assert len(payments) == 2


def test_generic_body_signed_with_the_wrong_secret_is_401(inhouse: Harness) -> None:
    """Given a body signed with the generic recipe but the wrong secret, then 401 and nothing queued."""
    status, _ = _post(inhouse, "a1_invoice.upserted.open.json", secret="not-the-secret")
    assert status == 401
    assert inhouse.queued() == []


def test_unknown_field_is_400_naming_it(inhouse: Harness) -> None:
    """Given a correctly signed body with a misspelled field, then 400 naming the field (the
    schema is strict so a sender's typo is caught, not silently dropped)."""
    event = json.loads((EVENTS / "a1_invoice.upserted.open.json").read_bytes())
    event["data"]["invoice"]["totl"] = 1
    body = json.dumps(event).encode()
    header = generic.signature_header(body, [SECRET], int(time.time()))
    status, answer = inhouse.post(
        body, headers={generic.SIGNATURE_HEADER: header}, connection="inhouse", source="generic"
    )
    assert status == 400
    assert "totl" in str(answer["error"])
