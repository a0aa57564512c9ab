"""A local Xero Accounting API (2.0) sandbox that speaks the subset of the real API the adapter uses.

It exists so the Xero adapter is exercised over real HTTP with Xero's own paths, the ``xero-tenant-id``
header, payload shapes (``/Date(ms+0000)/`` dates, PascalCase fields), ``summarizeErrors`` semantics,
ValidationException bodies, rotating refresh tokens with Xero's 30-minute grace window, the
``Idempotency-Key`` header and the per-tenant minute, day and concurrency limits; and so tests can
provoke the failures that are hard to get from a Xero demo company on demand (429s, 5xx, responses
lost after a commit, revoked or expired tokens).

Field names, enums and error shapes follow XeroAPI/Xero-OpenAPI ``xero_accounting.yaml``. Where Xero's
real wording of a validation message is not known, the message is marked ``# sandbox wording``.

Money inside the sandbox is ``Decimal`` end to end: request bodies are parsed with ``parse_float=Decimal``
and Decimals are written back as JSON numbers with (at least) two decimal places, never through float.

Payout deposits (design two-way 2.3, 6): ``BankTransactions`` (spend and receive money, a contact
required, lines coded to any account but a bank one) and ``BankTransfers`` (PUT creates, POST
deletes; each books a SPEND-TRANSFER and a RECEIVE-TRANSFER bank transaction); ``balances(tenant)``
is every bank account's balance from its payments, bank transactions and transfers, so a test can
see the clearing account return to zero. The seeded chart has a "Stripe Clearing" bank account
(091) and "Bank Fees" (404); ``seed_supplier(tenant)`` (control call ``POST
/_sandbox/organisations/<tenant>/suppliers`` ``{"name"}``) adds the "Stripe" supplier contact.

Webhooks (design two-way 2.3, 6): ``subscribe(tenant, url, webhook_key, intent_to_receive=False)``
(control API ``POST /_sandbox/organisations/<tenant>/webhooks``). Invoice and credit note creates and
updates, and every payment made or deleted (API or by hand) as its invoice's ``INVOICE UPDATE`` (Xero
has no payment category; whether a payment fires one is unknown for real Xero, so
``invoice_events_on_payment`` turns it off), are posted once the request succeeds, one body per
request, signed ``x-xero-signature`` = base64 HMAC-SHA256 of the raw body with the key.
``send_intent_to_receive`` / ``check_intent_to_receive`` play Xero's Intent-to-Receive check; a
subscription that failed it gets nothing. Differences from Xero: subscriptions per organisation,
not per app; short retries, never the 24-hour series that ends with the webhook disabled.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
import math
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_date
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from invoice_sync_ops.sandboxes.base import (
    BY_HAND_PAYMENTS,
    BY_HAND_REMOVALS,
    CENT,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    WEBHOOKS,
    ByHandPayment,
    GrantRefused,
    SandboxServer,
    TokenReader,
    Traffic,
    dumps,
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
from invoice_sync_ops.sandboxes.webhooks import base64_hmac_sha256, post

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "XeroSandbox", "dumps", "main"]

ACCESS_TOKEN_TTL = 1800
REFRESH_GRACE_SECONDS = 1800
REFRESH_TOKEN_TTL = 60 * 86400  # an unused refresh token expires after 60 days
IDEMPOTENCY_WINDOW_SECONDS = 360.0
MAX_IDEMPOTENCY_KEY = 128
MAX_ELEMENTS = 100
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_NUMBER_LENGTH = 255
APP_CALLS_PER_MINUTE = 10_000
DAY_SECONDS = 86400
SCOPE = "openid profile email accounting.transactions offline_access"
PROVIDER_NAME = "invoice-sync"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

QTY_PLACES = Decimal("0.0001")
RATE_ONE = Decimal("1.000000")

# URL segment (lowercase, Xero's paths are case-insensitive) -> canonical collection name.
COLLECTIONS = {
    name.lower(): name
    for name in (
        "Invoices",
        "Contacts",
        "Payments",
        "CreditNotes",
        "Accounts",
        "TaxRates",
        "Items",
        "Organisation",
        "BankTransactions",
        "BankTransfers",
    )
}
ID_FIELDS = {
    "Invoices": "InvoiceID",
    "Contacts": "ContactID",
    "Payments": "PaymentID",
    "CreditNotes": "CreditNoteID",
    "Accounts": "AccountID",
    "TaxRates": "TaxType",
    "Items": "ItemID",
    "Organisation": "OrganisationID",
    "BankTransactions": "BankTransactionID",
    "BankTransfers": "BankTransferID",
}
# A single GET also finds the document by its number (Xero documents this for Invoices).
ALT_KEYS = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber", "Items": "Code"}
RESPONSE_KEYS = {"Organisation": "Organisations"}
WRITABLE = {"Invoices", "Contacts", "Payments", "CreditNotes", "BankTransactions", "BankTransfers"}
# PUT /BankTransfers takes no summarizeErrors (xero_accounting.yaml createBankTransfer): always summarised.
ALWAYS_SUMMARIZED = {"BankTransfers"}
# Lists without paging come back as summaries: Xero only returns line items on paged or single GETs.
SUMMARY_WITHOUT_PAGING = {"Invoices", "CreditNotes"}

INVOICE_TYPES = ("ACCREC", "ACCPAY")
CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
SALES_TYPES = {"ACCREC", "ACCRECCREDIT"}
DOC_STATUSES = ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED")
CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
CLOSED_STATUSES = ("DELETED", "VOIDED")
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
CONTACT_STATUSES = ("ACTIVE", "ARCHIVED")
# xero_accounting.yaml BankTransaction.Type. The API creates SPEND and RECEIVE (spend / receive
# money); the -TRANSFER pair is what a BankTransfer makes; overpayments and prepayments are not modelled.
BANK_TRANSACTION_TYPES = (
    "RECEIVE",
    "RECEIVE-OVERPAYMENT",
    "RECEIVE-PREPAYMENT",
    "SPEND",
    "SPEND-OVERPAYMENT",
    "SPEND-PREPAYMENT",
    "RECEIVE-TRANSFER",
    "SPEND-TRANSFER",
)
CREATABLE_BANK_TYPES = ("SPEND", "RECEIVE")
BANK_CLOSED_STATUSES = ("DELETED", "VOIDED")  # BankTransaction.Status: AUTHORISED, DELETED, VOIDED
# Payment types whose money enters the bank account (the others leave it).
PAYMENTS_IN = {"ACCRECPAYMENT", "APCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT"}
CONTACT_FIELDS = (
    "ContactNumber",
    "AccountNumber",
    "FirstName",
    "LastName",
    "CompanyNumber",
    "EmailAddress",
    "TaxNumber",
    "DefaultCurrency",
    "Addresses",
    "Phones",
    "ContactPersons",
)

NOT_VALID_FOR_MODIFICATION = "Invoice not of valid status for modification"
# Webhooks (design two-way 2.3): the header, the categories a write announces, and the
# Intent-to-Receive series a subscription asking for one is checked with (good, bad).
SUPPLIERS = "suppliers"  # the control call that seeds a supplier contact (the payout's "Stripe")
SIGNATURE_HEADER = "x-xero-signature"
EVENT_CATEGORY = {"Invoices": "INVOICE", "CreditNotes": "CREDITNOTE"}
ITR_SERIES = (3, 2)
ENTROPY_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Invalid(Exception):
    """Validation errors on one element: it is echoed back with ``ValidationErrors``."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class _ApiError(Exception):
    """A whole-request error, rendered as is (status, body, content type)."""

    def __init__(self, status: int, body: Any, content_type: str = JSON_TYPE) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.body = body
        self.content_type = content_type


def _not_found() -> _ApiError:
    # Xero answers an unknown id with plain text, not JSON (XeroAPI/Xero-OpenAPI#163).
    return _ApiError(404, NOT_FOUND_TEXT, TEXT_TYPE)


