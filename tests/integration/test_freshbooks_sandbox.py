"""The FreshBooks sandbox speaks FreshBooks' API faithfully over real HTTP (what the adapter relies on)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_sync.errors import DuplicateNumber, Unsupported
from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft, PaymentDraft, marker
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.tokens import TokenSet
from invoice_sync.settings import Settings
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox

ACCOUNT = "zDmNq"
BUSINESS_ID = 4321987
CLIENT_ID, CLIENT_SECRET = "fb-client-id", "fb-client-secret"
REDIRECT_URI = "https://example.com/freshbooks/callback"
SEEDED_REFRESH_TOKEN = "rt-0"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


class Fb:
    """A minimal FreshBooks client: just enough HTTP to drive the sandbox the way the adapter does."""

    def __init__(
        self, base_url: str, account: str = ACCOUNT, refresh_token: str = SEEDED_REFRESH_TOKEN
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.account = account
        self.refresh_token = refresh_token
        self.access_token = ""

    def refresh(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> httpx.Response:
        response = self.http.post(
            "/auth/oauth/token",
            json={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": self.refresh_token,
                "redirect_uri": REDIRECT_URI,
            },
        )
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
            self.access_token = response.json()["access_token"]
        return response

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Api-Version": "alpha"}

    def url(self, path: str) -> str:
        return f"/accounting/account/{self.account}/{path}"

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(self.url(path), params=params, headers=self.headers())

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(self.url(path), json=body, headers={**self.headers(), **(headers or {})})

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.http.put(self.url(path), json=body, headers=self.headers())


def result(response: httpx.Response, name: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    obj: dict[str, Any] = json.loads(response.content, parse_float=Decimal)["response"]["result"][name]
    return obj


def error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["response"]["errors"]
    assert len(errors) == 1
    return errors[0]


def money(obj: dict[str, Any], key: str) -> Decimal:
    """Money comes back as {"amount": "<string>", "code": ...}: a string, never a JSON number."""
    amount = obj[key]["amount"]
    assert isinstance(amount, str), f"{key} should be a string decimal, got {amount!r}"
    return Decimal(amount)


def seed(sandbox: FreshBooksSandbox, account: str = ACCOUNT, **kwargs: Any) -> None:
    token = SEEDED_REFRESH_TOKEN if account == ACCOUNT else f"rt-{account}"
    sandbox.seed_account(
        account,
        business_id=BUSINESS_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=token,
        **kwargs,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[FreshBooksSandbox]:
    box = FreshBooksSandbox(clock=clock)
    seed(box)
    yield box
    box.stop()


@pytest.fixture
def fb(sandbox: FreshBooksSandbox) -> Iterator[Fb]:
    client = Fb(sandbox.start())
    assert client.refresh().status_code == 200
    yield client
    client.http.close()


def make_client(fb: Fb, email: str = "ap@acme.test", organization: str = "Acme Ltd") -> int:
    body = {"client": {"fname": "Ada", "lname": "Lovelace", "organization": organization, "email": email}}
    client = result(fb.post("users/clients", body), "client")
    client_id: int = client["id"]
    return client_id


def line(
    name: str, cost: str, qty: str = "1", tax: tuple[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": 0, "name": name, "qty": qty, "unit_cost": {"amount": cost, "code": "USD"}}
    if tax is not None:
        body |= {"taxName1": tax[0], "taxAmount1": tax[1]}
    return body | extra


def invoice_body(customer_id: int, lines: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    invoice: dict[str, Any] = {
        "customerid": customer_id,
        "create_date": "2026-01-15",
        "due_offset_days": 30,
        "currency_code": "USD",
        "lines": lines if lines is not None else [line("Consulting", "100.00")],
    }
    return {"invoice": invoice | extra}


def make_invoice(fb: Fb, customer_id: int, **extra: Any) -> dict[str, Any]:
    return result(fb.post("invoices/invoices", invoice_body(customer_id, **extra)), "invoice")


# ------------------------------------------------------------------------------------------------ OAuth


def test_refresh_tokens_are_single_use(sandbox: FreshBooksSandbox, clock: FakeClock) -> None:
    """Each refresh returns a new refresh token and kills the presented one at once (invalid_grant)."""
    client = Fb(sandbox.start())
    # When the client refreshes with the seeded token
    first = client.refresh()
    # Then it gets a Bearer token living 12 hours, a new refresh token, a scope and created_at
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 43200
    assert body["created_at"] == int(clock.now)
    assert "user:invoices:write" in body["scope"]
    assert body["refresh_token"] != SEEDED_REFRESH_TOKEN
    # And reusing the old refresh token is invalid_grant with Doorkeeper's description
    client.refresh_token = SEEDED_REFRESH_TOKEN
    reused = client.refresh()
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"].startswith("The provided authorization grant is invalid")
    # And a form-encoded refresh (what the official Python SDK sends) with the live token works
    form = client.http.post(
        "/auth/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": body["refresh_token"],
            "redirect_uri": REDIRECT_URI,
        },
    )
    assert form.status_code == 200
    # And the first access token still works until it expires (only refresh tokens are single use)
    client.access_token = body["access_token"]
    assert client.get("users/clients").status_code == 200


def test_revoked_refresh_token_and_bad_client(sandbox: FreshBooksSandbox) -> None:
    """Wrong client credentials are 401 invalid_client; a revoked refresh token is 400 invalid_grant."""
    client = Fb(sandbox.start())
    bad = client.refresh(client_secret="wrong")
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    sandbox.revoke_refresh_token(ACCOUNT)
    revoked = client.refresh()
    assert revoked.status_code == 400
    assert revoked.json()["error"] == "invalid_grant"


def test_users_me_lists_the_business_membership(fb: Fb) -> None:
    """/auth/api/v1/users/me gives the account_id and business_id the adapter needs."""
    response = fb.http.get("/auth/api/v1/users/me", headers=fb.headers())
    assert response.status_code == 200
    me = response.json()["response"]
    (membership,) = me["business_memberships"]
    assert membership["role"] == "owner"
    assert membership["business"] == {
        "id": BUSINESS_ID,
        "name": "Demo Business",
        "account_id": ACCOUNT,
        "date_format": "mm/dd/yyyy",
    }
    # Without a token it is the identity service's Doorkeeper-style 401
    anonymous = fb.http.get("/auth/api/v1/users/me")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error": "unauthenticated",
        "error_description": "This action requires authentication to continue.",
    }


def test_expired_access_token_answers_401(fb: Fb, sandbox: FreshBooksSandbox, clock: FakeClock) -> None:
    """Access tokens last 43200 s; afterwards (or when expired on demand) accounting calls are 401."""
    assert fb.get("users/clients").status_code == 200
    clock.now += 43201
    expired = fb.get("users/clients")
    assert expired.status_code == 401
    body = expired.json()
    assert body["code"] == 16
    assert body["details"][0]["reason"] == "1003"
    # A refresh brings it back, until the sandbox expires every token
    assert fb.refresh().status_code == 200
    assert fb.get("users/clients").status_code == 200
    sandbox.expire_access_tokens(ACCOUNT)
    assert fb.get("users/clients").status_code == 401
    # And a valid token used on another account id is 401 as well
    assert fb.refresh().status_code == 200
    fb.account = "other"
    assert fb.get("users/clients").status_code == 401


# ------------------------------------------------------------------------------------------------ Clients


def test_client_create_read_and_search(fb: Fb) -> None:
    """Clients get id == userid; they can be found by exact email or organization_like."""
    client_id = make_client(fb)
    other = result(fb.post("users/clients", {"client": {"email": "solo@example.test"}}), "client")
    # The organization falls back to the email, as FreshBooks does
    assert other["organization"] == "solo@example.test"
    client = result(fb.get(f"users/clients/{client_id}"), "client")
    assert client["userid"] == client["id"] == client_id
    assert client["currency_code"] == "USD"
    by_email = fb.get("users/clients", **{"search[email]": "AP@acme.test"}).json()["response"]["result"]
    assert [c["id"] for c in by_email["clients"]] == [client_id]
    assert (by_email["page"], by_email["pages"], by_email["per_page"], by_email["total"]) == (1, 1, 15, 1)
    like = fb.get("users/clients", **{"search[organization_like]": "acme"}).json()["response"]["result"]
    assert [c["id"] for c in like["clients"]] == [client_id]
    missing = fb.get("users/clients/99")
    assert missing.status_code == 404
    assert error(missing) == {
        "errno": 1012,
        "field": "userid",
        "message": "Client not found.",
        "object": "client",
        "value": "99",
    }


# ------------------------------------------------------------------------------------------------ Invoices


def test_invoice_taxes_are_rounded_per_line(fb: Fb) -> None:
    """taxAmountN is a percent; each line's tax is rounded half-up on its own (2 x 4.12, not 8.25)."""
    customer_id = make_client(fb)
    lines = [
        line("Hosting", "49.99", tax=("Sales Tax", "8.25")),
        line("Hosting", "49.99", tax=("Sales Tax", "8.25"), description="Second site"),
    ]
    response = fb.post("invoices/invoices", invoice_body(customer_id, lines))
    invoice = result(response, "invoice")
    # Money is a string decimal inside a money object on the wire
    assert response.json()["response"]["result"]["invoice"]["amount"] == {"amount": "108.22", "code": "USD"}
    assert money(invoice, "amount") == Decimal("108.22")  # 99.98 + 4.12 + 4.12
    assert money(invoice, "outstanding") == Decimal("108.22")
    assert money(invoice, "paid") == Decimal("0.00")
    assert money(invoice, "discount_total") == Decimal("0.00")
    assert [money(x, "amount") for x in invoice["lines"]] == [Decimal("49.99"), Decimal("49.99")]
    assert [x["lineid"] for x in invoice["lines"]] == [1, 2]
    assert invoice["lines"][0]["taxAmount1"] == "8.25"
    assert invoice["lines"][0]["qty"] == "1"
    assert invoice["id"] == invoice["invoiceid"]
    assert invoice["accounting_systemid"] == ACCOUNT
    assert invoice["invoice_number"] == "0000001"
    assert (invoice["v3_status"], invoice["payment_status"], invoice["status"]) == ("draft", "unpaid", 1)
    assert invoice["due_date"] == "2026-02-14"
    assert invoice["updated"] == "2025-12-31 19:00:00"  # US/Eastern wall-clock time, as FreshBooks stamps it


