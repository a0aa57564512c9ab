"""``invoice-sync redrive`` and ``status`` for payments back, on moto (mock_aws), tables and queues
from template.yaml, the CLI run as an operator runs it (``main`` with a target file): a parked
``ledger_payment`` record goes back as one ledger event per ledger payment on the ledger events
queue, a record without its ledger payment id is reported, a stack without that queue fails in one
line; ``status`` shows that queue and its dead letters; ``from_stack`` reads the new Outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store.archive import ArchivedEvent
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.replay import NO_LEDGER_KIND, NO_LEDGER_PAYMENT_ID, plan_redrive
from invoice_sync_ops import cli
from invoice_sync_ops.target import Target, from_file, from_stack
from invoice_sync_ops.template import StackResources, create_stack_resources
from tests.integration.conftest import REGION

PAID_TWICE = "paid on both sides"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StackResources, boto3.session.Session]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("INVOICE_SYNC_CONNECTION", raising=False)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        resources = create_stack_resources(session)
        MappingsStore(resources.mappings_table, session.client("dynamodb"), cache_seconds=0).put_connection(
            Connection(connection_id="acme", tenant_id="realm-1", ledger="xero")
        )
        yield resources, session


def _target(resources: StackResources, tmp_path: Path, *, with_ledger_queue: bool = True) -> Path:
    """A target file as ``local up`` would write one once it carries the ledger events queue (or
    as an older one, without it)."""
    target = Target(
        name="it",
        region=REGION,
        sync_table=resources.sync_table,
        mappings_table=resources.mappings_table,
        sync_queue_url=resources.sync_queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        archive_bucket=resources.archive_bucket,
        alerts_topic_arn=resources.alerts_topic_arn,
        secrets_prefix="invoice-sync/it",
        **(
            {
                "ledger_events_queue_url": resources.ledger_events_queue_url,
                "ledger_events_dead_letter_queue_url": resources.ledger_events_dead_letter_queue_url,
                "ledger_webhook_url": "https://api.example/ledger-webhooks/<ledger>/<connection>",
            }
            if with_ledger_queue
            else {}
        ),
    )
    path = tmp_path / "target.json"
    target.write(path)
    return path


def _parked(session: boto3.session.Session, resources: StackResources, *records: SyncRecord) -> None:
    store = SyncStateStore(resources.sync_table, session.client("dynamodb"))
    for record in records:
        store.save(record, 0)


def _ledger_payment(payment: str | None, invoice: str, **fields: Any) -> SyncRecord:
    fields.setdefault("status", SyncStatus.REJECTED)
    return SyncRecord(
        connection_id="acme",
        kind="ledger_payment",
        direction="to_source",
        source_id=f"{payment or 'unknown'}:{invoice}",
        ledger_id=payment,
        ledger_number=invoice,
        source_target=f"in_{invoice}",
        last_error=f"{PAID_TWICE}: Stripe invoice in_{invoice} is paid already",
        alerted_reason=PAID_TWICE,
        **fields,
    )


def _drain(session: boto3.session.Session, queue_url: str) -> list[dict[str, Any]]:
    sqs = session.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        found.extend(batch)
    return found


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_parked_ledger_payment_goes_to_the_ledger_events_queue_as_a_redrive(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a parked ledger_payment record (Xero payment pmt_1 on invoice INV-1), when the operator
    re-drives it, then exactly one message is on the ledger events queue: the payment's hint with
    operation "redrive", no change time or event id, the connection's ledger, attributes naming the
    connection and kind; nothing goes to the sync queue, and the JSON counts it as queued."""
    resources, session = aws
    _parked(session, resources, _ledger_payment("pmt_1", "INV-1"))
    target = _target(resources, tmp_path)

    code, out, _ = _run(
        capsys, "redrive", "--target", str(target), "--kind", "ledger_payment", "--parked-only", "--json"
    )

    assert code == 0
    result = json.loads(out)
    assert (result["ledger_events"], result["ledger_events_queued"]) == (1, 1)
    assert (result["messages"], result["queued"], result["missing"], result["not_redrivable"]) == (
        0,
        0,
        [],
        [],
    )
    assert [(r["kind"], r["source_id"]) for r in result["records"]] == [("ledger_payment", "pmt_1:INV-1")]
    (sent,) = _drain(session, resources.ledger_events_queue_url)
    assert LedgerEventMessage.from_queue_body(sent["Body"]) == LedgerEventMessage(
        connection_id="acme",
        ledger="xero",
        kind="payment",
        operation="redrive",
        object_id="pmt_1",
        changed_at=None,
        event_id=None,
    )
    assert {k: v["StringValue"] for k, v in sent["MessageAttributes"].items()} == {
        "connection": "acme",
        "kind": "payment",
    }
    assert _drain(session, resources.sync_queue_url) == []