def _problem(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    return {
        "Type": None,
        "Title": title or HTTPStatus(status).phrase,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


def _validation_exception(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": message})


def _post_data_invalid(message: str = "Invalid Json data") -> _ApiError:
    return _ApiError(400, {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message})


def _query_error(message: str) -> _ApiError:
    return _ApiError(400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message})


# --------------------------------------------------------------------------------------------------
# Values: money, numbers, dates


def _text(value: Decimal) -> str:
    return format(money(value), "f")


def _dec(value: Any, name: str) -> Decimal:
    result = parse_number(value)
    if result is None:
        raise _Invalid(f"{name} must be a number")  # sandbox wording
    return result


def _opt_dec(element: dict[str, Any], name: str) -> Decimal | None:
    value = element.get(name)
    return None if value is None else _dec(value, name)


_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def _parse_date(value: Any, name: str) -> date:
    """Accept ``2026-01-01``, ISO datetimes and Xero's own ``/Date(ms+0000)/``."""
    if isinstance(value, str):
        match = _MS_DATE.fullmatch(value.strip())
        if match is not None:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise _Invalid(f"{name} is not a valid date")  # sandbox wording


def _ms_of(value: Any) -> int | None:
    match = _MS_DATE.fullmatch(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _date_fields(name: str, day: date) -> dict[str, str]:
    ms = calendar.timegm(day.timetuple()) * 1000
    return {f"{name}String": f"{day.isoformat()}T00:00:00", name: f"/Date({ms}+0000)/"}


def _stored_date(obj: dict[str, Any], name: str) -> date | None:
    value = obj.get(name)
    return None if value is None else _parse_date(value, name)


def _key(value: Any) -> str:
    return str(value).strip().casefold()


# --------------------------------------------------------------------------------------------------
# The ``where`` filter (the subset of Xero's LINQ-like syntax the adapter needs)

_WHERE_TOKEN = re.compile(
    r'\s*(?:(?P<guid>Guid\("[^"]*"\))|(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|&&|\|\||\(|\))'
    r"|(?P<word>[A-Za-z_][\w.]*)|(?P<num>-?\d+(?:\.\d+)?))"
)

_Predicate = Callable[[dict[str, Any]], bool]


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = next((value for key, value in obj.items() if key.lower() == part.lower()), None)
    return obj


def _equals(actual: Any, kind: str, wanted: str) -> bool:
    if kind == "null":
        return actual is None
    if kind == "bool":
        return actual is (wanted == "true")
    if actual is None or isinstance(actual, bool):
        return False
    if kind == "guid":
        return str(actual).lower() == wanted.lower()
    if kind == "num":
        try:
            return Decimal(str(actual)) == Decimal(wanted)
        except InvalidOperation:
            return False
    return str(actual) == wanted


class _WhereParser(TokenReader):
    def __init__(self, text: str) -> None:
        super().__init__(
            _WHERE_TOKEN,
            text.strip(),
            _query_error,
            bad_character="Unexpected character at position {position} in where clause",
            unexpected_end="Unexpected end of where clause",
        )

    def _joiner(self, symbol: str, word: str) -> bool:
        token = self._peek()
        if token is not None and (
            token == ("op", symbol) or (token[0] == "word" and token[1].upper() == word)
        ):
            self.pos += 1
            return True
        return False

    def parse(self) -> _Predicate:
        predicate = self._or()
        if self._peek() is not None:
            raise _query_error(f"Unexpected token '{self._next()[1]}' in where clause")
        return predicate

    def _or(self) -> _Predicate:
        parts = [self._and()]
        while self._joiner("||", "OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda obj: any(part(obj) for part in parts))

    def _and(self) -> _Predicate:
        parts = [self._atom()]
        while self._joiner("&&", "AND"):
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else (lambda obj: all(part(obj) for part in parts))

    def _atom(self) -> _Predicate:
        kind, text = self._next()
        if (kind, text) == ("op", "("):
            inner = self._or()
            if self._next() != ("op", ")"):
                raise _query_error("Expected ')' in where clause")
            return inner
        if kind != "word":
            raise _query_error(f"Expected a field name but found '{text}'")
        path = text
        op_kind, op = self._next()
        if op_kind != "op" or op not in ("==", "!="):
            raise _query_error(f"Operator '{op}' is not supported in where clause")
        value_kind, value = self._next()
        if value_kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value_kind == "guid":
            value = value[6:-2]
        elif value_kind == "word" and value.lower() in ("true", "false", "null"):
            value = value.lower()
            value_kind = "null" if value == "null" else "bool"
        elif value_kind != "num":
            raise _query_error(f"Expected a value but found '{value}'")
        negate = op == "!="

        def predicate(obj: dict[str, Any]) -> bool:
            return _equals(_lookup(obj, path), value_kind, value) != negate

        return predicate


# --------------------------------------------------------------------------------------------------
# Organisation state


@dataclass
class _Replay:
    stored_at: float
    fingerprint: str
    status: int
    body: bytes
    content_type: str


@dataclass
class _Org(Traffic):
    tenant_id: str
    client_id: str
    client_secret: str
    name: str
    base_currency: str
    refresh_token: str | None
    refresh_issued_at: float
    connection_id: str
    auth_event_id: str
    connected_at: str
    # old refresh token -> (when it was rotated, the token response it produced), for the grace window
    rotated: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {"invoice": 1, "credit_note": 1})
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    idempotency: dict[str, _Replay] = field(default_factory=dict)
    day: deque[float] = field(default_factory=deque)  # when the calls of the last 24 hours came in
    # (collection, CREATE | UPDATE, id) the request being served changed; sent once it succeeds.
    changes: list[tuple[str, str, str]] = field(default_factory=list)

    def table(self, collection: str) -> dict[str, dict[str, Any]]:
        return self.store.setdefault(collection, {})


@dataclass(frozen=True)
class _Write:
    """How the request asked for an element to be written."""

    method: str
    target: dict[str, Any] | None  # the document named in the path (POST /Invoices/{id})
    unitdp: int


@dataclass
class _Priced:
    lines: list[dict[str, Any]]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    discount: Decimal


@dataclass(frozen=True)
class _Payable:
    """A kind of document a payment settles: an invoice (money in) or a credit note (money paid
    out, Xero's refund). One payment path serves both; this says where each keeps its figures."""

    collection: str
    ref: str  # the payment's field that names the document
    id_field: str
    number_field: str
    outstanding: str  # what a payment lowers: AmountDue, RemainingCredit
    paid: str | None  # what a payment raises (Xero's credit notes keep no AmountPaid)
    label: str


INVOICE = _Payable("Invoices", "Invoice", "InvoiceID", "InvoiceNumber", "AmountDue", "AmountPaid", "Invoice")
CREDIT_NOTE = _Payable(
    "CreditNotes", "CreditNote", "CreditNoteID", "CreditNoteNumber", "RemainingCredit", None, "Credit note"
)
PAYABLES = (INVOICE, CREDIT_NOTE)
# Xero's PaymentType follows the document paid: a sales credit note paid out is ARCREDITPAYMENT.
PAYMENT_TYPES = {
    "ACCREC": "ACCRECPAYMENT",
    "ACCPAY": "ACCPAYPAYMENT",
    "ACCRECCREDIT": "ARCREDITPAYMENT",
    "ACCPAYCREDIT": "APCREDITPAYMENT",
}


_Writer = Callable[[_Org, dict[str, Any], _Write], dict[str, Any]]


class XeroSandbox(SandboxServer[_Org]):
    """An in-memory Xero Accounting API server. Thread-safe: one lock guards all organisation state."""

    thread_name = "xero-sandbox"
    logged_prefixes = ("/api.xro/", "/connect/", "/connections", "/Connections")
    json_type = JSON_TYPE
    control_root = "organisations"
    seed_key = "tenant_id"
    tenant_noun = "tenant"
    authorize_path = "/identity/connect/authorize"  # https://login.xero.com/identity/connect/authorize
    supports_pkce = True
    tenants_per_grant = None  # the person ticks every organisation the app may reach

    def __init__(
        self,
        *,
        calls_per_minute: int = 60,
        max_concurrent: int = 5,
        calls_per_day: int = 5000,
        clock: Callable[[], float] = time.time,
        latency_seconds: float = 0.0,
        app_calls_per_minute: int = APP_CALLS_PER_MINUTE,
        idempotency_window_seconds: float = IDEMPOTENCY_WINDOW_SECONDS,
    ) -> None:
        self.calls_per_minute = calls_per_minute
        self.max_concurrent = max_concurrent
        self.calls_per_day = calls_per_day
        self.app_calls_per_minute = app_calls_per_minute
        self.idempotency_window_seconds = idempotency_window_seconds
        # Whether a payment's change to an invoice fires an INVOICE UPDATE webhook. The sandbox says
        # yes (so the fast path is tested); for real Xero it is an open question (design 2.3).
        self.invoice_events_on_payment = True
        self._event_sequence = 0
        # access token -> (the tenants it was granted for, expiry): one token can cover several orgs
        self._access: dict[str, tuple[tuple[str, ...], float]] = {}
        self._app_minute: deque[float] = deque()
        api = "/api.xro/2.0"
        super().__init__(
            clock=clock,
            latency_seconds=latency_seconds,
            rules=[
                Rule("/connect/token", endpoint="token", methods=["POST"]),
                Rule("/connections", endpoint="connections", methods=["GET"]),
                Rule("/Connections", endpoint="connections", methods=["GET"]),
                Rule(f"{api}/<collection>", endpoint="collection", methods=["GET", "PUT", "POST"]),
                Rule(f"{api}/<collection>/<obj_id>", endpoint="object", methods=["GET", "POST"]),
                Rule(f"{api}/<collection>/<obj_id>/<sub>", endpoint="sub", methods=["PUT"]),
            ],
        )

    # ---------------------------------------------------------------------------------------------
    # Test controls

    def seed_organisation(
        self,
        tenant_id: str,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        name: str = "Demo Company (Global)",
        base_currency: str = "USD",
    ) -> None:
        """Create (or reset) an organisation with a small chart of accounts, tax rates and items."""
        now = self._clock()
        org = _Org(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            name=name,
            base_currency=base_currency.upper(),
            refresh_token=refresh_token,
            refresh_issued_at=now,
            connection_id=str(uuid.uuid4()),
            auth_event_id=str(uuid.uuid4()),
            connected_at=datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0"),
        )
        updated = self._updated()
        accounts = [
            ("200", "Sales", "REVENUE", "REVENUE", "OUTPUT2", False),
            ("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT2", False),
            ("090", "Business Bank Account", "BANK", "ASSET", "NONE", True),
            # A bank account used as the Stripe clearing account payments land in (design 2.3), and
            # the expense account payout fees post to (404 "Bank Fees", as in Xero's demo company).
            ("091", "Stripe Clearing", "BANK", "ASSET", "NONE", True),
            ("400", "Advertising", "EXPENSE", "EXPENSE", "INPUT", False),
            ("404", "Bank Fees", "EXPENSE", "EXPENSE", "NONE", False),
        ]
        for code, acc_name, acc_type, acc_class, tax_type, payments in accounts:
            account_id = str(uuid.uuid4())
            account: dict[str, Any] = {
                "AccountID": account_id,
                "Code": code,
                "Name": acc_name,
                "Status": "ACTIVE",
                "Type": acc_type,
                "TaxType": tax_type,
                "Class": acc_class,
                "EnablePaymentsToAccount": payments,
                "ShowInExpenseClaims": False,
                "BankAccountType": "BANK" if acc_type == "BANK" else "",
                "CurrencyCode": org.base_currency,
                "ReportingCode": acc_class[:3],
                "HasAttachments": False,
                "UpdatedDateUTC": updated,
                "AddToWatchlist": False,
            }
            if acc_type == "BANK":
                account["BankAccountNumber"] = "132435465"
            org.table("Accounts")[account_id] = account
        rates = [
            ("OUTPUT", "Tax on Sales", "OUTPUT", Decimal("15.0000"), "sales"),
            ("OUTPUT2", "Sales Tax 8.25%", "OUTPUT", Decimal("8.2500"), "sales"),
            ("INPUT", "Tax on Purchases", "INPUT", Decimal("15.0000"), "purchases"),
            ("NONE", "Tax Exempt", "NONE", Decimal("0.0000"), "both"),
        ]
        for tax_type, rate_name, report, rate, side in rates:
            org.tax_rates[tax_type] = rate
            org.table("TaxRates")[tax_type] = {
                "Name": rate_name,
                "TaxType": tax_type,
                "ReportTaxType": report,
                "CanApplyToAssets": side != "sales",
                "CanApplyToEquity": side != "sales",
                "CanApplyToExpenses": side != "sales",
                "CanApplyToLiabilities": side != "sales",
                "CanApplyToRevenue": side != "purchases",
                "DisplayTaxRate": rate,
                "EffectiveRate": rate,
                "Status": "ACTIVE",
                "TaxComponents": [
                    {"Name": rate_name, "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}
                ],
            }
        items = [
            ("CONSULT", "Consulting", "Consulting services", Decimal("150.00"), "200"),
            ("HOSTING", "Hosting", "Monthly hosting", Decimal("49.99"), "260"),
        ]
        for code, item_name, description, price, account_code in items:
            item_id = str(uuid.uuid4())
            org.table("Items")[item_id] = {
                "ItemID": item_id,
                "Code": code,
                "Name": item_name,
                "Description": description,
                "IsSold": True,
                "IsPurchased": False,
                "IsTrackedAsInventory": False,
                "SalesDetails": {"UnitPrice": price, "AccountCode": account_code, "TaxType": "OUTPUT2"},
                "PurchaseDetails": {},
                "UpdatedDateUTC": updated,
            }
        organisation_id = str(uuid.uuid4())
        org.table("Organisation")[organisation_id] = {
            "OrganisationID": organisation_id,
            "APIKey": secrets.token_hex(15).upper(),
            "Name": name,
            "LegalName": name,
            "PaysTax": True,
            "Version": "GLOBAL",
            "OrganisationType": "COMPANY",
            "BaseCurrency": org.base_currency,
            "CountryCode": "US" if org.base_currency == "USD" else org.base_currency[:2],
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUAL",
            "SalesTaxPeriod": "MONTHLY",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": updated,
            "OrganisationEntityType": "COMPANY",
            "ShortCode": "!" + secrets.token_hex(3),
            "Edition": "BUSINESS",
            "Class": "DEMO",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }
        for collection in (
            "Contacts",
            "Invoices",
            "Payments",
            "CreditNotes",
            "BankTransactions",
            "BankTransfers",
        ):
            org.table(collection)
        with self._lock:
            self._tenants[tenant_id] = org

    def documents(self, tenant_id: str, collection: str) -> list[dict[str, Any]]:
        """Deep copies of the stored objects (Decimals for money), in creation order, as served."""
        with self._lock:
            org = self._tenant(tenant_id)
            name = COLLECTIONS.get(collection.lower())
            if name is None:
                raise KeyError(f"unknown collection {collection}")
            return copy.deepcopy(list(org.table(name).values()))

    def inject_status(self, tenant_id: str, status: int, count: int = 1) -> None:
        self._inject_status(tenant_id, status, count)

    def seed_supplier(self, tenant_id: str, name: str = "Stripe") -> str:
        """The id of the active contact ``name`` (the "Stripe" supplier payout fees are spent to),
        created as a supplier if absent. Not part of the default seed, whose contact list is empty."""
        with self._lock:
            org = self._tenant(tenant_id)
            contacts = org.table("Contacts")
            for contact in contacts.values():
                if contact["ContactStatus"] == "ACTIVE" and _key(contact["Name"]) == _key(name):
                    return str(contact["ContactID"])
            contact_id = str(uuid.uuid4())
            contacts[contact_id] = {
                "ContactID": contact_id,
                "ContactStatus": "ACTIVE",
                "Name": name,
                "Addresses": [],
                "Phones": [],
                "ContactGroups": [],
                "ContactPersons": [],
                "IsSupplier": True,
                "IsCustomer": False,
                "HasAttachments": False,
                "HasValidationErrors": False,
                "UpdatedDateUTC": self._updated(),
            }
            return contact_id

    def balances(self, tenant_id: str) -> dict[str, Decimal]:
        """Each bank account's balance (by code) as its transactions make it: payments in and out
        (refunds paid out of credit notes), spend and receive money, and both sides of every bank
        transfer; deleted or voided ones left out. What Xero's Bank Summary report shows."""
        with self._lock:
            org = self._tenant(tenant_id)
            totals = {
                a["Code"]: Decimal("0.00") for a in org.table("Accounts").values() if a["Type"] == "BANK"
            }
            codes = {a["AccountID"]: a["Code"] for a in org.table("Accounts").values()}
            for payment in org.table("Payments").values():
                if payment["Status"] != "AUTHORISED":
                    continue
                code = codes.get(payment["Account"]["AccountID"])
                if code in totals:
                    sign = 1 if payment["PaymentType"] in PAYMENTS_IN else -1
                    totals[code] += sign * payment["BankAmount"]
            for txn in org.table("BankTransactions").values():
                code = txn["BankAccount"]["Code"]
                if txn["Status"] in BANK_CLOSED_STATUSES or code not in totals:
                    continue
                totals[code] += txn["Total"] if txn["Type"].startswith("RECEIVE") else -txn["Total"]
            return totals

    def lose_responses(self, tenant_id: str, count: int = 1, lost_as: str = "gateway") -> None:
        self._lose_responses(tenant_id, count, lost_as)

    def revoke_refresh_token(self, tenant_id: str) -> None:
        """The refresh token and every rotated one die (as on /connect/revocation); access tokens live on."""
        with self._lock:
            org = self._tenant(tenant_id)
            org.refresh_token = None
            org.rotated.clear()

    def expire_access_tokens(self, tenant_id: str) -> None:
        with self._lock:
            self._tenant(tenant_id)
            now = self._clock()
            for token, (tenants, expiry) in list(self._access.items()):
                if tenant_id in tenants:
                    self._access[token] = (tenants, min(expiry, now))

    def forget_idempotency_keys(self, tenant_id: str) -> None:
        """Empties the ``Idempotency-Key`` cache, as if Xero's window had passed for every key."""
        with self._lock:
            self._tenant(tenant_id).idempotency.clear()

    # ---------------------------------------------------------------------------------------------
    # Helpers

    def _seed_tenant(self, tenant_id: str, options: dict[str, Any]) -> None:
        self.seed_organisation(tenant_id, **options)

    def _control_actions(self) -> dict[str, Callable[[str], None]]:
        return {**super()._control_actions(), "forget-idempotency-keys": self.forget_idempotency_keys}

    def _control_calls(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        return {
            **super()._control_calls(),
            WEBHOOKS: self._subscribe_call,
            BY_HAND_PAYMENTS: self._payment_by_hand_call,
            BY_HAND_REMOVALS: lambda tenant_id, body: self.void_payment_by_hand(
                tenant_id, removed_payment_id(body)
            ),
            # POST /_sandbox/organisations/<tenant>/suppliers {"name": "Stripe"} -> {"ContactID"}
            SUPPLIERS: lambda tenant_id, body: {
                "ContactID": self.seed_supplier(tenant_id, str(body.get("name") or "Stripe"))
            },
        }

    # ---------------------------------------------------------------------------------------------
    # Webhooks

    def subscribe(
        self,
        tenant_id: str,
        url: str,
        key: str,
        *,
        format: str | None = None,
        intent_to_receive: bool = False,
    ) -> dict[str, Any]:
        """Send the organisation's INVOICE and CREDITNOTE events to ``url`` signed with the webhook
        ``key``. With ``intent_to_receive``, first run Xero's Intent-to-Receive check (3 correctly
        and 2 wrongly signed empty posts, shuffled): the subscription only receives events if it
        passed (``itr_passed`` in the answer), as Xero keeps a failing one inactive."""
        passed = self.check_intent_to_receive(url, key) if intent_to_receive else None
        with self._lock:
            self._tenant(tenant_id)
        if format is not None:
            raise ValueError("this sandbox sends one webhook format: leave format out")
        if passed is None:
            return self.webhooks.subscribe(tenant_id, url, key).view()
        return self.webhooks.subscribe(tenant_id, url, key, itr_passed=passed).view()

    def _subscribe_call(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("key", body.get("secret"))
        if not body.get("url") or not key:
            raise ValueError("url and key are required")
        return self.subscribe(
            tenant_id, str(body["url"]), str(key), intent_to_receive=bool(body.get("intent_to_receive"))
        )

    @staticmethod
    def intent_to_receive_body() -> bytes:
        """An Intent-to-Receive post: no events, sequences 0, fresh entropy."""
        entropy = "".join(secrets.choice(ENTROPY_LETTERS) for _ in range(20))
        document = {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": entropy}
        return json.dumps(document, separators=(",", ":")).encode()

    def send_intent_to_receive(self, url: str, key: str, *, good: bool = True) -> int:
        """POST one Intent-to-Receive body to ``url``, signed with ``key`` (``good``) or with
        another key, and return the status the endpoint answered (0: no answer). Synchronous: a
        test asserts 200 for a good one and 401 for a bad one."""
        return self._intent_to_receive(url, key, good=good)[0]

    def check_intent_to_receive(
        self, url: str, key: str, *, good: int = ITR_SERIES[0], bad: int = ITR_SERIES[1]
    ) -> bool:
        """Xero's check: every correctly signed post answered 200 with no body and no cookie, every
        wrongly signed one 401."""
        series = [True] * good + [False] * bad
        secrets.SystemRandom().shuffle(series)
        passed = True
        for signed in series:
            status, answered_body, cookie = self._intent_to_receive(url, key, good=signed)
            if signed:
                passed &= status == 200 and not answered_body and not cookie
            else:
                passed &= status == 401
        return passed

    def _intent_to_receive(self, url: str, key: str, *, good: bool) -> tuple[int, bytes, bool]:
        body = self.intent_to_receive_body()
        signing_key = key if good else secrets.token_urlsafe(32)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: base64_hmac_sha256(body, signing_key),
        }
        answer = post(url, body, headers, timeout=self.webhooks.timeout)
        return answer.status, answer.body, "set-cookie" in answer.headers

    def _changed(self, org: _Org, collection: str, event_type: str, obj_id: str) -> None:
        """Note a change the current request made; ``_announce`` sends it once the request succeeds."""
        if collection in EVENT_CATEGORY and all((c, i) != (collection, obj_id) for c, _, i in org.changes):
            org.changes.append((collection, event_type, obj_id))  # one event per object and request

    def _announce(self, org: _Org) -> None:
        """One webhook body per subscriber with the events the request made, signed. Under the lock."""
        changes, org.changes = org.changes, []
        if not changes:
            return
        stamp = self._now()
        event_date = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"
        base = self.base_url or "https://api.xero.com"
        events = [
            {
                "resourceUrl": f"{base}/api.xro/2.0/{collection}/{obj_id}",
                "resourceId": obj_id,
                "eventDateUtc": event_date,
                "eventType": event_type,
                "eventCategory": EVENT_CATEGORY[collection],
                "tenantId": org.tenant_id,
                "tenantType": "ORGANISATION",
            }
            for collection, event_type, obj_id in changes
        ]

        def build(subscription: Any) -> tuple[bytes, dict[str, str]] | None:
            if subscription.options.get("itr_passed") is False:
                return None  # Xero does not send to a subscription that failed its check
            first = self._event_sequence + 1
            self._event_sequence += len(events)
            document = {
                "events": events,
                "firstEventSequence": first,
                "lastEventSequence": self._event_sequence,
                "entropy": "".join(secrets.choice(ENTROPY_LETTERS) for _ in range(20)),
            }
            body = json.dumps(document, separators=(",", ":")).encode()
            return body, {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: base64_hmac_sha256(body, subscription.key),
            }

        label = ",".join(f"{EVENT_CATEGORY[c]}.{t}" for c, t, _ in changes)
        self._emit(org.tenant_id, label, build)

    def _payment_by_hand_call(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = ByHandPayment.from_body(body)
        return self.record_payment_by_hand(
            tenant_id,
            wanted.invoice_id,
            wanted.amount,
            paid_on=wanted.paid_on,
            reference=wanted.reference,
            note=wanted.note,
            account=wanted.account,
        )

    def record_payment_by_hand(
        self,
        tenant_id: str,
        invoice_id: str,
        amount: Decimal,
        *,
        paid_on: date | None = None,
        reference: str | None = None,
        note: str | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        """A person recording a payment in Xero (or matching a bank-feed line to an invoice): an
        ACCRECPAYMENT of ``amount`` on the invoice into bank account ``account`` (a code; none: the
        organisation's first bank account), with no invoice-sync marker. Xero keeps one text field
        on a payment, so ``Reference`` is the reference, else the note. It goes through the API's own
        write: AmountDue, the invoice's Payments and Status and both UpdatedDateUTC move as Xero
        moves them, and what Xero would refuse raises ``ValueError``. Returns the Payment as served."""
        with self._lock:
            org = self._tenant(tenant_id)
            if str(invoice_id) not in org.table("Invoices"):
                raise KeyError(f"invoice {invoice_id}")
            code = account or next(
                (a["Code"] for a in org.table("Accounts").values() if a.get("Type") == "BANK"), ""
            )
            element: dict[str, Any] = {
                "Invoice": {"InvoiceID": str(invoice_id)},
                "Account": {"Code": code},
                "Amount": amount,
                "Date": (paid_on or self._today()).isoformat(),
                "Reference": reference or note or "",
            }
            try:
                payment = self._write_payment(org, element, _Write(method="PUT", target=None, unitdp=2))
            except _Invalid as invalid:
                org.changes.clear()
                raise ValueError("Xero: " + "; ".join(invalid.messages)) from invalid
            self._announce(org)
            return copy.deepcopy(payment)

    def void_payment_by_hand(self, tenant_id: str, payment_id: str) -> dict[str, Any]:
        """A person removing a payment in Xero (its only undo: Status DELETED): the invoice owes
        the money again and both UpdatedDateUTC move. Returns the deleted Payment."""
        with self._lock:
            org = self._tenant(tenant_id)
            payment = org.table("Payments").get(str(payment_id))
            if payment is None:
                raise KeyError(f"payment {payment_id}")
            try:
                deleted = self._delete_payment(org, {"Status": "DELETED"}, payment)
            except _Invalid as invalid:
                org.changes.clear()
                raise ValueError("Xero: " + "; ".join(invalid.messages)) from invalid
            self._announce(org)
            return copy.deepcopy(deleted)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _today(self) -> date:
        return self._now().date()

    def _updated(self) -> str:
        return f"/Date({round(self._clock() * 1000)}+0000)/"

    def _stamp(self, obj: dict[str, Any]) -> None:
        obj["UpdatedDateUTC"] = self._updated()

    def _envelope(self, collection: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": f"/Date({round(self._clock() * 1000)})/",
            RESPONSE_KEYS.get(collection, collection): items,
        }

    # ---------------------------------------------------------------------------------------------
    # WSGI

    def _unrouted(self, request: Request, exc: HTTPException) -> Response:
        if request.path.startswith("/api.xro/") and exc.code == 404:
            return Response(NOT_FOUND_TEXT, 404, content_type=TEXT_TYPE)
        return super()._unrouted(request, exc)

    def _route(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        if endpoint == "token":
            return self._token(request)
        if endpoint == "connections":
            return self._connections(request)
        return self._api(request, endpoint, {key: str(value) for key, value in args.items()})

    # ---------------------------------------------------------------------------------------------
    # OAuth 2 (identity.xero.com) and /connections

    def _token(self, request: Request) -> Response:
        auth = request.authorization
        if auth is not None and auth.type == "basic" and auth.username:
            client_id, client_secret = auth.username, auth.password or ""
        else:
            client_id = request.form.get("client_id", "")
            client_secret = request.form.get("client_secret", "")
        grant_type = request.form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return self._json({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            orgs = [
                org
                for org in self._tenants.values()
                if client_id
                and secrets.compare_digest(org.client_id, client_id)
                and secrets.compare_digest(org.client_secret, client_secret)
            ]
            # A PKCE client has no secret to present: the verifier stands in for it.
            public = (
                grant_type == "authorization_code" and not client_secret and "code_verifier" in request.form
            )
            if not orgs and not public:
                return self._json({"error": "invalid_client"}, 400)
            now = self._clock()
            if grant_type == "authorization_code":
                try:
                    granted = self._redeem_code(request.form, client_id)
                except GrantRefused as refused:
                    return self._json({"error": refused.error, "error_description": refused.description}, 400)
                return self._json(self._issue_tokens(granted, now))
            presented = request.form.get("refresh_token", "")
            for org in orgs:
                if org.refresh_token is not None and secrets.compare_digest(org.refresh_token, presented):
                    if now - org.refresh_issued_at > REFRESH_TOKEN_TTL:
                        return self._json({"error": "invalid_grant"}, 400)
                    return self._json(self._rotate(presented, now))
                grace = org.rotated.get(presented)
                if grace is not None and now - grace[0] <= REFRESH_GRACE_SECONDS:
                    # Within the grace window the old token answers with the very token set it produced,
                    # so a client that lost the response can still recover it.
                    return self._json(grace[1])
            return self._json({"error": "invalid_grant"}, 400)

    def _issue_tokens(self, orgs: list[_Org], now: float) -> dict[str, Any]:
        """One token set for every organisation of the grant (Xero's tokens are the person's, not an
        organisation's); under the lock."""
        access = "xero-at-" + secrets.token_urlsafe(48)
        self._access[access] = (tuple(org.tenant_id for org in orgs), now + ACCESS_TOKEN_TTL)
        refresh = "xero-rt-" + secrets.token_urlsafe(32)
        for org in orgs:
            org.refresh_token = refresh
            org.refresh_issued_at = now
        return {
            "access_token": access,
            "expires_in": ACCESS_TOKEN_TTL,
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": SCOPE,
        }

    def _rotate(self, presented: str, now: float) -> dict[str, Any]:
        orgs = [org for org in self._tenants.values() if org.refresh_token == presented]
        body = self._issue_tokens(orgs, now)
        for org in orgs:
            org.rotated = {
                token: entry
                for token, entry in org.rotated.items()
                if now - entry[0] <= REFRESH_GRACE_SECONDS
            }
            org.rotated[presented] = (now, body)
        return body

    def _bearer(self, request: Request) -> tuple[tuple[str, ...], Response | None]:
        """The tenants the bearer token was issued for, or a 401 response."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        entry = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None:
            body = _problem(401, "TokenInvalid: the access token is not valid", "Unauthorized")
            return (), self._json(body, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        tenants, expiry = entry
        if expiry <= self._clock():
            stamp = datetime.fromtimestamp(expiry, tz=UTC).strftime("%m/%d/%Y %H:%M:%S")
            body = _problem(401, f"TokenExpired: token expired at {stamp}", "Unauthorized")
            return (), self._json(body, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return tenants, None

    def _connections(self, request: Request) -> Response:
        with self._lock:
            tenants, failure = self._bearer(request)
            if failure is not None:
                return failure
            orgs = [self._tenants[tenant] for tenant in tenants if tenant in self._tenants]
            return self._json(
                [
                    {
                        "id": org.connection_id,
                        "authEventId": org.auth_event_id,
                        "tenantId": org.tenant_id,
                        "tenantType": "ORGANISATION",
                        "tenantName": org.name,
                        "createdDateUtc": org.connected_at,
                        "updatedDateUtc": org.connected_at,
                    }
                    for org in orgs
                ]
            )

    # ---------------------------------------------------------------------------------------------
    # The Accounting API: auth, limits, faults

    def _limit_headers(self, org: _Org) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(max(0, self.calls_per_day - len(org.day))),
            "X-MinLimit-Remaining": str(max(0, self.calls_per_minute - len(org.minute))),
            "X-AppMinLimit-Remaining": str(max(0, self.app_calls_per_minute - len(self._app_minute))),
        }

    def _throttle(self, org: _Org, now: float) -> tuple[str, int] | None:
        """The limit a new call would break (problem, Retry-After seconds), or None."""
        expire_window(org.minute, now)
        expire_window(org.day, now, DAY_SECONDS)
        expire_window(self._app_minute, now)
        if len(org.day) >= self.calls_per_day:
            return "day", retry_after(org.day, now, DAY_SECONDS)
        if len(self._app_minute) >= self.app_calls_per_minute:
            return "appminute", retry_after(self._app_minute, now)
        if len(org.minute) >= self.calls_per_minute:
            return "minute", retry_after(org.minute, now)
        if org.in_flight >= self.max_concurrent:
            return "concurrent", 1
        return None

    def _api(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        with self._lock:
            tenants, failure = self._bearer(request)
            if failure is not None:
                return failure
            header = request.headers.get("xero-tenant-id", "").strip()
            org = self._tenants.get(header)
            if org is None or header not in tenants:
                return self._json(_problem(403, "AuthenticationUnsuccessful", "Forbidden"), 403)
            status = self._next_fault(org)
            if status is not None:
                headers = self._limit_headers(org)
                if status == 429:
                    headers |= {"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}
                return self._json(_problem(status, f"Injected {status} from the sandbox"), status, headers)
            now = self._clock()
            throttled = self._throttle(org, now)
            if throttled is not None:
                problem, retry_after = throttled
                headers = self._limit_headers(org) | {
                    "Retry-After": str(retry_after),
                    "X-Rate-Limit-Problem": problem,
                }
                body = _problem(429, f"Rate limit exceeded: {problem}", "Too Many Requests")
                return self._json(body, 429, headers)
            self._admit(org, now)
            org.day.append(now)
            self._app_minute.append(now)

        def respond() -> Response:
            status, raw, content_type = self._execute(org, request, endpoint, args)
            return Response(raw, status=status, content_type=content_type, headers=self._limit_headers(org))

        return self._serve(org, is_write=request.method in ("PUT", "POST"), respond=respond)

    def _execute(
        self, org: _Org, request: Request, endpoint: str, args: dict[str, str]
    ) -> tuple[int, bytes, str]:
        key = request.headers.get("Idempotency-Key")
        if request.method not in ("PUT", "POST") or key is None:
            return self._run(org, request, endpoint, args)
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            detail = f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"  # sandbox wording
            return 400, dumps(_problem(400, detail)).encode(), JSON_TYPE
        now = self._clock()
        org.idempotency = {
            k: v for k, v in org.idempotency.items() if now - v.stored_at < self.idempotency_window_seconds
        }
        fingerprint = hashlib.sha256(
            f"{request.method} {request.full_path}\n".encode() + request.get_data()
        ).hexdigest()
        stored = org.idempotency.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                detail = f"Idempotency key {key} is used with a different request"
                return 400, dumps(_problem(400, detail)).encode(), JSON_TYPE
            return stored.status, stored.body, stored.content_type
        status, raw, content_type = self._run(org, request, endpoint, args)
        org.idempotency[key] = _Replay(now, fingerprint, status, raw, content_type)
        return status, raw, content_type

    def _run(
        self, org: _Org, request: Request, endpoint: str, args: dict[str, str]
    ) -> tuple[int, bytes, str]:
        try:
            payload = self._handle(org, request, endpoint, args)
        except _ApiError as error:
            org.changes.clear()  # refused: nothing was saved, so nothing is announced
            body = error.body if isinstance(error.body, str) else dumps(error.body)
            return error.status, body.encode(), error.content_type
        except BaseException:
            org.changes.clear()
            raise
        self._announce(org)
        return 200, dumps(payload).encode(), JSON_TYPE

    # ---------------------------------------------------------------------------------------------
    # Routing inside the API

    def _handle(self, org: _Org, request: Request, endpoint: str, args: dict[str, str]) -> dict[str, Any]:
        collection = COLLECTIONS.get(args["collection"].lower())
        if collection is None:
            raise _not_found()
        obj_id = args.get("obj_id")
        if endpoint == "sub":
            if collection != "CreditNotes" or args["sub"].lower() != "allocations":
                raise _not_found()
            return self._allocate(org, request, self._find(org, collection, args["obj_id"]))
        if request.method == "GET":
            if obj_id is not None:
                return self._envelope(collection, [copy.deepcopy(self._find(org, collection, obj_id))])
            return self._list(org, request, collection)
        if collection not in WRITABLE:
            raise _ApiError(405, "The requested method is not allowed for this resource", TEXT_TYPE)
        target = self._find(org, collection, obj_id) if obj_id is not None else None
        elements = self._elements(request, collection)
        writers: dict[str, _Writer] = {
            "Contacts": self._write_contact,
            "Invoices": self._write_invoice,
            "CreditNotes": self._write_credit_note,
            "Payments": self._write_payment,
            "BankTransactions": self._write_bank_transaction,
            "BankTransfers": self._write_bank_transfer,
        }
        writer = writers[collection]
        # unitdp=4 opts in to four decimal places on UnitAmount; otherwise Xero rounds it to two.
        write = _Write(
            method=request.method, target=target, unitdp=4 if request.args.get("unitdp") == "4" else 2
        )
        return self._write_many(
            org, request, collection, elements, lambda element: writer(org, element, write)
        )

    def _find(self, org: _Org, collection: str, obj_id: str) -> dict[str, Any]:
        table = org.table(collection)
        found = table.get(obj_id)
        if found is None:
            wanted = obj_id.lower()
            found = next((obj for key, obj in table.items() if key.lower() == wanted), None)
        alt = ALT_KEYS.get(collection)
        if found is None and alt is not None:
            matches = [obj for obj in table.values() if obj.get(alt) == obj_id]
            live = [obj for obj in matches if obj.get("Status") not in CLOSED_STATUSES]
            if live or matches:
                found = (live or matches)[-1]
        if found is None:
            raise _not_found()
        return found

    def _elements(self, request: Request, collection: str) -> list[Any]:
        raw = request.get_data()
        try:
            body = loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise _post_data_invalid() from exc
        if not isinstance(body, dict):
            raise _post_data_invalid("The request body must be a JSON object")  # sandbox wording
        key = next((k for k in body if k.lower() == collection.lower()), None)
        if key is None:
            return [body]
        elements = body[key]
        if not isinstance(elements, list):
            raise _post_data_invalid(f"{collection} must be an array")  # sandbox wording
        if len(elements) > MAX_ELEMENTS:
            raise _bad_request(
                f"Too many elements: {len(elements)} were sent; at most {MAX_ELEMENTS} are allowed "
                "per request (50 recommended)"
            )  # sandbox wording
        return elements

    def _write_many(
        self,
        org: _Org,
        request: Request,
        collection: str,
        elements: list[Any],
        write: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Runs each element in order. Summarised (the default): any invalid element fails the whole
        request with 400 and nothing is saved. ``summarizeErrors=false``: 200, valid elements are saved."""
        summarize = (
            collection in ALWAYS_SUMMARIZED or request.args.get("summarizeErrors", "true").lower() != "false"
        )
        snapshot = copy.deepcopy((org.store, org.counters)) if summarize else None
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for element in elements:
            try:
                if not isinstance(element, dict):
                    raise _Invalid(f"Each element of {collection} must be an object")  # sandbox wording
                saved = copy.deepcopy(write(element))
                saved["StatusAttributeString"] = "OK"
                results.append(saved)
            except _Invalid as invalid:
                echo = self._error_element(collection, element, invalid.messages)
                results.append(echo)
                failed.append(echo)
        if failed and snapshot is not None:
            org.store, org.counters = snapshot
            raise _ApiError(400, _validation_exception(failed))
        return self._envelope(collection, results)

    @staticmethod
    def _error_element(collection: str, element: Any, messages: list[str]) -> dict[str, Any]:
        echo: dict[str, Any] = dict(element) if isinstance(element, dict) else {}
        id_field = ID_FIELDS.get(collection)
        if id_field is not None:
            echo[id_field] = echo.get(id_field) or ZERO_UUID
        if collection in ("Invoices", "CreditNotes"):
            echo["HasErrors"] = True
        elif collection in ("Contacts", "Payments"):
            echo["HasValidationErrors"] = True
        echo["StatusAttributeString"] = "ERROR"
        echo["ValidationErrors"] = [{"Message": message} for message in messages]
        return echo

    # ---------------------------------------------------------------------------------------------
    # Reads

    def _list(self, org: _Org, request: Request, collection: str) -> dict[str, Any]:
        rows = list(org.table(collection).values())
        id_field = ID_FIELDS[collection]
        if collection == "Contacts" and request.args.get("includeArchived", "").lower() != "true":
            rows = [row for row in rows if row.get("ContactStatus") != "ARCHIVED"]
        if collection == "BankTransfers" and request.args.get("includeDeleted", "").lower() != "true":
            # getBankTransfers' includeDeleted: deleted transfers are left out unless asked for.
            rows = [row for row in rows if row.get("Status") != "DELETED"]
        filters = {
            "IDs": id_field,
            "InvoiceNumbers": "InvoiceNumber",
            "CreditNoteNumbers": "CreditNoteNumber",
            "ContactIDs": "Contact.ContactID",
            "Statuses": "Status",
        }
        for param, path in filters.items():
            raw = request.args.get(param)
            if raw:
                wanted = {part.strip().strip('"').lower() for part in raw.split(",") if part.strip()}
                rows = [row for row in rows if str(_lookup(row, path)).lower() in wanted]
        where = request.args.get("where")
        if where and where.strip():
            predicate = _WhereParser(where).parse()
            rows = [row for row in rows if predicate(row)]
        since = request.headers.get("If-Modified-Since")
        if since:
            moment = parse_date(since)
            if moment is None:
                try:
                    moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
                except ValueError:
                    moment = None
            if moment is not None:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                cutoff = moment.timestamp() * 1000
                rows = [
                    row
                    for row in rows
                    if (_ms_of(row.get("UpdatedDateUTC") or row.get("CreatedDateUTC")) or 0) > cutoff
                ]
        order = request.args.get("order")
        if order and order.strip():
            rows = self._ordered(rows, order)
        page_arg = request.args.get("page")
        rows = copy.deepcopy(rows)
        if page_arg is None:
            if collection in SUMMARY_WITHOUT_PAGING:
                for row in rows:
                    row["LineItems"] = []
            return self._envelope(collection, rows)
        try:
            page = max(1, int(page_arg))
            size = min(MAX_PAGE_SIZE, max(1, int(request.args.get("pageSize", DEFAULT_PAGE_SIZE))))
        except ValueError as exc:
            raise _query_error("page and pageSize must be whole numbers") from exc  # sandbox wording
        envelope = self._envelope(collection, rows[(page - 1) * size : page * size])
        envelope["pagination"] = {
            "page": page,
            "pageSize": size,
            "pageCount": math.ceil(len(rows) / size),
            "itemCount": len(rows),
        }
        return envelope

    @staticmethod
    def _ordered(rows: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
        """``order=Field [ASC|DESC]`` on one field (Xero takes a comma list; the sandbox one):
        /Date()/ stamps as moments, numbers as numbers, the rest as text; ties keep their order."""
        field_name, _, direction = order.strip().partition(" ")
        if direction.strip().upper() not in ("", "ASC", "DESC") or not field_name:
            raise _query_error(f"order '{order}' is not Field ASC or Field DESC")  # sandbox wording

        def key(row: dict[str, Any]) -> tuple[int, Decimal, str]:
            value = _lookup(row, field_name)
            moment = _ms_of(value)
            if moment is not None:
                return (0, Decimal(moment), "")
            if isinstance(value, Decimal | int) and not isinstance(value, bool):
                return (0, Decimal(value), "")
            return (1, Decimal(0), "" if value is None else str(value).lower())

        return sorted(rows, key=key, reverse=direction.strip().upper() == "DESC")

    # ---------------------------------------------------------------------------------------------
    # Contacts

    def _write_contact(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        method, target = write.method, write.target
        table = org.table("Contacts")
        existing = target
        contact_id = element.get("ContactID")
        if existing is None and contact_id:
            existing = table.get(str(contact_id))
            if method == "PUT" and existing is not None:
                raise _Invalid(
                    f"Contact {contact_id} already exists; use POST to update it"
                )  # sandbox wording
            if existing is None:
                raise _Invalid(f"Contact with ContactID {contact_id} could not be found")  # sandbox wording
        obj: dict[str, Any] = copy.deepcopy(existing) if existing is not None else {}
        name = element.get("Name", obj.get("Name"))
        if not isinstance(name, str) or not name.strip():
            raise _Invalid("The Name field is mandatory.")  # sandbox wording
        name = name.strip()
        status = element.get("ContactStatus", obj.get("ContactStatus", "ACTIVE"))
        if status not in CONTACT_STATUSES:
            raise _Invalid(f"ContactStatus {status} is not valid")  # sandbox wording
        if status == "ACTIVE":
            self_id = obj.get("ContactID")
            for other in table.values():
                if (
                    other["ContactID"] != self_id
                    and other.get("ContactStatus") == "ACTIVE"
                    and _key(other["Name"]) == _key(name)
                ):
                    raise _Invalid(
                        f"The contact name {name} is already assigned to another contact. "
                        "The contact name must be unique across all active contacts."
                    )
        contact_id = obj.get("ContactID") or str(uuid.uuid4())
        base = {
            "ContactID": contact_id,
            "ContactStatus": status,
            "Name": name,
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "IsSupplier": False,
            "IsCustomer": False,
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
        obj = base | {k: v for k, v in obj.items() if k not in base or k in ("IsSupplier", "IsCustomer")}
        obj["ContactStatus"], obj["Name"] = status, name
        for name_ in CONTACT_FIELDS:
            if name_ in element:
                obj[name_] = element[name_]
        self._stamp(obj)
        table[contact_id] = obj
        return obj

    def _contact_ref(
        self, org: _Org, element: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        ref = element.get("Contact")
        if ref is None and existing is not None:
            ref = existing["Contact"]
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")):
            raise _Invalid("A Contact must be specified for this type of transaction")  # sandbox wording
        contacts = org.table("Contacts")
        contact: dict[str, Any] | None = None
        if ref.get("ContactID"):
            contact = contacts.get(str(ref["ContactID"]))
        else:
            contact = next(
                (
                    c
                    for c in contacts.values()
                    if c["ContactStatus"] == "ACTIVE" and _key(c["Name"]) == _key(ref["Name"])
                ),
                None,
            )
        if contact is None:
            wanted = ref.get("ContactID") or ref.get("Name")
            raise _Invalid(f"Contact {wanted} could not be found")  # sandbox wording
        if contact.get("ContactStatus") == "ARCHIVED":
            raise _Invalid(f"The contact {contact['Name']} is archived")  # sandbox wording
        return contact

    @staticmethod
    def _contact_summary(contact: dict[str, Any]) -> dict[str, Any]:
        summary = {
            "ContactID": contact["ContactID"],
            "ContactStatus": contact["ContactStatus"],
            "Name": contact["Name"],
        }
        if contact.get("EmailAddress"):
            summary["EmailAddress"] = contact["EmailAddress"]
        return summary | {
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "HasValidationErrors": False,
        }

    # ---------------------------------------------------------------------------------------------
    # Line items and totals (shared by invoices and credit notes)

    def _account(
        self, org: _Org, line: dict[str, Any], default_code: Any
    ) -> tuple[dict[str, Any] | None, str | None]:
        accounts = org.table("Accounts")
        if line.get("AccountID"):
            found = accounts.get(str(line["AccountID"]))
            return found, str(line["AccountID"]) if found is None else found["Code"]
        code = line.get("AccountCode") or default_code
        if not code:
            return None, None
        return next((a for a in accounts.values() if a["Code"] == str(code)), None), str(code)

    def _price_line(
        self,
        org: _Org,
        raw: dict[str, Any],
        doc_type: str,
        status: str,
        amounts: str,
        unitdp: int,
        errors: list[str],
    ) -> tuple[dict[str, Any], Decimal]:
        """One line as Xero computes it; returns the line and its discount."""
        sales = doc_type in SALES_TYPES
        item: dict[str, Any] | None = None
        defaults: dict[str, Any] = {}
        if raw.get("ItemCode"):
            item = next((i for i in org.table("Items").values() if i["Code"] == str(raw["ItemCode"])), None)
            if item is None:
                errors.append(f"Item code '{raw['ItemCode']}' is not valid.")  # sandbox wording
            else:
                defaults = item.get("SalesDetails" if sales else "PurchaseDetails") or {}
        line: dict[str, Any] = {}
        description = raw.get("Description") or (item or {}).get("Description")
        if description:
            line["Description"] = description
        amounts_ = self._line_amounts(raw, defaults, sales, unitdp, errors)
        if amounts_ is None:
            # A description-only line carries no amount, account or tax.
            line |= {"LineAmount": Decimal("0.00"), "TaxAmount": Decimal("0.00"), "Tracking": []}
            return line, Decimal(0)
        quantity, unit, line_amount, discount = amounts_
        # Spend and receive money may code to any account but a bank account; their tax rate is a
        # purchase one for money spent and a sales one for money received.
        bank = doc_type in BANK_TRANSACTION_TYPES
        account, code, tax_type, tax = self._line_tax(
            org,
            raw,
            defaults,
            sales or doc_type.startswith("RECEIVE"),
            status,
            amounts,
            line_amount,
            errors,
            any_account=bank,
        )
        if item is not None:
            line["ItemCode"] = item["Code"]
            line["Item"] = {"ItemID": item["ItemID"], "Name": item["Name"], "Code": item["Code"]}
        line["UnitAmount"] = unit
        if tax_type is not None:
            line["TaxType"] = tax_type
        line |= {"TaxAmount": tax, "LineAmount": line_amount}
        if code is not None:
            line["AccountCode"] = code
        if account is not None:
            line["AccountID"] = account["AccountID"]
        line |= {"Tracking": raw.get("Tracking") or [], "Quantity": quantity}
        if raw.get("DiscountRate"):
            line["DiscountRate"] = _dec(raw["DiscountRate"], "DiscountRate")
        if raw.get("DiscountAmount"):
            line["DiscountAmount"] = money(_dec(raw["DiscountAmount"], "DiscountAmount"))
        return line, discount

    @staticmethod
    def _line_amounts(
        raw: dict[str, Any], defaults: dict[str, Any], sales: bool, unitdp: int, errors: list[str]
    ) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """(Quantity, UnitAmount, LineAmount, discount), or None for a description-only line.

        LineAmount = round(Quantity x UnitAmount - discount, 2); a given LineAmount must be within 0.01.
        """
        quantity = _opt_dec(raw, "Quantity")
        unit = _opt_dec(raw, "UnitAmount")
        given = _opt_dec(raw, "LineAmount")
        if unit is None and "UnitPrice" in defaults and given is None:
            unit = _dec(defaults["UnitPrice"], "UnitPrice")
        if quantity is None and unit is None and given is None:
            return None
        if quantity is None:
            # Xero works out whichever of Quantity or UnitAmount is missing from the LineAmount.
            quantity = (given / unit) if (given is not None and unit) else Decimal(1)
        if unit is None:
            unit = (given or Decimal(0)) / quantity if quantity else Decimal(0)
        quantity = quantity.quantize(QTY_PLACES, rounding=ROUND_HALF_UP)
        unit = unit.quantize(Decimal(1).scaleb(-unitdp), rounding=ROUND_HALF_UP)
        rate = _opt_dec(raw, "DiscountRate")
        fixed = _opt_dec(raw, "DiscountAmount")
        if (rate or fixed) and not sales:
            errors.append("Discounts are only supported on sales documents")  # sandbox wording
        if rate and fixed:
            errors.append("Only one of DiscountRate or DiscountAmount can be given")  # sandbox wording
        gross = quantity * unit
        discount = money(gross * rate / 100) if rate else money(fixed or Decimal(0))
        expected = money(gross - discount)
        if given is None:
            return quantity, unit, expected, discount
        if abs(money(given) - expected) > CENT:
            errors.append(
                f"The line total {_text(given)} does not match the expected line total {_text(expected)}"
            )
        return quantity, unit, money(given), discount

    def _line_tax(
        self,
        org: _Org,
        raw: dict[str, Any],
        defaults: dict[str, Any],
        sales: bool,
        status: str,
        amounts: str,
        line_amount: Decimal,
        errors: list[str],
        *,
        any_account: bool = False,
    ) -> tuple[dict[str, Any] | None, str | None, str | None, Decimal]:
        """(account, account code, TaxType, TaxAmount): per-line tax, rounded half up to the cent.
        ``any_account``: a bank transaction's line, which any active account but a bank one takes."""
        account, code = self._account(org, raw, defaults.get("AccountCode"))
        fits = (lambda a: a["Type"] != "BANK") if any_account else (lambda a: self._account_fits(a, sales))
        if code is None:
            if status != "DRAFT":
                errors.append("Account code must be specified")
        elif account is None or account["Status"] != "ACTIVE" or not fits(account):
            errors.append(f"Account code '{code}' is not a valid code for this document.")
        tax_type = raw.get("TaxType") or defaults.get("TaxType") or (account or {}).get("TaxType")
        if amounts == "NoTax":
            tax_type = "NONE"
        if tax_type is None:
            if status != "DRAFT":
                errors.append("The TaxType field is mandatory")
            return account, code, None, Decimal("0.00")
        tax_type = str(tax_type)
        tax_rate = org.table("TaxRates").get(tax_type)
        if tax_rate is None or not tax_rate["CanApplyToRevenue" if sales else "CanApplyToExpenses"]:
            errors.append(
                f"The TaxType code {tax_type} does not exist or cannot be used for this type of transaction."
            )
            return account, code, tax_type, Decimal("0.00")
        if account is not None and not tax_rate.get(f"CanApplyTo{self._tax_class(account)}", True):
            errors.append(f"The TaxType code '{tax_type}' cannot be used with account code '{code}'.")
        percent = org.tax_rates[tax_type]
        override = _opt_dec(raw, "TaxAmount")
        if amounts == "NoTax":
            tax = Decimal("0.00")
        elif override is not None:
            tax = money(override)  # Xero lets the caller override the computed tax
        elif amounts == "Inclusive":
            tax = money(line_amount * percent / (100 + percent))
        else:
            tax = money(line_amount * percent / 100)
        return account, code, tax_type, tax

    @staticmethod
    def _account_fits(account: dict[str, Any], sales: bool) -> bool:
        if sales:
            return bool(account["Class"] == "REVENUE")
        return bool(account["Type"] != "BANK" and account["Class"] != "REVENUE")

    @staticmethod
    def _tax_class(account: dict[str, Any]) -> str:
        names = {
            "ASSET": "Assets",
            "EQUITY": "Equity",
            "EXPENSE": "Expenses",
            "LIABILITY": "Liabilities",
            "REVENUE": "Revenue",
        }
        return names.get(str(account["Class"]), "Revenue")

    def _price(
        self,
        org: _Org,
        raw_lines: list[Any],
        doc_type: str,
        status: str,
        amounts: str,
        existing_lines: list[dict[str, Any]],
        unitdp: int,
        errors: list[str],
    ) -> _Priced:
        known_ids = {line.get("LineItemID") for line in existing_lines}
        lines: list[dict[str, Any]] = []
        discount = Decimal(0)
        for index, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                errors.append(f"LineItems[{index}] must be an object")  # sandbox wording
                continue
            try:
                line, line_discount = self._price_line(org, raw, doc_type, status, amounts, unitdp, errors)
            except _Invalid as invalid:
                errors.extend(invalid.messages)
                continue
            line_id = raw.get("LineItemID")
            line["LineItemID"] = line_id if line_id in known_ids else str(uuid.uuid4())
            discount += line_discount
            lines.append(line)
        amount_sum = sum((line["LineAmount"] for line in lines), Decimal("0.00"))
        tax = sum((line["TaxAmount"] for line in lines), Decimal("0.00"))
        if amounts == "Inclusive":
            return _Priced(lines, amount_sum - tax, tax, amount_sum, discount)
        return _Priced(lines, amount_sum, tax, amount_sum + tax, discount)

    def _doc_common(
        self,
        org: _Org,
        element: dict[str, Any],
        existing: dict[str, Any] | None,
        types: tuple[str, ...],
        unitdp: int,
        errors: list[str],
    ) -> tuple[str, str, str, dict[str, Any] | None, date, date | None, str, _Priced | None]:
        """Type, status, currency, contact, dates, line amount type and lines of an invoice or credit note."""
        doc_type = element.get("Type") or (existing or {}).get("Type")
        if doc_type is None:
            raise _Invalid(
                "Invoice Type must be specified" if types == INVOICE_TYPES else "Type must be specified"
            )
        if doc_type not in types:
            raise _Invalid(f"'{doc_type}' is not a valid Type here; use one of {', '.join(types)}")  # sandbox
        if existing is not None and doc_type != existing["Type"]:
            raise _Invalid("The Type of an existing document cannot be changed")  # sandbox wording
        status = element.get("Status") or (existing or {}).get("Status") or "DRAFT"
        if status not in DOC_STATUSES:
            raise _Invalid(f"'{status}' is not a valid Status")  # sandbox wording
        contact: dict[str, Any] | None = None
        try:
            contact = self._contact_ref(org, element, existing)
        except _Invalid as invalid:
            errors.extend(invalid.messages)
        try:
            day = _parse_date(element["Date"], "Date") if element.get("Date") else None
            due = _parse_date(element["DueDate"], "DueDate") if element.get("DueDate") else None
        except _Invalid as invalid:
            errors.extend(invalid.messages)
            day = due = None
        day = day or (_stored_date(existing, "Date") if existing else None) or self._today()
        if due is None and existing is not None and "DueDate" not in element:
            due = _stored_date(existing, "DueDate")
        amounts = element.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") or "Exclusive"
        if amounts not in LINE_AMOUNT_TYPES:
            errors.append(f"'{amounts}' is not a valid LineAmountTypes value")  # sandbox wording
            amounts = "Exclusive"
        currency = str(
            element.get("CurrencyCode") or (existing or {}).get("CurrencyCode") or org.base_currency
        )
        if not re.fullmatch(r"[A-Z]{3}", currency):
            errors.append(f"'{currency}' is not a valid currency code")  # sandbox wording
        raw_lines = element.get("LineItems")
        existing_lines: list[dict[str, Any]] = (existing or {}).get("LineItems") or []
        if raw_lines is None:
            # Omitted lines stay as they are; their tax is recomputed (it may depend on LineAmountTypes).
            raw_lines = [{k: v for k, v in line.items() if k != "TaxAmount"} for line in existing_lines]
        if not isinstance(raw_lines, list):
            raise _Invalid("LineItems must be an array")  # sandbox wording
        if not raw_lines and status != "DRAFT":
            errors.append("At least one line item is required")  # sandbox wording
        priced = self._price(
            org, raw_lines, str(doc_type), str(status), str(amounts), existing_lines, unitdp, errors
        )
        return str(doc_type), str(status), currency, contact, day, due, str(amounts), priced

    # ---------------------------------------------------------------------------------------------
    # Invoices

    def _next_number(self, org: _Org, counter: str, prefix: str, collection: str, field_name: str) -> str:
        taken = {obj.get(field_name) for obj in org.table(collection).values()}
        while True:
            number = f"{prefix}-{org.counters[counter]:04d}"
            org.counters[counter] += 1
            if number not in taken:
                return number

    def _write_invoice(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        method, target = write.method, write.target
        table = org.table("Invoices")
        existing = target
        invoice_id = element.get("InvoiceID")
        if existing is None and invoice_id:
            existing = table.get(str(invoice_id))
            if existing is None:
                raise _Invalid(f"Invoice with InvoiceID {invoice_id} could not be found")  # sandbox wording
            if method == "PUT":
                raise _Invalid(
                    f"Invoice {invoice_id} already exists; use POST to update it"
                )  # sandbox wording
        number = element.get("InvoiceNumber")
        if existing is None and method == "POST" and number and element.get("Type", "ACCREC") == "ACCREC":
            # Like Xero, POST updates the live ACCREC invoice that already has this number.
            existing = next(
                (
                    inv
                    for inv in table.values()
                    if inv["Type"] == "ACCREC"
                    and inv.get("InvoiceNumber") == number
                    and inv["Status"] not in CLOSED_STATUSES
                ),
                None,
            )
        requested = element.get("Status")
        if existing is not None and requested in CLOSED_STATUSES and requested != existing["Status"]:
            closed = self._close_invoice(existing, str(requested))
            self._changed(org, "Invoices", "UPDATE", closed["InvoiceID"])
            return closed
        self._check_invoice_update(existing, element, requested)
        errors: list[str] = []
        doc_type, status, currency, contact, day, due, amounts, priced = self._doc_common(
            org, element, existing, INVOICE_TYPES, write.unitdp, errors
        )
        if existing is None and status not in CREATE_STATUSES:
            errors.append(f"An invoice cannot be created with a status of {status}")  # sandbox wording
        if status in ("SUBMITTED", "AUTHORISED") and due is None:
            errors.append("Due Date must be specified")  # sandbox wording
        number = self._invoice_number(org, element, existing, doc_type, errors)
        if errors or contact is None or priced is None:
            raise _Invalid(*errors)
        paid = (existing or {}).get("AmountPaid", Decimal("0.00"))
        credited = (existing or {}).get("AmountCredited", Decimal("0.00"))
        invoice_id = existing["InvoiceID"] if existing else str(uuid.uuid4())
        obj: dict[str, Any] = {
            "Type": doc_type,
            "InvoiceID": invoice_id,
            "InvoiceNumber": number,
            "Reference": element.get("Reference", (existing or {}).get("Reference", "")),
            "Payments": (existing or {}).get("Payments", []),
            "CreditNotes": (existing or {}).get("CreditNotes", []),
            "Prepayments": [],
            "Overpayments": [],
            "AmountDue": priced.total - paid - credited,
            "AmountPaid": paid,
            "AmountCredited": credited,
            "SentToContact": bool(element.get("SentToContact", (existing or {}).get("SentToContact", False))),
            "CurrencyRate": _dec(
                element.get("CurrencyRate", (existing or {}).get("CurrencyRate", RATE_ONE)), "CurrencyRate"
            ),
            "IsDiscounted": priced.discount > 0,
            "HasAttachments": False,
            "HasErrors": False,
            "Contact": self._contact_summary(contact),
            **_date_fields("Date", day),
            **(_date_fields("DueDate", due) if due else {}),
            "Status": status,
            "LineAmountTypes": amounts,
            "LineItems": priced.lines,
            "SubTotal": priced.sub_total,
            "TotalTax": priced.total_tax,
            "Total": priced.total,
            "TotalDiscount": money(priced.discount),
            "UpdatedDateUTC": self._updated(),
            "CurrencyCode": currency,
        }
        if element.get("Url") or (existing or {}).get("Url"):
            obj["Url"] = element.get("Url") or (existing or {}).get("Url")
        table[invoice_id] = obj
        self._changed(org, "Invoices", "UPDATE" if existing else "CREATE", invoice_id)
        contact_flag = "IsCustomer" if doc_type == "ACCREC" else "IsSupplier"
        org.table("Contacts")[contact["ContactID"]][contact_flag] = True
        return obj

    @staticmethod
    def _check_invoice_update(
        existing: dict[str, Any] | None, element: dict[str, Any], requested: Any
    ) -> None:
        if existing is None:
            return
        current = existing["Status"]
        if current in ("PAID", *CLOSED_STATUSES) or requested == "PAID":
            raise _Invalid(NOT_VALID_FOR_MODIFICATION)
        if current == "AUTHORISED" and requested in ("DRAFT", "SUBMITTED"):
            raise _Invalid(NOT_VALID_FOR_MODIFICATION)
        settled = existing["AmountPaid"] > 0 or existing["AmountCredited"] > 0
        if settled and any(k in element for k in ("LineItems", "LineAmountTypes", "Contact", "CurrencyCode")):
            raise _Invalid(NOT_VALID_FOR_MODIFICATION)

    def _invoice_number(
        self,
        org: _Org,
        element: dict[str, Any],
        existing: dict[str, Any] | None,
        doc_type: str,
        errors: list[str],
    ) -> str:
        number = element.get("InvoiceNumber") or (existing or {}).get("InvoiceNumber")
        if not number:
            if doc_type != "ACCREC":
                return ""
            return self._next_number(org, "invoice", "INV", "Invoices", "InvoiceNumber")
        number = str(number)
        if len(number) > MAX_NUMBER_LENGTH:
            errors.append(f"Invoice number must be {MAX_NUMBER_LENGTH} characters or less")  # sandbox wording
        if doc_type == "ACCREC":
            self_id = (existing or {}).get("InvoiceID")
            for other in org.table("Invoices").values():
                if (
                    other["InvoiceID"] != self_id
                    and other["Type"] == "ACCREC"
                    and other.get("InvoiceNumber") == number
                    and other["Status"] not in CLOSED_STATUSES
                ):
                    errors.append("Invoice # must be unique.")
                    break
        return number

    def _close_invoice(self, invoice: dict[str, Any], requested: str) -> dict[str, Any]:
        current = invoice["Status"]
        settled = invoice["AmountPaid"] > 0 or invoice["AmountCredited"] > 0
        if requested == "DELETED" and current not in ("DRAFT", "SUBMITTED"):
            raise _Invalid(NOT_VALID_FOR_MODIFICATION)
        if requested == "VOIDED" and (current != "AUTHORISED" or settled):
            raise _Invalid(NOT_VALID_FOR_MODIFICATION)
        invoice["Status"] = requested
        invoice["AmountDue"] = Decimal("0.00")
        self._stamp(invoice)
        return invoice

    # ---------------------------------------------------------------------------------------------
    # Credit notes and allocations

    def _write_credit_note(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        method, target = write.method, write.target
        table = org.table("CreditNotes")
        existing = target
        note_id = element.get("CreditNoteID")
        if existing is None and note_id:
            existing = table.get(str(note_id))
            if existing is None:
                raise _Invalid(
                    f"Credit note with CreditNoteID {note_id} could not be found"
                )  # sandbox wording
            if method == "PUT":
                raise _Invalid(
                    f"Credit note {note_id} already exists; use POST to update it"
                )  # sandbox wording
        requested = element.get("Status")
        if existing is not None:
            current = existing["Status"]
            # Credit that was allocated or paid out is used: Xero refuses to void or edit it.
            used = bool(existing.get("Allocations") or existing.get("Payments"))
            if current in ("PAID", *CLOSED_STATUSES) or requested == "PAID":
                raise _Invalid("Credit note not of valid status for modification")  # sandbox wording
            if requested in CLOSED_STATUSES and requested != current:
                if requested == "VOIDED" and (current != "AUTHORISED" or used):
                    raise _Invalid(
                        "A credit note can only be voided when it is AUTHORISED and not allocated or paid out"
                    )  # sandbox wording
                if requested == "DELETED" and current not in ("DRAFT", "SUBMITTED"):
                    raise _Invalid("Credit note not of valid status for modification")  # sandbox wording
                existing["Status"] = requested
                existing["RemainingCredit"] = Decimal("0.00")
                self._stamp(existing)
                self._changed(org, "CreditNotes", "UPDATE", existing["CreditNoteID"])
                return existing
            if used:
                raise _Invalid("Credit note not of valid status for modification")  # sandbox wording
        errors: list[str] = []
        doc_type, status, currency, contact, day, due, amounts, priced = self._doc_common(
            org, element, existing, CREDIT_NOTE_TYPES, write.unitdp, errors
        )
        if existing is None and status not in CREATE_STATUSES:
            errors.append(f"A credit note cannot be created with a status of {status}")  # sandbox wording
        number = element.get("CreditNoteNumber") or (existing or {}).get("CreditNoteNumber")
        if not number:
            number = self._next_number(org, "credit_note", "CN", "CreditNotes", "CreditNoteNumber")
        number = str(number)
        self_id = (existing or {}).get("CreditNoteID")
        if doc_type == "ACCRECCREDIT" and any(
            other["CreditNoteID"] != self_id
            and other["Type"] == "ACCRECCREDIT"
            and other.get("CreditNoteNumber") == number
            and other["Status"] not in CLOSED_STATUSES
            for other in table.values()
        ):
            errors.append("Credit Note # must be unique.")  # sandbox wording
        if errors or contact is None or priced is None:
            raise _Invalid(*errors)
        note_id = self_id or str(uuid.uuid4())
        obj: dict[str, Any] = {
            "CreditNoteID": note_id,
            "CreditNoteNumber": number,
            "Type": doc_type,
            "Reference": element.get("Reference", (existing or {}).get("Reference", "")),
            "Contact": self._contact_summary(contact),
            **_date_fields("Date", day),
            **(_date_fields("DueDate", due) if due else {}),
            "Status": status,
            "LineAmountTypes": amounts,
            "LineItems": priced.lines,
            "SubTotal": priced.sub_total,
            "TotalTax": priced.total_tax,
            "Total": priced.total,
            "UpdatedDateUTC": self._updated(),
            "CurrencyCode": currency,
            "CurrencyRate": _dec(element.get("CurrencyRate", RATE_ONE), "CurrencyRate"),
            "RemainingCredit": priced.total,
            "Allocations": [],
            "Payments": [],
            "HasAttachments": False,
            "HasErrors": False,
        }
        table[note_id] = obj
        self._changed(org, "CreditNotes", "UPDATE" if existing else "CREATE", note_id)
        return obj

    def _allocate(self, org: _Org, request: Request, note: dict[str, Any]) -> dict[str, Any]:
        elements = self._elements(request, "Allocations")

        def one(element: dict[str, Any]) -> dict[str, Any]:
            if note["Status"] != "AUTHORISED":
                raise _Invalid("Only an AUTHORISED credit note can be allocated")  # sandbox wording
            ref = element.get("Invoice")
            invoice_id = ref.get("InvoiceID") if isinstance(ref, dict) else None
            invoice = org.table("Invoices").get(str(invoice_id)) if invoice_id else None
            if invoice is None:
                raise _Invalid("Invoice could not be found")  # sandbox wording
            if element.get("Amount") is None:
                raise _Invalid("Amount must be specified")  # sandbox wording
            amount = money(_dec(element["Amount"], "Amount"))
            day = _parse_date(element["Date"], "Date") if element.get("Date") else self._today()
            errors: list[str] = []
            if invoice["Status"] != "AUTHORISED":
                errors.append("Invoice not of valid status for allocation")  # sandbox wording
            if invoice["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
                errors.append(
                    "The credit note and the invoice must be for the same contact"
                )  # sandbox wording
            if invoice["CurrencyCode"] != note["CurrencyCode"]:
                errors.append(
                    "The credit note and the invoice must be in the same currency"
                )  # sandbox wording
            if amount <= 0:
                errors.append("Allocation amount must be greater than zero")  # sandbox wording
            if amount > note["RemainingCredit"]:
                errors.append(
                    "The amount allocated exceeds the remaining credit on the credit note"
                )  # sandbox
            if amount > invoice["AmountDue"]:
                errors.append("The amount allocated exceeds the amount outstanding on the invoice")  # sandbox
            if errors:
                raise _Invalid(*errors)
            allocation_id = str(uuid.uuid4())
            dates = _date_fields("Date", day)
            invoice["AmountCredited"] += amount
            invoice["AmountDue"] -= amount
            invoice["CreditNotes"].append(
                {
                    "CreditNoteID": note["CreditNoteID"],
                    "CreditNoteNumber": note["CreditNoteNumber"],
                    "ID": note["CreditNoteID"],
                    "AppliedAmount": amount,
                    **dates,
                    "Total": note["Total"],
                    "HasErrors": False,
                    "LineItems": [],
                }
            )
            self._settle(INVOICE, invoice, day)
            note["RemainingCredit"] -= amount
            note["Allocations"].append(
                {
                    "AllocationID": allocation_id,
                    "Amount": amount,
                    "Date": dates["Date"],
                    "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
                }
            )
            self._settle(CREDIT_NOTE, note, day)
            return {
                "AllocationID": allocation_id,
                "Amount": amount,
                "Date": dates["Date"],
                "Invoice": {
                    "InvoiceID": invoice["InvoiceID"],
                    "InvoiceNumber": invoice["InvoiceNumber"],
                    "Payments": [],
                    "CreditNotes": [],
                    "Prepayments": [],
                    "Overpayments": [],
                    "HasErrors": False,
                    "IsDiscounted": False,
                    "LineItems": [],
                },
                "CreditNote": {"CreditNoteID": note["CreditNoteID"], "LineItems": []},
                "ValidationErrors": [],
            }

        return self._write_many(org, request, "Allocations", elements, one)

    def _settle(self, payable: _Payable, doc: dict[str, Any], day: date) -> None:
        """PAID once nothing is outstanding (and back to AUTHORISED when a payment is deleted)."""
        outstanding = doc[payable.outstanding]
        if outstanding == 0 and doc["Status"] == "AUTHORISED":
            doc["Status"] = "PAID"
            doc["FullyPaidOnDate"] = _date_fields("Date", day)["Date"]
        elif outstanding > 0 and doc["Status"] == "PAID":
            doc["Status"] = "AUTHORISED"
            doc.pop("FullyPaidOnDate", None)
        self._stamp(doc)

    # ---------------------------------------------------------------------------------------------
    # Payments: money in on an invoice, or out of a credit note (a refund), through one path

    def _write_payment(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        method, target = write.method, write.target
        if target is not None:
            return self._delete_payment(org, element, target)
        if element.get("PaymentID") and method == "POST" and element.get("Status") == "DELETED":
            existing = org.table("Payments").get(str(element["PaymentID"]))
            if existing is None:
                raise _Invalid(f"Payment {element['PaymentID']} could not be found")  # sandbox wording
            return self._delete_payment(org, element, existing)
        payable, doc = self._payment_document(org, element)
        account = self._payment_account(org, element)
        if element.get("Amount") is None:
            raise _Invalid("Amount must be specified")  # sandbox wording
        amount = money(_dec(element["Amount"], "Amount"))
        day = _parse_date(element["Date"], "Date") if element.get("Date") else self._today()
        errors: list[str] = []
        if doc["Status"] != "AUTHORISED":
            errors.append(f"{payable.label} not of valid status for payment")  # sandbox wording
        if amount <= 0:
            errors.append("Payment amount must be greater than zero")  # sandbox wording
        elif amount > doc[payable.outstanding]:
            errors.append("Payment amount exceeds the amount outstanding on this document")
        if errors:
            raise _Invalid(*errors)
        payment_id = str(uuid.uuid4())
        dates = _date_fields("Date", day)
        rate = _dec(element.get("CurrencyRate", RATE_ONE), "CurrencyRate")
        reference = str(element.get("Reference", ""))
        payment: dict[str, Any] = {
            "PaymentID": payment_id,
            "Date": dates["Date"],
            "BankAmount": amount,
            "Amount": amount,
            "Reference": reference,
            "CurrencyRate": rate,
            "PaymentType": PAYMENT_TYPES[doc["Type"]],
            "Status": "AUTHORISED",
            "UpdatedDateUTC": self._updated(),
            "HasAccount": True,
            "IsReconciled": bool(element.get("IsReconciled", False)),
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
            payable.ref: self._paid_summary(payable, doc),
            "HasValidationErrors": False,
        }
        if payable.paid is not None:
            doc[payable.paid] += amount
        doc[payable.outstanding] -= amount
        doc["Payments"].append(
            {
                "PaymentID": payment_id,
                "Date": dates["Date"],
                "Amount": amount,
                "Reference": reference,
                "CurrencyRate": rate,
                "HasAccount": False,
                "HasValidationErrors": False,
            }
        )
        self._settle(payable, doc, day)
        org.table("Payments")[payment_id] = payment
        self._payment_changed(org, payable.collection, doc[payable.id_field])
        return payment

    def _payment_changed(self, org: _Org, collection: str, doc_id: str) -> None:
        """A payment made or deleted changed this invoice or credit note (its AmountDue, Status)."""
        if collection != "Invoices" or self.invoice_events_on_payment:
            self._changed(org, collection, "UPDATE", doc_id)

    @staticmethod
    def _paid_summary(payable: _Payable, doc: dict[str, Any]) -> dict[str, Any]:
        """The document as a payment shows it (``Invoice`` or ``CreditNote``): a summary, no lines."""
        summary: dict[str, Any] = {
            "Type": doc["Type"],
            payable.id_field: doc[payable.id_field],
            payable.number_field: doc[payable.number_field],
            "Payments": [],
        }
        if payable is INVOICE:
            summary |= {"CreditNotes": [], "Prepayments": [], "Overpayments": [], "IsDiscounted": False}
        else:
            summary["Allocations"] = []
        return summary | {
            "HasErrors": False,
            "Contact": {"ContactID": doc["Contact"]["ContactID"], "Name": doc["Contact"]["Name"]},
            "LineItems": [],
            "CurrencyCode": doc["CurrencyCode"],
        }

    def _payment_document(self, org: _Org, element: dict[str, Any]) -> tuple[_Payable, dict[str, Any]]:
        """The invoice or credit note a payment names, by id or number (nested or top-level)."""
        named = [p for p in PAYABLES if isinstance(element.get(p.ref), dict) or element.get(p.number_field)]
        if not named:
            raise _Invalid("Invoice or CreditNote must be specified")  # sandbox wording
        if len(named) > 1:
            raise _Invalid("A payment applies to an Invoice or a CreditNote, not both")  # sandbox wording
        (payable,) = named
        ref = element.get(payable.ref)
        if not isinstance(ref, dict):
            ref = {payable.number_field: element[payable.number_field]}
        table = org.table(payable.collection)
        doc: dict[str, Any] | None = None
        if ref.get(payable.id_field):
            doc = table.get(str(ref[payable.id_field]))
        elif ref.get(payable.number_field):
            doc = next(
                (
                    obj
                    for obj in table.values()
                    if obj.get(payable.number_field) == ref[payable.number_field]
                    and obj["Status"] not in CLOSED_STATUSES
                ),
                None,
            )
        else:
            raise _Invalid("Invoice or CreditNote must be specified")  # sandbox wording
        if doc is None:
            raise _Invalid(f"{payable.label} could not be found")  # sandbox wording
        return payable, doc

    def _payment_account(self, org: _Org, element: dict[str, Any]) -> dict[str, Any]:
        ref = element.get("Account")
        if not isinstance(ref, dict):
            ref = {"Code": element["Code"]} if element.get("Code") else {}
        accounts = org.table("Accounts")
        account: dict[str, Any] | None = None
        if ref.get("AccountID"):
            account = accounts.get(str(ref["AccountID"]))
        elif ref.get("Code"):
            account = next((a for a in accounts.values() if a["Code"] == str(ref["Code"])), None)
        if account is None:
            raise _Invalid("Account must be valid.")
        if account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
            raise _Invalid(
                f"Payments cannot be made to account code '{account['Code']}': it is not a bank account "
                "and does not allow payments"
            )  # sandbox wording
        return account

    def _delete_payment(self, org: _Org, element: dict[str, Any], payment: dict[str, Any]) -> dict[str, Any]:
        if element.get("Status") != "DELETED":
            raise _Invalid("A payment can only be updated to a Status of DELETED")  # sandbox wording
        if payment["Status"] == "DELETED":
            raise _Invalid("The payment has already been deleted")  # sandbox wording
        payment["Status"] = "DELETED"
        self._stamp(payment)
        payable = next(p for p in PAYABLES if p.ref in payment)
        doc = org.table(payable.collection).get(payment[payable.ref][payable.id_field])
        if doc is not None:
            if payable.paid is not None:
                doc[payable.paid] -= payment["Amount"]
            doc[payable.outstanding] += payment["Amount"]
            doc["Payments"] = [p for p in doc["Payments"] if p["PaymentID"] != payment["PaymentID"]]
            self._settle(payable, doc, self._today())
            self._payment_changed(org, payable.collection, doc[payable.id_field])
        return payment

    # ---------------------------------------------------------------------------------------------
    # Bank transactions (spend / receive money) and bank transfers (xero_accounting.yaml
    # BankTransaction, BankTransfer; https://developer.xero.com/documentation/api/accounting/banktransactions
    # and .../banktransfers)

    def _bank_account(self, org: _Org, ref: Any, name: str) -> dict[str, Any]:
        """The bank account an ``Account`` reference names (by AccountID or Code)."""
        if not isinstance(ref, dict) or not (ref.get("AccountID") or ref.get("Code")):
            raise _Invalid(f"{name} must be specified")  # sandbox wording
        accounts = org.table("Accounts")
        if ref.get("AccountID"):
            account = accounts.get(str(ref["AccountID"]))
        else:
            account = next((a for a in accounts.values() if a["Code"] == str(ref["Code"])), None)
        if account is None:
            raise _Invalid(f"{name} {ref.get('Code') or ref.get('AccountID')} could not be found")  # sandbox
        if account["Type"] != "BANK":
            raise _Invalid(f"{name} {account['Code']} is not a bank account")  # sandbox wording
        if account["Status"] != "ACTIVE":
            raise _Invalid(f"{name} {account['Code']} is archived")  # sandbox wording
        return account

    @staticmethod
    def _account_ref(account: dict[str, Any]) -> dict[str, Any]:
        return {"AccountID": account["AccountID"], "Code": account["Code"], "Name": account["Name"]}

    def _write_bank_transaction(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        table = org.table("BankTransactions")
        existing = write.target
        if existing is None and element.get("BankTransactionID"):
            existing = table.get(str(element["BankTransactionID"]))
            if existing is None:
                raise _Invalid(
                    f"Bank transaction {element['BankTransactionID']} could not be found"
                )  # sandbox wording
        if existing is not None:
            return self._close_bank_transaction(element, existing)
        txn_type = element.get("Type")
        if not txn_type:
            raise _Invalid("Type must be specified")  # sandbox wording
        if txn_type not in BANK_TRANSACTION_TYPES:
            raise _Invalid(f"'{txn_type}' is not a valid Type for a bank transaction")  # sandbox wording
        if txn_type.endswith("-TRANSFER"):
            raise _Invalid("Transfer bank transactions are created through BankTransfers")  # sandbox wording
        if txn_type not in CREATABLE_BANK_TYPES:
            raise _Invalid(f"The sandbox does not model {txn_type} bank transactions")  # sandbox limit
        errors: list[str] = []
        contact, account, amounts, currency, reference, day = self._bank_header(org, element, errors)
        raw_lines = element.get("LineItems")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _Invalid("At least one line item is required", *errors)  # sandbox wording
        priced = self._price(org, raw_lines, txn_type, "AUTHORISED", amounts, [], write.unitdp, errors)
        if not errors and priced.total <= 0:
            errors.append("The total of a bank transaction must be greater than zero")  # sandbox wording
        if errors:
            raise _Invalid(*errors)
        assert account is not None  # no errors: both were found
        assert contact is not None
        if txn_type == "SPEND":
            contact["IsSupplier"] = True  # Xero marks a contact money is spent to as a supplier
        txn_id = str(uuid.uuid4())
        txn: dict[str, Any] = {
            "BankTransactionID": txn_id,
            "BankAccount": self._account_ref(account),
            "Type": txn_type,
            "Reference": reference,
            "IsReconciled": bool(element.get("IsReconciled", False)),
            "CurrencyRate": RATE_ONE,
            "Contact": self._contact_summary(contact),
            **_date_fields("Date", day),
            "Status": "AUTHORISED",
            "LineAmountTypes": amounts,
            "LineItems": priced.lines,
            "SubTotal": priced.sub_total,
            "TotalTax": priced.total_tax,
            "Total": priced.total,
            "UpdatedDateUTC": self._updated(),
            "CurrencyCode": currency,
            "HasAttachments": False,
        }
        table[txn_id] = txn
        return txn

    def _bank_header(
        self, org: _Org, element: dict[str, Any], errors: list[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str, str, str, date]:
        """(contact, bank account, LineAmountTypes, currency, Reference, Date) of a new spend or
        receive money; what is wrong goes to ``errors``."""
        ref = element.get("Contact")
        contact: dict[str, Any] | None = None
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")):
            # Xero's own words (xero_accounting.yaml, the createBankTransactions example).
            errors.append(
                "The Contact must contain at least 1 of the following elements to identify the contact: "
                "Name, ContactID, ContactNumber"
            )
        else:
            try:
                contact = self._contact_ref(org, element, None)
            except _Invalid as invalid:
                errors.extend(invalid.messages)
        account: dict[str, Any] | None = None
        try:
            account = self._bank_account(org, element.get("BankAccount"), "BankAccount")
        except _Invalid as invalid:
            errors.extend(invalid.messages)
        status = element.get("Status") or "AUTHORISED"
        if status != "AUTHORISED":
            errors.append(
                f"A bank transaction cannot be created with a Status of {status}"
            )  # sandbox wording
        amounts = element.get("LineAmountTypes") or "Exclusive"
        if amounts not in LINE_AMOUNT_TYPES:
            errors.append(f"'{amounts}' is not a valid LineAmountTypes value")  # sandbox wording
            amounts = "Exclusive"
        currency = str(
            element.get("CurrencyCode") or (account or {}).get("CurrencyCode") or org.base_currency
        )
        if account is not None and currency != account.get("CurrencyCode", org.base_currency):
            errors.append(
                f"The currency {currency} does not match bank account {account['Code']}'s"
            )  # sandbox wording
        reference = element.get("Reference", "")
        if not isinstance(reference, str):
            errors.append("Reference must be a string")  # sandbox wording
            reference = ""
        elif len(reference) > MAX_NUMBER_LENGTH:
            errors.append(f"Reference must not exceed {MAX_NUMBER_LENGTH} characters")  # sandbox wording
        try:
            day = _parse_date(element["Date"], "Date") if element.get("Date") else self._today()
        except _Invalid as invalid:
            errors.extend(invalid.messages)
            day = self._today()
        return contact, account, str(amounts), currency, reference, day

    def _close_bank_transaction(self, element: dict[str, Any], txn: dict[str, Any]) -> dict[str, Any]:
        """An update: the sandbox models only deleting or voiding one (how a person undoes it)."""
        status = element.get("Status")
        if status not in BANK_CLOSED_STATUSES or set(element) - {"BankTransactionID", "Status"}:
            raise _Invalid("The sandbox updates a bank transaction's Status to DELETED or VOIDED only")
        if txn["Type"].endswith("-TRANSFER"):
            raise _Invalid("This transaction is part of a bank transfer: delete the transfer")  # sandbox
        if txn["Status"] in BANK_CLOSED_STATUSES:
            raise _Invalid(f"The bank transaction is already {txn['Status']}")  # sandbox wording
        txn["Status"] = status
        self._stamp(txn)
        return txn

    def _delete_bank_transfer(
        self, org: _Org, element: dict[str, Any], target: dict[str, Any] | None
    ) -> dict[str, Any]:
        """deleteBankTransfer(s): ``Status`` DELETED, which deletes both of its bank transactions."""
        table = org.table("BankTransfers")
        transfer = target
        if transfer is None:
            transfer = table.get(str(element.get("BankTransferID", "")))
        if transfer is None:
            raise _Invalid(f"Bank transfer {element.get('BankTransferID')} could not be found")  # sandbox
        if element.get("Status") != "DELETED":
            raise _Invalid("A bank transfer can only be updated to a Status of DELETED")  # sandbox wording
        if transfer["Status"] == "DELETED":
            raise _Invalid("The bank transfer has already been deleted")  # sandbox wording
        transfer["Status"] = "DELETED"
        for side in ("FromBankTransactionID", "ToBankTransactionID"):
            txn = org.table("BankTransactions")[transfer[side]]
            txn["Status"] = "DELETED"
            self._stamp(txn)
        return transfer

    def _transfer_side(
        self, org: _Org, account: dict[str, Any], txn_type: str, amount: Decimal, reference: str, day: date
    ) -> str:
        txn_id = str(uuid.uuid4())
        org.table("BankTransactions")[txn_id] = {
            "BankTransactionID": txn_id,
            "BankAccount": self._account_ref(account),
            "Type": txn_type,
            "Reference": reference,
            "IsReconciled": False,
            "CurrencyRate": RATE_ONE,
            **_date_fields("Date", day),
            "Status": "AUTHORISED",
            "LineAmountTypes": "NoTax",
            "LineItems": [],
            "SubTotal": amount,
            "TotalTax": Decimal("0.00"),
            "Total": amount,
            "UpdatedDateUTC": self._updated(),
            "CurrencyCode": account.get("CurrencyCode", org.base_currency),
            "HasAttachments": False,
        }
        return txn_id

    def _write_bank_transfer(self, org: _Org, element: dict[str, Any], write: _Write) -> dict[str, Any]:
        """PUT creates (createBankTransfer); POST deletes (deleteBankTransfer(s): ``Status`` DELETED)."""
        table = org.table("BankTransfers")
        if write.method == "POST":
            return self._delete_bank_transfer(org, element, write.target)
        errors: list[str] = []
        accounts: list[dict[str, Any]] = []
        for name in ("FromBankAccount", "ToBankAccount"):
            try:
                accounts.append(self._bank_account(org, element.get(name), name))
            except _Invalid as invalid:
                errors.extend(invalid.messages)
        if len(accounts) == 2:
            source, target = accounts
            if source["AccountID"] == target["AccountID"]:
                errors.append("The From and To bank accounts must be different")  # sandbox wording
            if source.get("CurrencyCode") != target.get("CurrencyCode"):
                errors.append("The sandbox does not model transfers between currencies")  # sandbox limit
        amount: Decimal | None = None
        if element.get("Amount") is None:
            errors.append("Amount must be specified")  # sandbox wording
        else:
            try:
                amount = money(_dec(element["Amount"], "Amount"))
                if amount <= 0:
                    errors.append("Amount must be greater than zero")  # sandbox wording
            except _Invalid as invalid:
                errors.extend(invalid.messages)
        reference = element.get("Reference", "")
        if not isinstance(reference, str):
            errors.append("Reference must be a string")  # sandbox wording
        elif len(reference) > MAX_NUMBER_LENGTH:
            errors.append(f"Reference must not exceed {MAX_NUMBER_LENGTH} characters")  # sandbox wording
        try:
            day = _parse_date(element["Date"], "Date") if element.get("Date") else self._today()
        except _Invalid as invalid:
            errors.extend(invalid.messages)
            day = self._today()
        if errors:
            raise _Invalid(*errors)
        assert amount is not None  # no errors: it was read
        assert isinstance(reference, str)
        source, target = accounts
        transfer_id = str(uuid.uuid4())
        # Xero books a transfer as two bank transactions, one on each account (GET BankTransactions
        # lists them as SPEND-TRANSFER and RECEIVE-TRANSFER).
        sides = {
            side: self._transfer_side(org, account, txn_type, amount, reference, day)
            for side, account, txn_type in (
                ("From", source, "SPEND-TRANSFER"),
                ("To", target, "RECEIVE-TRANSFER"),
            )
        }
        transfer: dict[str, Any] = {
            "BankTransferID": transfer_id,
            **_date_fields("Date", day),
            "Status": "AUTHORISED",
            "FromBankAccount": self._account_ref(source),
            "ToBankAccount": self._account_ref(target),
            "Amount": amount,
            "FromBankTransactionID": sides["From"],
            "ToBankTransactionID": sides["To"],
            "FromIsReconciled": False,
            "ToIsReconciled": False,
            "Reference": reference,
            "CurrencyRate": RATE_ONE,
            "HasAttachments": False,
            "CreatedDateUTC": self._updated(),
        }
        table[transfer_id] = transfer
        return transfer


# --------------------------------------------------------------------------------------------------
# Running it on its own


def main(argv: list[str] | None = None) -> int:
    parser = foreground_parser(
        "Run the local Xero Accounting API sandbox in the foreground.",
        port=8791,
        seed_flag="--seed-tenant",
        noun="tenant",
    )
    parser.add_argument("--calls-per-minute", type=int, default=60)
    parser.add_argument("--max-concurrent", type=int, default=5)
    parser.add_argument("--calls-per-day", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each API call takes")
    args = parser.parse_args(argv)

    sandbox = XeroSandbox(
        calls_per_minute=args.calls_per_minute,
        max_concurrent=args.max_concurrent,
        calls_per_day=args.calls_per_day,
        latency_seconds=args.latency,
    )
    seed_demo(
        "tenant", args.seed_tenant, lambda tenant, _number, demo: sandbox.seed_organisation(tenant, **demo)
    )
    return run_foreground(
        sandbox,
        args.host,
        args.port,
        lambda url: f"Xero sandbox listening on {url} (token URL {url}/connect/token)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
