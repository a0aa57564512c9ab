"""A local stand-in for the part of Stripe's API that ``invoice-sync try`` and ``backfill`` read.

It speaks Stripe's wire format over real HTTP, so the CLI's Stripe client is exercised as it would
be against ``https://api.stripe.com``:

* Authentication is the account's secret key as a Bearer token (Stripe also takes it as the HTTP
  Basic user name, which is accepted too). A missing or wrong key answers 401 with Stripe's error
  object ``{"error": {"type": "invalid_request_error", "message": ...}}``, the key masked as
  Stripe masks it (``sk_test_****abcd``).
* ``GET /v1/invoices/{id}``: the invoice, or 404 ``resource_missing`` with ``param: "id"``.
* ``GET /v1/credit_notes`` and ``GET /v1/refunds`` (and each object by id) list the account's credit
  notes and refunds the same way (cursors, ``limit``, ``created[...]``; ``invoice`` for credit notes,
  ``charge`` / ``payment_intent`` for refunds): what reconciliation reads.
* ``GET /v1/invoices``: a list object (``object: "list"``, ``url``, ``has_more``, ``data``), newest
  first, ``limit`` 1 to 100 (default 10), ``starting_after`` / ``ending_before`` cursors,
  ``created[gte|gt|lte|lt]``, ``customer`` and ``status`` filters. A bad parameter answers 400
  ``parameter_invalid_integer`` / ``parameter_unknown`` naming it; an unknown cursor 404.
* Rate limits: reads per second per account, 25 for a test-mode key and 100 for a live one
  (Stripe's documented basic limits). Past it, 429 with ``code: "rate_limit"``; like Stripe, no
  ``Retry-After`` header is sent, so clients back off on their own. 429s and 5xx can also be
  injected (``inject_status``), as with the ledger sandboxes.

Writes (issue 7, payments back), form-encoded as Stripe takes them, each honouring
``Idempotency-Key``:

* ``POST /v1/invoices/{id}/pay`` with ``paid_out_of_band=true``: an ``open`` or ``uncollectible``
  invoice becomes ``paid`` for what remained (``amount_paid`` raised by it, ``amount_remaining`` 0,
  ``status_transitions.paid_at``). A draft, paid or void invoice answers 400
  ``invoice_unexpected_state`` (the code is this stand-in's assumption; design two-way 9), and a
  pay without ``paid_out_of_band`` 400 too: the stand-in charges no cards.
* ``POST /v1/payment_records/report_payment`` -> a PaymentRecord (``pr_...``), its required
  parameters checked as Stripe names them (400 ``parameter_missing``); ``GET
  /v1/payment_records/{id}``.
* ``POST /v1/invoices/{id}/attach_payment`` with ``payment_record``: an InvoicePayment
  (``inpay_...``, ``payment.type: "payment_record"``) raises ``amount_paid`` and lowers
  ``amount_remaining`` (any excess is ``amount_overpaid``); at zero the invoice is ``paid``.
* ``GET /v1/invoices/{id}`` expands ``payments`` (a list of the invoice's InvoicePayments) and
  ``amount_paid_off_stripe`` (attached payment records plus out-of-band pays) on request only, as
  Stripe does; ``GET /v1/invoice_payments`` lists them (``invoice``, ``status``, ``payment[type]``,
  ``payment[payment_intent]``, ``payment[payment_record]``, cursors) and each is read by id.
* Idempotency, per account: a key's first answer is saved (a success, a refusal, or an injected
  5xx: Stripe saves 500s too) and replayed with ``Idempotent-Replayed: true`` for the same
  parameters; the same key with other parameters or on another path is 400 ``idempotency_error``.
  Parameter errors and 429s are not saved. Keys are pruned after ``idempotency_ttl_seconds``
  (Stripe: at least 24 hours). ``inject_write_status`` fails only writes; ``writes`` lists what
  each write did (path, key, status, replayed) so tests count effects, not requests.

Invoices are seeded per account: the invoice objects of the webhook fixtures in
``tests/events/stripe`` (``fixture_invoices``), generated ones (``generate_invoices``: the current
shape, mapped products, 8.25 % tax rounded half up as Stripe does), or any given objects. Every
seeded object is checked with invoice-sync's own Stripe parser; objects arriving over the control
API (and, on request, from Python: ``sdk_check=True``) with the official ``stripe`` SDK's
``Invoice.construct_from`` as well. The SDK check is opt-in from Python because importing the SDK
costs the local stack and the demo over a second.

Webhooks (design two-way 6): ``subscribe(account, url, whsec)`` (control API ``POST
/_sandbox/accounts/<account>/webhooks`` with ``{"url", "key"}``). A pay or an attach that changes an
invoice sends ``invoice.updated`` (with ``previous_attributes``) and, when it becomes paid,
``invoice.paid``, in Stripe's event envelope with the invoice as stored (``payments`` never
expanded), each attempt signed ``Stripe-Signature: t=<now>,v1=<hex HMAC-SHA256 of "t.body">``. A
replayed request sends nothing. Stripe also sends ``invoice.payment_succeeded`` and more; these two
are the ones the design (two-way 6) asks for.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from invoice_sync.errors import InvalidPayload
from invoice_sync.sources.stripe import parse_invoice
from invoice_sync_ops.sandboxes.base import (
    SandboxServer,
    Traffic,
    dumps,
    expire_window,
    foreground_parser,
    run_foreground,
)

__all__ = [
    "FIXTURES",
    "StripeSandbox",
    "fixture_invoices",
    "generate_invoices",
    "main",
    "validate_invoice",
]

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "events" / "stripe"
API_VERSION = "2026-06-24.dahlia"
SIGNATURE_HEADER = "Stripe-Signature"
# What a pay or attach changes on an invoice: an invoice.updated event's previous_attributes.
PAYMENT_FIELDS = ("amount_paid", "amount_remaining", "amount_overpaid", "status", "status_transitions")
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
TEST_READS_PER_SECOND = 25
LIVE_READS_PER_SECOND = 100
STATUSES = ("draft", "open", "paid", "uncollectible", "void")
PAYMENT_STATUSES = ("open", "paid", "canceled")  # an InvoicePayment's
PAYABLE = ("open", "uncollectible")
IDEMPOTENCY_TTL_SECONDS = 86_400.0  # Stripe prunes keys once they are at least 24 hours old
MAX_IDEMPOTENCY_KEY = 255
# Why a pay or attach is refused, by the invoice's status. Stripe's exact code for these is not
# confirmed (design two-way 9); the wording follows Stripe's dashboard and API messages.
UNPAYABLE = {
    "draft": "This invoice is a draft: only a finalized invoice can be paid.",
    "paid": "Invoice is already paid.",
    "void": "This invoice has been voided and can no longer be paid.",
}
UNEXPECTED_STATE = "invoice_unexpected_state"
EXPANDABLE_INVOICE = frozenset({"payments", "amount_paid_off_stripe"})
REPORT_PARAMS = frozenset(
    {
        "amount_requested",
        "initiated_at",
        "payment_method_details",
        "outcome",
        "guaranteed",
        "failed",
        "canceled",
        "processor_details",
        "customer_details",
        "customer_presence",
        "description",
        "metadata",
        "shipping_details",
        "expand",
    }
)
PAY_PARAMS = frozenset(
    {"paid_out_of_band", "forgive", "mandate", "off_session", "payment_method", "source", "expand"}
)
ATTACH_PARAMS = frozenset({"payment_record", "payment_intent", "expand"})
LIST_PARAMS = frozenset(
    {
        "limit",
        "starting_after",
        "ending_before",
        "status",
        "customer",
        "created",
        "created[gte]",
        "created[gt]",
        "created[lte]",
        "created[lt]",
        "collection_method",
        "subscription",
        "expand[]",
    }
)
# What each list takes besides the cursors, ``limit`` and ``created`` (Stripe's own filters).
LIST_FILTERS: dict[str, frozenset[str]] = {
    "invoices": frozenset({"status", "customer", "collection_method", "subscription"}),
    "credit_notes": frozenset({"customer", "invoice"}),
    "refunds": frozenset({"charge", "payment_intent"}),
    "invoice_payments": frozenset(
        {"invoice", "status", "payment[type]", "payment[payment_intent]", "payment[payment_record]"}
    ),
}
OBJECT_NAMES = {
    "invoices": "invoice",
    "credit_notes": "credit note",
    "refunds": "refund",
    "invoice_payments": "invoice payment",
    "payment_records": "payment record",
}
CREATED_OPS: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda value, bound: value >= bound,
    "gt": lambda value, bound: value > bound,
    "lte": lambda value, bound: value <= bound,
    "lt": lambda value, bound: value < bound,
}
TAX_RATE = Decimal("0.0825")  # txr_SalesTax825, as in the fixtures


def _error(message: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return {"error": error}


def _same(delivery: tuple[bytes, dict[str, str]], _subscription: Any) -> tuple[bytes, dict[str, str]]:
    """One event's body and headers, the same for every endpoint (each signs it with its own secret)."""
    return delivery


