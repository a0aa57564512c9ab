"""End-to-end: ledger webhooks posted over HTTP to the local stack's second route,
``POST /ledger-webhooks/{ledger}/{connection}``, reach the ledger events queue on moto's server as
``LedgerEventMessage``s; forged ones get 401 and leave it empty; Xero's Intent-to-Receive gets its
empty 200 or 401."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from invoice_sync.ledgers.webhooks import sign
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync_ops.local.stack import SECRETS_PREFIX, LocalStack

XERO_CONNECTION = "globex"
XERO_TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
XERO_KEY = "xero_webhook_key_local"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The QuickBooks demo stack with payments back on, and a Xero connection beside it."""
    with LocalStack(payments_back=True) as running:
        assert running.resources is not None
        mappings = MappingsStore(running.resources.mappings_table, running.client("dynamodb"))
        mappings.put_connection(
            Connection(
                connection_id=XERO_CONNECTION, ledger="xero", tenant_id=XERO_TENANT, payments_back=True
            )
        )
        SecretStore(SECRETS_PREFIX, running.client("secretsmanager")).put_ledger_webhook_keys(
            XERO_CONNECTION, [XERO_KEY]
        )
        yield running


def take(stack: LocalStack) -> list[LedgerEventMessage]:
    """Every message on the ledger events queue, taken off it."""
    assert stack.resources is not None
    sqs = stack.client("sqs")
    found: list[LedgerEventMessage] = []
    empty = 0
    while empty < 2:
        messages = sqs.receive_message(
            QueueUrl=stack.resources.ledger_events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        empty = 0 if messages else empty + 1
        for message in messages:
            found.append(LedgerEventMessage.from_queue_body(message["Body"]))
            sqs.delete_message(
                QueueUrl=stack.resources.ledger_events_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return found


@pytest.fixture
def queue(stack: LocalStack) -> LocalStack:
    take(stack)  # each test starts from an empty queue
    return stack


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30)


def legacy(realm: str) -> bytes:
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Payment",
                                "id": "501",
                                "operation": "Create",
                                "lastUpdated": "2026-12-02T10:15:42.000Z",
                            },
                            {
                                "name": "Invoice",
                                "id": "147",
                                "operation": "Update",
                                "lastUpdated": "2026-12-02T10:15:42.000Z",
                            },
                        ]
                    },
                }
            ]
        }
    ).encode()


def cloud_events(realm: str) -> bytes:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "8f1c2d3e-0000-4000-8000-000000000001",
        "source": "intuit.local",
        "type": "qbo.payment.updated.v1",
        "datacontenttype": "application/json",
        "time": "2026-12-02T11:00:00.000Z",
        "intuitentityid": "502",
        "intuitaccountid": realm,
    }
    return json.dumps([event]).encode()


def test_signed_quickbooks_deliveries_of_both_formats_are_queued_as_ledger_event_messages(
    queue: LocalStack,
) -> None:
    """Given the demo connection (payments back on) and its ledger webhook key, when Intuit posts a
    signed legacy body and a signed CloudEvents body over HTTP, then each is 200 queued 1 and the
    queue holds exactly the two payments as LedgerEventMessages for the demo connection."""
    realm = queue.ledger.tenant_id
    key = queue.company.ledger_webhook_key
    for body in (legacy(realm), cloud_events(realm)):
        response = post(
            queue.ledger_webhook_url(),
            body,
            {"Content-Type": "application/json", "intuit-signature": sign(body, key)},
        )
        assert (response.status_code, response.json()) == (200, {"outcome": "queued", "events": 1})
    # What the stack shows of the queue (left on it) is what a worker will take off it.
    shown = [LedgerEventMessage.model_validate(body) for body in queue.ledger_events()]
    messages = sorted(take(queue), key=lambda m: m.object_id)
    assert sorted(m.object_id for m in shown) == [m.object_id for m in messages]
    assert [(m.connection_id, m.ledger, m.kind, m.object_id, m.operation, m.event_id) for m in messages] == [
        ("acme", "quickbooks", "payment", "501", "create", None),
        ("acme", "quickbooks", "payment", "502", "update", "8f1c2d3e-0000-4000-8000-000000000001"),
    ]


def test_a_forged_quickbooks_delivery_is_401_with_no_body_and_queues_nothing(queue: LocalStack) -> None:
    """Given a delivery signed with a guessed key (and one with no signature), then 401 with an
    empty body, and the ledger events queue stays empty."""
    body = legacy(queue.ledger.tenant_id)
    forged = post(queue.ledger_webhook_url(), body, {"intuit-signature": sign(body, "guessed")})
    unsigned = post(queue.ledger_webhook_url(), body, {})
    assert [(r.status_code, r.content) for r in (forged, unsigned)] == [(401, b""), (401, b"")]
    assert take(queue) == []


def test_xero_intent_to_receive_good_and_bad(queue: LocalStack) -> None:
    """Given Xero's Intent-to-Receive posts, then the correctly signed one is 200 and the badly
    signed one 401, both with an empty body and no cookie, and nothing is queued."""
    itr = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
    url = queue.ledger_webhook_url("xero", XERO_CONNECTION)
    good = post(url, itr, {"x-xero-signature": sign(itr, XERO_KEY)})
    bad = post(url, itr, {"x-xero-signature": sign(itr, "not-the-key")})
    assert [(r.status_code, r.content, r.headers.get("set-cookie")) for r in (good, bad)] == [
        (200, b"", None),
        (401, b"", None),
    ]
    assert take(queue) == []


def test_the_stripe_webhook_route_is_unchanged_beside_it(queue: LocalStack) -> None:
    """Given the second route, then the first still answers as before (a forged Stripe webhook is
    401 with its JSON reason) and an unknown path is API Gateway's 404."""
    stripe = post(queue.webhook_url(), b"{}", {"stripe-signature": "t=1,v1=00"})
    assert stripe.status_code == 401 and stripe.json()["error"]
    assert post(f"{queue.api_url}/ledger-webhooks/quickbooks", b"{}", {}).status_code == 404
