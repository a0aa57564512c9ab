"""The reconcile Lambda on moto in-process: Stripe webhooks through intake and push into the
QuickBooks sandbox, the Stripe stand-in holding the same invoices over real HTTP, then the
handler as the schedule invokes it: reports in S3, one alert or none, and the incomplete day the
next scheduled run completes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invoice_sync import bootstrap
from invoice_sync.handlers import reconcile
from invoice_sync.models.sync import utcnow
from invoice_sync.sync.reconcile_service import ReconcileFailed
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, fixture_invoices
from tests.integration.conftest import Harness

ACME = "in_1QaCurrentAcme01"  # a1 finalized, a2 paid: ACME-0001 and its payment


@pytest.fixture
def stripe(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    """The Stripe stand-in holding the invoices the webhooks carry, created now (the window)."""
    server = StripeSandbox()
    url = server.start()
    monkeypatch.setenv("STRIPE_API_BASE", url)
    bootstrap.reset()
    invoices = [dict(obj, created=int(time.time())) for obj in fixture_invoices() if obj["id"] == ACME]
    assert invoices, "the a1/a2 fixtures' invoice"
    server.seed_account(
        harness.company.stripe_account, api_key=harness.company.stripe_api_key, invoices=invoices
    )
    yield server
    server.stop()


def _synced(harness: Harness) -> None:
    for prefix in ("a1", "a2"):
        assert harness.deliver(prefix)[0] == 200
    assert harness.drain() == 0
    harness.alerts()  # push's own alerts, out of the way


def _run(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = reconcile.handler(event, LocalContext("reconcile"))
    return out


def _reconcile_alerts(harness: Harness) -> list[dict[str, Any]]:
    return [a for a in harness.alerts() if "reconciliation" in a["subject"]]


def _report(harness: Harness, day: str) -> dict[str, Any]:
    key = f"reports/{harness.company.connection_id}/{day}/report.json"
    body = harness.client("s3").get_object(Bucket=harness.resources.archive_bucket, Key=key)["Body"]
    report: dict[str, Any] = json.loads(body.read())
    return report


def _today() -> str:
    return utcnow().date().isoformat()


def test_a_clean_day_writes_the_reports_and_sends_no_alert(harness: Harness, stripe: StripeSandbox) -> None:
    """Given the invoice and its payment on all three sides, the handler (named day) reports the
    day clean with the same counts on each side, writes JSON, CSV and HTML under reports/, keeps
    the run in the history, records the verdict for the daily report and publishes nothing."""
    _synced(harness)
    out = _run({"date": _today()})
    assert [(r["connection_id"], r["date"], r["status"], r["alerted"]) for r in out["reconciled"]] == [
        ("acme", _today(), "clean", False)
    ]
    report = _report(harness, _today())
    assert report["status"] == "clean"
    assert report["summary"]["sides"]["source"]["counts"] == {"invoice": 1, "payment": 1}
    assert report["summary"]["sides"]["ledger"]["counts"] == {"invoice": 1, "payment": 1}
    assert report["summary"]["sides"]["source"]["invoice_totals"] == {"USD": "1677.86"}
    s3 = harness.client("s3")
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=harness.resources.archive_bucket, Prefix="reports/acme/")[
            "Contents"
        ]
    }
    prefix = f"reports/acme/{_today()}/"
    assert keys == {
        prefix + "report.json",
        prefix + "differences.csv",
        prefix + "report.html",
        "reports/acme/history.json",
    }
    assert _reconcile_alerts(harness) == []
    assert bootstrap.state().reconciliation("acme", _today()) == ("clean", "{}")


def test_differences_send_one_alert_with_counts_and_a_link(harness: Harness, stripe: StripeSandbox) -> None:
    """Given the ledger's invoice deleted behind invoice-sync's back, the run finds it missing,
    says so in the report, and sends exactly one alert naming the count, the class and a
    presigned link to the HTML report."""
    _synced(harness)
    # The sandbox's own state, changed behind invoice-sync's back as a person in QBO would.
    with harness.sandbox._lock:
        table = harness.sandbox._tenant(harness.realm_id).table("Invoice")
        (invoice_id,) = [i for i, d in table.items() if ACME in str(d.get("PrivateNote", ""))]
        del table[invoice_id]
    out = _run({"date": _today()})
    assert [r["status"] for r in out["reconciled"]] == ["differences"]
    report = _report(harness, _today())
    assert report["summary"]["differences"]["missing_in_ledger"] == 1
    assert [(d["class"], d["source_id"]) for d in report["differences"]] == [("missing_in_ledger", ACME)]
    (alert,) = _reconcile_alerts(harness)
    assert "1 difference(s)" in alert["subject"]
    assert re.search(r"report\.html\?\S*Signature", alert["message"])


def test_an_outage_is_incomplete_and_the_next_scheduled_run_completes_it(
    harness: Harness, stripe: StripeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the ledger answering 503 until the adapter gives up, the day's report is marked
    incomplete (never clean), claims no document missing, and alerts once; two days later the
    scheduled run (no day named) checks its own day and, because the history says so, re-checks
    the incomplete day, which now comes out clean."""
    _synced(harness)
    harness.sandbox.inject_status(harness.realm_id, 503, count=4)  # LEDGER_MAX_ATTEMPTS
    out = _run({"date": _today()})
    assert [r["status"] for r in out["reconciled"]] == ["incomplete"]
    report = _report(harness, _today())
    assert report["complete"] is False
    assert [i["side"] for i in report["incomplete"]] == ["ledger"]
    assert report["differences"] == []
    (alert,) = _reconcile_alerts(harness)
    assert alert["subject"].endswith(": incomplete")
    assert bootstrap.state().reconciliation("acme", _today())[0] == "incomplete"  # type: ignore[index]

    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(reconcile, "utcnow", lambda: later)
    out = _run({"source": "schedule"})
    yesterday_of_later = (later.date() - timedelta(days=1)).isoformat()
    assert [(r["date"], r["status"]) for r in out["reconciled"]] == [
        (_today(), "clean"),
        (yesterday_of_later, "clean"),
    ]
    assert _report(harness, _today())["status"] == "clean"
    assert bootstrap.state().reconciliation("acme", _today())[0] == "clean"  # type: ignore[index]
    assert len(_reconcile_alerts(harness)) == 1  # still only the outage's (the list is cumulative)
    # The same night again (a retry): both days have complete verdicts, nothing is checked.
    assert _run({"source": "schedule"})["reconciled"] == []


def test_a_connection_that_cannot_be_set_up_fails_the_run_for_lambda_to_retry(
    harness: Harness, stripe: StripeSandbox
) -> None:
    """Given the connection's stripe-api secret gone, the handler raises (Lambda retries the
    event, then the dead-letter queue takes it) naming the connection, and writes no report or
    verdict for the day: a finding is reported, a run that could not look is a failure."""
    _synced(harness)
    secrets = harness.secrets()
    name = secrets.stripe_secret_name("acme")
    harness.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    bootstrap.reset()
    with pytest.raises(ReconcileFailed, match="acme"):
        _run({"date": _today()})
    listed = harness.client("s3").list_objects_v2(Bucket=harness.resources.archive_bucket, Prefix="reports/")
    assert listed.get("Contents", []) == []
    assert bootstrap.state().reconciliation("acme", _today()) is None
