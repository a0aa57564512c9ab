"""Alert storms: one window per (kind, connection, reason) in the SyncState table, on in-process moto.

The table, topic and alerts inbox come from the template through the local stack's builder
(create_stack_resources), so the windows live under the same keys and TTL as in Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from invoice_sync import bootstrap
from invoice_sync.handlers import push
from invoice_sync.store.alerts import (
    ALLOWANCE as DEFAULT_ALLOWANCE,
)
from invoice_sync.store.alerts import (
    EXAMPLES,
    WINDOW_SECONDS,
    AlertPublisher,
    AlertWindows,
    storm_key,
)
from invoice_sync.sync.push import Outcome, PushResult
from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event
from invoice_sync_ops.template import StackResources, create_stack_resources

START = 1_796_000_000.0
# Most tests here run windows that let three out one by one, so that "the first few", "the last
# of them" and "the rest" are all distinct; the default (one) has its own test.
ALLOWANCE = 3


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[StackResources]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield create_stack_resources(boto3.session.Session(region_name="us-east-1"), prefix="storm")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _publisher(
    stack: StackResources, clock: Clock, sns: Any | None = None, *, allowance: int = ALLOWANCE
) -> AlertPublisher:
    windows = AlertWindows(stack.sync_table, boto3.client("dynamodb"), clock=clock, allowance=allowance)
    return AlertPublisher(stack.alerts_topic_arn, sns or boto3.client("sns"), windows=windows)


def _inbox(stack: StackResources) -> list[dict[str, Any]]:
    """Every alert the topic delivered so far (SNS envelopes from the local inbox queue)."""
    sqs = boto3.client("sqs")
    alerts = []
    while True:
        batch = sqs.receive_message(QueueUrl=stack.alerts_inbox_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not batch:
            return alerts
        for message in batch:
            envelope = json.loads(message["Body"])
            alerts.append({"subject": envelope["Subject"], "message": envelope["Message"]})
            sqs.delete_message(QueueUrl=stack.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"])


def _parked(
    n: int, *, connection: str = "acme", reason: str = "mapping missing"
) -> tuple[str, str, dict[str, Any]]:
    details = {"connection_id": connection, "kind": "invoice", "source_id": f"in_{n:04d}", "reason": reason}
    return f"invoice-sync: {reason} (INV-{n:04d})", f"invoice INV-{n:04d} of {connection}: {reason}", details


def _details(alert: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(alert["message"][alert["message"].index("\n\n{") + 2 :]))


def test_a_storm_sends_the_first_few_then_one_summary(stack: StackResources, clock: Clock) -> None:
    """Given 200 invoices of one connection parked for one reason within the hour, then the first
    three alerts go out (the third saying more will be summarised), the other 197 are counted,
    not sent; once the hour is over the process's next flush sends one summary with the count and
    the first 20 source ids, and a second flush sends nothing."""
    alerts = _publisher(stack, clock)
    for n in range(200):
        alerts.publish(*_parked(n))
        clock.now += 1
    sent = _inbox(stack)
    assert [a["subject"] for a in sent] == [f"invoice-sync: mapping missing (INV-{n:04d})" for n in range(3)]
    assert "counted and sent as one summary" in sent[-1]["message"]
    assert "counted" not in sent[0]["message"]
    assert alerts.flush_due() == 0  # the window is still open
    assert _inbox(stack) == []

    clock.now = START + WINDOW_SECONDS
    assert alerts.flush_due() == 1
    (summary,) = _inbox(stack)
    assert summary["subject"] == "invoice-sync: 197 more: mapping missing (acme)"
    details = _details(summary)
    assert details["kind"] == "alert_summary"
    assert (details["alerts"], details["sent"], details["counted"]) == (200, ALLOWANCE, 200 - ALLOWANCE)
    assert details["examples"] == [f"in_{n:04d}" for n in range(ALLOWANCE, ALLOWANCE + EXAMPLES)]
    assert "and 177 more" in summary["message"]
    assert "invoice-sync redrive --connection acme" in summary["message"]
    assert alerts.flush_due(everything=True) == 0
    assert _inbox(stack) == []


def test_by_default_a_storm_is_one_email_then_one_summary(stack: StackResources, clock: Clock) -> None:
    """Given the default windows and 500 invoices parked for one cause within the hour, then one
    alert goes out at once (naming the first invoice and saying the rest will be summarised) and,
    once the hour is over, one summary of the other 499: two e-mails, not 500."""
    assert DEFAULT_ALLOWANCE == 1
    alerts = _publisher(stack, clock, allowance=DEFAULT_ALLOWANCE)
    for n in range(500):
        alerts.publish(*_parked(n))
    (first,) = _inbox(stack)
    assert first["subject"] == "invoice-sync: mapping missing (INV-0000)"
    assert "counted and sent as one summary" in first["message"]
    clock.now = START + WINDOW_SECONDS
    assert alerts.flush_due() == 1
    (summary,) = _inbox(stack)
    assert summary["subject"] == "invoice-sync: 499 more: mapping missing (acme)"
    assert _details(summary)["counted"] == 499


def test_windows_are_per_kind_connection_and_reason(stack: StackResources, clock: Clock) -> None:
    """Given alerts of two connections and two reasons, then each (connection, reason) has its own
    window: four of each go out as their own first three, and only the fourth of each is counted."""
    alerts = _publisher(stack, clock)
    for n in range(4):
        for connection in ("acme", "beta"):
            for reason in ("mapping missing", "ledger refused the document"):
                alerts.publish(*_parked(n, connection=connection, reason=reason))
    assert len(_inbox(stack)) == 4 * ALLOWANCE
    clock.now += WINDOW_SECONDS
    assert alerts.flush_due() == 4
    subjects = sorted(a["subject"] for a in _inbox(stack))
    assert subjects == sorted(
        f"invoice-sync: 1 more: {reason} ({connection})"
        for connection in ("acme", "beta")
        for reason in ("mapping missing", "ledger refused the document")
    )


def test_reports_always_go_out(stack: StackResources, clock: Clock) -> None:
    """Proves reports and findings (the daily report, an export failure, a reconciliation: one per
    connection and day by their callers) are never windowed, and connection alerts are."""
    alerts = _publisher(stack, clock)
    for _ in range(5):
        alerts.publish("daily report", "text", {"kind": "daily_report", "date": "2026-12-01"})
        alerts.publish("recon", "text", {"connection_id": "acme", "reason": "reconciliation"})
    assert len(_inbox(stack)) == 10
    assert storm_key({"connection_id": "acme", "reason": "revoked", "kind": "connection"}) is not None
    assert storm_key({"connection_id": "acme", "reason": "export failed", "kind": "export"}) is None


def test_the_next_alert_after_the_window_sends_the_summary_first(stack: StackResources, clock: Clock) -> None:
    """Given a window with counted alerts whose hour is over, when another alert of the same key
    comes (from any process), then the last window's summary goes out first and the new alert
    opens a new window and goes out itself."""
    for n in range(5):
        _publisher(stack, clock).publish(*_parked(n))  # a fresh process each time: nothing in memory
    assert len(_inbox(stack)) == ALLOWANCE
    clock.now += WINDOW_SECONDS + 5
    _publisher(stack, clock).publish(*_parked(99))
    assert [a["subject"] for a in _inbox(stack)] == [
        "invoice-sync: 2 more: mapping missing (acme)",
        "invoice-sync: mapping missing (INV-0099)",
    ]
    assert _publisher(stack, clock).flush_due(everything=True) == 0


def test_the_nightly_flush_sends_what_no_process_is_left_to_send(stack: StackResources, clock: Clock) -> None:
    """Given a storm whose push processes are gone (no later alert, no batch to flush), then the
    nightly run's flush of every window sends its summary: the count is never lost."""
    storm = _publisher(stack, clock)
    for n in range(10):
        storm.publish(*_parked(n, reason="ledger name taken"))
    _inbox(stack)
    clock.now += 6 * 3600
    nightly = _publisher(stack, clock)
    assert nightly.flush_due() == 0  # this process counted nothing itself
    assert nightly.flush_due(everything=True) == 1
    (summary,) = _inbox(stack)
    assert summary["subject"] == "invoice-sync: 7 more: ledger name taken (acme)"


