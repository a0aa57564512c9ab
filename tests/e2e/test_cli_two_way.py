"""Turning payments back on (issue 7, two-way sync) with the operator CLI, on the local stack
(moto's server and the QuickBooks sandbox over HTTP): ``connect --payments-back`` and the tenant
directory, ``secret ledger-webhook|stripe-writer`` (stored, never printed), ``mappings import``
writing the tenant directory and ``mappings check`` saying what payments back still lacks, and
``log`` / ``status`` showing records that went back to Stripe."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.commands import connect
from invoice_sync_ops.local.stack import SECRETS_PREFIX, LocalStack
from tests.e2e.conftest import CliResult
from tests.e2e.test_cli_connect import Browser, connect_args

pytestmark = pytest.mark.e2e

Cli = Callable[..., CliResult]
WRITER_KEY = "rk_test_writer_key_for_payments_back_0001"
LEDGER_KEY = "qbo_verifier_token_for_tests_00000001"
OTHER_LEDGER_KEY = "qbo_verifier_token_for_tests_00000002"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Browser:
    stand_in = Browser()
    monkeypatch.setattr(connect, "open_browser", stand_in)
    for name in ("INVOICE_SYNC_CLIENT_ID", "INVOICE_SYNC_CLIENT_SECRET", "INVOICE_SYNC_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    return stand_in


@pytest.fixture
def mappings(stack: LocalStack) -> MappingsStore:
    assert stack.resources is not None
    return MappingsStore(stack.resources.mappings_table, stack.client("dynamodb"), cache_seconds=0)


@pytest.fixture
def secrets(stack: LocalStack) -> SecretStore:
    return SecretStore(SECRETS_PREFIX, stack.client("secretsmanager"), cache_seconds=0)


@pytest.fixture
def acme_restored(stack: LocalStack, mappings: MappingsStore, secrets: SecretStore) -> Iterator[None]:
    """The demo connection as the stack seeded it afterwards: payments back off, its ledger webhook
    key, its company in the tenant directory, no Stripe writer key."""
    before = mappings.connection("acme")
    assert before is not None
    yield
    now = mappings.connection("acme")
    assert now is not None
    mappings.put_connection(now.model_copy(update={"payments_back": False, "payments_back_since": None}))
    mappings.put_tenant_connection("quickbooks", stack.ledger.tenant_id, "acme")
    secrets.put_ledger_webhook_keys("acme", [stack.company.ledger_webhook_key])
    _forget_writer_key(stack)


def _forget_writer_key(stack: LocalStack) -> None:
    client = stack.client("secretsmanager")
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_secret(SecretId=f"{SECRETS_PREFIX}/acme/stripe-writer", ForceDeleteWithoutRecovery=True)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


# --- connect -------------------------------------------------------------------------------------


def test_connect_records_the_tenant_and_payments_back_on_says_what_is_missing(
    stack: LocalStack, cli: Cli, browser: Browser, mappings: MappingsStore
) -> None:
    """Given the QuickBooks sandbox, when a new connection is made with `--payments-back on`, then
    it is registered with payments back on since about now, the company's tenant directory item
    names it, and the output says to store the Stripe writer key and the ledger webhook key and
    to give Intuit the connection's ledger webhook address; no secret is printed."""
    tenant = stack.ledger.tenant_id
    try:
        result = cli("connect", *connect_args("quickbooks", "gamma", "--payments-back", "on"))
        assert result.code == 0, result.err
        gamma = mappings.connection("gamma")
        assert gamma is not None
        assert gamma.payments_back is True and gamma.payments_back_since is not None
        assert mappings.tenant_connection("quickbooks", tenant) == "gamma"
        text = " ".join(result.out.split())
        assert "Payments back is on for gamma" in text
        assert "invoice-sync secret stripe-writer --connection gamma" in text
        assert "invoice-sync secret ledger-webhook --connection gamma" in text
        assert "/ledger-webhooks/quickbooks/gamma" in text
        assert "local-client-secret" not in result.out + result.err
        assert browser.page().status_code == 200

        plain = cli("connect", *connect_args("quickbooks", "delta", "--json"))
        assert plain.code == 0, plain.err
        shown = plain.json()
        assert (shown["payments_back"], shown["stripe_writer_key"]) == (False, None)
        delta = mappings.connection("delta")
        assert delta is not None and delta.payments_back is False
        assert mappings.tenant_connection("quickbooks", tenant) == "delta"  # the last connect wins
    finally:
        mappings.put_tenant_connection("quickbooks", tenant, "acme")


