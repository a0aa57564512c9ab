"""``invoice-sync connect LEDGER``: authorise invoice-sync in a ledger and register the connection;
``invoice-sync connections``: list what is registered.

The OAuth 2.0 authorization-code grant, run from the operator's machine:

1. a ``state`` (and, for Xero, a PKCE verifier) for this run; the consent page opened in the
   browser (or its address printed);
2. the ledger redirects to the loopback listener (``oauth_flow``), or the person pastes the address
   the browser landed on; the ``state`` is checked in constant time, an ``error`` ends the run;
3. the code is exchanged at the token endpoint with the same parser push uses for refreshes;
4. the tenant is found (QBO: ``realmId`` on the redirect; Xero: ``/connections``; FreshBooks:
   ``/users/me`` memberships) with its company name;
5. a connection already wired to other books is never switched silently (``--force``);
6. the token set is saved to Secrets Manager, then the connection registered and its company
   recorded in the tenant directory (ledger webhooks name their company: design two-way 3.2), and
   only then does the browser tab say "connected".

``--payments-back on|off`` turns payments back (ledger payments mirrored to Stripe) on or off for
the connection, as a mapping version of its own; turned on, ``payments_back_since`` is now unless
set already, and the command says which secrets are still missing and the ledger webhook address
to give the ledger. FreshBooks registers its webhooks only through its API, so for FreshBooks the
command registers the ``payment`` callback itself (design two-way 3.2): the connection's
``ledger-webhook`` secret is created empty, the callback recorded as pending (``FBHOOK#``), and
FreshBooks asked to send its verification again, now that a pending registration will believe it.

No secret (client secret, code, tokens) is printed, logged or put in an error message.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr, ValidationError
from rich.table import Table
from rich.text import Text

from invoice_sync.errors import ConnectionBroken, TokenRevoked
from invoice_sync.ledgers.http import retry_after_seconds, token_grant
from invoice_sync.ledgers.quickbooks.client import MINOR_VERSION
from invoice_sync.models.mapping import Connection, LedgerKind
from invoice_sync.models.tokens import TokenSet
from invoice_sync.settings import Settings
from invoice_sync_ops.commands import COMMON, CliError, Context
from invoice_sync_ops.commands.mappings import payments_back_secrets, set_payments_back
from invoice_sync_ops.commands.secret import LEDGER_WEBHOOK_KEY
from invoice_sync_ops.oauth_flow import (
    Callback,
    Pkce,
    RedirectListener,
    authorize_url,
    new_state,
    parse_redirect,
    state_matches,
)
from invoice_sync_ops.target import Target

# Ledgers only redirect to registered URIs, so the listener's port is fixed unless told otherwise.
DEFAULT_PORT = 8765
DEFAULT_TIMEOUT_SECONDS = 300.0
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")

# What a browser stand-in (tests) or the person's browser does with the consent page's address.
open_browser: Callable[[str], bool] = webbrowser.open


def ask(prompt: str) -> str:
    """One line typed by the person; the prompt goes to stderr so ``--json`` keeps stdout clean."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline()


# How a pasted redirect address is read (``--redirect-uri`` that is not a loopback listener).
read_pasted: Callable[[str], str] = ask


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str


@dataclass(frozen=True)
class LedgerOAuth:
    """What differs between the three ledgers' authorization-code grants."""

    kind: LedgerKind
    title: str
    name: str  # as the adapters name it in messages
    noun: str  # what the ledger calls the books a connection posts into
    authorize_env: str  # a target's ledger_environment key (the local sandbox's consent page)
    authorize_default: str
    scopes: tuple[str, ...]
    pkce: bool
    json_body: bool  # FreshBooks takes the grant as JSON with the client credentials inside
    new_connection: tuple[tuple[str, str], ...]  # Connection defaults that differ by ledger

    def token_url(self, settings: Settings) -> str:
        return {
            "quickbooks": settings.quickbooks_token_url,
            "xero": settings.xero_token_url,
            "freshbooks": settings.freshbooks_token_url,
        }[self.kind]


