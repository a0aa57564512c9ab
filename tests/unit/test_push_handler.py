"""The push handler's time budget: no record starts without enough of the invocation left."""

from __future__ import annotations

import json

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import push
from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event

ENV = {
    "SYNC_TABLE": "t",
    "MAPPINGS_TABLE": "m",
    "SYNC_QUEUE_URL": "https://sqs.local/q",
    "ARCHIVE_BUCKET": "b",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:a",
    "PUSH_RESERVE_SECONDS": "20",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_records_are_handed_back_when_the_invocation_is_nearly_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given an invocation with 10 s left and a 20 s reserve, when a batch of two arrives, then both
    come back as batch item failures before any work starts (it would fail if it did: no AWS here)."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    body = json.dumps(
        {
            "connection_id": "acme",
            "source": "stripe",
            "event_id": "evt_1",
            "event_type": "invoice.paid",
            "version": 1,
            "archive_key": "raw/x.json",
        }
    )
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {}} for i in range(2)
    ]
    response = push.handler(
        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"), LocalContext("push", timeout_seconds=10)
    )
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m0", "m1"]
    bootstrap.reset()
