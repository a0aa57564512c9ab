"""The ledger_events handler over the real ``LedgerIntake`` with fakes behind its ports: every
status of design two-way.md 3.2 (404, 413, 401, 400, 200, 503), Xero's empty answers, no body on a
401 and nothing kept of one, tenant routing, and no 5xx for anything a stranger can send."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from invoice_sync import bootstrap
from invoice_sync.errors import InvalidPayload, UnknownConnection
from invoice_sync.handlers import ledger_events
from invoice_sync.ledgers.webhooks import (
    UnparseableWebhook,
    freshbooks_form,
    freshbooks_signed_string,
    sign,
)
from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.store.queue import LedgerEventsSendFailed
from invoice_sync.sync.intake import Refusals
from invoice_sync.sync.ledger_intake import LedgerIntake
from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event

EVENTS = Path(__file__).resolve().parents[1] / "events"
ROUTE = "POST /ledger-webhooks/{ledger}/{connection}"
REALM = "9341453172471531"  # the QuickBooks fixtures' realmId
XERO_TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"  # the Xero fixture's tenantId
FRESHBOOKS_ACCOUNT = "6BApk"  # the FreshBooks fixtures' account_id
KEY = "verifier-token-acme"
HEADERS = {
    "quickbooks": "intuit-signature",
    "xero": "x-xero-signature",
    "freshbooks": "x-freshbooks-hmac-sha256",
}


def fixture(path: str) -> bytes:
    return (EVENTS / path).read_bytes()


def legacy(realm: str = REALM) -> bytes:
    return fixture("quickbooks/legacy_payment_create.json").replace(REALM.encode(), realm.encode())


def freshbooks_signature(body: bytes, key: str) -> str:
    """What FreshBooks would send; "" for a body that is no form (nothing can sign it)."""
    try:
        form = freshbooks_form(body)
    except UnparseableWebhook:
        return ""
    return sign(freshbooks_signed_string(form).encode("ascii"), key)


def signature(ledger: str, body: bytes, key: str = KEY) -> str:
    return freshbooks_signature(body, key) if ledger == "freshbooks" else sign(body, key)


def connection(connection_id: str, ledger: str, tenant: str, **changes: Any) -> Connection:
    return Connection.model_validate(
        {
            "connection_id": connection_id,
            "ledger": ledger,
            "tenant_id": tenant,
            "payments_back": True,
            **changes,
        }
    )


@dataclass(frozen=True)
class Registration:
    state: str


@dataclass
class World:
    """Every port of the intake, recording what it was asked."""

    connections: dict[str, Connection] = field(default_factory=dict)
    tenants: dict[tuple[str, str], str] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    sent: list[list[LedgerEventMessage]] = field(default_factory=list)
    queue_error: Exception | None = None
    objects: dict[str, bytes] = field(default_factory=dict)
    alerts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    pending: dict[tuple[str, str], str] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    # connections and the tenant directory
    def connection(self, connection_id: str) -> Connection | None:
        self.lookups.append(f"connection {connection_id}")
        return self.connections.get(connection_id)

    def tenant_connection(self, ledger: str, tenant_id: str) -> str | None:
        self.lookups.append(f"tenant {ledger} {tenant_id}")
        return self.tenants.get((ledger, tenant_id))

    # secrets
    def ledger_webhook_keys(self, connection_id: str) -> list[SecretStr]:
        self.lookups.append(f"keys {connection_id}")
        if connection_id not in self.keys:
            raise UnknownConnection(f"no ledger webhook key for connection {connection_id}")
        return [SecretStr(k) for k in self.keys[connection_id]]

    # queue
    def send_batch(self, messages: Sequence[LedgerEventMessage]) -> int:
        if self.queue_error is not None:
            raise self.queue_error
        self.sent.append(list(messages))
        return len(messages)

    # archive and alerts (Refusals)
    def put_new(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = body
        return True

    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None:
        self.alerts.append((subject, details))

    # pending FreshBooks registrations
    def pending_callback(self, connection_id: str, callback_id: str) -> Registration | None:
        self.lookups.append(f"pending {connection_id} {callback_id}")
        state = self.pending.get((connection_id, callback_id))
        return None if state is None else Registration(state)

    @property
    def messages(self) -> list[LedgerEventMessage]:
        return [m for batch in self.sent for m in batch]


def build(world: World, *, callbacks: bool = False) -> LedgerIntake:
    return LedgerIntake(
        connections=world,
        keys=world,
        queue=world,
        max_bytes=262_144,
        refusals=Refusals(world, world),
        callbacks=world if callbacks else None,
        clock=lambda: 1_796_212_800.0,  # 2026-12-02T12:00:00Z
    )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(
        connections={
            "acme": connection("acme", "quickbooks", REALM),
            "globex": connection("globex", "xero", XERO_TENANT),
            "initech": connection("initech", "freshbooks", FRESHBOOKS_ACCOUNT),
        },
        keys={"acme": [KEY], "globex": [KEY], "initech": [KEY]},
    )
    intake = build(world, callbacks=True)
    monkeypatch.setattr(bootstrap, "ledger_intake", lambda: intake)
    return world


def post(
    ledger: str,
    connection_id: str,
    raw: bytes,
    *,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    sent = dict(headers or {})
    if key is not None and ledger in HEADERS:
        sent[HEADERS[ledger].title()] = signature(ledger, raw, key)
    event = http_api_event(
        "POST",
        f"/ledger-webhooks/{ledger}/{connection_id}",
        ROUTE,
        {"ledger": ledger, "connection": connection_id},
        sent,
        raw,
    )
    event.update(changes)
    response: dict[str, Any] = ledger_events.handler(event, LocalContext("ledger-events"))
    return response


def json_answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


EMPTY = {"body": "", "headers": {}, "cookies": []}


# --- 200 --------------------------------------------------------------------------------------------


def test_signed_quickbooks_legacy_delivery_queues_its_payment_and_credit_memo(world: World) -> None:
    """Given a signed legacy body with a Payment, an Invoice and a CreditMemo, then 200 queued 2 and
    one batch of the two hints for the path connection (the Invoice is not followed)."""
    assert post("quickbooks", "acme", legacy()) == json_answer(200, {"outcome": "queued", "events": 2})
    (batch,) = world.sent
    assert [(m.connection_id, m.ledger, m.kind, m.object_id, m.operation) for m in batch] == [
        ("acme", "quickbooks", "payment", "190", "create"),
        ("acme", "quickbooks", "credit_note", "212", "void"),
    ]
    assert batch[0].changed_at == datetime.fromisoformat("2026-12-02T10:15:42+00:00")


def test_signed_cloud_events_delivery_queues_with_the_event_id(world: World) -> None:
    body = fixture("quickbooks/cloudevents_payment_created.json")
    assert post("quickbooks", "acme", body) == json_answer(200, {"outcome": "queued", "events": 1})
    (message,) = world.messages
    assert (message.kind, message.object_id, message.event_id) == (
        "payment",
        "190",
        "5d0bd3c4-8a76-4f0e-9c1c-2f8e3b1a6d01",
    )


def test_a_rotated_key_still_verifies(world: World) -> None:
    """Given the connection holds a new and an old key, then a delivery signed with the old is 200."""
    world.keys["acme"] = ["new-token", KEY]
    assert post("quickbooks", "acme", legacy())["statusCode"] == 200


def test_payments_back_off_is_200_ignored_and_nothing_sent(world: World) -> None:
    world.connections["acme"] = connection("acme", "quickbooks", REALM, payments_back=False)
    assert post("quickbooks", "acme", legacy()) == json_answer(200, {"outcome": "ignored", "events": 0})
    assert world.sent == []


def test_a_body_of_kinds_not_followed_is_200_ignored(world: World) -> None:
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": REALM,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Invoice",
                                "id": "1",
                                "operation": "Create",
                                "lastUpdated": "2026-12-02T10:00:00Z",
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()
    assert post("quickbooks", "acme", body) == json_answer(200, {"outcome": "ignored", "events": 0})


def test_xero_intent_to_receive_signed_is_200_with_no_body_and_no_cookies(world: World) -> None:
    """Given Xero's ITR post signed with the webhook key, then 200 with an empty body, no headers
    and no cookies (Xero's rules), and nothing sent."""
    assert post("xero", "globex", fixture("xero/itr.json")) == {"statusCode": 200, **EMPTY}
    assert world.sent == []


def test_xero_intent_to_receive_badly_signed_is_401_with_no_body(world: World) -> None:
    assert post("xero", "globex", fixture("xero/itr.json"), key="wrong") == {"statusCode": 401, **EMPTY}


def test_xero_invoice_events_are_queued_and_answered_empty(world: World) -> None:
    response = post("xero", "globex", fixture("xero/invoice_events.json"))
    assert response == {"statusCode": 200, **EMPTY}
    assert {m.kind for m in world.messages} <= {"invoice", "credit_note"}
    assert world.messages and all(m.connection_id == "globex" for m in world.messages)


def test_freshbooks_payment_callback_is_queued(world: World) -> None:
    body = fixture("freshbooks/payment_create.form")
    assert post("freshbooks", "initech", body) == json_answer(200, {"outcome": "queued", "events": 1})
    (message,) = world.messages
    assert (message.connection_id, message.kind, message.object_id, message.operation) == (
        "initech",
        "payment",
        "1234567",
        "create",
    )


# --- tenant routing ---------------------------------------------------------------------------------


def test_another_tenant_goes_to_its_connection_when_it_holds_the_same_key(world: World) -> None:
    """Given one Intuit app (one verifier token) for two companies, then a delivery posted to acme's
    URL about the other realm is queued for the connection the tenant directory names."""
    world.connections["beta"] = connection("beta", "quickbooks", "4620816365")
    world.keys["beta"] = [KEY]
    world.tenants[("quickbooks", "4620816365")] = "beta"
    assert post("quickbooks", "acme", legacy("4620816365"))["statusCode"] == 200
    assert {m.connection_id for m in world.messages} == {"beta"}


def test_another_tenant_is_dropped_when_its_connection_does_not_hold_the_key(world: World) -> None:
    """Given the other realm's connection has a key of its own, then the delivery signed with acme's
    key is not attributed to it: 200 ignored, nothing sent."""
    world.connections["beta"] = connection("beta", "quickbooks", "4620816365")
    world.keys["beta"] = ["betas-own-token"]
    world.tenants[("quickbooks", "4620816365")] = "beta"
    assert post("quickbooks", "acme", legacy("4620816365")) == json_answer(
        200, {"outcome": "ignored", "events": 0}
    )
    assert world.sent == []


@pytest.mark.parametrize(
    "setup",
    [
        "no directory entry",
        "directory names a connection of another ledger",
        "directory names a connection of another tenant",
        "directory names an inactive connection",
        "directory names a connection without keys",
    ],
)
def test_an_unknown_or_mismatched_tenant_is_dropped_with_200(world: World, setup: str) -> None:
    tenant = "4620816365"
    if setup != "no directory entry":
        world.tenants[("quickbooks", tenant)] = "beta"
        world.keys["beta"] = [KEY]
    if setup == "directory names a connection of another ledger":
        world.connections["beta"] = connection("beta", "xero", tenant)
    elif setup == "directory names a connection of another tenant":
        world.connections["beta"] = connection("beta", "quickbooks", "111")
    elif setup == "directory names an inactive connection":
        world.connections["beta"] = connection("beta", "quickbooks", tenant, active=False)
    elif setup == "directory names a connection without keys":
        world.connections["beta"] = connection("beta", "quickbooks", tenant)
        del world.keys["beta"]
    assert post("quickbooks", "acme", legacy(tenant))["statusCode"] == 200
    assert world.sent == []


# --- 404 --------------------------------------------------------------------------------------------


def test_unknown_ledger_is_404(world: World) -> None:
    assert post("sage", "acme", legacy()) == json_answer(404, {"error": "unknown ledger"})
    assert world.lookups == []


@pytest.mark.parametrize("connection_id", ["Acme", "a", "x" * 64, "acme%00", "../etc"])
def test_a_path_that_is_no_connection_id_is_404_without_a_lookup(world: World, connection_id: str) -> None:
    assert post("quickbooks", connection_id, legacy())["statusCode"] == 404
    assert world.lookups == []


@pytest.mark.parametrize("case", ["missing", "inactive", "other ledger"])
def test_unknown_inactive_or_other_ledger_connection_is_404(world: World, case: str) -> None:
    if case == "inactive":
        world.connections["acme"] = connection("acme", "quickbooks", REALM, active=False)
    elif case == "other ledger":
        world.connections["acme"] = connection("acme", "xero", REALM)
    connection_id = "nobody" if case == "missing" else "acme"
    response = post("quickbooks", connection_id, legacy())
    assert response == json_answer(404, {"error": f"unknown connection {connection_id!r}"})
    assert f"keys {connection_id}" not in world.lookups


def test_no_ledger_webhook_key_is_404_not_401(world: World) -> None:
    del world.keys["acme"]
    assert post("quickbooks", "acme", legacy()) == json_answer(404, {"error": "unknown connection 'acme'"})
    assert world.sent == []


def test_xero_404_is_empty_too(world: World) -> None:
    assert post("xero", "nobody", fixture("xero/itr.json")) == {"statusCode": 404, **EMPTY}


def test_freshbooks_verify_without_a_pending_store_is_404_and_nothing_sent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given no store of pending registrations is wired, then a callback.verify (unsigned by
    nature) is a stranger's: 404, nothing sent, the secret not even read."""
    intake = build(world)
    monkeypatch.setattr(bootstrap, "ledger_intake", lambda: intake)
    world.pending[("initech", "2208")] = "pending"
    response = post("freshbooks", "initech", fixture("freshbooks/callback_verify.form"), key=None)
    assert response == json_answer(404, {"error": "no pending webhook registration"})
    assert world.sent == []
    assert "keys initech" not in world.lookups


def test_freshbooks_verify_with_a_pending_registration_is_queued_with_its_verifier(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a pending registration of callback 2208, then its verify is 200 and the verifier
    travels in the queue body only; an unknown callback id is 404."""
    intake = build(world, callbacks=True)
    monkeypatch.setattr(bootstrap, "ledger_intake", lambda: intake)
    world.pending[("initech", "2208")] = "pending"
    del world.keys["initech"]  # before the first verify there is no key: it is not asked for
    body = fixture("freshbooks/callback_verify.form")
    assert post("freshbooks", "initech", body, key=None)["statusCode"] == 200
    (message,) = world.messages
    assert (message.kind, message.object_id) == ("callback_verify", "2208")
    assert "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd" not in repr(message)
    assert json.loads(message.to_queue_body())["verifier"] == "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"
    other = body.replace(b"object_id=2208", b"object_id=9999")
    assert post("freshbooks", "initech", other, key=None)["statusCode"] == 404
    assert len(world.messages) == 1


@pytest.mark.parametrize(
    ("state", "body"),
    [
        ("verified", b"name=callback.verify&object_id=2208&verifier=abc"),  # verified already
        ("pending", b"name=callback.verify&object_id=&verifier=abc"),  # no callback id
        ("pending", b"name=callback.verify&object_id=2208"),  # no verifier
        ("pending", b"name=callback.verify&object_id=2208&verifier="),
    ],
)
def test_a_verify_not_for_a_live_pending_registration_is_404_and_sends_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, state: str, body: bytes
) -> None:
    intake = build(world, callbacks=True)
    monkeypatch.setattr(bootstrap, "ledger_intake", lambda: intake)
    world.pending[("initech", "2208")] = state
    assert post("freshbooks", "initech", body, key=None) == json_answer(
        404, {"error": "no pending webhook registration"}
    )
    assert world.sent == []
    assert not any(entry.startswith("pending initech ") and entry.endswith(" ") for entry in world.lookups)


# --- 413 --------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_any_lookup(world: World) -> None:
    body = b"[" + b" " * 262_144 + b"]"
    assert post("quickbooks", "acme", body)["statusCode"] == 413
    assert world.lookups == []


# --- 401 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ledger", ["quickbooks", "xero", "freshbooks"])
@pytest.mark.parametrize("forgery", ["wrong key", "no header", "not base64", "non-ascii header"])
def test_a_bad_signature_is_401_with_no_body_and_nothing_kept(
    world: World, ledger: str, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a forged delivery (each way a signature can be wrong), then 401 with an empty body and
    no cookies for every ledger, nothing sent, archived or alerted, and the one log line says the
    status and nothing of the request."""
    connection_id = {"quickbooks": "acme", "xero": "globex", "freshbooks": "initech"}[ledger]
    body = {
        "quickbooks": legacy(),
        "xero": fixture("xero/invoice_events.json"),
        "freshbooks": fixture("freshbooks/payment_create.form"),
    }[ledger]
    header = HEADERS[ledger]
    key: str | None = "wrong"
    headers: dict[str, str] = {}
    if forgery != "wrong key":
        key = None
        headers = {"not base64": {header: "!!!not-base64!!!"}, "non-ascii header": {header: "é" * 44}}.get(
            forgery, {}
        )
    caplog.set_level(logging.INFO)
    response = post(ledger, connection_id, body, key=key, headers=headers)
    assert response == {"statusCode": 401, **EMPTY}
    assert (world.sent, world.objects, world.alerts) == ([], {}, [])
    lines = [r for r in caplog.records if r.name == ledger_events.logger.name]
    assert [(r.getMessage(), getattr(r, "status", None)) for r in lines] == [("ledger webhook rejected", 401)]
    assert not hasattr(lines[0], "reason")


def test_a_signed_body_for_one_connection_is_401_at_another(world: World) -> None:
    """Given beta has its own key, then acme's signed delivery posted to beta's URL is 401."""
    world.connections["beta"] = connection("beta", "quickbooks", REALM)
    world.keys["beta"] = ["betas-own-token"]
    assert post("quickbooks", "beta", legacy())["statusCode"] == 401


# --- 400 --------------------------------------------------------------------------------------------


def test_authentic_but_unparseable_is_400_archived_and_alerted_once_a_day(world: World) -> None:
    """Given two signed bodies that are neither QuickBooks shape, then each is 400, each body is
    archived under raw/ledger/quickbooks/acme/<day>/rejected/, and only the first is alerted."""
    first, second = b'{"hello": "world"}', b"[1, 2, 3]"
    assert post("quickbooks", "acme", first)["statusCode"] == 400
    assert post("quickbooks", "acme", second)["statusCode"] == 400
    refused = sorted(k for k in world.objects if not k.endswith("_alerted"))
    assert len(refused) == 2
    assert all(k.startswith("raw/ledger/quickbooks/acme/2026/12/02/rejected/") for k in refused)
    assert {world.objects[k] for k in refused} == {first, second}
    (alert,) = world.alerts
    assert alert[1]["connection_id"] == "acme"
    assert world.sent == []


def test_xero_400_is_empty(world: World) -> None:
    assert post("xero", "globex", b'{"no": "events"}') == {"statusCode": 400, **EMPTY}


# --- 503 --------------------------------------------------------------------------------------------


def _refused(message: str) -> LedgerEventsSendFailed:
    hint = LedgerEventMessage(
        connection_id="acme",
        ledger="quickbooks",
        kind="payment",
        object_id="1",
        operation="create",
        changed_at=None,
        event_id=None,
    )
    return LedgerEventsSendFailed([(hint, message)])


@pytest.mark.parametrize("error", [_refused("InternalError: "), RuntimeError("SQS is down")])
def test_a_queue_failure_is_503_so_the_ledger_retries(world: World, error: Exception) -> None:
    """Given SQS refuses an entry or fails outright, then 503 (the ledger retries), JSON for
    QuickBooks and empty for Xero."""
    world.queue_error = error
    assert post("quickbooks", "acme", legacy()) == json_answer(
        503, {"error": "temporarily unavailable; retry later"}
    )
    assert post("xero", "globex", fixture("xero/invoice_events.json")) == {"statusCode": 503, **EMPTY}


@pytest.mark.parametrize(
    "changes",
    [{"routeKey": "POST /webhooks/{source}/{connection}"}, {"pathParameters": None}],
)
def test_any_other_route_is_a_503_not_a_call(world: World, changes: dict[str, Any]) -> None:
    assert post("quickbooks", "acme", legacy(), **changes)["statusCode"] == 503
    assert world.lookups == []


# --- logs -------------------------------------------------------------------------------------------


def test_the_accepted_log_line_names_outcome_and_count_not_the_body(world: World) -> None:
    written = io.StringIO()
    capture = logging.StreamHandler(written)
    capture.setFormatter(ledger_events.logger.registered_formatter)
    underlying = logging.getLogger(ledger_events.logger.name)
    underlying.addHandler(capture)
    level = underlying.level
    underlying.setLevel(logging.INFO)
    try:
        assert post("quickbooks", "acme", legacy())["statusCode"] == 200
    finally:
        underlying.removeHandler(capture)
        underlying.setLevel(level)
    (line,) = [json.loads(x) for x in written.getvalue().splitlines() if '"ledger webhook"' in x]
    assert (line["ledger"], line["outcome"], line["events"]) == ("quickbooks", "queued", 2)
    assert REALM not in written.getvalue() and KEY not in written.getvalue()


# --- hostile input ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ledger=st.sampled_from(["quickbooks", "xero", "freshbooks", "sage", ""]),
    connection_id=st.sampled_from(["acme", "globex", "initech", "nobody", "A"]) | st.text(max_size=70),
    body=st.binary(max_size=512) | st.text(max_size=256).map(lambda s: s.encode("utf-8", "surrogatepass")),
    signed=st.booleans(),
    header=st.text(max_size=60),
)
def test_nothing_a_stranger_or_a_broken_sender_sends_is_a_5xx(
    world: World, ledger: str, connection_id: str, body: bytes, signed: bool, header: str
) -> None:
    """Given any ledger, connection, body and header, signed with the right key or not, then the
    answer is one of 200, 400, 401, 404 or 413: never a 5xx (which would make the ledger retry
    forever), and a 401 never has a body."""
    headers = {} if signed else {HEADERS.get(ledger, "x-any"): header}
    response = post(
        ledger or "quickbooks", connection_id or "acme", body, key=KEY if signed else None, headers=headers
    )
    assert response["statusCode"] in {200, 400, 401, 404, 413}, response
    if response["statusCode"] == 401 or ledger == "xero":
        assert response["body"] == ""


def test_a_body_flagged_base64_that_is_not_is_400_not_500(world: World) -> None:
    response = post("quickbooks", "acme", b"x", key=None, body="%%%", isBase64Encoded=True)
    assert response["statusCode"] == InvalidPayload.status_code
    assert world.lookups == []


def test_the_handler_loads_no_token_store_ledger_client_or_stripe_code() -> None:
    """Given a fresh interpreter, importing the handler loads its wiring and none of what the
    internet-facing function must not hold or pay for at cold start: boto3, httpx, the SyncState
    store, the ledger adapters' registry, Stripe's parsers or API client, the push use case."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    program = "import sys, json, invoice_sync.handlers.ledger_events; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", program],
        check=True,
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    ).stdout
    loaded = set(json.loads(out))
    assert "invoice_sync.wiring.ledger_intake" in loaded
    unwanted = {
        "boto3",
        "httpx",
        "invoice_sync.store.sync_state",
        "invoice_sync.ledgers.registry",
        "invoice_sync.models.tokens",
        "invoice_sync.sources.stripe",
        "invoice_sync.sources.stripe_api",
        "invoice_sync.sync.push",
    }
    assert not unwanted & loaded


# --- the queue body -----------------------------------------------------------------------------


class RecordingSqs:
    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_queue_bodies_are_ascii_and_read_back_with_the_verifier() -> None:
    """Given hints whose ids hold characters SQS refuses in a body (U+FFFE) or any non-ASCII, and a
    callback_verify, then 23 hints go in requests of 10, 10 and 3, every body is ASCII, and each
    reads back as the message sent, the verifier included (and never in the attributes)."""
    from invoice_sync.store.queue import LedgerEventsQueue  # noqa: PLC0415

    hints = [
        LedgerEventMessage(
            connection_id="acme",
            ledger="quickbooks",
            kind="payment",
            object_id=f"p\ufffe\u00e9{i}",
            operation="create",
            changed_at=None,
            event_id=None,
        )
        for i in range(22)
    ]
    verify = LedgerEventMessage(
        connection_id="initech",
        ledger="freshbooks",
        kind="callback_verify",
        object_id="2208",
        operation="verify",
        changed_at=None,
        event_id=None,
        verifier=SecretStr("scADVVi5QuKuj"),
    )
    sqs = RecordingSqs()
    assert LedgerEventsQueue("https://sqs/q", sqs).send_batch([*hints, verify]) == 23
    assert [len(r) for r in sqs.requests] == [10, 10, 3]
    entries = [e for r in sqs.requests for e in r]
    assert all(e["MessageBody"].isascii() for e in entries)
    read = [LedgerEventMessage.from_queue_body(e["MessageBody"]) for e in entries]
    assert read[:22] == hints
    assert read[22].verifier is not None and read[22].verifier.get_secret_value() == "scADVVi5QuKuj"
    assert "scADVVi5QuKuj" not in json.dumps([e["MessageAttributes"] for e in entries])
