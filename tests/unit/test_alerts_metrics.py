"""The figures the alarms and the dashboard read, as the handlers emit them (EMF on stdout)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import push
from invoice_sync.ledgers.http import Quota
from invoice_sync.observability import day_quota_used_percent, token_days_left, webhook_to_ledger_ms
from invoice_sync.sync.push import Outcome, PushResult
from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _emf(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines printed (log lines are JSON too, without ``_aws``)."""
    documents = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def _values(documents: list[dict[str, Any]], name: str) -> list[tuple[dict[str, str], list[float]]]:
    """(dimensions, values) of every document carrying the metric ``name``."""
    found = []
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        if any(metric["Name"] == name for metric in directive["Metrics"]):
            (dimension_names,) = directive["Dimensions"]
            values = document[name]
            found.append(
                (
                    {d: document[d] for d in dimension_names},
                    values if isinstance(values, list) else [values],
                )
            )
    return found


class _Service:
    def __init__(self, results: list[PushResult]) -> None:
        self.results = results

    def handle_batch(self, messages: list[Any], time_left: Any) -> list[PushResult]:
        assert len(messages) == len(self.results)
        return self.results


class _Ledgers:
    def __init__(self, quotas: dict[str, Quota]) -> None:
        self._quotas = quotas

    def quotas(self) -> dict[str, Quota]:
        return self._quotas


def _message(i: int, connection: str, received_at: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "connection_id": connection,
        "source": "stripe",
        "event_id": f"evt_{i}",
        "event_type": "invoice.paid",
        "version": 1,
    }
    if received_at is None:
        body["archive_key"] = f"raw/{i}.json"
    else:
        body.update(raw="{}", received_at=received_at.isoformat())
    return {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": json.dumps(body)}


def test_push_emits_synced_parked_by_reason_latency_and_quota(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a batch of five (two synced, one of them with its arrival time; three parked for two
    reasons) for two connections, one of them a Xero organisation with 1,000 of its 5,000 daily
    calls left and a third connection served earlier by this process, when push handles it, then
    it emits PushSynced twice, Parked per reason with only the service and reason dimensions
    (2 and 1), one webhook-to-ledger latency for the synced message that carried its arrival, and
    80% of the daily quota used, from this batch's connections only."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    arrived = datetime.now(UTC) - timedelta(seconds=30)
    results = [
        PushResult(Outcome.SYNCED, "in_1", "L1"),
        PushResult(Outcome.SYNCED, "in_2", "L2"),
        PushResult(Outcome.PARKED, "in_3", reason="ledger authorisation revoked"),
        PushResult(Outcome.PARKED, "in_4", reason="ledger authorisation revoked"),
        PushResult(Outcome.PARKED, "in_5", reason="duplicate document number"),
    ]
    quotas = {
        "xero-org": Quota(requests=4000, remaining={"X-DayLimit-Remaining": 1000}),
        "qbo-co": Quota(requests=12),
        # Served earlier by this warm process, not in this batch: its figure may be yesterday's.
        "stale-xero": Quota(requests=4990, remaining={"X-DayLimit-Remaining": 10}),
    }
    monkeypatch.setattr(bootstrap, "push", lambda: _Service(results), raising=False)
    monkeypatch.setattr(bootstrap, "ledgers", lambda: _Ledgers(quotas), raising=False)
    messages = [
        _message(0, "xero-org", arrived),
        _message(1, "qbo-co", None),
        _message(2, "xero-org", arrived),
        _message(3, "xero-org", None),
        _message(4, "qbo-co", None),
    ]
    # Metrics another test added to the process-wide Metrics without flushing them are not this batch's.
    push.metrics.clear_metrics()
    capsys.readouterr()
    response = push.handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"), LocalContext("push"))
    assert response == {"batchItemFailures": []}
    documents = _emf(capsys.readouterr().out)

    assert [values for _, values in _values(documents, "PushSynced")] == [[1.0, 1.0]]
    parked = sorted((dims["reason"], values) for dims, values in _values(documents, "Parked"))
    assert parked == [("duplicate document number", [1.0]), ("ledger authorisation revoked", [2.0])]
    for dims, _ in _values(documents, "Parked"):
        assert set(dims) == {"service", "reason"}
    ((dims, latency),) = _values(documents, "WebhookToLedger")
    assert dims == {"service": "invoice-sync"}
    assert len(latency) == 1
    assert 30_000 <= latency[0] < 30_000 + 600_000
    ((_, used),) = _values(documents, "LedgerDayQuotaUsed")
    assert used == [80.0]


def test_latency_is_none_without_an_arrival_time_and_never_negative() -> None:
    """Proves a message without its arrival (a replay, a backfill) gives no latency figure, and a
    clock a little behind intake's gives 0, not a negative latency."""
    assert webhook_to_ledger_ms(None, NOW) is None
    assert webhook_to_ledger_ms(NOW - timedelta(seconds=2), NOW) == 2000.0
    assert webhook_to_ledger_ms(NOW + timedelta(seconds=1), NOW) == 0.0


def test_quota_use_is_the_highest_daily_share_and_none_without_a_daily_quota() -> None:
    """Proves the quota figure is the highest share of Xero's 5,000 daily calls used among the
    connections given, and that ledgers with per-minute limits only give no figure at all."""
    xero = Quota(remaining={"X-DayLimit-Remaining": 4000, "X-MinLimit-Remaining": 1})
    busier = Quota(remaining={"X-DayLimit-Remaining": 250})
    assert day_quota_used_percent([xero]) == 20.0
    assert day_quota_used_percent([xero, busier, Quota()]) == 95.0
    assert day_quota_used_percent([Quota(requests=100)]) is None
    assert day_quota_used_percent([]) is None


def test_token_days_left_is_the_soonest_expiry() -> None:
    """Proves the token figure is the days to the soonest known refresh-token expiry (negative
    once lapsed), and None when no connection has a known expiry."""
    soon = NOW + timedelta(days=10, hours=12)
    later = NOW + timedelta(days=59)
    assert token_days_left([later, None, soon], NOW) == 10.5
    assert token_days_left([NOW - timedelta(days=1)], NOW) == -1.0
    assert token_days_left([None, None], NOW) is None