LEDGERS: dict[str, LedgerOAuth] = {
    "quickbooks": LedgerOAuth(
        kind="quickbooks",
        title="QuickBooks Online",
        name="QBO",
        noun="company",
        authorize_env="QUICKBOOKS_AUTHORIZE_URL",
        authorize_default="https://appcenter.intuit.com/connect/oauth2",
        scopes=("com.intuit.quickbooks.accounting",),
        pkce=False,
        json_body=False,
        new_connection=(("no_tax_code", "NON"),),
    ),
    "xero": LedgerOAuth(
        kind="xero",
        title="Xero",
        name="Xero",
        noun="organisation",
        authorize_env="XERO_AUTHORIZE_URL",
        authorize_default="https://login.xero.com/identity/connect/authorize",
        # Xero's granular scopes (apps created since March 2026 have only these): invoices and
        # credit notes, payments, contacts; settings for accounts, tax rates, items and the
        # organisation. offline_access brings the refresh token. Older apps: --scope.
        scopes=(
            "offline_access",
            "accounting.invoices",
            "accounting.payments",
            "accounting.contacts",
            "accounting.settings",
        ),
        pkce=True,
        json_body=False,
        new_connection=(("no_tax_code", "NONE"),),
    ),
    "freshbooks": LedgerOAuth(
        kind="freshbooks",
        title="FreshBooks",
        name="FreshBooks",
        noun="business",
        authorize_env="FRESHBOOKS_AUTHORIZE_URL",
        authorize_default="https://auth.freshbooks.com/oauth/authorize",
        scopes=(
            "user:profile:read",
            "user:clients:read",
            "user:clients:write",
            "user:invoices:read",
            "user:invoices:write",
            "user:payments:read",
            "user:payments:write",
            "user:credit_notes:read",
            "user:credit_notes:write",
            "user:taxes:read",
            "user:items:read",
            # Payouts as deposits: the fees of a payout are one expense (design two-way 3.9).
            "user:expenses:read",
            "user:expenses:write",
        ),
        pkce=False,
        json_body=True,
        new_connection=(("no_tax_code", ""),),
    ),
}
XERO_CONNECTIONS_URL = "https://api.xero.com/connections"

# What the browser tab and the terminal say about the OAuth errors a consent page returns.
CONSENT_ERRORS = {
    "access_denied": "access was not allowed on the consent page",
    "invalid_scope": "the app may not ask for these scopes (check the app's scopes, or pass --scope)",
    "unauthorized_client": "the app may not use the authorization-code grant",
    "unsupported_response_type": "the consent page does not take response_type=code",
    "invalid_request": "the consent page refused the request (check the redirect URI registered)",
    "server_error": "the consent page failed; try again later",
    "temporarily_unavailable": "the consent page is busy; try again later",
}