def test_payments_back_on_and_off_on_a_reconnect_is_a_mapping_version(
    stack: LocalStack, cli: Cli, browser: Browser, mappings: MappingsStore, acme_restored: None
) -> None:
    """Given the demo connection (payments back off), when it is reconnected with `--payments-back
    on`, then the flag is on, payments_back_since is set, and the change is a new mapping version
    in history; on again keeps the same since; off turns it off and keeps since (so turning it on
    later does not widen what is mirrored); the secrets it already has are not asked for."""
    before = mappings.connection("acme")
    assert before is not None and before.payments_back is False
    on = cli("connect", *connect_args("quickbooks", "acme", "--payments-back", "on", "--json"))
    assert on.code == 0, on.err
    shown = on.json()
    assert shown["payments_back"] is True
    # The stack seeds the ledger webhook key, not the writer key.
    assert (shown["stripe_writer_key"], shown["ledger_webhook_key"]) == (False, True)
    acme = mappings.connection("acme")
    assert acme is not None and acme.payments_back is True
    assert acme.mapping_version == before.mapping_version + 1
    since = acme.payments_back_since
    assert since is not None and shown["payments_back_since"] == since.isoformat(timespec="seconds")
    history = cli("mappings", "history", "--connection", "acme", "--json").json()
    assert history["versions"][-1]["file"] == "connect --payments-back on"
    assert history["versions"][-1]["changes"]["settings"] == 2
    assert mappings.tenant_connection("quickbooks", stack.ledger.tenant_id) == "acme"

    again = cli("connect", *connect_args("quickbooks", "acme", "--payments-back", "on"))
    assert again.code == 0, again.err
    same = mappings.connection("acme")
    assert same is not None and (same.payments_back_since, same.mapping_version) == (
        since,
        acme.mapping_version,
    )
    text = " ".join(again.out.split())
    assert "secret stripe-writer" in text and "secret ledger-webhook" not in text

    off = cli("connect", *connect_args("quickbooks", "acme", "--payments-back", "off"))
    assert off.code == 0, off.err
    assert "Payments back is off for acme" in " ".join(off.out.split())
    stopped = mappings.connection("acme")
    assert stopped is not None and stopped.payments_back is False
    assert stopped.payments_back_since == since


# --- secrets -------------------------------------------------------------------------------------


def test_ledger_webhook_key_is_stored_replaced_or_added_and_never_printed(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, secrets: SecretStore, acme_restored: None
) -> None:
    """Given a key on standard input, `secret ledger-webhook` replaces the stored keys with it;
    with --add the earlier key is kept after the new one (a rotation); the key never reaches
    stdout or stderr."""
    _stdin(monkeypatch, LEDGER_KEY + "\n")
    replaced = cli("secret", "ledger-webhook", "--connection", "acme", "--json")
    assert replaced.code == 0, replaced.err
    assert replaced.json()["active_keys"] == 1
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("acme")] == [LEDGER_KEY]

    _stdin(monkeypatch, OTHER_LEDGER_KEY + "\n")
    added = cli("secret", "ledger-webhook", "--connection", "acme", "--add")
    assert added.code == 0, added.err
    assert "2 active" in added.out
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("acme")] == [
        OTHER_LEDGER_KEY,
        LEDGER_KEY,
    ]
    for result in (replaced, added):
        assert LEDGER_KEY not in result.out + result.err
        assert OTHER_LEDGER_KEY not in result.out + result.err


def test_stripe_writer_key_is_stored_and_never_printed(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, secrets: SecretStore, acme_restored: None
) -> None:
    """Given a restricted key on standard input, `secret stripe-writer` stores it where payments
    back reads it, says test mode, and never prints it; a full secret key is stored with a note
    that a restricted key is enough."""
    _stdin(monkeypatch, WRITER_KEY + "\n")
    result = cli("secret", "stripe-writer", "--connection", "acme", "--json")
    assert result.code == 0, result.err
    assert (result.json()["mode"], result.json()["restricted"]) == ("test", True)
    assert WRITER_KEY not in result.out + result.err
    assert secrets.stripe_writer_key("acme").get_secret_value() == WRITER_KEY

    full = "sk_test_full_secret_key_for_writes_000001"
    _stdin(monkeypatch, full + "\n")
    noted = cli("secret", "stripe-writer", "--connection", "acme")
    assert noted.code == 0, noted.err
    assert "restricted key" in noted.err and full not in noted.out + noted.err


def test_bad_two_way_secrets_are_one_line_and_store_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, secrets: SecretStore, acme_restored: None
) -> None:
    """Given values that cannot be the key asked for (a Stripe value as the ledger's key, a short
    one, nothing, a publishable key as the writer key), each is refused with one line and exit 1,
    not echoed, and the stored keys are unchanged."""
    held = [k.get_secret_value() for k in secrets.ledger_webhook_keys("acme")]
    for kind, value in (
        ("ledger-webhook", "whsec_this_is_stripes_signing_secret"),
        ("ledger-webhook", "short"),
        ("ledger-webhook", ""),
        ("stripe-writer", "pk_test_publishable_is_not_secret_0001"),
    ):
        _stdin(monkeypatch, value + "\n")
        result = cli("secret", kind, "--connection", "acme")
        assert result.code == 1, (kind, value)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert not value or value not in result.out + result.err
    assert [k.get_secret_value() for k in secrets.ledger_webhook_keys("acme")] == held
    with pytest.raises(Exception, match="Stripe writer key"):
        secrets.stripe_writer_key("acme")


