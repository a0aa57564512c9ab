"""End-to-end: ``invoice-sync connect`` runs the OAuth authorization-code grant against each ledger
sandbox over real HTTP (consent page, loopback redirect listener, token endpoint, company lookup),
stores the tokens in moto's Secrets Manager and registers the connection in its Mappings table.

A browser stand-in replaces ``webbrowser.open``: it follows the consent page's address with httpx,
as a browser would, and lands on the listener, whose page tells the real outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from rich.console import Console

from invoice_sync.models.tokens import TokenSet
from invoice_sync_ops.cli import main
from invoice_sync_ops.commands import Context, connect
from invoice_sync_ops.local.stack import LocalStack
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

pytestmark = pytest.mark.e2e

CLIENT_ID = "local-client"  # what the local stack seeds every sandbox tenant with
CLIENT_SECRET = "local-client-secret"
COMPANY = "Acme Books (sandbox)"


@pytest.fixture(scope="module", params=["quickbooks", "xero", "freshbooks"])
def ledger_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """One local stack per ledger (moto's server and that ledger's sandbox), shared by the module."""
    with LocalStack(ledger=request.param) as running:
        yield running


@pytest.fixture(scope="module")
def target_path(ledger_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("target") / "target.json"
    ledger_stack.target().write(path)
    return path


@dataclass
class Browser:
    """Follows the consent page's address in a thread, as the person's browser would; ``tamper``
    may rewrite the redirect before it reaches the listener."""

    tamper: Callable[[str], str] | None = None
    pages: list[httpx.Response] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return True

    def _visit(self, url: str) -> None:
        with httpx.Client(timeout=30) as http:
            consent = http.get(url)
            if consent.status_code != 302:
                self.pages.append(consent)
                return
            location = consent.headers["Location"]
            self.redirects.append(location)
            self.pages.append(http.get(self.tamper(location) if self.tamper else location))

    def page(self) -> httpx.Response:
        for thread in self._threads:
            thread.join(timeout=30)
        return self.pages[-1]


@dataclass
class Run:
    code: int
    out: str
    err: str
    browser: Browser

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Browser:
    stand_in = Browser()
    monkeypatch.setattr(connect, "open_browser", stand_in)
    return stand_in


@pytest.fixture
def run(
    target_path: Path, browser: Browser, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """``invoice-sync connect LEDGER ARGS --target <stack>`` in this process, listener on any port."""
    for name in ("INVOICE_SYNC_CLIENT_ID", "INVOICE_SYNC_CLIENT_SECRET", "INVOICE_SYNC_CONNECTION"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, command: str = "connect") -> Run:
        capsys.readouterr()
        code = main([command, *args, "--target", str(target_path)])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, browser)

    return invoke


@pytest.fixture
def consent(ledger_stack: LocalStack) -> Iterator[Any]:
    """The sandbox's consent page, put back to "grant every tenant of the client" afterwards."""
    sandbox = ledger_stack.sandbox
    assert isinstance(sandbox, QuickBooksSandbox | XeroSandbox | FreshBooksSandbox)
    yield sandbox
    sandbox.set_consent()


def context(target_path: Path) -> Context:
    args = argparse.Namespace(target=str(target_path), stack=None, local=False, region=None)
    return Context(args=args, console=Console(), errors=Console(stderr=True))


def connect_args(ledger: str, connection: str, *extra: str) -> list[str]:
    return [
        ledger,
        "--connection",
        connection,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--port",
        "0",
        "--timeout",
        "20",
        *extra,
    ]


def secrets_in(ctx: Context, connection_id: str) -> list[str]:
    stored = ctx.secrets.ledger_tokens(connection_id)
    assert stored.access_token is not None
    return [
        CLIENT_SECRET,
        stored.refresh_token.get_secret_value(),
        stored.access_token.get_secret_value(),
    ]


def own(stack: LocalStack, name: str) -> str:
    """A connection id of this ledger's tests: moto's state is one per process, so the stacks of
    the three ledgers see each other's connections."""
    return f"{name}-{stack.ledger.kind}"


def token_posts(stack: LocalStack) -> int:
    log: list[tuple[str, str, int]] = stack.sandbox.request_log  # type: ignore[attr-defined]
    return sum(1 for method, path, _ in log if method == "POST" and "token" in path)


def code_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


# --------------------------------------------------------------------------------------------------
# Every ledger


