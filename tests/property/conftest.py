"""Property tests: hypothesis profiles, and the webhook intake on in-process moto.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default) is derandomized, so every run tries the
same examples and a failure reproduces anywhere; ``dev`` draws new examples each run and keeps
what failed in hypothesis' database; ``deep`` draws ten times as many. Every profile has no per-
example deadline: the intake's examples are real boto3 calls to moto, whose time is not a property.

``intake`` is one moto account for a whole test module (hypothesis refuses function-scoped
fixtures, and building the stack per example would cost a second each): two connections, one
Stripe (``acme``) and one generic (``inhouse``), each with its webhook secret. Each example
measures what it wrote as a difference of counts (``Counts``) taken around its own request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends

from invoice_sync import bootstrap
from invoice_sync.handlers import webhook_intake
from invoice_sync.models.mapping import Connection
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event
from invoice_sync_ops.template import StackResources, create_stack_resources

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=_SLOW
)
settings.register_profile("dev", max_examples=150, deadline=None, suppress_health_check=_SLOW)
settings.register_profile("deep", max_examples=1500, deadline=None, suppress_health_check=_SLOW)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

EVENTS = Path(__file__).resolve().parents[1] / "events"
REGION = "us-east-1"
SECRETS_PREFIX = "invoice-sync/property"
STRIPE_SECRET = "whsec_property_stripe_0123456789"
GENERIC_SECRET = "generic-property-secret-0123456789"
ROUTE = "POST /webhooks/{source}/{connection}"
# What the template gives the intake (MaxWebhookBytes' default) and its signature tolerance.
MAX_BYTES = 262_144
TOLERANCE = 300


@cache
def fixtures(source: str) -> list[bytes]:
    """Every event fixture of ``source`` ("stripe" or "generic"), as the bytes a sender posts."""
    return [path.read_bytes() for path in sorted((EVENTS / source).glob("*.json"))]


@dataclass(frozen=True)
class Counts:
    """What the stack holds: messages on the sync queue, objects in the archive, alerts sent."""

    queued: int
    archived: int
    alerts: int


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Intake:
    resources: StackResources
    session: boto3.session.Session
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        # One per service: building a client parses its model (a tenth of a second or more).
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=REGION)
        return self._clients[service]

    def add_connection(self, connection_id: str, source: str, secret: str) -> None:
        """Another live connection, for a test that must be the first to touch one."""
        MappingsStore(self.resources.mappings_table, self.client("dynamodb")).put_connection(
            Connection(connection_id=connection_id, source=source, tenant_id="9130"),
        )
        SecretStore(SECRETS_PREFIX, self.client("secretsmanager")).put_webhook_secrets(
            connection_id, [secret]
        )

    def send(self, event: dict[str, Any]) -> Answer:
        """Invokes the intake handler with an HTTP API event, as Lambda would."""
        response = webhook_intake.handler(event, LocalContext("webhook-intake"))
        return Answer(int(response["statusCode"]), str(response.get("body", "")), response.get("headers", {}))

    def post(self, source: str, connection: str, headers: dict[str, str], body: bytes) -> Answer:
        """A request as API Gateway hands it over (a body that is not UTF-8 arrives base64-encoded)."""
        return self.send(
            http_api_event(
                "POST",
                f"/webhooks/{source}/{connection}",
                ROUTE,
                {"source": source, "connection": connection},
                headers,
                body,
            )
        )

    # Counted in moto's own backends, not over its API: a listing through boto3 costs a tenth of a
    # second, and an example counts twice. Same process, same data.
    def _queue(self, url: str) -> Any:
        return sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues[url.rsplit("/", 1)[1]]

    def counts(self) -> Counts:
        return Counts(
            queued=len(self._queue(self.resources.sync_queue_url)._messages),
            archived=len(self.keys()),
            alerts=len(self._queue(self.resources.alerts_inbox_url)._messages),
        )

    def keys(self, prefix: str = "") -> list[str]:
        bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[self.resources.archive_bucket]
        return [key for key in bucket.keys if key.startswith(prefix)]

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert published so far (the SNS envelopes in the topic's SQS subscription)."""
        return [json.loads(m.body) for m in self._queue(self.resources.alerts_inbox_url)._messages]


@pytest.fixture(scope="module")
def intake() -> Iterator[Intake]:
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "invoice-sync",
        "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "SECRETS_PREFIX": SECRETS_PREFIX,
        "SECRET_CACHE_SECONDS": "0",
        "MAX_WEBHOOK_BYTES": str(MAX_BYTES),
        "WEBHOOK_TOLERANCE_SECONDS": str(TOLERANCE),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            session = boto3.session.Session(region_name=REGION)
            resources = create_stack_resources(session)
            for name, value in resources.environment().items():
                patch.setenv(name, value)
            bootstrap.reset()
            world = Intake(resources, session)
            world.add_connection("acme", "stripe", STRIPE_SECRET)
            world.add_connection("inhouse", "generic", GENERIC_SECRET)
            world.add_connection("paused", "stripe", STRIPE_SECRET)
            MappingsStore(resources.mappings_table, world.client("dynamodb")).put_connection(
                Connection(connection_id="paused", tenant_id="9130", active=False)
            )
            yield world
            bootstrap.reset()