def mask(key: str) -> str:
    """A key as Stripe shows it in an error: its prefix and last four characters only."""
    prefix = "_".join(key.split("_")[:2]) + "_" if key.count("_") >= 2 else ""
    return f"{prefix}****{key[-4:]}" if len(key) > 4 else "****"


def validate_invoice(obj: dict[str, Any], *, sdk: bool = False) -> dict[str, Any]:
    """The object if it is an Invoice invoice-sync's parser reads (the fixtures' shape) and, with
    ``sdk``, the official ``stripe`` SDK too; ``ValueError`` naming what is wrong otherwise."""

    if obj.get("object") != "invoice":
        raise ValueError(f"not an invoice object: object={obj.get('object')!r}")
    for name, kind in (("id", str), ("created", int), ("livemode", bool), ("lines", dict)):
        if not isinstance(obj.get(name), kind):
            raise ValueError(f"invoice {obj.get('id')!r}: {name} must be a {kind.__name__}")
    if obj.get("status") not in STATUSES:
        raise ValueError(f"invoice {obj['id']}: status {obj.get('status')!r} is not one of {STATUSES}")
    try:
        parse_invoice(obj)
    except InvalidPayload as exc:
        raise ValueError(f"invoice {obj['id']}: {exc}") from None
    if not sdk:
        return obj
    # Imported only here: the SDK (a dev dependency) takes over a second to import, which the
    # local stack and the demo need not pay.
    import stripe  # noqa: PLC0415

    typed = stripe.Invoice.construct_from(copy.deepcopy(obj), "sk_test_validation")
    if typed.id != obj["id"] or len(typed.lines.data) != len(obj["lines"].get("data", [])):
        raise ValueError(f"invoice {obj['id']}: the stripe SDK reads it differently")
    return obj