def test_invoice_discount_is_taken_before_tax(fb: Fb) -> None:
    """The percent discount reduces each line's taxable amount; discount_total is echoed negative.

    These are the numbers of the invoice in freshbooks-java-sdk's get_invoice_response.json.
    """
    customer_id = make_client(fb)
    lines = [line("Bowls", "5.00", qty="4", tax=("HST", "13")), line("Mugs", "4.00", qty="6")]
    invoice = make_invoice(fb, customer_id, lines=lines, discount_value="10")
    assert money(invoice, "discount_total") == Decimal("-4.40")
    assert money(invoice, "amount") == Decimal("41.94")  # 44.00 - 4.40 + 13% of 18.00
    assert invoice["discount_value"] == "10"


def test_mark_as_sent_update_and_search(fb: Fb, clock: FakeClock) -> None:
    """action_mark_as_sent moves draft -> sent; invoice_number is searchable and NOT unique."""
    customer_id = make_client(fb)
    first = make_invoice(fb, customer_id, invoice_number="INV-1001")
    # FreshBooks does not enforce unique invoice numbers: a second INV-1001 is accepted
    duplicate = make_invoice(fb, customer_id, invoice_number="INV-1001")
    make_invoice(fb, customer_id, invoice_number="INV-1002")
    clock.now += 3600
    sent = result(
        fb.put(f"invoices/invoices/{first['id']}", {"invoice": {"action_mark_as_sent": True}}), "invoice"
    )
    assert (sent["v3_status"], sent["display_status"], sent["status"]) == ("sent", "sent", 2)
    assert sent["updated"] == "2025-12-31 20:00:00"
    # Other fields can be updated; the totals are recomputed and the invoice stays sent
    updated = result(
        fb.put(
            f"invoices/invoices/{first['id']}", {"invoice": {"notes": "Thanks", "lines": [line("X", "5.00")]}}
        ),
        "invoice",
    )
    assert (updated["notes"], money(updated, "amount"), updated["v3_status"]) == (
        "Thanks",
        Decimal("5.00"),
        "sent",
    )
    found = fb.get("invoices/invoices", **{"search[invoice_number]": "INV-1001"}).json()["response"]["result"]
    assert [i["id"] for i in found["invoices"]] == [first["id"], duplicate["id"]]
    by_customer = fb.get("invoices/invoices", **{"search[customerid]": str(customer_id)}).json()
    assert by_customer["response"]["result"]["total"] == 3
    # updated_min takes "YYYY-MM-DD HH:MM:SS" (US/Eastern) or a bare date
    recent = fb.get("invoices/invoices", **{"search[updated_min]": "2025-12-31 19:30:00"}).json()
    assert [i["id"] for i in recent["response"]["result"]["invoices"]] == [first["id"]]
    day = fb.get("invoices/invoices", **{"search[updated_max]": "2025-12-31"}).json()
    assert day["response"]["result"]["total"] == 3


