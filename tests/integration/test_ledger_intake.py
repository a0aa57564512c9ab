"""The ledger_events handler wired as in Lambda (``bootstrap.ledger_intake``) on moto in-process:
the ledger-webhook secrets, the Mappings table's connections and tenant directory, the FBHOOK#
registrations, SendMessageBatch onto the ledger events queue, and the refusal archive and alert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync import bootstrap
from invoice_sync.handlers import ledger_events
from invoice_sync.ledgers.webhooks import freshbooks_form, freshbooks_signed_string, sign
from invoice_sync.models.mapping import Connection, LedgerKind
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.store import aws
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event
from invoice_sync_ops.template import StackResources, create_stack_resources

REGION = "us-east-1"
PREFIX = "invoice-sync/test"
ROUTE = "POST /ledger-webhooks/{ledger}/{connection}"
APP_TOKEN = "intuit-app-verifier-token"  # one Intuit app: one verifier token for every company
REALM_A, REALM_B = "9130355000000001", "9130355000000002"


@dataclass
class Stack:
    resources: StackResources
    session: boto3.session.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def mappings(self) -> MappingsStore:
        return MappingsStore(self.resources.mappings_table, self.client("dynamodb"))

    def secrets(self) -> SecretStore:
        return SecretStore(PREFIX, self.client("secretsmanager"))

    def connect(
        self, connection_id: str, ledger: LedgerKind, tenant: str, keys: list[str], **changes: Any
    ) -> None:
        self.mappings().put_connection(
            Connection.model_validate(
                {
                    "connection_id": connection_id,
                    "ledger": ledger,
                    "tenant_id": tenant,
                    "payments_back": True,
                    **changes,
                }
            )
        )
        self.mappings().put_tenant_connection(ledger, tenant, connection_id)
        if keys:
            self.secrets().put_ledger_webhook_keys(connection_id, keys)

    def post(self, ledger: str, connection_id: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        event = http_api_event(
            "POST",
            f"/ledger-webhooks/{ledger}/{connection_id}",
            ROUTE,
            {"ledger": ledger, "connection": connection_id},
            headers,
            body,
        )
        response: dict[str, Any] = ledger_events.handler(event, LocalContext("ledger-events"))
        return response

    def queued(self) -> list[LedgerEventMessage]:
        """Every message on the ledger events queue (taken off it)."""
        sqs = self.client("sqs")
        found: list[LedgerEventMessage] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.resources.ledger_events_queue_url, MaxNumberOfMessages=10
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(LedgerEventMessage.from_queue_body(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.resources.ledger_events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def alerts(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.resources.alerts_inbox_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    def archived(self, prefix: str) -> list[str]:
        listing = self.client("s3").list_objects_v2(Bucket=self.resources.archive_bucket, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        resources = create_stack_resources(session)
        for name, value in {
            **resources.environment(),
            "SECRETS_PREFIX": PREFIX,
            "SECRET_CACHE_SECONDS": "0",
            "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
            "POWERTOOLS_SERVICE_NAME": "invoice-sync",
        }.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        yield Stack(resources, session)
        bootstrap.reset()


def legacy(*notifications: tuple[str, list[str]]) -> bytes:
    """A QuickBooks legacy body: per realm, Payment ids created."""
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Payment",
                                "id": payment,
                                "operation": "Create",
                                "lastUpdated": "2026-12-02T10:15:42.000Z",
                            }
                            for payment in payments
                        ]
                    },
                }
                for realm, payments in notifications
            ]
        }
    ).encode()


def signed(body: bytes, key: str = APP_TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "intuit-signature": sign(body, key)}


def test_a_signed_delivery_of_25_payments_reaches_the_queue_in_three_batches(stack: Stack) -> None:
    """Given the connection's ledger-webhook secret in Secrets Manager, then a signed delivery of
    25 payments is 200 queued 25, sent in SendMessageBatch calls of at most ten, and every message
    on the queue reads back as a LedgerEventMessage for the connection."""
    stack.connect("acme", "quickbooks", REALM_A, [APP_TOKEN])
    sizes: list[int] = []
    # The process's SQS client, the one the wired queue sends with: its requests as they leave.
    aws.client("sqs").meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **_: sizes.append(len(params["Entries"])),
    )
    payments = [str(100 + i) for i in range(25)]
    body = legacy((REALM_A, payments))
    response = stack.post("quickbooks", "acme", body, signed(body))
    assert (response["statusCode"], json.loads(response["body"])) == (
        200,
        {"outcome": "queued", "events": 25},
    )
    assert sizes == [10, 10, 5]
    queued = stack.queued()
    assert sorted(m.object_id for m in queued) == sorted(payments)
    assert {(m.connection_id, m.ledger, m.kind, m.operation) for m in queued} == {
        ("acme", "quickbooks", "payment", "create")
    }


def test_one_apps_delivery_is_split_by_tenant_to_connections_holding_the_key(stack: Stack) -> None:
    """Given two companies connected through one Intuit app (same verifier token) and a third whose
    connection has a key of its own, then one delivery naming all three realms, posted to acme's
    URL, queues acme's and beta's payments each for its own connection, drops the third's, and is
    200: the tenant directory routes, the key decides."""
    stack.connect("acme", "quickbooks", REALM_A, [APP_TOKEN])
    stack.connect("beta", "quickbooks", REALM_B, [APP_TOKEN])
    stack.connect("gamma", "quickbooks", "9130355000000003", ["gammas-own-token"])
    body = legacy((REALM_A, ["1"]), (REALM_B, ["2"]), ("9130355000000003", ["3"]), ("unknown-realm", ["4"]))
    response = stack.post("quickbooks", "acme", body, signed(body))
    assert json.loads(response["body"]) == {"outcome": "queued", "events": 2}
    assert sorted((m.connection_id, m.object_id) for m in stack.queued()) == [("acme", "1"), ("beta", "2")]


def test_a_forged_delivery_is_401_and_the_queue_stays_empty(stack: Stack) -> None:
    stack.connect("acme", "quickbooks", REALM_A, [APP_TOKEN])
    body = legacy((REALM_A, ["1"]))
    response = stack.post("quickbooks", "acme", body, signed(body, "guessed"))
    assert (response["statusCode"], response["body"]) == (401, "")
    assert stack.queued() == []
    assert stack.archived("raw/") == []


def test_no_ledger_webhook_secret_or_payments_back_off(stack: Stack) -> None:
    """Given a connection with no ledger-webhook secret, then 404 (not configured is unknown);
    given one with the secret and payments back off, then 200 ignored and nothing queued."""
    stack.connect("acme", "quickbooks", REALM_A, [])
    body = legacy((REALM_A, ["1"]))
    assert stack.post("quickbooks", "acme", body, signed(body))["statusCode"] == 404
    stack.connect("beta", "quickbooks", REALM_B, [APP_TOKEN], payments_back=False)
    body = legacy((REALM_B, ["2"]))
    response = stack.post("quickbooks", "beta", body, signed(body))
    assert json.loads(response["body"]) == {"outcome": "ignored", "events": 0}
    assert stack.queued() == []


def test_authentic_unparseable_deliveries_are_archived_and_alerted_once(stack: Stack) -> None:
    """Given two correctly signed bodies that are no QuickBooks webhook, then both are 400, both
    bodies are archived under raw/ledger/quickbooks/acme/<day>/rejected/, and one alert names the
    connection and the first object; nothing is queued."""
    stack.connect("acme", "quickbooks", REALM_A, [APP_TOKEN])
    for body in (b'{"not": "intuit"}', b'["neither"]'):
        assert stack.post("quickbooks", "acme", body, signed(body))["statusCode"] == 400
    keys = stack.archived("raw/ledger/quickbooks/acme/")
    bodies = [k for k in keys if not k.endswith("/_alerted")]
    assert len(bodies) == 2
    assert all("/rejected/" in k for k in bodies)
    (alert,) = stack.alerts()
    assert "acme" in alert["Subject"]
    assert stack.queued() == []


def test_xero_intent_to_receive_and_freshbooks_verify_through_the_real_stores(stack: Stack) -> None:
    """Given a Xero connection and a FreshBooks connection with a registration pending in the
    SyncState table (FBHOOK#), then Xero's ITR is 200 with an empty body and queues nothing, a
    badly signed one is 401 empty, and the FreshBooks verify for the pending callback queues one
    callback_verify carrying the verifier (for the worker), while one for another callback is 404."""
    stack.connect("globex", "xero", "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f", ["xero-webhook-key"])
    itr = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
    good = stack.post("xero", "globex", itr, {"x-xero-signature": sign(itr, "xero-webhook-key")})
    bad = stack.post("xero", "globex", itr, {"x-xero-signature": sign(itr, "wrong")})
    assert [(r["statusCode"], r["body"], r["cookies"]) for r in (good, bad)] == [(200, "", []), (401, "", [])]
    assert stack.queued() == []

    stack.connect("initech", "freshbooks", "zDmNq", [])
    SyncStateStore(stack.resources.sync_table, stack.client("dynamodb")).put_pending_callback(
        "initech", "2208", "payment"
    )
    verify = b"name=callback.verify&object_id=2208&verifier=scADVVi5QuKuj&account_id=zDmNq"
    assert stack.post("freshbooks", "initech", verify, {})["statusCode"] == 200
    stranger = verify.replace(b"2208", b"2209")
    assert stack.post("freshbooks", "initech", stranger, {})["statusCode"] == 404
    (message,) = stack.queued()
    assert (message.connection_id, message.kind, message.object_id) == ("initech", "callback_verify", "2208")
    assert message.verifier is not None and message.verifier.get_secret_value() == "scADVVi5QuKuj"

    # Once FreshBooks accepted it the verifier is a key, and a signed payment callback is queued.
    stack.secrets().put_ledger_webhook_keys("initech", ["scADVVi5QuKuj"])
    payment = b"name=payment.create&object_id=77&account_id=zDmNq&business_id=1&identity_id=2&user_id=1"
    header = sign(freshbooks_signed_string(freshbooks_form(payment)).encode("ascii"), "scADVVi5QuKuj")
    response = stack.post("freshbooks", "initech", payment, {"x-freshbooks-hmac-sha256": header})
    assert json.loads(response["body"]) == {"outcome": "queued", "events": 1}
    assert [(m.kind, m.object_id) for m in stack.queued()] == [("payment", "77")]
