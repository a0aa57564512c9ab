"""Stripe's API, with the connection's secret key: read by the operator CLI (``try``, ``backfill``,
``reconcile``) and by the reconcile Lambda, written by payments back. One client for all.

Reads: ``GET /v1/invoices/{id}`` (with ``expand[]``), the paged ``GET /v1/invoices``,
``/v1/credit_notes``, ``/v1/refunds`` and ``/v1/invoice_payments``; for payouts as deposits,
``GET /v1/payouts/{id}`` and the payout's ``GET /v1/balance_transactions?payout=...`` (sources
expanded). Writes (issue 7, marking an
invoice paid when the ledger recorded the payment): ``POST /v1/invoices/{id}/pay`` with
``paid_out_of_band=true``, ``POST /v1/payment_records/report_payment`` and
``POST /v1/invoices/{id}/attach_payment``, form-encoded as Stripe takes them (``a[b]=1``,
``expand[]=x``). All over httpx, with Stripe's Bearer authentication.

Errors become ``StripeApiError`` with one line a person can act on (the key is never in it) and
Stripe's own ``code`` / ``type`` / ``param`` kept on it; ``domain_error`` turns one into the
domain family of ``invoice_sync.errors``. 429 and 5xx are retried in place with ``Retry-After``
when Stripe sends one, else exponential back-off, within a bounded number of attempts and wait.
A write is only ever sent with an ``Idempotency-Key`` (required), and each retry carries the same
key, so Stripe acts at most once; 409 (``lock_timeout``, a concurrent request with the key) is
retried too. A 400 ``idempotency_error`` (the key was first used with other parameters) is
``StripeIdempotencyError`` and never retried. Stripe saves a 500 under its key and replays it
(``Idempotent-Replayed: true``) until the key is pruned a day later; such a replay, or an answer
with ``Stripe-Should-Retry: false``, is not retried: the caller re-reads and bumps its key (design
two-way 3.7).

Where the key comes from, first match: ``--stripe-key``, ``STRIPE_API_KEY``, the connection's
secret ``{prefix}/{connection}/stripe-api`` in Secrets Manager.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from invoice_sync.errors import ConnectionBroken, InvoiceSyncError, ParkError, TransientError
from invoice_sync.store.secrets import SecretStore

PAGE_LIMIT = 100  # the most Stripe lists per page
API_VERSION = "2026-06-24.dahlia"  # the invoice shape the fixtures and the parser know best
KEY_ENV = "STRIPE_API_KEY"
MAX_IDEMPOTENCY_KEY = 255  # Stripe's limit on an Idempotency-Key
# What payments back reads an invoice with (design two-way 3.5.1 step 1): its payments, and the
# part paid outside Stripe, which Stripe only computes on request.
PAYMENT_EXPANDS = ("payments", "amount_paid_off_stripe")


class StripeApiError(Exception):
    """A Stripe API call that did not work, in one line; ``status`` is the HTTP status (0: none).

    ``code`` is Stripe's error code (``invoice_payment_intent_requires_action``, ``resource_missing``,
    ...), ``error_type`` its error type (``invalid_request_error``, ``idempotency_error``, ...),
    ``param`` the parameter it names and ``request_id`` Stripe's ``Request-Id`` (for support)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.error_type = error_type
        self.param = param
        self.request_id = request_id


class StripeAuthError(StripeApiError):
    """The key was refused (401) or lacks the permission (403)."""


class StripeNotFound(StripeApiError):
    """No such object (404 ``resource_missing``)."""


class StripeRateLimited(StripeApiError):
    """Still 429 after the retries allowed."""


class StripeUnavailable(StripeApiError):
    """Stripe could not be reached or kept failing (5xx, timeouts)."""


class StripeConflict(StripeApiError):
    """Still 409 after the retries allowed: the object was locked (``lock_timeout``) or another
    request with the same idempotency key was still running."""


class StripeIdempotencyError(StripeApiError):
    """400 ``idempotency_error``: the key was first used with other parameters. A bug, never retried."""


