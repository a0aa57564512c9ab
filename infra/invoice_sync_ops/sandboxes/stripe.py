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

Payouts (design two-way 3.5.2 and 6): ``seed_payout(account, payout, transactions)`` (control API
``POST /_sandbox/accounts/<account>/payouts`` with ``{"payout", "transactions", "emit"}``) makes a
Payout and the balance transactions it paid out (``txn_...``: ``type``, ``amount``, ``fee``,
``fee_details``, ``net = amount - fee``, ``currency``, ``exchange_rate`` null, ``reporting_category``,
``source``), plus the payout's own ``type=payout`` transaction; every field is checked and the rest
filled as Stripe fills them (``payout_object``, ``transaction_object``). ``GET /v1/payouts/{id}``
(and the list), ``GET /v1/balance_transactions`` (``payout``, ``type``, ``source``, ``currency``,
cursors, ``limit``; ``expand[]=data.source`` turns each source id into the seeded charge, refund or
payout) and ``GET /v1/balance_transactions/{id}`` (``expand[]=source``). The payout filter lists
nothing for a manual payout (``automatic: false``, ``reconciliation_status: "not_applicable"``), as
Stripe cannot say what a manual payout settles, nor (the stand-in's assumption) while an automatic
one is still reconciling. ``update_payout(account, id, status=, reconciliation_status=)`` (control
API ``POST /_sandbox/accounts/<account>/payouts/<id>``) moves one on. Seeding and moving send
``payout.paid``, ``payout.reconciliation_completed``, ``payout.failed`` and ``payout.canceled`` to the
account's endpoints, in the envelope and with the signature of the invoice events (``request.id``
null: Stripe makes these events on its own).
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
    "payouts": frozenset({"status", "destination"}),
    # ``payout`` is matched apart (the transactions a payout paid out, automatic payouts only).
    "balance_transactions": frozenset({"payout", "type", "source", "currency"}),
}
OBJECT_NAMES = {
    "invoices": "invoice",
    "credit_notes": "credit note",
    "refunds": "refund",
    "invoice_payments": "invoice payment",
    "payment_records": "payment record",
    "payouts": "payout",
    "balance_transactions": "balance transaction",
}
CREATED_OPS: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda value, bound: value >= bound,
    "gt": lambda value, bound: value > bound,
    "lte": lambda value, bound: value <= bound,
    "lt": lambda value, bound: value < bound,
}
TAX_RATE = Decimal("0.0825")  # txr_SalesTax825, as in the fixtures