def test_the_records_of_one_ledger_payment_share_one_event_and_the_summary_says_so(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given one ledger payment paying two invoices (two parked records pmt_2:INV-2, pmt_2:INV-3,
    one rejected, one failed) and another payment's parked record, when re-driven (every kind,
    every parked status), then two messages reach the ledger events queue, one per payment, all
    three records are listed as re-driven, and the summary line counts the ledger events queued."""
    resources, session = aws
    _parked(
        session,
        resources,
        _ledger_payment("pmt_2", "INV-2"),
        _ledger_payment("pmt_2", "INV-3", status=SyncStatus.FAILED),
        _ledger_payment("pmt_3", "INV-4"),
    )
    target = _target(resources, tmp_path)

    code, out, _ = _run(capsys, "redrive", "--target", str(target), "--parked-only")

    assert code == 0, out
    sent = [
        LedgerEventMessage.from_queue_body(m["Body"])
        for m in _drain(session, resources.ledger_events_queue_url)
    ]
    assert sorted(m.object_id for m in sent) == ["pmt_2", "pmt_3"]
    assert {m.operation for m in sent} == {"redrive"}
    assert "2 ledger event(s) queued for payments back" in out
    assert "for 3 parked record(s)" in out
    for source_id in ("pmt_2:INV-2", "pmt_2:INV-3", "pmt_3:INV-4"):
        assert source_id in out


def test_a_record_without_its_ledger_payment_id_is_reported_and_nothing_is_sent_for_it(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a parked ledger_payment record that does not name its ledger payment (and a parked
    invoice whose archived event is gone), when re-driven, then neither is sent: the ledger payment
    is listed as not re-drivable with the reason, the invoice as missing, in JSON and in words."""
    resources, session = aws
    orphan = _ledger_payment(None, "INV-9")
    invoice = SyncRecord(
        connection_id="acme", kind="invoice", source_id="in_gone", status=SyncStatus.NEEDS_MAPPING
    )
    _parked(session, resources, orphan, invoice)
    target = _target(resources, tmp_path)

    code, out, _ = _run(capsys, "redrive", "--target", str(target), "--parked-only", "--json")

    assert code == 0
    result = json.loads(out)
    assert [(r["source_id"], r["not_redrivable"]) for r in result["not_redrivable"]] == [
        ("unknown:INV-9", NO_LEDGER_PAYMENT_ID)
    ]
    assert [r["source_id"] for r in result["missing"]] == ["in_gone"]
    assert (result["records"], result["ledger_events"], result["ledger_events_queued"]) == ([], 0, 0)
    assert _drain(session, resources.ledger_events_queue_url) == []

    code, out, _ = _run(capsys, "redrive", "--target", str(target), "--parked-only")
    assert code == 0
    assert f"cannot re-drive ledger_payment unknown:INV-9: {NO_LEDGER_PAYMENT_ID}" in " ".join(out.split())


