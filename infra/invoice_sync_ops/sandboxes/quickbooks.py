"""A local QuickBooks Online v3 sandbox that speaks the subset of the real API the adapter uses.

It exists so the QBO adapter is exercised over real HTTP with QBO's own paths, payload shapes, Fault
bodies, error codes, OAuth token rotation, idempotent ``requestid`` replays and rate limits, and so
tests can provoke the failures that are hard to get from Intuit's sandbox on demand (429s, 5xx,
responses lost after a commit, revoked or expired tokens).

Money inside the sandbox is ``Decimal`` end to end: request bodies are parsed with ``parse_float=Decimal``
and Decimals are written back as JSON numbers with (at least) two decimal places, never through float.

Webhooks (design two-way 2.2, 6): ``subscribe(realm, url, verifier_token, format="cloudevents" |
"legacy")`` (control API ``POST /_sandbox/companies/<realm>/webhooks``). Every Payment and CreditMemo
create, update, delete and void (API, batch or by hand) is posted once saved, one change per body (the
sandbox does not aggregate, as Intuit's sandbox), signed ``intuit-signature`` = base64 HMAC-SHA256 of
the raw body with the verifier token. Differences from Intuit: subscriptions are per realm, not per
app; no Invoice events; retries come after ``retry_delays`` seconds, not Intuit's 0/10/20/30 s... series.

Deposits (design two-way 2.2, 6; Intuit's Deposit entity reference,
https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/deposit): create,
read, update, query by TxnDate and ``deposit?operation=delete``. ``DepositToAccountRef`` must be a Bank
or Other Current Asset account; a linked line (``TxnLineId`` required) moves a Payment or RefundReceipt
whose money is in Undeposited Funds and that no other deposit holds (else 6540 "Deposited Transaction
cannot be changed"; an unknown one is 2500), for its whole amount; a direct line names an account of
one of the types the reference lists; ``TotalAmt`` is computed from the lines. Two documented
assumptions until a real company settles them (design 9.1, 9.2): negative direct lines are taken, and
a refund receipt's linked line carries its amount negated. A deposited Payment or RefundReceipt refuses
updates, voids and deletes with 6540 until its deposit is deleted. Differences from Intuit: only
Payment and RefundReceipt can be linked (the sandbox holds no SalesReceipt, Transfer or JournalEntry),
and ``GlobalTaxCalculation`` is not required of non-US companies.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from invoice_sync_ops.sandboxes.base import (
    BY_HAND_PAYMENTS,
    BY_HAND_REMOVALS,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ByHandPayment,
    GrantRefused,
    SandboxServer,
    TokenReader,
    Traffic,
    decimal_number,
    dumps,
    expire_window,
    foreground_parser,
    loads,
    money,
    parse_number,
    removed_payment_id,
    run_foreground,
    seed_demo,
)
from invoice_sync_ops.sandboxes.webhooks import base64_hmac_sha256

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "QuickBooksSandbox", "SandboxItem", "dumps", "main"]

ACCESS_TOKEN_TTL = 3600
REFRESH_TOKEN_TTL = 8726400
MINIMUM_MINOR_VERSION = 75
MAX_BATCH_ITEMS = 30
SECOND = 1.0
MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36
MAX_BID = 10
MAX_DOC_NUMBER = 21
DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000
FIRST_ID = 100

# QBO stamps times in the company's zone; Intuit's examples show Pacific (-07:00), and the adapter must
# not depend on the offset anyway.
QBO_TZ = timezone(timedelta(hours=-7))

# Entity path segment (as QBO spells it in URLs) -> entity name (as it appears in JSON bodies).
ENTITIES = {
    "customer": "Customer",
    "item": "Item",
    "invoice": "Invoice",
    "creditmemo": "CreditMemo",
    "refundreceipt": "RefundReceipt",
    "payment": "Payment",
    "taxcode": "TaxCode",
    "account": "Account",
    "companyinfo": "CompanyInfo",
    "deposit": "Deposit",
}
WRITABLE = {"Customer", "Item", "Invoice", "CreditMemo", "RefundReceipt", "Payment", "Deposit"}
VOIDABLE = {"Invoice", "Payment", "CreditMemo"}
DELETABLE = {"Invoice", "CreditMemo", "RefundReceipt", "Payment", "Deposit"}
# Name-list entities: like QBO, a query without an Active condition only returns active ones.
NAME_LISTS = {"Customer", "Item", "Account", "TaxCode"}
QUERYABLE_FIELDS = {
    "id",
    "displayname",
    "docnumber",
    "name",
    "active",
    "customerref",
    "txndate",
    "paymentrefnum",
    "accounttype",
    "type",
    "companyname",
    "fullyqualifiedname",
    "country",
    # What reconciliation pages by: QBO's change time on every entity.
    "metadata.lastupdatedtime",
    "metadata.createtime",
}
# Comparisons QBO's query language takes besides = and IN (dates compare as moments).
COMPARISONS = ("<", "<=", ">", ">=")
HOME_CURRENCY = {"US": "USD", "GB": "GBP", "AU": "AUD", "CA": "CAD", "NZ": "NZD", "IE": "EUR", "IN": "INR"}
# Sales forms (priced from lines by _build_sales_doc, numbered from one custom-number space) and
# how QBO names each in a 6140 Detail.
TXN_TYPE_LABEL = {"Invoice": "Invoice", "CreditMemo": "Credit Memo", "RefundReceipt": "Refund Receipt"}
# Webhooks (design two-way 2.2): the entities whose changes the sandbox announces, the legacy
# operation and the CloudEvents verb of each write, and the header the body is signed in.
NOTIFIED = {"Payment", "CreditMemo"}
LEGACY_OPERATION = {"create": "Create", "update": "Update", "delete": "Delete", "void": "Void"}
CLOUD_VERB = {"create": "created", "update": "updated", "delete": "deleted", "void": "voided"}
SIGNATURE_HEADER = "intuit-signature"
# CloudEvents ``source``: Intuit's names the app (intuit.<app hash>); the sandbox's names itself.
CLOUD_SOURCE = "intuit.sandbox"

# The account types QBO lets a refund receipt be paid from (its DepositToAccountRef).
REFUND_FROM_ACCOUNT_TYPES = {"Bank", "Credit Card", "Other Current Asset"}
# Deposits (Intuit's Deposit entity reference, as design two-way 2.2 reads it): the account types the
# money can land in, the types a direct line's AccountRef may have, the transaction types a line can
# link, of which the sandbox holds Payment and RefundReceipt, and the longest PrivateNote / Description.
DEPOSIT_TO_ACCOUNT_TYPES = {"Bank", "Other Current Asset"}
DEPOSIT_LINE_ACCOUNT_TYPES = {
    "Income",
    "Other Income",
    "Expense",
    "Other Expense",
    "Other Current Asset",
    "Equity",
    "Cost of Goods Sold",
}
LINKABLE_TO_DEPOSIT = {"Transfer", "Payment", "SalesReceipt", "RefundReceipt", "JournalEntry"}
DEPOSITED = ("Payment", "RefundReceipt")  # what a sandbox deposit can hold, and so lock
MAX_DEPOSIT_TEXT = 4000


@dataclass
class SandboxItem:
    """A product/service in the seeded chart (QBO ``Item``)."""

    id: str
    name: str
    income_account_id: str
    active: bool = True
    type: str = "Service"


class _Fault(Exception):
    """A QBO Fault: raised anywhere inside request handling, rendered once at the edge."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str = "",
        *,
        fault_type: str = "ValidationFault",
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.fault_type = fault_type
        self.element = element

    def fault(self) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail or self.message, "code": self.code}
        error["element"] = self.element
        return {"Error": [error], "type": self.fault_type}


def _required(name: str) -> _Fault:
    return _Fault(
        400,
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
        element=name,
    )