# --------------------------------------------------------------------------------------------------
# Registration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connect = subparsers.add_parser(
        "connect",
        parents=[COMMON],
        help="authorise invoice-sync in a ledger and register the connection",
        description=(
            "Open the ledger's consent page, wait for its redirect on a loopback listener, store the "
            "tokens in Secrets Manager and register (or reconnect) the connection. "
            "See docs/cli-connect.md."
        ),
    )
    connect.add_argument("ledger", choices=tuple(LEDGERS), help="the ledger to connect")
    connect.add_argument(
        "--client-id",
        help="the app's OAuth client id (or INVOICE_SYNC_CLIENT_ID; default for a reconnect: the one stored)",
    )
    connect.add_argument(
        "--client-secret",
        help="the app's client secret; prefer INVOICE_SYNC_CLIENT_SECRET or the prompt, since a "
        "command line is visible to other users of the machine",
    )
    connect.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the redirect listener's port (default {DEFAULT_PORT}, registered as "
        f"http://localhost:{DEFAULT_PORT}/callback; 0 for any free port)",
    )
    connect.add_argument(
        "--redirect-uri",
        help="the redirect URI registered in the ledger's developer portal; an http one on "
        "localhost or 127.0.0.1 is listened on, any other (https) means pasting the address the "
        "browser lands on",
    )
    connect.add_argument("--no-browser", action="store_true", help="print the consent page's address only")
    connect.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for the redirect (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    connect.add_argument(
        "--scope",
        action="append",
        help="a scope to ask for instead of the ledger's defaults (repeatable, or space-separated)",
    )
    connect.add_argument(
        "--tenant",
        help="the organisation (Xero) or business (FreshBooks) to connect, by id or name, when the "
        "grant covers several",
    )
    connect.add_argument(
        "--source", choices=("stripe", "generic"), help="a new connection's invoicing source (default stripe)"
    )
    connect.add_argument(
        "--payments-back",
        choices=("on", "off"),
        help="mirror payments recorded in the ledger to Stripe (on) or stop (off); unset: unchanged "
        "(a new connection: off). See `invoice-sync secret stripe-writer` and `secret ledger-webhook`",
    )
    connect.add_argument(
        "--ledger-webhook-url",
        help="the stack's ledger webhook address for this connection, when the stack cannot say "
        "(default: the LedgerWebhookUrl output); FreshBooks callbacks are registered to it",
    )
    connect.add_argument(
        "--force",
        action="store_true",
        help="let an existing connection switch to a different company (its rules name the old one's)",
    )
    connect.set_defaults(func=run)

    if "connections" not in subparsers.choices:
        listing = subparsers.add_parser(
            "connections", parents=[COMMON], help="list the registered connections"
        )
        listing.set_defaults(func=run_connections)


# --------------------------------------------------------------------------------------------------
# connect


def run(args: argparse.Namespace, ctx: Context) -> int:
    spec = LEDGERS[args.ledger]
    connection_id = _connection_id(ctx)
    existing = ctx.mappings.connection(connection_id)
    if existing is not None and existing.ledger != spec.kind:
        raise CliError(
            f"connection {connection_id} syncs into {existing.ledger}, not {spec.kind}: reconnect it "
            f"with `invoice-sync connect {existing.ledger}`, or name a new --connection"
        )
    if existing is not None and args.source and args.source != existing.source:
        raise CliError(
            f"connection {connection_id} takes {existing.source} webhooks; --source only names a new "
            "connection's source"
        )
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a TCP port (0 to 65535)")
    if args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds")
    target = ctx.target
    authorize_base = _authorize_base(spec, target)
    settings = target.settings()
    client_id, client_secret = _credentials(args, ctx, connection_id, existing)
    scopes = " ".join(" ".join(args.scope).split()) if args.scope else " ".join(spec.scopes)
    state = new_state()
    pkce = Pkce() if spec.pkce else None

    with _redirect(args) as redirect:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect.redirect_uri,
            "scope": scopes,
            "state": state,
        }
        if pkce is not None:
            params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
        url = authorize_url(authorize_base, params)
        _say(ctx, f"Redirect URI (register it in the {spec.title} developer portal): {redirect.redirect_uri}")
        if args.no_browser:
            _say(ctx, f"Open this address in a browser to allow access:\n{url}")
        else:
            _say(
                ctx,
                f"Opening the {spec.title} consent page in your browser. If it does not open, visit:\n{url}",
            )
            if not open_browser(url):
                _say(ctx, "No browser could be opened: open the address above by hand.")
        callback = redirect.wait(args.timeout)
        try:
            with httpx.Client(timeout=settings.ledger_timeout_seconds) as http:
                outcome = _complete(
                    ctx,
                    args,
                    spec,
                    callback,
                    http=http,
                    settings=settings,
                    connection_id=connection_id,
                    existing=existing,
                    state=state,
                    redirect_uri=redirect.redirect_uri,
                    client_id=client_id,
                    client_secret=client_secret,
                    pkce=pkce,
                )
        except BaseException as exc:
            callback.answer(False, _browser_text(exc))
            raise
        callback.answer(
            True,
            f"invoice-sync connection {connection_id} now posts into {outcome['company']} "
            f"({spec.title}). You can close this tab.",
        )

    if args.payments_back == "on" and spec.kind == "freshbooks":
        # After the browser hears "connected": the connection stands even if this fails (run again).
        outcome["callback"] = _register_freshbooks_callback(ctx, args, settings, outcome)
    table = Table(title=f"Connected to {spec.title}", title_justify="left")
    for column in ("connection", "ledger", "company", "tenant", "access token until", "refresh token until"):
        table.add_column(column)
    table.add_row(
        *(
            Text(str(cell))
            for cell in (
                outcome["connection"],
                spec.kind,
                outcome["company"],
                outcome["tenant_id"],
                outcome["access_expires_at"] or "",
                outcome["refresh_expires_at"] or "no expiry given",
            )
        )
    )
    ctx.emit(outcome, table)
    if outcome["created"]:
        _say(
            ctx,
            f"Next: `invoice-sync secret webhook --connection {outcome['connection']}` (the signing "
            "secret, on stdin), `invoice-sync mappings import FILE`, `mappings check`, then `try` "
            "one invoice (docs/cli-connect.md).",
        )
    if args.payments_back is not None:
        _say(ctx, _payments_back_next(ctx, args, spec, outcome))
    return 0


# FreshBooks: the callback payments back listens to (its parent event: create, update and delete).
FRESHBOOKS_CALLBACK_EVENT = "payment"