# --- mappings ------------------------------------------------------------------------------------


def test_import_writes_the_tenant_directory_and_check_wants_the_writer_key(
    stack: LocalStack,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    mappings: MappingsStore,
    tmp_path: Path,
    acme_restored: None,
) -> None:
    """Given acme's company missing from the tenant directory and no Stripe writer key, when a
    mapping with payments_back: true is imported, then the directory names acme again and
    `mappings check` exits 1 naming the missing writer key (the seeded ledger webhook key is not
    reported, and no key value is printed); once the writer key is stored, check is clean."""
    assert stack.resources is not None
    _forget_writer_key(stack)
    stack.client("dynamodb").delete_item(
        TableName=stack.resources.mappings_table,
        Key={"pk": {"S": f"TENANT#quickbooks#{stack.ledger.tenant_id}"}, "sk": {"S": "CONNECTION"}},
    )
    assert mappings.tenant_connection("quickbooks", stack.ledger.tenant_id) is None
    original = tmp_path / "acme.yaml"
    assert cli("mappings", "export", str(original), "--connection", "acme").code == 0
    document = yaml.safe_load(original.read_text())
    document["settings"]["payments_back"] = True
    changed = tmp_path / "acme-payments-back.yaml"
    changed.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        imported = cli("mappings", "import", str(changed), "--connection", "acme")
        assert imported.code == 0, imported.err
        assert mappings.tenant_connection("quickbooks", stack.ledger.tenant_id) == "acme"

        missing = cli("mappings", "check", "--connection", "acme", "--json")
        assert missing.code == 1, missing.err
        problems = [p for p in missing.json()["problems"] if p["source_value"] == "payments_back"]
        assert len(problems) == 1
        assert "no Stripe writer key" in problems[0]["problem"]
        assert stack.company.ledger_webhook_key not in missing.out + missing.err

        _stdin(monkeypatch, WRITER_KEY + "\n")
        assert cli("secret", "stripe-writer", "--connection", "acme").code == 0
        clean = cli("mappings", "check", "--connection", "acme")
        assert clean.code == 0, clean.out + clean.err
        assert WRITER_KEY not in clean.out + clean.err
    finally:
        assert cli("mappings", "import", str(original), "--connection", "acme").code == 0


# --- log and status ------------------------------------------------------------------------------


def test_log_and_status_show_a_payment_sent_back_to_stripe(
    stack: LocalStack, cli: Cli, mappings: MappingsStore, acme_restored: None
) -> None:
    """Given a ledger payment record written as payments back writes one (to_source, synced onto
    a Stripe payment record) and a parked one, when `log` runs, then both show with ← and their
    kind, --direction to_source selects only them, JSON gives direction, the Stripe invoice and
    the Stripe object; `status` counts the parked one by reason and says payments back is on."""
    assert stack.resources is not None
    state = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    for source_id, status, error, stripe_object in (
        ("190:147", SyncStatus.SYNCED, None, "pr_1TwoWayRecord01"),
        ("191:148", SyncStatus.REJECTED, "paid on both sides", None),
    ):
        state.save(
            SyncRecord(
                connection_id="acme",
                kind="ledger_payment",
                source_id=source_id,
                direction="to_source",
                status=status,
                ledger_id=source_id.split(":")[0],
                ledger_number=source_id.split(":")[1],
                source_number="ACME-0190",
                source_target="in_1TwoWayInvoice01",
                stripe_object=stripe_object,
                currency="USD",
                source_total=4000,
                ledger_total=4000,
                last_error=error,
                alerted_reason=error,
            ),
            0,
        )
    acme = mappings.connection("acme")
    assert acme is not None
    mappings.put_connection(acme.model_copy(update={"payments_back": True}))

    back = cli("log", "--direction", "to_source", "--connection", "acme", "--json")
    assert back.code == 0, back.err
    by_id = {r["source_id"]: r for r in back.json()}
    assert set(by_id) == {"190:147", "191:148"}
    assert by_id["190:147"]["direction"] == "to_source"
    assert (by_id["190:147"]["source_target"], by_id["190:147"]["stripe_object"]) == (
        "in_1TwoWayInvoice01",
        "pr_1TwoWayRecord01",
    )
    assert all(
        r["direction"] == "to_ledger"
        for r in cli("log", "--direction", "to_ledger", "--connection", "acme", "--json").json()
    )
    table = cli("log", "--kind", "ledger_payment", "--connection", "acme")
    assert table.code == 0
    for expected in ("dir", "←", "ledger_payment", "190:147", "paid on both sides"):
        assert expected in table.out

    status = cli("status", "--json")
    assert status.code == 0, status.err
    (shown,) = [c for c in status.json()["connections"] if c["connection_id"] == "acme"]
    assert shown["parked"]["rejected"]["reasons"].get("paid on both sides") == 1
    assert shown["payments_back"]["on"] is True
    assert shown["payments_back"]["ledger_webhook_key"] is True
    assert "payments back" in cli("status").out
