"""The sandboxes send signed webhooks as the vendors do (issue 7, design two-way 2.2-2.4 and 6), and
invoice-sync's own verifiers and parsers accept them: what the end-to-end tests of
``POST /ledger-webhooks/{ledger}/{connection}`` stand on.

A tiny stdlib HTTP server plays the receiver and records every POST (path, headers, raw body). A
person is played by the sandboxes' by-hand control calls, sent over HTTP as a test in another process
would; invoices are made through the product's own adapters (the contract suite's), so the ledger
state behind each event is real. Signatures are checked with ``invoice_sync.ledgers.webhooks`` and
``invoice_sync.sources.stripe`` (and Stripe's with stripe-python too), never with the sandbox's code.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe
from pydantic import SecretStr

from invoice_sync.errors import BadSignature
from invoice_sync.ledgers import webhooks
from invoice_sync.ledgers.freshbooks import webhook as freshbooks_webhook
from invoice_sync.ledgers.quickbooks import webhook as quickbooks_webhook
from invoice_sync.ledgers.xero import webhook as xero_webhook
from invoice_sync.sources.stripe import parse_invoice, verify_signature
from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync_ops.sandboxes.base import BY_HAND_PAYMENTS, BY_HAND_REMOVALS, SandboxServer
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, generate_invoices
from invoice_sync_ops.sandboxes.webhooks import WebhookEmitter
from invoice_sync_ops.sandboxes.xero import XeroSandbox
from tests.contract.conftest import CREDENTIALS, LedgerCase, _ledger, _vault

REALM = "4620816365000000077"
OTHER_REALM = "4620816365000000078"
XERO_TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-000000000077"
FB_ACCOUNT = "wHk77"
VERIFIER_TOKEN = "qbo-verifier-token-0077"
XERO_KEY = "xero-webhook-key-0077+/abc=="
STRIPE_ACCOUNT = "acct_1WebhookAcct0077"
STRIPE_KEY = "sk_test_webhook_key_0077"
WHSEC = "whsec_test_webhook_secret_0077"
FLUSH = 10.0


# --------------------------------------------------------------------------------------------------
# The receiver


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Receiver:
    """Records every POST and answers what ``answer`` says (default: the next queued status, else 200)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    answer: Callable[[Received], int] | None = None
    release: threading.Event = field(default_factory=threading.Event)  # unset: answers wait for it

    def on(self, path: str) -> str:
        return f"{self.url}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def respond(self, got: Received) -> int:
        self.received.append(got)
        if self.answer is not None:
            return self.answer(got)
        return self.statuses.popleft() if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recorder = Receiver()
    recorder.release.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            recorder.release.wait(10)
            status = recorder.respond(got)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_port}"
    yield recorder
    recorder.release.set()
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------------------------------
# The ledgers, with invoices made through the product's adapters


def _control(sandbox: SandboxServer[Any], tenant: str, call: str, body: dict[str, Any]) -> httpx.Response:
    url = f"{sandbox.base_url}/_sandbox/{sandbox.control_root}/{tenant}/{call}"
    return httpx.post(url, json=body, timeout=10)


def _deliveries(sandbox: SandboxServer[Any], tenant: str) -> list[dict[str, Any]]:
    url = f"{sandbox.base_url}/_sandbox/{sandbox.control_root}/{tenant}/deliveries?wait=5"
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200
    deliveries: list[dict[str, Any]] = answer.json()
    return deliveries


def _case(name: str, sandbox: SandboxServer[Any], tenant: str, **fields: Any) -> LedgerCase:
    vault = _vault()
    return LedgerCase(
        name=name,
        ledger=_ledger(name, sandbox.base_url, tenant, vault),  # type: ignore[arg-type]
        vault=vault,
        inject_status=lambda _status, _count: None,
        expire_access_tokens=lambda: None,
        forget_idempotency=lambda: None,
        lose_responses=lambda _count: None,
        invalid_item_id="NO-SUCH-ITEM",
        **fields,
    )