def test_a_dry_run_counts_the_ledger_events_and_sends_nothing(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given two parked records of one ledger payment, a dry run says one ledger event would be
    sent for two records, and the ledger events queue stays empty."""
    resources, session = aws
    _parked(session, resources, _ledger_payment("pmt_4", "INV-5"), _ledger_payment("pmt_4", "INV-6"))
    target = _target(resources, tmp_path)

    code, out, _ = _run(capsys, "redrive", "--target", str(target), "--parked-only", "--dry-run")

    assert code == 0
    assert "dry run: 0 event(s) and 1 ledger event(s) for 2 parked record(s)" in " ".join(out.split())
    assert _drain(session, resources.ledger_events_queue_url) == []


def test_a_stack_without_the_ledger_events_queue_fails_in_one_line_before_sending(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a target file written before payments back (no ledger events queue) and a parked
    ledger payment, when re-driven, then the CLI exits 1 with one line naming the missing queue,
    no traceback, and sends nothing anywhere; a re-drive of other kinds still works there."""
    resources, session = aws
    _parked(session, resources, _ledger_payment("pmt_5", "INV-7"))
    target = _target(resources, tmp_path, with_ledger_queue=False)

    code, _, err = _run(capsys, "redrive", "--target", str(target), "--parked-only")

    assert code == 1
    assert err.startswith("invoice-sync: this stack has no ledger events queue")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _drain(session, resources.ledger_events_queue_url) == []
    assert _drain(session, resources.sync_queue_url) == []

    code, _, err = _run(capsys, "redrive", "--target", str(target), "--parked-only", "--kind", "invoice")
    assert (code, err) == (0, "")


def test_status_shows_the_ledger_events_queue_and_its_dead_letters_where_the_stack_has_them(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given one message waiting on the ledger events queue and one on its dead-letter queue,
    ``status --json`` gives both depths and the table names both rows (dead letters in red); a
    target without them gives None and no such rows."""
    resources, session = aws
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=resources.ledger_events_queue_url, MessageBody="{}")
    sqs.send_message(QueueUrl=resources.ledger_events_dead_letter_queue_url, MessageBody="{}")
    target = _target(resources, tmp_path)

    code, out, _ = _run(capsys, "status", "--target", str(target), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ledger_events"] == {"visible": 1, "in_flight": 0, "delayed": 0, "total": 1}
    assert data["ledger_events_dead_letters"]["total"] == 1
    assert data["queue"]["total"] == 0

    code, out, _ = _run(capsys, "status", "--target", str(target))
    assert code == 0
    assert "ledger events" in out and "ledger event dead letters" in out

    older = _target(resources, tmp_path, with_ledger_queue=False)
    code, out, _ = _run(capsys, "status", "--target", str(older), "--json")
    assert code == 0
    assert (json.loads(out)["ledger_events"], json.loads(out)["ledger_events_dead_letters"]) == (None, None)
    code, out, _ = _run(capsys, "status", "--target", str(older))
    assert code == 0 and "ledger events" not in out


class _NoArchive:
    """An archive a ledger-payment re-drive must never read."""

    def get(self, key: str) -> bytes:
        raise AssertionError(f"archive read for {key}")

    def list(self, source: str, connection_id: str, from_day: date, to_day: date) -> Iterator[ArchivedEvent]:
        raise AssertionError("archive listed")


def test_plan_redrive_never_reads_the_archive_for_ledger_payments_and_needs_the_ledger() -> None:
    """Given ledger_payment records that carry an event id (a CloudEvents id, no Stripe archive),
    the plan builds their hints without touching the archive; without the connection's ledger it
    reports them not re-drivable, saying why."""
    records = [
        _ledger_payment("pmt_6", "INV-8", event_id="ce_1"),
        _ledger_payment("pmt_6", "INV-9", event_id="ce_1"),
    ]

    plan = plan_redrive(records, _NoArchive(), "stripe", ledger="quickbooks")
    assert [(e.ledger, e.object_id, e.operation) for e in plan.ledger_events] == [
        ("quickbooks", "pmt_6", "redrive")
    ]
    assert [r.source_id for r in plan.records] == ["pmt_6:INV-8", "pmt_6:INV-9"]

    unknown = plan_redrive(records, _NoArchive(), "stripe")
    assert (unknown.ledger_events, unknown.records) == ([], [])
    assert [why for _, why in unknown.not_redrivable] == [NO_LEDGER_KIND, NO_LEDGER_KIND]


def test_from_stack_reads_the_payments_back_outputs_and_an_older_stack_still_loads(
    aws: tuple[StackResources, boto3.session.Session], tmp_path: Path
) -> None:
    """Given two stacks with invoice-sync's Outputs, one with the payments-back ones and one
    deployed before them, from_stack fills the three fields from the first and leaves them None on
    the second; a target file written before the fields existed still loads."""
    _, session = aws
    required = {
        "SyncStateTableName": "sync",
        "MappingsTableName": "mappings",
        "SyncQueueUrl": "https://sqs/sync",
        "SyncDeadLetterQueueUrl": "https://sqs/dlq",
        "ArchiveBucketName": "archive",
        "AlertsTopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
        "SecretsPrefix": "invoice-sync/x",
    }
    payments_back = {
        "LedgerEventsQueueUrl": "https://sqs/ledger-events",
        "LedgerEventsDeadLetterQueueUrl": "https://sqs/ledger-events-dlq",
        "LedgerWebhookUrl": "https://api/ledger-webhooks/<ledger>/<connection>",
    }
    cloudformation = session.client("cloudformation")
    for name, outputs in (("new", {**required, **payments_back}), ("old", required)):
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(
                {
                    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {key: {"Value": value} for key, value in outputs.items()},
                }
            ),
        )

    new, old = from_stack("new", REGION), from_stack("old", REGION)
    assert (new.ledger_events_queue_url, new.ledger_events_dead_letter_queue_url, new.ledger_webhook_url) == (
        "https://sqs/ledger-events",
        "https://sqs/ledger-events-dlq",
        "https://api/ledger-webhooks/<ledger>/<connection>",
    )
    assert new.settings().ledger_events_queue_url == "https://sqs/ledger-events"
    assert (old.ledger_events_queue_url, old.ledger_events_dead_letter_queue_url, old.ledger_webhook_url) == (
        None,
        None,
        None,
    )

    written = json.loads(old.model_dump_json())
    for key in ("ledger_events_queue_url", "ledger_events_dead_letter_queue_url", "ledger_webhook_url"):
        del written[key]
    path = tmp_path / "older-target.json"
    path.write_text(json.dumps(written))
    assert from_file(path) == old