def _register_freshbooks_callback(
    ctx: Context, args: argparse.Namespace, settings: Settings, outcome: dict[str, Any]
) -> dict[str, Any]:
    """Registers (or finds) the connection's ``payment`` callback at its ledger webhook address and
    makes it verifiable: the empty ``ledger-webhook`` secret (so the worker adds the verifier with
    PutSecretValue only), the pending item the verify delivery is believed for, and a resend of
    the verification (the first one may have arrived before the pending item existed). ``None``
    for the address when the stack cannot say it: nothing registered."""
    connection_id, account = outcome["connection"], outcome["tenant_id"]
    url = args.ledger_webhook_url or ledger_webhook_url(ctx.target, "freshbooks", connection_id)
    if url.startswith("<"):
        return {"registered": False, "uri": None, "callback_id": None, "verified": False}
    tokens = ctx.secrets.ledger_tokens(connection_id)
    assert tokens.access_token is not None
    api = settings.freshbooks_api_base.rstrip("/")
    base = f"{api}/events/account/{quote(account, safe='')}/events/callbacks"
    headers = {
        "Authorization": f"Bearer {tokens.access_token.get_secret_value()}",
        "Accept": "application/json",
    }
    ctx.secrets.ensure_ledger_webhook_secret(connection_id)
    with httpx.Client(timeout=settings.ledger_timeout_seconds, headers=headers) as http:
        listed = _freshbooks_call(http, "GET", base, "callbacks")
        callbacks = listed.get("callbacks") if isinstance(listed, dict) else None
        mine = [
            c
            for c in (callbacks if isinstance(callbacks, list) else [])
            if isinstance(c, dict) and c.get("uri") == url and c.get("event") == FRESHBOOKS_CALLBACK_EVENT
        ]
        if mine and mine[0].get("verified"):
            return {
                "registered": True,
                "uri": url,
                "callback_id": str(mine[0]["callbackid"]),
                "verified": True,
            }
        callback: Any
        if mine:
            callback = mine[0]
        else:
            created = _freshbooks_call(
                http, "POST", base, "callback", {"callback": {"event": FRESHBOOKS_CALLBACK_EVENT, "uri": url}}
            )
            callback = created.get("callback") if isinstance(created, dict) else None
            if not isinstance(callback, dict) or "callbackid" not in callback:
                raise CliError("FreshBooks' answer to the callback registration names no callback")
        callback_id = str(callback["callbackid"])
        ctx.state.put_pending_callback(connection_id, callback_id, FRESHBOOKS_CALLBACK_EVENT)
        _freshbooks_call(
            http, "PUT", f"{base}/{quote(callback_id, safe='')}", "callback", {"callback": {"resend": True}}
        )
    return {"registered": True, "uri": url, "callback_id": callback_id, "verified": False}


def _freshbooks_call(http: httpx.Client, method: str, url: str, what: str, body: Any = None) -> Any:
    """One call to FreshBooks' events API: its ``response.result``, or one line naming the status."""
    try:
        response = http.request(method, url, json=body)
    except httpx.TransportError as exc:
        raise CliError(f"FreshBooks unreachable registering its {what}: {exc.__class__.__name__}") from None
    if response.status_code >= 400:
        raise CliError(
            f"FreshBooks answered HTTP {response.status_code} registering the payments callback: the "
            "connection is stored; run connect again with --payments-back on"
        )
    try:
        data = response.json()
    except ValueError:
        raise CliError("FreshBooks' callbacks answer is not JSON") from None
    inner = data.get("response") if isinstance(data, dict) else None
    return inner.get("result") if isinstance(inner, dict) else None


