"""``invoice-sync redrive`` and ``replay`` on the local stack: parked records and dead letters back
onto the queue, archived windows run again with today's mapping, and the ledger (the QuickBooks
sandbox, read over HTTP) still holds exactly one document per source document."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from invoice_sync.models.mapping import MappingRule, RuleKind
from invoice_sync.models.sync import SyncStatus
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.archive import RawArchive, archive_key
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.replay import rebuild
from invoice_sync_ops.commands import redrive as redrive_command
from invoice_sync_ops.local.stack import LocalStack
from tests.e2e.conftest import CliResult

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
UNMAPPED = "c1_invoice.finalized.unmapped_product.current.json"
Cli = Callable[..., CliResult]


def crafted(tag: str, product: str) -> tuple[bytes, str, str]:
    """The unmapped-product fixture as a new invoice of its own: (body, invoice id, number)."""
    invoice_id, number = f"in_1Q{tag}", f"T-{tag}"
    body = (
        (EVENTS / UNMAPPED)
        .read_text()
        .replace("in_1QcUnmapped01", invoice_id)
        .replace("evt_1QcGammaFinalized001", f"evt_1Q{tag}")
        .replace("GAMMA-0007", number)
        .replace("prod_Mystery", product)
    )
    return body.encode(), invoice_id, number


def post(stack: LocalStack, body: bytes) -> str:
    header = signature_header(body, [stack.company.webhook_secret], int(time.time()))
    response = httpx.post(
        stack.webhook_url(),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


def invoices(stack: LocalStack, number: str) -> list[dict[str, object]]:
    response = httpx.get(f"{stack.ledger_url}/_sandbox/companies/{stack.ledger.tenant_id}/Invoice")
    response.raise_for_status()
    return [d for d in response.json() if d.get("DocNumber") == number]


def state(stack: LocalStack) -> SyncStateStore:
    assert stack.resources is not None
    return SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))


def add_rule(stack: LocalStack, product: str, item: str = "2") -> int:
    """An operator adds the missing rule (push's warm worker still holds the old mapping: parked
    records and replays read it afresh)."""
    assert stack.resources is not None
    store = MappingsStore(stack.resources.mappings_table, stack.client("dynamodb"))
    store.put_rule("acme", MappingRule(kind=RuleKind.PRODUCT, source_value=product, ledger_id=item))
    return store.bump_version("acme")


def test_redrive_after_adding_the_mapping_syncs_exactly_one_document(stack: LocalStack, cli: Cli) -> None:
    """Given an invoice parked needs_mapping (its record remembers its archived event), a dry run
    names it and sends nothing; once the rule is added and the version bumped, `redrive` queues
    its event, push syncs it with the new mapping version, the sandbox holds exactly one invoice
    for it, and a second redrive has nothing left to do."""
    body, invoice_id, number = crafted("Redrive01", "prod_RedriveOnly")
    assert post(stack, body) == "queued"
    assert stack.drain()
    record, _ = state(stack).get("acme", "invoice", invoice_id)
    assert record is not None
    assert record.status is SyncStatus.NEEDS_MAPPING
    assert record.archive_key is not None
    assert record.archive_key.endswith(".jsonl.gz#evt_1QRedrive01")

    dry = cli("redrive", "--dry-run", "--parked-only", "--source-id", invoice_id, "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["messages"] == 1
    assert [r["source_id"] for r in dry.json()["records"]] == [invoice_id]
    assert dry.json()["queued"] == 0
    assert stack.drain()
    assert state(stack).get("acme", "invoice", invoice_id)[0].status is SyncStatus.NEEDS_MAPPING  # type: ignore[union-attr]
    assert invoices(stack, number) == []

    version = add_rule(stack, "prod_RedriveOnly")
    done = cli("redrive", "--parked-only", "--source-id", invoice_id, "--json")
    assert done.code == 0, done.err
    assert (done.json()["queued"], done.json()["missing"]) == (1, [])
    assert stack.drain()
    record, _ = state(stack).get("acme", "invoice", invoice_id)
    assert record is not None
    assert (record.status, record.mapping_version) == (SyncStatus.SYNCED, version)
    (document,) = invoices(stack, number)
    assert record.ledger_id == document["Id"]

    again = cli("redrive", "--parked-only", "--source-id", invoice_id, "--json")
    assert (again.code, again.json()["messages"], again.json()["queued"]) == (0, 0, 0)
    assert stack.drain()
    assert len(invoices(stack, number)) == 1


def test_replay_dry_run_says_what_would_change_then_replay_converges(stack: LocalStack, cli: Cli) -> None:
    """Given today's archive (synced invoices and one parked for an unmapped product), a dry run
    lists that one as unmapped with the missing rule and the synced ones as unchanged or skipped,
    and sends nothing; after the rule is added the dry run says create; the replay syncs it (a
    redelivery of the same event would not: it is parked again), and every invoice number in the
    sandbox is still there exactly once."""
    for fixture in ("a1_invoice.finalized.current.json", "a2_invoice.paid.current.json"):
        assert post(stack, (EVENTS / fixture).read_bytes()) == "queued"
    body, invoice_id, number = crafted("Replay01", "prod_ReplayOnly")
    assert post(stack, body) == "queued"
    assert stack.drain()
    assert post(stack, body) == "queued"  # a redelivery: push parks it again, as it was
    assert stack.drain()

    today = datetime.now(UTC).date().isoformat()
    dry = cli("replay", "--from", today, "--to", today, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    events = {e["event_id"]: e for e in dry.json()["events"]}
    assert events["evt_1QReplay01"]["verdict"] == "unmapped"
    assert events["evt_1QReplay01"]["missing"] == ["product prod_ReplayOnly (Mystery box)"]
    assert events["evt_1QaAcmePaid000001"]["verdict"] == "unchanged"
    assert events["evt_1QaAcmeFinalized0001"]["verdict"] == "skipped"
    assert dry.json()["queued"] == 0
    assert set(dry.json()["events"][0]) >= {"archive_key", "verdict", "detail", "missing", "record_status"}

    add_rule(stack, "prod_ReplayOnly")
    dry = cli("replay", "--from", "1d", "--to", "now", "--dry-run", "--json")
    events = {e["event_id"]: e for e in dry.json()["events"]}
    assert events["evt_1QReplay01"]["verdict"] == "create"
    assert "mapping v" in events["evt_1QaAcmePaid000001"]["detail"]  # synced under an older version

    before = stack.event_source.invocations if stack.event_source else 0
    replayed = cli("replay", "--from", "1d", "--to", "now", "--yes", "--json")
    assert replayed.code == 0, replayed.err
    assert replayed.json()["queued"] == len([e for e in replayed.json()["events"] if e["kind"]])
    assert stack.drain()
    assert stack.event_source is not None and stack.event_source.invocations > before
    record, _ = state(stack).get("acme", "invoice", invoice_id)
    assert record is not None and record.status is SyncStatus.SYNCED
    response = httpx.get(f"{stack.ledger_url}/_sandbox/companies/{stack.ledger.tenant_id}/Invoice")
    numbers = Counter(d["DocNumber"] for d in response.json())
    assert numbers[number] == 1
    assert max(numbers.values()) == 1, numbers


def test_dead_letters_are_moved_back_and_synced(stack: LocalStack, cli: Cli) -> None:
    """Given a snapshot that ended in the dead-letter queue, `status` counts it, `redrive
    --dead-letters-only` moves it back (deleting it from the DLQ only after the copy was sent),
    push syncs it, and the DLQ is empty."""
    assert stack.resources is not None
    body, invoice_id, number = crafted("Dead01", "prod_Consulting")
    key = archive_key("stripe", "acme", datetime.now(UTC), "evt_1QDead01")
    RawArchive(stack.resources.archive_bucket, stack.client("s3")).put(key, body, {})
    message = rebuild(key, body)
    assert message is not None
    stack.client("sqs").send_message(
        QueueUrl=stack.resources.dead_letter_queue_url,
        MessageBody=message.model_dump_json(),
        MessageAttributes={"connection": {"DataType": "String", "StringValue": "acme"}},
    )
    status = cli("status", "--json")
    assert status.json()["dead_letters"]["visible"] == 1

    moved = cli("redrive", "--dead-letters-only", "--json")
    assert moved.code == 0, moved.err
    assert moved.json()["dead_letters_moved"] == 1
    assert stack.drain()
    record, _ = state(stack).get("acme", "invoice", invoice_id)
    assert record is not None and record.status is SyncStatus.SYNCED
    assert len(invoices(stack, number)) == 1
    assert cli("status", "--json").json()["dead_letters"]["total"] == 0


def test_many_events_need_yes_when_nobody_can_answer(
    stack: LocalStack, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the confirmation size and with no terminal to ask, a replay without --yes exits 1
    with one line naming --yes, and queues nothing."""
    monkeypatch.setattr(redrive_command, "CONFIRM_ABOVE", 0)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    refused = cli("replay", "--from", "1d", "--to", "now")
    assert refused.code == 1
    assert "--yes" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert "Traceback" not in refused.err


