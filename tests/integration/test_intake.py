"""Webhook intake through its Lambda handler on moto: statuses, the queued raw body, push's archive of it."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from invoice_sync.store import aws
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.secrets import SecretStore
from tests.integration.conftest import Harness, fixture_bytes


def _archived(harness: Harness) -> list[str]:
    listing = harness.client("s3").list_objects_v2(Bucket=harness.resources.archive_bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_accepted_event_is_queued_with_its_raw_body_and_push_archives_it(harness: Harness) -> None:
    """Given a signed invoice.finalized, when posted, then 200 with a queued snapshot that carries
    the version, the parsed invoice and the exact body, and no S3 write yet; when push takes the
    batch, the body lands in one bundle object, byte for byte, and the record points at it."""
    body = fixture_bytes("a1")
    status, answer = harness.post(body)
    assert (status, answer["outcome"]) == (200, "queued")
    assert _archived(harness) == []
    (message,) = harness.queued()
    assert message["archive_key"] is None
    assert message["raw"].encode() == body
    assert message["invoice"]["source_id"] == "in_1QaCurrentAcme01"
    assert message["invoice"]["total"] == 167786
    assert message["version"] == json.loads(body)["created"] * 10 + 1
    assert harness.drain() == 0
    (bundle,) = _archived(harness)
    assert bundle.startswith("raw/stripe/acme/") and bundle.endswith(".jsonl.gz")
    record = harness.record("invoice", "in_1QaCurrentAcme01")
    assert record is not None and record.archive_key == f"{bundle}#evt_1QaAcmeFinalized0001"
    archive = RawArchive(harness.resources.archive_bucket, harness.client("s3"))
    assert archive.get(record.archive_key) == body


def test_duplicate_delivery_is_acknowledged_and_ends_as_one_ledger_document(harness: Harness) -> None:
    """Given an event already accepted, when Stripe delivers it again, then 200 'queued' again, and
    once push has drained the queue the ledger holds exactly one invoice."""
    harness.deliver("a1")
    status, answer = harness.deliver("a1")
    assert (status, answer["outcome"]) == (200, "queued")
    assert harness.drain() == 0
    assert len(harness.documents("Invoice")) == 1


def test_archive_outage_in_push_sends_the_batch_back_untouched(harness: Harness) -> None:
    """Given the archive bucket is gone when push takes a batch, then nothing reaches the ledger
    and the message goes back to the queue; once the bucket is back, it archives and syncs."""
    harness.deliver("a1")
    s3 = harness.client("s3")
    bucket = harness.resources.archive_bucket
    s3.delete_bucket(Bucket=bucket)
    assert harness.drain(rounds=1) == 1
    assert harness.documents("Invoice") == []
    s3.create_bucket(Bucket=bucket)
    assert harness.drain() == 0
    assert len(harness.documents("Invoice")) == 1
    assert len(_archived(harness)) == 1


def test_unhandled_event_type_is_acknowledged_without_queueing(harness: Harness) -> None:
    """Given a signed customer.created, then 200 'ignored', nothing archived and nothing queued."""
    status, answer = harness.deliver("e2")
    assert (status, answer["outcome"]) == (200, "ignored")
    assert harness.queued() == []
    assert _archived(harness) == []


def test_bad_signature_is_401_and_writes_nothing(harness: Harness) -> None:
    """Given a body signed with another secret, then 401 with a reason and no side effect."""
    status, answer = harness.post(fixture_bytes("a1"), secret="whsec_wrong")
    assert status == 401
    assert "signature" in answer["error"].lower()
    assert harness.queued() == [] and _archived(harness) == []


def test_stale_timestamp_is_401(harness: Harness) -> None:
    """Given a correct signature made ten minutes ago (a replayed request), then 401."""
    status, answer = harness.post(fixture_bytes("a1"), timestamp=int(time.time()) - 600)
    assert status == 401
    assert "tolerance" in answer["error"]


def test_missing_signature_header_is_401(harness: Harness) -> None:
    status, answer = harness.post(fixture_bytes("a1"), headers={})
    assert status == 401
    assert "missing" in answer["error"].lower()


def test_rotated_secret_accepts_old_and_new(harness: Harness) -> None:
    """Given two configured secrets during a rotation, then events signed with either are accepted."""
    harness.secrets().put_webhook_secrets("acme", ["whsec_new", harness.company.webhook_secret])
    assert harness.post(fixture_bytes("a1"), secret="whsec_new")[0] == 200
    assert harness.post(fixture_bytes("a2"), secret=harness.company.webhook_secret)[0] == 200


def test_malformed_json_is_400_with_reason(harness: Harness) -> None:
    """Given a correctly signed body that is not JSON, then 400 saying so, nothing queued."""
    status, answer = harness.post(b'{"id": "evt_1", "type": ')
    assert status == 400
    assert "not valid JSON" in answer["error"]
    assert harness.queued() == []


def test_schema_invalid_invoice_is_400_naming_the_field(harness: Harness) -> None:
    """Given a signed invoice.finalized whose invoice has no currency, then 400 naming the field."""
    event = json.loads(fixture_bytes("a1"))
    del event["data"]["object"]["currency"]
    status, answer = harness.post(json.dumps(event).encode())
    assert status == 400
    assert "data.object.currency" in answer["error"]


def test_oversized_body_is_413(harness: Harness) -> None:
    """Given a body above MAX_WEBHOOK_BYTES (256 KiB by default), then 413 before anything else."""
    status, answer = harness.post(b"{" + b" " * 300_000 + b"}")
    assert status == 413
    assert "limit" in answer["error"]


def test_unknown_connection_and_source_are_404(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a connection or a source nobody configured, then 404, and no secret is even read."""
    reads: list[str] = []
    original = SecretStore.webhook_secrets

    def counting(self: SecretStore, connection_id: str) -> list[SecretStr]:
        reads.append(connection_id)
        return original(self, connection_id)

    monkeypatch.setattr(SecretStore, "webhook_secrets", counting)
    assert harness.post(fixture_bytes("a1"), connection="nobody")[0] == 404
    assert harness.post(fixture_bytes("a1"), source="paypal")[0] == 404
    assert reads == []
    assert harness.post(fixture_bytes("a1"))[0] == 200
    assert reads == ["acme"]


def test_secrets_manager_outage_is_503_not_404(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given Secrets Manager throttles, then 503 (retry later), never 404 (which tells Stripe the
    endpoint is gone and would make an operator hunt for a missing secret that exists)."""

    def throttled(*_args: object, **_kwargs: object) -> None:
        error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
        raise ClientError(error, "GetSecretValue")

    # The intake's own Secrets Manager client (one per process, shared by the stores).
    monkeypatch.setattr(aws.client("secretsmanager"), "get_secret_value", throttled)
    status, _ = harness.deliver("a1")
    assert status == 503
    assert harness.queued() == []


def test_queue_failure_answers_503_so_the_sender_retries(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given SQS refuses the send, then 503 (not 200): nothing was kept, so Stripe must retry; the
    retry is queued."""

    def unavailable(*_args: object, **_kwargs: object) -> None:
        error = {"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}
        raise ClientError(error, "SendMessage")

    sqs = aws.client("sqs")  # the intake's own client (one per process)
    with monkeypatch.context() as patch:
        patch.setattr(sqs, "send_message", unavailable)
        status, answer = harness.deliver("a1")
    assert status == 503
    assert "retry" in answer["error"]
    assert harness.queued() == [] and _archived(harness) == []
    assert harness.deliver("a1")[1]["outcome"] == "queued"