def _payments_back_next(
    ctx: Context, args: argparse.Namespace, spec: LedgerOAuth, outcome: dict[str, Any]
) -> str:
    """What the person does next about payments back: the secrets still missing, where the ledger
    posts its webhooks, and the check that proves it is ready."""
    connection_id = outcome["connection"]
    if not outcome["payments_back"]:
        return (
            f"Payments back is off for {connection_id}: payments recorded in {spec.title} are no longer "
            f"sent to Stripe (its webhooks are answered and ignored; the secrets stay stored)."
        )
    lines = [
        f"Payments back is on for {connection_id}: payments recorded in {spec.title} since "
        f"{outcome['payments_back_since']} will be recorded on their Stripe invoices. Next:"
    ]
    step = 0
    if not outcome["stripe_writer_key"]:
        step += 1
        lines.append(
            f"  {step}. `invoice-sync secret stripe-writer --connection {connection_id}` (on stdin): a "
            "Stripe restricted key with Invoices and Payment Records write, Invoice Payments read"
        )
    url = args.ledger_webhook_url or ledger_webhook_url(ctx.target, spec.kind, connection_id)
    callback = outcome.get("callback")
    if spec.kind == "freshbooks" and callback and callback["verified"]:
        lines.append(f"  FreshBooks' payment callback {callback['callback_id']} to {url} is verified.")
    elif spec.kind == "freshbooks" and callback and callback["registered"]:
        lines.append(
            f"  FreshBooks' payment callback {callback['callback_id']} is registered to {url}; "
            "its verification comes by itself within the hour (`invoice-sync status` then shows the "
            "webhook key). If not, run connect again with --payments-back on."
        )
    elif spec.kind == "freshbooks":
        step += 1
        lines.append(
            f"  {step}. run connect again with --payments-back on --ledger-webhook-url {url} (the "
            "stack's API address in place of the <...>): FreshBooks' payment callback is registered there"
        )
    else:
        step += 1
        portal = "the Intuit developer portal" if spec.kind == "quickbooks" else "the Xero developer portal"
        events = "Payment" if spec.kind == "quickbooks" else "Invoices"
        lines.append(f"  {step}. in {portal}, set the app's webhook endpoint to {url} ({events} events)")
        if not outcome["ledger_webhook_key"]:
            step += 1
            lines.append(
                f"  {step}. `invoice-sync secret ledger-webhook --connection {connection_id}` (on stdin): "
                f"{LEDGER_WEBHOOK_KEY[spec.kind]}"
            )
    step += 1
    lines.append(
        f"  {step}. `invoice-sync mappings check --connection {connection_id}` reports nothing missing"
    )
    return "\n".join(lines)


def ledger_webhook_url(target: Target, ledger: str, connection_id: str) -> str:
    """Where the ledger posts its webhooks for this connection: the stack's ``LedgerWebhookUrl``
    (in the target, else read from the stack's outputs) with the ledger and connection filled
    in; a placeholder for the API's address when neither can say (an older target file)."""
    pattern = target.ledger_webhook_url
    if pattern is None and target.aws_endpoint is None:
        try:
            stacks = target.client("cloudformation").describe_stacks(StackName=target.name)["Stacks"]
        except (BotoCoreError, ClientError):
            stacks = []
        for output in stacks[0].get("Outputs", []) if stacks else []:
            if output.get("OutputKey") == "LedgerWebhookUrl":
                pattern = str(output["OutputValue"])
    if pattern:
        return pattern.replace("<ledger>", ledger).replace("<connection>", connection_id)
    return f"<the stack's API address>/ledger-webhooks/{ledger}/{connection_id}"


def _connection_id(ctx: Context) -> str:
    chosen = ctx.choose_connection(
        none="name the new connection: --connection ID (lowercase letters, digits, dashes)",
        several="pass --connection ID to reconnect one, or a new id to add one",
    )
    try:  # the model's own rule for ids, checked before anyone opens a browser
        Connection(connection_id=str(chosen), tenant_id="-")
    except ValidationError:
        raise CliError(
            f"connection id {chosen!r} is not valid: 2 to 63 lowercase letters, digits and dashes, "
            "starting with a letter or digit"
        ) from None
    return str(chosen)


def _authorize_base(spec: LedgerOAuth, target: Target) -> str:
    local = target.ledger_environment.get(spec.authorize_env)
    if local:
        return local
    if target.aws_endpoint is not None:
        # A local target without this ledger's sandbox: never send a person to the real one.
        raise CliError(
            f"the local stack has no {spec.title} sandbox: start it with "
            f"`invoice-sync local up --ledger {spec.kind}`"
        )
    return spec.authorize_default


def _credentials(
    args: argparse.Namespace, ctx: Context, connection_id: str, existing: Connection | None
) -> tuple[str, SecretStr]:
    client_id = args.client_id or os.environ.get("INVOICE_SYNC_CLIENT_ID") or None
    secret = args.client_secret or os.environ.get("INVOICE_SYNC_CLIENT_SECRET") or None
    if existing is not None and secret is None:
        # A reconnect (a revoked or lapsed token) keeps the app it was made with.
        try:
            stored = ctx.secrets.ledger_tokens(connection_id)
        except ConnectionBroken:
            stored = None
        if stored is not None and client_id in (None, stored.client_id):
            return stored.client_id, stored.client_secret
    interactive = sys.stdin.isatty()
    if client_id is None and interactive:
        client_id = ask("OAuth client id: ").strip() or None
    if secret is None and interactive:
        secret = getpass.getpass("OAuth client secret (not shown): ").strip() or None
    if client_id is None or secret is None:
        raise CliError(
            "no OAuth client credentials: pass --client-id and set INVOICE_SYNC_CLIENT_SECRET "
            "(or run in a terminal to be asked)"
        )
    return client_id, SecretStr(secret)