def fixture_invoices(directory: Path = FIXTURES) -> list[dict[str, Any]]:
    """The invoice objects of the webhook fixtures, each invoice once (its latest snapshot)."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.json")):
        event = json.loads(path.read_text())
        obj = (event.get("data") or {}).get("object") or {}
        if event.get("object") != "event" or obj.get("object") != "invoice":
            continue
        created = int(event.get("created", 0))
        if obj["id"] not in latest or latest[obj["id"]][0] <= created:
            latest[obj["id"]] = (created, obj)
    return [obj for _, obj in latest.values()]


@dataclass(frozen=True)
class _Customer:
    id: str
    name: str
    email: str


GENERATED_CUSTOMERS = (
    _Customer("cus_HistNorthwind", "Northwind Traders", "ap@northwind.example"),
    _Customer("cus_HistContoso", "Contoso Ltd", "billing@contoso.example"),
    _Customer("cus_RAcme01", "Acme Corp", "ap@acme.example"),
)
# (product, description, unit amount in cents)
GENERATED_PRODUCTS = (
    ("prod_Consulting", "Consulting hours", 15000),
    ("prod_Hosting", "Hosting", 4999),
)


def _tax(amount: int) -> int:
    return int((Decimal(amount) * TAX_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def generate_invoices(
    count: int,
    *,
    start: int,
    step_seconds: int = 86_400,
    prefix: str = "HIST",
    id_prefix: str = "in_1Hist",
    first_number: int = 1,
    statuses: tuple[str, ...] = ("paid", "open"),
) -> list[dict[str, Any]]:
    """``count`` finalized invoices in the current shape, one every ``step_seconds`` from ``start``
    (unix seconds): mapped products, taxed at 8.25 % per line (half up), statuses in turn."""
    invoices: list[dict[str, Any]] = []
    for index in range(count):
        number = first_number + index
        created = start + index * step_seconds
        customer = GENERATED_CUSTOMERS[index % len(GENERATED_CUSTOMERS)]
        status = statuses[index % len(statuses)]
        invoice_id = f"{id_prefix}{number:06d}"
        lines: list[dict[str, Any]] = []
        subtotal = tax = 0
        for line_index, (product, description, unit) in enumerate(GENERATED_PRODUCTS[: 1 + index % 2]):
            quantity = 1 + (index + line_index) % 4
            amount = unit * quantity
            subtotal += amount
            tax += _tax(amount)
            lines.append(
                {
                    "id": f"il_{invoice_id[3:]}_{line_index}",
                    "object": "line_item",
                    "amount": amount,
                    "currency": "usd",
                    "description": description,
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": invoice_id,
                    "livemode": False,
                    "metadata": {},
                    "period": {"start": created, "end": created},
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": f"price_{product[5:]}USD", "product": product},
                        "unit_amount_decimal": str(unit),
                    },
                    "quantity": quantity,
                    "subtotal": amount,
                    "taxes": [
                        {
                            "amount": _tax(amount),
                            "tax_behavior": "exclusive",
                            "tax_rate_details": {"tax_rate": "txr_SalesTax825"},
                            "taxability_reason": "not_available",
                            "taxable_amount": amount,
                            "type": "tax_rate_details",
                        }
                    ],
                }
            )
        total = subtotal + tax
        paid = total if status == "paid" else 0
        finalized = created + 60
        invoices.append(
            {
                "id": invoice_id,
                "object": "invoice",
                "account_country": "US",
                "account_name": "Invoice Sync Test Co",
                "amount_due": total,
                "amount_paid": paid,
                "amount_remaining": total - paid,
                "attempt_count": 0,
                "attempted": status == "paid",
                "auto_advance": False,
                "billing_reason": "manual",
                "collection_method": "send_invoice",
                "created": created,
                "currency": "usd",
                "customer": customer.id,
                "customer_email": customer.email,
                "customer_name": customer.name,
                "description": f"{prefix} invoice {number}",
                "discounts": [],
                "due_date": created + 30 * 86_400,
                "effective_at": finalized,
                "lines": {
                    "object": "list",
                    "data": lines,
                    "has_more": False,
                    "total_count": len(lines),
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
                "livemode": False,
                "metadata": {},
                "number": f"{prefix}-{number:04d}",
                "status": status,
                "status_transitions": {
                    "finalized_at": finalized,
                    "marked_uncollectible_at": None,
                    "paid_at": finalized + 3600 if status == "paid" else None,
                    "voided_at": None,
                },
                "subtotal": subtotal,
                "subtotal_excluding_tax": subtotal,
                "total": total,
                "total_discount_amounts": [],
                "total_excluding_tax": subtotal,
                "total_taxes": [
                    {
                        "amount": tax,
                        "tax_behavior": "exclusive",
                        "tax_rate_details": {"tax_rate": "txr_SalesTax825"},
                        "taxability_reason": "not_available",
                        "taxable_amount": subtotal,
                        "type": "tax_rate_details",
                    }
                ],
            }
        )
    return invoices


class _Refused(Exception):
    """A write Stripe refuses: its status and error body, and whether the refusal is saved under
    the idempotency key (not for parameter errors: Stripe saves nothing that failed validation)."""

    def __init__(self, status: int, body: dict[str, Any], *, saved: bool = True) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.saved = saved


def _missing(name: str) -> _Refused:
    return _Refused(
        400, _error(f"Missing required param: {name}.", code="parameter_missing", param=name), saved=False
    )


def _invalid(name: str, message: str, code: str = "parameter_invalid_string") -> _Refused:
    return _Refused(400, _error(message, code=code, param=name), saved=False)


def form_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding read back: ``a[b][c]=v`` nests, ``a[]=v`` and ``a[0]=v`` are lists,
    ``a[0][b]=v`` a list of mappings. ``ValueError`` for a key that is both a value and a group."""
    params: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        if rest and not rest.endswith("]"):
            raise ValueError(f"malformed parameter name {raw_key!r}")
        parts = [head, *rest[:-1].split("][")] if rest else [head]
        node: Any = params
        for index, part in enumerate(parts[:-1]):
            following = parts[index + 1]
            fresh: Callable[[], Any] = list if following == "" or following.isdigit() else dict
            if isinstance(node, list) and part.isdigit():
                while len(node) <= int(part):
                    node.append(fresh())
                node = node[int(part)]
            elif isinstance(node, dict):
                node = node.setdefault(part, fresh())
            else:
                raise ValueError(f"malformed parameter name {raw_key!r}")
        last = parts[-1]
        if isinstance(node, list) and last == "":
            node.append(value)
        elif isinstance(node, list) and last.isdigit():
            while len(node) <= int(last):
                node.append(None)
            node[int(last)] = value
        elif isinstance(node, dict) and not isinstance(node.get(last), dict | list):
            node[last] = value
        else:
            raise ValueError(f"malformed parameter name {raw_key!r}")
    return params


def _positive_int(raw: Any, name: str) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise _invalid(name, f"Invalid integer: {raw}", "parameter_invalid_integer") from None
    if value <= 0:
        raise _invalid(name, f"{name} must be a positive integer.", "parameter_invalid_integer")
    return value


def _expands(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The ``expand[]`` (or ``expand[0]``) values of a query."""
    return [
        value
        for name, value in pairs
        if name == "expand[]" or (name.startswith("expand[") and name[7:-1].isdigit())
    ]


def _expands_of(params: dict[str, Any]) -> list[str]:
    expand = params.get("expand") or []
    return [str(name) for name in expand] if isinstance(expand, list) else [str(expand)]


def _record_view(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it: without the stand-in's own bookkeeping (``_...`` keys)."""
    return {key: copy.deepcopy(value) for key, value in obj.items() if not key.startswith("_")}


@dataclass(frozen=True)
class _Saved:
    """A write's first answer, kept under its idempotency key."""

    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]  # method, path, the sorted form
    status: int
    body: str
    saved_at: float


@dataclass(kw_only=True)
class _Account(Traffic):
    account_id: str
    api_key: str | None  # None once rolled (revoked)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    attached: dict[str, dict[str, Any]] = field(default_factory=dict)  # InvoicePayments made here
    off_stripe: dict[str, int] = field(default_factory=dict)  # invoice id -> paid outside Stripe
    idempotency: dict[str, _Saved] = field(default_factory=dict)
    write_faults: deque[int] = field(default_factory=deque)  # statuses the next writes answer
    write_log: list[dict[str, Any]] = field(default_factory=list)
    second: deque[float] = field(default_factory=deque)  # when the calls of the last second came in
    # Events the write being served caused (type, the invoice after, its previous attributes), sent
    # once it is answered: they describe what was committed, whatever the answer says.
    outbox: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return bool(self.api_key and self.api_key.startswith(("sk_live_", "rk_live_")))

    @property
    def invoice_payments(self) -> dict[str, dict[str, Any]]:
        """Every InvoicePayment: those the seeded invoices carry (``payments.data``) and those
        attached here."""
        seeded = {
            payment["id"]: payment
            for invoice in self.invoices.values()
            for payment in ((invoice.get("payments") or {}).get("data") or ())
            if isinstance(payment, dict) and isinstance(payment.get("id"), str)
        }
        return seeded | self.attached