# --- payouts (design two-way 3.5.2 and 6) ---------------------------------------------------------
# A Payout's status and reconciliation_status, and the transitions a payout makes (stripe-python
# ``_payout.py``: "Some payouts that fail might initially show as paid, then change to failed";
# only a pending payout can be canceled, https://docs.stripe.com/api/payouts/cancel).
PAYOUT_STATUSES = ("paid", "pending", "in_transit", "canceled", "failed")
RECONCILIATION_STATUSES = ("completed", "in_progress", "not_applicable")
PAYOUT_MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"in_transit", "paid", "failed", "canceled"}),
    "in_transit": frozenset({"paid", "failed"}),
    "paid": frozenset({"failed"}),
    "failed": frozenset(),
    "canceled": frozenset(),
}
# The event each status is announced with (stripe-python ``_event.py`` type literals).
PAYOUT_EVENTS = {"paid": "payout.paid", "failed": "payout.failed", "canceled": "payout.canceled"}
# The fields ``payout_object`` checks and computes; the others are taken as given.
CHECKED_PAYOUT = frozenset(
    {
        "id",
        "object",
        "amount",
        "arrival_date",
        "automatic",
        "balance_transaction",
        "created",
        "currency",
        "reconciliation_status",
        "status",
    }
)
PAYOUT_FIELDS = frozenset(
    {
        "id",
        "object",
        "amount",
        "application_fee",
        "application_fee_amount",
        "arrival_date",
        "automatic",
        "balance_transaction",
        "created",
        "currency",
        "description",
        "destination",
        "failure_balance_transaction",
        "failure_code",
        "failure_message",
        "livemode",
        "metadata",
        "method",
        "original_payout",
        "payout_method",
        "reconciliation_status",
        "reversed_by",
        "source_type",
        "statement_descriptor",
        "status",
        "trace_id",
        "type",
    }
)
# BalanceTransaction types (stripe-python ``_balance_transaction.py``, the ``type`` literal).
TRANSACTION_TYPES = frozenset(
    {
        "adjustment",
        "advance",
        "advance_funding",
        "anticipation_repayment",
        "application_fee",
        "application_fee_refund",
        "charge",
        "climate_order_purchase",
        "climate_order_refund",
        "connect_collection_transfer",
        "contribution",
        "fee_credit_funding",
        "inbound_transfer",
        "inbound_transfer_reversal",
        "issuing_authorization_hold",
        "issuing_authorization_release",
        "issuing_dispute",
        "issuing_transaction",
        "obligation_outbound",
        "obligation_reversal_inbound",
        "payment",
        "payment_failure_refund",
        "payment_network_reserve_hold",
        "payment_network_reserve_release",
        "payment_refund",
        "payment_reversal",
        "payment_unreconciled",
        "payout",
        "payout_cancel",
        "payout_failure",
        "payout_minimum_balance_hold",
        "payout_minimum_balance_release",
        "refund",
        "refund_failure",
        "reserve_hold",
        "reserve_release",
        "reserve_transaction",
        "reserved_funds",
        "stripe_balance_payment_debit",
        "stripe_balance_payment_debit_reversal",
        "stripe_fee",
        "stripe_fx_fee",
        "tax_fee",
        "topup",
        "topup_reversal",
        "transfer",
        "transfer_cancel",
        "transfer_failure",
        "transfer_refund",
    }
)
TRANSACTION_FIELDS = frozenset(
    {
        "id",
        "object",
        "amount",
        "available_on",
        "balance_type",
        "created",
        "currency",
        "description",
        "exchange_rate",
        "fee",
        "fee_details",
        "net",
        "reporting_category",
        "source",
        "status",
        "type",
    }
)
# A transaction's reporting category by type, where the type says it
# (https://docs.stripe.com/reports/reporting-categories); anything else is other_adjustment unless
# the test gives one.
REPORTING_CATEGORIES = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
    "payment_refund": "refund",
    "refund_failure": "refund_failure",
    "payment_failure_refund": "charge_failure",
    "stripe_fee": "fee",
    "stripe_fx_fee": "fee",
    "tax_fee": "fee",
    "application_fee": "platform_earning",
    "payout": "payout",
}
# What a transaction's ``source`` may be, by its id prefix: the object types the stand-in expands.
SOURCE_OBJECTS = {"ch_": "charge", "py_": "charge", "re_": "refund", "pyr_": "refund", "po_": "payout"}


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


# --------------------------------------------------------------------------------------------------
# Payouts and their balance transactions, as seeded by a test


def _whole(obj: dict[str, Any], name: str, what: str, *, minimum: int | None = None) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: {name} must be an integer (minor units / Unix seconds)")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what}: {name} must be at least {minimum}")
    return value