# --- the redirect: a loopback listener, or a pasted address ----------------------------------------


class Redirect(Protocol):
    @property
    def redirect_uri(self) -> str: ...

    def wait(self, timeout: float) -> Callback: ...


@dataclass
class _Listening:
    listener: RedirectListener

    @property
    def redirect_uri(self) -> str:
        return self.listener.redirect_uri

    def wait(self, timeout: float) -> Callback:
        callback = self.listener.wait(timeout)
        if callback is None:
            raise CliError(
                f"no redirect from the consent page within {timeout:.0f} s: run connect again "
                "(the redirect URI must be registered exactly as printed)"
            )
        return callback


@dataclass
class _Pasting:
    redirect_uri: str

    def wait(self, timeout: float) -> Callback:  # noqa: ARG002 - a person pastes at their own pace
        address = read_pasted("After allowing access, paste the address the browser landed on: ")
        try:
            return Callback(parse_redirect(address))
        except ValueError as exc:
            raise CliError(str(exc)) from None


@contextmanager
def _redirect(args: argparse.Namespace) -> Iterator[Redirect]:
    port, host, path = args.port, "localhost", "/callback"
    if args.redirect_uri:
        uri = urlsplit(args.redirect_uri)
        if uri.scheme not in ("http", "https") or not uri.hostname:
            raise CliError("--redirect-uri must be an http or https address")
        if uri.scheme != "http" or uri.hostname not in LOOPBACK_HOSTS:
            yield _Pasting(args.redirect_uri)
            return
        if uri.port is None:
            raise CliError("--redirect-uri on localhost needs its port (http://localhost:8765/callback)")
        port, host, path = uri.port, uri.hostname, uri.path or "/"
    try:
        listener = RedirectListener(port, host=host, path=path)
    except OSError as exc:
        raise CliError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc.__class__.__name__}): is another "
            "connect running? Free the port, or pass --port and register that redirect URI"
        ) from None
    with listener:
        yield _Listening(listener)


# --- after the redirect ----------------------------------------------------------------------------