def test_deleted_invoice_is_hidden_and_restorable(fb: Fb) -> None:
    """vis_state 1 soft-deletes (hidden from lists, read-only); vis_state 0 restores it."""
    invoice = make_invoice(fb, make_client(fb))
    path = f"invoices/invoices/{invoice['id']}"
    assert result(fb.put(path, {"invoice": {"vis_state": 1}}), "invoice")["vis_state"] == 1
    assert fb.get("invoices/invoices").json()["response"]["result"]["total"] == 0
    assert (
        fb.get("invoices/invoices", **{"search[vis_state]": "1"}).json()["response"]["result"]["total"] == 1
    )
    blocked = fb.put(path, {"invoice": {"notes": "edit"}})
    assert blocked.status_code == 422
    assert error(blocked)["errno"] == 1011
    assert result(fb.put(path, {"invoice": {"vis_state": 0}}), "invoice")["vis_state"] == 0
    assert fb.get("invoices/invoices").json()["response"]["result"]["total"] == 1


# ------------------------------------------------------------------------------------------------ Payments


def test_payments_reduce_outstanding_and_delete_restores_it(fb: Fb, sandbox: FreshBooksSandbox) -> None:
    """Payments move unpaid -> partial -> paid; deleting a payment puts its money back."""
    invoice = make_invoice(fb, make_client(fb))  # 100.00
    body = {"invoiceid": invoice["id"], "date": "2026-01-20", "type": "Credit Card"}
    first = result(
        fb.post("payments/payments", {"payment": body | {"amount": {"amount": "40.00"}}}), "payment"
    )
    assert first["logid"] == first["id"]
    assert (money(first, "amount"), first["amount"]["code"], first["clientid"]) == (
        Decimal("40.00"),
        "USD",
        invoice["customerid"],
    )
    partial = result(fb.get(f"invoices/invoices/{invoice['id']}"), "invoice")
    assert (money(partial, "outstanding"), partial["payment_status"], partial["v3_status"]) == (
        Decimal("60.00"),
        "partial",
        "partial",
    )
    # Paying more than is outstanding is refused (errno 1004), nothing is stored
    over = fb.post("payments/payments", {"payment": body | {"amount": {"amount": "60.01"}}})
    assert over.status_code == 422
    assert (error(over)["errno"], error(over)["field"]) == (1004, "amount")
    result(fb.post("payments/payments", {"payment": body | {"amount": {"amount": "60.00"}}}), "payment")
    paid = result(fb.get(f"invoices/invoices/{invoice['id']}"), "invoice")
    assert (money(paid, "outstanding"), money(paid, "paid")) == (Decimal("0.00"), Decimal("100.00"))
    assert (paid["payment_status"], paid["v3_status"], paid["date_paid"]) == ("paid", "paid", "2026-01-20")
    listed = fb.get("payments/payments", **{"search[invoiceid]": str(invoice["id"])}).json()["response"][
        "result"
    ]
    assert listed["total"] == 2
    # Deleting the first payment (vis_state 1) restores 40.00 of outstanding
    result(fb.put(f"payments/payments/{first['id']}", {"payment": {"vis_state": 1}}), "payment")
    restored = result(fb.get(f"invoices/invoices/{invoice['id']}"), "invoice")
    assert (money(restored, "outstanding"), restored["payment_status"]) == (Decimal("40.00"), "partial")
    assert len(sandbox.documents(ACCOUNT, "payments")) == 2  # soft-deleted, still stored
    assert sandbox.documents(ACCOUNT, "invoices")[0]["outstanding"]["amount"] == Decimal("40.00")


