"""Integration harness: moto in-process (mock_aws) as AWS, the QuickBooks sandbox over real HTTP.

The handlers run as Lambda would run them: webhook_intake gets HTTP API events, push gets SQS
batches taken from the (moto) sync queue. Tables and queues come from template.yaml.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync import bootstrap
from invoice_sync.handlers import push, webhook_intake
from invoice_sync.models.sync import DocumentKind, SyncRecord
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.event_source import SqsEventSource
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.local.stack import SECRETS_PREFIX, DemoCompany, seed_demo
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.template import StackResources, create_stack_resources

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
REGION = "us-east-1"
QUICKBOOKS = LEDGERS["quickbooks"]


def fixture_bytes(prefix: str) -> bytes:
    (path,) = EVENTS.glob(f"{prefix}_*.json")
    return path.read_bytes()


@dataclass
class Harness:
    resources: StackResources
    sandbox: QuickBooksSandbox
    company: DemoCompany
    session: boto3.session.Session
    alerts_seen: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    # --- intake -----------------------------------------------------------------------------------

    def post(
        self,
        body: bytes,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        connection: str | None = None,
        source: str = "stripe",
        timestamp: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        connection = connection or self.company.connection_id
        sent = {"content-type": "application/json"}
        if headers is None:
            sent["stripe-signature"] = signature_header(
                body, [secret or self.company.webhook_secret], timestamp or int(time.time())
            )
        else:
            sent.update(headers)
        event = http_api_event(
            "POST",
            f"/webhooks/{source}/{connection}",
            "POST /webhooks/{source}/{connection}",
            {"source": source, "connection": connection},
            sent,
            body,
        )
        response = webhook_intake.handler(event, LocalContext("webhook-intake"))
        return int(response["statusCode"]), json.loads(response["body"])

    def deliver(self, prefix: str) -> tuple[int, dict[str, Any]]:
        return self.post(fixture_bytes(prefix))

    # --- push -------------------------------------------------------------------------------------

    def drain(self, rounds: int = 20) -> int:
        """Runs push on the queue until it is empty; returns how many messages failed on the way."""
        source = SqsEventSource(
            self.client("sqs"), self.resources.sync_queue_url, push.handler, wait_seconds=0, retry_seconds=0
        )
        for _ in range(rounds):
            if source.poll_once() == 0:
                break
        return source.failures

    def queued(self) -> list[dict[str, Any]]:
        """Messages waiting on the sync queue (left visible again)."""
        sqs = self.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.resources.sync_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    # --- what happened ----------------------------------------------------------------------------

    def record(self, kind: DocumentKind, source_id: str) -> SyncRecord | None:
        store = SyncStateStore(self.resources.sync_table, self.client("dynamodb"))
        return store.get(self.company.connection_id, kind, source_id)[0]

    def documents(self, entity: str) -> list[dict[str, Any]]:
        return self.sandbox.documents(self.realm_id, entity)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert published so far (the SNS envelope's Subject and Message)."""
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.resources.alerts_inbox_url, MaxNumberOfMessages=10
            ).get("Messages", [])
            if not messages:
                return list(self.alerts_seen)
            for message in messages:
                envelope = json.loads(message["Body"])
                self.alerts_seen.append({"subject": envelope["Subject"], "message": envelope["Message"]})
                sqs.delete_message(
                    QueueUrl=self.resources.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )

    @property
    def realm_id(self) -> str:
        return QUICKBOOKS.tenant_id

    def secrets(self) -> SecretStore:
        return SecretStore(SECRETS_PREFIX, self.client("secretsmanager"))


@pytest.fixture
def sandbox() -> Iterator[QuickBooksSandbox]:
    server = QuickBooksSandbox()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def harness(sandbox: QuickBooksSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
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
        environment = {
            **resources.environment(),
            "SECRETS_PREFIX": SECRETS_PREFIX,
            "QUICKBOOKS_API_BASE": sandbox.base_url,
            "QUICKBOOKS_TOKEN_URL": f"{sandbox.base_url}/oauth2/v1/tokens/bearer",
            "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
            "POWERTOOLS_SERVICE_NAME": "invoice-sync",
            "SECRET_CACHE_SECONDS": "0",
            "LEDGER_BACKOFF_SECONDS": "0.01",
            "LEDGER_MAX_BACKOFF_SECONDS": "0.05",
            # Tests deliver a credit note before the refund it causes; the wait has its own test.
            "REFUND_SETTLE_SECONDS": "0",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        company = DemoCompany()
        seed_demo(
            resources,
            QUICKBOOKS,
            sandbox,
            company,
            lambda service: session.client(service, region_name=REGION),
        )
        yield Harness(resources, sandbox, company, session)
        bootstrap.reset()