def _complete(
    ctx: Context,
    args: argparse.Namespace,
    spec: LedgerOAuth,
    callback: Callback,
    *,
    http: httpx.Client,
    settings: Settings,
    connection_id: str,
    existing: Connection | None,
    state: str,
    redirect_uri: str,
    client_id: str,
    client_secret: SecretStr,
    pkce: Pkce | None,
) -> dict[str, Any]:
    params = callback.params
    if not state_matches(state, params.get("state")):
        raise CliError(
            "the redirect does not carry this run's state (a stale tab, another connect run, or a "
            "forged link): refused; run connect again"
        )
    error = params.get("error")
    if error is not None:
        reason = CONSENT_ERRORS.get(error, "the consent page answered with an error")
        raise CliError(f"{spec.title} did not grant access: {reason} ({_printable(error)})")
    code = params.get("code")
    if not code:
        raise CliError(f"{spec.title}'s redirect carried no authorization code")
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if pkce is not None:
        grant["code_verifier"] = pkce.verifier
    try:
        tokens = token_grant(
            http,
            spec.token_url(settings),
            grant,
            client_id=client_id,
            client_secret=client_secret,
            name=spec.name,
            json_body=spec.json_body,
            what="authorization code exchange",
        )
    except TokenRevoked as exc:
        if exc.code == "invalid_client":
            raise CliError(
                f"{spec.title} refused the client credentials: check the client id and secret "
                "(the app's keys for this environment)"
            ) from None
        raise CliError(
            f"{spec.title} refused the authorization code (expired, already used, or the redirect "
            "URI differs from the one registered): run connect again"
        ) from None
    tenants = _tenants(spec, tokens, params, http, settings, ctx.target)
    tenant = _choose(spec, tenants, args.tenant, existing)
    if existing is not None and existing.tenant_id != tenant.tenant_id:
        if not args.force:
            raise CliError(
                f"connection {connection_id} posts into {spec.title} {spec.noun} {existing.tenant_id}, "
                f"but this grant is for {tenant.name} ({tenant.tenant_id}): refusing to switch its "
                f"books. Name a new --connection, or pass --force to switch (its mapping rules name "
                f"the old {spec.noun}'s items and accounts)"
            )
        _say(
            ctx,
            f"Switching {connection_id} from {spec.noun} {existing.tenant_id} to {tenant.tenant_id} "
            "(--force): review its mapping rules, they name the old books' items and accounts.",
        )
    # Saved before the connection points at it and before the browser hears "connected": a
    # connection registered without working tokens would park every document it receives.
    ctx.secrets.save_ledger_tokens(connection_id, tokens)
    payments_back = {"on": True, "off": False}.get(args.payments_back or "")
    if existing is None:
        connection = Connection.model_validate(
            {
                "connection_id": connection_id,
                "source": args.source or "stripe",
                "ledger": spec.kind,
                "tenant_id": tenant.tenant_id,
                **dict(spec.new_connection),
                "payments_back": bool(payments_back),
                "payments_back_since": _now() if payments_back else None,
            }
        )
        ctx.mappings.put_connection(connection)
    else:
        # Only the tenant: rules, settings and the mapping version may have moved meanwhile.
        ctx.mappings.set_tenant(connection_id, tenant.tenant_id)
        connection = existing.model_copy(update={"tenant_id": tenant.tenant_id})
        if payments_back is not None:
            connection = set_payments_back(
                ctx, connection_id, payments_back, how=f"connect --payments-back {args.payments_back}"
            )
    # A ledger webhook names its company; this is how it finds the connection (the last connect
    # to a company wins: its webhooks can reach one connection only).
    ctx.mappings.put_tenant_connection(spec.kind, tenant.tenant_id, connection_id)
    # Whether the secrets payments back needs are stored (None: not asked, --payments-back unset or off).
    writer_key: bool | None = None
    webhook_key: bool | None = None
    if payments_back:
        writer_key, webhook_key = payments_back_secrets(ctx, connection)
    return {
        "connection": connection_id,
        "created": existing is None,
        "source": connection.source,
        "ledger": spec.kind,
        "company": tenant.name,
        "tenant_id": tenant.tenant_id,
        "access_expires_at": _iso(tokens.access_expires_at),
        "refresh_expires_at": _iso(tokens.refresh_expires_at),
        "redirect_uri": redirect_uri,
        "payments_back": connection.payments_back,
        "payments_back_since": _iso(connection.payments_back_since),
        # Only looked at when --payments-back on: whether each secret it needs is stored.
        "stripe_writer_key": writer_key,
        "ledger_webhook_key": webhook_key,
    }


def _tenants(
    spec: LedgerOAuth,
    tokens: TokenSet,
    params: dict[str, str],
    http: httpx.Client,
    settings: Settings,
    target: Target,
) -> list[Tenant]:
    """The books the new token reaches, with their names."""
    if spec.kind == "quickbooks":
        realm = params.get("realmId", "")
        if not realm:
            raise CliError("QuickBooks Online's redirect named no company (no realmId)")
        base = f"{settings.quickbooks_api_base.rstrip('/')}/v3/company/{quote(realm, safe='')}"
        body = _get(
            spec,
            http,
            tokens,
            f"{base}/companyinfo/{quote(realm, safe='')}",
            "company info",
            params={"minorversion": str(MINOR_VERSION)},
        )
        info = body.get("CompanyInfo") if isinstance(body, dict) else None
        name = info.get("CompanyName") if isinstance(info, dict) else None
        return [Tenant(realm, str(name or realm))]
    if spec.kind == "xero":
        url = target.ledger_environment.get("XERO_CONNECTIONS_URL") or XERO_CONNECTIONS_URL
        body = _get(spec, http, tokens, url, "connections")
        if not isinstance(body, list):
            raise CliError("Xero's /connections answer is not a list")
        return [
            Tenant(str(item["tenantId"]), str(item.get("tenantName") or item["tenantId"]))
            for item in body
            if isinstance(item, dict)
            and item.get("tenantId")
            and str(item.get("tenantType", "ORGANISATION")).upper() == "ORGANISATION"
        ]
    url = f"{settings.freshbooks_api_base.rstrip('/')}/auth/api/v1/users/me"
    body = _get(spec, http, tokens, url, "identity")
    response = body.get("response") if isinstance(body, dict) else None
    memberships = response.get("business_memberships") if isinstance(response, dict) else None
    found: list[Tenant] = []
    for membership in memberships if isinstance(memberships, list) else []:
        business = membership.get("business") if isinstance(membership, dict) else None
        # Only businesses with an accounting account can hold invoices.
        if isinstance(business, dict) and business.get("account_id"):
            account = str(business["account_id"])
            found.append(Tenant(account, str(business.get("name") or account)))
    return found