def test_overpayment_can_become_a_credit_note(clock: FakeClock) -> None:
    """With allow_overpayment the surplus becomes an 'overpayment' credit note, as in FreshBooks."""
    box = FreshBooksSandbox(clock=clock, allow_overpayment=True)
    seed(box)
    fb = Fb(box.start())
    try:
        fb.refresh()
        invoice = make_invoice(fb, make_client(fb))
        payment = {"invoiceid": invoice["id"], "amount": {"amount": "120.00"}, "date": "2026-01-20"}
        stored = result(fb.post("payments/payments", {"payment": payment}), "payment")
        assert money(result(fb.get(f"invoices/invoices/{invoice['id']}"), "invoice"), "outstanding") == 0
        (credit,) = box.documents(ACCOUNT, "credit_notes")
        assert (credit["credit_type"], credit["amount"]["amount"]) == ("overpayment", Decimal("20.00"))
        assert stored["overpaymentid"] == credit["id"]
    finally:
        box.stop()


# -------------------------------------------------------------------------------------------- Credit notes


def test_credit_note_create_search_and_send(fb: Fb) -> None:
    """Credit notes use clientid, creditid and credit_number; they start as 'created'."""
    client_id = make_client(fb)
    body = {
        "credit_note": {
            "clientid": client_id,
            "create_date": "2026-01-21",
            "currency_code": "USD",
            "credit_type": "goodwill",
            "lines": [line("Credit", "20.00", tax=("GST", "5"))],
        }
    }
    credit = result(fb.post("credit_notes/credit_notes", body), "credit_note")
    assert credit["creditid"] == credit["id"]
    assert (credit["credit_number"], credit["status"], credit["clientid"]) == (
        "0000001",
        "created",
        client_id,
    )
    assert money(credit, "amount") == Decimal("21.00")
    found = fb.get("credit_notes/credit_notes", **{"search[clientid]": str(client_id)}).json()
    assert found["response"]["result"]["total"] == 1
    path = f"credit_notes/credit_notes/{credit['id']}"
    assert (
        result(fb.put(path, {"credit_note": {"action_mark_as_sent": True}}), "credit_note")["status"]
        == "sent"
    )
    missing_client = fb.post("credit_notes/credit_notes", {"credit_note": {"lines": []}})
    assert (missing_client.status_code, error(missing_client)["errno"]) == (422, 1001)
    result(fb.put(path, {"credit_note": {"vis_state": 1}}), "credit_note")
    assert fb.get("credit_notes/credit_notes").json()["response"]["result"]["total"] == 0


