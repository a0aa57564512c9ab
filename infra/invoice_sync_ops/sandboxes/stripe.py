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

Invoices are seeded per account: the invoice objects of the webhook fixtures in
``tests/events/stripe`` (``fixture_invoices``), generated ones (``generate_invoices``: the current
shape, mapped products, 8.25 % tax rounded half up as Stripe does), or any given objects. Every
seeded object is checked with invoice-sync's own Stripe parser; objects arriving over the control
API (and, on request, from Python: ``sdk_check=True``) with the official ``stripe`` SDK's
``Invoice.construct_from`` as well. The SDK check is opt-in from Python because importing the SDK
costs the local stack and the demo over a second.
"""

from __future__ import annotations

import base64
import copy
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
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
TEST_READS_PER_SECOND = 25
LIVE_READS_PER_SECOND = 100
STATUSES = ("draft", "open", "paid", "uncollectible", "void")
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
}
OBJECT_NAMES = {"invoices": "invoice", "credit_notes": "credit note", "refunds": "refund"}
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


@dataclass(kw_only=True)
class _Account(Traffic):
    account_id: str
    api_key: str | None  # None once rolled (revoked)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    second: deque[float] = field(default_factory=deque)  # when the reads of the last second came in

    @property
    def live(self) -> bool:
        return bool(self.api_key and self.api_key.startswith(("sk_live_", "rk_live_")))


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
    ) -> None:
        # None: Stripe's own limit for the key's mode (25 test, 100 live).
        self.reads_per_second = reads_per_second
        super().__init__(
            clock=clock,
            latency_seconds=latency_seconds,
            rules=[
                Rule(
                    "/v1/<any(invoices, credit_notes, refunds):collection>", endpoint="list", methods=["GET"]
                ),
                Rule(
                    "/v1/<any(invoices, credit_notes, refunds):collection>/<invoice_id>",
                    endpoint="retrieve",
                    methods=["GET"],
                ),
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
        if kind not in LIST_FILTERS:
            raise KeyError(kind)
        with self._lock:
            return copy.deepcopy(list(getattr(self._tenant(account_id), kind).values()))

    def inject_status(self, account_id: str, status: int, count: int = 1) -> None:
        """The next ``count`` API calls answer ``status`` (429 or a 5xx)."""
        self._inject_status(account_id, status, count)

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
            if account.injected:
                return self._injected(account.injected.popleft())
            now = self._clock()
            expire_window(account.second, now, span=1.0)
            limit = self.reads_per_second or (
                LIVE_READS_PER_SECOND if account.live else TEST_READS_PER_SECOND
            )
            if len(account.second) >= limit:
                return self._rate_limited()
            account.second.append(now)
            self._admit(account, now)

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
                return self._json(copy.deepcopy(found))
            return self._list(account, request, collection)

        return self._serve(account, is_write=False, respond=respond)

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
        if status is not None and status not in STATUSES:
            return self._json(
                _error(
                    f"Invalid status: must be one of {', '.join(STATUSES)}",
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
            name: query[name] for name in LIST_FILTERS[collection] - {"status"} if query.get(name) is not None
        }
        pool: dict[str, dict[str, Any]] = getattr(account, collection)
        # Newest first, as Stripe lists; ties broken by id so the order (and the cursors) are stable.
        ordered = sorted(pool.values(), key=lambda i: (i["created"], i["id"]), reverse=True)
        matching = [
            i
            for i in ordered
            if (status is None or i.get("status") == status)
            and all(i.get(name) == value for name, value in equal.items())
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
