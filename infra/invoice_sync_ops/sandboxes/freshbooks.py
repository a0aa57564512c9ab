"""A local FreshBooks API sandbox that speaks the subset of the real API the adapter uses.

It exists so the FreshBooks adapter is exercised over real HTTP with FreshBooks' own paths, envelopes
(``{"response": {"result": {...}}}``), money objects (``{"amount": "20.00", "code": "USD"}``), ``errno``
error bodies, single-use refresh tokens and rate limits, and so tests can provoke the failures that are
hard to get from FreshBooks on demand (429s, 5xx, 409 conflicts, responses lost after a commit,
revoked or expired tokens).

What it models, and where a choice had to be made (see the FreshBooks section of LEDGER-APIS.md):

* OAuth: ``POST /auth/oauth/token`` takes JSON or a form body (the official Python SDK posts a form).
  Refresh tokens are single use: the presented one dies as soon as its successor is issued.
* Errors use the classic accounting shape ``{"response": {"errors": [{"errno", "field", "message",
  "object", "value"}]}}``: HTTP 422 for validation, 404 for an unknown id, 409 for a conflict.
  A 401 on the accounting API uses the newer google.rpc shape FreshBooks is migrating to (the only
  captured 401 body), and ``/auth/api/v1/users/me`` answers the Doorkeeper-style
  ``{"error": "unauthenticated", ...}``.
* Taxes are per line (``taxNameN``/``taxAmountN``, the amount a percent *string*); like FreshBooks the
  invoice discount is applied before tax, and ``discount_total`` is echoed as a negative amount.
* There are no idempotency keys in FreshBooks: an ``Idempotency-Key`` header is ignored, so a retried
  create makes a second document. ``invoice_number`` is not unique either.
* Credit is only ever drawn by a payment on an invoice (``creditid``/``from_credit``), never past what
  the credit note has left. There is no refund of a credit note back to the client, because FreshBooks'
  API has none (the adapter's ``pay_out_credit`` gives the evidence): a payment without an
  ``invoiceid`` is refused (errno 1001), whatever its ``type``.
* Over-payments are refused with errno 1004 by default; ``allow_overpayment=True`` models what the
  real service does instead (the surplus becomes an ``overpayment`` credit note).

* Expenses (``expenses/expenses``: POST, GET, PUT, DELETE; ``search[date_min]`` inclusive and
  ``search[date_max]`` exclusive on ``date``, as FreshBooks documents for expenses) need a known
  ``categoryid``, ``staffid`` (the owner, 1), ``date`` and a positive ``amount``; expense categories
  (``expenses/categories``, read only) are seeded with "Advertising", "Merchant Fees" and
  "Office Expenses & Postage" (``category_id(account, name)``). This is where a payout's fees go
  (design two-way 3.9): FreshBooks' API has no deposit.

Money inside the sandbox is ``Decimal`` end to end: bodies are parsed with ``parse_float=Decimal`` and
Decimals are written back as JSON *strings* (FreshBooks' money format), never through float.

Webhooks (design two-way 2.4, 6): the events API's callbacks, ``POST/GET
/events/account/{id}/events/callbacks`` and ``GET/PUT/DELETE .../callbacks/{callback_id}`` (bearer
token as for accounting). A new callback gets ``name=callback.verify&object_id=<id>&verifier=<code>…``
posted to its URI, unsigned; ``PUT {"callback": {"verifier"}}`` with that code verifies it (a wrong
one: 400 errno 1004, this sandbox's assumption), ``{"resend": true}`` posts the code again. Verified
callbacks whose event is the name or its parent (``payment``) get ``payment.create|update|delete``
forms signed ``X-FreshBooks-Hmac-SHA256`` = base64 HMAC-SHA256 of ``json.dumps(form)`` with the code.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from invoice_sync_ops.sandboxes.base import (
    BY_HAND_PAYMENTS,
    BY_HAND_REMOVALS,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    WEBHOOKS,
    ByHandPayment,
    GrantRefused,
    SandboxServer,
    Traffic,
    decimal_string,
    encode_json,
    expire_window,
    foreground_parser,
    loads,
    money,
    parse_number,
    removed_payment_id,
    retry_after,
    run_foreground,
    seed_demo,
)
from invoice_sync_ops.sandboxes.webhooks import base64_hmac_sha256, check_url

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "FreshBooksSandbox", "dumps", "main"]

ACCESS_TOKEN_TTL = 43200
DEFAULT_PER_PAGE = 15
MAX_PER_PAGE = 100
FIRST_ID = 100001
MAX_PERCENT_PLACES = 3

SCOPE = (
    "user:profile:read user:clients:read user:clients:write user:invoices:read user:invoices:write "
    "user:payments:read user:payments:write user:credit_notes:read user:credit_notes:write "
    "user:taxes:read user:items:read user:expenses:read user:expenses:write"
)
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI "
    "used in the authorization request, or was issued to another client."
)
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)
CONFLICT_MESSAGE = "The resource being modified is being modified by another request."

# Accounting timestamps ("updated", "created_at") are US/Eastern wall-clock time in FreshBooks.
try:
    EASTERN: tzinfo = ZoneInfo("America/New_York")
except ZoneInfoNotFoundError:  # pragma: no cover - no tz database on the host
    EASTERN = timezone(timedelta(hours=-5))
STAMP = "%Y-%m-%d %H:%M:%S"

# URL path under /accounting/account/{id}/ -> (singular body key, list key). The list key is also the
# resource name documents() takes.
RESOURCES = {
    "users/clients": ("client", "clients"),
    "invoices/invoices": ("invoice", "invoices"),
    "payments/payments": ("payment", "payments"),
    "credit_notes/credit_notes": ("credit_note", "credit_notes"),
    "items/items": ("item", "items"),
    "taxes/taxes": ("tax", "taxes"),
    "expenses/expenses": ("expense", "expenses"),
    "expenses/categories": ("category", "categories"),
}
WRITABLE = {"clients", "invoices", "payments", "credit_notes", "expenses"}
# Primary id field per resource (besides "id", which FreshBooks also returns).
ID_FIELD = {
    "clients": "userid",
    "invoices": "invoiceid",
    "payments": "logid",
    "credit_notes": "creditid",
    "items": "itemid",
    "taxes": "taxid",
    "expenses": "expenseid",
    "categories": "categoryid",
}
OBJECT_NAME = {
    "clients": "client",
    "invoices": "invoice",
    "payments": "payment",
    "credit_notes": "credit_note",
    "items": "item",
    "taxes": "tax",
    "expenses": "expense",
    "categories": "category",
}
NOT_FOUND_MESSAGE = {
    "clients": "Client not found.",
    "invoices": "Invoice not found.",
    "payments": "Payment not found.",
    "credit_notes": "Credit note not found.",
    "items": "Item not found.",
    "taxes": "Tax not found.",
    "expenses": "Expense not found.",  # sandbox wording
    "categories": "Category not found.",  # sandbox wording
}
# Expense categories (https://www.freshbooks.com/api/expense_categories) have their own id range
# here, so seeding them leaves the ids of every other object as they were.
FIRST_CATEGORY_ID = 3100001
SEEDED_CATEGORIES = ("Advertising", "Merchant Fees", "Office Expenses & Postage")
# The staff an expense names: the business owner, staff 1 (the sandbox account has no other staff).
OWNER_STAFF_ID = 1
# Invoice "status" integers (FreshBooks' older enum, still returned next to v3_status).
STATUS_DRAFT, STATUS_SENT, STATUS_PAID = 1, 2, 4

# Webhooks (design two-way 2.4): callbacks are registered per account through the events API, get a
# verification code posted (unsigned) to their URI, and receive events once the code is sent back.
SIGNATURE_HEADER = "X-FreshBooks-Hmac-SHA256"
VERIFY_EVENT = "callback.verify"
FORM_TYPE = "application/x-www-form-urlencoded"
VERIFIER_LENGTH = 33  # as long as the code in FreshBooks' docs
VERIFIER_ALPHABET = string.ascii_letters + string.digits
EVENT_NAME = re.compile(r"[a-z_]+(\.[a-z_]+)?")
WEBHOOK_USER_ID = "1"  # the business owner's user id, as in FreshBooks' example delivery


class _Fault(Exception):
    """A FreshBooks accounting error: raised anywhere inside request handling, rendered once at the edge."""

    def __init__(
        self,
        status: int,
        errno: int,
        message: str,
        *,
        field: str | None = None,
        obj: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(f"{errno} {message}")
        self.status = status
        self.errno = errno
        self.message = message
        self.field = field
        self.obj = obj
        self.value = None if value is None else str(value)

    def body(self) -> dict[str, Any]:
        error = {
            "errno": self.errno,
            "field": self.field,
            "message": self.message,
            "object": self.obj,
            "value": self.value,
        }
        return {"response": {"errors": [error]}}


def _required(name: str, obj: str) -> _Fault:
    return _Fault(422, 1001, "This field is required.", field=name, obj=obj)


def _invalid(name: str, obj: str, value: Any, message: str = "Invalid value.") -> _Fault:
    return _Fault(422, 1004, message, field=name, obj=obj, value=value)


def _bad_percent(name: str, obj: str, value: Any) -> _Fault:
    return _Fault(
        422, 1018, "Percent values should be strings formatted as decimals", field=name, obj=obj, value=value
    )


def _unauthenticated_accounting_body() -> dict[str, Any]:
    # The shape FreshBooks' accounting API gives a request without a valid bearer token
    # (amcintosh/freshbooks-java-sdk fixture get_client_response__no_auth.json).
    return {
        "code": 16,
        "message": "Request failed with status_code: 401",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "1003",
                "domain": "accounting.api.freshbooks.com",
                "metadata": {
                    "object": "",
                    "message": "The server could not verify that you are authorized to access the URL "
                    "requested.",
                    "value": "",
                    "field": "",
                },
            }
        ],
    }


UNAUTHENTICATED_ME = {
    "error": "unauthenticated",
    "error_description": "This action requires authentication to continue.",
}


# --------------------------------------------------------------------------------------------------
# JSON with exact money


def dumps(value: Any) -> str:
    """Serialise to JSON writing Decimals as strings (FreshBooks' money format), never through float."""
    return encode_json(value, decimal_string)


def _dec(value: Any, name: str, obj: str) -> Decimal:
    result = parse_number(value)
    if result is None:
        raise _invalid(name, obj, value)
    return result


def _money_in(value: Any, name: str, obj: str) -> Decimal:
    """A money object ``{"amount": "10.00", "code": ...}`` (a bare amount is tolerated) -> Decimal."""
    amount = value.get("amount") if isinstance(value, dict) else value
    if amount is None:
        raise _required(name, obj)
    return _dec(amount, name, obj)


def _percent(value: Any, name: str, obj: str) -> Decimal:
    """A percent must be a decimal *string* with at most three places (errno 1018 otherwise)."""
    if value is None or value == "":
        return Decimal(0)
    if not isinstance(value, str) or not re.fullmatch(
        rf"\d+(\.\d{{1,{MAX_PERCENT_PLACES}}})?", value.strip()
    ):
        raise _bad_percent(name, obj, value)
    return Decimal(value.strip())


def _date(value: Any, name: str, obj: str) -> str:
    if not isinstance(value, str):
        raise _invalid(name, obj, value, "Invalid date, expected YYYY-MM-DD.")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise _invalid(name, obj, value, "Invalid date, expected YYYY-MM-DD.") from exc


def _int_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------------------------------
# Account state


@dataclass
class _Account(Traffic):
    account_id: str
    business_id: int
    client_id: str
    client_secret: str
    refresh_token: str | None
    business_name: str
    currency: str
    identity_id: int
    access_tokens: dict[str, float] = field(default_factory=dict)
    store: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    applied: dict[int, Decimal] = field(default_factory=dict)  # payment id -> part that pays its invoice
    next_id: int = FIRST_ID
    next_invoice_number: int = 1
    next_credit_number: int = 1
    # callback id -> the callback as served (callbackid, event, uri, verified, updated_at)
    callbacks: dict[int, dict[str, Any]] = field(default_factory=dict)
    verifiers: dict[int, str] = field(default_factory=dict)  # callback id -> its code (its HMAC key)

    def table(self, resource: str) -> dict[int, dict[str, Any]]:
        return self.store.setdefault(resource, {})

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class FreshBooksSandbox(SandboxServer[_Account]):
    """An in-memory FreshBooks server. Thread-safe: one lock guards all account state."""

    thread_name = "freshbooks-sandbox"
    logged_prefixes = ("/accounting/", "/auth/", "/events/")
    json_type = "application/json"
    control_root = "accounts"
    seed_key = "account_id"
    tenant_noun = "account"
    authorize_path = "/oauth/authorize"  # https://auth.freshbooks.com/oauth/authorize
    tenants_per_grant = None  # a token is the person's: every business they are a member of
    injectable = (409, 429)

    def __init__(
        self,
        *,
        requests_per_minute: int = 100,
        max_concurrent: int = 5,
        clock: Callable[[], float] = time.time,
        latency_seconds: float = 0.0,
        allow_overpayment: bool = False,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.max_concurrent = max_concurrent
        self.allow_overpayment = allow_overpayment
        base = "/accounting/account/<account_id>/<group>/<name>"
        callbacks = "/events/account/<account_id>/events/callbacks"
        super().__init__(
            clock=clock,
            latency_seconds=latency_seconds,
            rules=[
                Rule("/auth/oauth/token", endpoint="token", methods=["POST"]),
                Rule("/auth/api/v1/users/me", endpoint="me", methods=["GET"]),
                Rule(base, endpoint="collection", methods=["GET", "POST"]),
                Rule(f"{base}/<int:obj_id>", endpoint="item", methods=["GET", "PUT", "DELETE"]),
                Rule(callbacks, endpoint="callbacks", methods=["GET", "POST"]),
                Rule(f"{callbacks}/<int:callback_id>", endpoint="callback", methods=["GET", "PUT", "DELETE"]),
            ],
        )

    # ---------------------------------------------------------------------------------------------
    # Test controls

    def seed_account(
        self,
        account_id: str,
        *,
        business_id: int,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        business_name: str = "Demo Business",
        currency: str = "USD",
    ) -> None:
        """Create (or reset) an account with a few taxes and items, and an owner identity."""
        account = _Account(
            account_id=account_id,
            business_id=business_id,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            business_name=business_name,
            currency=currency.upper(),
            identity_id=business_id + 7000000,
        )
        stamp = self._stamp()
        for name, rate in (("Sales Tax", "8.25"), ("GST", "5"), ("HST", "13")):
            tax_id = account.new_id()
            account.table("taxes")[tax_id] = {
                "accounting_systemid": account_id,
                "amount": rate,
                "compound": False,
                "id": tax_id,
                "name": name,
                "number": None,
                "taxid": tax_id,
                "updated": stamp,
            }
        for name, cost in (("Consulting", "150.00"), ("Hosting", "49.99")):
            item_id = account.new_id()
            account.table("items")[item_id] = {
                "accounting_systemid": account_id,
                "description": name,
                "id": item_id,
                "itemid": item_id,
                "name": name,
                "qty": "0",
                "tax1": 0,
                "tax2": 0,
                "unit_cost": {"amount": Decimal(cost), "code": account.currency},
                "updated": stamp,
                "vis_state": 0,
            }
        for offset, category in enumerate(SEEDED_CATEGORIES):
            category_id = FIRST_CATEGORY_ID + offset
            account.table("categories")[category_id] = {
                "category": category,
                "categoryid": category_id,
                "created_at": stamp,
                "id": category_id,
                "is_cogs": False,
                "is_editable": False,
                "parentid": None,
                "transaction_posted": False,
                "updated_at": stamp,
                "vis_state": 0,
            }
        with self._lock:
            self._tenants[account_id] = account

    def category_id(self, account_id: str, name: str = "Merchant Fees") -> int:
        """The id of a seeded expense category, by name (what payout_fee_account names)."""
        with self._lock:
            for category in self._tenant(account_id).table("categories").values():
                if category["category"] == name:
                    return int(category["id"])
        raise KeyError(f"no expense category {name!r}")

    def documents(self, account_id: str, resource: str) -> list[dict[str, Any]]:
        """Deep copies of the stored objects of one resource ("clients", "invoices", "payments",
        "credit_notes", "items", "taxes"), deleted ones included, in creation order. Money is Decimal."""
        with self._lock:
            return copy.deepcopy(list(self._tenant(account_id).table(resource).values()))

    def inject_status(self, account_id: str, status: int, count: int = 1) -> None:
        """The next ``count`` accounting calls answer ``status`` (409, 429 or 5xx) and change nothing."""
        self._inject_status(account_id, status, count)

    def lose_responses(self, account_id: str, count: int = 1, lost_as: str = "gateway") -> None:
        """The next ``count`` writes commit, but the client gets a 502 (or, ``lost_as="drop"``, a
        closed connection) instead of the result."""
        self._lose_responses(account_id, count, lost_as)

    def revoke_refresh_token(self, account_id: str) -> None:
        with self._lock:
            self._tenant(account_id).refresh_token = None

    def expire_access_tokens(self, account_id: str) -> None:
        with self._lock:
            self._tenant(account_id).access_tokens.clear()

    def record_payment_by_hand(
        self,
        account_id: str,
        invoice_id: str,
        amount: Decimal,
        *,
        paid_on: date | None = None,
        reference: str | None = None,
        note: str | None = None,
        account: str | None = None,  # noqa: ARG002 - a FreshBooks payment names no account
    ) -> dict[str, Any]:
        """A person adding a payment to an invoice in FreshBooks (a cheque): a payment of type
        ``Check`` with no invoice-sync marker, its note the note and reference together (FreshBooks
        keeps one text field). It goes through the API's own write: the invoice's paid, outstanding,
        statuses and ``updated`` move as FreshBooks moves them, and what FreshBooks would refuse
        raises ``ValueError``. Returns the payment as served."""
        with self._lock:
            tenant = self._tenant(account_id)
            number = _int_id(invoice_id)
            if number is None or number not in tenant.table("invoices"):
                raise KeyError(f"invoice {invoice_id}")
            data: dict[str, Any] = {
                "invoiceid": number,
                "amount": {"amount": format(amount, "f")},
                "date": (paid_on.isoformat() if paid_on else self._today()),
                "type": "Check",
                "note": " ".join(part for part in (reference, note) if part),
            }
            try:
                payment = self._create(tenant, "payments", data)
            except _Fault as fault:
                raise ValueError(f"FreshBooks {fault.errno}: {fault.message}") from fault
            return copy.deepcopy(payment)

    def void_payment_by_hand(self, account_id: str, payment_id: str) -> dict[str, Any]:
        """A person deleting a payment in FreshBooks (``vis_state`` 1): the invoice owes the money
        again and both ``updated`` stamps move. Returns the deleted payment."""
        with self._lock:
            tenant = self._tenant(account_id)
            number = _int_id(payment_id)
            payment = tenant.table("payments").get(number) if number is not None else None
            if payment is None:
                raise KeyError(f"payment {payment_id}")
            self._set_vis_state(tenant, "payments", payment, 1)
            return copy.deepcopy(payment)

    # ---------------------------------------------------------------------------------------------
    # Webhooks: the callbacks API

    def subscribe(
        self,
        tenant_id: str,
        url: str,
        key: str | None = None,
        *,
        format: str | None = None,
        event: str = "payment",
    ) -> dict[str, Any]:
        """Register a callback for ``event`` (a parent name such as ``payment`` takes all its
        children) at ``url``, as ``POST /events/account/{id}/events/callbacks`` does: FreshBooks
        issues the verifier itself, so ``key`` must be left out; the code is posted (unsigned) to
        ``url`` as a ``callback.verify`` delivery, and the callback receives events only once the
        code comes back (``verify_callback`` or ``PUT .../callbacks/{id}``). Returns the callback."""
        if key is not None or format is not None:
            raise ValueError("FreshBooks issues the verifier and sends one format: give only url and event")
        return self.register_callback(tenant_id, event, url)

    def register_callback(self, account_id: str, event: str, uri: str) -> dict[str, Any]:
        """The callbacks API's create (see ``subscribe``); ``ValueError`` for what it would refuse."""
        with self._lock:
            account = self._tenant(account_id)
            try:
                return copy.deepcopy(self._create_callback(account, {"event": event, "uri": uri}))
            except _Fault as fault:
                raise ValueError(f"FreshBooks {fault.errno}: {fault.message} ({fault.field})") from fault

    def verify_callback(self, account_id: str, callback_id: int, verifier: str) -> dict[str, Any]:
        """The callbacks API's ``PUT {"callback": {"verifier"}}``: the right code verifies the
        callback; a wrong one raises ``ValueError`` (400 over HTTP)."""
        with self._lock:
            account = self._tenant(account_id)
            try:
                return copy.deepcopy(self._update_callback(account, int(callback_id), {"verifier": verifier}))
            except _Fault as fault:
                raise ValueError(f"FreshBooks {fault.errno}: {fault.message}") from fault

    def callbacks(self, account_id: str) -> list[dict[str, Any]]:
        """The account's callbacks as the API lists them (no verifiers)."""
        with self._lock:
            return copy.deepcopy(list(self._tenant(account_id).callbacks.values()))

    def callback_verifier(self, account_id: str, callback_id: int) -> str:
        """The code FreshBooks posted for a callback (what a receiver read from ``callback.verify``):
        for tests that play the receiver without one."""
        with self._lock:
            return self._tenant(account_id).verifiers[int(callback_id)]

    def _callbacks_api(
        self, account: _Account, request: Request, endpoint: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        if endpoint == "callbacks" and request.method == "GET":
            rows = list(account.callbacks.values())
            return {
                "response": {
                    "result": {
                        "callbacks": copy.deepcopy(rows),
                        "page": 1,
                        "pages": 1,
                        "per_page": max(DEFAULT_PER_PAGE, len(rows)),
                        "total": len(rows),
                    }
                }
            }
        if endpoint == "callback" and request.method == "GET":
            return {
                "response": {
                    "result": {"callback": copy.deepcopy(self._callback(account, args["callback_id"]))}
                }
            }
        if request.method == "DELETE":
            self._callback(account, args["callback_id"])
            del account.callbacks[args["callback_id"]]
            account.verifiers.pop(args["callback_id"], None)
            return {"response": {}}
        try:
            body = loads(request.get_data())
        except ValueError as exc:
            raise _Fault(400, 1005, "The server was unable to parse your request.") from exc
        data = body.get("callback") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _required("callback", "callback")
        if request.method == "POST":
            callback = self._create_callback(account, data)
        else:
            callback = self._update_callback(account, args["callback_id"], data)
        return {"response": {"result": {"callback": copy.deepcopy(callback)}}}

    def _callback(self, account: _Account, callback_id: int) -> dict[str, Any]:
        callback = account.callbacks.get(callback_id)
        if callback is None:
            raise _Fault(
                404, 1012, "Callback not found.", field="callbackid", obj="callback", value=callback_id
            )
        return callback

    def _create_callback(self, account: _Account, data: dict[str, Any]) -> dict[str, Any]:
        event, uri = data.get("event"), data.get("uri")
        if not event:
            raise _required("event", "callback")
        if not isinstance(event, str) or not EVENT_NAME.fullmatch(event):
            raise _invalid("event", "callback", event)
        if not uri:
            raise _required("uri", "callback")
        try:
            check_url(str(uri))
        except ValueError:
            raise _invalid("uri", "callback", uri) from None
        callback_id = account.new_id()
        callback = {
            "callbackid": callback_id,
            "event": event,
            "uri": str(uri),
            "verified": False,
            "updated_at": self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        account.callbacks[callback_id] = callback
        account.verifiers[callback_id] = "".join(
            secrets.choice(VERIFIER_ALPHABET) for _ in range(VERIFIER_LENGTH)
        )
        self._send_verifier(account, callback_id)
        return callback

    def _update_callback(self, account: _Account, callback_id: int, data: dict[str, Any]) -> dict[str, Any]:
        callback = self._callback(account, callback_id)
        if data.get("resend") is True:
            self._send_verifier(account, callback_id)
            return callback
        verifier = data.get("verifier")
        if not verifier:
            raise _required("verifier", "callback")
        if not secrets.compare_digest(str(verifier).encode(), account.verifiers[callback_id].encode()):
            raise _Fault(400, 1004, "The verifier is not valid.", field="verifier", obj="callback")
        callback["verified"] = True
        callback["updated_at"] = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return callback

    def _form(
        self, account: _Account, name: str, object_id: int, *extra: tuple[str, str]
    ) -> list[tuple[str, str]]:
        return [
            ("name", name),
            ("object_id", str(object_id)),
            *extra,
            ("account_id", account.account_id),
            ("business_id", str(account.business_id)),
            ("identity_id", str(account.identity_id)),
            ("user_id", WEBHOOK_USER_ID),
        ]

    def _send_verifier(self, account: _Account, callback_id: int) -> None:
        """Post the callback's code to its URI: unsigned, as FreshBooks sends it (no key exists yet)."""
        form = self._form(account, VERIFY_EVENT, callback_id, ("verifier", account.verifiers[callback_id]))
        self.webhooks.enqueue(
            account.account_id,
            account.callbacks[callback_id]["uri"],
            urlencode(form).encode("ascii"),
            {"Content-Type": FORM_TYPE},
            event=VERIFY_EVENT,
            subscription_id=f"callback_{callback_id}",
        )

    def _announce(self, account: _Account, name: str, object_id: int) -> None:
        """Post ``name`` to every verified callback whose event is it or its parent, signed with the
        callback's verifier over ``json.dumps`` of the form (FreshBooks' recipe). Under the lock."""
        form = self._form(account, name, object_id)
        body = urlencode(form).encode("ascii")
        # What FreshBooks signs: json.dumps of the form as a dict, in the order sent, with its defaults.
        signed = json.dumps(dict(form)).encode("ascii")
        for callback_id, callback in account.callbacks.items():
            wanted = callback["event"]
            if not callback["verified"] or not (name == wanted or name.startswith(f"{wanted}.")):
                continue
            headers = {
                "Content-Type": FORM_TYPE,
                SIGNATURE_HEADER: base64_hmac_sha256(signed, account.verifiers[callback_id]),
            }
            self.webhooks.enqueue(
                account.account_id,
                callback["uri"],
                body,
                headers,
                event=name,
                subscription_id=f"callback_{callback_id}",
            )

    # ---------------------------------------------------------------------------------------------
    # Helpers

    def _control_calls(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        return {
            **super()._control_calls(),
            WEBHOOKS: lambda account_id, body: self.subscribe(
                account_id,
                str(body.get("url") or body.get("uri") or ""),
                event=str(body.get("event") or "payment"),
            ),
            BY_HAND_PAYMENTS: self._payment_by_hand_call,
            BY_HAND_REMOVALS: lambda account_id, body: self.void_payment_by_hand(
                account_id, removed_payment_id(body)
            ),
        }

    def _payment_by_hand_call(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = ByHandPayment.from_body(body)
        return self.record_payment_by_hand(
            account_id,
            wanted.invoice_id,
            wanted.amount,
            paid_on=wanted.paid_on,
            reference=wanted.reference,
            note=wanted.note,
            account=wanted.account,
        )

    def _seed_tenant(self, tenant_id: str, options: dict[str, Any]) -> None:
        options["business_id"] = int(options["business_id"])
        self.seed_account(tenant_id, **options)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _stamp(self) -> str:
        return self._now().astimezone(EASTERN).strftime(STAMP)

    def _today(self) -> str:
        return self._now().astimezone(EASTERN).date().isoformat()

    def _dumps(self, payload: Any) -> str:
        return dumps(payload)

    def _token_accounts(self, request: Request) -> list[_Account]:
        """The accounts the bearer token is good for (one identity can be a member of several)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return []
        now = self._clock()
        return [
            account
            for account in self._tenants.values()
            if (expiry := account.access_tokens.get(token.strip())) is not None and expiry > now
        ]

    # ---------------------------------------------------------------------------------------------
    # Routing

    def _route(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        if endpoint == "token":
            return self._token(request)
        return self._api(request, endpoint, args)

    # ---------------------------------------------------------------------------------------------
    # OAuth

    def _token(self, request: Request) -> Response:
        params: dict[str, Any]
        if request.mimetype == "application/json":
            try:
                loaded = loads(request.get_data())
            except ValueError:
                loaded = None
            params = loaded if isinstance(loaded, dict) else {}
        else:
            params = dict(request.form)
        client_id = str(params.get("client_id") or "")
        client_secret = str(params.get("client_secret") or "")
        with self._lock:
            if not client_id or not any(
                secrets.compare_digest(a.client_id, client_id)
                and secrets.compare_digest(a.client_secret, client_secret)
                for a in self._tenants.values()
            ):
                return self._json({"error": "invalid_client", "error_description": INVALID_CLIENT}, 401)
            grant_type = params.get("grant_type")
            if grant_type == "authorization_code":
                try:
                    granted = self._redeem_code(params, client_id)
                except GrantRefused as refused:
                    return self._json({"error": refused.error, "error_description": refused.description}, 400)
                return self._json(self._issue_tokens(granted))
            if grant_type != "refresh_token":
                return self._json(
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "The authorization grant type is not supported by the "
                        "authorization server.",
                    },
                    400,
                )
            presented = str(params.get("refresh_token") or "")
            holders = [
                a
                for a in self._tenants.values()
                if a.refresh_token is not None
                and presented
                and secrets.compare_digest(a.refresh_token, presented)
            ]
            if not holders or any(a.client_id != client_id for a in holders):
                return self._json({"error": "invalid_grant", "error_description": INVALID_GRANT}, 400)
            return self._json(self._issue_tokens(holders))

    def _issue_tokens(self, accounts: list[_Account]) -> dict[str, Any]:
        """One token set for the identity, good for each of its accounts; under the lock. Single use:
        the presented refresh token dies the moment its successor is issued, so a client that loses
        the response (or fails to persist the new token) is locked out until re-authorised."""
        refresh = secrets.token_hex(32)
        access = secrets.token_hex(32)
        now = self._clock()
        for account in accounts:
            account.refresh_token = refresh
            account.access_tokens[access] = now + ACCESS_TOKEN_TTL
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": refresh,
            "scope": SCOPE,
            "created_at": int(now),
        }

    # ---------------------------------------------------------------------------------------------
    # The API (identity + accounting)

    def _me(self, account: _Account, accounts: list[_Account]) -> dict[str, Any]:
        """The identity of ``account``'s owner, a member of each of ``accounts``."""
        return {
            "response": {
                "id": account.identity_id,
                "identity_id": account.identity_id,
                "first_name": "Sandbox",
                "last_name": "Owner",
                "email": f"owner+{account.account_id.lower()}@example.com",
                "language": "en",
                "business_memberships": [
                    {
                        "id": member.identity_id + 1,
                        "role": "owner",
                        "unacknowledged_change": False,
                        "business": {
                            "id": member.business_id,
                            "name": member.business_name,
                            "account_id": member.account_id,
                            "date_format": "mm/dd/yyyy",
                        },
                    }
                    for member in accounts
                ],
                "roles": [{"role": "admin", "accountid": member.account_id} for member in accounts],
            }
        }

    def _api(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        with self._lock:
            accounts = self._token_accounts(request)
            if endpoint == "me":
                if not accounts:
                    return self._json(UNAUTHENTICATED_ME, 401)
                account = accounts[0]  # /users/me counts against the first membership's limits
            else:
                named = [a for a in accounts if a.account_id == args["account_id"]]
                if not named:
                    return self._json(_unauthenticated_accounting_body(), 401)
                account = named[0]
            status = self._next_fault(account)
            if status is not None:
                return self._injected(status)
            now = self._clock()
            expire_window(account.minute, now)
            if len(account.minute) >= self.requests_per_minute:
                return self._throttled(retry_after(account.minute, now))
            if account.in_flight >= self.max_concurrent:
                return self._throttled(1)
            self._admit(account, now)

        def respond() -> Response:
            if endpoint == "me":
                return self._json(self._me(account, accounts))
            try:
                status, payload = 200, self._handle(account, request, endpoint, args)
            except _Fault as fault:
                status, payload = fault.status, fault.body()
            return self._json(payload, status)

        # /users/me is a GET, so only accounting writes can lose their response.
        return self._serve(account, is_write=request.method in ("POST", "PUT", "DELETE"), respond=respond)

    def _throttled(self, retry_after: int) -> Response:
        return self._json({"message": "Too Many Requests"}, 429, {"Retry-After": str(retry_after)})

    def _injected(self, status: int) -> Response:
        if status == 429:
            return self._throttled(1)
        if status == 409:
            return self._json(_Fault(409, 409, CONFLICT_MESSAGE).body(), 409)
        if status == 500:
            return self._json(_Fault(500, 500, "The ORM encountered an unexpected error.").body(), 500)
        # Other 5xx come from the edge, not the API: an HTML page, like a real gateway error.
        return Response(
            f"<html><body><h1>{status} Service Error</h1></body></html>", status, content_type="text/html"
        )

    def _handle(
        self, account: _Account, request: Request, endpoint: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        if endpoint in ("callbacks", "callback"):
            return self._callbacks_api(account, request, endpoint, args)
        path = f"{args['group']}/{args['name']}"
        if path not in RESOURCES:
            raise _Fault(404, 1012, "The resource referred to in the request cannot be found.", value=path)
        single, resource = RESOURCES[path]
        if endpoint == "collection" and request.method == "GET":
            return {"response": {"result": self._list(account, resource, request)}}
        if endpoint == "item" and request.method == "GET":
            return {
                "response": {"result": {single: copy.deepcopy(self._get(account, resource, args["obj_id"]))}}
            }
        if resource not in WRITABLE:
            raise _Fault(403, 1003, "You do not have access to perform the action requested.", obj=single)
        if request.method == "DELETE":
            existing = self._get(account, resource, args["obj_id"])
            self._set_vis_state(account, resource, existing, 1)
            return {"response": {}}
        try:
            body = loads(request.get_data())
        except ValueError as exc:
            raise _Fault(400, 1005, "The server was unable to parse your request.") from exc
        data = body.get(single) if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _required(single, single)
        if request.method == "POST":
            obj = self._create(account, resource, data)
        else:
            obj = self._update(account, resource, self._get(account, resource, args["obj_id"]), data)
        return {"response": {"result": {single: copy.deepcopy(obj)}}}

    def _get(self, account: _Account, resource: str, obj_id: int) -> dict[str, Any]:
        obj = account.table(resource).get(obj_id)
        if obj is None:
            raise _Fault(
                404,
                1012,
                NOT_FOUND_MESSAGE[resource],
                field=ID_FIELD[resource],
                obj=OBJECT_NAME[resource],
                value=obj_id,
            )
        return obj

    # ---------------------------------------------------------------------------------------------
    # Lists: search[...] filters and paging

    def _list(self, account: _Account, resource: str, request: Request) -> dict[str, Any]:
        rows = list(account.table(resource).values())
        filters: dict[str, list[str]] = {}
        for key, value in request.args.items(multi=True):
            match = re.fullmatch(r"search\[(\w+)\](\[\])?", key)
            if match:
                filters.setdefault(match.group(1), []).append(value)
        if "vis_state" not in filters and resource not in ("taxes",):
            rows = [row for row in rows if row.get("vis_state", 0) != 1]  # deleted ones only on request
        for name, values in filters.items():
            if resource == "expenses" and name in ("date_min", "date_max"):
                # Expenses' own filters: "date greater than or equal to" date_min, "date less than"
                # date_max, YYYY-MM-DD (https://www.freshbooks.com/api/expenses).
                wanted = values[0].strip()
                rows = [
                    row
                    for row in rows
                    if (str(row["date"]) >= wanted if name == "date_min" else str(row["date"]) < wanted)
                ]
                continue
            rows = [row for row in rows if self._matches(row, name, values)]
        page_arg, per_page_arg = (
            request.args.get("page", "1"),
            request.args.get("per_page", str(DEFAULT_PER_PAGE)),
        )
        if not page_arg.isdigit():
            raise _Fault(
                400, 1014, "The 'page' argument must be a positive integer.", field="page", value=page_arg
            )
        if not per_page_arg.isdigit() or int(per_page_arg) == 0:
            raise _Fault(
                400,
                1013,
                "The 'per_page' argument must be a positive integer.",
                field="per_page",
                value=per_page_arg,
            )
        page, per_page = max(1, int(page_arg)), min(MAX_PER_PAGE, int(per_page_arg))
        total = len(rows)
        return {
            resource: copy.deepcopy(rows[(page - 1) * per_page : page * per_page]),
            "page": page,
            "pages": math.ceil(total / per_page),
            "per_page": per_page,
            "total": total,
        }

    @staticmethod
    def _matches(row: dict[str, Any], name: str, values: list[str]) -> bool:
        if name.endswith("_like"):
            actual = row.get(name[: -len("_like")])
            return actual is not None and values[0].lower() in str(actual).lower()
        if name in ("updated_min", "updated_max", "date_min", "date_max"):
            column = "updated" if name.startswith("updated") else "create_date"
            actual = str(row.get(column) or "")
            wanted = values[0].strip()
            if name.endswith("_min"):
                return actual >= wanted
            # A date-only maximum covers that whole day (FreshBooks: day-level granularity).
            return (actual[:10] if len(wanted) == 10 else actual) <= wanted
        if name.endswith("s") and name[:-1] in row:  # search[invoiceids][]=1&search[invoiceids][]=2
            return str(row.get(name[:-1])) in values
        if name not in row:
            return True  # FreshBooks ignores filters it does not know
        actual = row.get(name)
        if name == "email":
            return str(actual or "").lower() == values[0].lower()
        return str(actual) == values[0]

    # ---------------------------------------------------------------------------------------------
    # Writes

    def _create(self, account: _Account, resource: str, data: dict[str, Any]) -> dict[str, Any]:
        obj_id = account.new_id()
        stamp = self._stamp()
        base: dict[str, Any] = {
            "id": obj_id,
            ID_FIELD[resource]: obj_id,
            "accounting_systemid": account.account_id,
            "vis_state": 0,
            "updated": stamp,
        }
        if resource == "clients":
            obj = self._build_client(account, data, base)
        elif resource == "invoices":
            base["created_at"] = stamp
            obj = self._build_invoice(account, data, base, None)
        elif resource == "payments":
            obj = self._build_payment(account, data, base, None)
        elif resource == "expenses":
            obj = self._build_expense(account, data, base)
        else:
            base["created_at"] = stamp
            obj = self._build_credit_note(account, data, base, None)
        account.table(resource)[obj_id] = obj
        if resource == "payments":
            account.applied[obj_id] = obj.pop("_applied")
            self._apply_payments(account, obj["invoiceid"])
            self._record_overpayment(account, obj)
            self._announce(account, "payment.create", obj_id)
        return obj

    def _update(
        self, account: _Account, resource: str, existing: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        obj_name = OBJECT_NAME[resource]
        if "updated" in data and str(data["updated"]) != existing.get("updated"):
            raise _Fault(409, 409, CONFLICT_MESSAGE, field="updated", obj=obj_name, value=data["updated"])
        if "vis_state" in data:
            vis_state = _int_id(data["vis_state"])
            if vis_state not in (0, 1, 2):
                raise _invalid("vis_state", obj_name, data["vis_state"])
            self._set_vis_state(account, resource, existing, vis_state)
            if len(set(data) - {"vis_state", "updated"}) == 0:
                return existing
        if existing.get("vis_state") == 1:
            raise _Fault(
                422,
                1011,
                "The resource referred to in the request is deleted.",
                obj=obj_name,
                value=existing["id"],
            )
        keep = {key: existing[key] for key in ("id", ID_FIELD[resource], "accounting_systemid", "vis_state")}
        keep["updated"] = self._stamp()
        if resource == "clients":
            obj = self._build_client(account, {**existing, **data}, keep)
        elif resource == "invoices":
            keep["created_at"] = existing["created_at"]
            obj = self._build_invoice(account, {**self._raw_doc(existing), **data}, keep, existing)
        elif resource == "payments":
            obj = self._build_payment(account, {**existing, **data}, keep, existing)
        elif resource == "expenses":
            obj = self._build_expense(account, {**existing, **data}, keep)
        else:
            keep["created_at"] = existing["created_at"]
            obj = self._build_credit_note(account, {**self._raw_doc(existing), **data}, keep, existing)
        if resource == "payments":
            account.applied[existing["id"]] = obj.pop("_applied")
        existing.clear()
        existing.update(obj)
        if resource == "payments":
            self._apply_payments(account, existing["invoiceid"])
            self._announce(account, "payment.update", existing["id"])
        elif resource == "invoices":
            self._apply_payments(account, existing["id"], touch=False)
        return existing

    def _set_vis_state(self, account: _Account, resource: str, obj: dict[str, Any], vis_state: int) -> None:
        if obj.get("vis_state") == vis_state:
            return
        obj["vis_state"] = vis_state
        obj["updated"] = self._stamp()
        if resource == "payments":
            # A deleted payment no longer counts: its money goes back onto the invoice.
            self._apply_payments(account, obj["invoiceid"])
            self._announce(account, "payment.delete" if vis_state == 1 else "payment.update", obj["id"])

    @staticmethod
    def _raw_doc(existing: dict[str, Any]) -> dict[str, Any]:
        """An existing invoice/credit note in request form, so a partial update re-validates cleanly."""
        raw = dict(existing)
        raw["lines"] = [
            {
                key: value
                for key, value in line.items()
                if key not in ("amount", "lineid", "invoiceid", "creditid")
            }
            for line in existing.get("lines") or []
        ]
        return raw

    def _client_of(self, account: _Account, value: Any, name: str, obj: str) -> dict[str, Any]:
        if value in (None, ""):
            raise _required(name, obj)
        client_id = _int_id(value)
        client = account.table("clients").get(client_id) if client_id is not None else None
        if client is None or client.get("vis_state") == 1:
            raise _Fault(422, 1012, "Client not found.", field=name, obj="client", value=value)
        return client

    def _build_client(self, account: _Account, data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        strings = {key: str(data.get(key) or "") for key in ("fname", "lname", "organization", "email")}
        if not any(strings.values()):
            raise _required("organization", "client")
        name = f"{strings['fname']} {strings['lname']}".strip()
        return {
            **{key: value for key, value in data.items() if key not in base},
            **strings,
            # FreshBooks fills the organization from the name or the email when it is not given.
            "organization": strings["organization"] or name or strings["email"],
            "currency_code": str(data.get("currency_code") or account.currency).upper(),
            "signup_date": data.get("signup_date") or self._now().strftime(STAMP),
            "role": "client",
            **base,
        }

    @staticmethod
    def _price_lines(
        raw_lines: Any, currency: str, discount_pct: Decimal, obj: str
    ) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """Validate and price lines: (lines, subtotal, tax), tax per line on the discounted amount."""
        if raw_lines is None:
            raw_lines = []
        if not isinstance(raw_lines, list):
            raise _invalid("lines", obj, raw_lines)
        lines: list[dict[str, Any]] = []
        subtotal = Decimal(0)
        tax_total = Decimal(0)
        for number, raw in enumerate(raw_lines, start=1):
            if not isinstance(raw, dict):
                raise _invalid("lines", obj, raw)
            if any(key.startswith("taxName") and key not in ("taxName1", "taxName2") for key in raw):
                raise _Fault(
                    422, 1019, "A tax being added to an item seems to already exist.", field="lines", obj=obj
                )
            qty = _dec(raw.get("qty", 1), "qty", obj)
            unit_cost = _money_in(raw.get("unit_cost", {"amount": "0"}), "unit_cost", obj)
            amount = money(qty * unit_cost)
            rates: list[Decimal] = []
            names: list[str] = []
            for n in (1, 2):
                rate = _percent(raw.get(f"taxAmount{n}"), f"taxAmount{n}", obj)
                tax_name = str(raw.get(f"taxName{n}") or "").strip()
                if tax_name and tax_name in names:
                    raise _Fault(
                        422,
                        1019,
                        "A tax being added to an item seems to already exist.",
                        field=f"taxName{n}",
                        obj=obj,
                        value=tax_name,
                    )
                names.append(tax_name)
                rates.append(rate)
            taxable = amount * (1 - discount_pct / 100)
            tax1 = money(taxable * rates[0] / 100)
            compounded = raw.get("compounded_tax") is True
            tax2 = money((taxable + tax1 if compounded else taxable) * rates[1] / 100)
            subtotal += amount
            tax_total += tax1 + tax2
            line = {
                key: value
                for key, value in raw.items()
                if key
                not in ("qty", "unit_cost", "amount", "taxAmount1", "taxAmount2", "taxName1", "taxName2")
            }
            line.update(
                {
                    "lineid": number,
                    "type": raw.get("type", 0),
                    "name": str(raw.get("name") or ""),
                    "description": str(raw.get("description") or ""),
                    "qty": qty,
                    "unit_cost": {"amount": unit_cost, "code": currency},
                    "amount": {"amount": amount, "code": currency},
                    "taxName1": names[0] or None,
                    "taxAmount1": format(rates[0], "f"),
                    "taxName2": names[1] or None,
                    "taxAmount2": format(rates[1], "f"),
                    "compounded_tax": compounded,
                }
            )
            lines.append(line)
        return lines, subtotal, tax_total

    def _build_invoice(
        self, account: _Account, data: dict[str, Any], base: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        client = self._client_of(account, data.get("customerid"), "customerid", "invoice")
        if not data.get("create_date"):
            raise _required("create_date", "invoice")
        create_date = _date(data["create_date"], "create_date", "invoice")
        offset = _int_id(data.get("due_offset_days", 0))
        if offset is None:
            raise _invalid("due_offset_days", "invoice", data.get("due_offset_days"))
        currency = str(data.get("currency_code") or client.get("currency_code") or account.currency).upper()
        discount_pct = _percent(data.get("discount_value"), "discount_value", "invoice")
        lines, subtotal, tax = self._price_lines(data.get("lines"), currency, discount_pct, "invoice")
        for line in lines:
            line["invoiceid"] = base["id"]
            line["updated"] = base["updated"]
        discount = money(subtotal * discount_pct / 100)
        number = data.get("invoice_number")
        if not number:
            # FreshBooks numbers invoices itself when none is given; it does not enforce uniqueness of
            # numbers a client supplies, so duplicates are stored as they come.
            number = f"{account.next_invoice_number:07d}"
            account.next_invoice_number += 1
        sent = bool(data.get("action_mark_as_sent")) or bool(existing and existing["status"] != STATUS_DRAFT)
        passthrough = {
            key: value
            for key, value in data.items()
            if key not in base and not key.startswith("action_") and key != "lines"
        }
        return {
            **passthrough,
            **base,
            "invoiceid": base["id"],
            "customerid": client["id"],
            "organization": client["organization"],
            "current_organization": client["organization"],
            "fname": client["fname"],
            "lname": client["lname"],
            "invoice_number": str(number),
            "create_date": create_date,
            "due_offset_days": offset,
            "due_date": (date.fromisoformat(create_date) + timedelta(days=offset)).isoformat(),
            "currency_code": currency,
            "notes": data.get("notes"),
            "po_number": data.get("po_number"),
            "discount_value": format(discount_pct, "f"),
            # FreshBooks echoes the discount as a negative amount (freshbooks-java-sdk get_invoice_response).
            "discount_total": {"amount": -discount, "code": currency},
            "lines": lines,
            "amount": {"amount": subtotal - discount + tax, "code": currency},
            "paid": {"amount": Decimal("0.00"), "code": currency},
            "outstanding": {"amount": subtotal - discount + tax, "code": currency},
            "status": STATUS_SENT if sent else STATUS_DRAFT,
            "v3_status": "sent" if sent else "draft",
            "display_status": "sent" if sent else "draft",
            "payment_status": "unpaid",
            "date_paid": None,
        }

    def _apply_payments(self, account: _Account, invoice_id: int, *, touch: bool = True) -> None:
        """Recompute paid/outstanding/statuses of an invoice from its live payments."""
        invoice = account.table("invoices").get(invoice_id)
        if invoice is None:
            return
        payments = [
            p
            for p in account.table("payments").values()
            if p["invoiceid"] == invoice_id and p.get("vis_state") != 1
        ]
        paid = sum((account.applied[p["id"]] for p in payments), Decimal("0.00"))
        total = invoice["amount"]["amount"]
        currency = invoice["currency_code"]
        sent = invoice["status"] != STATUS_DRAFT
        if paid > 0 and paid >= total:
            payment_status, v3_status, status = "paid", "paid", STATUS_PAID
        elif paid > 0:
            payment_status, v3_status, status = "partial", "partial", STATUS_SENT
        else:
            payment_status = "unpaid"
            v3_status = "sent" if sent else "draft"
            status = STATUS_SENT if sent else STATUS_DRAFT
        before = (invoice["paid"]["amount"], invoice["payment_status"])
        invoice["paid"] = {"amount": paid, "code": currency}
        invoice["outstanding"] = {"amount": total - paid, "code": currency}
        invoice["payment_status"] = payment_status
        invoice["v3_status"] = v3_status
        invoice["display_status"] = "sent" if v3_status in ("partial", "paid") else v3_status
        invoice["status"] = status
        invoice["date_paid"] = max((p["date"] for p in payments), default=None) if paid > 0 else None
        if touch and before != (paid, payment_status):
            invoice["updated"] = self._stamp()

    def _build_payment(
        self, account: _Account, data: dict[str, Any], base: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        if data.get("invoiceid") in (None, ""):
            raise _required("invoiceid", "payment")
        invoice_id = _int_id(data["invoiceid"])
        invoice = account.table("invoices").get(invoice_id) if invoice_id is not None else None
        if invoice is None:
            raise _Fault(
                422, 1012, "Invoice not found.", field="invoiceid", obj="invoice", value=data["invoiceid"]
            )
        if invoice.get("vis_state") == 1:
            raise _Fault(
                422,
                1011,
                "The resource referred to in the request is deleted.",
                field="invoiceid",
                obj="invoice",
                value=invoice["id"],
            )
        if existing is not None and existing["invoiceid"] != invoice["id"]:
            raise _invalid(
                "invoiceid", "payment", data["invoiceid"], "A payment cannot be moved to another invoice."
            )
        if data.get("amount") is None:
            raise _required("amount", "payment")
        amount = _money_in(data["amount"], "amount", "payment")
        if amount <= 0 or amount != money(amount):
            raise _invalid("amount", "payment", amount, "Payment amount must be a positive amount in cents.")
        outstanding = invoice["outstanding"]["amount"]
        if existing is not None and existing.get("vis_state") != 1:
            outstanding += account.applied[existing["id"]]
        applied = amount
        if amount > outstanding:
            if not self.allow_overpayment or existing is not None:
                raise _invalid(
                    "amount",
                    "payment",
                    amount,
                    "Payment amount exceeds the outstanding amount of the invoice.",
                )
            applied = outstanding
        pay_date = _date(data.get("date") or self._today(), "date", "payment")
        currency = invoice["currency_code"]
        credit_id = self._credit_source(account, data, invoice, amount, existing)
        return {
            **{key: value for key, value in data.items() if key not in base},
            **base,
            "invoiceid": invoice["id"],
            "clientid": invoice["customerid"],
            "amount": {"amount": amount, "code": currency},
            "_applied": applied,  # popped by the caller into account.applied
            "date": pay_date,
            "type": str(data.get("type") or "Other"),
            "note": str(data.get("note") or ""),
            # A payment drawn from a credit note names it (FreshBooks' creditid / from_credit).
            "creditid": credit_id,
            "from_credit": credit_id is not None,
            "overpaymentid": existing.get("overpaymentid") if existing else None,
        }

    def _credit_source(
        self,
        account: _Account,
        data: dict[str, Any],
        invoice: dict[str, Any],
        amount: Decimal,
        existing: dict[str, Any] | None,
    ) -> int | None:
        """The credit note a payment draws on, checked: same client, live, enough credit left."""
        if not data.get("from_credit") and data.get("creditid") in (None, ""):
            return None
        credit_id = _int_id(data.get("creditid"))
        note = account.table("credit_notes").get(credit_id) if credit_id is not None else None
        if note is None or note.get("vis_state") == 1:
            raise _Fault(
                422,
                1012,
                "Credit note not found.",
                field="creditid",
                obj="credit_note",
                value=data.get("creditid"),
            )
        if note["clientid"] != invoice["customerid"]:
            raise _invalid("creditid", "payment", credit_id, "The credit belongs to another client.")
        used = sum(
            (
                p["amount"]["amount"]
                for p in account.table("payments").values()
                if p.get("creditid") == credit_id and p.get("vis_state") != 1 and p is not existing
            ),
            Decimal(0),
        )
        if amount > note["amount"]["amount"] - used:
            raise _invalid(
                "amount", "payment", amount, "The payment exceeds the credit left on the credit note."
            )
        return credit_id

    def _record_overpayment(self, account: _Account, payment: dict[str, Any]) -> None:
        surplus = payment["amount"]["amount"] - account.applied[payment["id"]]
        if surplus <= 0:
            return
        invoice = account.table("invoices")[payment["invoiceid"]]
        note_id = account.new_id()
        stamp = self._stamp()
        base = {
            "id": note_id,
            "creditid": note_id,
            "accounting_systemid": account.account_id,
            "vis_state": 0,
            "updated": stamp,
            "created_at": stamp,
        }
        data = {
            "clientid": invoice["customerid"],
            "create_date": payment["date"],
            "currency_code": invoice["currency_code"],
            "credit_type": "overpayment",
            "description": f"Overpayment: invoice {invoice['invoice_number']}",
            "lines": [{"name": "Overpayment", "qty": "1", "unit_cost": {"amount": format(surplus, "f")}}],
        }
        account.table("credit_notes")[note_id] = self._build_credit_note(account, data, base, None)
        payment["overpaymentid"] = note_id

    def _build_credit_note(
        self, account: _Account, data: dict[str, Any], base: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        client = self._client_of(account, data.get("clientid"), "clientid", "credit_note")
        create_date = _date(data.get("create_date") or self._today(), "create_date", "credit_note")
        currency = str(data.get("currency_code") or client.get("currency_code") or account.currency).upper()
        lines, subtotal, tax = self._price_lines(data.get("lines"), currency, Decimal(0), "credit_note")
        for line in lines:
            line["creditid"] = base["id"]
        number = data.get("credit_number")
        if not number:
            number = f"{account.next_credit_number:07d}"
            account.next_credit_number += 1
        sent = bool(data.get("action_mark_as_sent")) or bool(existing and existing["status"] == "sent")
        passthrough = {
            key: value
            for key, value in data.items()
            if key not in base and not key.startswith("action_") and key != "lines"
        }
        total = subtotal + tax
        return {
            **passthrough,
            **base,
            "creditid": base["id"],
            "clientid": client["id"],
            "organization": client["organization"],
            "current_organization": client["organization"],
            "credit_number": str(number),
            "credit_type": str(data.get("credit_type") or "goodwill"),
            "create_date": create_date,
            "currency_code": currency,
            "notes": data.get("notes"),
            "lines": lines,
            "amount": {"amount": total, "code": currency},
            # Mirrors FreshBooks' own list sample, where a fresh credit note reports itself fully "paid".
            "paid": {"amount": total, "code": currency},
            "payment_status": "paid",
            "status": "sent" if sent else "created",
            "display_status": "sent" if sent else "created",
        }

    def _build_expense(self, account: _Account, data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        """An expense (https://www.freshbooks.com/api/expenses; freshbooks-nodejs-sdk
        ``models/Expense.ts``: categoryid, staffid, date and amount required). No taxes, client or
        project here: what invoice-sync books is a plain business expense (status 0, internal)."""
        category_id = _int_id(data.get("categoryid"))
        if data.get("categoryid") in (None, ""):
            raise _required("categoryid", "expense")
        category = account.table("categories").get(category_id) if category_id is not None else None
        if category is None or category.get("vis_state") == 1:
            raise _Fault(
                422, 1012, "Category not found.", field="categoryid", obj="expense", value=data["categoryid"]
            )  # sandbox wording
        if data.get("staffid") in (None, ""):
            raise _required("staffid", "expense")
        if _int_id(data["staffid"]) != OWNER_STAFF_ID:
            raise _Fault(
                422, 1012, "Staff not found.", field="staffid", obj="expense", value=data["staffid"]
            )  # sandbox wording
        if data.get("date") in (None, ""):
            raise _required("date", "expense")
        expense_date = _date(data["date"], "date", "expense")
        amount = money(_money_in(data.get("amount"), "amount", "expense"))
        if amount <= 0:
            # Sandbox assumption: an expense is money spent, so it is refused at zero or below.
            raise _invalid("amount", "expense", amount, "Amount must be greater than zero.")
        raw = data.get("amount")
        currency = str((raw.get("code") if isinstance(raw, dict) else None) or account.currency).upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise _invalid("amount", "expense", currency, "Invalid currency code.")  # sandbox wording
        for name in ("vendor", "notes"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise _invalid(name, "expense", data[name])
        return {
            **base,
            "expenseid": base["id"],
            "categoryid": category["id"],
            "staffid": OWNER_STAFF_ID,
            "date": expense_date,
            "amount": {"amount": amount, "code": currency},
            "vendor": data.get("vendor"),
            "notes": data.get("notes") or "",
            "clientid": 0,  # "Expenses that are not associated with a client are represented by 0"
            "projectid": 0,
            "status": 0,  # internal
            "invoiceid": None,
            "markup_percent": "0",
            "taxName1": None,
            "taxPercent1": None,
            "taxAmount1": None,
            "taxName2": None,
            "taxPercent2": None,
            "taxAmount2": None,
            "compounded_tax": False,
            "has_receipt": False,
            "isduplicate": False,
            "include_receipt": False,
            "from_bulk_import": False,
            "account_name": "",
            "accountid": None,
            "bank_name": "",
            "transactionid": None,
            "profileid": None,
            "ext_invoiceid": 0,
            "ext_systemid": 0,
        }


# --------------------------------------------------------------------------------------------------
# Running it on its own


def main(argv: list[str] | None = None) -> int:
    parser = foreground_parser(
        "Run the local FreshBooks sandbox in the foreground.",
        port=8792,
        seed_flag="--seed-account",
        noun="account",
    )
    parser.add_argument("--requests-per-minute", type=int, default=100)
    parser.add_argument("--max-concurrent", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each API call takes")
    parser.add_argument("--allow-overpayment", action="store_true", help="turn surpluses into credit notes")
    args = parser.parse_args(argv)

    sandbox = FreshBooksSandbox(
        requests_per_minute=args.requests_per_minute,
        max_concurrent=args.max_concurrent,
        latency_seconds=args.latency,
        allow_overpayment=args.allow_overpayment,
    )
    seed_demo(
        "account",
        args.seed_account,
        lambda account_id, number, demo: sandbox.seed_account(
            account_id, business_id=900000 + number, **demo
        ),
    )
    return run_foreground(sandbox, args.host, args.port, lambda url: f"FreshBooks sandbox listening on {url}")


if __name__ == "__main__":
    raise SystemExit(main())