# ------------------------------------------------------------------------------------------------ Refunds


def test_credit_is_only_drawn_on_invoices_never_paid_out(fb: Fb, sandbox: FreshBooksSandbox) -> None:
    """FreshBooks' API has no refund of a credit note: a payment that draws on a credit note without an
    invoice is refused (errno 1001, invoiceid) whatever its type, nothing is stored, and the whole credit
    is still there to apply to an invoice, but not a cent more."""
    client_id = make_client(fb)
    note = {"clientid": client_id, "create_date": "2026-01-21", "lines": [line("Credit", "50.00")]}
    credit = result(fb.post("credit_notes/credit_notes", {"credit_note": note}), "credit_note")
    payout = {"creditid": credit["id"], "from_credit": True, "amount": {"amount": "20.00"}}
    for kind in ("Credit", "Refund", "Bank Transfer"):
        refused = fb.post("payments/payments", {"payment": payout | {"type": kind, "date": "2026-01-22"}})
        assert refused.status_code == 422, kind
        assert (error(refused)["errno"], error(refused)["field"]) == (1001, "invoiceid")
    assert sandbox.documents(ACCOUNT, "payments") == []
    invoice = make_invoice(fb, client_id)  # 100.00
    drawn = {"invoiceid": invoice["id"], "creditid": credit["id"], "from_credit": True, "type": "Credit"}
    too_much = fb.post("payments/payments", {"payment": drawn | {"amount": {"amount": "50.01"}}})
    assert (too_much.status_code, error(too_much)["errno"]) == (422, 1004)
    applied = result(
        fb.post("payments/payments", {"payment": drawn | {"amount": {"amount": "50.00"}}}), "payment"
    )
    assert (applied["creditid"], applied["from_credit"]) == (credit["id"], True)
    assert money(result(fb.get(f"invoices/invoices/{invoice['id']}"), "invoice"), "outstanding") == 50


def _adapter(url: str, account: str) -> FreshBooksLedger:
    """The FreshBooks adapter as production builds it (``LedgerRegistry``), pointed at the sandbox."""
    environment = {
        **dict.fromkeys(
            ["SYNC_TABLE", "MAPPINGS_TABLE", "SYNC_QUEUE_URL", "ARCHIVE_BUCKET", "ALERTS_TOPIC_ARN"], "-"
        ),
        **LEDGERS["freshbooks"].environment(url),
        "LEDGER_MAX_ATTEMPTS": "1",
    }
    tokens = TokenSet.model_validate(
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": SEEDED_REFRESH_TOKEN}
    )
    registry = LedgerRegistry(Settings.from_env(environment), _Lease(), _Vault(tokens))
    connection = Connection(connection_id="refunds", ledger="freshbooks", tenant_id=account)
    ledger = registry(Mappings(connection=connection))
    assert isinstance(ledger, FreshBooksLedger)
    return ledger


class _Vault:
    def __init__(self, tokens: TokenSet) -> None:
        self.tokens = tokens

    def ledger_tokens(self, connection_id: str) -> TokenSet:
        return self.tokens

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None:
        self.tokens = tokens


class _Lease:
    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        return True

    def release_lock(self, name: str, owner: str) -> None:
        return None


def _refund_draft(customer_id: str, number: str) -> InvoiceDraft:
    return InvoiceDraft(
        source_id="re_1",
        customer_id=customer_id,
        number=number,
        issued_on=date(2026, 1, 21),
        due_on=None,
        currency="USD",
        lines=(
            LineDraft(
                item_id="Consulting",
                description="Consulting refunded",
                quantity=1,
                amount=Decimal("50.00"),
                tax_code="Sales Tax",
                tax=Decimal("4.13"),
            ),
        ),
        discount=Decimal(0),
        tax=Decimal("4.13"),
        total=Decimal("54.13"),
        memo=None,
        private_note=marker("stripe", "re_1"),
    )