class FlakySns:
    """SNS that refuses the first ``failures`` publishes (throttled), then delivers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self._real = boto3.client("sns")

    def publish(self, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish")
        return self._real.publish(**kwargs)


def test_a_failed_publish_is_not_counted_so_its_retry_goes_out(stack: StackResources, clock: Clock) -> None:
    """Given SNS refuses an alert, then publish raises (push retries the message), the window takes
    its count back, and the retry goes out as the first of the window: exactly one alert."""
    alerts = _publisher(stack, clock, FlakySns(failures=1))
    with pytest.raises(ClientError):
        alerts.publish(*_parked(1))
    alerts.publish(*_parked(1))
    (alert,) = _inbox(stack)
    assert alert["subject"] == "invoice-sync: mapping missing (INV-0001)"
    window = AlertWindows(stack.sync_table, boto3.client("dynamodb"), clock=clock).get(
        storm_key(_parked(1)[2]) or ""
    )
    assert window is not None
    assert window.count == 1


def test_a_summary_sns_refused_is_sent_by_the_next_flush(stack: StackResources, clock: Clock) -> None:
    """Given SNS refuses a summary, then the window is not marked summarised and the next flush
    sends it."""
    sns = FlakySns(failures=0)
    alerts = _publisher(stack, clock, sns)
    for n in range(ALLOWANCE + 2):
        alerts.publish(*_parked(n))
    _inbox(stack)
    clock.now += WINDOW_SECONDS
    sns.failures = 1
    with pytest.raises(ClientError):
        alerts.flush_due(everything=True)
    assert _inbox(stack) == []
    assert alerts.flush_due(everything=True) == 1
    assert [a["subject"] for a in _inbox(stack)] == ["invoice-sync: 2 more: mapping missing (acme)"]


def test_without_its_window_store_an_alert_still_goes_out(stack: StackResources, clock: Clock) -> None:
    """Given the window table cannot be reached (here: a table that does not exist), then every
    alert goes out unwindowed: a storm is better than a lost alert."""
    windows = AlertWindows("no-such-table", boto3.client("dynamodb"), clock=clock)
    alerts = AlertPublisher(stack.alerts_topic_arn, boto3.client("sns"), windows=windows)
    for n in range(ALLOWANCE + 2):
        alerts.publish(*_parked(n))
    assert len(_inbox(stack)) == ALLOWANCE + 2


class _Service:
    """A push service stand-in: its batch parks nothing; its alerts are the real publisher."""

    def __init__(self, alerts: AlertPublisher) -> None:
        self.alerts = alerts

    def handle_batch(self, messages: list[Any], time_left: Any) -> list[PushResult]:
        return [PushResult(Outcome.UNCHANGED, f"in_{i}") for i, _ in enumerate(messages)]


class _Ledgers:
    def quotas(self) -> dict[str, Any]:
        return {}


def test_a_push_batch_sends_the_summary_its_process_owes(
    stack: StackResources, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a push process that counted alerts into a window now over, when its next batch is
    handled, then the handler sends that window's summary (before the window ends it sends none)."""
    alerts = _publisher(stack, clock)
    for n in range(ALLOWANCE + 4):
        alerts.publish(*_parked(n))
    _inbox(stack)
    monkeypatch.setattr(bootstrap, "push", lambda: _Service(alerts), raising=False)
    monkeypatch.setattr(bootstrap, "ledgers", _Ledgers, raising=False)
    body = json.dumps(
        {
            "connection_id": "acme",
            "source": "stripe",
            "event_id": "e",
            "event_type": "invoice.paid",
            "version": 1,
            "archive_key": "raw/e.json",
        }
    )
    event = sqs_event([{"MessageId": "m", "ReceiptHandle": "r", "Body": body}], "arn:aws:sqs:us-east-1:1:q")
    assert push.handler(event, LocalContext("push")) == {"batchItemFailures": []}
    assert _inbox(stack) == []
    clock.now += WINDOW_SECONDS
    assert push.handler(event, LocalContext("push")) == {"batchItemFailures": []}
    assert [a["subject"] for a in _inbox(stack)] == ["invoice-sync: 4 more: mapping missing (acme)"]