# Reading the company after the grant: 429 and passing 5xx are retried, each wait at most a minute
# (Xero's minute window), four tries in all.
READ_ATTEMPTS = 4
MAX_READ_WAIT = 60.0
RETRIED = frozenset({429, 502, 503, 504})
_sleep = time.sleep


def _get(
    spec: LedgerOAuth,
    http: httpx.Client,
    tokens: TokenSet,
    url: str,
    what: str,
    params: dict[str, str] | None = None,
) -> Any:
    assert tokens.access_token is not None
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            response = http.get(
                url,
                params=params,
                headers={
                    "Authorization": f"Bearer {tokens.access_token.get_secret_value()}",
                    "Accept": "application/json",
                },
            )
        except httpx.TransportError as exc:
            raise CliError(
                f"{spec.title} unreachable while reading its {what}: {exc.__class__.__name__}"
            ) from None
        # A 429 or a passing 5xx is the ledger's moment, not a failed connection: the grant was
        # spent already, so wait as it asks (capped) rather than make the person consent again.
        if response.status_code not in RETRIED or attempt == READ_ATTEMPTS:
            break
        wait = retry_after_seconds(response.headers)
        _sleep(min(wait if wait is not None else 2.0**attempt, MAX_READ_WAIT))
    if response.status_code in (401, 403):
        raise CliError(
            f"{spec.title} refused the new access token reading its {what} (HTTP {response.status_code})"
        )
    if response.status_code >= 400:
        raise CliError(f"{spec.title} answered HTTP {response.status_code} reading its {what}")
    try:
        return response.json()
    except ValueError:
        raise CliError(f"{spec.title}'s {what} answer is not JSON") from None


def _choose(
    spec: LedgerOAuth, tenants: list[Tenant], wanted: str | None, existing: Connection | None
) -> Tenant:
    listed = ", ".join(f"{t.tenant_id} ({t.name})" for t in tenants)
    if not tenants:
        raise CliError(
            f"the grant reaches no {spec.title} {spec.noun}: allow at least one on the consent page"
        )
    if wanted:
        by_id = [t for t in tenants if t.tenant_id == wanted]
        by_name = [t for t in tenants if t.name.casefold() == wanted.casefold()]
        chosen = by_id or by_name
        if len(chosen) == 1:
            return chosen[0]
        if len(chosen) > 1:
            raise CliError(f"several {spec.noun}s are named {wanted!r}: pass --tenant with an id ({listed})")
        raise CliError(f"--tenant {wanted!r} is not among the {spec.noun}s granted: {listed}")
    if len(tenants) == 1:
        return tenants[0]
    if existing is not None:
        for tenant in tenants:
            if tenant.tenant_id == existing.tenant_id:
                return tenant
    raise CliError(f"the grant covers {len(tenants)} {spec.noun}s: run again with --tenant ID ({listed})")


def _say(ctx: Context, text: str) -> None:
    """``ctx.say`` for text holding addresses and ledger-given names: never wrapped (a consent
    address must survive copying from a log) and never read as rich markup."""
    console = ctx.errors if ctx.json else ctx.console
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _browser_text(exc: BaseException) -> str:
    if isinstance(exc, CliError):
        return f"{exc} (see the terminal)."
    if isinstance(exc, KeyboardInterrupt):
        return "invoice-sync was interrupted; nothing was connected."
    return "invoice-sync could not finish connecting; the terminal says why."


def _printable(text: str) -> str:
    """A ledger-supplied word, safe for one terminal line."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    return cleaned[:60]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


# --------------------------------------------------------------------------------------------------
# connections


def run_connections(args: argparse.Namespace, ctx: Context) -> int:  # noqa: ARG001 - the CLI's signature
    connections = ctx.mappings.connections()
    rows = [
        {
            "connection": c.connection_id,
            "source": c.source,
            "ledger": c.ledger,
            "tenant_id": c.tenant_id,
            "active": c.active,
            "mapping_version": c.mapping_version,
        }
        for c in connections
    ]
    table = Table(title="Connections", title_justify="left")
    for column in ("connection", "source", "ledger", "tenant", "active", "mapping version"):
        table.add_column(column)
    for c in connections:
        cells = (c.connection_id, c.source, c.ledger, c.tenant_id, "yes" if c.active else "no")
        table.add_row(*(Text(cell) for cell in (*cells, str(c.mapping_version))))
    if not rows and not ctx.json:
        _say(ctx, "No connection registered yet: run `invoice-sync connect LEDGER --connection ID`.")
        return 0
    ctx.emit(rows, table)
    return 0