def domain_error(error: StripeApiError) -> InvoiceSyncError:
    """The domain error a Stripe failure is (``raise domain_error(exc) from exc``): the key refused
    -> ``ConnectionBroken``; throttled, down, locked -> ``TransientError``; anything else (a 404,
    a 400 with its Stripe code) -> ``ParkError`` with a stable reason. A caller that decides on a
    code first (re-reading on an already-paid invoice) checks ``error.code`` before this."""
    text = str(error)
    if isinstance(error, StripeAuthError):
        return ConnectionBroken("Stripe key refused", text)
    if isinstance(error, StripeRateLimited | StripeUnavailable | StripeConflict):
        return TransientError(text)
    if isinstance(error, StripeNotFound):
        return ParkError("not found in Stripe", text)
    if isinstance(error, StripeIdempotencyError):
        return ParkError("Stripe idempotency key reused with other parameters", text)
    return ParkError("Stripe refused the request", f"{error.code or error.status}: {text}")


def form_encode(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Stripe's form encoding: nested mappings as ``a[b][c]=v``, lists of scalars as ``a[]=v``,
    lists of mappings as ``a[0][b]=v``, booleans as ``true``/``false``; ``None`` is left out.
    Floats are refused: money goes to Stripe as integers in minor units."""
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, int | str):
            pairs.append((key, str(value)))
        elif isinstance(value, Mapping):
            for sub, item in value.items():
                add(f"{key}[{sub}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                add(f"{key}[{index}]" if isinstance(item, Mapping) else f"{key}[]", item)
        else:
            raise TypeError(f"cannot send {type(value).__name__} to Stripe as {key}")

    for name, value in params.items():
        add(name, value)
    return pairs


@dataclass
class StripeUse:
    """What this client spent: requests sent (retries included) and 429 answers."""

    requests: int = 0
    throttled: int = 0
    retried: int = 0
    waited_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def api_key(
    explicit: str | None, secrets: SecretStore | None, connection_id: str | None
) -> tuple[SecretStr, str]:
    """The Stripe secret key and where it came from (for messages; never the key itself)."""
    if explicit:
        return SecretStr(explicit), "--stripe-key"
    if os.environ.get(KEY_ENV):
        return SecretStr(os.environ[KEY_ENV]), KEY_ENV
    if secrets is None or connection_id is None:
        raise StripeAuthError(f"no Stripe API key: pass --stripe-key or set {KEY_ENV}")
    try:
        key = secrets.stripe_api_key(connection_id)
    except ConnectionBroken as exc:
        raise StripeAuthError(
            f"{exc.detail}: store one with `invoice-sync secret stripe-api --connection "
            f"{connection_id}` (read from stdin), or set {KEY_ENV}"
        ) from None
    return key, f"the secret {secrets.stripe_secret_name(connection_id)}"


class StripeApi:
    def __init__(
        self,
        base_url: str,
        key: SecretStr,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        max_wait_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        key_source: str = "the Stripe API key",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._key_source = key_source
        self._http = http or httpx.Client(timeout=timeout)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self.use = StripeUse()

    # --- the calls ---------------------------------------------------------------------------------

    def get_invoice(self, invoice_id: str, expand: Sequence[str] = ()) -> dict[str, Any]:
        """The invoice; ``expand`` names fields Stripe only fills on request (``PAYMENT_EXPANDS``:
        ``payments`` as a list of InvoicePayments, ``amount_paid_off_stripe``)."""
        params = [("expand[]", name) for name in expand]
        found = self._get(f"/v1/invoices/{invoice_id}", params)
        if found.get("object") != "invoice":
            raise StripeApiError(f"Stripe answered a {found.get('object')!r} for invoice {invoice_id}")
        return found

    def get_object(self, collection: str, object_id: str) -> dict[str, Any]:
        """One object of a list (``credit_notes``, ``refunds``) by id; ``StripeNotFound`` if none."""
        return self._get(f"/v1/{collection}/{object_id}", {})

    def list_invoices(
        self,
        *,
        created_gte: int | None = None,
        created_lte: int | None = None,
        status: str | None = None,
        page_size: int = PAGE_LIMIT,
    ) -> Iterator[list[dict[str, Any]]]:
        """The matching invoices, newest first, one page (a list of invoice objects) at a time,
        following ``starting_after`` while Stripe says ``has_more``."""
        extra = {"status": status} if status is not None else {}
        return self.list_objects(
            "invoices", created_gte=created_gte, created_lte=created_lte, page_size=page_size, **extra
        )

    def list_objects(
        self,
        collection: str,
        *,
        created_gte: int | None = None,
        created_lte: int | None = None,
        page_size: int = PAGE_LIMIT,
        **filters: str,
    ) -> Iterator[list[dict[str, Any]]]:
        """One of Stripe's lists (``invoices``, ``credit_notes``, ``refunds``), newest first, a page
        at a time, ``created[gte|lte]`` (Unix seconds) and any other filters applied, following
        ``starting_after`` while Stripe says ``has_more``."""
        params: dict[str, str] = {"limit": str(min(max(page_size, 1), PAGE_LIMIT)), **filters}
        if created_gte is not None:
            params["created[gte]"] = str(created_gte)
        if created_lte is not None:
            params["created[lte]"] = str(created_lte)
        return self._pages(f"/v1/{collection}", list(params.items()))

    def list_invoice_payments(self, invoice_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every InvoicePayment (``inpay_...``) of an invoice, following ``has_more``; ``status``
        (``open``, ``paid``, ``canceled``) keeps one status only."""
        extra = {"status": status} if status is not None else {}
        pages = self.list_objects(
            "invoice_payments",
            created_gte=None,
            created_lte=None,
            page_size=PAGE_LIMIT,
            invoice=invoice_id,
            **extra,
        )
        return [payment for page in pages for payment in page]

    # --- payouts (design two-way 3.5.2) ---------------------------------------------------------

    def get_payout(self, payout_id: str) -> dict[str, Any]:
        """The Payout (``po_...``): ``GET /v1/payouts/{id}``; ``StripeNotFound`` if there is none."""
        found = self._get(f"/v1/payouts/{payout_id}", {})
        if found.get("object") != "payout":
            raise StripeApiError(f"Stripe answered a {found.get('object')!r} for payout {payout_id}")
        return found

    def balance_transaction_pages(
        self, payout_id: str, *, starting_after: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The balance transactions paid out in an automatic payout, a page (of up to 100) at a
        time, each with its ``source`` expanded (the charge or refund it moved), following
        ``starting_after`` while Stripe says ``has_more``; ``starting_after`` resumes after a
        transaction already read. The list includes the payout's own ``type=payout`` transaction.
        For a manual payout Stripe cannot say, and the list is empty ("For automatic Stripe payouts
        only", stripe-python ``params/_balance_transaction_list_params.py``)."""
        params = [("payout", payout_id), ("limit", str(PAGE_LIMIT)), ("expand[]", "data.source")]
        if starting_after is not None:
            params.append(("starting_after", starting_after))
        for page in self._pages("/v1/balance_transactions", params):
            for transaction in page:
                if transaction.get("object") != "balance_transaction":
                    raise StripeApiError(
                        f"Stripe listed a {transaction.get('object')!r} among payout {payout_id}'s "
                        "balance transactions"
                    )
            yield page

    def list_balance_transactions(self, payout_id: str) -> list[dict[str, Any]]:
        """Every balance transaction of the payout, every page (``balance_transaction_pages``)."""
        return [transaction for page in self.balance_transaction_pages(payout_id) for transaction in page]

    def invoice_of_payment_intent(self, payment_intent: str) -> str | None:
        """The invoice (``in_...``) a PaymentIntent paid, from its InvoicePayment (``GET
        /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=pi_...``, design
        two-way 2.1); None when it paid no invoice (a charge made outside Invoicing). A
        PaymentIntent Stripe shows on two invoices is a ``StripeApiError``: no guess is made."""
        pages = self._pages(
            "/v1/invoice_payments",
            [
                ("payment[type]", "payment_intent"),
                ("payment[payment_intent]", payment_intent),
                ("limit", str(PAGE_LIMIT)),
            ],
        )
        invoices = {_id_of(payment.get("invoice")) for page in pages for payment in page} - {None}
        if len(invoices) > 1:
            raise StripeApiError(
                f"Stripe shows payment intent {payment_intent} on {len(invoices)} invoices: "
                f"{', '.join(sorted(i for i in invoices if i))}"
            )
        return next(iter(invoices), None)

    # --- the writes (payments back) --------------------------------------------------------------

    def pay_out_of_band(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        """Marks an open (or uncollectible) invoice paid outside Stripe for what remains due; no
        charge is made. Returns the invoice after it (``status: "paid"``)."""
        return self._invoice(
            self._post(f"/v1/invoices/{invoice_id}/pay", {"paid_out_of_band": True}, idempotency_key),
            invoice_id,
        )

    def report_payment(
        self,
        *,
        amount: int,
        currency: str,
        initiated_at: int,
        display_name: str,
        idempotency_key: str,
        payment_reference: str | None = None,
        customer: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        guaranteed_at: int | None = None,
        custom_type: str | None = None,
    ) -> dict[str, Any]:
        """Reports a payment made outside Stripe (``POST /v1/payment_records/report_payment``,
        design two-way 3.5.1 step 7.1): ``amount`` in the currency's minor units, guaranteed at
        ``guaranteed_at`` (default: ``initiated_at``), paid by a custom method shown as
        ``display_name``. Returns the PaymentRecord (``pr_...``), not yet on any invoice."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("a reported payment is a positive whole number of minor units")
        custom: dict[str, Any] = {"display_name": display_name, "type": custom_type}
        form: dict[str, Any] = {
            "amount_requested": {"currency": currency.lower(), "value": amount},
            "initiated_at": initiated_at,
            "outcome": "guaranteed",
            "guaranteed": {"guaranteed_at": initiated_at if guaranteed_at is None else guaranteed_at},
            "payment_method_details": {"type": "custom", "custom": custom},
            "customer_details": {"customer": customer} if customer else None,
            "description": description,
            "metadata": dict(metadata) if metadata else None,
        }
        if payment_reference is not None:
            form["processor_details"] = {"type": "custom", "custom": {"payment_reference": payment_reference}}
        found = self._post("/v1/payment_records/report_payment", form, idempotency_key)
        if found.get("object") != "payment_record":
            raise StripeApiError(f"Stripe answered a {found.get('object')!r} for a reported payment")
        return found

    def attach_payment(self, invoice_id: str, payment_record_id: str, idempotency_key: str) -> dict[str, Any]:
        """Attaches a reported payment to the invoice, which counts it towards ``amount_paid``
        (``paid`` once nothing remains). Returns the invoice after it."""
        return self._invoice(
            self._post(
                f"/v1/invoices/{invoice_id}/attach_payment",
                {"payment_record": payment_record_id},
                idempotency_key,
            ),
            invoice_id,
        )

    @staticmethod
    def _invoice(found: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        if found.get("object") != "invoice":
            raise StripeApiError(f"Stripe answered a {found.get('object')!r} for invoice {invoice_id}")
        return found

    # --- the HTTP --------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]]) -> dict[str, Any]:
        return self._send("GET", path, params=params)

    def _pages(self, path: str, params: Sequence[tuple[str, str]]) -> Iterator[list[dict[str, Any]]]:
        """One of Stripe's lists, a non-empty page at a time, following ``starting_after`` (the
        last id of each page) while Stripe says ``has_more``. Pairs, since ``expand[]`` repeats."""
        query = [pair for pair in params if pair[0] != "starting_after"]
        cursor = next((value for name, value in params if name == "starting_after"), None)
        while True:
            page = self._get(path, [*query, *((("starting_after", cursor),) if cursor is not None else ())])
            if page.get("object") != "list" or not isinstance(page.get("data"), list):
                raise StripeApiError(f"Stripe answered something other than a list for {path}")
            data: list[dict[str, Any]] = page["data"]
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            cursor = str(data[-1]["id"])

    def _post(self, path: str, form: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        """A form-encoded write, sent with ``Idempotency-Key`` on every attempt, so that a retry
        (429, 409, 5xx, timeout) is one effect at Stripe. The key is required: without it a
        retried write could act twice."""
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ValueError(
                f"a Stripe write needs an Idempotency-Key of 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )
        return self._send("POST", path, form=form_encode(form), idempotency_key=idempotency_key)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        form: list[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Stripe-Version": API_VERSION,
            "User-Agent": "invoice-sync-cli",
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        write = method == "POST"
        # Pairs, not a dict: ``expand[]`` repeats.
        query: list[tuple[str, str | int | float | bool | None]] = list(
            params.items() if isinstance(params, Mapping) else params or ()
        )
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            self.use.requests += 1
            try:
                if write:
                    response = self._http.post(
                        f"{self.base_url}{path}",
                        content=urlencode(form or []).encode(),
                        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
                    )
                else:
                    response = self._http.get(f"{self.base_url}{path}", params=query, headers=headers)
            except httpx.TransportError as exc:
                # The exception text may carry the request; only its class and the host are kept.
                failure: StripeApiError = StripeUnavailable(
                    f"Stripe API at {self.base_url} unreachable ({exc.__class__.__name__})"
                )
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                self.use.statuses[status] = self.use.statuses.get(status, 0) + 1
                if status < 400:
                    body: dict[str, Any] = response.json()
                    return body
                failure = self._error(response, path)
                # A write also waits out a lock (409); it is safe because the key travels with it.
                retryable = (StripeRateLimited, StripeUnavailable, *((StripeConflict,) if write else ()))
                if not isinstance(failure, retryable) or (write and _final(response)):
                    raise failure
                if status == 429:
                    self.use.throttled += 1
                delay = _retry_after(response) or self._backoff(attempt)
            if attempt == self.max_attempts or waited + delay > self.max_wait_seconds:
                raise failure
            self.use.retried += 1
            waited += delay
            self.use.waited_seconds += delay
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))

    def _error(self, response: httpx.Response, path: str) -> StripeApiError:
        status = response.status_code
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        details: dict[str, Any] = {
            "status": status,
            "code": _text(error.get("code")),
            "error_type": _text(error.get("type")),
            "param": _text(error.get("param")),
            "request_id": response.headers.get("Request-Id"),
        }
        # Stripe's own message is shown, except for authentication, where it echoes (part of) the key.
        message = _scrub(str(error.get("message") or ""), self._key)
        if status in (401, 403):
            what = "refused" if status == 401 else "lacks permission for"
            return StripeAuthError(
                f"Stripe {what} {self._key_source} ({status}): check it, or pass --stripe-key", **details
            )
        if status == 404:
            return StripeNotFound(message or f"Stripe has no {path}", **details)
        if status == 429:
            return StripeRateLimited(
                f"Stripe kept answering 429 (rate limited) for {path} after {self.max_attempts} attempts",
                **details,
            )
        if status == 409:
            return StripeConflict(f"Stripe answered 409 (conflict) for {path}: {message}", **details)
        if status >= 500:
            return StripeUnavailable(f"Stripe failed ({status}) for {path}: {message}", **details)
        if details["error_type"] == "idempotency_error":
            return StripeIdempotencyError(
                f"Stripe refused {path}: its idempotency key was first used with other parameters", **details
            )
        return StripeApiError(f"Stripe refused {path} ({status}): {message}", **details)


def _final(response: httpx.Response) -> bool:
    """Whether retrying a write in place is pointless: Stripe replayed the answer it saved under
    the key (a saved 500 comes back until the key is pruned), or said not to retry."""
    return bool(
        response.headers.get("Idempotent-Replayed", "").lower() == "true"
        or response.headers.get("Stripe-Should-Retry", "").lower() == "false"
    )


def _id_of(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or expanded into its object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(float(raw), 0.0) if raw is not None else None
    except ValueError:
        return None


def _scrub(text: str, key: SecretStr) -> str:
    secret = key.get_secret_value()
    return text.replace(secret, "****") if secret else text