def test_adapter_books_a_refund_as_a_credit_note_and_parks_its_payout(sandbox: FreshBooksSandbox) -> None:
    """Over HTTP, a refund becomes a goodwill credit note whose unpaid balance is its total, found again
    by number and id; a second refund with that number is refused even after a cold start; and paying it
    out raises Unsupported, naming what to record by hand, without sending FreshBooks any request."""
    ledger = _adapter(sandbox.start(), ACCOUNT)
    customer = ledger.create_customer("Refund Co", None, "USD", "cus_1", "cust-1").id
    refund = ledger.create_refund(_refund_draft(customer, "RF-1"), None, "refund-1")
    assert (refund.total, refund.balance, refund.number) == (Decimal("54.13"), Decimal("54.13"), "RF-1")
    (stored,) = sandbox.documents(ACCOUNT, "credit_notes")
    assert (stored["id"], stored["credit_type"], stored["status"]) == (int(refund.id), "goodwill", "sent")
    found = ledger.find_refund("RF-1")
    assert found is not None
    assert (found.id, found.balance, found.private_note) == (
        refund.id,
        Decimal("54.13"),
        marker("stripe", "re_1"),
    )
    assert ledger.get_refund(refund.id).balance == Decimal("54.13")
    ledger.forget_replays()
    with pytest.raises(DuplicateNumber):
        ledger.create_refund(_refund_draft(customer, "RF-1"), None, "refund-1")
    calls = len(sandbox.request_log)
    payout = PaymentDraft(
        source_id="re_1",
        customer_id=customer,
        invoice_id=refund.id,
        amount=Decimal("54.13"),
        currency="USD",
        paid_on=date(2026, 1, 22),
        private_note=marker("stripe", "re_1:payout"),
        account="Checking",
    )
    with pytest.raises(Unsupported) as parked:
        ledger.pay_out_credit(payout, "payout-1")
    assert len(sandbox.request_log) == calls
    assert f"credit note {refund.id}" in str(parked.value)
    assert "debit Customer Credit 54.13 USD, credit account Checking 54.13 USD" in str(parked.value)
    assert ledger.get_refund(refund.id).balance == Decimal("54.13")
    assert len(sandbox.documents(ACCOUNT, "credit_notes")) == 1


# ------------------------------------------------------------------------------------------------ Errors