def test_errors_are_one_line_and_non_zero(
    stack: LocalStack, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown connection, an unreadable time and unreachable AWS each give one line on stderr
    and a non-zero exit, never a traceback."""
    ghost = cli("redrive", "--connection", "ghost")
    assert (ghost.code, ghost.err.strip()) == (
        1,
        "invoice-sync: unknown connection 'ghost' (registered: acme)",
    )
    bad = cli("replay", "--from", "yesterday-ish", "--to", "now")
    assert bad.code == 2 and "cannot read 'yesterday-ish'" in bad.err

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = cli("status", "--target", str(_target_path(tmp_path, stack)), target=False)
    assert down.code == 1
    assert down.err.startswith("invoice-sync: AWS unreachable")
    assert len(down.err.strip().splitlines()) == 1
    assert "Traceback" not in down.err + down.out


def _target_path(tmp_path: Path, stack: LocalStack) -> Path:
    """A target whose AWS endpoint is a port nobody listens on."""
    path = tmp_path / "down.json"
    data = json.loads(stack.target().model_dump_json())
    data["aws_endpoint"] = "http://127.0.0.1:9"
    path.write_text(json.dumps(data))
    return path


def test_replay_rewrites_only_the_invoices_a_new_mapping_changes(stack: LocalStack, cli: Cli) -> None:
    """Given ACME-0001 synced with Hosting on item 3 and an operator who then maps Hosting to
    item 2, a plain redelivery leaves the ledger alone, the dry run calls ACME-0001 an update
    (and an invoice the change does not touch unchanged), and the replay rewrites the one QBO
    invoice in place: its Hosting line now on item 2, still one document, with the new mapping
    version recorded; replaying again writes nothing more."""
    assert post(stack, (EVENTS / "a1_invoice.finalized.current.json").read_bytes()) == "queued"
    assert stack.drain()
    (invoice,) = invoices(stack, "ACME-0001")

    def hosting_items(document: dict[str, object]) -> set[str]:
        lines = document["Line"]
        assert isinstance(lines, list)
        return {
            str(line["SalesItemLineDetail"]["ItemRef"]["value"])
            for line in lines
            if line.get("DetailType") == "SalesItemLineDetail"
            and "Hosting" in str(line.get("Description", ""))
        }

    assert hosting_items(invoice) == {"3"}
    version = add_rule(stack, "prod_Hosting", item="2")

    today = datetime.now(UTC).date().isoformat()
    dry = cli("replay", "--from", today, "--to", today, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    verdicts = {e["source_number"]: e["verdict"] for e in dry.json()["events"] if e["kind"] == "invoice"}
    assert verdicts["ACME-0001"] == "update"
    assert (invoices(stack, "ACME-0001")[0]) == invoice  # the dry run wrote nothing

    replayed = cli("replay", "--from", today, "--to", today, "--yes", "--json")
    assert replayed.code == 0, replayed.err
    assert stack.drain()
    (rewritten,) = invoices(stack, "ACME-0001")
    assert rewritten["Id"] == invoice["Id"]
    assert hosting_items(rewritten) == {"2"}
    record, _ = state(stack).get("acme", "invoice", "in_1QaCurrentAcme01")
    assert record is not None and (record.status, record.mapping_version) == (SyncStatus.SYNCED, version)

    writes = len([r for r in stack.sandbox.request_log if r[0] == "POST"])  # type: ignore[attr-defined]
    again = cli("replay", "--from", today, "--to", today, "--yes", "--json")
    assert again.code == 0, again.err
    assert stack.drain()
    assert len([r for r in stack.sandbox.request_log if r[0] == "POST"]) == writes  # type: ignore[attr-defined]
