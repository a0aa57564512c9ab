"""``invoice-sync log`` and ``status`` on the local stack: the sync log read back through the
table's indexes after real webhooks synced into the QuickBooks sandbox, and the deployment's
health (queues, parked reasons, tokens, ledger use) as people and scripts read it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from invoice_sync.models.mapping import Connection
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops import demo
from invoice_sync_ops.local.stack import SECRETS_PREFIX, LocalStack
from tests.e2e.conftest import CliResult

Cli = Callable[..., CliResult]
INVOICE, PAYMENT, UNMAPPED = "in_1QaCurrentAcme01", "inpay_1QaAcmePay0001", "in_1QcUnmapped01"
RECORD_KEYS = {
    "connection_id",
    "kind",
    "direction",
    "source_id",
    "source_number",
    "source_version",
    "status",
    "ledger_id",
    "ledger_number",
    "amount",
    "currency",
    "source_total",
    "ledger_total",
    "mapping_version",
    "reason",
    "alerted_reason",
    "attempts",
    "event_id",
    "archive_key",
    "source_target",
    "stripe_object",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module", autouse=True)
def synced(stack: LocalStack) -> None:
    """ACME-0001 finalized and paid (one invoice, one payment in QBO), GAMMA-0007 unmapped."""
    demo.send(stack, "a1_invoice.finalized.current.json")
    assert stack.drain()
    for fixture in ("a2_invoice.paid.current.json", "c1_invoice.finalized.unmapped_product.current.json"):
        assert demo.send(stack, fixture).status_code == 200
    assert stack.drain()


def _sandbox(stack: LocalStack, entity: str) -> list[dict[str, object]]:
    response = httpx.get(f"{stack.ledger_url}/_sandbox/companies/{stack.ledger.tenant_id}/{entity}")
    response.raise_for_status()
    documents: list[dict[str, object]] = response.json()
    return documents


def test_log_says_what_synced_into_which_document_and_what_is_parked(stack: LocalStack, cli: Cli) -> None:
    """The log (--json) lists the invoice and its payment as synced into the very QBO documents
    the sandbox holds, with mapping version 1 and the amount, and the unmapped invoice as
    needs_mapping with the product named; every record has the same keys."""
    result = cli("log", "--json")
    assert result.code == 0, result.err
    records = {r["source_id"]: r for r in result.json()}
    (invoice,) = [d for d in _sandbox(stack, "Invoice") if d["DocNumber"] == "ACME-0001"]
    (payment,) = _sandbox(stack, "Payment")
    assert records[INVOICE]["status"] == "synced"
    assert (records[INVOICE]["ledger_id"], records[INVOICE]["ledger_number"]) == (invoice["Id"], "ACME-0001")
    assert (records[INVOICE]["amount"], records[INVOICE]["currency"]) == ("1677.86", "USD")
    assert records[INVOICE]["mapping_version"] == 1
    assert records[PAYMENT]["ledger_id"] == payment["Id"]
    assert records[UNMAPPED]["status"] == "needs_mapping"
    assert "prod_Mystery" in records[UNMAPPED]["reason"]
    assert all(set(r) == RECORD_KEYS for r in result.json())
    assert {r["direction"] for r in result.json()} == {"to_ledger"}
    times = [r["updated_at"] for r in result.json()]
    assert times == sorted(times, reverse=True)  # newest first


def test_log_filters(cli: Cli) -> None:
    """--status (repeatable), --kind, --source-id (any kind), --since (relative or ISO) and
    --limit each narrow the log to what they say."""
    parked = cli("log", "--status", "needs_mapping", "--status", "rejected", "--json").json()
    assert [r["source_id"] for r in parked] == [UNMAPPED]
    payments = cli("log", "--kind", "payment", "--json").json()
    assert [r["source_id"] for r in payments] == [PAYMENT]
    by_id = cli("log", "--source-id", PAYMENT, "--json").json()
    assert [(r["kind"], r["source_id"]) for r in by_id] == [("payment", PAYMENT)]
    assert cli("log", "--since", "1h", "--status", "synced", "--json").json() != []
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    assert cli("log", "--since", future, "--json").json() == []
    assert len(cli("log", "--limit", "1", "--json").json()) == 1


def test_log_table_for_people(cli: Cli) -> None:
    """Without --json the log is a table naming the documents, statuses and the parked reason."""
    result = cli("log")
    assert result.code == 0
    for expected in ("ACME-0001", "synced", "needs_mapping", "1677.86 USD", "prod_Mystery", "map v", "dir"):
        assert expected in result.out
    assert "→" in result.out and "←" not in result.out  # everything here went into the ledger


def test_log_errors_are_one_line(cli: Cli) -> None:
    """An unreadable --since exits 2, an unknown connection 1; one line each, no traceback."""
    bad = cli("log", "--since", "last tuesday")
    assert bad.code == 2
    assert bad.err.strip().startswith("invoice-sync: cannot read 'last tuesday' as a time")
    ghost = cli("log", "--connection", "ghost")
    assert ghost.code == 1
    assert ghost.err.strip() == "invoice-sync: unknown connection 'ghost' (registered: acme)"
    assert "Traceback" not in bad.err + ghost.err


def test_status_counts_queues_parked_reasons_tokens_and_ledger_use(stack: LocalStack, cli: Cli) -> None:
    """status --json: empty queues after the drain, the parked record counted under its reason,
    the connection's tokens dated (never their values), today's ledger requests as counted, the
    last sync time; the table shows the same for people."""
    assert stack.resources is not None
    store = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    today = datetime.now(UTC).date().isoformat()
    before = store.ledger_use("acme", today)
    store.add_ledger_use("acme", today, 7, 1)
    result = cli("status", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["queue"] == {"visible": 0, "in_flight": 0, "delayed": 0, "total": 0}
    assert data["dead_letters"]["total"] == 0
    (acme,) = data["connections"]
    assert acme["parked"]["needs_mapping"] == {"total": 1, "reasons": {"mapping missing": 1}}
    assert acme["parked"]["rejected"]["total"] == 0
    tokens = acme["tokens"]
    assert tokens["connected"] is True
    assert tokens["refresh_expires_in_seconds"] > 0
    assert 0 <= tokens["age_seconds"] < 3600
    assert acme["ledger_use"]["requests"] == before[0] + 7
    assert acme["ledger_use"]["throttled"] == before[1] + 1
    assert (acme["ledger_use"]["daily_limit"], acme["ledger_use"]["per_minute_limit"]) == (None, 500)
    assert acme["last_synced_at"] is not None
    table = cli("status")
    assert table.code == 0
    for expected in ("Queues", "dead letters", "mapping missing", "quickbooks", "500/min"):
        assert expected in table.out
    held = SecretStore(SECRETS_PREFIX, stack.client("secretsmanager")).ledger_tokens("acme")
    assert held.access_token is not None
    for secret in (held.access_token, held.refresh_token, held.client_secret):
        assert secret.get_secret_value() not in result.out + table.out


def test_status_says_not_connected_for_a_connection_without_tokens(stack: LocalStack, cli: Cli) -> None:
    """A registered connection with no OAuth tokens shows as not connected (exit 0); the other
    connection is unaffected."""
    assert stack.resources is not None
    mappings = MappingsStore(stack.resources.mappings_table, stack.client("dynamodb"))
    mappings.put_connection(Connection(connection_id="beta", tenant_id="000"))
    dynamodb = stack.client("dynamodb")
    try:
        result = cli("status", "--json")
        assert result.code == 0, result.err
        by_id = {c["connection_id"]: c for c in result.json()["connections"]}
        assert by_id["beta"]["tokens"]["connected"] is False
        assert by_id["acme"]["tokens"]["connected"] is True
        assert "not connected" in cli("status").out
    finally:
        for key in ({"pk": "CONN#beta", "sk": "CONNECTION"}, {"pk": "CONNECTIONS", "sk": "beta"}):
            dynamodb.delete_item(
                TableName=stack.resources.mappings_table, Key={k: {"S": v} for k, v in key.items()}
            )
    assert [c["connection_id"] for c in cli("status", "--json").json()["connections"]] == ["acme"]