def _invoice(case: LedgerCase, name: str) -> str:
    """A new invoice of 182.38 in the ledger; its id."""
    customer = case.ledger.create_customer(name, None, "USD", f"cus_{name}", f"cust-{name}").id
    return case.ledger.create_invoice(case.draft(customer), f"inv-{name}").id


@pytest.fixture
def qbo() -> Iterator[tuple[QuickBooksSandbox, LedgerCase]]:
    sandbox = QuickBooksSandbox()
    sandbox.start()
    sandbox.seed_company(REALM, **CREDENTIALS)
    sandbox.seed_company(OTHER_REALM, **CREDENTIALS)
    case = _case(
        "quickbooks",
        sandbox,
        REALM,
        item_id="1",
        account=None,
        tax_code="TAX",
        no_tax_code="NON",
        payment_account=None,
        refund_from="35",
        pays_out_credit=False,
    )
    yield sandbox, case
    sandbox.stop()


@pytest.fixture
def xero() -> Iterator[tuple[XeroSandbox, LedgerCase]]:
    sandbox = XeroSandbox()
    sandbox.start()
    sandbox.seed_organisation(XERO_TENANT, **CREDENTIALS)
    case = _case(
        "xero",
        sandbox,
        XERO_TENANT,
        item_id="CONSULT",
        account="200",
        tax_code="OUTPUT2",
        no_tax_code="NONE",
        payment_account="090",
        refund_from="090",
        pays_out_credit=True,
    )
    yield sandbox, case
    sandbox.stop()


@pytest.fixture
def freshbooks() -> Iterator[tuple[FreshBooksSandbox, LedgerCase]]:
    sandbox = FreshBooksSandbox()
    sandbox.start()
    sandbox.seed_account(FB_ACCOUNT, business_id=900077, **CREDENTIALS)
    case = _case(
        "freshbooks",
        sandbox,
        FB_ACCOUNT,
        item_id="Consulting",
        account=None,
        tax_code="Sales Tax",
        no_tax_code="",
        payment_account=None,
        refund_from=None,
        pays_out_credit=False,
    )
    yield sandbox, case
    sandbox.stop()


# --------------------------------------------------------------------------------------------------
# QuickBooks Online