def _business(detail: str) -> _Fault:
    return _Fault(
        400,
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def _invalid_ref(detail: str, element: str = "") -> _Fault:
    return _Fault(400, "2500", "Invalid Reference Id", f"Invalid Reference Id : {detail}", element=element)


def _invalid_request(detail: str) -> _Fault:
    return _Fault(400, "2010", "Request has invalid or unsupported property", detail)


def _not_found(entity: str, obj_id: str) -> _Fault:
    return _Fault(
        400,
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. ({entity} Id={obj_id})",
    )


def _unsupported(detail: str) -> _Fault:
    return _Fault(400, "500", "Unsupported Operation", f"Operation {detail} is not supported.")


def _deposited(entity: str, obj_id: str, deposit_id: str) -> _Fault:
    """QBO's refusal to change, or deposit again, money a deposit already holds (LEDGER-APIS 1.7)."""
    return _Fault(
        400,
        "6540",
        "Deposited Transaction cannot be changed",
        f"This transaction has been deposited. If you want to change or delete it, you must edit the "
        f"deposit it appears on and remove it first. ({entity} Id={obj_id} is in Deposit Id={deposit_id})",
    )


def _query_error(detail: str) -> _Fault:
    return _Fault(400, "4000", "Error parsing query", f"QueryParserError: {detail}")


def _auth_fault_body(now: str) -> dict[str, Any]:
    message = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    return {
        "Fault": {"Error": [{"Message": message, "code": "3200"}], "type": "AuthenticationFault"},
        "time": now,
    }


def _throttle_body(now: str) -> dict[str, Any]:
    message = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    return {
        "Fault": {"Error": [{"Message": message, "code": "3001"}], "type": "ThrottlingFault"},
        "time": now,
    }


def _system_fault_body(now: str) -> dict[str, Any]:
    error = {
        "Message": "An application error has occurred while processing your request",
        "Detail": "System Failure Error: An unexpected error occurred while accessing or saving your data. "
        "Please wait a few minutes and try again. If the problem persists, contact customer support.",
        "code": "10000",
    }
    return {"Fault": {"Error": [error], "type": "SystemFault"}, "time": now}


# --------------------------------------------------------------------------------------------------
# Values


def _dec(value: Any, element: str) -> Decimal:
    result = parse_number(value)
    if result is None:
        raise _invalid_request(f"{element} must be a number")
    return result


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


# --------------------------------------------------------------------------------------------------
# Query language (the small subset of QBO's SQL dialect the adapter needs)

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<sym>!=|<=|>=|[=(),*<>])|(?P<word>[A-Za-z_][\w.]*)|(?P<num>-?\d+(?:\.\d+)?))"
)


@dataclass
class _Query:
    entity: str
    count: bool = False
    conditions: list[tuple[str, list[str | bool]]] = field(default_factory=list)
    comparisons: list[tuple[str, str, str]] = field(default_factory=list)  # (property, operator, value)
    order_by: str | None = None
    descending: bool = False
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


