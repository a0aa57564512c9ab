"""``invoice-sync secret``: a connection's webhook signing secret and Stripe API key stored from
standard input, on the local stack, and what intake then accepts."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from invoice_sync import bootstrap
from invoice_sync.sources.stripe import signature_header
from invoice_sync.store.secrets import SecretStore
from invoice_sync_ops.local.stack import LocalStack
from invoice_sync_ops.target import from_file
from tests.e2e.conftest import CliResult

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
Cli = Callable[..., CliResult]
NEW_SECRET = "whsec_rotated_secret_for_tests_0001"


def _with_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _post_signed(stack: LocalStack, secret: str) -> int:
    body = (EVENTS / "a1_invoice.finalized.current.json").read_bytes()
    header = signature_header(body, [secret], int(time.time()))
    bootstrap.reset()  # a fresh intake, as after SECRET_CACHE_SECONDS in Lambda
    response = httpx.post(
        stack.webhook_url(),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response.status_code


def test_a_rotation_accepts_both_secrets_until_it_is_retired(
    stack: LocalStack, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the demo connection's secret, when a new one is stored with --rotate, then webhooks
    signed with either are accepted; after --retire only the new one is; the secret never shows
    in the output."""
    old = stack.company.webhook_secret
    _with_stdin(monkeypatch, NEW_SECRET + "\n")
    rotated = cli("secret", "webhook", "--rotate", "--json")
    assert rotated.code == 0, rotated.err
    assert rotated.json()["active_secrets"] == 2
    assert NEW_SECRET not in rotated.out + rotated.err
    assert _post_signed(stack, NEW_SECRET) == 200
    assert _post_signed(stack, old) == 200

    retired = cli("secret", "webhook", "--retire")
    assert retired.code == 0, retired.err
    assert "1 active" in retired.out
    assert _post_signed(stack, NEW_SECRET) == 200
    assert _post_signed(stack, old) == 401

    _with_stdin(monkeypatch, old + "\n")  # leave the stack as the other tests expect it
    assert cli("secret", "webhook").code == 0
    assert _post_signed(stack, old) == 200


def test_bad_values_are_one_line_and_store_nothing(
    stack: LocalStack, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given values that cannot be a Stripe signing secret or API key, or nothing at all, each is
    refused with one line and exit 1, the stored secret unchanged and the value not echoed."""
    for kind, value in (
        ("webhook", "not-a-whsec-value-at-all"),
        ("webhook", "whsec_short"),
        ("webhook", ""),
        ("stripe-api", "pk_test_publishable_is_not_secret"),
    ):
        _with_stdin(monkeypatch, value + "\n")
        result = cli("secret", kind)
        assert result.code == 1, (kind, value)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert not value or value not in result.err + result.out
    assert _post_signed(stack, stack.company.webhook_secret) == 200

    _with_stdin(monkeypatch, "whsec_for_a_connection_nobody_made\n")
    unknown = cli("secret", "webhook", "--connection", "nobody")
    assert unknown.code == 1 and "unknown connection 'nobody'" in unknown.err


def test_the_stripe_key_is_stored_for_try_and_backfill(
    stack: LocalStack, cli: Cli, monkeypatch: pytest.MonkeyPatch, target_file: Path
) -> None:
    """Given a restricted Stripe key on standard input, it is stored where try and backfill read
    it, reported in test mode, and never printed."""
    key = "rk_test_restricted_key_for_invoice_reads_01"
    _with_stdin(monkeypatch, key + "\n")
    result = cli("secret", "stripe-api", "--json")
    assert result.code == 0, result.err
    assert result.json()["mode"] == "test"
    assert key not in result.out + result.err
    target = from_file(target_file)
    stored = SecretStore(target.secrets_prefix, target.client("secretsmanager")).stripe_api_key("acme")
    assert stored.get_secret_value() == key