def _unknown_fields(obj: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)} (not on Stripe's object)")


def payout_object(fields: dict[str, Any], *, now: float, livemode: bool = False) -> dict[str, Any]:
    """A complete Payout (stripe-python ``_payout.py``) from the fields a test gives: ``amount``
    (positive minor units), ``currency`` and ``arrival_date`` are required; ``automatic`` defaults
    to true, ``status`` to ``paid``, ``reconciliation_status`` to ``completed`` for a paid automatic
    payout (``in_progress`` before, ``not_applicable`` for a manual one, the only value a manual
    payout has: https://docs.stripe.com/payouts/reconciliation). ``ValueError`` names what is wrong."""
    if not isinstance(fields, dict):
        raise ValueError("payout must be a JSON object")
    _unknown_fields(fields, PAYOUT_FIELDS, "payout")
    payout_id = str(fields.get("id") or f"po_{secrets.token_hex(12)}")
    what = f"payout {payout_id}"
    if not payout_id.startswith("po_"):
        raise ValueError(f"{what}: id must start with po_")
    if fields.get("object", "payout") != "payout":
        raise ValueError(f"{what}: object must be 'payout'")
    amount = _whole(fields, "amount", what, minimum=1)
    currency = fields.get("currency")
    if (
        not isinstance(currency, str)
        or len(currency) != 3
        or not currency.isalpha()
        or not currency.islower()
    ):
        raise ValueError(f"{what}: currency must be a lowercase ISO code (usd)")
    arrival = _whole(fields, "arrival_date", what, minimum=0)
    automatic = fields.get("automatic", True)
    if not isinstance(automatic, bool):
        raise ValueError(f"{what}: automatic must be a boolean")
    status = fields.get("status", "paid")
    if status not in PAYOUT_STATUSES:
        raise ValueError(f"{what}: status must be one of {', '.join(PAYOUT_STATUSES)}")
    default_reconciliation = (
        "not_applicable" if not automatic else "completed" if status == "paid" else "in_progress"
    )
    reconciliation = fields.get("reconciliation_status", default_reconciliation)
    if reconciliation not in RECONCILIATION_STATUSES:
        raise ValueError(f"{what}: reconciliation_status must be one of {', '.join(RECONCILIATION_STATUSES)}")
    if (reconciliation == "not_applicable") != (not automatic):
        raise ValueError(f"{what}: a manual payout (and only one) has reconciliation_status not_applicable")
    if reconciliation == "completed" and status != "paid":
        raise ValueError(f"{what}: only a paid payout is reconciled")
    created = _whole(fields, "created", what, minimum=0) if "created" in fields else int(now)
    own = fields.get("balance_transaction") or f"txn_{secrets.token_hex(12)}"
    if not isinstance(own, str) or not own.startswith("txn_"):
        raise ValueError(f"{what}: balance_transaction must be a txn_ id")
    payout: dict[str, Any] = {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": arrival,
        "automatic": automatic,
        "balance_transaction": own,
        "created": created,
        "currency": currency,
        "description": "STRIPE PAYOUT" if automatic else None,
        "destination": f"ba_{secrets.token_hex(12)}",
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": livemode,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "payout_method": None,
        "reconciliation_status": reconciliation,
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "trace_id": {"status": "pending", "value": None},
        "type": "bank_account",
    }
    # The rest (destination, description, metadata, failure_code, ...) as given.
    payout.update(
        {name: copy.deepcopy(value) for name, value in fields.items() if name not in CHECKED_PAYOUT}
    )
    return payout


def _source_object(source: dict[str, Any], txn_id: str, currency: str, created: int) -> dict[str, Any]:
    """A charge or refund a transaction moved, as given, with the fields every such object has
    filled in (``balance_transaction`` is the transaction's own id)."""
    source_id = source.get("id")
    if not isinstance(source_id, str):
        raise ValueError(f"transaction {txn_id}: its source object needs an id")
    kind = next((name for prefix, name in SOURCE_OBJECTS.items() if source_id.startswith(prefix)), None)
    if kind not in ("charge", "refund") or source.get("object", kind) != kind:
        raise ValueError(
            f"transaction {txn_id}: a source object is a charge (ch_/py_) or a refund (re_/pyr_)"
        )
    what = f"{kind} {source_id}"
    _whole(source, "amount", what, minimum=0)
    obj = copy.deepcopy(source)
    obj.setdefault("object", kind)
    obj.setdefault("balance_transaction", txn_id)
    obj.setdefault("currency", currency)
    obj.setdefault("created", created)
    if kind == "charge":
        # A charge of an invoice names its payment intent (a current-shape charge does not name the
        # invoice): that is how a payout's charge line finds the invoice payment (design 3.5.2 step 8).
        for name, default in (
            ("payment_intent", None),
            ("amount_captured", obj["amount"]),
            ("amount_refunded", 0),
            ("captured", True),
            ("customer", None),
            ("description", None),
            ("livemode", False),
            ("metadata", {}),
            ("paid", True),
            ("refunded", False),
            ("status", "succeeded"),
        ):
            obj.setdefault(name, default)
    else:
        if not isinstance(obj.get("charge"), str):
            raise ValueError(f"{what}: a refund names its charge")
        for name, default in (
            ("payment_intent", None),
            ("metadata", {}),
            ("reason", None),
            ("status", "succeeded"),
        ):
            obj.setdefault(name, default)
    return obj


def transaction_object(
    fields: dict[str, Any], payout: dict[str, Any], known: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A complete BalanceTransaction (stripe-python ``_balance_transaction.py``) paid out in
    ``payout``, and the source object it carries (None when it names one already ``known``, or
    none). ``type`` and ``amount`` (signed minor units) are required; ``fee`` defaults to 0 with
    one ``stripe_fee`` detail, ``net`` is ``amount - fee`` (Stripe's definition; a given ``net``
    must equal it), ``currency`` is the payout's, ``exchange_rate`` null."""
    if not isinstance(fields, dict):
        raise ValueError("each transaction must be a JSON object")
    _unknown_fields(fields, TRANSACTION_FIELDS, "transaction")
    txn_id = str(fields.get("id") or f"txn_{secrets.token_hex(12)}")
    what = f"transaction {txn_id}"
    if not txn_id.startswith("txn_"):
        raise ValueError(f"{what}: id must start with txn_")
    kind = fields.get("type")
    if kind not in TRANSACTION_TYPES:
        raise ValueError(f"{what}: type must be one of Stripe's balance transaction types")
    if kind == "payout":
        raise ValueError(f"{what}: the payout's own transaction is made by the stand-in")
    amount = _whole(fields, "amount", what)
    fee = _whole(fields, "fee", what, minimum=0) if "fee" in fields else 0
    currency = fields.get("currency", payout["currency"])
    if not isinstance(currency, str) or len(currency) != 3 or not currency.islower():
        raise ValueError(f"{what}: currency must be a lowercase ISO code")
    details = fields.get("fee_details")
    if details is None:
        details = (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        )
    if (
        not isinstance(details, list)
        or sum(_whole(d, "amount", f"{what} fee detail") for d in details) != fee
    ):
        raise ValueError(f"{what}: fee_details must add up to fee")
    if "net" in fields and fields["net"] != amount - fee:
        raise ValueError(f"{what}: net is amount - fee ({amount - fee})")
    rate = fields.get("exchange_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        raise ValueError(f"{what}: exchange_rate is a number or null")
    created = _whole(fields, "created", what, minimum=0) if "created" in fields else int(payout["created"])
    source = fields.get("source")
    carried: dict[str, Any] | None = None
    if isinstance(source, dict):
        carried = _source_object(source, txn_id, currency, created)
        source_id: str | None = carried["id"]
    elif isinstance(source, str):
        if source not in known:
            raise ValueError(f"{what}: source {source} is not seeded: give the charge or refund object")
        source_id = source
    elif source is None:
        source_id = None
    else:
        raise ValueError(f"{what}: source is an id, a charge or refund object, or null")
    txn = {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": int(fields.get("available_on", payout["arrival_date"])),
        "balance_type": fields.get("balance_type", "payments"),
        "created": created,
        "currency": currency,
        "description": fields.get("description"),
        "exchange_rate": rate,
        "fee": fee,
        "fee_details": copy.deepcopy(details),
        "net": amount - fee,
        "reporting_category": fields.get(
            "reporting_category", REPORTING_CATEGORIES.get(kind, "other_adjustment")
        ),
        "source": source_id,
        "status": fields.get("status", "available"),
        "type": kind,
        "_payout": payout["id"],
    }
    return txn, carried


def payout_transaction(payout: dict[str, Any]) -> dict[str, Any]:
    """The payout's own transaction (``type: payout``, minus the payout), which the payout-filtered
    list returns with the others (design two-way 2.1)."""
    return {
        "id": payout["balance_transaction"],
        "object": "balance_transaction",
        "amount": -payout["amount"],
        "available_on": payout["created"],
        "balance_type": "payments",
        "created": payout["created"],
        "currency": payout["currency"],
        "description": payout.get("description"),
        "exchange_rate": None,
        "fee": 0,
        "fee_details": [],
        "net": -payout["amount"],
        "reporting_category": "payout",
        "source": payout["id"],
        "status": "available",
        "type": "payout",
        "_payout": payout["id"],
    }


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
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each with ``_payout`` (the payout that paid it out) kept off the wire.
    balance_transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The objects a balance transaction's ``source`` names (charges, refunds), for expand[]=data.source.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
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
                    "/v1/<any(invoices, credit_notes, refunds, invoice_payments, payouts, "
                    "balance_transactions):collection>",
                    endpoint="list",
                    methods=["GET"],
                ),
                Rule(
                    "/v1/<any(invoices, credit_notes, refunds, invoice_payments, payment_records, payouts, "
                    "balance_transactions):collection>/<invoice_id>",
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

    def seed_payout(
        self,
        account_id: str,
        payout: dict[str, Any],
        transactions: Iterable[dict[str, Any]] = (),
        *,
        emit: bool = True,
    ) -> dict[str, Any]:
        """Creates a payout and the balance transactions it paid out (``payout_object`` and
        ``transaction_object`` say what each needs and defaults), plus the payout's own
        ``type=payout`` transaction. A transaction's ``source`` is a charge or refund object (kept
        for ``expand[]=data.source``) or the id of one seeded before (a refund of ``add_objects``
        or a source of an earlier payout). The nets are not made to add up to the payout: a test
        of the sum check seeds ones that do not. With ``emit``, the events Stripe sends for the
        state the payout is seeded in go to the account's endpoints: ``payout.paid`` (shown
        before reconciliation, as Stripe sends it) then, for a reconciled payout,
        ``payout.reconciliation_completed``; ``payout.failed`` / ``payout.canceled``; nothing for a
        pending or in-transit one. Returns the payout as the API shows it."""
        given = list(transactions)
        with self._lock:
            account = self._tenant(account_id)
            built = payout_object(payout, now=self._clock(), livemode=account.live)
            if built["id"] in account.payouts:
                raise ValueError(f"payout {built['id']} already exists")
            known: dict[str, dict[str, Any]] = {**account.refunds, **account.sources}
            rows: list[dict[str, Any]] = []
            for fields in given:
                txn, source = transaction_object(fields, built, known)
                if source is not None:
                    known[source["id"]] = source
                rows.append(txn)
            rows.append(payout_transaction(built))
            ids = [row["id"] for row in rows]
            taken = sorted({i for i in ids if ids.count(i) > 1 or i in account.balance_transactions})
            if taken:
                raise ValueError(f"balance transaction id(s) already used: {', '.join(taken)}")
            account.payouts[built["id"]] = built
            for row in rows:
                account.balance_transactions[row["id"]] = row
            for source_id, source in known.items():
                if source_id not in account.refunds and source_id not in account.sources:
                    account.sources[source_id] = source
                    if source["object"] == "refund":
                        account.refunds[source_id] = source  # listed by GET /v1/refunds as well
            if emit:
                self._payout_seeded(account, built)
            return _record_view(built)

    def update_payout(
        self,
        account_id: str,
        payout_id: str,
        *,
        status: str | None = None,
        reconciliation_status: str | None = None,
    ) -> dict[str, Any]:
        """Moves a payout on as Stripe would (``PAYOUT_MOVES``; reconciliation only from
        ``in_progress`` to ``completed``, on a paid automatic payout) and sends the event of each
        change: ``payout.paid`` / ``payout.failed`` / ``payout.canceled`` first, then
        ``payout.reconciliation_completed``. Returns the payout as the API shows it."""
        with self._lock:
            account = self._tenant(account_id)
            payout = account.payouts.get(payout_id)
            if payout is None:
                raise KeyError(f"payout {payout_id}")
            before = copy.deepcopy(payout)
            moved = status is not None and status != payout["status"]
            if moved and status not in PAYOUT_MOVES.get(payout["status"], frozenset()):
                raise ValueError(f"payout {payout_id}: cannot go from {payout['status']} to {status}")
            reconciles = (
                reconciliation_status is not None and reconciliation_status != payout["reconciliation_status"]
            )
            if reconciles and (
                reconciliation_status != "completed"
                or payout["reconciliation_status"] != "in_progress"
                or (status or payout["status"]) != "paid"
            ):
                raise ValueError(
                    f"payout {payout_id}: only a paid automatic payout's reconciliation completes"
                )
            if moved:
                payout["status"] = status
                if status == "failed":
                    payout["failure_code"] = "account_closed"
                    payout["failure_message"] = "The bank account has been closed."
            if reconciles:
                payout["reconciliation_status"] = "completed"
            if payout["status"] != before["status"] and payout["status"] in PAYOUT_EVENTS:
                shown = {**copy.deepcopy(payout), "reconciliation_status": before["reconciliation_status"]}
                account.outbox.append((PAYOUT_EVENTS[payout["status"]], shown, {"status": before["status"]}))
            if payout["reconciliation_status"] != before["reconciliation_status"]:
                account.outbox.append(
                    (
                        "payout.reconciliation_completed",
                        copy.deepcopy(payout),
                        {"reconciliation_status": before["reconciliation_status"]},
                    )
                )
            self._announce(account, None, by_request=False)
            return _record_view(payout)

    def _payout_seeded(self, account: _Account, payout: dict[str, Any]) -> None:
        """The events of a payout seeded as it is. Under the lock."""
        status = payout["status"]
        if status == "paid":
            reconciled = payout["reconciliation_status"] == "completed"
            shown = {**payout, "reconciliation_status": "in_progress"} if reconciled else payout
            account.outbox.append(("payout.paid", copy.deepcopy(shown), {"status": "in_transit"}))
            if reconciled:
                account.outbox.append(
                    (
                        "payout.reconciliation_completed",
                        copy.deepcopy(payout),
                        {"reconciliation_status": "in_progress"},
                    )
                )
        elif status in PAYOUT_EVENTS:
            previous = "pending" if status == "canceled" else "in_transit"
            account.outbox.append((PAYOUT_EVENTS[status], copy.deepcopy(payout), {"status": previous}))
        self._announce(account, None, by_request=False)

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
            Rule(
                f"/_sandbox/{self.control_root}/<tenant>/payouts/<payout_id>",
                endpoint="ctl_payout_update",
                methods=["POST"],
            ),
        ]

    def _control_calls(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        return {
            **super()._control_calls(),
            # POST /_sandbox/accounts/<tenant>/payouts {"payout": {...}, "transactions": [...], "emit": true}
            "payouts": self._seed_payout_call,
        }

    def _seed_payout_call(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        transactions = body.get("transactions", [])
        if not isinstance(transactions, list):
            raise ValueError("transactions must be a list of balance transaction objects")
        emit = body.get("emit", True)
        if not isinstance(emit, bool):
            raise ValueError("emit must be a boolean")
        payout = body.get("payout")
        if not isinstance(payout, dict):
            raise ValueError("payout must be a JSON object (a Stripe Payout's fields)")
        return self.seed_payout(account_id, payout, transactions, emit=emit)

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
        if endpoint == "ctl_payout_update":
            # POST /_sandbox/accounts/<tenant>/payouts/<id> {"status": "failed"} or
            # {"reconciliation_status": "completed"}
            try:
                body = json.loads(request.get_data() or b"{}")
                if not isinstance(body, dict) or set(body) - {"status", "reconciliation_status"}:
                    raise ValueError('body is {"status": ..., "reconciliation_status": ...}')
                updated = self.update_payout(
                    args["tenant"],
                    args["payout_id"],
                    status=body.get("status"),
                    reconciliation_status=body.get("reconciliation_status"),
                )
            except KeyError as exc:
                return self._json({"error": f"unknown or missing {exc.args[0]}"}, 404)
            except (TypeError, ValueError) as exc:
                return self._json({"error": str(exc)}, 400)
            return self._json(updated)
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
                if collection == "balance_transactions":
                    try:
                        return self._json(
                            self._expanded(account, [found], _expands(request.args.items(multi=True)), "")[0]
                        )
                    except _Refused as refused:
                        return self._json(refused.body, refused.status)
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

    def _announce(self, account: _Account, idempotency_key: str | None, *, by_request: bool = True) -> None:
        """Send the events the write caused to the account's endpoints, in Stripe's envelope, each
        attempt signed ``t=<now>,v1=<hex HMAC-SHA256 of "t.body">`` with the endpoint's whsec_.
        ``by_request=False``: events Stripe makes on its own (a payout's), with ``request.id`` null."""
        events, account.outbox = account.outbox, []
        request_id = f"req_{secrets.token_hex(7)}" if by_request else None
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
        statuses = {"invoice_payments": PAYMENT_STATUSES, "payouts": PAYOUT_STATUSES}.get(
            collection, STATUSES
        )
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
            if query.get(name) is not None and not name.startswith("payment[") and name != "payout"
        }
        paid_out = self._paid_out(
            account, query.get("payout") if collection == "balance_transactions" else None
        )
        if isinstance(paid_out, Response):
            return paid_out
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
            and paid_out(i)
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
        if collection == "balance_transactions":
            try:
                page = self._expanded(account, page, _expands(query.items(multi=True)), "data.")
            except _Refused as refused:
                return self._json(refused.body, refused.status)
        return self._json(
            {
                "object": "list",
                "data": [_record_view(i) for i in page],
                "has_more": has_more,
                "url": f"/v1/{collection}",
            }
        )

    def _paid_out(
        self, account: _Account, payout_id: str | None
    ) -> Callable[[dict[str, Any]], bool] | Response:
        """What the ``payout`` filter of ``GET /v1/balance_transactions`` keeps (everything when
        there is none), or the 404 for a payout that does not exist."""
        if payout_id is None:
            return lambda _txn: True
        payout = account.payouts.get(payout_id)
        if payout is None:
            return self._json(
                _error(f"No such payout: '{payout_id}'", code="resource_missing", param="payout"), 404
            )
        # "For automatic Stripe payouts only, only returns transactions that were paid out on the
        # specified payout ID" (stripe-python params/_balance_transaction_list_params.py): a manual
        # payout lists nothing. The stand-in also lists nothing while reconciliation is in progress
        # (its assumption: Stripe documents the list as complete only once it is "completed",
        # https://docs.stripe.com/payouts/reconciliation).
        listed = bool(payout["automatic"]) and payout["reconciliation_status"] == "completed"
        return lambda txn: listed and txn.get("_payout") == payout_id

    @staticmethod
    def _expanded(
        account: _Account, transactions: list[dict[str, Any]], expand: list[str], prefix: str
    ) -> list[dict[str, Any]]:
        """Balance transactions as the API shows them, ``source`` expanded into its object when
        ``expand`` names ``{prefix}source`` (``data.source`` on a list); 400 for anything else."""
        for name in expand:
            if name != f"{prefix}source":
                raise _Refused(
                    400,
                    _error(
                        f"This property cannot be expanded ({name}).",
                        code="parameter_invalid_string",
                        param="expand",
                    ),
                    saved=False,
                )
        shown = [_record_view(txn) for txn in transactions]
        if expand:
            for txn in shown:
                source = txn.get("source")
                if isinstance(source, str):
                    found = (
                        account.sources.get(source)
                        or account.refunds.get(source)
                        or account.payouts.get(source)
                    )
                    txn["source"] = _record_view(found) if found is not None else source
        return shown


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