def test_validation_errors_have_freshbooks_errno_shape(fb: Fb) -> None:
    """422 with {"response": {"errors": [{errno, field, message, object, value}]}}; 404 for unknown ids."""
    customer_id = make_client(fb)
    unknown = fb.post("invoices/invoices", invoice_body(12345))
    assert unknown.status_code == 422
    assert error(unknown) == {
        "errno": 1012,
        "field": "customerid",
        "message": "Client not found.",
        "object": "client",
        "value": "12345",
    }
    no_date = fb.post("invoices/invoices", {"invoice": {"customerid": customer_id, "lines": []}})
    assert (no_date.status_code, error(no_date)["errno"], error(no_date)["field"]) == (
        422,
        1001,
        "create_date",
    )
    for bad in ("eight", Decimal("8.25"), "8.1234"):
        response = fb.http.post(
            fb.url("invoices/invoices"),
            content=json.dumps(
                invoice_body(customer_id, [line("A", "1.00") | {"taxName1": "GST", "taxAmount1": bad}]),
                default=float,
            ),
            headers={**fb.headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, bad
        assert error(response)["errno"] == 1018
        assert error(response)["message"] == "Percent values should be strings formatted as decimals"
    same_tax_twice = line("A", "1.00", tax=("GST", "5"), taxName2="GST", taxAmount2="5")
    duplicate = fb.post("invoices/invoices", invoice_body(customer_id, [same_tax_twice]))
    assert (duplicate.status_code, error(duplicate)["errno"]) == (422, 1019)
    third = fb.post("invoices/invoices", invoice_body(customer_id, [line("A", "1.00") | {"taxName3": "PST"}]))
    assert error(third)["errno"] == 1019
    missing = fb.get("invoices/invoices/424242")
    assert missing.status_code == 404
    assert error(missing)["errno"] == 1012
    assert error(missing)["message"] == "Invoice not found."
    unknown_invoice = fb.post(
        "payments/payments", {"payment": {"invoiceid": 5, "amount": {"amount": "1.00"}}}
    )
    assert (unknown_invoice.status_code, error(unknown_invoice)["errno"]) == (422, 1012)
    assert fb.get("invoices/invoices").json()["response"]["result"]["total"] == 0


def test_stale_updated_is_a_409_conflict(fb: Fb, clock: FakeClock) -> None:
    """A PUT carrying an 'updated' older than the stored one is refused with errno 409."""
    invoice = make_invoice(fb, make_client(fb))
    path = f"invoices/invoices/{invoice['id']}"
    clock.now += 5
    result(fb.put(path, {"invoice": {"notes": "first", "updated": invoice["updated"]}}), "invoice")
    stale = fb.put(path, {"invoice": {"notes": "second", "updated": invoice["updated"]}})
    assert stale.status_code == 409
    assert error(stale)["errno"] == 409
    assert error(stale)["message"] == "The resource being modified is being modified by another request."
    assert result(fb.get(path), "invoice")["notes"] == "first"


def test_paging_caps_per_page_and_rejects_bad_pages(fb: Fb) -> None:
    """per_page is silently capped at 100, page 0 is page 1, a non-numeric page is errno 1014."""
    customer_id = make_client(fb)
    for _ in range(3):
        make_invoice(fb, customer_id)
    page = fb.get("invoices/invoices", per_page="2", page="2").json()["response"]["result"]
    assert (len(page["invoices"]), page["page"], page["pages"], page["total"]) == (1, 2, 2, 3)
    capped = fb.get("invoices/invoices", per_page="500", page="0").json()["response"]["result"]
    assert (capped["per_page"], capped["page"]) == (100, 1)
    assert fb.get("invoices/invoices", page="9").json()["response"]["result"]["invoices"] == []
    bad = fb.get("invoices/invoices", page="x")
    assert (bad.status_code, error(bad)["errno"]) == (400, 1014)


# ------------------------------------------------------------------------------------------ Limits and faults


def test_rate_limit_answers_429_with_retry_after(clock: FakeClock) -> None:
    """More than requests_per_minute calls in a sliding minute get 429 and a Retry-After header."""
    box = FreshBooksSandbox(requests_per_minute=3, clock=clock)
    seed(box)
    fb = Fb(box.start())
    try:
        fb.refresh()
        statuses = [fb.get("users/clients").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        clock.now += 20
        throttled = fb.get("users/clients")
        assert throttled.json() == {"message": "Too Many Requests"}
        assert throttled.headers["Retry-After"] == "40"
        clock.now += 41
        assert fb.get("users/clients").status_code == 200
    finally:
        box.stop()


def test_concurrency_limit_answers_429(clock: FakeClock) -> None:
    """More than max_concurrent requests in flight at once get 429."""
    box = FreshBooksSandbox(max_concurrent=2, latency_seconds=2.0, clock=clock)
    # (2 s, and the five sent together past a barrier: on a loaded machine 0.3 s let one finish
    # before the last had started, and a third was served.)
    seed(box)
    base = box.start()
    fb = Fb(base)
    try:
        fb.refresh()
        statuses: list[int] = []
        lock = threading.Lock()
        together = threading.Barrier(5)

        def call() -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                together.wait()
                status = http.get(fb.url("users/clients"), headers=fb.headers()).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=call) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses.count(200) <= 2
        assert 429 in statuses
    finally:
        box.stop()


def test_injected_statuses_change_nothing(fb: Fb, sandbox: FreshBooksSandbox) -> None:
    """inject_status answers 409/429/5xx without doing anything; 502-504 come back as HTML."""
    customer_id = make_client(fb)
    sandbox.inject_status(ACCOUNT, 503)
    sandbox.inject_status(ACCOUNT, 429)
    sandbox.inject_status(ACCOUNT, 409)
    gateway = fb.post("invoices/invoices", invoice_body(customer_id))
    assert gateway.status_code == 503
    assert gateway.headers["content-type"].startswith("text/html")
    throttled = fb.post("invoices/invoices", invoice_body(customer_id))
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    conflict = fb.post("invoices/invoices", invoice_body(customer_id))
    assert (conflict.status_code, error(conflict)["errno"]) == (409, 409)
    assert sandbox.documents(ACCOUNT, "invoices") == []
    assert fb.post("invoices/invoices", invoice_body(customer_id)).status_code == 200
    statuses = [
        s for _, path, s in sandbox.request_log if path == f"/accounting/account/{ACCOUNT}/invoices/invoices"
    ]
    assert statuses == [503, 429, 409, 200]
    with pytest.raises(ValueError, match="409, 429 or a 5xx"):
        sandbox.inject_status(ACCOUNT, 404)


def test_lost_response_commits_and_idempotency_key_is_ignored(fb: Fb, sandbox: FreshBooksSandbox) -> None:
    """A lost response still commits; FreshBooks has no idempotency keys, so a blind retry duplicates."""
    customer_id = make_client(fb)
    sandbox.lose_responses(ACCOUNT)
    key = {"Idempotency-Key": "stripe-in_123"}
    lost = fb.post("invoices/invoices", invoice_body(customer_id, invoice_number="INV-9"), headers=key)
    assert lost.status_code == 502
    assert len(sandbox.documents(ACCOUNT, "invoices")) == 1
    retry = fb.post("invoices/invoices", invoice_body(customer_id, invoice_number="INV-9"), headers=key)
    assert retry.status_code == 200
    assert len(sandbox.documents(ACCOUNT, "invoices")) == 2  # the adapter must search before re-creating
    found = fb.get("invoices/invoices", **{"search[invoice_number]": "INV-9"}).json()["response"]["result"]
    assert found["total"] == 2


def test_http_control_endpoints(sandbox: FreshBooksSandbox) -> None:
    """The /_sandbox endpoints seed, inspect and break a sandbox running in another process."""
    base = sandbox.start()
    with httpx.Client(base_url=base, timeout=10) as http:
        seeded = http.post(
            "/_sandbox/accounts",
            json={
                "account_id": "http-1",
                "business_id": 55,
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
                "currency": "CAD",
            },
        )
        assert seeded.status_code == 201
        fb = Fb(base, account="http-1", refresh_token="r")
        assert fb.refresh(client_id="c", client_secret="s").status_code == 200
        client_id = make_client(fb)
        clients = http.get("/_sandbox/accounts/http-1/clients").json()
        assert [(c["id"], c["currency_code"]) for c in clients] == [(client_id, "CAD")]
        taxes = {t["name"]: t["amount"] for t in http.get("/_sandbox/accounts/http-1/taxes").json()}
        assert taxes == {"Sales Tax": "8.25", "GST": "5", "HST": "13"}
        items = http.get("/_sandbox/accounts/http-1/items").json()
        assert {i["name"]: i["unit_cost"]["amount"] for i in items} == {
            "Consulting": "150.00",
            "Hosting": "49.99",
        }
        assert http.post("/_sandbox/accounts/http-1/faults", json={"status": 429}).status_code == 200
        assert fb.get(f"users/clients/{client_id}").status_code == 429
        assert http.post("/_sandbox/accounts/http-1/faults", json={"lose_responses": 1}).status_code == 200
        assert fb.post("users/clients", {"client": {"email": "lost@x.test"}}).status_code == 502
        assert len(http.get("/_sandbox/accounts/http-1/clients").json()) == 2
        assert http.post("/_sandbox/accounts/http-1/expire-access-tokens").status_code == 200
        assert fb.get(f"users/clients/{client_id}").status_code == 401
        assert http.post("/_sandbox/accounts/http-1/revoke").status_code == 200
        assert fb.refresh(client_id="c", client_secret="s").json()["error"] == "invalid_grant"
        log = http.get("/_sandbox/requests").json()
        assert {
            "method": "GET",
            "path": f"/accounting/account/http-1/users/clients/{client_id}",
            "status": 429,
        } in log
        assert http.get("/_sandbox/accounts/nope/invoices").status_code == 404
        assert http.post("/_sandbox/accounts/http-1/faults", json={"status": 400}).status_code == 400


# ------------------------------------------------------------------------------------------ Official SDK


def test_official_sdk_parses_sandbox_responses(
    sandbox: FreshBooksSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """freshbooks-sdk (if installed) refreshes, reads the identity and round-trips an invoice.

    The SDK parses JSON with parse_float=Decimal, but FreshBooks money amounts are strings, so they come
    back as str: the adapter must convert with Decimal(str), never float.
    """
    sdk = pytest.importorskip("freshbooks")
    monkeypatch.setenv("FRESHBOOKS_API_URL", sandbox.start())
    client = sdk.Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        refresh_token=SEEDED_REFRESH_TOKEN,
        auto_retry=False,
    )
    tokens = client.refresh_access_token()
    assert tokens.refresh_token != SEEDED_REFRESH_TOKEN
    identity = client.current_user()
    assert identity.business_memberships[0].business.account_id == ACCOUNT
    customer = client.clients.create(ACCOUNT, {"organization": "SDK Co", "email": "sdk@x.test"})
    created = client.invoices.create(
        ACCOUNT,
        {
            "customerid": customer.id,
            "create_date": "2026-01-15",
            "lines": [line("Hosting", "49.99", tax=("Sales Tax", "8.25"))],
        },
    )
    invoice = client.invoices.get(ACCOUNT, created.id)
    assert isinstance(invoice.amount.amount, str)
    assert Decimal(invoice.amount.amount) == Decimal("54.11")
    assert Decimal(invoice.outstanding.amount) == Decimal("54.11")
    assert invoice.v3_status == "draft"
    listed = client.invoices.list(ACCOUNT, builders=[sdk.FilterBuilder().equals("invoice_number", "0000001")])
    assert len(listed) == 1
    assert listed.pages.total == 1
    with pytest.raises(sdk.FreshBooksError) as failure:
        client.invoices.get(ACCOUNT, 999)
    assert (failure.value.status_code, failure.value.error_code, str(failure.value)) == (
        404,
        1012,
        "Invoice not found.",
    )
