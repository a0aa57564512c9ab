"""Push on moto against the QuickBooks sandbox over HTTP: exactly one ledger document per source
document, whatever the duplicates, the order, the crashes and the ledger's refusals."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_sync import bootstrap
from invoice_sync.ledgers.http import oauth_refresher
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.models.mapping import MappingRule, RuleKind
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.summary import DocumentSummary
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sources import stripe
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from tests.integration.conftest import Harness, fixture_bytes

INVOICE = "in_1QaCurrentAcme01"
PAYMENT = "inpay_1QaAcmePay0001"


def _sync(harness: Harness, *prefixes: str) -> int:
    for prefix in prefixes:
        status, _ = harness.deliver(prefix)
        assert status == 200
    return harness.drain()


def test_finalized_then_paid_gives_one_invoice_and_one_payment(harness: Harness) -> None:
    """Given invoice.finalized then invoice.paid, then QBO holds one customer, one invoice with the
    source's lines, tax and total to the cent, and one payment that leaves no balance."""
    assert _sync(harness, "a1") == 0
    assert _sync(harness, "a2") == 0
    (customer,) = harness.documents("Customer")
    (invoice,) = harness.documents("Invoice")
    (payment,) = harness.documents("Payment")
    assert customer["DisplayName"] == "Acme Corp"
    assert invoice["DocNumber"] == "ACME-0001"
    assert invoice["TotalAmt"] == Decimal("1677.86")
    assert invoice["TxnTaxDetail"]["TotalTax"] == Decimal("127.87")
    sales = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["SalesItemLineDetail"]["ItemRef"]["value"], line["Amount"]) for line in sales] == [
        ("1", Decimal("1500.00")),
        ("3", Decimal("49.99")),
    ]
    assert invoice["Balance"] == Decimal("0.00")
    assert payment["TotalAmt"] == Decimal("1677.86")
    assert payment["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice["Id"]
    record = harness.record("invoice", INVOICE)
    assert record is not None
    assert (record.status, record.ledger_id, record.ledger_total, record.mapping_version) == (
        SyncStatus.SYNCED,
        invoice["Id"],
        167786,
        1,
    )
    payment_record = harness.record("payment", PAYMENT)
    assert payment_record is not None
    assert (payment_record.status, payment_record.ledger_id) == (SyncStatus.SYNCED, payment["Id"])


def test_paid_snapshot_alone_creates_invoice_and_payment(harness: Harness) -> None:
    """Given only invoice.paid arrives (finalized was lost upstream), then both documents exist."""
    _sync(harness, "a2")
    assert len(harness.documents("Invoice")) == 1
    assert len(harness.documents("Payment")) == 1


def test_redelivered_snapshots_change_nothing(harness: Harness) -> None:
    """Given the same snapshots delivered under new event ids (payment_succeeded after paid) and the
    same SQS message twice, then no ledger write happens beyond the first sync."""
    _sync(harness, "a1", "a2")
    writes_before = [r for r in harness.sandbox.request_log if r[0] == "POST"]
    _sync(harness, "a3")
    # The same message delivered twice by SQS (at-least-once).
    (message,) = _messages_of(harness, "a3")
    _send_raw(harness, message)
    _send_raw(harness, message)
    assert harness.drain() == 0
    writes_after = [r for r in harness.sandbox.request_log if r[0] == "POST"]
    assert writes_after == writes_before
    assert len(harness.documents("Invoice")) == 1
    assert len(harness.documents("Payment")) == 1


def _messages_of(harness: Harness, prefix: str) -> list[dict[str, Any]]:
    event = stripe.parse_event(fixture_bytes(prefix))
    assert event is not None
    kind = "credit_note" if event.credit_note else "invoice"
    return [
        {
            "connection_id": "acme",
            "source": "stripe",
            "event_id": event.event_id,
            "event_type": event.event_type,
            "version": event.version,
            "archive_key": "raw/none",
            kind: event.document.model_dump(mode="json"),
        }
    ]


def _send_raw(harness: Harness, message: dict[str, Any]) -> None:
    harness.client("sqs").send_message(
        QueueUrl=harness.resources.sync_queue_url, MessageBody=json.dumps(message)
    )


def test_out_of_order_older_snapshot_is_skipped(harness: Harness) -> None:
    """Given paid is pushed before finalized (SQS reorders), then the older finalized snapshot is
    skipped by the version guard and the ledger keeps the paid state."""
    _sync(harness, "a2")
    writes_before = len([r for r in harness.sandbox.request_log if r[0] == "POST"])
    _sync(harness, "a1")
    assert len([r for r in harness.sandbox.request_log if r[0] == "POST"]) == writes_before
    (invoice,) = harness.documents("Invoice")
    assert invoice["Balance"] == Decimal("0.00")


def test_updated_snapshot_updates_the_ledger_invoice(harness: Harness) -> None:
    """Given a synced invoice, when invoice.updated changes its memo, then the same QBO invoice is
    updated (SyncToken advances) and no second invoice appears."""
    _sync(harness, "a1")
    (before,) = harness.documents("Invoice")
    _sync(harness, "a4")
    (after,) = harness.documents("Invoice")
    assert after["Id"] == before["Id"]
    assert int(after["SyncToken"]) == int(before["SyncToken"]) + 1
    assert after["CustomerMemo"]["value"] != before.get("CustomerMemo", {}).get("value")


def test_edited_in_ledger_meanwhile_stale_object_is_recovered(harness: Harness) -> None:
    """Given someone edits the invoice in QBO (SyncToken moves), when the source changes, then the
    5010 Stale Object answer is recovered by re-reading, and the source snapshot wins."""
    _sync(harness, "a1")
    (invoice,) = harness.documents("Invoice")
    token = _access_token(harness)
    response = httpx.post(
        f"{harness.sandbox.base_url}/v3/company/{harness.realm_id}/invoice",
        params={"minorversion": "75"},
        json={
            "Id": invoice["Id"],
            "SyncToken": invoice["SyncToken"],
            "sparse": True,
            "PrivateNote": "edited",
        },
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert response.status_code == 200
    _sync(harness, "a4")
    (after,) = harness.documents("Invoice")
    assert int(after["SyncToken"]) == int(invoice["SyncToken"]) + 2
    codes = [status for method, _, status in harness.sandbox.request_log if method == "POST"]
    assert 400 in codes  # the 5010 answer was seen and recovered from
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.SYNCED


def _access_token(harness: Harness) -> str:
    """A token for the test's own QBO calls, taken the way push takes one (lease, rotation, save)."""
    manager = TokenManager(
        "acme",
        harness.secrets(),
        SyncStateStore(harness.resources.sync_table, harness.client("dynamodb")),
        oauth_refresher(httpx.Client(), f"{harness.sandbox.base_url}/oauth2/v1/tokens/bearer", name="QBO"),
    )
    return manager.access_token()


@pytest.mark.parametrize("forget_request_ids", [False, True], ids=["replay-kept", "replay-expired"])
def test_crash_between_ledger_create_and_state_write(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, forget_request_ids: bool
) -> None:
    """Given push dies after QBO created the invoice but before the sync record says so, when the
    message is retried, then the recorded intent sends the retry to a DocNumber lookup first, which
    adopts the invoice whether or not QBO still remembers the requestid: still exactly one invoice.
    (A retry of the same requestid inside one attempt is test_lost_response_is_not_a_second_invoice.)"""
    original = SyncStateStore.save
    calls = {"n": 0}

    def crash_after_intent(self: SyncStateStore, record: Any, revision: int) -> int:
        calls["n"] += 1
        if record.kind == "invoice" and record.status is SyncStatus.SYNCED and calls["n"] <= 2:
            raise RuntimeError("Lambda timed out")
        return original(self, record, revision)

    monkeypatch.setattr(SyncStateStore, "save", crash_after_intent)
    harness.deliver("a1")
    assert harness.drain(rounds=1) == 1  # the first attempt died
    assert len(harness.documents("Invoice")) == 1
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.PENDING and record.idempotency_key
    if forget_request_ids:
        harness.sandbox.forget_request_ids(harness.realm_id)
    monkeypatch.setattr(SyncStateStore, "save", original)
    assert harness.drain() == 0
    assert len(harness.documents("Invoice")) == 1
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.SYNCED


def test_lost_response_is_not_a_second_invoice(harness: Harness) -> None:
    """Given QBO commits the invoice but the response is lost (502), then the in-place retry with
    the same requestid gets the original answer: one invoice."""
    harness.sandbox.lose_responses(harness.realm_id, 1)
    assert _sync(harness, "a1") == 0
    assert len(harness.documents("Invoice")) == 1


def test_429_burst_is_retried_in_place(harness: Harness) -> None:
    """Given QBO answers 429 three times, then push backs off and succeeds in the same invocation."""
    harness.sandbox.inject_status(harness.realm_id, 429, count=3)
    assert _sync(harness, "a1") == 0
    assert len(harness.documents("Invoice")) == 1


def test_429_beyond_in_place_retries_goes_back_to_the_queue(harness: Harness) -> None:
    """Given QBO keeps throttling past the in-place retries, then the message fails (back to SQS,
    no park, no alert) and a later delivery completes the sync."""
    harness.sandbox.inject_status(harness.realm_id, 429, count=6)
    harness.deliver("a1")
    failures = harness.drain()
    assert failures >= 1
    assert len(harness.documents("Invoice")) == 1
    assert harness.alerts() == []
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.SYNCED


def test_expired_access_token_refreshes_and_saves_the_rotated_refresh_token(harness: Harness) -> None:
    """Given the access token is refused (401), then push refreshes once, saves the rotated refresh
    token to Secrets Manager, and the old refresh token is dead at QBO. (That the save comes before
    the token's first use is proven on the TokenManager in tests/unit/test_oauth.py.)"""
    _sync(harness, "a1")
    first = harness.secrets().ledger_tokens("acme").refresh_token.get_secret_value()
    assert first != harness.company.credentials.refresh_token  # the first refresh already rotated it
    harness.sandbox.expire_access_tokens(harness.realm_id)
    assert _sync(harness, "a4") == 0
    second = harness.secrets().ledger_tokens("acme").refresh_token.get_secret_value()
    assert second != first
    dead = httpx.post(
        f"{harness.sandbox.base_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": first},
        auth=(harness.company.credentials.client_id, harness.company.credentials.client_secret),
    )
    assert dead.json()["error"] == "invalid_grant"


def test_second_worker_reuses_a_token_another_worker_refreshed(harness: Harness) -> None:
    """Given two warm workers, when one refreshes (rotating the refresh token), then the other, on
    its next 401, takes the stored token instead of refreshing with the dead refresh token."""
    _sync(harness, "a1")
    worker_a = bootstrap.push()
    bootstrap.reset()
    _sync(harness, "a4")  # worker B (a fresh push service) syncs the update
    harness.sandbox.expire_access_tokens(harness.realm_id)
    bootstrap.reset()
    _sync(harness, "a2")  # worker C refreshes after the expiry; the refresh token rotates
    tokens_before = harness.secrets().ledger_tokens("acme").refresh_token.get_secret_value()
    # Worker A still holds the expired token in memory and now gets a 401.
    message = SyncMessage.model_validate(_messages_of(harness, "a3")[0])
    result = worker_a.handle(message)
    assert result.outcome.value in {"unchanged", "synced"}
    assert harness.secrets().ledger_tokens("acme").refresh_token.get_secret_value() == tokens_before


def test_revoked_refresh_token_parks_the_connections_work_with_one_alert(harness: Harness) -> None:
    """Given the company revoked the app (invalid_grant), then every invoice that arrives is parked
    as 'failed' with a reason that says to reconnect, and the connection gets one alert (not one per
    invoice or per redelivery) that says how to reconnect."""
    harness.sandbox.revoke_refresh_token(harness.realm_id)
    _sync(harness, "a1")
    record = harness.record("invoice", INVOICE)
    assert record is not None
    assert record.status is SyncStatus.FAILED
    assert "reconnect" in (record.last_error or "")
    _sync(harness, "a4", "d3")
    other = harness.record("invoice", "in_1QdJpy01")
    assert other is not None and other.status is SyncStatus.FAILED
    (alert,) = harness.alerts()
    assert alert["subject"] == "invoice-sync: connection acme: ledger authorisation revoked"
    assert "Reconnect the ledger" in alert["message"]


def test_unmapped_product_parks_alerts_once_and_syncs_after_mapping(harness: Harness) -> None:
    """Given an invoice whose product has no mapping, then it is parked 'needs_mapping' naming the
    product, one alert is raised (not one per retry), and once the mapping exists a redrive syncs it."""
    _sync(harness, "c1")
    record = harness.record("invoice", "in_1QcUnmapped01")
    assert record is not None
    assert record.status is SyncStatus.NEEDS_MAPPING
    assert "prod_Mystery" in (record.last_error or "")
    _send_raw_from_fixture(harness, "c1")
    harness.drain()
    alerts = harness.alerts()
    assert len(alerts) == 1
    assert "prod_Mystery" in alerts[0]["message"]
    assert harness.documents("Invoice") == []
    parked = list(
        SyncStateStore(harness.resources.sync_table, harness.client("dynamodb")).needing_attention(
            "acme", SyncStatus.NEEDS_MAPPING
        )
    )
    assert [r.source_id for r in parked] == ["in_1QcUnmapped01"]

    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.PRODUCT, source_value="prod_Mystery", ledger_id="2"))
    store.bump_version("acme")
    bootstrap.reset()  # a new mapping version is read by the next cold or cache-expired worker
    _send_raw_from_fixture(harness, "c1")
    assert harness.drain() == 0
    (invoice,) = harness.documents("Invoice")
    assert invoice["DocNumber"] == "GAMMA-0007"
    record = harness.record("invoice", "in_1QcUnmapped01")
    assert record is not None
    assert (record.status, record.mapping_version) == (SyncStatus.SYNCED, 2)
    assert (
        list(
            SyncStateStore(harness.resources.sync_table, harness.client("dynamodb")).needing_attention(
                "acme", SyncStatus.NEEDS_MAPPING
            )
        )
        == []
    )