def test_qbo_legacy_delivery_of_a_payment_by_hand_is_signed_and_parsed(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a legacy-format subscription made through the control API, when a person records a
    payment by hand, then exactly one eventNotifications body reaches the receiver, signed
    ``intuit-signature`` with the verifier token so the product's verifier accepts it (and refuses
    it under another token), and the parser yields the payment's create in the realm."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "legacy")
    subscribed = _control(
        sandbox, REALM, "webhooks", {"url": receiver.on("/qbo"), "key": VERIFIER_TOKEN, "format": "legacy"}
    )
    assert subscribed.status_code == 201
    assert subscribed.json()["format"] == "legacy"
    assert VERIFIER_TOKEN not in subscribed.text

    paid = _control(sandbox, REALM, BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": "50.00"})
    assert paid.status_code == 201
    payment_id = paid.json()["Id"]
    sandbox.flush(FLUSH)

    (got,) = receiver.at("/qbo")
    webhooks.verify_quickbooks(got.body, got.headers[webhooks.QUICKBOOKS_HEADER], [SecretStr(VERIFIER_TOKEN)])
    with pytest.raises(BadSignature):
        webhooks.verify_quickbooks(got.body, got.headers[webhooks.QUICKBOOKS_HEADER], [SecretStr("other")])
    assert "eventNotifications" in json.loads(got.body)
    (event,) = quickbooks_webhook.parse(got.body)
    assert (event.tenant_id, event.kind, event.object_id, event.operation) == (
        REALM,
        "payment",
        payment_id,
        "create",
    )
    assert event.changed_at is not None
    (logged,) = _deliveries(sandbox, REALM)
    assert logged["state"] == "delivered"
    assert [a["status"] for a in logged["attempts"]] == [200]
    assert logged["event"] == "Payment.Create"


def test_qbo_cloudevents_for_a_payment_and_its_void_by_hand(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a subscription in the default format (CloudEvents), when a person records a payment and
    then voids it, then two CloudEvents arrays arrive in order (created, voided), each signed and
    parsed to the payment's events; a subscription of another realm receives nothing."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "cloud")
    assert sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN)["format"] == "cloudevents"
    sandbox.subscribe(OTHER_REALM, receiver.on("/other"), "other-token")

    payment_id = _control(
        sandbox, REALM, BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": "20"}
    ).json()["Id"]
    assert _control(sandbox, REALM, BY_HAND_REMOVALS, {"payment_id": payment_id}).status_code == 201
    sandbox.flush(FLUSH)

    created, voided = receiver.at("/qbo")
    operations = []
    for got in (created, voided):
        webhooks.verify_quickbooks(got.body, got.headers["intuit-signature"], [SecretStr(VERIFIER_TOKEN)])
        document = json.loads(got.body)
        assert isinstance(document, list)
        assert document[0]["specversion"] == "1.0"
        (event,) = quickbooks_webhook.parse(got.body)
        assert (event.tenant_id, event.kind, event.object_id) == (REALM, "payment", payment_id)
        assert event.event_id == document[0]["id"]
        operations.append(event.operation)
    assert operations == ["create", "void"]
    assert receiver.at("/other") == []


def test_qbo_payments_through_the_api_are_announced_too(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a subscription, when invoice-sync's adapter books a payment through the API, then the
    receiver gets that payment's create: the sandbox announces its API writes, not only by-hand ones."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "api")
    sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN, format="legacy")
    customer = sandbox.documents(REALM, "Invoice")[-1]["CustomerRef"]["value"]
    booked = case.ledger.create_payment(
        case.payment(invoice_id, customer, Decimal("10.00"), "pi_api_1"), "pay-1"
    )
    sandbox.flush(FLUSH)

    (got,) = receiver.at("/qbo")
    (event,) = quickbooks_webhook.parse(got.body)
    assert (event.object_id, event.operation) == (booked.id, "create")


def test_qbo_credit_memo_create_is_announced(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a subscription, when a credit memo is created through the API, then the receiver gets
    ``qbo.creditmemo.created.v1``, parsed to a credit_note create of the realm."""
    sandbox, case = qbo
    customer = case.ledger.create_customer("memo", None, "USD", "cus_memo", "cust-memo").id
    sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN)
    memo = case.ledger.create_credit_note(case.draft(customer, number="CM-1"), "memo-1")
    sandbox.flush(FLUSH)

    (got,) = receiver.at("/qbo")
    webhooks.verify_quickbooks(got.body, got.headers["intuit-signature"], [SecretStr(VERIFIER_TOKEN)])
    assert json.loads(got.body)[0]["type"] == "qbo.creditmemo.created.v1"
    (event,) = quickbooks_webhook.parse(got.body)
    assert (event.tenant_id, event.kind, event.object_id, event.operation) == (
        REALM,
        "credit_note",
        memo.id,
        "create",
    )


def test_a_delivery_is_made_after_the_request_that_caused_it(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a receiver that holds every answer, when a person records a payment by hand, then the
    control call has already answered while the delivery is still waiting on the receiver: the
    sandbox delivers on its own thread, as the vendors deliver asynchronously."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "async")
    sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN)
    receiver.release.clear()

    answered = _control(sandbox, REALM, BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": "5"})
    assert answered.status_code == 201
    assert not sandbox.wait_for_deliveries(0.3)
    receiver.release.set()
    sandbox.flush(FLUSH)
    assert len(receiver.at("/qbo")) == 1


def test_a_delivery_answered_500_is_retried_until_a_2xx(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a receiver answering 500 twice and then 200, when a payment is recorded, then the same
    signed body is posted three times and the log shows the attempts 500, 500, 200, delivered."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "retry")
    sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN)
    receiver.statuses.extend([500, 500])

    sandbox.record_payment_by_hand(REALM, invoice_id, Decimal("7.00"))
    sandbox.flush(FLUSH)

    bodies = [got.body for got in receiver.at("/qbo")]
    assert len(bodies) == 3
    assert len(set(bodies)) == 1
    (logged,) = sandbox.deliveries(REALM)
    assert [a["status"] for a in logged["attempts"]] == [500, 500, 200]
    assert logged["state"] == "delivered"


def test_a_delivery_never_answered_2xx_ends_failed(
    qbo: tuple[QuickBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a receiver that always answers 503, when a payment is recorded, then every attempt is
    made (one and the retries) and the delivery ends ``failed``."""
    sandbox, case = qbo
    invoice_id = _invoice(case, "fail")
    sandbox.subscribe(REALM, receiver.on("/qbo"), VERIFIER_TOKEN)
    receiver.answer = lambda _got: 503

    sandbox.record_payment_by_hand(REALM, invoice_id, Decimal("7.00"))
    sandbox.flush(FLUSH)

    (logged,) = sandbox.deliveries(REALM)
    assert logged["state"] == "failed"
    assert [a["status"] for a in logged["attempts"]] == [503] * (1 + len(sandbox.webhooks.retry_delays))


def test_subscriptions_are_checked(qbo: tuple[QuickBooksSandbox, LedgerCase]) -> None:
    """Given the control API, when a subscription lacks a key, names an unknown format or an unknown
    realm, then it answers 400, 400 and 404; the listing shows subscriptions without their keys, and
    ``webhooks-removed`` ends one."""
    sandbox, _ = qbo
    assert _control(sandbox, REALM, "webhooks", {"url": "http://127.0.0.1:9/x"}).status_code == 400
    bad_format = {"url": "http://127.0.0.1:9/x", "key": "k", "format": "xml"}
    assert _control(sandbox, REALM, "webhooks", bad_format).status_code == 400
    assert (
        _control(sandbox, "nope", "webhooks", {"url": "http://127.0.0.1:9/x", "key": "k"}).status_code == 404
    )
    sandbox.subscribe(REALM, "http://127.0.0.1:9/x", "secret-key-1")
    listed = httpx.get(f"{sandbox.base_url}/_sandbox/companies/{REALM}/webhooks", timeout=10)
    assert listed.json()[0]["url"] == "http://127.0.0.1:9/x"
    assert "secret-key-1" not in listed.text
    removed = _control(sandbox, REALM, "webhooks-removed", {"id": listed.json()[0]["id"]})
    assert removed.status_code == 201
    assert sandbox.webhooks.subscriptions(REALM) == []


# --------------------------------------------------------------------------------------------------
# Xero


def _xero_endpoint(got: Received) -> int:
    """An endpoint doing what Xero asks: 200 for a correct signature, 401 for any other."""
    try:
        webhooks.verify_xero(got.body, got.headers.get(webhooks.XERO_HEADER), [SecretStr(XERO_KEY)])
    except BadSignature:
        return 401
    return 200


def test_xero_intent_to_receive_good_and_bad(
    xero: tuple[XeroSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given an endpoint that verifies with the product's verifier, when the sandbox sends a correctly
    and a wrongly signed Intent-to-Receive, then it answers 200 and 401; the bodies carry no events
    and parse to none; Xero's whole check passes, and fails against an endpoint that answers 200 to all."""
    sandbox, _ = xero
    receiver.answer = _xero_endpoint

    assert sandbox.send_intent_to_receive(receiver.on("/xero"), XERO_KEY, good=True) == 200
    assert sandbox.send_intent_to_receive(receiver.on("/xero"), XERO_KEY, good=False) == 401
    for got in receiver.at("/xero"):
        assert json.loads(got.body)["events"] == []
        assert xero_webhook.parse(got.body) == []
    assert sandbox.check_intent_to_receive(receiver.on("/xero"), XERO_KEY)

    receiver.answer = lambda _got: 200
    assert not sandbox.check_intent_to_receive(receiver.on("/careless"), XERO_KEY)


def test_xero_invoice_update_when_a_payment_by_hand_changes_it(
    xero: tuple[XeroSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a subscription that passed Intent-to-Receive, when a person records a payment on an
    invoice, then one body arrives with that invoice's INVOICE UPDATE (Xero has no payment events),
    signed ``x-xero-signature`` so the product's verifier accepts it, parsed to an invoice event of
    the organisation; removing the payment sends another."""
    sandbox, case = xero
    invoice_id = _invoice(case, "xero-paid")
    receiver.answer = _xero_endpoint
    subscribed = _control(
        sandbox,
        XERO_TENANT,
        "webhooks",
        {"url": receiver.on("/xero"), "key": XERO_KEY, "intent_to_receive": True},
    )
    assert subscribed.json()["itr_passed"] is True
    receiver.received.clear()

    paid = _control(sandbox, XERO_TENANT, BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": "30.00"})
    assert paid.status_code == 201
    sandbox.flush(FLUSH)
    (got,) = receiver.at("/xero")
    webhooks.verify_xero(got.body, got.headers[webhooks.XERO_HEADER], [SecretStr(XERO_KEY)])
    (event,) = xero_webhook.parse(got.body)
    assert (event.tenant_id, event.kind, event.object_id, event.operation) == (
        XERO_TENANT,
        "invoice",
        invoice_id,
        "update",
    )

    sandbox.void_payment_by_hand(XERO_TENANT, paid.json()["PaymentID"])
    sandbox.flush(FLUSH)
    assert len(receiver.at("/xero")) == 2
    assert [d["state"] for d in sandbox.deliveries(XERO_TENANT)] == ["delivered", "delivered"]


def test_xero_sends_nothing_to_a_subscription_that_failed_its_check(
    xero: tuple[XeroSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a subscription whose endpoint answered 200 to a wrongly signed Intent-to-Receive, when a
    payment changes an invoice, then nothing is delivered to it (Xero keeps it inactive)."""
    sandbox, case = xero
    invoice_id = _invoice(case, "xero-inactive")
    assert (
        sandbox.subscribe(XERO_TENANT, receiver.on("/xero"), XERO_KEY, intent_to_receive=True)["itr_passed"]
        is False
    )
    receiver.received.clear()

    sandbox.record_payment_by_hand(XERO_TENANT, invoice_id, Decimal("5.00"))
    sandbox.flush(FLUSH)
    assert receiver.received == []
    assert sandbox.deliveries(XERO_TENANT) == []


# --------------------------------------------------------------------------------------------------
# FreshBooks


def _fb_token(case: LedgerCase) -> str:
    """The access token the adapter holds (FreshBooks refresh tokens are single use)."""
    token = case.vault.tokens.access_token
    assert token is not None
    return token.get_secret_value()


def test_freshbooks_callback_verification_then_a_signed_payment_event(
    freshbooks: tuple[FreshBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given a callback registered through the events API, then FreshBooks' ``callback.verify`` arrives
    unsigned with the code, parsed by the product to a callback_verify event; while unverified the
    callback receives no payment event; a wrong code is refused 400; once the code is sent back, a
    payment recorded by hand arrives as a form signed over ``json.dumps(form)`` with the code, which
    the product's verifier accepts and parses to the payment's create; deleting it sends its delete."""
    sandbox, case = freshbooks
    invoice_id = _invoice(case, "fb")
    api = httpx.Client(
        base_url=f"{sandbox.base_url}/events/account/{FB_ACCOUNT}/events",
        headers={"Authorization": f"Bearer {_fb_token(case)}"},
        timeout=10,
    )
    created = api.post("/callbacks", json={"callback": {"event": "payment", "uri": receiver.on("/fb")}})
    assert created.status_code == 200, created.text
    callback = created.json()["response"]["result"]["callback"]
    assert callback["verified"] is False
    sandbox.flush(FLUSH)

    (verify,) = receiver.at("/fb")
    assert webhooks.FRESHBOOKS_HEADER not in verify.headers
    form = webhooks.freshbooks_form(verify.body)
    assert freshbooks_webhook.is_verify(form)
    (handshake,) = freshbooks_webhook.parse(form)
    assert handshake.kind == "callback_verify"
    assert handshake.object_id == str(callback["callbackid"])
    assert handshake.tenant_id == FB_ACCOUNT
    assert handshake.verifier is not None
    code = handshake.verifier.get_secret_value()

    sandbox.record_payment_by_hand(FB_ACCOUNT, invoice_id, Decimal("12.00"))
    sandbox.flush(FLUSH)
    assert len(receiver.at("/fb")) == 1  # nothing for an unverified callback

    path = f"/callbacks/{callback['callbackid']}"
    wrong = api.put(path, json={"callback": {"callback_id": callback["callbackid"], "verifier": "not-it"}})
    assert wrong.status_code == 400
    right = api.put(path, json={"callback": {"callback_id": callback["callbackid"], "verifier": code}})
    assert right.status_code == 200
    assert right.json()["response"]["result"]["callback"]["verified"] is True

    paid = _control(sandbox, FB_ACCOUNT, BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": "20.00"})
    payment_id = str(paid.json()["id"])
    _control(sandbox, FB_ACCOUNT, BY_HAND_REMOVALS, {"payment_id": payment_id})
    sandbox.flush(FLUSH)

    _, created_event, deleted_event = receiver.at("/fb")
    operations = []
    for got in (created_event, deleted_event):
        header = got.headers[webhooks.FRESHBOOKS_HEADER]
        fields = webhooks.verify_freshbooks(got.body, header, [SecretStr(code)])
        assert header == webhooks.sign(webhooks.freshbooks_signed_string(fields).encode(), code)
        with pytest.raises(BadSignature):
            webhooks.verify_freshbooks(got.body, header, [SecretStr("another-code")])
        (event,) = freshbooks_webhook.parse(fields)
        assert (event.tenant_id, event.kind, event.object_id) == (FB_ACCOUNT, "payment", payment_id)
        operations.append(event.operation)
    assert operations == ["create", "delete"]
    listed = api.get("/callbacks").json()["response"]["result"]["callbacks"]
    assert [c["verified"] for c in listed] == [True]
    assert code not in json.dumps(listed)


def test_freshbooks_callbacks_refuse_bad_registrations(
    freshbooks: tuple[FreshBooksSandbox, LedgerCase],
) -> None:
    """Given the events API, when a callback lacks its uri, names no event, or a callback id is
    unknown, then FreshBooks' error shape answers 422, 422 and 404; without a token, 401."""
    sandbox, case = freshbooks
    _invoice(case, "fb-token")  # the adapter authorises once
    base = f"{sandbox.base_url}/events/account/{FB_ACCOUNT}/events/callbacks"
    auth = {"Authorization": f"Bearer {_fb_token(case)}"}
    no_uri = httpx.post(base, json={"callback": {"event": "payment"}}, headers=auth)
    assert no_uri.status_code == 422
    assert no_uri.json()["response"]["errors"][0]["field"] == "uri"
    assert (
        httpx.post(base, json={"callback": {"uri": "http://127.0.0.1:9/"}}, headers=auth).status_code == 422
    )
    assert httpx.get(f"{base}/999", headers=auth).status_code == 404
    assert httpx.get(base).status_code == 401


def test_freshbooks_control_api_registers_a_callback(
    freshbooks: tuple[FreshBooksSandbox, LedgerCase], receiver: Receiver
) -> None:
    """Given the control API, when a test registers a callback with ``{url, event}``, then it is the
    API's registration: unverified, its code posted to the URI, the same code ``callback_verifier``
    gives; a key is refused (FreshBooks issues it)."""
    sandbox, _ = freshbooks
    answer = _control(sandbox, FB_ACCOUNT, "webhooks", {"url": receiver.on("/fb"), "event": "payment.create"})
    assert answer.status_code == 201
    callback = answer.json()
    assert (callback["event"], callback["verified"]) == ("payment.create", False)
    sandbox.flush(FLUSH)
    (verify,) = receiver.at("/fb")
    form = webhooks.freshbooks_form(verify.body)
    assert form["verifier"] == sandbox.callback_verifier(FB_ACCOUNT, callback["callbackid"])
    with pytest.raises(ValueError, match="FreshBooks issues the verifier"):
        sandbox.subscribe(FB_ACCOUNT, receiver.on("/fb"), "a-key")


# --------------------------------------------------------------------------------------------------
# Stripe


def test_stripe_invoice_paid_after_pay_out_of_band(receiver: Receiver) -> None:
    """Given an endpoint subscribed with a whsec_, when invoice-sync's Stripe client pays an open
    invoice out of band, then ``invoice.updated`` and ``invoice.paid`` arrive in Stripe's event
    envelope, each signed ``Stripe-Signature: t=…,v1=…`` so that both the product's verifier and
    stripe-python's ``Webhook.construct_event`` accept it; the invoice inside parses with the
    product's parser as paid; a replay of the same request (same Idempotency-Key) sends nothing more."""
    sandbox = StripeSandbox()
    sandbox.seed_account(
        STRIPE_ACCOUNT, api_key=STRIPE_KEY, invoices=generate_invoices(2, start=1_700_000_000)
    )
    sandbox.start()
    try:
        open_id = next(
            i["id"] for i in sandbox.documents(STRIPE_ACCOUNT, "invoices") if i["status"] == "open"
        )
        sandbox.subscribe(STRIPE_ACCOUNT, receiver.on("/stripe"), WHSEC)
        api = StripeApi(sandbox.base_url, SecretStr(STRIPE_KEY))
        api.pay_out_of_band(open_id, "pay-once")
        sandbox.flush(FLUSH)

        updated, paid = receiver.at("/stripe")
        for got in (updated, paid):
            header = got.headers["stripe-signature"]
            verify_signature(got.body, header, [WHSEC], now=time.time(), tolerance=300)
            with pytest.raises(BadSignature):
                verify_signature(got.body, header, ["whsec_other"], now=time.time(), tolerance=300)
        event = stripe.Webhook.construct_event(paid.body.decode(), paid.headers["stripe-signature"], WHSEC)
        assert event.type == "invoice.paid"
        envelope = json.loads(paid.body)
        assert envelope["object"] == "event"
        assert envelope["id"].startswith("evt_")
        assert envelope["request"]["idempotency_key"] == "pay-once"
        assert envelope["data"]["object"]["id"] == open_id
        assert "payments" not in envelope["data"]["object"]
        parsed = parse_invoice(envelope["data"]["object"])
        assert (parsed.source_id, parsed.status.value) == (open_id, "paid")
        first = json.loads(updated.body)
        assert first["type"] == "invoice.updated"
        assert first["data"]["previous_attributes"]["status"] == "open"

        api.pay_out_of_band(open_id, "pay-once")  # the client's retry: replayed, no second effect
        sandbox.flush(FLUSH)
        assert len(receiver.at("/stripe")) == 2
    finally:
        sandbox.stop()


# --------------------------------------------------------------------------------------------------
# The emitter itself


def test_the_queue_is_bounded_and_stop_ends_the_thread(receiver: Receiver) -> None:
    """Given an emitter with a queue of one and a receiver that holds its answers, when three
    deliveries are queued, then at least one is refused as ``dropped`` (the request that caused it is
    never blocked); stopping ends the thread and marks what was still queued ``abandoned``."""
    emitter = WebhookEmitter("test", max_queue=1, retry_delays=())
    receiver.release.clear()
    for n in range(3):
        emitter.enqueue("t", receiver.on("/q"), f"{n}".encode(), {}, event="e")
    states = [d["state"] for d in emitter.deliveries("t")]
    assert "dropped" in states
    assert emitter.running
    receiver.release.set()
    emitter.stop()
    assert not emitter.running
    assert not [t for t in threading.enumerate() if t.name == "test-webhooks"]
    assert all(d["state"] != "pending" for d in emitter.deliveries("t"))