class _QueryParser(TokenReader):
    def __init__(self, text: str) -> None:
        super().__init__(
            _TOKEN,
            text.rstrip(),
            _query_error,
            bad_character="Encountered an unexpected character at position {position}",
            unexpected_end="Unexpected end of query",
        )

    def _keyword(self, *words: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "word" and token[1].lower() in words:
            self.pos += 1
            return True
        return False

    def _expect_word(self, word: str) -> None:
        if not self._keyword(word):
            raise _query_error(f"Expected {word.upper()}")

    def _expect_sym(self, sym: str) -> None:
        kind, text = self._next()
        if kind != "sym" or text != sym:
            raise _query_error(f"Expected '{sym}' but found '{text}'")

    def _field(self) -> str:
        kind, text = self._next()
        if kind != "word" or text.lower() not in QUERYABLE_FIELDS:
            raise _query_error(f"Unsupported property name: {text}")
        return text

    def _value(self) -> str | bool:
        kind, text = self._next()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return text
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise _query_error(f"Expected a value but found '{text}'")

    def _int(self) -> int:
        kind, text = self._next()
        if kind != "num" or not text.isdigit():
            raise _query_error(f"Expected a number but found '{text}'")
        return int(text)

    def _conditions(self, query: _Query) -> None:
        """``prop = v``, ``prop IN (...)``, ``prop < <= > >= v`` (QBO compares dates too), joined by AND."""
        while True:
            prop = self._field()
            if self._keyword("in"):
                self._expect_sym("(")
                values = [self._value()]
                while self._peek() == ("sym", ","):
                    self.pos += 1
                    values.append(self._value())
                self._expect_sym(")")
            else:
                kind, op = self._next()
                if kind == "sym" and op in COMPARISONS:
                    value = self._value()
                    query.comparisons.append((prop, op, str(value)))
                    if not self._keyword("and"):
                        break
                    continue
                if kind != "sym" or op != "=":
                    raise _query_error(f"Expected '=' but found '{op}'")
                values = [self._value()]
            query.conditions.append((prop, values))
            if not self._keyword("and"):
                break

    def parse(self) -> _Query:
        self._expect_word("select")
        count = False
        if self._keyword("count"):
            self._expect_sym("(")
            self._expect_sym("*")
            self._expect_sym(")")
            count = True
        else:
            self._expect_sym("*")
        self._expect_word("from")
        kind, name = self._next()
        entity = ENTITIES.get(name.lower()) if kind == "word" else None
        if entity is None:
            raise _query_error(f"Unsupported entity: {name}")
        query = _Query(entity=entity, count=count)
        if self._keyword("where"):
            self._conditions(query)
        if self._keyword("orderby") or (self._keyword("order") and self._keyword("by")):
            query.order_by = self._field()
            if self._keyword("desc"):
                query.descending = True
            else:
                self._keyword("asc")
        if self._keyword("startposition"):
            query.start = max(1, self._int())
        if self._keyword("maxresults"):
            query.max_results = min(MAX_MAX_RESULTS, self._int())
        if self._peek() is not None:
            raise _query_error(f"Unexpected token '{self._next()[1]}'")
        return query


def _field_value(obj: dict[str, Any], prop: str) -> Any:
    if "." in prop:  # MetaData.LastUpdatedTime
        head, _, rest = prop.partition(".")
        inner = next((v for k, v in obj.items() if k.lower() == head.lower()), None)
        return _field_value(inner, rest) if isinstance(inner, dict) else None
    for key, value in obj.items():
        if key.lower() == prop.lower():
            return _ref_value(value) if isinstance(value, dict) else value
    return None


def _matches(obj: dict[str, Any], prop: str, values: list[str | bool]) -> bool:
    actual = _field_value(obj, prop)
    for wanted in values:
        if isinstance(wanted, bool):
            if actual is wanted:
                return True
        elif actual is not None and not isinstance(actual, bool) and str(actual) == wanted:
            return True
    return False


def _compares(obj: dict[str, Any], prop: str, op: str, wanted: str) -> bool:
    """``prop op wanted``: moments for date-times (any offset), numbers for numbers, else text."""
    actual = _field_value(obj, prop)
    if actual is None:
        return False
    left: Any
    right: Any
    try:
        left = datetime.fromisoformat(str(actual).replace("Z", "+00:00"))
        right = datetime.fromisoformat(wanted.replace("Z", "+00:00"))
        if left.tzinfo is None or right.tzinfo is None:
            left, right = left.replace(tzinfo=None), right.replace(tzinfo=None)
    except ValueError:
        try:
            left, right = Decimal(str(actual)), Decimal(wanted)
        except ArithmeticError:
            left, right = str(actual), wanted
    outcomes: dict[str, bool] = {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }
    return outcomes[op]


def _sort_key(value: Any) -> tuple[int, Decimal, str]:
    text = "" if value is None else str(value)
    # Ids are numeric strings; compare them as numbers so "100" sorts after "99", like QBO.
    return (0, Decimal(text), "") if re.fullmatch(r"\d+", text) else (1, Decimal(0), text.lower())


# --------------------------------------------------------------------------------------------------
# Company state


@dataclass
class _Company(Traffic):
    realm_id: str
    client_id: str
    client_secret: str
    refresh_token: str | None
    country: str
    custom_txn_numbers: bool
    company_name: str
    access_tokens: dict[str, float] = field(default_factory=dict)
    second: deque[float] = field(default_factory=deque)  # when the calls of the last second came in
    batch_minute: deque[float] = field(default_factory=deque)  # ... the /batch calls of the last minute
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    next_id: int = FIRST_ID
    next_doc_number: int = 1001
    request_ids: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.store.setdefault(entity, {})

    @property
    def currency(self) -> str:
        return HOME_CURRENCY.get(self.country, "USD")


class QuickBooksSandbox(SandboxServer[_Company]):
    """An in-memory QBO v3 company server. Thread-safe: one lock guards all company state."""

    thread_name = "qbo-sandbox"
    logged_prefixes = ("/v3/", "/oauth2/")
    json_type = "application/json;charset=UTF-8"
    control_root = "companies"
    seed_key = "realm_id"
    tenant_noun = "realm"
    authorize_path = "/connect/oauth2"  # https://appcenter.intuit.com/connect/oauth2
    # ``cloudevents`` (Intuit's format since its 2026 migration) or the ``legacy`` eventNotifications.
    webhook_formats = ("cloudevents", "legacy")

    def __init__(
        self,
        *,
        requests_per_minute: int = 500,
        max_concurrent: int = 10,
        requests_per_second: int = 10,
        batch_requests_per_minute: int = 40,
        clock: Callable[[], float] = time.time,
        latency_seconds: float = 0.0,
    ) -> None:
        # Intuit's limits per company and app (LEDGER-APIS.md 1.3): 500 requests a minute, 10 a
        # second, 10 at once, and at most 40 /batch requests a minute. Past any of them a call is
        # refused 429 ThrottleExceeded with no Retry-After header (Intuit documents none).
        self.requests_per_minute = requests_per_minute
        self.max_concurrent = max_concurrent
        self.requests_per_second = requests_per_second
        self.batch_requests_per_minute = batch_requests_per_minute
        super().__init__(
            clock=clock,
            latency_seconds=latency_seconds,
            rules=[
                Rule("/oauth2/v1/tokens/bearer", endpoint="token", methods=["POST"]),
                Rule("/v3/company/<realm>/query", endpoint="query", methods=["GET", "POST"]),
                Rule("/v3/company/<realm>/batch", endpoint="batch", methods=["POST"]),
                Rule("/v3/company/<realm>/<entity>/<obj_id>", endpoint="read", methods=["GET"]),
                Rule("/v3/company/<realm>/<entity>", endpoint="write", methods=["POST"]),
            ],
        )

    # ---------------------------------------------------------------------------------------------
    # Test controls

    def seed_company(
        self,
        realm_id: str,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        country: str = "US",
        custom_txn_numbers: bool = True,
        company_name: str = "Sandbox Company US",
    ) -> None:
        """Create (or reset) a company with QBO's default sandbox chart of accounts, items and tax codes."""
        company = _Company(
            realm_id=realm_id,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            country=country.upper(),
            custom_txn_numbers=custom_txn_numbers,
            company_name=company_name,
        )
        meta = self._metadata()
        accounts = [
            ("1", "Services", "Income", "ServiceFeeIncome", "Revenue"),
            ("79", "Sales of Product Income", "Income", "SalesOfProductIncome", "Revenue"),
            ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset"),
            ("35", "Checking", "Bank", "Checking", "Asset"),
            # Where a payout's deposit books its Stripe fees and money no synced payment accounts
            # for (design two-way 6: ids 92 and 93).
            ("92", "Merchant fees", "Expense", "BankCharges", "Expense"),
            ("93", "Stripe unmatched", "Other Income", "OtherMiscellaneousIncome", "Revenue"),
        ]
        for acc_id, name, acc_type, sub_type, classification in accounts:
            company.table("Account")[acc_id] = {
                "Name": name,
                "FullyQualifiedName": name,
                "Active": True,
                "Classification": classification,
                "AccountType": acc_type,
                "AccountSubType": sub_type,
                "CurrentBalance": Decimal(0),
                "CurrencyRef": {"value": company.currency},
                "domain": "QBO",
                "Id": acc_id,
                "SyncToken": "0",
                "MetaData": dict(meta),
            }
        if company.country == "US":
            taxes = [("TAX", "TAX", "TAX", True, Decimal(0)), ("NON", "NON", "NON", False, Decimal(0))]
        else:
            taxes = [
                ("2", "GST", "GST 10%", True, Decimal(10)),
                ("3", "Exempt", "Exempt 0%", False, Decimal(0)),
            ]
        for code_id, name, description, taxable, rate in taxes:
            company.tax_rates[code_id] = rate
            company.table("TaxCode")[code_id] = {
                "Name": name,
                "Description": description,
                "Active": True,
                "Taxable": taxable,
                "domain": "QBO",
                "Id": code_id,
                "SyncToken": "0",
                "MetaData": dict(meta),
            }
        company.table("CompanyInfo")["1"] = {
            "CompanyName": company_name,
            "LegalName": company_name,
            "Country": company.country,
            "domain": "QBO",
            "Id": "1",
            "SyncToken": "0",
            "MetaData": dict(meta),
        }
        with self._lock:
            self._tenants[realm_id] = company
            for item in (
                SandboxItem("1", "Services", "1"),
                SandboxItem("2", "Hours", "1"),
                SandboxItem("3", "Hosting", "79"),
                SandboxItem("9", "Old plan", "1", active=False),
            ):
                self.seed_item(realm_id, item)

    def seed_item(self, realm_id: str, item: SandboxItem) -> None:
        """Add or replace one item in a seeded company (e.g. a product the mapping refers to)."""
        with self._lock:
            company = self._tenant(realm_id)
            account = company.table("Account").get(item.income_account_id)
            if account is None:
                raise KeyError(f"unknown income account {item.income_account_id}")
            company.table("Item")[item.id] = {
                "Name": item.name,
                "FullyQualifiedName": item.name,
                "Active": item.active,
                "Type": item.type,
                "Taxable": False,
                "UnitPrice": Decimal(0),
                "IncomeAccountRef": {"value": item.income_account_id, "name": account["Name"]},
                "domain": "QBO",
                "Id": item.id,
                "SyncToken": "0",
                "MetaData": self._metadata(),
            }

    def documents(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        """Deep copies of the objects currently stored (Decimals for money), in creation order."""
        with self._lock:
            return copy.deepcopy(list(self._tenant(realm_id).table(entity).values()))

    def inject_status(self, realm_id: str, status: int, count: int = 1) -> None:
        self._inject_status(realm_id, status, count)

    def lose_responses(self, realm_id: str, count: int = 1, lost_as: str = "gateway") -> None:
        self._lose_responses(realm_id, count, lost_as)

    def revoke_refresh_token(self, realm_id: str) -> None:
        with self._lock:
            self._tenant(realm_id).refresh_token = None

    def expire_access_tokens(self, realm_id: str) -> None:
        with self._lock:
            self._tenant(realm_id).access_tokens.clear()

    def forget_request_ids(self, realm_id: str) -> None:
        """Empties the ``requestid`` replay cache, as QBO's own expires after an undocumented while."""
        with self._lock:
            self._tenant(realm_id).request_ids.clear()

    def record_payment_by_hand(
        self,
        realm_id: str,
        invoice_id: str,
        amount: Decimal,
        *,
        paid_on: date | None = None,
        reference: str | None = None,
        note: str | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        """A person receiving a payment in QBO (Receive payment): a Payment of ``amount`` on the
        invoice for its customer, with no invoice-sync marker, into ``account`` (an account id; none:
        Undeposited Funds). It goes through the API's own write, so the invoice's Balance and
        LinkedTxn, its SyncToken and LastUpdatedTime move as QBO moves them, and what QBO would
        refuse (more than is due) raises ``ValueError``. Returns the Payment as QBO serves it."""
        with self._lock:
            company = self._tenant(realm_id)
            invoice = company.table("Invoice").get(str(invoice_id))
            if invoice is None:
                raise KeyError(f"invoice {invoice_id}")
            body: dict[str, Any] = {
                "CustomerRef": {"value": _ref_value(invoice["CustomerRef"])},
                "CurrencyRef": dict(invoice.get("CurrencyRef") or {"value": company.currency}),
                "TotalAmt": amount,
                "TxnDate": (paid_on or self._now().date()).isoformat(),
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            }
            if reference:
                body["PaymentRefNum"] = reference
            if note:
                body["PrivateNote"] = note
            if account:
                body["DepositToAccountRef"] = {"value": account}
            try:
                written = self._write(company, "Payment", body, "")
            except _Fault as fault:
                raise ValueError(f"QBO {fault.code}: {fault.detail or fault.message}") from fault
            payment: dict[str, Any] = written["Payment"]
            return payment

    def void_payment_by_hand(self, realm_id: str, payment_id: str) -> dict[str, Any]:
        """A person voiding a payment in QBO: zeroed, its note "Voided", its invoices owed again,
        SyncToken and LastUpdatedTime moved (the API's own void). Returns the voided Payment."""
        with self._lock:
            company = self._tenant(realm_id)
            payment = company.table("Payment").get(str(payment_id))
            if payment is None:
                raise KeyError(f"payment {payment_id}")
            body = {"Id": payment["Id"], "SyncToken": payment["SyncToken"]}
            try:
                voided: dict[str, Any] = self._write(company, "Payment", body, "void")["Payment"]
            except _Fault as fault:
                raise ValueError(f"QBO {fault.code}: {fault.detail or fault.message}") from fault
            return voided

    # ---------------------------------------------------------------------------------------------
    # Helpers

    def _control_calls(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        return {
            **super()._control_calls(),
            BY_HAND_PAYMENTS: self._payment_by_hand_call,
            BY_HAND_REMOVALS: lambda realm_id, body: self.void_payment_by_hand(
                realm_id, removed_payment_id(body)
            ),
        }

    def _payment_by_hand_call(self, realm_id: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = ByHandPayment.from_body(body)
        return self.record_payment_by_hand(
            realm_id,
            wanted.invoice_id,
            wanted.amount,
            paid_on=wanted.paid_on,
            reference=wanted.reference,
            note=wanted.note,
            account=wanted.account,
        )

    def _seed_tenant(self, tenant_id: str, options: dict[str, Any]) -> None:
        self.seed_company(tenant_id, **options)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC).astimezone(QBO_TZ)

    def _time(self) -> str:
        return self._now().isoformat(timespec="milliseconds")

    def _metadata(self) -> dict[str, str]:
        stamp = self._now().isoformat(timespec="seconds")
        return {"CreateTime": stamp, "LastUpdatedTime": stamp}

    def _route(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        if endpoint == "token":
            return self._token(request)
        return self._api(request, endpoint, {key: str(value) for key, value in args.items()})

    # ---------------------------------------------------------------------------------------------
    # OAuth

    def _token(self, request: Request) -> Response:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username:
            return self._json({"error": "invalid_client"}, 401)
        client_id, client_secret = auth.username, auth.password or ""
        grant_type = request.form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return self._json({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            if not any(
                secrets.compare_digest(c.client_id, client_id)
                and secrets.compare_digest(c.client_secret, client_secret)
                for c in self._tenants.values()
            ):
                return self._json({"error": "invalid_client"}, 401)
            if grant_type == "authorization_code":
                try:
                    (company,) = self._redeem_code(request.form, client_id)
                except GrantRefused as refused:
                    return self._json({"error": refused.error, "error_description": refused.description}, 400)
                return self._json(self._issue_tokens(company))
            presented = request.form.get("refresh_token", "")
            found = next(
                (
                    c
                    for c in self._tenants.values()
                    if c.refresh_token is not None and secrets.compare_digest(c.refresh_token, presented)
                ),
                None,
            )
            if found is None or found.client_id != client_id:
                return self._json({"error": "invalid_grant"}, 400)
            return self._json(self._issue_tokens(found))

    def _issue_tokens(self, company: _Company) -> dict[str, Any]:
        """A new token set; under the lock. Rotation: the refresh token before it dies as soon as its
        successor is issued, so a client that fails to save the new one is locked out, which is
        exactly what the adapter must survive. A new authorization likewise ends the old token."""
        company.refresh_token = "RT1-" + secrets.token_urlsafe(32)
        access = "eyJ-" + secrets.token_urlsafe(48)
        company.access_tokens[access] = self._clock() + ACCESS_TOKEN_TTL
        return {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": company.refresh_token,
            "x_refresh_token_expires_in": REFRESH_TOKEN_TTL,
        }

    def _redirect_extras(self, tenants: list[str]) -> dict[str, str]:
        # QBO names the company the person picked on the redirect; every API path carries it.
        return {"realmId": tenants[0]}

    # ---------------------------------------------------------------------------------------------
    # The v3 API

    def _authenticated(self, company: _Company | None, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if company is None or scheme.lower() != "bearer" or not token:
            return False
        expiry = company.access_tokens.get(token.strip())
        return expiry is not None and expiry > self._clock()

    def _api(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        realm = args["realm"]
        with self._lock:
            company = self._tenants.get(realm)
            if company is None or not self._authenticated(company, request):
                return self._json(_auth_fault_body(self._time()), 401)
            minor = request.args.get("minorversion")
            if minor is not None and (not minor.isdigit() or int(minor) < MINIMUM_MINOR_VERSION):
                message = f"Minor Version {minor} is no longer supported"
                fault = _Fault(400, "2010", message, message, element="minorversion")
                return self._json({"Fault": fault.fault(), "time": self._time()}, 400)
            status = self._next_fault(company)
            if status is not None:
                body = _throttle_body(self._time()) if status == 429 else _system_fault_body(self._time())
                return self._json(body, status)
            now = self._clock()
            expire_window(company.minute, now)
            expire_window(company.second, now, SECOND)
            expire_window(company.batch_minute, now)
            batch = endpoint == "batch"
            if (
                len(company.minute) >= self.requests_per_minute
                or len(company.second) >= self.requests_per_second
                or (batch and len(company.batch_minute) >= self.batch_requests_per_minute)
                or company.in_flight >= self.max_concurrent
            ):
                return self._json(_throttle_body(self._time()), 429)
            self._admit(company, now)
            company.second.append(now)
            if batch:
                company.batch_minute.append(now)

        def respond() -> Response:
            status, raw = self._execute(company, request, endpoint, args)
            return Response(raw, status=status, content_type=self.json_type)

        return self._serve(company, is_write=endpoint in ("write", "batch"), respond=respond)

    def _execute(
        self, company: _Company, request: Request, endpoint: str, args: dict[str, str]
    ) -> tuple[int, bytes]:
        request_id = request.args.get("requestid")
        if endpoint in ("write", "batch") and request_id is not None:
            limit = MAX_BATCH_REQUEST_ID if endpoint == "batch" else MAX_REQUEST_ID
            if not request_id or len(request_id) > limit:
                fault = _Fault(
                    400,
                    "2050",
                    "String length is either shorter or longer than supported by specification",
                    f"requestid must be 1 to {limit} characters",
                    element="requestid",
                )
                return 400, dumps({"Fault": fault.fault(), "time": self._time()}).encode()
            stored = company.request_ids.get(request_id)
            if stored is not None:
                return stored
        try:
            payload = self._handle(company, request, endpoint, args)
            status = 200
        except _Fault as fault:
            status, payload = fault.status, {"Fault": fault.fault()}
        payload["time"] = self._time()
        result = (status, dumps(payload).encode())
        if endpoint in ("write", "batch") and request_id is not None:
            company.request_ids[request_id] = result
        return result

    def _body(self, request: Request) -> Any:
        try:
            return loads(request.get_data())
        except ValueError as exc:
            raise _invalid_request("Request body is not valid JSON") from exc

    def _handle(
        self, company: _Company, request: Request, endpoint: str, args: dict[str, str]
    ) -> dict[str, Any]:
        if endpoint == "query":
            text = request.args.get("query")
            if text is None and request.method == "POST":
                text = request.get_data(as_text=True)
            if not text:
                raise _query_error("Empty query")
            return {"QueryResponse": self._query(company, text)}
        if endpoint == "batch":
            return self._batch(company, self._body(request))
        entity = ENTITIES.get(args["entity"].lower())
        if entity is None:
            raise _unsupported(f"{args['entity']}")
        if endpoint == "read":
            # CompanyInfo is read as /companyinfo/{realmId}; its own Id is "1".
            obj_id = "1" if entity == "CompanyInfo" else args["obj_id"]
            obj = company.table(entity).get(obj_id)
            if obj is None:
                raise _not_found(entity, args["obj_id"])
            return {entity: copy.deepcopy(obj)}
        body = self._body(request)
        if not isinstance(body, dict):
            raise _invalid_request("Request body must be a JSON object")
        operation = request.args.get("operation", "")
        return self._write(company, entity, body, operation.lower())

    # ---------------------------------------------------------------------------------------------
    # Query and batch

    def _query(self, company: _Company, text: str) -> dict[str, Any]:
        query = _QueryParser(text).parse()
        rows = list(company.table(query.entity).values())
        has_active = any(prop.lower() == "active" for prop, _ in query.conditions)
        if query.entity in NAME_LISTS and not has_active:
            rows = [row for row in rows if row.get("Active", True) is True]
        for prop, values in query.conditions:
            rows = [row for row in rows if _matches(row, prop, values)]
        for prop, op, wanted in query.comparisons:
            rows = [row for row in rows if _compares(row, prop, op, wanted)]
        if query.count:
            return {"totalCount": len(rows)}
        if query.order_by is not None:
            prop = query.order_by
            rows.sort(key=lambda row: _sort_key(_field_value(row, prop)), reverse=query.descending)
        page = rows[query.start - 1 : query.start - 1 + query.max_results]
        if not page:
            return {}
        return {query.entity: copy.deepcopy(page), "startPosition": query.start, "maxResults": len(page)}

    def _batch(self, company: _Company, body: Any) -> dict[str, Any]:
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise _required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise _invalid_request(f"Batch size {len(items)} exceeds the maximum of {MAX_BATCH_ITEMS}")
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            if not isinstance(bid, str) or not bid or len(bid) > MAX_BID:
                raise _invalid_request(f"bId must be 1 to {MAX_BID} characters")
        responses: list[dict[str, Any]] = []
        for item in items:
            bid = item["bId"]
            try:
                if "Query" in item:
                    responses.append({"bId": bid, "QueryResponse": self._query(company, str(item["Query"]))})
                    continue
                entity_keys = [key for key in item if key in ENTITIES.values()]
                if len(entity_keys) != 1:
                    raise _invalid_request("Each batch item needs exactly one entity or a Query")
                entity = entity_keys[0]
                obj = item[entity]
                if not isinstance(obj, dict):
                    raise _invalid_request(f"{entity} must be an object")
                operation = str(item.get("operation", "create")).lower()
                if operation == "create":
                    obj = {k: v for k, v in obj.items() if k not in ("Id", "SyncToken")}
                    result = self._write(company, entity, obj, "")
                elif operation == "update":
                    if "Id" not in obj:
                        raise _required("Id")
                    result = self._write(company, entity, obj, "")
                elif operation in ("delete", "void"):
                    result = self._write(company, entity, obj, operation)
                else:
                    raise _Fault(400, "2170", "Invalid Enumeration", f"Invalid operation: {operation}")
                responses.append({"bId": bid, **result})
            except _Fault as fault:
                responses.append({"bId": bid, "Fault": fault.fault()})
        return {"BatchItemResponse": responses}

    # ---------------------------------------------------------------------------------------------
    # Writes

    def _write(self, company: _Company, entity: str, body: dict[str, Any], operation: str) -> dict[str, Any]:
        """Every write (API, batch item, by hand) goes through here; a Payment or CreditMemo that
        changed is announced to the company's webhook subscribers once it is saved."""
        created = body.get("Id") is None
        result = self._write_entity(company, entity, body, operation)
        if entity in NOTIFIED:
            verb = operation or ("create" if created else "update")
            self._announce(company, entity, str(result[entity]["Id"]), verb)
        return result

    def _announce(self, company: _Company, entity: str, obj_id: str, verb: str) -> None:
        """Queue the webhook of one change, per subscriber: near real time (Intuit's sandbox does not
        aggregate), in the subscription's format, signed with its verifier token. Under the lock."""
        moment = datetime.fromtimestamp(self._clock(), tz=UTC)
        stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        realm = company.realm_id
        legacy = {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": entity,
                                "id": obj_id,
                                "operation": LEGACY_OPERATION[verb],
                                "lastUpdated": stamp,
                            }
                        ]
                    },
                }
            ]
        }

        def build(subscription: Any) -> tuple[bytes, dict[str, str]]:
            if subscription.format == "legacy":
                document: Any = legacy
            else:
                document = [
                    {
                        "specversion": "1.0",
                        "id": str(uuid.uuid4()),
                        "source": CLOUD_SOURCE,
                        "type": f"qbo.{entity.lower()}.{CLOUD_VERB[verb]}.v1",
                        "datacontenttype": "application/json",
                        "time": stamp,
                        "intuitentityid": obj_id,
                        "intuitaccountid": realm,
                        "data": {},
                    }
                ]
            body = json.dumps(document, separators=(",", ":")).encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: base64_hmac_sha256(body, subscription.key),
            }
            return body, headers

        self._emit(realm, f"{entity}.{LEGACY_OPERATION[verb]}", build)

    def _write_entity(
        self, company: _Company, entity: str, body: dict[str, Any], operation: str
    ) -> dict[str, Any]:
        if entity not in WRITABLE:
            raise _unsupported(f"create/update of {entity}")
        table = company.table(entity)
        obj_id = body.get("Id")
        existing: dict[str, Any] | None = None
        if obj_id is not None:
            obj_id = str(obj_id)
            existing = table.get(obj_id)
            if existing is None:
                raise _not_found(entity, obj_id)
            if body.get("SyncToken") is None:
                raise _required("SyncToken")
            if str(body["SyncToken"]) != existing["SyncToken"]:
                raise _Fault(
                    400,
                    "5010",
                    "Stale Object Error",
                    "Stale Object Error : You and root were working on this at the same time. "
                    "root finished before you did, so your work was not saved.",
                    element="SyncToken",
                )
        elif operation in ("void", "delete"):
            raise _required("Id")
        self._check_not_deposited(company, entity, existing)

        if operation == "delete":
            if entity not in DELETABLE or existing is None:
                raise _unsupported(f"delete of {entity}")
            del table[existing["Id"]]
            if entity == "Payment":
                self._relink_invoices(company, self._linked_invoice_ids(existing))
            return {entity: {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}}
        if operation == "void":
            if entity not in VOIDABLE or existing is None:
                raise _unsupported(f"void of {entity}")
            return {entity: self._void(company, entity, existing)}
        if operation:
            raise _unsupported(operation)

        merged = {**existing, **body} if existing is not None and body.get("sparse") is True else dict(body)
        merged.pop("sparse", None)
        merged["_entity"] = entity
        obj = self._builder(entity)(company, merged, existing)
        obj.pop("_entity", None)
        if existing is None:
            obj["Id"] = str(company.next_id)
            company.next_id += 1
            obj["SyncToken"] = "0"
            obj["MetaData"] = self._metadata()
        else:
            obj["Id"] = existing["Id"]
            obj["SyncToken"] = str(int(existing["SyncToken"]) + 1)
            obj["MetaData"] = {
                **existing["MetaData"],
                "LastUpdatedTime": self._now().isoformat(timespec="seconds"),
            }
        obj["domain"] = "QBO"
        obj["sparse"] = False
        table[obj["Id"]] = obj
        if entity == "Payment":
            touched = self._linked_invoice_ids(obj) | (
                self._linked_invoice_ids(existing) if existing else set()
            )
            self._relink_invoices(company, touched)
        elif entity == "Invoice":
            self._relink_invoices(company, {obj["Id"]}, bump=False)
        return {entity: copy.deepcopy(table[obj["Id"]])}

    def _builder(
        self, entity: str
    ) -> Callable[[_Company, dict[str, Any], dict[str, Any] | None], dict[str, Any]]:
        """What validates and completes a written object of ``entity`` (its own Fault when refused)."""
        builders: dict[str, Callable[[_Company, dict[str, Any], dict[str, Any] | None], dict[str, Any]]] = {
            "Customer": self._build_customer,
            "Item": self._build_item,
            "Invoice": self._build_sales_doc,
            "CreditMemo": self._build_sales_doc,
            "RefundReceipt": self._build_sales_doc,
            "Payment": self._build_payment,
            "Deposit": self._build_deposit,
        }
        return builders[entity]

    def _build_customer(
        self, company: _Company, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        name = body.get("DisplayName")
        if not isinstance(name, str) or not name.strip():
            raise _required("DisplayName")
        for other in company.table("Customer").values():
            if other["DisplayName"] == name and (existing is None or other["Id"] != existing["Id"]):
                raise _Fault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    "The name supplied already exists. : Another customer, vendor or employee is already "
                    f"using this name. Please use a different name. Id={other['Id']}",
                )
        obj = dict(body)
        obj.setdefault("Active", True)
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("CurrencyRef", {"value": company.currency})
        obj["Balance"] = existing.get("Balance", Decimal(0)) if existing else Decimal(0)
        return obj

    def _build_item(
        self, company: _Company, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        name = body.get("Name")
        if not isinstance(name, str) or not name.strip():
            raise _required("Name")
        for other in company.table("Item").values():
            if other["Name"] == name and (existing is None or other["Id"] != existing["Id"]):
                raise _Fault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another product or service is already using this "
                    f"name. Please use a different name. Id={other['Id']}",
                )
        account_id = _ref_value(body.get("IncomeAccountRef"))
        if account_id is None:
            raise _required("IncomeAccountRef")
        account = company.table("Account").get(account_id)
        if account is None:
            raise _invalid_ref(
                f"Account assigned to this item does not exist (Id={account_id})", "IncomeAccountRef"
            )
        obj = dict(body)
        obj["IncomeAccountRef"] = {"value": account_id, "name": account["Name"]}
        obj.setdefault("Type", "Service")
        obj.setdefault("Active", True)
        obj.setdefault("FullyQualifiedName", name)
        obj["UnitPrice"] = _dec(obj.get("UnitPrice", 0), "UnitPrice")
        return obj

    def _customer_ref(self, company: _Company, body: dict[str, Any]) -> dict[str, Any]:
        customer_id = _ref_value(body.get("CustomerRef"))
        if customer_id is None:
            raise _required("CustomerRef")
        customer = company.table("Customer").get(customer_id)
        if customer is None or customer.get("Active") is False:
            raise _invalid_ref(
                "Customer assigned to this transaction has been deleted. Before you can modify this "
                f"transaction, you must restore Customer (Id={customer_id}).",
                "CustomerRef",
            )
        return {"value": customer_id, "name": customer["DisplayName"]}

    def _refund_from_ref(self, company: _Company, body: dict[str, Any]) -> dict[str, Any]:
        """A refund receipt's DepositToAccountRef: required, an active account money can leave from."""
        account_id = _ref_value(body.get("DepositToAccountRef"))
        if account_id is None:
            raise _required("DepositToAccountRef")
        account = company.table("Account").get(account_id)
        if account is None or account.get("Active") is False:
            raise _invalid_ref(
                f"Account assigned to this transaction does not exist (Id={account_id})",
                "DepositToAccountRef",
            )
        if account["AccountType"] not in REFUND_FROM_ACCOUNT_TYPES:
            raise _business(
                f"A refund can only be paid from a Bank, Credit Card or Other Current Asset account; "
                f"{account['Name']} (Id={account_id}) is {account['AccountType']}"
            )
        return {"value": account_id, "name": account["Name"]}

    def _check_doc_number(self, company: _Company, entity: str, doc_number: Any, self_id: str | None) -> None:
        if not isinstance(doc_number, str) or not doc_number:
            return
        if len(doc_number) > MAX_DOC_NUMBER:
            raise _business(f"DocNumber {doc_number} is longer than {MAX_DOC_NUMBER} characters")
        # Custom numbers collide across sales forms, not only within one type.
        for txn_type, label in TXN_TYPE_LABEL.items():
            for other in company.table(txn_type).values():
                if other.get("DocNumber") == doc_number and not (
                    txn_type == entity and other["Id"] == self_id
                ):
                    raise _Fault(
                        400,
                        "6140",
                        "Duplicate Document Number Error",
                        "Duplicate Document Number Error : You must specify a different number. "
                        f"This number has already been used. DocNumber={doc_number} is assigned to "
                        f"TxnType={label} with TxnId={other['Id']}",
                        element="DocNumber",
                    )

    def _sales_item_line(
        self, company: _Company, line: dict[str, Any]
    ) -> tuple[dict[str, Any], Decimal, str | None]:
        """Validate one SalesItemLineDetail line; return it normalised, its amount and its tax code."""
        detail = dict(line.get("SalesItemLineDetail") or {})
        item_id = _ref_value(detail.get("ItemRef"))
        if item_id is None:
            raise _required("ItemRef")
        item = company.table("Item").get(item_id)
        if item is None or item.get("Active") is False:
            raise _invalid_ref(
                "Item assigned to this transaction has been deleted. Before you can modify this "
                f"transaction, you must restore Item (Id={item_id}).",
                "ItemRef",
            )
        detail["ItemRef"] = {"value": item_id, "name": item["Name"]}
        if "Amount" not in line:
            raise _required("Line.Amount")
        amount = money(_dec(line["Amount"], "Amount"))
        if "Qty" in detail:
            detail["Qty"] = _dec(detail["Qty"], "Qty")
        if "UnitPrice" in detail:
            detail["UnitPrice"] = _dec(detail["UnitPrice"], "UnitPrice")
        if "Qty" in detail and "UnitPrice" in detail and money(detail["Qty"] * detail["UnitPrice"]) != amount:
            raise _Fault(
                400,
                "6070",
                "Amount is not equal to UnitPrice * Qty",
                f"Amount is not equal to UnitPrice * Qty. Supplied value:{decimal_number(amount)}",
                element="Line.Amount",
            )
        tax_code = _ref_value(detail.get("TaxCodeRef"))
        if tax_code is None and company.country != "US":
            raise _business("Make sure all your transactions have a GST/HST rate before you save.")
        if tax_code is not None:
            if tax_code not in company.table("TaxCode"):
                raise _invalid_ref(f"TaxCode assigned to this transaction does not exist (Id={tax_code})")
            detail["TaxCodeRef"] = {"value": tax_code}
        line["Amount"] = amount
        line["SalesItemLineDetail"] = detail
        return line, amount, tax_code

    @staticmethod
    def _tax_detail(
        company: _Company,
        body: dict[str, Any],
        taxable: dict[str, tuple[Decimal, Decimal]],
        line_tax_total: Decimal,
    ) -> dict[str, Any]:
        """TxnTaxDetail as QBO computes it: an explicit TotalTax overrides, else per-line rounded tax."""
        tax_detail = dict(body.get("TxnTaxDetail") or {})
        if tax_detail.get("TotalTax") is not None:
            tax = money(_dec(tax_detail["TotalTax"], "TxnTaxDetail.TotalTax"))
        elif company.country == "US":
            tax = Decimal(0)  # no Automated Sales Tax in the sandbox
        else:
            tax = line_tax_total
            tax_detail["TaxLine"] = [
                {
                    "Amount": line_tax,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": code},
                        "PercentBased": True,
                        "TaxPercent": company.tax_rates[code],
                        "NetAmountTaxable": net,
                    },
                }
                for code, (net, line_tax) in taxable.items()
            ]
        tax_detail["TotalTax"] = tax
        return tax_detail

    @staticmethod
    def _discount(line: dict[str, Any], subtotal: Decimal) -> tuple[dict[str, Any], Decimal]:
        detail = dict(line.get("DiscountLineDetail") or {})
        if detail.get("PercentBased") is True and "DiscountPercent" in detail:
            detail["DiscountPercent"] = _dec(detail["DiscountPercent"], "DiscountPercent")
            amount = money(subtotal * detail["DiscountPercent"] / 100)
        else:
            detail.setdefault("PercentBased", False)
            amount = money(_dec(line.get("Amount", 0), "Amount"))
        if amount < 0:
            raise _business("Discount amount cannot be negative")
        return detail, amount

    def _number_document(
        self, company: _Company, entity: str, obj: dict[str, Any], existing: dict[str, Any] | None
    ) -> None:
        if company.custom_txn_numbers:
            self._check_doc_number(
                company, entity, obj.get("DocNumber"), existing["Id"] if existing else None
            )
        elif existing is not None:
            obj["DocNumber"] = existing.get("DocNumber")
        else:
            # QBO numbers the document itself and ignores the given number when custom numbers are off.
            obj["DocNumber"] = str(company.next_doc_number)
            company.next_doc_number += 1

    def _price_lines(
        self, company: _Company, raw_lines: list[Any]
    ) -> tuple[list[dict[str, Any]], Decimal, Decimal, dict[str, tuple[Decimal, Decimal]], Decimal]:
        """Validate and price lines: (lines incl. a fresh subtotal line, subtotal, discount, taxable, tax)."""
        lines: list[dict[str, Any]] = []
        subtotal = Decimal(0)
        discount = Decimal(0)
        discount_lines: list[dict[str, Any]] = []
        taxable: dict[str, tuple[Decimal, Decimal]] = {}  # tax code -> (net, tax), for TaxLine entries
        line_tax_total = Decimal(0)
        for index, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise _invalid_request(f"Line[{index}] must be an object")
            line = dict(raw)
            detail_type = line.get("DetailType")
            if detail_type == "SubTotalLineDetail":
                continue  # recomputed below, as QBO does
            if detail_type == "SalesItemLineDetail":
                line, amount, tax_code = self._sales_item_line(company, line)
                if tax_code is not None:
                    rate = company.tax_rates.get(tax_code, Decimal(0))
                    line_tax = money(amount * rate / 100)
                    line_tax_total += line_tax
                    if company.country != "US" and rate:
                        net, tax = taxable.get(tax_code, (Decimal(0), Decimal(0)))
                        taxable[tax_code] = (net + amount, tax + line_tax)
                subtotal += amount
                lines.append(line)
            elif detail_type == "DiscountLineDetail":
                discount_lines.append(line)
            elif detail_type == "DescriptionOnly":
                line["Amount"] = Decimal(0)
                lines.append(line)
            else:
                raise _Fault(
                    400, "2170", "Invalid Enumeration", f"Invalid DetailType: {detail_type}", element="Line"
                )
        for line in discount_lines:
            line["DiscountLineDetail"], line["Amount"] = self._discount(line, subtotal)
            discount += line["Amount"]
            lines.append(line)
        if discount > subtotal:
            raise _business("The discount is larger than the transaction subtotal")
        lines.insert(
            len(lines) - len(discount_lines),
            {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        )
        for number, line in enumerate(lines, start=1):
            line.setdefault("Id", str(number))
            line["LineNum"] = number
        return lines, subtotal, discount, taxable, line_tax_total

    def _build_sales_doc(
        self, company: _Company, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        entity = body["_entity"]
        obj = dict(body)
        obj["CustomerRef"] = self._customer_ref(company, body)
        if entity == "RefundReceipt":
            # Checked before numbering, so a refused receipt does not use up an automatic number.
            obj["DepositToAccountRef"] = self._refund_from_ref(company, body)
        raw_lines = body.get("Line")
        if not isinstance(raw_lines, list) or not any(
            isinstance(line, dict) and line.get("DetailType") != "SubTotalLineDetail" for line in raw_lines
        ):
            raise _required("Line")
        lines, subtotal, discount, taxable, line_tax_total = self._price_lines(company, raw_lines)
        obj["Line"] = lines

        tax_detail = self._tax_detail(company, body, taxable, line_tax_total)
        tax = tax_detail["TotalTax"]
        obj["TxnTaxDetail"] = tax_detail
        obj["TotalAmt"] = subtotal - discount + tax
        obj["CurrencyRef"] = obj.get("CurrencyRef") or {"value": company.currency}
        obj["TxnDate"] = obj.get("TxnDate") or self._now().date().isoformat()
        if entity == "Invoice":
            obj.setdefault("DueDate", obj["TxnDate"])
        self._number_document(company, entity, obj, existing)
        if entity == "Invoice":
            obj["LinkedTxn"] = []
            obj["Balance"] = obj["TotalAmt"]  # payments are applied by _relink_invoices
        elif entity == "RefundReceipt":
            obj["Balance"] = Decimal(0)  # paid out as it is saved: nothing stays open on it
        else:
            obj["Balance"] = obj["TotalAmt"]
            obj["RemainingCredit"] = obj["TotalAmt"]
        return obj

    def _build_payment(
        self, company: _Company, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        obj = dict(body)
        obj["CustomerRef"] = self._customer_ref(company, body)
        if body.get("TotalAmt") is None:
            raise _required("TotalAmt")
        total = money(_dec(body["TotalAmt"], "TotalAmt"))
        if total < 0:
            raise _business("The payment amount cannot be negative")
        ref_num = body.get("PaymentRefNum")
        if isinstance(ref_num, str) and len(ref_num) > MAX_DOC_NUMBER:
            raise _business(f"PaymentRefNum {ref_num} is longer than {MAX_DOC_NUMBER} characters")
        applied = Decimal(0)
        credits = Decimal(0)
        lines: list[dict[str, Any]] = []
        for index, raw in enumerate(body.get("Line") or []):
            if not isinstance(raw, dict):
                raise _invalid_request(f"Line[{index}] must be an object")
            line = dict(raw)
            amount = money(_dec(line.get("Amount", 0), "Line.Amount"))
            line["Amount"] = amount
            linked = line.get("LinkedTxn") or []
            if not isinstance(linked, list):
                raise _invalid_request("LinkedTxn must be a list")
            if any(isinstance(t, dict) and t.get("TxnType") == "CreditMemo" for t in linked):
                # QBO applies a credit memo to invoices with a payment whose credit lines fund
                # its invoice lines (TotalAmt is what is left: zero for a pure application).
                self._check_credit_line(company, obj, linked, amount, existing)
                credits += amount
                lines.append(line)
                continue
            for txn in linked:
                if not isinstance(txn, dict) or txn.get("TxnType") != "Invoice":
                    raise _business("A payment line can only be linked to an Invoice or a CreditMemo")
                invoice_id = str(txn.get("TxnId"))
                invoice = company.table("Invoice").get(invoice_id)
                if invoice is None:
                    raise _invalid_ref(
                        f"Invoice assigned to this payment does not exist (Id={invoice_id})", "TxnId"
                    )
                if _ref_value(invoice["CustomerRef"]) != obj["CustomerRef"]["value"]:
                    raise _business(f"Invoice {invoice_id} belongs to a different customer than this payment")
                balance = invoice["Balance"]
                if existing is not None:
                    balance += self._applied_by(existing, invoice_id)
                if amount > balance:
                    raise _business("The payment amount exceeds the amount due on the invoice")
            applied += amount
            lines.append(line)
        if applied > total + credits:
            raise _business("The amount applied to transactions is greater than the payment amount")
        obj["Line"] = lines
        obj["TotalAmt"] = total
        obj["UnappliedAmt"] = total + credits - applied
        obj["CurrencyRef"] = obj.get("CurrencyRef") or {"value": company.currency}
        obj["TxnDate"] = obj.get("TxnDate") or self._now().date().isoformat()
        return obj

    # ---------------------------------------------------------------------------------------------
    # Deposits

    @staticmethod
    def _deposits_holding(company: _Company) -> dict[tuple[str, str], str]:
        """(TxnType, TxnId) of every transaction a deposit links -> that deposit's Id."""
        return {
            (str(txn.get("TxnType")), str(txn.get("TxnId"))): deposit["Id"]
            for deposit in company.table("Deposit").values()
            for line in deposit.get("Line") or []
            for txn in line.get("LinkedTxn") or []
        }

    def _check_not_deposited(self, company: _Company, entity: str, existing: dict[str, Any] | None) -> None:
        """Money a deposit holds cannot be changed, voided or deleted (fault 6540)."""
        if existing is not None and entity in DEPOSITED:
            holder = self._deposits_holding(company).get((entity, existing["Id"]))
            if holder is not None:
                raise _deposited(entity, existing["Id"], holder)

    @staticmethod
    def _undeposited_funds(company: _Company) -> str | None:
        return next(
            (
                account["Id"]
                for account in company.table("Account").values()
                if account.get("AccountSubType") == "UndepositedFunds"
            ),
            None,
        )

    def _deposit_account_ref(
        self, company: _Company, body: dict[str, Any], element: str, types: set[str]
    ) -> dict[str, Any]:
        account_id = _ref_value(body.get(element))
        if account_id is None:
            raise _required(element)
        account = company.table("Account").get(account_id)
        if account is None or account.get("Active") is False:
            raise _invalid_ref(
                f"Account assigned to this transaction does not exist (Id={account_id})", element
            )
        if account["AccountType"] not in types:
            raise _business(
                f"{element} cannot be {account['Name']} (Id={account_id}), a {account['AccountType']} "
                f"account: it must be one of {', '.join(sorted(types))}"
            )
        return {"value": account_id, "name": account["Name"]}

    def _linked_deposit_line(
        self,
        company: _Company,
        line: dict[str, Any],
        amount: Decimal,
        currency: str,
        held: dict[tuple[str, str], str],
        seen: set[tuple[str, str]],
    ) -> None:
        """One linked line: each LinkedTxn an existing Payment or RefundReceipt whose money is in
        Undeposited Funds, held by no other deposit, for its whole amount (a refund receipt's
        negated: the documented assumption of design 9.2)."""
        linked = line.get("LinkedTxn")
        if not isinstance(linked, list):
            raise _invalid_request("LinkedTxn must be a list")
        undeposited = self._undeposited_funds(company)
        for txn in linked:
            if not isinstance(txn, dict):
                raise _invalid_request("LinkedTxn entries must be objects")
            txn_type, txn_id = str(txn.get("TxnType") or ""), str(txn.get("TxnId") or "")
            if txn_type not in LINKABLE_TO_DEPOSIT:
                raise _Fault(
                    400,
                    "2170",
                    "Invalid Enumeration",
                    f"Invalid LinkedTxn.TxnType: {txn_type}",
                    element="TxnType",
                )
            if txn.get("TxnLineId") in (None, ""):
                raise _required("LinkedTxn.TxnLineId")  # "Required for Deposit and Bill entities"
            target = company.table(txn_type).get(txn_id) if txn_type in DEPOSITED else None
            if target is None:
                raise _invalid_ref(f"{txn_type} linked to this deposit does not exist (Id={txn_id})", "TxnId")
            # A payment received without DepositToAccountRef is in Undeposited Funds (Payment entity
            # reference); a refund receipt is only when it was paid out of that account.
            landed = _ref_value(target.get("DepositToAccountRef"))
            in_undeposited = landed == undeposited if landed is not None else txn_type == "Payment"
            if not in_undeposited:
                raise _invalid_ref(
                    f"{txn_type} Id={txn_id} is not in Undeposited Funds (it went to account {landed}): "
                    "only money held there can be deposited",
                    "TxnId",
                )
            holder = held.get((txn_type, txn_id))
            if holder is not None:
                raise _deposited(txn_type, txn_id, holder)
            if (txn_type, txn_id) in seen:
                raise _business(f"{txn_type} Id={txn_id} is linked twice in this deposit")
            seen.add((txn_type, txn_id))
            target_currency = _ref_value(target.get("CurrencyRef")) or company.currency
            if target_currency != currency:
                raise _business(f"{txn_type} Id={txn_id} is in {target_currency}, the deposit in {currency}")
            expected = target["TotalAmt"] if txn_type == "Payment" else -target["TotalAmt"]
            if amount != expected:
                raise _business(
                    f"The line linking {txn_type} Id={txn_id} is {decimal_number(amount)}; it must be "
                    f"{decimal_number(expected)}, the transaction's whole amount"
                    + (" negated" if txn_type == "RefundReceipt" else "")
                )

    def _cash_back(self, company: _Company, cash_back: dict[str, Any]) -> dict[str, Any]:
        """CashBack's account "must have Account.Classification set to Asset" (the reference); its
        amount leaves the deposit's total."""
        account = company.table("Account").get(_ref_value(cash_back.get("AccountRef")) or "")
        if account is None or account.get("Classification") != "Asset":
            raise _business("CashBack.AccountRef must be an account classified as Asset")
        cash = money(_dec(cash_back.get("Amount", 0), "CashBack.Amount"))
        return {**cash_back, "Amount": cash, "AccountRef": {"value": account["Id"], "name": account["Name"]}}

    @staticmethod
    def _check_deposit_texts(body: dict[str, Any]) -> None:
        note = body.get("PrivateNote")
        if isinstance(note, str) and len(note) > MAX_DEPOSIT_TEXT:
            raise _business(f"PrivateNote is longer than {MAX_DEPOSIT_TEXT} characters")
        doc_number = body.get("DocNumber")
        if isinstance(doc_number, str) and len(doc_number) > MAX_DOC_NUMBER:
            raise _business(f"DocNumber {doc_number} is longer than {MAX_DOC_NUMBER} characters")

    def _build_deposit(
        self, company: _Company, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        obj = dict(body)
        obj["DepositToAccountRef"] = self._deposit_account_ref(
            company, body, "DepositToAccountRef", DEPOSIT_TO_ACCOUNT_TYPES
        )
        raw_lines = body.get("Line")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _required("Line")
        currency = _ref_value(body.get("CurrencyRef")) or company.currency
        self_id = existing["Id"] if existing is not None else None
        # Held by other deposits; this deposit's own links (on an update) and the lines already read
        # (a payment linked twice in one deposit) are checked as the lines go.
        held = {key: holder for key, holder in self._deposits_holding(company).items() if holder != self_id}
        seen: set[tuple[str, str]] = set()
        lines: list[dict[str, Any]] = []
        total = Decimal(0)
        for index, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise _invalid_request(f"Line[{index}] must be an object")
            line = dict(raw)
            if line.get("Amount") is None:
                raise _required("Line.Amount")
            amount = money(_dec(line["Amount"], "Line.Amount"))
            line["Amount"] = amount
            if line.get("LinkedTxn"):
                self._linked_deposit_line(company, line, amount, currency, held, seen)
            else:
                detail = line.get("DepositLineDetail")
                if line.get("DetailType") != "DepositLineDetail" or not isinstance(detail, dict):
                    raise _required("DepositLineDetail")
                detail = dict(detail)
                detail["AccountRef"] = self._deposit_account_ref(
                    company, detail, "AccountRef", DEPOSIT_LINE_ACCOUNT_TYPES
                )
                line["DepositLineDetail"] = detail
            description = line.get("Description")
            if isinstance(description, str) and len(description) > MAX_DEPOSIT_TEXT:
                raise _business(f"Line[{index}].Description is longer than {MAX_DEPOSIT_TEXT} characters")
            line["Id"] = str(index + 1)
            line["LineNum"] = index + 1
            total += amount
            lines.append(line)
        if isinstance(body.get("CashBack"), dict):
            obj["CashBack"] = self._cash_back(company, body["CashBack"])
            total -= obj["CashBack"]["Amount"]
        self._check_deposit_texts(body)
        obj["Line"] = lines
        obj["TotalAmt"] = total  # read-only: "any value you supply is over-written"
        obj["CurrencyRef"] = {"value": currency}
        obj["TxnDate"] = obj.get("TxnDate") or self._now().date().isoformat()
        return obj

    @staticmethod
    def _applied_by(payment: dict[str, Any], invoice_id: str) -> Decimal:
        total = Decimal(0)
        for line in payment.get("Line") or []:
            for txn in line.get("LinkedTxn") or []:
                if txn.get("TxnType") == "Invoice" and str(txn.get("TxnId")) == invoice_id:
                    total += line["Amount"]
        return total

    def _check_credit_line(
        self,
        company: _Company,
        payment: dict[str, Any],
        linked: list[Any],
        amount: Decimal,
        existing: dict[str, Any] | None,
    ) -> None:
        for txn in linked:
            memo_id = str(txn.get("TxnId")) if isinstance(txn, dict) else ""
            memo = company.table("CreditMemo").get(memo_id)
            if not isinstance(txn, dict) or txn.get("TxnType") != "CreditMemo" or memo is None:
                raise _invalid_ref(
                    f"Credit memo assigned to this payment does not exist (Id={memo_id})", "TxnId"
                )
            if _ref_value(memo["CustomerRef"]) != payment["CustomerRef"]["value"]:
                raise _business(f"Credit memo {memo_id} belongs to a different customer than this payment")
            remaining = memo["RemainingCredit"] + (self._credited_by(existing, memo_id) if existing else 0)
            if amount > remaining:
                raise _business("The amount applied exceeds the credit memo's remaining credit")

    @staticmethod
    def _credited_by(payment: dict[str, Any], memo_id: str) -> Decimal:
        return sum(
            (
                line["Amount"]
                for line in payment.get("Line") or []
                for txn in line.get("LinkedTxn") or []
                if txn.get("TxnType") == "CreditMemo" and str(txn.get("TxnId")) == memo_id
            ),
            Decimal(0),
        )

    def _recredit(self, company: _Company) -> None:
        """RemainingCredit of every credit memo, from the payments that apply it: one pass over
        the payments (a pass per memo made each payment write cost memos x payments, minutes a
        write in a company of thousands)."""
        used: dict[str, Decimal] = {}
        for payment in company.table("Payment").values():
            for line in payment.get("Line") or []:
                for txn in line.get("LinkedTxn") or []:
                    if txn.get("TxnType") == "CreditMemo":
                        memo_id = str(txn.get("TxnId"))
                        used[memo_id] = used.get(memo_id, Decimal(0)) + line["Amount"]
        for memo in company.table("CreditMemo").values():
            memo["RemainingCredit"] = memo["TotalAmt"] - used.get(memo["Id"], Decimal(0))

    @staticmethod
    def _linked_invoice_ids(payment: dict[str, Any]) -> set[str]:
        return {
            str(txn.get("TxnId"))
            for line in payment.get("Line") or []
            for txn in line.get("LinkedTxn") or []
            if txn.get("TxnType") == "Invoice"
        }

    def _relink_invoices(self, company: _Company, invoice_ids: set[str], *, bump: bool = True) -> None:
        """Recompute Balance and LinkedTxn of invoices from the payments that apply to them.

        Deriving both from the payments (rather than adjusting deltas) keeps invoices right across
        payment updates, voids and deletes. A change bumps SyncToken, as in QBO.
        """
        self._recredit(company)
        paying: dict[str, list[dict[str, Any]]] = {invoice_id: [] for invoice_id in invoice_ids}
        for payment in company.table("Payment").values():  # one pass, in the payments' order
            for invoice_id in self._linked_invoice_ids(payment) & invoice_ids:
                paying[invoice_id].append(payment)
        for invoice_id in invoice_ids:
            invoice = company.table("Invoice").get(invoice_id)
            if invoice is None:
                continue
            applied = Decimal(0)
            linked: list[dict[str, str]] = []
            for payment in paying[invoice_id]:
                applied += self._applied_by(payment, invoice_id)
                linked.append({"TxnId": payment["Id"], "TxnType": "Payment"})
            balance = invoice["TotalAmt"] - applied
            if balance == invoice["Balance"] and linked == invoice.get("LinkedTxn"):
                continue
            invoice["Balance"] = balance
            invoice["LinkedTxn"] = linked
            if bump:
                invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
                invoice["MetaData"]["LastUpdatedTime"] = self._now().isoformat(timespec="seconds")

    def _void(self, company: _Company, entity: str, existing: dict[str, Any]) -> dict[str, Any]:
        paid = self._linked_invoice_ids(existing) if entity == "Payment" else set()
        if entity == "Payment":
            existing["Line"] = []  # a voided payment no longer applies to anything
        for line in existing.get("Line") or []:
            line["Amount"] = Decimal(0)
        existing["TotalAmt"] = Decimal(0)
        existing["PrivateNote"] = "Voided"
        if entity == "Invoice":
            existing["TxnTaxDetail"] = {**(existing.get("TxnTaxDetail") or {}), "TotalTax": Decimal(0)}
            existing["Balance"] = Decimal(0)
        else:
            existing["UnappliedAmt"] = Decimal(0)
        existing["SyncToken"] = str(int(existing["SyncToken"]) + 1)
        existing["MetaData"]["LastUpdatedTime"] = self._now().isoformat(timespec="seconds")
        if entity == "Payment":
            # The money the payment applied goes back onto the invoices it paid.
            self._relink_invoices(company, paid)
        return copy.deepcopy(existing)


# --------------------------------------------------------------------------------------------------
# Running it on its own


def main(argv: list[str] | None = None) -> int:
    parser = foreground_parser(
        "Run the local QuickBooks Online sandbox in the foreground.",
        port=8790,
        seed_flag="--seed-realm",
        noun="realm",
    )
    parser.add_argument("--requests-per-minute", type=int, default=500)
    parser.add_argument("--max-concurrent", type=int, default=10)
    parser.add_argument("--requests-per-second", type=int, default=10)
    parser.add_argument("--batch-requests-per-minute", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each API call takes")
    args = parser.parse_args(argv)

    sandbox = QuickBooksSandbox(
        requests_per_minute=args.requests_per_minute,
        max_concurrent=args.max_concurrent,
        requests_per_second=args.requests_per_second,
        batch_requests_per_minute=args.batch_requests_per_minute,
        latency_seconds=args.latency,
    )
    seed_demo("realm", args.seed_realm, lambda realm, _number, demo: sandbox.seed_company(realm, **demo))
    return run_foreground(
        sandbox, args.host, args.port, lambda url: f"QuickBooks Online sandbox listening on {url}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