class StripeSandbox(SandboxServer[_Account]):
    """An in-memory Stripe account server (invoices only). Thread-safe: one lock guards state."""

    thread_name = "stripe-sandbox"
    logged_prefixes = ("/v1/",)
    json_type = "application/json"
    control_root = "accounts"
    seed_key = "account_id"
    tenant_noun = "account"
    authorize_path = "/oauth/authorize"  # Stripe Connect's, unused by invoice-sync
    injectable = (429,)

    def __init__(
        self,
        *,
        reads_per_second: int | None = None,
        clock: Callable[[], float] = time.time,
        latency_seconds: float = 0.0,
        idempotency_ttl_seconds: float = IDEMPOTENCY_TTL_SECONDS,
    ) -> None:
        # None: Stripe's own limit for the key's mode (25 test, 100 live); writes count against it too.
        self.reads_per_second = reads_per_second
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        super().__init__(
            clock=clock,
            latency_seconds=latency_seconds,
            rules=[
                Rule(
                    "/v1/<any(invoices, credit_notes, refunds, invoice_payments):collection>",
                    endpoint="list",
                    methods=["GET"],
                ),
                Rule(
                    "/v1/<any(invoices, credit_notes, refunds, invoice_payments, payment_records):collection>"
                    "/<invoice_id>",
                    endpoint="retrieve",
                    methods=["GET"],
                ),
                Rule("/v1/invoices/<invoice_id>/pay", endpoint="pay", methods=["POST"]),
                Rule("/v1/invoices/<invoice_id>/attach_payment", endpoint="attach_payment", methods=["POST"]),
                Rule("/v1/payment_records/report_payment", endpoint="report_payment", methods=["POST"]),
            ],
        )

    # ---------------------------------------------------------------------------------------------
    # Test controls

    def seed_account(
        self,
        account_id: str,
        *,
        api_key: str,
        invoices: Iterable[dict[str, Any]] = (),
        sdk_check: bool = False,
    ) -> None:
        """Create (or reset) an account reached with ``api_key``, holding ``invoices``."""
        account = _Account(account_id=account_id, api_key=api_key)
        with self._lock:
            self._tenants[account_id] = account
        self.add_invoices(account_id, invoices, sdk_check=sdk_check)

    def add_invoices(
        self, account_id: str, invoices: Iterable[dict[str, Any]], *, sdk_check: bool = False
    ) -> int:
        """Adds (or replaces, by id) invoices after checking each one (``sdk_check``: with the
        ``stripe`` SDK as well); returns how many."""
        checked = [copy.deepcopy(validate_invoice(obj, sdk=sdk_check)) for obj in invoices]
        with self._lock:
            stored = self._tenant(account_id).invoices
            for obj in checked:
                stored[obj["id"]] = obj
        return len(checked)

    def add_objects(self, account_id: str, collection: str, objects: Iterable[dict[str, Any]]) -> int:
        """Adds (or replaces, by id) credit notes or refunds (Stripe objects as the API lists
        them: ``id``, ``created``, ``amount``, ``currency``, ...); returns how many."""
        if collection not in ("credit_notes", "refunds"):
            raise KeyError(collection)
        copied = [copy.deepcopy(obj) for obj in objects]
        for obj in copied:
            if not isinstance(obj.get("id"), str) or not isinstance(obj.get("created"), int):
                raise ValueError(f"a {OBJECT_NAMES[collection]} needs an id and a created time")
        with self._lock:
            stored: dict[str, dict[str, Any]] = getattr(self._tenant(account_id), collection)
            for obj in copied:
                stored[obj["id"]] = obj
        return len(copied)

    def documents(self, account_id: str, kind: str) -> list[dict[str, Any]]:
        if kind not in LIST_FILTERS and kind != "payment_records":
            raise KeyError(kind)
        with self._lock:
            return [_record_view(obj) for obj in getattr(self._tenant(account_id), kind).values()]

    def inject_status(self, account_id: str, status: int, count: int = 1) -> None:
        """The next ``count`` API calls answer ``status`` (429 or a 5xx)."""
        self._inject_status(account_id, status, count)

    def inject_write_status(self, account_id: str, status: int, count: int = 1) -> None:
        """The next ``count`` writes (not reads) answer ``status`` (429 or a 5xx). A 5xx is saved
        under the write's idempotency key, as Stripe saves its 500s, so a retry with the same key
        gets it again; a 429 is not saved."""
        if status != 429 and not 500 <= status <= 599:
            raise ValueError("inject_write_status takes 429 or a 5xx status")
        with self._lock:
            self._tenant(account_id).write_faults.extend([status] * count)

    def writes(self, account_id: str) -> list[dict[str, Any]]:
        """Each write the account received: ``path``, ``key``, ``status``, ``replayed`` (answered
        from the idempotency store, so no effect) and ``effect`` (it changed something)."""
        with self._lock:
            return copy.deepcopy(self._tenant(account_id).write_log)

    def revoke_refresh_token(self, account_id: str) -> None:
        """Rolls the account's secret key: calls with the old one answer 401 from now on."""
        with self._lock:
            self._tenant(account_id).api_key = None

    def expire_access_tokens(self, account_id: str) -> None:
        """Stripe secret keys do not expire; nothing to do (the control exists for every sandbox)."""
        self._tenant(account_id)

    def _seed_tenant(self, tenant_id: str, options: dict[str, Any]) -> None:
        invoices = list(options.get("invoices") or ())
        if options.get("fixtures"):
            invoices = fixture_invoices() + invoices
        generate = options.get("generate")
        if isinstance(generate, dict):
            invoices += generate_invoices(int(generate.pop("count")), **generate)
        self.seed_account(tenant_id, api_key=str(options["api_key"]), invoices=invoices, sdk_check=True)

    def _control_rules(self) -> list[Rule]:
        return [
            *super()._control_rules(),
            Rule(f"/_sandbox/{self.control_root}/<tenant>/invoices", endpoint="ctl_add", methods=["POST"]),
            Rule(
                f"/_sandbox/{self.control_root}/<tenant>/<any(credit_notes, refunds):collection>",
                endpoint="ctl_add_objects",
                methods=["POST"],
            ),
        ]

    def _control(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        if endpoint == "ctl_faults" and b'"writes"' in request.get_data():
            # POST /_sandbox/accounts/<tenant>/faults {"writes": true, "status": 500, "count": 1}
            try:
                body = json.loads(request.get_data())
                self.inject_write_status(args["tenant"], int(body["status"]), int(body.get("count", 1)))
            except KeyError as exc:
                return self._json({"error": f"unknown or missing {exc.args[0]}"}, 404)
            except (TypeError, ValueError) as exc:
                return self._json({"error": str(exc)}, 400)
            return self._json({"ok": True})
        if endpoint not in ("ctl_add", "ctl_add_objects"):
            return super()._control(request, endpoint, args)
        collection = args.get("collection", "invoices")
        try:
            body = json.loads(request.get_data() or b"[]")
            if isinstance(body, dict):
                body = body.get(collection, [])
            if not isinstance(body, list):
                raise ValueError(f"body must be a list of {OBJECT_NAMES[collection]} objects")
            if collection == "invoices":
                added = self.add_invoices(args["tenant"], body, sdk_check=True)
            else:
                added = self.add_objects(args["tenant"], collection, body)
        except KeyError as exc:
            return self._json({"error": f"unknown or missing {exc.args[0]}"}, 404)
        except (TypeError, ValueError) as exc:
            return self._json({"error": str(exc)}, 400)
        return self._json({"added": added}, 201)

    # ---------------------------------------------------------------------------------------------
    # The API

    def _presented_key(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return ""
        return ""

    def _unauthorized(self, key: str) -> Response:
        if not key:
            message = (
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
        else:
            message = f"Invalid API Key provided: {mask(key)}"
        return self._json(_error(message), 401, {"WWW-Authenticate": 'Bearer realm="Stripe"'})

    def _route(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        key = self._presented_key(request)
        write = request.method == "POST"
        with self._lock:
            account = next(
                (
                    a
                    for a in self._tenants.values()
                    if key and a.api_key is not None and secrets.compare_digest(a.api_key, key)
                ),
                None,
            )
            if account is None:
                return self._unauthorized(key)
            if write:
                answered, respond_write = self._write(account, request, endpoint, args)
            else:
                if account.injected:
                    return self._injected(account.injected.popleft())
                now = self._clock()
                if not self._within_limit(account, now):
                    return self._rate_limited()
                self._admit(account, now)
        if write:
            # Served outside the lock, as reads are: the latency must not hold every other call up.
            if respond_write is None:
                assert answered is not None
                return answered
            return self._serve(account, is_write=True, respond=respond_write)

        collection = str(args.get("collection", "invoices"))

        def respond() -> Response:
            if endpoint == "retrieve":
                found = getattr(account, collection).get(str(args["invoice_id"]))
                if found is None:
                    return self._json(
                        _error(
                            f"No such {OBJECT_NAMES[collection].replace(' ', '')}: '{args['invoice_id']}'",
                            code="resource_missing",
                            param="id",
                        ),
                        404,
                    )
                if collection != "invoices":
                    return self._json(_record_view(found))
                try:
                    return self._json(
                        self._invoice_view(account, found, _expands(request.args.items(multi=True)))
                    )
                except _Refused as refused:
                    return self._json(refused.body, refused.status)
            return self._list(account, request, collection)

        return self._serve(account, is_write=False, respond=respond)

    def _within_limit(self, account: _Account, now: float) -> bool:
        """Whether a call fits the per-second budget (reads and writes share it, as at Stripe);
        counts it if so. Under the lock."""
        expire_window(account.second, now, span=1.0)
        limit = self.reads_per_second or (LIVE_READS_PER_SECOND if account.live else TEST_READS_PER_SECOND)
        if len(account.second) >= limit:
            return False
        account.second.append(now)
        return True

    # ---------------------------------------------------------------------------------------------
    # Writes

    def _write(
        self, account: _Account, request: Request, endpoint: str, args: dict[str, Any]
    ) -> tuple[Response, None] | tuple[None, Callable[[], Response]]:
        """A POST, under the lock: 429s first (never saved), then the idempotency store (replay, or
        400 for a key used with other parameters), then injected 5xx (saved); each of those is the
        answer. Otherwise the call is admitted and its ``respond`` returned for ``_serve``."""
        path = request.path
        idempotency_key = request.headers.get("Idempotency-Key")
        fault = self._write_fault(account)
        if fault == 429:
            return self._log_write(account, path, idempotency_key, self._rate_limited()), None
        now = self._clock()
        if not self._within_limit(account, now):
            return self._log_write(account, path, idempotency_key, self._rate_limited()), None
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            refused = _error(
                f"Invalid Idempotency-Key: it must be 1 to {MAX_IDEMPOTENCY_KEY} characters.",
                code="idempotency_key_invalid",
            )
            return self._log_write(account, path, idempotency_key, self._json(refused, 400)), None
        pairs = sorted((str(k), str(v)) for k, v in request.form.items(multi=True))
        fingerprint = (request.method, path, tuple(pairs))
        if idempotency_key is not None:
            for stale in [
                k for k, v in account.idempotency.items() if v.saved_at <= now - self.idempotency_ttl_seconds
            ]:
                del account.idempotency[stale]
            saved = account.idempotency.get(idempotency_key)
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    mismatch = {
                        "error": {
                            "type": "idempotency_error",
                            "message": (
                                "Keys for idempotent requests can only be used with the same parameters they "
                                "were first used with. Try using a key other than "
                                f"'{idempotency_key}' if you meant to execute a different request."
                            ),
                        }
                    }
                    return self._log_write(account, path, idempotency_key, self._json(mismatch, 400)), None
                replay = Response(
                    saved.body,
                    status=saved.status,
                    content_type=self.json_type,
                    headers={"Idempotent-Replayed": "true", "Idempotency-Key": idempotency_key},
                )
                return self._log_write(account, path, idempotency_key, replay, replayed=True), None
        if fault is not None:
            # A 5xx after execution began: Stripe saves it under the key like any other result.
            failed = self._injected(fault)
            self._save(account, idempotency_key, fingerprint, failed, now)
            return self._log_write(account, path, idempotency_key, failed), None
        self._admit(account, now)

        def respond() -> Response:
            try:
                return answer()
            finally:
                self._announce(account, idempotency_key)

        def answer() -> Response:
            try:
                params = form_params(pairs)
                handler = {
                    "pay": self._pay,
                    "attach_payment": self._attach_payment,
                    "report_payment": self._report_payment,
                }[endpoint]
                body = handler(account, params, args, now)
                response = self._json(body)
                effect = True
            except ValueError as exc:
                response, effect = self._json(_error(str(exc), code="parameter_invalid_string"), 400), False
            except _Refused as refused:
                response, effect = self._json(refused.body, refused.status), False
                if not refused.saved:
                    return self._log_write(account, path, idempotency_key, response)
            self._save(account, idempotency_key, fingerprint, response, now)
            return self._log_write(account, path, idempotency_key, response, effect=effect)

        return None, respond

    def _write_fault(self, account: _Account) -> int | None:
        if account.write_faults:
            return account.write_faults.popleft()
        if account.injected:
            return account.injected.popleft()
        return None

    def _save(
        self,
        account: _Account,
        idempotency_key: str | None,
        fingerprint: tuple[str, str, tuple[tuple[str, str], ...]],
        response: Response,
        now: float,
    ) -> None:
        if idempotency_key is not None:
            account.idempotency[idempotency_key] = _Saved(
                fingerprint, response.status_code, response.get_data(as_text=True), now
            )

    @staticmethod
    def _log_write(
        account: _Account,
        path: str,
        idempotency_key: str | None,
        response: Response,
        *,
        replayed: bool = False,
        effect: bool = False,
    ) -> Response:
        account.write_log.append(
            {
                "path": path,
                "key": idempotency_key,
                "status": response.status_code,
                "replayed": replayed,
                "effect": effect,
            }
        )
        return response

    def _invoice_of(self, account: _Account, invoice_id: str) -> dict[str, Any]:
        found = account.invoices.get(invoice_id)
        if found is None:
            raise _Refused(
                404, _error(f"No such invoice: '{invoice_id}'", code="resource_missing", param="invoice")
            )
        return found

    @staticmethod
    def _payable(invoice: dict[str, Any]) -> None:
        status = str(invoice.get("status"))
        if status not in PAYABLE:
            message = UNPAYABLE.get(status, f"This invoice is {status} and cannot be paid.")
            raise _Refused(400, _error(message, code=UNEXPECTED_STATE))

    @staticmethod
    def _known(params: dict[str, Any], allowed: frozenset[str]) -> None:
        for name in params:
            if name not in allowed:
                raise _Refused(
                    400,
                    _error(f"Received unknown parameter: {name}", code="parameter_unknown", param=name),
                    saved=False,
                )

    # ---------------------------------------------------------------------------------------------
    # Webhooks

    @staticmethod
    def _payment_fields(invoice: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({name: invoice.get(name) for name in PAYMENT_FIELDS if name in invoice})

    @staticmethod
    def _invoice_changed(account: _Account, invoice: dict[str, Any], before: dict[str, Any]) -> None:
        """Queue ``invoice.updated`` (with what changed before) and, if it has just become paid,
        ``invoice.paid``, in the order Stripe sends them. Under the lock."""
        after = copy.deepcopy(invoice)
        after.pop("payments", None)  # includable only: an event's invoice never carries it
        previous = {name: value for name, value in before.items() if after.get(name) != value}
        account.outbox.append(("invoice.updated", after, previous))
        if before.get("status") != "paid" and after.get("status") == "paid":
            account.outbox.append(("invoice.paid", after, None))

    def _announce(self, account: _Account, idempotency_key: str | None) -> None:
        """Send the events the write caused to the account's endpoints, in Stripe's envelope, each
        attempt signed ``t=<now>,v1=<hex HMAC-SHA256 of "t.body">`` with the endpoint's whsec_."""
        events, account.outbox = account.outbox, []
        request_id = f"req_{secrets.token_hex(7)}"
        for event_type, invoice, previous in events:
            data: dict[str, Any] = {"object": invoice}
            if previous is not None:
                data["previous_attributes"] = previous
            envelope = {
                "id": f"evt_{secrets.token_hex(12)}",
                "object": "event",
                "api_version": API_VERSION,
                "created": int(self._clock()),
                "data": data,
                "livemode": account.live,
                "pending_webhooks": len(self.webhooks.subscriptions(account.account_id)),
                "request": {"id": request_id, "idempotency_key": idempotency_key},
                "type": event_type,
            }
            delivery = (dumps(envelope).encode(), {"Content-Type": "application/json; charset=utf-8"})
            self._emit(account.account_id, event_type, functools.partial(_same, delivery), sign=self._signer)

    def _signer(self, subscription: Any) -> Callable[[bytes], dict[str, str]]:
        secret = subscription.key

        def sign(body: bytes) -> dict[str, str]:
            timestamp = int(self._clock())
            signed = f"{timestamp}.".encode() + body
            digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
            return {SIGNATURE_HEADER: f"t={timestamp},v1={digest}"}

        return sign

    def _mark_paid(self, invoice: dict[str, Any], now: float) -> None:
        invoice["status"] = "paid"
        transitions = invoice.setdefault("status_transitions", {})
        transitions["paid_at"] = int(now)

    def _pay(
        self, account: _Account, params: dict[str, Any], args: dict[str, Any], now: float
    ) -> dict[str, Any]:
        self._known(params, PAY_PARAMS)
        invoice = self._invoice_of(account, str(args["invoice_id"]))
        out_of_band = params.get("paid_out_of_band")
        if out_of_band not in (None, "true", "false"):
            raise _invalid(
                "paid_out_of_band", "Invalid boolean: " + str(out_of_band), "parameter_invalid_boolean"
            )
        self._payable(invoice)
        if out_of_band != "true":
            # A real Stripe would charge the customer's payment method; there is none here.
            raise _Refused(
                400,
                _error(
                    "This stand-in charges no cards: pass paid_out_of_band=true to mark the invoice paid.",
                    code="invoice_no_payment_method_types",
                ),
            )
        before = self._payment_fields(invoice)
        remaining = int(invoice.get("amount_remaining", 0))
        invoice["amount_paid"] = int(invoice.get("amount_paid", 0)) + remaining
        invoice["amount_remaining"] = 0
        account.off_stripe[invoice["id"]] = account.off_stripe.get(invoice["id"], 0) + remaining
        self._mark_paid(invoice, now)
        self._invoice_changed(account, invoice, before)
        return self._invoice_view(account, invoice, _expands_of(params))

    def _report_payment(
        self, account: _Account, params: dict[str, Any], _args: dict[str, Any], now: float
    ) -> dict[str, Any]:
        self._known(params, REPORT_PARAMS)
        requested = params.get("amount_requested")
        if not isinstance(requested, dict):
            raise _missing("amount_requested")
        for name in ("currency", "value"):
            if not requested.get(name):
                raise _missing(f"amount_requested[{name}]")
        currency = str(requested["currency"]).lower()
        if len(currency) != 3 or not currency.isalpha():
            raise _invalid("amount_requested[currency]", f"Invalid currency: {requested['currency']}.")
        value = _positive_int(requested["value"], "amount_requested[value]")
        if "initiated_at" not in params:
            raise _missing("initiated_at")
        initiated_at = _positive_int(params["initiated_at"], "initiated_at")
        method = params.get("payment_method_details")
        if not isinstance(method, dict):
            raise _missing("payment_method_details")
        if method.get("type", "custom") != "custom":
            raise _invalid(
                "payment_method_details[type]", "Invalid payment_method_details[type]: must be custom."
            )
        custom: dict[str, Any] = method["custom"] if isinstance(method.get("custom"), dict) else {}
        if method.get("payment_method") is None and not custom.get("display_name"):
            raise _missing("payment_method_details[custom][display_name]")
        outcome = params.get("outcome", "guaranteed")
        if outcome not in ("guaranteed", "failed", "canceled"):
            raise _invalid(
                "outcome", f"Invalid outcome: {outcome}; must be one of guaranteed, failed, canceled."
            )
        at: dict[str, int] = {}
        for state in ("guaranteed", "failed", "canceled"):
            details = params.get(state)
            if state == outcome and "outcome" in params and not isinstance(details, dict):
                raise _missing(f"{state}[{state}_at]")
            if isinstance(details, dict):
                at[state] = _positive_int(details.get(f"{state}_at", ""), f"{state}[{state}_at]")
        processor = params.get("processor_details")
        if processor is not None:
            if not isinstance(processor, dict) or processor.get("type") != "custom":
                raise _missing("processor_details[type]")
            reference = (processor.get("custom") or {}).get("payment_reference")
            if not reference:
                raise _missing("processor_details[custom][payment_reference]")
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _invalid("metadata", "Invalid object: metadata must be a set of key-value pairs.")
        customer = (
            params.get("customer_details") if isinstance(params.get("customer_details"), dict) else None
        )
        record_id = f"pr_{secrets.token_hex(12)}"
        created = int(now)

        def amount(applies: bool) -> dict[str, Any]:
            return {"currency": currency, "value": value if applies else 0}

        record = {
            "id": record_id,
            "object": "payment_record",
            "amount": amount(True),
            "amount_authorized": amount(outcome == "guaranteed"),
            "amount_canceled": amount(outcome == "canceled"),
            "amount_failed": amount(outcome == "failed"),
            "amount_guaranteed": amount(outcome == "guaranteed"),
            "amount_refunded": amount(False),
            "amount_requested": amount(True),
            "application": None,
            "created": created,
            "customer_details": (
                {
                    "customer": customer.get("customer"),
                    "email": customer.get("email"),
                    "name": customer.get("name"),
                    "phone": customer.get("phone"),
                }
                if customer
                else None
            ),
            "customer_presence": params.get("customer_presence"),
            "description": params.get("description"),
            "latest_payment_attempt_record": f"par_{secrets.token_hex(12)}",
            "livemode": account.live,
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "payment_method_details": {
                "billing_details": None,
                "custom": {"display_name": custom.get("display_name"), "type": custom.get("type")},
                "payment_method": method.get("payment_method"),
                "type": "custom",
            },
            "processor_details": (
                {"type": "custom", "custom": {"payment_reference": processor["custom"]["payment_reference"]}}
                if processor is not None
                else {"type": "custom", "custom": None}
            ),
            "reported_by": "self",
            "shipping_details": None,
            # Not Stripe fields: kept off the wire (see _record_view) for attach_payment.
            "_initiated_at": initiated_at,
            "_outcome_at": at.get(str(outcome), initiated_at),
            "_outcome": outcome,
        }
        account.payment_records[record_id] = record
        return _record_view(record)

    def _attach_payment(
        self, account: _Account, params: dict[str, Any], args: dict[str, Any], now: float
    ) -> dict[str, Any]:
        self._known(params, ATTACH_PARAMS)
        invoice = self._invoice_of(account, str(args["invoice_id"]))
        if "payment_intent" in params:
            raise _Refused(
                404,
                _error(
                    f"No such payment_intent: '{params['payment_intent']}'",
                    code="resource_missing",
                    param="payment_intent",
                ),
            )
        record_id = params.get("payment_record")
        if not record_id:
            raise _missing("payment_record")
        record = account.payment_records.get(str(record_id))
        if record is None:
            raise _Refused(
                404,
                _error(
                    f"No such payment_record: '{record_id}'", code="resource_missing", param="payment_record"
                ),
            )
        already = next(
            (p for p in account.attached.values() if p["payment"].get("payment_record") == record_id), None
        )
        if already is not None:
            raise _Refused(
                400,
                _error(
                    f"PaymentRecord {record_id} is already attached to invoice {already['invoice']}.",
                    param="payment_record",
                ),
            )
        self._payable(invoice)
        currency = record["amount_requested"]["currency"]
        if currency != str(invoice.get("currency", "")).lower():
            raise _Refused(
                400,
                _error(
                    f"The PaymentRecord's currency ({currency}) must match the invoice's "
                    f"({invoice.get('currency')}).",
                    param="payment_record",
                ),
            )
        value = int(record["amount_requested"]["value"])
        paid = record["_outcome"] == "guaranteed"
        payment_id = f"inpay_{secrets.token_hex(12)}"
        created = int(now)
        account.attached[payment_id] = {
            "id": payment_id,
            "object": "invoice_payment",
            "amount_paid": value if paid else None,
            "amount_requested": value,
            "created": created,
            "currency": currency,
            "invoice": invoice["id"],
            "is_default": False,
            "livemode": account.live,
            "payment": {"type": "payment_record", "payment_record": record_id},
            "status": "paid" if paid else "canceled",
            "status_transitions": {
                "canceled_at": None if paid else created,
                "paid_at": record["_outcome_at"] if paid else None,
            },
        }
        if paid:
            before = self._payment_fields(invoice)
            remaining = int(invoice.get("amount_remaining", 0))
            invoice["amount_paid"] = int(invoice.get("amount_paid", 0)) + value
            invoice["amount_remaining"] = max(remaining - value, 0)
            if value > remaining:
                # Stripe credits an overpayment to the customer's balance.
                invoice["amount_overpaid"] = int(invoice.get("amount_overpaid", 0)) + value - remaining
            account.off_stripe[invoice["id"]] = account.off_stripe.get(invoice["id"], 0) + value
            if invoice["amount_remaining"] == 0:
                self._mark_paid(invoice, now)
            self._invoice_changed(account, invoice, before)
        return self._invoice_view(account, invoice, _expands_of(params))

    def _invoice_view(self, account: _Account, invoice: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """The invoice as Stripe answers it: ``payments`` and ``amount_paid_off_stripe`` only when
        expanded (400 for a field that cannot be)."""
        view = copy.deepcopy(invoice)
        for name in expand:
            if name not in EXPANDABLE_INVOICE:
                raise _Refused(
                    400,
                    _error(
                        f"This property cannot be expanded ({name}).",
                        code="parameter_invalid_string",
                        param="expand",
                    ),
                    saved=False,
                )
        if "payments" in expand:
            mine = sorted(
                (p for p in account.invoice_payments.values() if p.get("invoice") == invoice["id"]),
                key=lambda p: (p.get("created", 0), p["id"]),
                reverse=True,
            )
            view["payments"] = {
                "object": "list",
                "data": copy.deepcopy(mine),
                "has_more": False,
                "total_count": len(mine),
                "url": f"/v1/invoices/{invoice['id']}/payments",
            }
        if "amount_paid_off_stripe" in expand:
            view["amount_paid_off_stripe"] = account.off_stripe.get(invoice["id"], 0)
        return view

    def _rate_limited(self) -> Response:
        return self._json(
            _error(
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            ),
            429,
        )

    def _injected(self, status: int) -> Response:
        if status == 429:
            return self._rate_limited()
        body = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        return self._json(body, status, {"Stripe-Should-Retry": "true"})

    def _list(self, account: _Account, request: Request, collection: str = "invoices") -> Response:
        query = request.args
        allowed = (LIST_PARAMS - LIST_FILTERS["invoices"]) | LIST_FILTERS[collection]
        for name in query:
            if name not in allowed:
                return self._json(
                    _error(f"Received unknown parameter: {name}", code="parameter_unknown", param=name), 400
                )
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return self._json(
                _error("Invalid integer: " + query["limit"], code="parameter_invalid_integer", param="limit"),
                400,
            )
        if not 1 <= limit <= MAX_LIMIT:
            return self._json(
                _error(
                    f"This value must be greater than or equal to 1 and less than or equal to {MAX_LIMIT}.",
                    code="parameter_invalid_integer",
                    param="limit",
                ),
                400,
            )
        status = query.get("status")
        statuses = PAYMENT_STATUSES if collection == "invoice_payments" else STATUSES
        if status is not None and status not in statuses:
            return self._json(
                _error(
                    f"Invalid status: must be one of {', '.join(statuses)}",
                    code="parameter_invalid_string",
                    param="status",
                ),
                400,
            )
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        for op, test in CREATED_OPS.items():
            raw = query.get(f"created[{op}]")
            if raw is None:
                continue
            try:
                bounds.append((test, int(raw)))
            except ValueError:
                return self._json(
                    _error(
                        f"Invalid integer: {raw}", code="parameter_invalid_integer", param=f"created[{op}]"
                    ),
                    400,
                )
        if "created" in query:
            try:
                bounds.append((lambda value, bound: value == bound, int(query["created"])))
            except ValueError:
                return self._json(
                    _error("Invalid integer", code="parameter_invalid_integer", param="created"), 400
                )
        equal = {
            name: query[name]
            for name in LIST_FILTERS[collection] - {"status"}
            if query.get(name) is not None and not name.startswith("payment[")
        }
        # payment[type] / payment[payment_intent] / payment[payment_record]: the InvoicePayment's payment.
        of_payment = {
            name[8:-1]: query[name]
            for name in LIST_FILTERS[collection]
            if name.startswith("payment[") and name in query
        }
        pool: dict[str, dict[str, Any]] = getattr(account, collection)
        # Newest first, as Stripe lists; ties broken by id so the order (and the cursors) are stable.
        ordered = sorted(pool.values(), key=lambda i: (i["created"], i["id"]), reverse=True)
        matching = [
            i
            for i in ordered
            if (status is None or i.get("status") == status)
            and all(i.get(name) == value for name, value in equal.items())
            and all((i.get("payment") or {}).get(name) == value for name, value in of_payment.items())
            and all(test(int(i["created"]), bound) for test, bound in bounds)
        ]
        after, before = query.get("starting_after"), query.get("ending_before")
        for cursor, param in ((after, "starting_after"), (before, "ending_before")):
            if cursor is not None and cursor not in pool:
                return self._json(
                    _error(
                        f"No such {OBJECT_NAMES[collection]}: '{cursor}'",
                        code="resource_missing",
                        param=param,
                    ),
                    404,
                )
        if after is not None:
            # A cursor outside the filtered list still marks a place in the full order.
            position = [i["id"] for i in ordered].index(after)
            later = {i["id"] for i in ordered[position + 1 :]}
            page_pool = [i for i in matching if i["id"] in later]
            page, has_more = page_pool[:limit], len(page_pool) > limit
        elif before is not None:
            position = [i["id"] for i in ordered].index(before)
            earlier = {i["id"] for i in ordered[:position]}
            page_pool = [i for i in matching if i["id"] in earlier]
            page, has_more = page_pool[-limit:], len(page_pool) > limit
        else:
            page, has_more = matching[:limit], len(matching) > limit
        return self._json(
            {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": f"/v1/{collection}"}
        )


# --------------------------------------------------------------------------------------------------
# Running on its own


def main(argv: list[str] | None = None) -> int:
    parser = foreground_parser(
        "A local Stripe API stand-in (invoices).", port=12111, seed_flag="--account", noun="account"
    )
    parser.add_argument("--api-key", default="sk_test_local_stand_in", help="the accounts' secret key")
    parser.add_argument("--generate", type=int, default=0, help="generated invoices to add to the fixtures")
    args = parser.parse_args(argv)
    sandbox = StripeSandbox()
    for account_id in args.account or ["acct_local"]:
        invoices = fixture_invoices() + generate_invoices(args.generate, start=int(time.time()) - 86_400 * 30)
        sandbox.seed_account(account_id, api_key=args.api_key, invoices=invoices)
        print(f"seeded account {account_id}: {len(invoices)} invoices, key {mask(args.api_key)}")
    return run_foreground(sandbox, args.host, args.port, lambda url: f"Stripe stand-in at {url}/v1")


if __name__ == "__main__":
    raise SystemExit(main())