def test_connect_registers_a_new_connection_whose_stored_tokens_work(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given the local stack of a ledger and its app's client credentials,
    when `connect LEDGER --connection beta --json` runs and the browser allows access,
    then it exits 0 with the company's name and tenant, the browser tab says "Connected", the
    connection is registered with that tenant, and the token set in Secrets Manager lets the
    adapter push would build call the ledger; no secret reaches stdout or stderr."""
    ledger = ledger_stack.ledger
    beta = own(ledger_stack, "beta")
    result = run(*connect_args(ledger.kind, beta, "--json"))

    assert result.code == 0, result.err
    shown = result.json()
    assert shown["connection"] == beta
    assert shown["created"] is True
    assert (shown["ledger"], shown["company"], shown["tenant_id"]) == (ledger.kind, COMPANY, ledger.tenant_id)
    assert shown["access_expires_at"]
    page = result.browser.page()
    assert page.status_code == 200
    assert "Connected" in page.text
    assert COMPANY in page.text

    ctx = context(target_path)
    registered = ctx.connection(beta)
    assert (registered.ledger, registered.tenant_id, registered.source) == (
        ledger.kind,
        ledger.tenant_id,
        "stripe",
    )
    stored = ctx.secrets.ledger_tokens(beta)
    assert stored.client_id == CLIENT_ID
    assert stored.access_token is not None
    assert stored.refresh_expires_at is not None or ledger.kind != "quickbooks"
    # ... and its dates (never the tokens) are where the daily report reads token health.
    dates = ctx.state.token_dates(beta)
    assert dates is not None and dates.access_expires_at == stored.access_expires_at
    # The adapter push would build, from what connect stored, reaches the ledger with it.
    assert ctx.ledger(beta).find_invoice("NO-SUCH-0001") is None
    method, path, status = ledger_stack.sandbox.request_log[-1]  # type: ignore[attr-defined]
    assert (method, status) == ("GET", 200), path

    captured = result.out + result.err
    for secret in [*secrets_in(ctx, beta), code_of(result.browser.redirects[-1])]:
        assert secret not in captured


def test_connect_prints_a_table_with_the_company_and_token_expiry(
    ledger_stack: LocalStack, run: Callable[..., Run]
) -> None:
    """Given a ledger sandbox, when `connect` runs without --json, then stdout shows the redirect
    URI to register, and a table naming the connection, ledger, company, tenant and token expiry."""
    gamma = own(ledger_stack, "gamma")
    result = run(*connect_args(ledger_stack.ledger.kind, gamma))

    assert result.code == 0, result.err
    assert "Redirect URI" in result.out
    assert "http://localhost:" in result.out
    for text in (
        gamma,
        ledger_stack.ledger.kind,
        COMPANY,
        ledger_stack.ledger.tenant_id,
        "access token until",
    ):
        assert text in result.out


def test_refused_consent_is_one_line_and_exit_1(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run], consent: Any
) -> None:
    """Given the person refuses access on the consent page (error=access_denied on the redirect),
    when `connect` runs, then it exits 1 with one line on stderr saying access was not allowed, the
    browser tab says "Not connected", and nothing is registered or stored."""
    consent.set_consent(refuse=True)
    result = run(*connect_args(ledger_stack.ledger.kind, own(ledger_stack, "refused")))

    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "did not grant access" in lines[0]
    assert "access_denied" in lines[0]
    assert "Traceback" not in result.err
    page = result.browser.page()
    assert page.status_code == 400
    assert "Not connected" in page.text
    ctx = context(target_path)
    assert ctx.mappings.connection(own(ledger_stack, "refused")) is None


def test_a_redirect_with_another_state_is_refused(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given a redirect reaching the listener with a code but a state that is not this run's (a
    forged link or a stale tab), when `connect` runs, then it refuses in one line, exits 1, never
    redeems the code, and registers nothing."""
    exchanged: list[str] = []

    def forge(location: str) -> str:
        url = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        exchanged.append(query["code"])
        query["state"] = "not-this-runs-state"
        return url._replace(query=urlencode(query)).geturl()

    run_browser = connect.open_browser
    assert isinstance(run_browser, Browser)
    run_browser.tamper = forge
    token_posts_before = token_posts(ledger_stack)
    result = run(*connect_args(ledger_stack.ledger.kind, own(ledger_stack, "forged")))

    assert result.code == 1
    assert "state" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Not connected" in result.browser.page().text
    assert context(target_path).mappings.connection(own(ledger_stack, "forged")) is None
    assert exchanged  # a real code reached the listener ...
    assert token_posts(ledger_stack) == token_posts_before  # ... and was never presented


def test_wrong_client_secret_is_one_line_without_the_secret(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given a client secret the ledger does not know, when `connect` runs, then the token
    endpoint refuses the code exchange and the command says so in one line (exit 1) without
    echoing the secret; the browser tab says "Not connected"; nothing is registered."""
    wrong = "wrong-secret-7f3a9"
    args = connect_args(ledger_stack.ledger.kind, own(ledger_stack, "badclient"))
    args[args.index(CLIENT_SECRET)] = wrong
    result = run(*args)

    assert result.code == 1
    assert "client credentials" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert wrong not in result.out + result.err
    assert "Not connected" in result.browser.page().text
    assert context(target_path).mappings.connection(own(ledger_stack, "badclient")) is None


def test_no_redirect_within_the_timeout_is_one_line(
    ledger_stack: LocalStack, run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a browser that never comes back (the person closed the tab), when `connect` waits
    past --timeout, then it exits 1 with one line saying no redirect came."""
    monkeypatch.setattr(connect, "open_browser", lambda _url: True)
    args = connect_args(ledger_stack.ledger.kind, own(ledger_stack, "slow"))
    args[args.index("--timeout") + 1] = "0.5"
    result = run(*args)

    assert result.code == 1
    assert "no redirect" in result.err
    assert len(result.err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# Reconnecting, and never switching books silently (QuickBooks Online)


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_reconnecting_keeps_the_connection_and_its_rules(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given the demo connection acme with its mapping rules and stored client credentials, when
    `connect quickbooks --connection acme` runs without credentials (a reconnect after a revoked
    token), then it reuses the stored app, replaces the token set, keeps the connection's rules and
    settings, and reports it as updated, not created."""
    ctx = context(target_path)
    before = ctx.connection_mappings("acme")
    old_refresh = ctx.secrets.ledger_tokens("acme").refresh_token.get_secret_value()

    result = run("quickbooks", "--connection", "acme", "--port", "0", "--timeout", "20", "--json")

    assert result.code == 0, result.err
    assert result.json()["created"] is False
    after = ctx.connection_mappings("acme")
    assert after.connection == before.connection
    assert after.rules == before.rules
    assert ctx.secrets.ledger_tokens("acme").refresh_token.get_secret_value() != old_refresh
    assert ctx.ledger("acme").find_invoice("NO-SUCH-0002") is None


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_a_grant_for_other_books_never_switches_a_connection_silently(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run], consent: Any
) -> None:
    """Given connection delta wired to company A, when the person allows access to company B on the
    consent page, then `connect` refuses in one line (exit 1): delta keeps company A and its old
    working token set. With --force the same grant switches delta to company B."""
    other_realm = "9130355000000002"
    consent.seed_company(
        other_realm,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token="other-refresh",
        company_name="Other Books Ltd",
    )
    assert run(*connect_args("quickbooks", "delta")).code == 0
    ctx = context(target_path)
    tokens_before: TokenSet = ctx.secrets.ledger_tokens("delta")

    consent.set_consent(tenants=[other_realm])
    refused = run(*connect_args("quickbooks", "delta"))

    assert refused.code == 1
    assert len(refused.err.strip().splitlines()) == 1
    assert "refusing to switch" in refused.err
    assert "Other Books Ltd" in refused.err
    assert ctx.connection("delta").tenant_id == ledger_stack.ledger.tenant_id
    assert ctx.secrets.ledger_tokens("delta") == tokens_before
    assert "Not connected" in refused.browser.page().text

    forced = run(*connect_args("quickbooks", "delta", "--force", "--json"))

    assert forced.code == 0, forced.err
    assert forced.json()["tenant_id"] == other_realm
    assert forced.json()["company"] == "Other Books Ltd"
    assert ctx.connection("delta").tenant_id == other_realm


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_connect_refuses_to_turn_a_connection_into_another_ledger(run: Callable[..., Run]) -> None:
    """Given acme syncs into QuickBooks, when `connect xero --connection acme` runs, then it fails in
    one line before any browser opens."""
    result = run(*connect_args("xero", "acme"))

    assert result.code == 1
    assert "syncs into quickbooks" in result.err
    assert result.browser.opened == []


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_connections_lists_what_is_registered(run: Callable[..., Run]) -> None:
    """Given the demo connection acme, when `connections --json` runs, then it lists acme with its
    source, ledger, tenant, active flag and mapping version."""
    result = run("--json", command="connections")

    assert result.code == 0, result.err
    rows = {row["connection"]: row for row in result.json()}
    assert rows["acme"] == {
        "connection": "acme",
        "source": "stripe",
        "ledger": "quickbooks",
        "tenant_id": "9130355000000001",
        "active": True,
        "mapping_version": 1,
    }


# --------------------------------------------------------------------------------------------------
# A grant that covers several organisations (Xero) or businesses (FreshBooks)


@pytest.mark.parametrize("ledger_stack", ["xero", "freshbooks"], indirect=True)
def test_a_grant_of_several_tenants_needs_tenant_to_choose(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given an app whose grant reaches two organisations (Xero) or businesses (FreshBooks),
    when `connect` runs without --tenant, then it exits 1 listing both, registering nothing;
    with --tenant NAME it connects the one named, and its stored token reaches that tenant."""
    sandbox = ledger_stack.sandbox
    client, secret = "multi-client", "multi-secret"
    if isinstance(sandbox, XeroSandbox):
        ids = ["1b2c3d4e-0000-4000-8000-00000000000a", "1b2c3d4e-0000-4000-8000-00000000000b"]
        for tenant_id, name in zip(ids, ("North Ltd", "South Ltd"), strict=True):
            sandbox.seed_organisation(
                tenant_id, client_id=client, client_secret=secret, refresh_token=f"rt-{name}", name=name
            )
    else:
        assert isinstance(sandbox, FreshBooksSandbox)
        ids = ["NorTh", "SouTh"]
        for number, (tenant_id, name) in enumerate(zip(ids, ("North Ltd", "South Ltd"), strict=True)):
            sandbox.seed_account(
                tenant_id,
                business_id=910000 + number,
                client_id=client,
                client_secret=secret,
                refresh_token=f"rt-{name}",
                business_name=name,
            )
    base = ["--client-id", client, "--client-secret", secret, "--port", "0", "--timeout", "20"]

    ambiguous = run(ledger_stack.ledger.kind, "--connection", own(ledger_stack, "multi"), *base)

    assert ambiguous.code == 1
    assert "--tenant" in ambiguous.err
    assert ids[0] in ambiguous.err and ids[1] in ambiguous.err
    ctx = context(target_path)
    assert ctx.mappings.connection(own(ledger_stack, "multi")) is None

    chosen = run(
        ledger_stack.ledger.kind,
        "--connection",
        own(ledger_stack, "multi"),
        *base,
        "--tenant",
        "South Ltd",
        "--json",
    )

    assert chosen.code == 0, chosen.err
    assert (chosen.json()["tenant_id"], chosen.json()["company"]) == (ids[1], "South Ltd")
    assert ctx.connection(own(ledger_stack, "multi")).tenant_id == ids[1]
    assert ctx.ledger(own(ledger_stack, "multi")).find_invoice("NO-SUCH-0003") is None


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_an_https_redirect_uri_is_completed_by_pasting_the_address(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a redirect URI on https (Intuit's production apps and FreshBooks take no http one), no
    listener can receive the redirect; when the person pastes the address the browser landed on,
    then `connect` checks its state, exchanges its code for that redirect URI and connects."""
    landed: list[str] = []

    def browser(url: str) -> bool:
        assert parse_qs(urlsplit(url).query)["redirect_uri"] == ["https://books.example.test/oauth/done"]
        landed.append(httpx.get(url, timeout=10).headers["Location"])  # the page it lands on
        return True

    prompts: list[str] = []

    def paste(prompt: str) -> str:
        prompts.append(prompt)
        return landed[-1] + "\n"

    monkeypatch.setattr(connect, "open_browser", browser)
    monkeypatch.setattr(connect, "read_pasted", paste)
    pasted = own(ledger_stack, "pasted")
    result = run(
        *connect_args("quickbooks", pasted, "--redirect-uri", "https://books.example.test/oauth/done")
    )

    assert result.code == 0, result.err
    assert prompts and "paste" in prompts[0]
    assert context(target_path).connection(pasted).tenant_id == ledger_stack.ledger.tenant_id
    assert code_of(landed[-1]) not in result.out + result.err


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_a_local_stack_without_the_ledgers_sandbox_never_opens_the_real_consent_page(
    run: Callable[..., Run],
) -> None:
    """Given the local stack plays QuickBooks, when `connect freshbooks` runs against it, then it
    fails in one line naming `local up --ledger freshbooks`, and no browser opens on FreshBooks."""
    result = run(*connect_args("freshbooks", "elsewhere"))

    assert result.code == 1
    assert "local up --ledger freshbooks" in result.err
    assert result.browser.opened == []


@pytest.mark.parametrize("ledger_stack", ["quickbooks"], indirect=True)
def test_the_installed_command_prints_the_address_on_one_line_with_no_browser(
    ledger_stack: LocalStack, target_path: Path
) -> None:
    """Given `invoice-sync connect --no-browser` run as a person runs it (the installed script,
    output to a pipe, the secret in INVOICE_SYNC_CLIENT_SECRET), when the printed consent address is
    opened, then it is whole on one line (not wrapped), the browser tab says "Connected", the command
    exits 0, and the secret appears nowhere in its output."""
    connection = own(ledger_stack, "piped")
    env = {**os.environ, "INVOICE_SYNC_CLIENT_SECRET": CLIENT_SECRET}
    command = [
        str(Path(sys.executable).with_name("invoice-sync")),
        "connect",
        "quickbooks",
        "--connection",
        connection,
        "--client-id",
        CLIENT_ID,
        "--no-browser",
        "--port",
        "0",
        "--timeout",
        "30",
        "--target",
        str(target_path),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdout is not None
        printed: list[str] = []
        while not (printed and printed[-1].startswith("http")):
            line = process.stdout.readline()
            assert line, "the command ended before printing the consent address"
            printed.append(line)
        page = httpx.get(printed[-1].strip(), follow_redirects=True, timeout=30)
        out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err
    assert "Connected" in page.text
    assert "state=" in printed[-1]
    assert CLIENT_SECRET not in "".join(printed) + out + err
    assert context(target_path).connection(connection).tenant_id == ledger_stack.ledger.tenant_id


# --------------------------------------------------------------------------------------------------
# Payments back on FreshBooks: connect registers the payment callback itself (design two-way 3.2)


@pytest.mark.parametrize("ledger_stack", ["freshbooks"], indirect=True)
def test_payments_back_on_freshbooks_registers_a_verifiable_callback(
    ledger_stack: LocalStack, target_path: Path, run: Callable[..., Run]
) -> None:
    """Given the FreshBooks sandbox, when a connection is made with `--payments-back on` and the
    stack's ledger webhook address, then FreshBooks holds one `payment` callback to that address,
    the callback is recorded as pending (so its verify is believed), the ledger-webhook secret
    exists with no key yet, and FreshBooks' verification reaches the ledger events queue through
    the webhook route (answered 200); connecting again registers no second callback."""
    sandbox = ledger_stack.sandbox
    assert isinstance(sandbox, FreshBooksSandbox)
    fb = own(ledger_stack, "fbback")
    url = ledger_stack.ledger_webhook_url("freshbooks", fb)
    result = run(
        *connect_args("freshbooks", fb, "--payments-back", "on", "--ledger-webhook-url", url, "--json")
    )
    assert result.code == 0, result.err
    callback = result.json()["callback"]
    assert (callback["registered"], callback["uri"], callback["verified"]) == (True, url, False)
    account = result.json()["tenant_id"]
    mine = [c for c in sandbox.callbacks(account) if c["uri"] == url]
    assert [(str(c["callbackid"]), c["event"]) for c in mine] == [(callback["callback_id"], "payment")]

    ctx = context(target_path)
    pending = ctx.state.pending_callback(fb, callback["callback_id"])
    assert pending is not None and pending.state == "pending"
    raw = ctx.target.client("secretsmanager").get_secret_value(
        SecretId=f"{ctx.secrets.prefix}/{fb}/ledger-webhook"
    )
    assert json.loads(raw["SecretString"]) == {"keys": []}

    assert sandbox.webhooks.wait_for_deliveries(20)
    verifies = [d for d in sandbox.webhooks.deliveries(account) if d["url"] == url]
    assert verifies and all(d["event"] == "callback.verify" for d in verifies)
    assert any(a["status"] == 200 for d in verifies for a in d["attempts"])
    queued = [m for m in ledger_stack.ledger_events() if m.get("connection_id") == fb]
    assert {m["kind"] for m in queued} == {"callback_verify"}
    verifier = parse_qs(verifies[0]["body"])["verifier"][0]
    assert verifier not in result.out + result.err

    again = run(
        *connect_args("freshbooks", fb, "--payments-back", "on", "--ledger-webhook-url", url, "--json")
    )
    assert again.code == 0, again.err
    assert again.json()["callback"]["callback_id"] == callback["callback_id"]
    assert len([c for c in sandbox.callbacks(account) if c["uri"] == url]) == 1
