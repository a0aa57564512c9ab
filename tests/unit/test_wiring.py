"""Each handler loads its own use case and nothing of the others' (cold start pays for what the
function runs, bench/cold_start.py); ``bootstrap`` still names every use case's wiring."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from invoice_sync import bootstrap
from invoice_sync.store import aws
from invoice_sync.wiring import export, intake, ledgers, push, reconcile, state, stores

# What no handler imports (boto3: the stores use botocore; Powertools' resolver, parameters and data
# classes: read here directly) and, per handler, what belongs to other use cases.
NEVER = [
    "boto3",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_xray_sdk",
]
NOT_LOADED = {
    "webhook_intake": [
        "httpx",
        "xlsxwriter",
        "invoice_sync.sync.push",
        "invoice_sync.sync.export",
        "invoice_sync.sync.reconcile",
        "invoice_sync.ledgers.registry",
        "invoice_sync.sources.stripe_api",
        "invoice_sync.store.sync_state",  # the intake never touches the SyncState table
        "invoice_sync.models.tokens",
        "invoice_sync.sources.stripe",  # each source's parser loads with its first webhook
        "invoice_sync.sources.generic",
    ],
    "push": [
        "xlsxwriter",
        "invoice_sync.sync.export",
        "invoice_sync.sync.reconcile",
        "invoice_sync.sources.stripe_api",
        "invoice_sync.sources.stripe",  # push re-parses a body only when a snapshot is missing
        "invoice_sync.sources.generic",
    ],
    "nightly_export": [
        "httpx",
        "invoice_sync.sync.push",
        "invoice_sync.sync.reconcile",
        "invoice_sync.ledgers.registry",
    ],
    "reconcile": [
        "xlsxwriter",
        "invoice_sync.sync.push",
        "invoice_sync.sync.export",
        "invoice_sync.sources.generic",
    ],
}
LOADED = {
    "webhook_intake": "invoice_sync.wiring.intake",
    "push": "invoice_sync.wiring.push",
    "nightly_export": "invoice_sync.wiring.export",
    "reconcile": "invoice_sync.wiring.reconcile",
}


@pytest.mark.parametrize("handler", sorted(NOT_LOADED))
def test_a_handler_loads_its_use_case_only(handler: str) -> None:
    program = f"import sys, json, invoice_sync.handlers.{handler}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", program],
        check=True,
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    ).stdout
    loaded = set(json.loads(out))
    assert LOADED[handler] in loaded
    unwanted = [m for m in NEVER + NOT_LOADED[handler] if m in loaded]
    assert unwanted == []


def test_bootstrap_names_the_wiring_of_every_use_case() -> None:
    assert bootstrap.intake is intake.intake
    assert bootstrap.push is push.push
    assert bootstrap.build_push is push.build_push
    assert bootstrap.ledgers is ledgers.ledgers
    assert bootstrap.nightly_export is export.nightly_export
    assert bootstrap.build_export is export.build_export
    assert bootstrap.reconcile is reconcile.reconcile
    assert bootstrap.reconcile_sides is reconcile.reconcile_sides
    assert bootstrap.mappings is stores.mappings
    assert bootstrap.state is state.state
    with pytest.raises(AttributeError):
        bootstrap.nothing_by_that_name  # noqa: B018


def test_reset_forgets_what_was_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SYNC_TABLE": "t",
        "MAPPINGS_TABLE": "m",
        "SYNC_QUEUE_URL": "https://sqs.local/q",
        "ARCHIVE_BUCKET": "b",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:a",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    first = bootstrap.state()
    assert bootstrap.state() is first
    bootstrap.reset()
    assert bootstrap.state() is not first
    bootstrap.reset()


def test_the_intake_creates_no_s3_client_until_a_body_must_be_archived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given the intake wired, then it has clients for DynamoDB, Secrets Manager and SQS only; its
    raw archive creates the S3 client the first time it is used."""
    created: list[str] = []

    class Client:
        def put_object(self, **_: object) -> None:
            return None

    class Session:
        def create_client(self, service: str, config: object) -> Client:
            created.append(service)
            return Client()

    for name, value in {
        "SYNC_TABLE": "t",
        "MAPPINGS_TABLE": "m",
        "SYNC_QUEUE_URL": "https://sqs.local/q",
        "ARCHIVE_BUCKET": "b",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:a",
    }.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    with monkeypatch.context() as patch:
        patch.setattr(aws, "session", Session)
        service = bootstrap.intake()
        assert sorted(created) == ["dynamodb", "secretsmanager", "sqs"]
        service.archive.put("raw/x.json", b"{}", {})
        assert sorted(created) == ["dynamodb", "s3", "secretsmanager", "sqs"]
    bootstrap.reset()  # the stand-in clients go with the session
