"""The machinery every ledger sandbox shares, so each ledger module only has to say what is its own.

What lives here is mechanism: serving a WSGI app in a thread, logging ledger calls, Decimal-exact JSON,
the per-tenant fault queue and sliding-window limits, the ``/_sandbox/...`` control API, the webhook
subscriptions and delivery log (``webhooks.WebhookEmitter``; each ledger builds and signs its own
bodies) and the foreground runner. Paths, error bodies, status codes and headers stay in the ledger
modules: a sandbox is only worth having if it speaks its ledger's wire format, and those formats do not
agree.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import json
import math
import random
import re
import secrets
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypedDict, TypeVar
from urllib.parse import urlencode, urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from invoice_sync_ops.sandboxes.webhooks import WebhookEmitter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "BY_HAND_PAYMENTS",
    "BY_HAND_REMOVALS",
    "CENT",
    "CODE_TTL_SECONDS",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "WEBHOOKS",
    "WEBHOOKS_REMOVED",
    "ByHandPayment",
    "DemoCredentials",
    "GrantRefused",
    "SandboxServer",
    "TokenReader",
    "Traffic",
    "dumps",
    "encode_json",
    "expire_window",
    "foreground_parser",
    "loads",
    "money",
    "parse_number",
    "pkce_challenge",
    "removed_payment_id",
    "retry_after",
    "run_foreground",
    "seed_demo",
]

CENT = Decimal("0.01")
MINUTE = 60.0

DEMO_CLIENT_ID = "sandbox-client-id"
DEMO_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a public demo credential for the local stack

# What a gateway in front of the ledger sends when it gives up on a request the ledger went on to commit.
BAD_GATEWAY_HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"
# How a committed write's answer is lost: ``gateway`` a 502 page (a proxy gave up waiting),
# ``drop`` the connection closed with no answer at all (the client sees the server disconnect),
# ``mixed`` either, drawn at random.
LOST_AS = ("gateway", "drop", "mixed")
# The 5xx statuses a random ledger error answers with (error_rate).
ERROR_STATUSES = (500, 502, 503)


class _Dropped(Response):
    """A response never sent: ``_wsgi`` closes the connection instead."""


# --------------------------------------------------------------------------------------------------
# JSON with exact money


def decimal_number(value: Decimal) -> str:
    """A Decimal as a JSON number: two places (money's shape), or more if it has them (unit prices)."""
    cents = value.quantize(CENT)
    return format(cents if cents == value else value, "f")


def decimal_string(value: Decimal) -> str:
    """A Decimal as a JSON string, for ledgers whose money amounts are strings."""
    return json.dumps(format(value, "f"))


def encode_json(value: Any, decimal: Callable[[Decimal], str]) -> str:
    """Serialise to JSON writing each Decimal with ``decimal``; money never passes through float."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot serialise {value} as JSON")
        return decimal(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(str(k))}:{encode_json(v, decimal)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(v, decimal) for v in value) + "]"
    return json.dumps(value)


def dumps(value: Any) -> str:
    """Serialise to JSON writing Decimals as numbers (two places for money), never through float."""
    return encode_json(value, decimal_number)


def loads(raw: bytes) -> Any:
    """Parse a request body with every fraction as a Decimal, so money read in is exact."""
    return json.loads(raw, parse_float=Decimal)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_number(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number or numeric string, or None; each ledger words its own error."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    try:
        result = Decimal(value)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


# --------------------------------------------------------------------------------------------------
# What a person does in the ledger by hand

# The control call that plays a person recording a payment in the ledger:
# POST /_sandbox/<control_root>/<tenant>/payments-by-hand
BY_HAND_PAYMENTS = "payments-by-hand"
# ... and one removing a payment by hand (QBO voids it, Xero and FreshBooks delete it), body
# ``{"payment_id"}``: POST /_sandbox/<control_root>/<tenant>/payments-removed-by-hand
BY_HAND_REMOVALS = "payments-removed-by-hand"


@dataclass(frozen=True)
class ByHandPayment:
    """A payment a person records in the ledger against an invoice already there (a cheque, a bank
    feed match): no invoice-sync marker, the ledger's own rules and balances.

    The control body is ``{"invoice_id", "amount", "paid_on"?, "reference"?, "note"?, "account"?}``
    with ``amount`` a JSON number or numeric string and ``paid_on`` an ISO date."""

    invoice_id: str
    amount: Decimal
    paid_on: date | None = None
    reference: str | None = None  # the cheque number or bank reference
    note: str | None = None  # the ledger's memo of the payment
    account: str | None = None  # where the money lands (a ledger account id or code)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ByHandPayment:
        if not body.get("invoice_id"):
            raise ValueError("invoice_id is required")
        amount = parse_number(body.get("amount"))
        if amount is None:
            raise ValueError("amount must be a number")
        raw_day = body.get("paid_on")
        optional = {
            name: str(body[name]) if body.get(name) else None for name in ("reference", "note", "account")
        }
        return cls(
            invoice_id=str(body["invoice_id"]),
            amount=amount,
            paid_on=date.fromisoformat(str(raw_day)) if raw_day else None,
            **optional,
        )


def removed_payment_id(body: dict[str, Any]) -> str:
    """The ``payment_id`` of a ``payments-removed-by-hand`` control body."""
    if not body.get("payment_id"):
        raise ValueError("payment_id is required")
    return str(body["payment_id"])


# --------------------------------------------------------------------------------------------------
# Webhooks the sandbox sends

# The control calls for them: POST /_sandbox/<control_root>/<tenant>/webhooks with
# ``{"url", "key" (or "secret"), "format"?}`` subscribes; GET on the same path lists the
# subscriptions (no keys); GET /_sandbox/<control_root>/<tenant>/deliveries[?wait=<seconds>] is the
# delivery log (``wait``: first let the queued deliveries end, up to that many seconds).
WEBHOOKS = "webhooks"
# ... and POST /_sandbox/<control_root>/<tenant>/webhooks-removed with ``{"id"}`` unsubscribes.
WEBHOOKS_REMOVED = "webhooks-removed"
DELIVERIES = "deliveries"
MAX_WAIT_SECONDS = 30.0


# --------------------------------------------------------------------------------------------------
# Query languages


class TokenReader:
    """Reads the ``(kind, text)`` tokens of a small query language front to back; parsers add the grammar.

    ``pattern`` has one named group per token kind and skips leading blanks itself. ``fail`` makes the
    ledger's own parse error from a message, so the wording and status of errors stay the ledger's.
    """

    def __init__(
        self,
        pattern: re.Pattern[str],
        text: str,
        fail: Callable[[str], Exception],
        *,
        bad_character: str,  # a message with a {position} placeholder (1-based)
        unexpected_end: str,
    ) -> None:
        self.fail = fail
        self.unexpected_end = unexpected_end
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = pattern.match(text, pos)
            if match is None or match.end() == pos:
                raise fail(bad_character.format(position=pos + 1))
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self.fail(self.unexpected_end)
        self.pos += 1
        return token


# --------------------------------------------------------------------------------------------------
# Fault injection and limits


@dataclass(kw_only=True)
class Traffic:
    """A tenant's injected faults and call accounting; only touched under the sandbox lock.

    Its fields are keyword-only so a ledger's tenant dataclass can extend it and still have required fields.
    """

    injected: deque[int] = field(default_factory=deque)  # statuses the next calls answer instead
    # The share of calls answered 429 at random (after the injected ones), and the draw deciding.
    throttle_rate: float = 0.0
    throttle_draw: random.Random = field(default_factory=random.Random)
    # The share of calls answered 5xx at random instead of being served (a ledger having a bad
    # minute), and the share of committed writes whose answer is lost; one draw decides both.
    error_rate: float = 0.0
    lose_rate: float = 0.0
    lost_as: str = "gateway"  # how a lost answer looks: see LOST_AS
    fault_draw: random.Random = field(default_factory=random.Random)
    lose: int = 0  # how many more committed writes lose their answer
    minute: deque[float] = field(default_factory=deque)  # when the calls of the last minute came in
    in_flight: int = 0


def expire_window(window: deque[float], now: float, span: float = MINUTE) -> None:
    """Drop the calls that have left a sliding window of ``span`` seconds."""
    while window and window[0] <= now - span:
        window.popleft()


def retry_after(window: deque[float], now: float, span: float = MINUTE) -> int:
    """Whole seconds until the oldest call leaves a full window (at least 1, as Retry-After has it)."""
    return max(1, math.ceil(window[0] + span - now))


# --------------------------------------------------------------------------------------------------
# The OAuth 2.0 authorization-code grant (RFC 6749 section 4.1, PKCE per RFC 7636)

# All three ledgers let an authorization code live a few minutes; FreshBooks documents 5.
CODE_TTL_SECONDS = 300.0


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _Code:
    """What an issued authorization code is bound to: the code is worth nothing anywhere else."""

    client_id: str
    redirect_uri: str
    tenants: tuple[str, ...]
    expires_at: float
    challenge: str | None  # PKCE S256 challenge, for ledgers that take one


class GrantRefused(Exception):
    """The token endpoint's OAuth error for an authorization code it will not exchange."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


# --------------------------------------------------------------------------------------------------
# The server

TenantT = TypeVar("TenantT", bound=Traffic)


class SandboxServer(ABC, Generic[TenantT]):
    """An in-memory ledger served over HTTP. Thread-safe: one lock guards all tenant state.

    A subclass gives its API routes to ``__init__`` and answers them in ``_route``; this class owns the
    server thread, the tenants, the request log, JSON responses, fault bookkeeping and the ``/_sandbox``
    control API.
    """

    thread_name: ClassVar[str]
    # Paths of calls a client makes to the ledger; only those are logged, not control calls.
    logged_prefixes: ClassVar[tuple[str, ...]]
    json_type: ClassVar[str]
    # The collection segment of the control paths: /_sandbox/<control_root>/<tenant>/...
    control_root: ClassVar[str]
    # The body key naming the tenant in POST /_sandbox/<control_root>, echoed in the reply.
    seed_key: ClassVar[str]
    # Statuses besides 5xx that inject_status accepts.
    injectable: ClassVar[tuple[int, ...]] = (429,)
    # What the ledger calls a tenant (a QBO realm, a FreshBooks account), for KeyError messages.
    tenant_noun: ClassVar[str]
    # Where the ledger's consent page is (its path on the real authorization host).
    authorize_path: ClassVar[str]
    # Whether the ledger verifies a PKCE code_challenge (Xero does); others ignore one.
    supports_pkce: ClassVar[bool] = False
    # How many companies one authorization may cover (QBO: the one the person picks; Xero: several).
    tenants_per_grant: ClassVar[int | None] = 1
    # The webhook body formats a subscription may ask for, the default first; () for one format.
    webhook_formats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, clock: Callable[[], float], latency_seconds: float, rules: list[Rule]) -> None:
        self.latency_seconds = latency_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._tenants: dict[str, TenantT] = {}
        self.request_log: list[tuple[str, str, int]] = []
        self.base_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._codes: dict[str, _Code] = {}
        # No person clicks "Allow" here: the consent page answers at once, granting unless told not to.
        self._refuse_consent = False
        self._consent_tenants: tuple[str, ...] | None = None  # None: every tenant of the client
        # The webhooks this ledger sends; its delivery thread starts with the first delivery.
        self.webhooks = WebhookEmitter(self.thread_name, clock=clock)
        self._url_map = Map(
            [
                Rule(self.authorize_path, endpoint="oauth_authorize", methods=["GET"]),
                *rules,
                *self._control_rules(),
            ],
            strict_slashes=False,
        )

    # ---------------------------------------------------------------------------------------------
    # Lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread and return the base URL (``http://host:port``)."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = make_server(host, port, self.wsgi_app, threaded=True)
        self._server = server
        # A short poll interval keeps stop() quick; tests start and stop a server each.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://{host}:{server.server_port}"
        return self.base_url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.webhooks.stop()

    @property
    def wsgi_app(self) -> WSGIApplication:
        return self._wsgi

    # ---------------------------------------------------------------------------------------------
    # What each ledger supplies

    @abstractmethod
    def documents(self, tenant_id: str, kind: str, /) -> list[dict[str, Any]]: ...

    @abstractmethod
    def revoke_refresh_token(self, tenant_id: str, /) -> None: ...

    @abstractmethod
    def expire_access_tokens(self, tenant_id: str, /) -> None: ...

    @abstractmethod
    def _seed_tenant(self, tenant_id: str, options: dict[str, Any]) -> None:
        """Seed a tenant from the body of POST /_sandbox/<control_root> (less ``seed_key``)."""

    @abstractmethod
    def _route(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        """Answer a matched non-control endpoint."""

    # ---------------------------------------------------------------------------------------------
    # Webhooks

    def subscribe(self, tenant_id: str, url: str, key: str, *, format: str | None = None) -> dict[str, Any]:
        """Send the tenant's changes to ``url``, signed with ``key`` (the QBO verifier token, the Xero
        webhook key, the Stripe ``whsec_``), in ``format`` where the vendor has several (see
        ``webhook_formats``). Returns the subscription as the control API shows it (no key)."""
        with self._lock:
            self._tenant(tenant_id)
        if self.webhook_formats:
            format = format or self.webhook_formats[0]
            if format not in self.webhook_formats:
                raise ValueError(f"format is one of {', '.join(self.webhook_formats)}")
        elif format is not None:
            raise ValueError("this sandbox sends one webhook format: leave format out")
        return self.webhooks.subscribe(tenant_id, url, key, format=format).view()

    def unsubscribe(self, tenant_id: str, subscription_id: str) -> None:
        """Stop sending to a subscription (what is queued for it is still delivered)."""
        self.webhooks.unsubscribe(tenant_id, subscription_id)

    def deliveries(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Every webhook delivery so far (of one tenant, or all), oldest first, with each attempt's
        status: what tests assert on."""
        return self.webhooks.deliveries(tenant_id)

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook delivery has ended; False if some had not by ``timeout``."""
        return self.webhooks.wait_for_deliveries(timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """``wait_for_deliveries``, raising ``TimeoutError`` when they do not end in time."""
        self.webhooks.flush(timeout)

    def _emit(
        self,
        tenant_id: str,
        event: str,
        build: Callable[[Any], tuple[bytes, dict[str, str]] | None],
        *,
        sign: Callable[[Any], Callable[[bytes], dict[str, str]]] | None = None,
    ) -> None:
        """Queue one delivery per subscription of the tenant: ``build(subscription)`` gives the body
        and headers (None: nothing for that one); ``sign(subscription)`` optionally re-signs each
        attempt. Called under the sandbox lock, so the body shows the state the change left."""
        for subscription in self.webhooks.subscriptions(tenant_id):
            built = build(subscription)
            if built is None:
                continue
            body, headers = built
            self.webhooks.enqueue(
                tenant_id,
                subscription.url,
                body,
                headers,
                event=event,
                subscription_id=subscription.id,
                sign=sign(subscription) if sign is not None else None,
            )

    def _subscribe_call(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("key", body.get("secret"))
        if not body.get("url") or not key:
            raise ValueError("url and key are required")
        fmt = body.get("format")
        return self.subscribe(tenant_id, str(body["url"]), str(key), format=str(fmt) if fmt else None)

    # ---------------------------------------------------------------------------------------------
    # The consent page and authorization codes

    def set_consent(self, *, refuse: bool = False, tenants: Iterable[str] | None = None) -> None:
        """What the next visits to the consent page answer: ``error=access_denied`` when ``refuse``,
        else a code for ``tenants`` (default: every tenant seeded with the visiting client id)."""
        with self._lock:
            self._refuse_consent = refuse
            self._consent_tenants = tuple(tenants) if tenants is not None else None

    def _authorize(self, request: Request) -> Response:
        query = request.args
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        with self._lock:
            mine = [
                tenant_id
                for tenant_id, tenant in self._tenants.items()
                if client_id and secrets.compare_digest(str(getattr(tenant, "client_id", "")), client_id)
            ]
            # As the real consent pages do, an unknown client or a missing or odd redirect address gets
            # an error page, never a redirect: the address is not known to belong to the client.
            if not mine or urlsplit(redirect_uri).scheme not in ("http", "https"):
                page = "<html><body><h1>Invalid request</h1><p>unknown client_id or bad redirect_uri</p>"
                return Response(page, 400, content_type="text/html")
            answer: dict[str, str] = {}
            if query.get("response_type") != "code":
                answer["error"] = "unsupported_response_type"
            elif self._refuse_consent:
                answer["error"] = "access_denied"
            else:
                chosen = [t for t in mine if self._consent_tenants is None or t in self._consent_tenants]
                if self.tenants_per_grant is not None:
                    chosen = chosen[: self.tenants_per_grant]
                challenge = query.get("code_challenge") if self.supports_pkce else None
                if challenge and query.get("code_challenge_method", "plain") != "S256":
                    answer["error"] = "invalid_request"  # the sandbox only takes S256, as Xero advises
                elif not chosen:
                    answer["error"] = "access_denied"
                else:
                    code = secrets.token_urlsafe(24)
                    self._codes[code] = _Code(
                        client_id=client_id,
                        redirect_uri=redirect_uri,
                        tenants=tuple(chosen),
                        expires_at=self._clock() + CODE_TTL_SECONDS,
                        challenge=challenge or None,
                    )
                    answer = {"code": code, **self._redirect_extras(chosen)}
        if "state" in query:
            answer["state"] = query["state"]
        separator = "&" if urlsplit(redirect_uri).query else "?"
        location = f"{redirect_uri}{separator}{urlencode(answer)}"
        body = f'<html><body><a href="{html.escape(location)}">continue</a></body></html>'
        return Response(body, 302, headers={"Location": location}, content_type="text/html")

    # The tenants are unused here; QBO names its company on the redirect (realmId).
    def _redirect_extras(self, tenants: list[str]) -> dict[str, str]:  # noqa: ARG002
        return {}

    def _redeem_code(self, params: Any, client_id: str) -> list[TenantT]:
        """The tenants an authorization code grants, once: under the lock, client already
        authenticated. Raises ``GrantRefused`` for a code that is unknown, used, expired, issued to
        another client or redirect address, or whose PKCE verifier does not match."""
        code = self._codes.pop(str(params.get("code") or ""), None)  # single use, even when refused
        if code is None or code.expires_at <= self._clock():
            raise GrantRefused("invalid_grant", "authorization code is invalid, expired or already used")
        if not secrets.compare_digest(code.client_id, client_id):
            raise GrantRefused("invalid_grant", "authorization code was issued to another client")
        if code.redirect_uri != str(params.get("redirect_uri") or ""):
            raise GrantRefused("invalid_grant", "redirect_uri does not match the authorization request")
        if code.challenge is not None:
            verifier = str(params.get("code_verifier") or "")
            if not verifier or not secrets.compare_digest(pkce_challenge(verifier), code.challenge):
                raise GrantRefused("invalid_grant", "code_verifier does not match the code_challenge")
        tenants = [self._tenants[t] for t in code.tenants if t in self._tenants]
        if not tenants:
            raise GrantRefused("invalid_grant", "the authorized company no longer exists")
        return tenants

    # ---------------------------------------------------------------------------------------------
    # Tenants and faults

    def _tenant(self, tenant_id: str) -> TenantT:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise KeyError(f"unknown {self.tenant_noun} {tenant_id}")
        return tenant

    def _inject_status(self, tenant_id: str, status: int, count: int) -> None:
        if status not in self.injectable and not 500 <= status <= 599:
            allowed = ", ".join(str(code) for code in self.injectable)
            raise ValueError(f"inject_status takes {allowed} or a 5xx status")
        with self._lock:
            self._tenant(tenant_id).injected.extend([status] * count)

    def throttle_randomly(self, tenant_id: str, rate: float, seed: int = 0) -> None:
        """From now on answer a share ``rate`` (0 to 1) of the tenant's API calls 429, drawn at
        random (repeatably, from ``seed``), as a ledger whose limits other apps share does. Such
        a call changes nothing and does not count against the limits."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("throttle_rate is a share of calls, from 0 to 1")
        with self._lock:
            tenant = self._tenant(tenant_id)
            tenant.throttle_rate = rate
            tenant.throttle_draw = random.Random(seed)  # noqa: S311 - fault injection, not secrets

    def fail_randomly(
        self,
        tenant_id: str,
        *,
        error_rate: float = 0.0,
        lose_rate: float = 0.0,
        lost_as: str = "gateway",
        seed: int = 0,
    ) -> None:
        """From now on answer a share ``error_rate`` of the tenant's API calls with a 5xx (500, 502
        or 503) instead of serving them, and lose the answer of a share ``lose_rate`` of the
        writes it does commit (``lost_as``: a 502 page, a dropped connection, or either), drawn at
        random, repeatably from ``seed``. With ``throttle_randomly`` beside it, this is a ledger
        under a chaos run: a 5xx changes nothing; a lost answer hides a write that happened."""
        for name, rate in (("error_rate", error_rate), ("lose_rate", lose_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} is a share of calls, from 0 to 1")
        if lost_as not in LOST_AS:
            raise ValueError(f"lost_as is one of {', '.join(LOST_AS)}")
        with self._lock:
            tenant = self._tenant(tenant_id)
            tenant.error_rate = error_rate
            tenant.lose_rate = lose_rate
            tenant.lost_as = lost_as
            tenant.fault_draw = random.Random(seed)  # noqa: S311 - fault injection, not secrets

    def disconnect(self, tenant_id: str) -> None:
        """What a person disconnecting the app in the ledger does: the refresh token is revoked
        and the access tokens issued die with it, so the next call is refused (401) and the
        refresh that follows too (invalid_grant), until the app is authorised again."""
        with self._lock:
            self.revoke_refresh_token(tenant_id)
            self.expire_access_tokens(tenant_id)

    def _next_fault(self, tenant: TenantT) -> int | None:
        """The status an API call answers instead of being served: the next injected one, else a
        random 429 at the tenant's throttle rate, else a random 5xx at its error rate; None to
        serve it. Under the lock."""
        if tenant.injected:
            return tenant.injected.popleft()
        if tenant.throttle_rate > 0 and tenant.throttle_draw.random() < tenant.throttle_rate:
            return 429
        if tenant.error_rate > 0 and tenant.fault_draw.random() < tenant.error_rate:
            return tenant.fault_draw.choice(ERROR_STATUSES)
        return None

    def _lose_responses(self, tenant_id: str, count: int, lost_as: str = "gateway") -> None:
        if lost_as not in LOST_AS:
            raise ValueError(f"lost_as is one of {', '.join(LOST_AS)}")
        with self._lock:
            tenant = self._tenant(tenant_id)
            tenant.lose += count
            tenant.lost_as = lost_as

    def _loses(self, tenant: TenantT) -> str | None:
        """Whether a committed write's answer is lost, and how (``gateway`` or ``drop``); None
        to answer it. Under the lock."""
        if tenant.lose > 0:
            tenant.lose -= 1
        elif not (tenant.lose_rate > 0 and tenant.fault_draw.random() < tenant.lose_rate):
            return None
        if tenant.lost_as == "mixed":
            return tenant.fault_draw.choice(("gateway", "drop"))
        return tenant.lost_as

    def _admit(self, tenant: TenantT, now: float) -> None:
        """Count a call that passed the limits; ``_serve`` must follow to release it. Under the lock."""
        tenant.minute.append(now)
        tenant.in_flight += 1

    def _serve(self, tenant: TenantT, *, is_write: bool, respond: Callable[[], Response]) -> Response:
        """Run an admitted call: its latency, ``respond`` under the lock, then any lost response due."""
        try:
            if self.latency_seconds > 0:
                # Outside the lock, so concurrent requests really overlap (that is what the concurrency
                # limit is about).
                time.sleep(self.latency_seconds)
            with self._lock:
                response = respond()
                # Only a write the ledger did make hides its outcome (an error answer changed nothing).
                lost = self._loses(tenant) if is_write and response.status_code < 400 else None
            if lost == "drop":
                # Committed, and the connection closes with no answer: the client's read fails.
                return _Dropped(status=200)
            if lost is not None:
                # The write above is committed; the client just never learns its outcome, as when a
                # gateway times out after the ledger saved the document.
                return Response(BAD_GATEWAY_HTML, 502, content_type="text/html")
            return response
        finally:
            with self._lock:
                tenant.in_flight -= 1

    # ---------------------------------------------------------------------------------------------
    # WSGI

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(self._dumps(payload), status=status, headers=headers, content_type=self.json_type)

    def _dumps(self, payload: Any) -> str:
        return dumps(payload)

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        dropped = isinstance(response, _Dropped)
        if request.path.startswith(self.logged_prefixes):
            path = request.full_path.rstrip("?")
            with self._lock:
                # A dropped answer is logged as status 0: nothing reached the client.
                self.request_log.append((request.method, path, 0 if dropped else response.status_code))
        if dropped:
            self._drop(environ)
            # The server writes the status line to a closed socket, which it treats as a client
            # that went away (quietly), not as an application error.
            start_response("200 OK", [])
            return []
        result: Iterable[bytes] = response(environ, start_response)
        return result

    @staticmethod
    def _drop(environ: WSGIEnvironment) -> None:
        """Close the client's connection without a byte of answer (werkzeug's server hands the
        socket over as ``werkzeug.socket``); the server then finds it gone and moves on."""
        connection = environ.get("werkzeug.socket")
        if connection is None:
            raise RuntimeError("dropping a connection needs werkzeug's server")
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            return self._unrouted(request, exc)
        if str(endpoint).startswith("ctl_"):
            return self._control(request, str(endpoint), {key: str(value) for key, value in args.items()})
        if endpoint == "oauth_authorize":
            return self._authorize(request)
        return self._route(request, str(endpoint), dict(args))

    # The request is unused here, but an override may answer by path (Xero's API 404s are plain text).
    def _unrouted(self, request: Request, exc: HTTPException) -> Response:  # noqa: ARG002
        return self._json({"error": exc.name}, exc.code or 404)

    # ---------------------------------------------------------------------------------------------
    # HTTP controls for a sandbox in another process

    def _control_actions(self) -> dict[str, Callable[[str], None]]:
        """POST /_sandbox/<control_root>/<tenant>/<action> with no body: action -> what it does."""
        return {
            "revoke": self.revoke_refresh_token,
            "expire-access-tokens": self.expire_access_tokens,
            "disconnect": self.disconnect,
        }

    def _control_calls(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        """POST /_sandbox/<control_root>/<tenant>/<call> with a JSON object body: call -> what it
        does with the tenant and the body; its result is the 201 answer. A ``KeyError`` answers
        404, a ``ValueError`` (what the ledger would refuse) 400."""
        return {
            WEBHOOKS: self._subscribe_call,
            WEBHOOKS_REMOVED: lambda tenant_id, body: self.unsubscribe(tenant_id, str(body["id"])),
        }

    def _control_rules(self) -> list[Rule]:
        root = f"/_sandbox/{self.control_root}"
        return [
            *(
                Rule(f"{root}/<tenant>/{call}", endpoint=f"ctl_call:{call}", methods=["POST"])
                for call in self._control_calls()
            ),
            Rule(root, endpoint="ctl_seed", methods=["POST"]),
            Rule("/_sandbox/consent", endpoint="ctl_consent", methods=["POST"]),
            Rule(f"{root}/<tenant>/faults", endpoint="ctl_faults", methods=["POST"]),
            *(
                Rule(f"{root}/<tenant>/{action}", endpoint=f"ctl_{action}", methods=["POST"])
                for action in self._control_actions()
            ),
            Rule(f"{root}/<tenant>/{WEBHOOKS}", endpoint="ctl_webhooks", methods=["GET"]),
            Rule(f"{root}/<tenant>/{DELIVERIES}", endpoint="ctl_deliveries", methods=["GET"]),
            Rule(f"{root}/<tenant>/<kind>", endpoint="ctl_documents", methods=["GET"]),
            Rule("/_sandbox/requests", endpoint="ctl_requests", methods=["GET"]),
        ]

    def _control(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        try:
            body = loads(request.get_data()) if request.get_data() else {}
        except ValueError:
            return self._json({"error": "body is not JSON"}, 400)
        if endpoint == "ctl_requests":
            with self._lock:
                log = [{"method": m, "path": p, "status": s} for m, p, s in self.request_log]
            return self._json(log)
        if not isinstance(body, dict):
            return self._json({"error": "body must be a JSON object"}, 400)
        try:
            if endpoint == "ctl_consent":
                tenants = body.get("tenants")
                self.set_consent(
                    refuse=bool(body.get("refuse", False)),
                    tenants=[str(t) for t in tenants] if isinstance(tenants, list) else None,
                )
                return self._json({"ok": True})
            if endpoint == "ctl_seed":
                tenant_id = str(body.pop(self.seed_key))
                self._seed_tenant(tenant_id, body)
                return self._json({self.seed_key: tenant_id}, 201)
            tenant = args["tenant"]
            if endpoint == "ctl_webhooks":
                with self._lock:
                    self._tenant(tenant)
                return self._json([s.view() for s in self.webhooks.subscriptions(tenant)])
            if endpoint == "ctl_deliveries":
                wait = float(request.args.get("wait", "0") or 0)
                if wait > 0:
                    self.webhooks.wait_for_deliveries(min(wait, MAX_WAIT_SECONDS))
                return self._json(self.deliveries(tenant))
            if endpoint == "ctl_documents":
                return self._json(self.documents(tenant, args["kind"]))
            if endpoint.startswith("ctl_call:"):
                result = self._control_calls()[endpoint.removeprefix("ctl_call:")](tenant, body)
                return self._json(result, 201)
            if endpoint == "ctl_faults":
                if "lose_responses" in body:
                    lost_as = str(body.get("lost_as", "gateway"))
                    self._lose_responses(tenant, int(body["lose_responses"]), lost_as)
                elif "throttle_rate" in body:
                    self.throttle_randomly(tenant, float(body["throttle_rate"]), int(body.get("seed", 0)))
                elif "error_rate" in body or "lose_rate" in body:
                    self.fail_randomly(
                        tenant,
                        error_rate=float(body.get("error_rate", 0.0)),
                        lose_rate=float(body.get("lose_rate", 0.0)),
                        lost_as=str(body.get("lost_as", "gateway")),
                        seed=int(body.get("seed", 0)),
                    )
                else:
                    self._inject_status(tenant, int(body["status"]), int(body.get("count", 1)))
            else:
                self._control_actions()[endpoint.removeprefix("ctl_")](tenant)
        except KeyError as exc:
            return self._json({"error": f"unknown or missing {exc.args[0]}"}, 404)
        except (TypeError, ValueError) as exc:
            return self._json({"error": str(exc)}, 400)
        return self._json({"ok": True})


# --------------------------------------------------------------------------------------------------
# Running a sandbox on its own


class DemoCredentials(TypedDict):
    client_id: str
    client_secret: str
    refresh_token: str


def foreground_parser(description: str, *, port: int, seed_flag: str, noun: str) -> argparse.ArgumentParser:
    """The options every sandbox takes in the foreground; the caller adds its own limits."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument(
        seed_flag, action="append", default=[], help=f"{noun} id to seed with demo credentials"
    )
    return parser


def seed_demo(
    noun: str, tenant_ids: Iterable[str], seed: Callable[[str, int, DemoCredentials], None]
) -> None:
    """Seed each tenant (with its 1-based number) and print the credentials a client needs for it."""
    for number, tenant_id in enumerate(tenant_ids, start=1):
        refresh = f"sandbox-refresh-{tenant_id}"
        seed(
            tenant_id,
            number,
            DemoCredentials(
                client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, refresh_token=refresh
            ),
        )
        print(
            f"seeded {noun} {tenant_id}: client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET} "
            f"refresh_token={refresh}"
        )


def run_foreground(sandbox: SandboxServer[Any], host: str, port: int, banner: Callable[[str], str]) -> int:
    """Serve until SIGINT or SIGTERM, printing ``banner(url)`` once listening; returns the exit status."""
    stopping = threading.Event()

    def _on_signal(_signum: int, _frame: object) -> None:
        # Only flag here: shutting the server down from inside the handler would block the main thread.
        stopping.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = sandbox.start(host, port)
        print(banner(url), flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