def _send_raw_from_fixture(harness: Harness, prefix: str) -> None:
    _send_raw(harness, _messages_of(harness, prefix)[0])


def test_foreign_invoice_with_the_same_number_is_parked_not_adopted(harness: Harness) -> None:
    """Given QBO already has an invoice ACME-0001 that invoice-sync did not create (6140 on create),
    then the source invoice is parked with the reason, and the stranger's invoice is left alone."""
    token = _access_token(harness)
    created = httpx.post(
        f"{harness.sandbox.base_url}/v3/company/{harness.realm_id}/invoice",
        params={"minorversion": "75"},
        json={
            "CustomerRef": {"value": _customer_id(harness, token)},
            "DocNumber": "ACME-0001",
            "Line": [
                {
                    "Amount": 10,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}},
                }
            ],
        },
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert created.status_code == 200, created.text
    _sync(harness, "a1")
    record = harness.record("invoice", INVOICE)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "duplicate document number" in (record.last_error or "")
    assert [i["TotalAmt"] for i in harness.documents("Invoice")] == [Decimal("10.00")]


def _customer_id(harness: Harness, token: str) -> str:
    response = httpx.post(
        f"{harness.sandbox.base_url}/v3/company/{harness.realm_id}/customer",
        params={"minorversion": "75"},
        json={"DisplayName": "Someone Else"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    return str(response.json()["Customer"]["Id"])


def test_voided_invoice_is_voided_in_the_ledger(harness: Harness) -> None:
    """Given a synced open invoice, when invoice.voided arrives for it, then the QBO invoice is
    voided (kept, zeroed) rather than deleted, and the record shows a ledger total of zero."""
    _sync(harness, "a1")
    voided = json.loads(fixture_bytes("a1"))
    voided["id"] = "evt_void_acme"
    voided["type"] = "invoice.voided"
    voided["created"] += 100
    voided["data"]["object"]["status"] = "void"
    harness.post(json.dumps(voided).encode())
    assert harness.drain() == 0
    (invoice,) = harness.documents("Invoice")
    assert invoice["TotalAmt"] == Decimal("0")
    record = harness.record("invoice", INVOICE)
    assert record is not None and (record.status, record.ledger_total) == (SyncStatus.SYNCED, 0)


def test_void_before_sync_creates_nothing(harness: Harness) -> None:
    """Given invoice.voided for an invoice never synced, then nothing is created and it is skipped."""
    _sync(harness, "d1")
    assert harness.documents("Invoice") == []
    record = harness.record("invoice", "in_1QdVoid01")
    assert record is not None and record.status is SyncStatus.SKIPPED


def test_totals_that_do_not_add_up_are_rejected(harness: Harness) -> None:
    """Given an authentic invoice whose total disagrees with its lines, then nothing reaches the
    books: it is parked 'rejected' with both figures in the reason, and alerted."""
    event = json.loads(fixture_bytes("a1"))
    event["data"]["object"]["total"] += 1
    harness.post(json.dumps(event).encode())
    harness.drain()
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.REJECTED
    assert "1677.87" in (record.last_error or "")
    assert harness.documents("Invoice") == []
    assert len(harness.alerts()) == 1


def test_legacy_shape_invoice_syncs_with_discount(harness: Harness) -> None:
    """Given the pre-2025-03-31 invoice shape (tax, paid, charge) with a discount, then the QBO
    invoice carries a discount line and totals to the cent, and the charge becomes the payment."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.TAX_RATE, source_value="txr_VAT19", ledger_id="TAX"))
    _sync(harness, "b1", "b2")
    (invoice,) = harness.documents("Invoice")
    assert invoice["TotalAmt"] == Decimal("385.56")
    assert any(
        line["DetailType"] == "DiscountLineDetail" and line["Amount"] == Decimal("36.00")
        for line in invoice["Line"]
    )
    (payment,) = harness.documents("Payment")
    assert payment["TotalAmt"] == Decimal("385.56")
    assert payment["PrivateNote"] == "invoice-sync: stripe in_1PbLegacyBeta01:paid:38556"


def test_ledger_validation_error_parks_with_the_ledgers_words(harness: Harness) -> None:
    """Given a product mapped to an item that is inactive in QBO, when QBO refuses the invoice
    (2500 Invalid Reference Id), then the record is parked 'rejected' quoting QBO, with one alert,
    and the message is not retried into the dead-letter queue."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.PRODUCT, source_value="prod_Hosting", ledger_id="9"))
    assert _sync(harness, "a1") == 0
    record = harness.record("invoice", INVOICE)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "QBO 2500" in (record.last_error or "")
    (alert,) = harness.alerts()
    assert "ledger refused the document" in alert["subject"]
    assert harness.documents("Invoice") == []


def test_ledger_outage_keeps_the_message_until_the_dead_letter_queue(harness: Harness) -> None:
    """Given QBO answers 503 to everything, then nothing is parked or lost: the message is retried
    until SQS moves it to the dead-letter queue (maxReceiveCount from template.yaml), from where it
    can be re-driven once QBO is back."""
    harness.sandbox.inject_status(harness.realm_id, 503, count=1000)
    harness.deliver("a1")
    harness.drain(rounds=10)
    dlq = (
        harness.client("sqs")
        .receive_message(QueueUrl=harness.resources.dead_letter_queue_url, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    assert [json.loads(m["Body"])["event_id"] for m in dlq] == ["evt_1QaAcmeFinalized0001"]
    assert harness.alerts() == []
    assert harness.documents("Invoice") == []


def _event(prefix: str, **changes: Any) -> dict[str, Any]:
    """A fixture event with top-level and invoice-level changes (``invoice__field=value``)."""
    event = json.loads(fixture_bytes(prefix))
    for name, value in changes.items():
        if name.startswith("invoice__"):
            event["data"]["object"][name.removeprefix("invoice__")] = value
        else:
            event[name] = value
    return event


def test_void_while_another_worker_creates_waits_instead_of_skipping(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a worker has recorded its intent to create ACME-0001 and not finished, when
    invoice.voided arrives, then the void is retried later (not marked skipped), so the invoice
    the worker creates is voided afterwards and never left open in the ledger."""
    store = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    intent = SyncRecord(
        connection_id="acme",
        kind="invoice",
        source_id=INVOICE,
        status=SyncStatus.PENDING,
        idempotency_key="key-of-the-other-worker",
    )
    store.save(intent, 0)
    voided = _event(
        "a1",
        id="evt_void_race",
        type="invoice.voided",
        created=json.loads(fixture_bytes("a1"))["created"] + 50,
        invoice__status="void",
    )
    harness.post(json.dumps(voided).encode())
    assert harness.drain(rounds=1) == 1  # handed back to the queue
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.PENDING
    # The other worker's create lands (here: as if it had), then the void's retry voids it.
    monkeypatch.setenv("INTENT_TIMEOUT_SECONDS", "0")
    bootstrap.reset()
    assert harness.drain() == 0
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.status is SyncStatus.SKIPPED
    assert harness.documents("Invoice") == []


def test_snapshot_newer_than_an_adopted_document_is_applied(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given push died after creating ACME-0001 from a1, when the updated snapshot a4 arrives next,
    then the adopted document is brought up to a4 (its memo), not left as a1 made it."""
    original = SyncStateStore.save

    def crash_once(self: SyncStateStore, record: Any, revision: int) -> int:
        if record.kind == "invoice" and record.status is SyncStatus.SYNCED:
            monkeypatch.setattr(SyncStateStore, "save", original)
            raise RuntimeError("Lambda timed out")
        return original(self, record, revision)

    monkeypatch.setattr(SyncStateStore, "save", crash_once)
    harness.deliver("a1")
    assert harness.drain(rounds=1) == 1
    # The retry of a1 is overtaken by a4 (a newer snapshot): only a4 gets processed.
    harness.client("sqs").purge_queue(QueueUrl=harness.resources.sync_queue_url)
    assert _sync(harness, "a4") == 0
    (invoice,) = harness.documents("Invoice")
    a4_memo = json.loads(fixture_bytes("a4"))["data"]["object"]["description"]
    assert invoice["CustomerMemo"]["value"] == a4_memo


def test_alert_is_sent_even_when_the_first_publish_fails(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given SNS fails the first publish of a parked record's alert, then the message is retried
    and the alert goes out on the retry: exactly one alert, none lost."""
    original = AlertPublisher.publish
    calls = {"n": 0}

    def flaky(self: AlertPublisher, subject: str, text: str, details: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("SNS throttled")
        original(self, subject, text, details)

    monkeypatch.setattr(AlertPublisher, "publish", flaky)
    harness.deliver("c1")
    harness.drain()
    assert calls["n"] == 2
    assert len(harness.alerts()) == 1


def test_two_source_customers_with_one_name_stay_apart(harness: Harness) -> None:
    """Given two Stripe customers both named Acme Corp, then the ledger gets two customers (the
    second named with its Stripe id), and each invoice is billed to its own."""
    _sync(harness, "a1")
    other = _event(
        "c1",
        id="evt_other_acme",
        invoice__customer="cus_OtherAcme",
        invoice__customer_name="Acme Corp",
        invoice__number="ACME-9999",
        invoice__lines=json.loads(fixture_bytes("a1"))["data"]["object"]["lines"],
        invoice__subtotal=154999,
        invoice__total=167786,
    )
    harness.post(json.dumps(other).encode())
    assert harness.drain() == 0
    customers = {c["DisplayName"]: c["Id"] for c in harness.documents("Customer")}
    assert set(customers) == {"Acme Corp", "Acme Corp (cus_OtherAcme)"}
    billed = {i["DocNumber"]: i["CustomerRef"]["value"] for i in harness.documents("Invoice")}
    assert billed == {
        "ACME-0001": customers["Acme Corp"],
        "ACME-9999": customers["Acme Corp (cus_OtherAcme)"],
    }


def test_partial_payments_without_a_payments_list_book_each_difference(harness: Harness) -> None:
    """Given webhooks that carry only the running amount_paid (Stripe does not expand payments in
    webhooks), when 1000.00 then the full 1677.86 is paid, then the ledger gets two payments that
    add up to the total, and a repeat of the last snapshot books nothing more."""
    _sync(harness, "a1")
    base = json.loads(fixture_bytes("a2"))
    for index, paid in enumerate((100000, 167786)):
        event = _event(
            "a2",
            id=f"evt_partial_{index}",
            created=base["created"] + index,
            invoice__amount_paid=paid,
            invoice__status="paid" if paid == 167786 else "open",
        )
        del event["data"]["object"]["payments"]
        harness.post(json.dumps(event).encode())
        assert harness.drain() == 0
    amounts = sorted(p["TotalAmt"] for p in harness.documents("Payment"))
    assert amounts == [Decimal("677.86"), Decimal("1000.00")]
    (invoice,) = harness.documents("Invoice")
    assert invoice["Balance"] == Decimal("0.00")


def test_payment_larger_than_the_open_balance_parks_the_payment_not_the_invoice(harness: Harness) -> None:
    """Given an InvoicePayment larger than what is open in the ledger, then that payment record is
    parked with the figures and alerted once, while the invoice stays synced."""
    event = _event("a2")
    event["data"]["object"]["payments"]["data"][0]["amount_paid"] = 999999
    harness.post(json.dumps(event).encode())
    assert harness.drain() == 0
    invoice_record = harness.record("invoice", INVOICE)
    payment_record = harness.record("payment", PAYMENT)
    assert invoice_record is not None and invoice_record.status is SyncStatus.SYNCED
    assert payment_record is not None and payment_record.status is SyncStatus.REJECTED
    assert "exceeds the open balance" in (payment_record.last_error or "")
    assert harness.documents("Payment") == []
    assert len(harness.alerts()) == 1


CREDIT_NOTE = "cn_1QfAcmeCredit01"


def test_credit_note_is_created_and_applied_to_its_invoice(harness: Harness) -> None:
    """Given ACME-0001 open in QBO, when credit_note.created arrives for one consulting hour, then a
    CreditMemo with the source's total (162.38) exists, billed to the invoice's customer on the
    invoice line's item, and it is applied: the invoice's balance drops by 162.38."""
    _sync(harness, "a1")
    assert _sync(harness, "f1") == 0
    (memo,) = harness.documents("CreditMemo")
    (invoice,) = harness.documents("Invoice")
    assert memo["DocNumber"] == "ACME-0001-CN-01"
    assert memo["TotalAmt"] == Decimal("162.38")
    assert memo["CustomerRef"]["value"] == invoice["CustomerRef"]["value"]
    sales = [line for line in memo["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [line["SalesItemLineDetail"]["ItemRef"]["value"] for line in sales] == ["1"]
    assert invoice["Balance"] == Decimal("1515.48")
    assert memo["RemainingCredit"] == Decimal("0.00")
    record = harness.record("credit_note", CREDIT_NOTE)
    assert record is not None
    assert (record.status, record.ledger_id, record.ledger_total) == (SyncStatus.SYNCED, memo["Id"], 16238)
    # Delivered again: nothing more happens.
    writes = [r for r in harness.sandbox.request_log if r[0] == "POST"]
    _send_raw(harness, {**_messages_of(harness, "f1")[0]})
    assert harness.drain() == 0
    assert [r for r in harness.sandbox.request_log if r[0] == "POST"] == writes


def test_credit_note_before_its_invoice_waits(harness: Harness) -> None:
    """Given credit_note.created is pushed before its invoice reached the ledger (SQS reorders),
    then it goes back to the queue (no park, no alert) and syncs once the invoice is there."""
    harness.deliver("f1")
    assert harness.drain(rounds=1) == 1
    assert harness.documents("CreditMemo") == []
    assert harness.alerts() == []
    _sync(harness, "a1")
    assert harness.drain() == 0
    assert len(harness.documents("CreditMemo")) == 1


def test_voiding_an_applied_credit_note_is_parked_for_a_person(harness: Harness) -> None:
    """Given a credit note already applied to its invoice, when credit_note.voided arrives, then it
    is parked with the reason (ledgers refuse to void applied credit; undoing it is a bookkeeping
    decision), one alert, and the ledger is left as it was."""
    _sync(harness, "a1", "f1")
    _sync(harness, "f2")
    record = harness.record("credit_note", CREDIT_NOTE)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "applied" in (record.last_error or "")
    (alert,) = harness.alerts()
    assert "credit note applied" in alert["subject"]
    (memo,) = harness.documents("CreditMemo")
    assert memo["TotalAmt"] == Decimal("162.38")


def test_credit_note_on_a_paid_invoice_stays_customer_credit_and_can_be_voided(harness: Harness) -> None:
    """Given ACME-0001 paid in full, the credit note cannot be applied (nothing is open): it stays as
    customer credit; voided afterwards, the CreditMemo is voided in QBO."""
    _sync(harness, "a1", "a2")
    _sync(harness, "f1")
    (memo,) = harness.documents("CreditMemo")
    assert memo["RemainingCredit"] == Decimal("162.38")
    _sync(harness, "f2")
    (memo,) = harness.documents("CreditMemo")
    assert memo["TotalAmt"] == Decimal("0")
    record = harness.record("credit_note", CREDIT_NOTE)
    assert record is not None
    assert (record.status, record.ledger_total) == (SyncStatus.SYNCED, 0)


def test_legacy_credit_note_with_discount_and_vat(harness: Harness) -> None:
    """Given a pre-2025-03-31 credit note (tax_amounts, a 10% discount, 19% VAT) on BETA-0042, then
    the CreditMemo totals the source's 128.52 and is applied to the invoice."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.TAX_RATE, source_value="txr_VAT19", ledger_id="TAX"))
    _sync(harness, "b1")
    assert _sync(harness, "f3") == 0
    (memo,) = harness.documents("CreditMemo")
    assert memo["TotalAmt"] == Decimal("128.52")
    (invoice,) = harness.documents("Invoice")
    assert invoice["Balance"] == Decimal("257.04")


def test_line_without_product_travels_the_queue_and_uses_the_default_item(harness: Harness) -> None:
    """Given a one-off line with no product (a Stripe invoice item without a price's product) and
    a connection whose default item is set, then the snapshot survives the queue intact (no field
    dropped on the way) and the line is booked on the default item."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    connection = store.connection("acme")
    assert connection is not None
    store.put_connection(connection.model_copy(update={"default_item_id": "2"}))
    event = json.loads(fixture_bytes("a1"))
    line = event["data"]["object"]["lines"]["data"][1]
    line["pricing"] = None
    assert _sync_event(harness, event) == 0
    (invoice,) = harness.documents("Invoice")
    items = [
        row["SalesItemLineDetail"]["ItemRef"]["value"]
        for row in invoice["Line"]
        if row["DetailType"] == "SalesItemLineDetail"
    ]
    assert items == ["1", "2"]


def _sync_event(harness: Harness, event: dict[str, Any]) -> int:
    status, _ = harness.post(json.dumps(event).encode())
    assert status == 200
    return harness.drain()


def _invoice_event(number: int, *, product: str = "prod_Consulting") -> dict[str, Any]:
    event = json.loads(fixture_bytes("a1"))
    invoice = event["data"]["object"]
    event["id"] = f"evt_batch_{number}"
    invoice["id"] = f"in_batch_{number:04d}"
    invoice["number"] = f"B-{number:04d}"
    invoice["lines"]["data"][0]["pricing"]["price_details"]["product"] = product
    return event


def test_fresh_invoices_of_a_batch_reach_quickbooks_in_one_batch_request(harness: Harness) -> None:
    """Given six new invoices for one connection arriving in one SQS batch, one of them for a
    product mapped to an item QBO refuses, then they go to QBO as one /batch request; the five
    good ones are synced, the refused one alone is parked with QBO's words, and nothing is retried."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.PRODUCT, source_value="prod_Retired", ledger_id="9"))
    for number in range(1, 7):
        event = _invoice_event(number, product="prod_Retired" if number == 4 else "prod_Consulting")
        assert harness.post(json.dumps(event).encode())[0] == 200
    assert harness.drain() == 0
    batches = [
        path for method, path, _ in harness.sandbox.request_log if method == "POST" and "/batch" in path
    ]
    creates = [
        path for method, path, _ in harness.sandbox.request_log if method == "POST" and "/invoice?" in path
    ]
    assert len(batches) == 1
    assert creates == []
    numbers = sorted(i["DocNumber"] for i in harness.documents("Invoice"))
    assert numbers == ["B-0001", "B-0002", "B-0003", "B-0005", "B-0006"]
    parked = harness.record("invoice", "in_batch_0004")
    assert parked is not None
    assert parked.status is SyncStatus.REJECTED
    assert "QBO 2500" in (parked.last_error or "")
    synced = harness.record("invoice", "in_batch_0001")
    assert synced is not None and synced.status is SyncStatus.SYNCED and synced.ledger_id


REFUND = "ch_3QgAcmeCharge01:refunded:16238"


def _refund_event(total: int, *, seconds_later: int = 60) -> dict[str, Any]:
    """g1 with another running refunded total, delivered as a new event ``seconds_later``."""
    event = _event(
        "g1", id=f"evt_refund_{total}", created=json.loads(fixture_bytes("g1"))["created"] + seconds_later
    )
    event["data"]["object"]["amount_refunded"] = total
    return event


def test_refund_of_a_paid_invoice_is_one_refund_receipt(harness: Harness) -> None:
    """Given ACME-0001 paid through payment intent pi_3QaAcmePay0001, when Stripe reports 162.38
    refunded on the charge of that intent (the current-shape charge names no invoice), then QBO
    gets one RefundReceipt on Acme's customer for 162.38 on the refund item, paid from Checking,
    carrying the marker; the same refund reported again writes nothing."""
    assert _sync(harness, "a1", "a2") == 0
    assert _sync(harness, "g1") == 0
    (receipt,) = harness.documents("RefundReceipt")
    (invoice,) = harness.documents("Invoice")
    assert receipt["TotalAmt"] == Decimal("162.38")
    assert receipt["CustomerRef"]["value"] == invoice["CustomerRef"]["value"]
    assert receipt["DepositToAccountRef"]["value"] == "35"
    assert receipt["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == "1"
    assert receipt["PrivateNote"] == f"invoice-sync: stripe {REFUND}"
    record = harness.record("refund", REFUND)
    assert record is not None
    assert (record.status, record.ledger_id, record.ledger_total) == (SyncStatus.SYNCED, receipt["Id"], 16238)
    writes = len([r for r in harness.sandbox.request_log if r[0] == "POST"])
    assert _sync_event(harness, _event("g1", id="evt_refund_again")) == 0
    assert len([r for r in harness.sandbox.request_log if r[0] == "POST"]) == writes
    assert harness.alerts() == []


def test_a_further_refund_books_only_the_new_cash_in_any_order(harness: Harness) -> None:
    """Given two partial refunds on one charge (running totals 162.38 then 200.00) delivered in
    reverse order, then QBO holds refund receipts for exactly 200.00 in all: the later total books
    200.00, and the earlier one, arriving after it, books nothing more."""
    _sync(harness, "a1", "a2")
    assert _sync_event(harness, _refund_event(20000, seconds_later=120)) == 0
    assert _sync_event(harness, _refund_event(16238, seconds_later=60)) == 0
    assert [r["TotalAmt"] for r in harness.documents("RefundReceipt")] == [Decimal("200.00")]
    earlier = harness.record("refund", REFUND)
    assert earlier is not None
    assert earlier.status is SyncStatus.SKIPPED
    assert _sync_event(harness, _refund_event(25000, seconds_later=180)) == 0
    assert [r["TotalAmt"] for r in harness.documents("RefundReceipt")] == [
        Decimal("200.00"),
        Decimal("50.00"),
    ]


def test_refund_given_back_by_a_credit_note_is_not_booked_twice(harness: Harness) -> None:
    """Given a credit note that refunded its 162.38 (Stripe's refund-with-credit-note), then QBO
    keeps its CreditMemo, the payout (which QBO's API cannot make) is parked with one alert saying
    what to do by hand, and the charge.refunded for that same money books no RefundReceipt."""
    _sync(harness, "a1", "a2")
    note = _event(
        "f1", invoice__type="post_payment", invoice__pre_payment_amount=0, invoice__post_payment_amount=16238
    )
    note["data"]["object"]["refunds"] = [{"amount_refunded": 16238, "refund": "re_3QgAcmeRefund01"}]
    assert _sync_event(harness, note) == 0
    (memo,) = harness.documents("CreditMemo")
    assert memo["TotalAmt"] == Decimal("162.38")
    parked = harness.record("credit_note", note["data"]["object"]["id"])
    assert parked is not None
    assert parked.status is SyncStatus.REJECTED
    assert "by hand" in (parked.last_error or "")
    assert _sync(harness, "g1") == 0
    assert harness.documents("RefundReceipt") == []
    refund = harness.record("refund", REFUND)
    assert refund is not None
    assert refund.status is SyncStatus.SKIPPED
    assert note["data"]["object"]["id"] in (refund.last_error or "")
    assert len(harness.alerts()) == 1


def test_refund_waits_for_the_credit_note_that_may_carry_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a fresh refund (younger than REFUND_SETTLE_SECONDS) that no credit note covers yet,
    then it is not booked: the message goes back to the queue, nothing is parked or alerted."""
    _sync(harness, "a1", "a2")
    monkeypatch.setenv("REFUND_SETTLE_SECONDS", "3600")
    bootstrap.reset()
    fresh = _event("g1", created=int(time.time()))
    status, _ = harness.post(json.dumps(fresh).encode())
    assert status == 200
    assert harness.drain(rounds=1) == 1  # one receive: handed back to the queue
    assert harness.documents("RefundReceipt") == []
    record = harness.record("refund", REFUND)
    assert record is None or not record.status.parked
    assert harness.alerts() == []
    assert len(harness.queued()) == 1


def test_refund_of_an_unknown_charge_is_parked_with_its_amount(harness: Harness) -> None:
    """Given a refund whose charge paid no invoice invoice-sync knows (and old enough that nothing
    more will arrive), then it is parked with the amount, charge and customer and one alert, never
    dropped; the legacy shape names its invoice, which is not in the ledger, and parks the same way."""
    assert _sync(harness, "g1", "g2") == 0
    record = harness.record("refund", REFUND)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "162.38 USD refunded so far on charge ch_3QgAcmeCharge01" in (record.last_error or "")
    legacy = harness.record("refund", "ch_3PbLegacyBeta01:refunded:38556")
    assert legacy is not None
    assert "invoice in_1PbLegacyBeta01" in (legacy.last_error or "")
    # One cause (kind, connection, reason): the first is sent, the second counted for the summary.
    assert len(harness.alerts()) == 1
    assert harness.documents("RefundReceipt") == []


def test_refund_without_a_refund_item_waits_for_its_mapping(harness: Harness) -> None:
    """Given a connection with no refund item configured, then the refund is parked as
    needs_mapping, saying which setting to fill in."""
    store = MappingsStore(harness.resources.mappings_table, harness.client("dynamodb"))
    connection = store.connection("acme")
    assert connection is not None
    store.put_connection(connection.model_copy(update={"refund_item_id": None}))
    bootstrap.reset()
    assert _sync(harness, "a1", "a2") == 0
    assert _sync(harness, "g1") == 0
    record = harness.record("refund", REFUND)
    assert record is not None
    assert record.status is SyncStatus.NEEDS_MAPPING
    assert "refund_item_id" in (record.last_error or "")


def test_payment_after_an_applied_credit_books_the_cash_that_remains(harness: Harness) -> None:
    """Given ACME-0001 with a 162.38 credit note applied, when the rest (1515.48) is paid and the
    webhook carries only the running amount_paid, then 1515.48 is booked (credit applied is not a
    payment) and the invoice is settled in QBO."""
    _sync(harness, "a1", "f1")
    paid = _event("a2", invoice__amount_paid=151548, invoice__amount_remaining=0)
    del paid["data"]["object"]["payments"]
    assert _sync_event(harness, paid) == 0
    (payment,) = harness.documents("Payment")[1:]  # the first is the credit application (zero)
    assert payment["TotalAmt"] == Decimal("1515.48")
    (invoice,) = harness.documents("Invoice")
    assert invoice["Balance"] == Decimal("0.00")


def test_credit_note_refunded_to_the_customer_does_not_reduce_the_invoice(harness: Harness) -> None:
    """Given a post-payment credit note (pre_payment_amount 0: the money went back by refund), then
    the CreditMemo exists but is not applied to the open invoice: what the invoice owes is unchanged."""
    _sync(harness, "a1")
    note = _event(
        "f1", invoice__type="post_payment", invoice__pre_payment_amount=0, invoice__post_payment_amount=16238
    )
    assert _sync_event(harness, note) == 0
    (memo,) = harness.documents("CreditMemo")
    assert memo["RemainingCredit"] == Decimal("162.38")
    (invoice,) = harness.documents("Invoice")
    assert invoice["Balance"] == Decimal("1677.86")


def test_invoice_without_a_number_is_parked(harness: Harness) -> None:
    """Given a finalized invoice with no number, then it is parked (the number is what finds the
    ledger copy again after a crash) rather than risk a second document."""
    assert _sync_event(harness, _event("a1", invoice__number=None)) == 0
    record = harness.record("invoice", INVOICE)
    assert record is not None
    assert (record.status, record.last_error) == (
        SyncStatus.REJECTED,
        "invoice has no number: a finalized invoice needs its number in the ledger",
    )
    assert harness.documents("Invoice") == []


def test_finalized_and_paid_in_one_batch_are_one_job(harness: Harness) -> None:
    """Given invoice.finalized and invoice.paid of one invoice in the same SQS batch (an instant
    payment), then the newer snapshot does the work and the older is superseded: one invoice, one
    payment, and no message goes back to the queue."""
    harness.deliver("a1")
    harness.deliver("a2")
    assert harness.drain() == 0
    assert len(harness.documents("Invoice")) == 1
    assert len(harness.documents("Payment")) == 1


def test_credit_note_of_a_parked_invoice_is_parked_with_it(harness: Harness) -> None:
    """Given an invoice parked for a missing mapping, its credit note does not loop in the queue
    until the dead-letter queue: it is parked too, naming the invoice and why it waits."""
    _sync(harness, "c1")
    note = _event("f1", invoice__invoice="in_1QcUnmapped01", invoice__customer="cus_RGamma01")
    assert _sync_event(harness, note) == 0
    record = harness.record("credit_note", CREDIT_NOTE)
    assert record is not None
    assert record.status is SyncStatus.REJECTED
    assert "GAMMA-0007 is parked" in (record.last_error or "")


def test_credit_note_line_unknown_to_its_invoice_is_parked(harness: Harness) -> None:
    """Given a credit note crediting an invoice line invoice-sync never saw, then it is parked
    rather than posted to a guessed item (another revenue account than the sale it undoes)."""
    _sync(harness, "a1")
    note = json.loads(fixture_bytes("f1"))
    note["data"]["object"]["lines"]["data"][0]["invoice_line_item"] = "il_Unknown"
    assert _sync_event(harness, note) == 0
    record = harness.record("credit_note", CREDIT_NOTE)
    assert record is not None
    assert "il_Unknown" in (record.last_error or "")
    assert harness.documents("CreditMemo") == []


def test_invoice_and_credit_note_sharing_an_id_in_one_batch_are_both_kept(harness: Harness) -> None:
    """Given an invoice and a credit note whose source ids are equal (a generic sender may number
    both from one sequence) in the same SQS batch, then neither supersedes the other: they are
    different documents, and both reach the ledger."""
    invoice = _messages_of(harness, "a1")[0]
    note = _messages_of(harness, "f1")[0]
    note["credit_note"]["source_id"] = invoice["invoice"]["source_id"]
    _send_raw(harness, invoice)
    _send_raw(harness, note)
    harness.drain()  # the credit note may wait one round for its invoice
    assert harness.drain() == 0
    assert len(harness.documents("Invoice")) == 1
    assert len(harness.documents("CreditMemo")) == 1


def test_push_counts_the_days_ledger_requests_as_the_ledger_saw_them(harness: Harness) -> None:
    """Given invoices and a payment pushed by the push Lambda, then the connection's tally for
    the day (what ``status`` shows against the ledger's limit) equals the requests the QBO sandbox
    answered on the API (token refreshes are not API calls), and a second drain of an empty
    queue adds nothing."""
    _sync(harness, "a1", "a2")
    store = SyncStateStore(harness.resources.sync_table, harness.client("dynamodb"))
    today = datetime.now(UTC).date().isoformat()
    api_calls = [r for r in harness.sandbox.request_log if r[1].startswith("/v3/")]
    assert api_calls
    assert store.ledger_use("acme", today) == (len(api_calls), 0)
    harness.drain()
    assert store.ledger_use("acme", today) == (len(api_calls), 0)


def test_a_redelivered_snapshot_keeps_the_ledger_codes_of_the_export_summary(harness: Harness) -> None:
    """Given ACME-0001 synced (its export summary holds each line's ledger item and tax code), when
    the same snapshot comes again under a newer event (a metadata-only invoice.updated), then the
    record moves to the newer version and its summary still names the ledger codes, which the
    nightly export's line rows and import layouts need."""
    _sync(harness, "a1", "a2")
    record = harness.record("invoice", INVOICE)
    assert record is not None and record.summary
    codes = [(line.ledger_item, line.ledger_tax_code) for line in DocumentSummary.load(record.summary).lines]
    assert codes and all(item for item, _ in codes)
    again = _event(
        "a2", id="evt_same_snapshot_later", created=json.loads(fixture_bytes("a2"))["created"] + 600
    )
    _sync_event(harness, again)
    after = harness.record("invoice", INVOICE)
    assert after is not None and after.source_version > record.source_version
    assert after.summary is not None
    assert [
        (line.ledger_item, line.ledger_tax_code) for line in DocumentSummary.load(after.summary).lines
    ] == codes
