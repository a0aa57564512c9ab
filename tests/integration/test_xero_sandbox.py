"""The Xero sandbox speaks Accounting API 2.0 faithfully over real HTTP (what the Xero adapter relies on)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from invoice_sync_ops.sandboxes.xero import XeroSandbox, dumps

TENANT = "4f5a9d4e-7c1b-4a8e-9a57-2f0d6c3b1e01"
CLIENT = ("xero-client", "xero-secret")
SEEDED_REFRESH_TOKEN = "xrt-0"
API = "/api.xro/2.0"
SPEC = Path(__file__).resolve().parents[3] / "shared/specs/xero/xero_accounting.yaml"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


class Xero:
    """A minimal Xero client: just enough HTTP to drive the sandbox the way the adapter does."""

    def __init__(
        self, base_url: str, tenant: str = TENANT, refresh_token: str = SEEDED_REFRESH_TOKEN
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.tenant = tenant
        self.refresh_token = refresh_token
        self.access_token = ""

    def refresh(self, auth: tuple[str, str] = CLIENT, token: str | None = None) -> httpx.Response:
        response = self.http.post(
            "/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": token or self.refresh_token},
            auth=auth,
        )
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
            self.access_token = response.json()["access_token"]
        return response

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token}",
            "xero-tenant-id": self.tenant,
            "Accept": "application/json",
            **extra,
        }

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(f"{API}/{path}", params=params, headers=self.headers())

    def send(
        self, method: str, path: str, body: Any, key: str | None = None, **params: str
    ) -> httpx.Response:
        headers = self.headers(**{"Content-Type": "application/json"})
        if key is not None:
            headers["Idempotency-Key"] = key
        # Decimals go out as JSON numbers (never via float), as the adapter sends money.
        return self.http.request(method, f"{API}/{path}", params=params, content=dumps(body), headers=headers)

    def put(self, path: str, body: Any, key: str | None = None, **params: str) -> httpx.Response:
        return self.send("PUT", path, body, key, **params)

    def post(self, path: str, body: Any, key: str | None = None, **params: str) -> httpx.Response:
        return self.send("POST", path, body, key, **params)


def seed(sandbox: XeroSandbox, tenant: str = TENANT, **kwargs: Any) -> None:
    token = SEEDED_REFRESH_TOKEN if tenant == TENANT else f"xrt-{tenant}"
    sandbox.seed_organisation(
        tenant, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token=token, **kwargs
    )


def decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[XeroSandbox]:
    box = XeroSandbox(clock=clock)
    seed(box)
    yield box
    box.stop()


@pytest.fixture
def xero(sandbox: XeroSandbox) -> Iterator[Xero]:
    client = Xero(sandbox.start())
    assert client.refresh().status_code == 200
    yield client
    client.http.close()


def make_contact(xero: Xero, name: str = "Acme Corp") -> str:
    response = xero.put("Contacts", {"Contacts": [{"Name": name, "EmailAddress": "ap@acme.test"}]})
    assert response.status_code == 200, response.text
    contact_id: str = response.json()["Contacts"][0]["ContactID"]
    return contact_id


def line(
    unit: str, qty: str = "1", account: str = "200", tax: str = "OUTPUT2", **extra: Any
) -> dict[str, Any]:
    return {
        "Description": "Consulting",
        "Quantity": Decimal(qty),
        "UnitAmount": Decimal(unit),
        "AccountCode": account,
        "TaxType": tax,
        **extra,
    }


def invoice(
    contact_id: str, number: str = "INV-1001", *lines: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-01-15",
        "DueDate": "2026-02-14",
        "InvoiceNumber": number,
        "Reference": "src:in_123",
        "CurrencyCode": "USD",
        "LineAmountTypes": "Exclusive",
        "Status": "AUTHORISED",
        "LineItems": list(lines) or [line("100.00")],
        **extra,
    }


def create_invoice(xero: Xero, body: dict[str, Any]) -> dict[str, Any]:
    response = xero.put("Invoices", {"Invoices": [body]})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = decimal_json(response)["Invoices"][0]
    return created


# ------------------------------------------------------------------------------------------------ OAuth


def test_refresh_rotates_and_old_token_replays_the_same_set_within_grace(
    sandbox: XeroSandbox, clock: FakeClock
) -> None:
    """Refresh tokens rotate; the old one answers with the same new token set for 30 minutes, then dies."""
    # Given a client holding the seeded refresh token
    client = Xero(sandbox.start())
    # When it refreshes
    first = client.refresh()
    # Then it gets Xero's token response with a new refresh token
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["scope"] == "openid profile email accounting.transactions offline_access"
    assert "id_token" not in body
    assert body["refresh_token"] != SEEDED_REFRESH_TOKEN
    # When the old refresh token is presented again within the grace window
    clock.now += 29 * 60
    again = client.refresh(token=SEEDED_REFRESH_TOKEN)
    # Then the very same token set comes back (nothing new is minted)
    assert again.status_code == 200
    assert again.json() == body
    # When the grace window has passed, then the old token is invalid_grant
    clock.now += 2 * 60
    late = client.http.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": SEEDED_REFRESH_TOKEN},
        auth=CLIENT,
    )
    assert late.status_code == 400
    assert late.json() == {"error": "invalid_grant"}
    # And the rotated token still works
    assert client.refresh().status_code == 200


def test_revoked_unknown_token_and_bad_client(sandbox: XeroSandbox) -> None:
    """Revoked or unknown refresh tokens are 400 invalid_grant; a wrong secret is 400 invalid_client."""
    client = Xero(sandbox.start())
    # When the client credentials are wrong, then it is invalid_client
    bad = client.refresh(auth=(CLIENT[0], "wrong"))
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid_client"})
    # When the refresh token is unknown, then it is invalid_grant
    unknown = client.refresh(token="nope")
    assert (unknown.status_code, unknown.json()) == (400, {"error": "invalid_grant"})
    # Given a rotation, when the refresh token is revoked, then neither the new nor the old one works
    assert client.refresh().status_code == 200
    sandbox.revoke_refresh_token(TENANT)
    assert client.refresh().json() == {"error": "invalid_grant"}
    assert client.refresh(token=SEEDED_REFRESH_TOKEN).json() == {"error": "invalid_grant"}


def test_connections_lists_the_tenant(xero: Xero) -> None:
    """GET /connections with the bearer token lists the organisation to put in xero-tenant-id."""
    response = xero.http.get("/connections", headers={"Authorization": f"Bearer {xero.access_token}"})
    assert response.status_code == 200
    (connection,) = response.json()
    assert connection["tenantId"] == TENANT
    assert connection["tenantType"] == "ORGANISATION"
    assert connection["tenantName"] == "Demo Company (Global)"
    assert {"id", "authEventId", "createdDateUtc", "updatedDateUtc"} <= connection.keys()


def test_401_for_expired_or_bad_token_and_403_for_tenant(
    xero: Xero, clock: FakeClock, sandbox: XeroSandbox
) -> None:
    """Expired or bad tokens are 401 problem bodies; a missing or foreign tenant header is 403."""
    assert xero.get("Organisation").status_code == 200
    # When 30 minutes pass, then the token is expired with Xero's 401 body
    clock.now += 1801
    expired = xero.get("Organisation")
    assert expired.status_code == 401
    problem = expired.json()
    assert (problem["Title"], problem["Status"], problem["Type"]) == ("Unauthorized", 401, None)
    assert problem["Detail"].startswith("TokenExpired: token expired at ")
    assert {"Instance", "Extensions"} <= problem.keys()
    # When a garbage token is sent, then it is 401 too
    assert xero.http.get(f"{API}/Organisation", headers={"Authorization": "Bearer junk"}).status_code == 401
    # Given a fresh token, when the tenant header is missing or unknown, then it is 403
    assert xero.refresh().status_code == 200
    missing = xero.http.get(f"{API}/Organisation", headers={"Authorization": f"Bearer {xero.access_token}"})
    assert missing.status_code == 403
    assert missing.json()["Detail"] == "AuthenticationUnsuccessful"
    assert missing.json()["Title"] == "Forbidden"
    xero.tenant = "someone-else"
    assert xero.get("Organisation").status_code == 403
    # And a token issued for another organisation cannot be used on this one
    seed(sandbox, "other-tenant")
    other = Xero(sandbox.base_url, tenant="other-tenant", refresh_token="xrt-other-tenant")
    assert other.refresh().status_code == 200
    other.tenant = TENANT
    assert other.get("Organisation").status_code == 403
    # And expire_access_tokens() turns live tokens into 401s
    xero.tenant = TENANT
    sandbox.expire_access_tokens(TENANT)
    assert xero.get("Organisation").status_code == 401


# ---------------------------------------------------------------------------------------- Reads and contacts


def test_seeded_reference_data_and_envelope(xero: Xero) -> None:
    """Accounts, TaxRates, Items and Organisation are seeded; responses carry Xero's envelope."""
    accounts = xero.get("Accounts").json()
    assert accounts["Status"] == "OK"
    assert accounts["ProviderName"] == "invoice-sync"
    assert accounts["DateTimeUTC"] == "/Date(1767225600000)/"
    by_code = {a["Code"]: a for a in accounts["Accounts"]}
    assert (by_code["200"]["Type"], by_code["200"]["Name"]) == ("REVENUE", "Sales")
    assert by_code["090"]["Type"] == "BANK"
    assert by_code["090"]["EnablePaymentsToAccount"] is True
    assert by_code["400"]["Class"] == "EXPENSE"
    rates = {r["TaxType"]: r for r in decimal_json(xero.get("TaxRates"))["TaxRates"]}
    assert rates["OUTPUT2"]["EffectiveRate"] == Decimal("8.25")
    assert rates["NONE"]["EffectiveRate"] == 0
    items = {i["Code"]: i for i in xero.get("Items").json()["Items"]}
    assert items["CONSULT"]["SalesDetails"]["AccountCode"] == "200"
    assert items["HOSTING"]["SalesDetails"]["AccountCode"] == "260"
    (org,) = xero.get("Organisation").json()["Organisations"]
    assert org["BaseCurrency"] == "USD"
    # And an unknown id is Xero's plain-text 404
    missing = xero.get("Invoices/3fa85f64-5717-4562-b3fc-2c963f66afa6")
    assert missing.status_code == 404
    assert missing.text == "The resource you're looking for cannot be found"
    assert missing.headers["content-type"].startswith("text/plain")


def test_contacts_create_find_and_unique_name(xero: Xero) -> None:
    """Contacts: PUT creates, where= and IDs= find, names are unique among active contacts, POST updates."""
    contact_id = make_contact(xero)
    # When searched by name, by email and by id, then the contact is found each way
    assert [c["ContactID"] for c in xero.get("Contacts", where='Name=="Acme Corp"').json()["Contacts"]] == [
        contact_id
    ]
    by_email = xero.get("Contacts", where='EmailAddress=="ap@acme.test"').json()["Contacts"]
    assert [c["ContactID"] for c in by_email] == [contact_id]
    assert len(xero.get("Contacts", IDs=contact_id).json()["Contacts"]) == 1
    assert xero.get("Contacts", where='Name=="Nobody"').json()["Contacts"] == []
    assert xero.get(f"Contacts/{contact_id}").json()["Contacts"][0]["Name"] == "Acme Corp"
    # When another contact takes the same name, then it is a ValidationException
    duplicate = xero.put("Contacts", {"Contacts": [{"Name": "Acme Corp"}]})
    assert duplicate.status_code == 400
    error = duplicate.json()
    assert (error["ErrorNumber"], error["Type"]) == (10, "ValidationException")
    assert error["Elements"][0]["ValidationErrors"] == [
        {
            "Message": "The contact name Acme Corp is already assigned to another contact. "
            "The contact name must be unique across all active contacts."
        }
    ]
    # When POSTed with its ContactID, then the contact is updated in place
    updated = xero.post(
        "Contacts", {"Contacts": [{"ContactID": contact_id, "EmailAddress": "new@acme.test"}]}
    )
    assert updated.status_code == 200
    assert updated.json()["Contacts"][0]["EmailAddress"] == "new@acme.test"
    assert updated.json()["Contacts"][0]["StatusAttributeString"] == "OK"
    # And a bad where clause is a QueryParseException
    bad = xero.get("Contacts", where='Name=~"x"')
    assert (bad.status_code, bad.json()["Type"]) == (400, "QueryParseException")


# -------------------------------------------------------------------------------------------- Invoices


def test_create_invoice_rounds_tax_per_line_and_totals(xero: Xero) -> None:
    """Two lines: LineAmount = qty x unit, tax rounded half up per line (49.99 x 8.25% = 4.12), totals."""
    contact_id = make_contact(xero)
    # When an ACCREC invoice with two lines is created
    created = create_invoice(
        xero,
        invoice(contact_id, "INV-1001", line("49.99"), line("20.00", qty="3", tax="OUTPUT", account="260")),
    )
    # Then each line is priced and taxed on its own
    first, second = created["LineItems"]
    assert (first["LineAmount"], first["TaxAmount"]) == (Decimal("49.99"), Decimal("4.12"))
    assert (second["LineAmount"], second["TaxAmount"]) == (Decimal("60.00"), Decimal("9.00"))
    assert first["LineItemID"] != second["LineItemID"]
    # And the totals are the sums
    assert created["SubTotal"] == Decimal("109.99")
    assert created["TotalTax"] == Decimal("13.12")
    assert created["Total"] == Decimal("123.11")
    assert created["AmountDue"] == Decimal("123.11")
    assert (created["AmountPaid"], created["AmountCredited"]) == (0, 0)
    # And it is echoed in Xero's shape
    assert created["Status"] == "AUTHORISED"
    assert created["HasErrors"] is False
    assert created["StatusAttributeString"] == "OK"
    assert created["Date"] == "/Date(1768435200000+0000)/"
    assert created["DateString"] == "2026-01-15T00:00:00"
    assert created["DueDateString"] == "2026-02-14T00:00:00"
    assert created["UpdatedDateUTC"] == "/Date(1767225600000+0000)/"
    assert created["Contact"]["Name"] == "Acme Corp"
    # And it can be read back by id, by number and with InvoiceNumbers= / where=
    invoice_id = created["InvoiceID"]
    assert xero.get(f"Invoices/{invoice_id}").json()["Invoices"][0]["InvoiceNumber"] == "INV-1001"
    assert xero.get("Invoices/INV-1001").json()["Invoices"][0]["InvoiceID"] == invoice_id
    listed = xero.get("Invoices", InvoiceNumbers="INV-1001,INV-9").json()["Invoices"]
    assert [i["InvoiceID"] for i in listed] == [invoice_id]
    assert listed[0]["LineItems"] == []  # lists without paging are summaries, as in Xero
    paged = xero.get("Invoices", where='InvoiceNumber=="INV-1001"', page="1").json()
    assert len(paged["Invoices"][0]["LineItems"]) == 2
    assert paged["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 1}


def test_line_amount_mismatch_and_inclusive_tax(xero: Xero) -> None:
    """A given LineAmount must match qty x unit within 0.01; Inclusive amounts carry their tax inside."""
    contact_id = make_contact(xero)
    mismatch = xero.put("Invoices", invoice(contact_id, "INV-1", line("10.00", LineAmount=Decimal("10.05"))))
    assert mismatch.status_code == 400
    assert mismatch.json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "The line total 10.05 does not match the expected line total 10.00"}
    ]
    inclusive = create_invoice(
        xero, invoice(contact_id, "INV-2", line("115.00", tax="OUTPUT"), LineAmountTypes="Inclusive")
    )
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (
        Decimal("100.00"),
        Decimal("15.00"),
        Decimal("115.00"),
    )
    discounted = create_invoice(
        xero, invoice(contact_id, "INV-3", line("100.00", DiscountRate=Decimal("10")))
    )
    assert discounted["LineItems"][0]["LineAmount"] == Decimal("90.00")
    assert discounted["TotalDiscount"] == Decimal("10.00")


def test_summarize_errors_false_saves_good_elements_and_flags_bad_ones(
    xero: Xero, sandbox: XeroSandbox
) -> None:
    """summarizeErrors=false: 200, the good element is saved, the bad one carries ValidationErrors."""
    contact_id = make_contact(xero)
    good = invoice(contact_id, "INV-G")
    bad = invoice(contact_id, "INV-B", line("10.00", account="999"))
    # When both are sent with summarizeErrors=false
    response = xero.put("Invoices", {"Invoices": [good, bad]}, summarizeErrors="false")
    # Then the call succeeds and each element reports its own outcome
    assert response.status_code == 200
    saved, failed = response.json()["Invoices"]
    assert saved["StatusAttributeString"] == "OK"
    assert failed["StatusAttributeString"] == "ERROR"
    assert failed["HasErrors"] is True
    assert failed["InvoiceID"] == "00000000-0000-0000-0000-000000000000"
    assert failed["ValidationErrors"] == [
        {"Message": "Account code '999' is not a valid code for this document."}
    ]
    # And only the good one is stored
    assert [i["InvoiceNumber"] for i in sandbox.documents(TENANT, "Invoices")] == ["INV-G"]


def test_summarized_errors_fail_the_whole_request(xero: Xero, sandbox: XeroSandbox) -> None:
    """Without summarizeErrors=false any invalid element is a 400 ValidationException and nothing is saved."""
    contact_id = make_contact(xero)
    good = invoice(contact_id, "INV-G")
    bad = invoice(contact_id, "INV-B", line("10.00", tax="BOGUS"))
    response = xero.put("Invoices", {"Invoices": [good, bad]})
    assert response.status_code == 400
    body = response.json()
    assert body["ErrorNumber"] == 10
    assert body["Type"] == "ValidationException"
    assert body["Message"] == "A validation exception occurred"
    (element,) = body["Elements"]
    assert element["InvoiceNumber"] == "INV-B"
    assert element["ValidationErrors"] == [
        {"Message": "The TaxType code BOGUS does not exist or cannot be used for this type of transaction."}
    ]
    assert sandbox.documents(TENANT, "Invoices") == []
    # And more than 100 elements are refused outright
    too_many = xero.put("Invoices", {"Invoices": [good] * 101})
    assert too_many.status_code == 400
    assert "Too many elements" in too_many.json()["Message"]


def test_duplicate_invoice_number_and_post_upserts_by_number(xero: Xero, sandbox: XeroSandbox) -> None:
    """InvoiceNumber is unique among live ACCREC invoices: PUT refuses it, POST updates that invoice."""
    contact_id = make_contact(xero)
    first = create_invoice(xero, invoice(contact_id, "INV-7", Status="DRAFT"))
    duplicate = xero.put("Invoices", invoice(contact_id, "INV-7"))
    assert duplicate.status_code == 400
    assert duplicate.json()["Elements"][0]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    # When the same number is POSTed, then the existing invoice is updated, not duplicated
    upsert = xero.post("Invoices", invoice(contact_id, "INV-7", line("250.00", tax="NONE")))
    assert upsert.status_code == 200
    assert upsert.json()["Invoices"][0]["InvoiceID"] == first["InvoiceID"]
    assert upsert.json()["Invoices"][0]["Total"] == 250
    assert len(sandbox.documents(TENANT, "Invoices")) == 1
    # And a DELETED draft frees its number... after voiding the authorised one
    voided = xero.post(f"Invoices/{first['InvoiceID']}", {"Status": "VOIDED"})
    assert voided.status_code == 200
    assert voided.json()["Invoices"][0]["Status"] == "VOIDED"
    assert voided.json()["Invoices"][0]["AmountDue"] == 0
    assert xero.put("Invoices", invoice(contact_id, "INV-7")).status_code == 200


def test_idempotency_key_replays_within_the_window(
    xero: Xero, sandbox: XeroSandbox, clock: FakeClock
) -> None:
    """The same Idempotency-Key within 6 minutes replays the stored response; after that it runs again."""
    contact_id = make_contact(xero)
    body = invoice(contact_id, "INV-I")
    first = xero.put("Invoices", body, key="sync-in_123-create")
    assert first.status_code == 200
    # When the request is retried with the same key, then the same response comes back, nothing new is made
    clock.now += 300
    replay = xero.put("Invoices", body, key="sync-in_123-create")
    assert (replay.status_code, replay.content) == (200, first.content)
    assert len(sandbox.documents(TENANT, "Invoices")) == 1
    # And the same key on a different request is refused
    other = xero.put("Invoices", invoice(contact_id, "INV-J"), key="sync-in_123-create")
    assert other.status_code == 400
    assert "different request" in other.json()["Detail"]
    # And a key over 128 characters is refused
    assert xero.put("Invoices", body, key="k" * 129).status_code == 400
    # When the window has passed, then the key is forgotten and the request runs (here: a duplicate number)
    clock.now += 61
    late = xero.put("Invoices", body, key="sync-in_123-create")
    assert late.status_code == 400
    assert late.json()["Elements"][0]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    # And forget_idempotency_keys() clears keys on demand
    assert xero.put("Invoices", invoice(contact_id, "INV-K"), key="k2").status_code == 200
    sandbox.forget_idempotency_keys(TENANT)
    assert xero.put("Invoices", invoice(contact_id, "INV-K"), key="k2").status_code == 400


# ------------------------------------------------------------------------------ Payments and credit notes


def test_payment_marks_invoice_paid_and_overpayment_is_refused(xero: Xero) -> None:
    """Payments reduce AmountDue; the last one makes the invoice PAID; more than is due is refused."""
    contact_id = make_contact(xero)
    created = create_invoice(xero, invoice(contact_id, "INV-P", line("100.00", tax="NONE")))
    invoice_id = created["InvoiceID"]
    payment = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Date": "2026-01-20"}
    # When more than is outstanding is paid, then the payment is refused
    over = xero.put("Payments", {"Payments": [payment | {"Amount": Decimal("100.01")}]})
    assert over.status_code == 400
    assert over.json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "Payment amount exceeds the amount outstanding on this document"}
    ]
    # When it is paid in two parts (the second by InvoiceNumber)
    part = xero.put("Payments", {"Payments": [payment | {"Amount": Decimal("40.00"), "Reference": "ch_1"}]})
    assert part.status_code == 200
    assert decimal_json(xero.get(f"Invoices/{invoice_id}"))["Invoices"][0]["AmountDue"] == Decimal("60.00")
    rest = {"Invoice": {"InvoiceNumber": "INV-P"}, "Account": {"Code": "090"}, "Amount": Decimal("60.00")}
    assert xero.put("Payments", {"Payments": [rest]}).status_code == 200
    # Then the invoice is PAID with both payments listed
    paid = decimal_json(xero.get(f"Invoices/{invoice_id}"))["Invoices"][0]
    assert paid["Status"] == "PAID"
    assert (paid["AmountPaid"], paid["AmountDue"]) == (Decimal("100.00"), Decimal("0.00"))
    assert [p["Amount"] for p in paid["Payments"]] == [Decimal("40.00"), Decimal("60.00")]
    assert "FullyPaidOnDate" in paid
    # And the payment can be found by reference, and changing the paid invoice's lines is refused
    found = xero.get("Payments", where='Reference=="ch_1"').json()["Payments"]
    assert [p["Amount"] for p in found] == [40]
    locked = xero.post(f"Invoices/{invoice_id}", {"LineItems": [line("1.00")]})
    assert locked.json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "Invoice not of valid status for modification"}
    ]
    # When a payment is deleted, then the invoice is AUTHORISED again with that amount due
    payment_id = found[0]["PaymentID"]
    deleted = xero.post(f"Payments/{payment_id}", {"Status": "DELETED"})
    assert deleted.status_code == 200
    again = decimal_json(xero.get(f"Invoices/{invoice_id}"))["Invoices"][0]
    assert (again["Status"], again["AmountDue"]) == ("AUTHORISED", Decimal("40.00"))
    # And payments to a revenue account are refused
    wrong = xero.put("Payments", {"Payments": [payment | {"Account": {"Code": "200"}, "Amount": 1}]})
    assert wrong.status_code == 400


def test_credit_note_allocation_reduces_amount_due_and_blocks_void(xero: Xero) -> None:
    """An AUTHORISED credit note allocated to an invoice raises AmountCredited and lowers AmountDue."""
    contact_id = make_contact(xero)
    created = create_invoice(xero, invoice(contact_id, "INV-C", line("100.00", tax="NONE")))
    note_body = {
        "Type": "ACCRECCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-01-21",
        "CreditNoteNumber": "CN-1",
        "Reference": "src:cn_1",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "CurrencyCode": "USD",
        "LineItems": [line("30.00", tax="NONE")],
    }
    response = xero.put("CreditNotes", {"CreditNotes": [note_body]})
    assert response.status_code == 200, response.text
    note = decimal_json(response)["CreditNotes"][0]
    assert (note["Total"], note["RemainingCredit"]) == (Decimal("30.00"), Decimal("30.00"))
    note_id = note["CreditNoteID"]
    assert (
        xero.get("CreditNotes", where='CreditNoteNumber=="CN-1"').json()["CreditNotes"][0]["CreditNoteID"]
        == note_id
    )
    # And the number is unique
    assert xero.put("CreditNotes", note_body).status_code == 400
    # When more than the credit is allocated, then it is refused
    allocation = {"Invoice": {"InvoiceID": created["InvoiceID"]}, "Date": "2026-01-22"}
    over = xero.put(f"CreditNotes/{note_id}/Allocations", {"Allocations": [allocation | {"Amount": 31}]})
    assert over.status_code == 400
    # When 25.00 is allocated
    done = xero.put(f"CreditNotes/{note_id}/Allocations", {"Allocations": [allocation | {"Amount": 25}]})
    assert done.status_code == 200, done.text
    assert decimal_json(done)["Allocations"][0]["Amount"] == Decimal("25.00")
    # Then the invoice and the credit note reflect it
    inv = decimal_json(xero.get(f"Invoices/{created['InvoiceID']}"))["Invoices"][0]
    assert (inv["AmountCredited"], inv["AmountDue"]) == (Decimal("25.00"), Decimal("75.00"))
    assert inv["CreditNotes"][0]["CreditNoteID"] == note_id
    after = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert after["RemainingCredit"] == Decimal("5.00")
    # And an allocated credit note cannot be voided, while an unallocated one can
    assert xero.post(f"CreditNotes/{note_id}", {"Status": "VOIDED"}).status_code == 400
    spare = xero.put("CreditNotes", note_body | {"CreditNoteNumber": "CN-2"}).json()["CreditNotes"][0]
    voided = xero.post(f"CreditNotes/{spare['CreditNoteID']}", {"Status": "VOIDED"})
    assert voided.status_code == 200
    assert voided.json()["CreditNotes"][0]["Status"] == "VOIDED"
    # And an invoice with credit applied cannot be voided
    assert xero.post(f"Invoices/{created['InvoiceID']}", {"Status": "VOIDED"}).status_code == 400


def make_credit_note(xero: Xero, contact_id: str, number: str, unit: str = "30.00") -> dict[str, Any]:
    body = {
        "Type": "ACCRECCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-01-21",
        "CreditNoteNumber": number,
        "Reference": f"src:{number}",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "CurrencyCode": "USD",
        "LineItems": [line(unit, tax="NONE")],
    }
    response = xero.put("CreditNotes", {"CreditNotes": [body]})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = decimal_json(response)["CreditNotes"][0]
    return created


def payout(note_id: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "CreditNote": {"CreditNoteID": note_id},
        "Account": {"Code": "090"},
        "Date": "2026-01-22",
        "Amount": Decimal(amount),
        "Reference": "invoice-sync: stripe re_1",
        **extra,
    }


def test_credit_note_paid_out_lowers_remaining_credit_until_paid(xero: Xero) -> None:
    """A refund Payment naming a credit note (not an invoice) pays its credit out of a bank account:
    RemainingCredit falls, the credit note lists the payout, the last payout makes it PAID, and
    GET /Payments/{id} returns the payout as ARCREDITPAYMENT with its CreditNote and Reference."""
    contact_id = make_contact(xero)
    note_id = make_credit_note(xero, contact_id, "CN-R1")["CreditNoteID"]
    # When 20.00 of the 30.00 credit is paid out
    first = xero.put("Payments", {"Payments": [payout(note_id, "20.00")]}, summarizeErrors="false")
    assert first.status_code == 200, first.text
    paid = decimal_json(first)["Payments"][0]
    assert (paid["StatusAttributeString"], paid["Amount"]) == ("OK", Decimal("20.00"))
    assert (paid["PaymentType"], paid["CreditNote"]["CreditNoteID"]) == ("ARCREDITPAYMENT", note_id)
    assert "Invoice" not in paid
    # Then the credit note has 10.00 left, is still AUTHORISED and lists the payout
    note = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert (note["Status"], note["RemainingCredit"]) == ("AUTHORISED", Decimal("10.00"))
    assert [(p["PaymentID"], p["Amount"]) for p in note["Payments"]] == [
        (paid["PaymentID"], Decimal("20.00"))
    ]
    # And the payout reads back by id with the credit note, its account and its Reference
    read = decimal_json(xero.get(f"Payments/{paid['PaymentID']}"))["Payments"][0]
    assert (read["CreditNote"]["CreditNoteNumber"], read["Account"]["Code"]) == ("CN-R1", "090")
    assert (read["Reference"], read["Amount"]) == ("invoice-sync: stripe re_1", Decimal("20.00"))
    # When the rest is paid out by the credit note's number (top-level, as Xero also accepts)
    rest = payout(note_id, "10.00") | {"CreditNote": {"CreditNoteNumber": "CN-R1"}}
    assert xero.put("Payments", {"Payments": [rest]}).status_code == 200
    # Then it is PAID with nothing left, both payouts listed, and it can no longer be voided
    done = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert (done["Status"], done["RemainingCredit"]) == ("PAID", Decimal("0.00"))
    assert [p["Amount"] for p in done["Payments"]] == [Decimal("20.00"), Decimal("10.00")]
    assert "FullyPaidOnDate" in done
    assert xero.post(f"CreditNotes/{note_id}", {"Status": "VOIDED"}).status_code == 400
    # When a payout is deleted, then its credit is back and the credit note AUTHORISED again
    assert xero.post(f"Payments/{paid['PaymentID']}", {"Status": "DELETED"}).status_code == 200
    again = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert (again["Status"], again["RemainingCredit"]) == ("AUTHORISED", Decimal("20.00"))
    assert len(again["Payments"]) == 1


def test_credit_payout_refusals_are_per_element_in_xeros_words(xero: Xero) -> None:
    """With summarizeErrors=false each payout answers for itself: more than the remaining credit
    is refused in Xero's words, a revenue (non-bank) account and a DRAFT credit note are refused,
    and the valid payout in the same request is saved."""
    contact_id = make_contact(xero)
    note_id = make_credit_note(xero, contact_id, "CN-R2")["CreditNoteID"]
    draft = xero.put(
        "CreditNotes",
        {
            "CreditNotes": [
                {
                    "Type": "ACCRECCREDIT",
                    "Contact": {"ContactID": contact_id},
                    "CreditNoteNumber": "CN-R3",
                    "Status": "DRAFT",
                    "LineItems": [line("5.00", tax="NONE")],
                }
            ]
        },
    )
    draft_id = draft.json()["CreditNotes"][0]["CreditNoteID"]
    response = xero.put(
        "Payments",
        {
            "Payments": [
                payout(note_id, "30.01"),
                payout(note_id, "5.00", Account={"Code": "200"}),
                payout(draft_id, "5.00"),
                payout(note_id, "25.00"),
            ]
        },
        summarizeErrors="false",
    )
    assert response.status_code == 200
    over, revenue, not_authorised, ok = response.json()["Payments"]
    assert over["ValidationErrors"] == [
        {"Message": "Payment amount exceeds the amount outstanding on this document"}
    ]
    assert "not a bank account" in revenue["ValidationErrors"][0]["Message"]
    assert not_authorised["ValidationErrors"] == [{"Message": "Credit note not of valid status for payment"}]
    assert all(e["StatusAttributeString"] == "ERROR" for e in (over, revenue, not_authorised))
    assert ok["StatusAttributeString"] == "OK"
    note = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert (note["Status"], note["RemainingCredit"], len(note["Payments"])) == (
        "AUTHORISED",
        Decimal("5.00"),
        1,
    )
    # And summarised (the default), an overpayout fails the request with a ValidationException
    again = xero.put("Payments", {"Payments": [payout(note_id, "5.01")]})
    assert again.status_code == 400
    assert again.json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "Payment amount exceeds the amount outstanding on this document"}
    ]


def test_credit_payout_replays_by_idempotency_key(xero: Xero, sandbox: XeroSandbox) -> None:
    """A payout retried with the same Idempotency-Key (a lost response) replays the first answer
    and pays nothing twice; the payout is also found again by its Reference."""
    contact_id = make_contact(xero)
    note_id = make_credit_note(xero, contact_id, "CN-R4")["CreditNoteID"]
    body = {"Payments": [payout(note_id, "12.34")]}
    first = xero.put("Payments", body, key="refund-re_1-payout", summarizeErrors="false")
    replay = xero.put("Payments", body, key="refund-re_1-payout", summarizeErrors="false")
    assert (first.status_code, replay.status_code, replay.content) == (200, 200, first.content)
    assert len(sandbox.documents(TENANT, "Payments")) == 1
    note = decimal_json(xero.get(f"CreditNotes/{note_id}"))["CreditNotes"][0]
    assert note["RemainingCredit"] == Decimal("17.66")
    found = xero.get("Payments", where='Reference=="invoice-sync: stripe re_1"').json()["Payments"]
    assert [p["PaymentID"] for p in found] == [first.json()["Payments"][0]["PaymentID"]]


# ---------------------------------------------------------------------------------------- Limits and faults


def test_minute_limit_and_remaining_headers(clock: FakeClock) -> None:
    """Each call lowers X-MinLimit-Remaining; past the limit it is 429 minute with Retry-After."""
    box = XeroSandbox(calls_per_minute=3, clock=clock)
    seed(box)
    xero = Xero(box.start())
    try:
        xero.refresh()
        first = xero.get("Organisation")
        assert first.headers["X-MinLimit-Remaining"] == "2"
        assert first.headers["X-DayLimit-Remaining"] == "4999"
        assert first.headers["X-AppMinLimit-Remaining"] == "9999"
        clock.now += 20
        assert xero.get("Organisation").headers["X-MinLimit-Remaining"] == "1"
        assert xero.get("Organisation").headers["X-MinLimit-Remaining"] == "0"
        # When a fourth call comes inside the minute, then it is throttled until the first call ages out
        throttled = xero.get("Organisation")
        assert throttled.status_code == 429
        assert throttled.headers["X-Rate-Limit-Problem"] == "minute"
        assert throttled.headers["Retry-After"] == "40"
        # And throttled calls do not count: once the window slides, calls go through
        clock.now += 41
        assert xero.get("Organisation").status_code == 200
    finally:
        box.stop()


def test_day_limit(clock: FakeClock) -> None:
    """More than calls_per_day in a rolling 24 h is 429 day with Retry-After until a slot frees."""
    box = XeroSandbox(calls_per_day=2, clock=clock)
    seed(box)
    xero = Xero(box.start())
    try:
        xero.refresh()
        assert xero.get("Organisation").status_code == 200
        clock.now += 600
        second = xero.get("Organisation")
        assert second.headers["X-DayLimit-Remaining"] == "0"
        clock.now += 600
        throttled = xero.get("Organisation")
        assert throttled.status_code == 429
        assert throttled.headers["X-Rate-Limit-Problem"] == "day"
        assert throttled.headers["Retry-After"] == str(86400 - 1200)
    finally:
        box.stop()


def test_concurrency_limit(clock: FakeClock) -> None:
    """More than max_concurrent calls in flight get 429 concurrent with Retry-After 1."""
    box = XeroSandbox(max_concurrent=2, latency_seconds=0.3, clock=clock)
    seed(box)
    base = box.start()
    xero = Xero(base)
    try:
        xero.refresh()
        responses: list[httpx.Response] = []
        lock = threading.Lock()

        def call() -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                response = http.get(f"{API}/Organisation", headers=xero.headers())
            with lock:
                responses.append(response)

        threads = [threading.Thread(target=call) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.status_code for r in responses].count(200) <= 2
        throttled = [r for r in responses if r.status_code == 429]
        assert throttled
        assert all(r.headers["X-Rate-Limit-Problem"] == "concurrent" for r in throttled)
        assert all(r.headers["Retry-After"] == "1" for r in throttled)
    finally:
        box.stop()


def test_injected_status_and_lost_response(xero: Xero, sandbox: XeroSandbox) -> None:
    """inject_status answers without doing anything; lose_responses commits and a key replay recovers it."""
    contact_id = make_contact(xero)
    sandbox.inject_status(TENANT, 503)
    unavailable = xero.put("Invoices", invoice(contact_id, "INV-F"))
    assert unavailable.status_code == 503
    assert unavailable.json()["Title"] == "Service Unavailable"
    assert sandbox.documents(TENANT, "Invoices") == []
    sandbox.inject_status(TENANT, 429)
    assert xero.get("Organisation").headers["X-Rate-Limit-Problem"] == "minute"
    # When the next response is lost, then the client sees 502 yet the invoice exists
    sandbox.lose_responses(TENANT)
    lost = xero.put("Invoices", invoice(contact_id, "INV-F"), key="create-INV-F")
    assert lost.status_code == 502
    stored = sandbox.documents(TENANT, "Invoices")
    assert len(stored) == 1
    # And a retry with the same Idempotency-Key returns that invoice
    retry = xero.put("Invoices", invoice(contact_id, "INV-F"), key="create-INV-F")
    assert retry.json()["Invoices"][0]["InvoiceID"] == stored[0]["InvoiceID"]
    assert len(sandbox.documents(TENANT, "Invoices")) == 1
    statuses = [s for m, p, s in sandbox.request_log if m == "PUT" and p.startswith(f"{API}/Invoices")]
    assert statuses == [503, 502, 200]


def test_http_control_endpoints(sandbox: XeroSandbox) -> None:
    """The /_sandbox endpoints seed, inspect and break a sandbox running in another process."""
    base = sandbox.start()
    with httpx.Client(base_url=base, timeout=10) as http:
        seeded = http.post(
            "/_sandbox/organisations",
            json={"tenant_id": "http-1", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
        )
        assert seeded.status_code == 201
        xero = Xero(base, tenant="http-1", refresh_token="r")
        assert xero.refresh(auth=("c", "s")).status_code == 200
        contact_id = make_contact(xero)
        assert [c["ContactID"] for c in http.get("/_sandbox/organisations/http-1/Contacts").json()] == [
            contact_id
        ]
        assert http.post("/_sandbox/organisations/http-1/faults", json={"status": 503}).status_code == 200
        assert xero.get(f"Contacts/{contact_id}").status_code == 503
        assert (
            http.post("/_sandbox/organisations/http-1/faults", json={"lose_responses": 1}).status_code == 200
        )
        assert xero.put("Contacts", {"Name": "Lost Co"}, key="lost").status_code == 502
        assert len(http.get("/_sandbox/organisations/http-1/Contacts").json()) == 2
        assert http.post("/_sandbox/organisations/http-1/forget-idempotency-keys").status_code == 200
        assert (
            xero.put("Contacts", {"Name": "Lost Co"}, key="lost").status_code == 400
        )  # ran again: name taken
        assert http.post("/_sandbox/organisations/http-1/expire-access-tokens").status_code == 200
        assert xero.get(f"Contacts/{contact_id}").status_code == 401
        assert http.post("/_sandbox/organisations/http-1/revoke").status_code == 200
        assert xero.refresh(auth=("c", "s")).json() == {"error": "invalid_grant"}
        log = http.get("/_sandbox/requests").json()
        assert {"method": "GET", "path": f"{API}/Contacts/{contact_id}", "status": 503} in log
        assert http.get("/_sandbox/organisations/nope/Invoices").status_code == 404


# -------------------------------------------------------------------------------------- Spec conformance


def test_invoice_payloads_validate_against_the_openapi_spec(xero: Xero) -> None:
    """Responses fit the spec's Invoices schema, and the adapter-style request body fits it too."""
    if not SPEC.is_file():
        pytest.skip(f"Xero OpenAPI spec not found at {SPEC} (the shared/ folder beside the repo is absent)")
    from invoice_sync_ops.specs import xero_validator  # noqa: PLC0415 - only when the spec is present

    validate = xero_validator("Invoices", SPEC)
    contact_id = make_contact(xero)
    request_body = {
        "Invoices": [invoice(contact_id, "INV-S", line("49.99"), line("10.00", ItemCode="CONSULT"))]
    }
    assert validate(json.loads(dumps(request_body))) == []
    created = xero.put("Invoices", request_body)
    assert created.status_code == 200
    assert validate(created.json()) == []
    xero.put(
        "Payments",
        {
            "Payments": [
                {
                    "Invoice": {"InvoiceID": created.json()["Invoices"][0]["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Amount": 5,
                }
            ]
        },
    )
    assert validate(xero.get("Invoices", page="1").json()) == []
    failed = xero.put("Invoices", {"Invoices": [invoice(contact_id, "INV-S")]}, summarizeErrors="false")
    assert validate(failed.json()) == []
    assert xero_validator("Error", SPEC)(xero.put("Invoices", invoice(contact_id, "INV-S")).json()) == []
    # And a credit note payout (request and response) fits the spec's Payments schema
    note_id = make_credit_note(xero, contact_id, "CN-S")["CreditNoteID"]
    payments = xero_validator("Payments", SPEC)
    payout_body = {"Payments": [payout(note_id, "5.00")]}
    assert payments(json.loads(dumps(payout_body))) == []
    paid_out = xero.put("Payments", payout_body)
    assert paid_out.status_code == 200
    assert payments(paid_out.json()) == []
    assert xero_validator("CreditNotes", SPEC)(xero.get(f"CreditNotes/{note_id}").json()) == []
    # And the validator does catch a wrong shape
    assert validate({"Invoices": [{"Type": "BOGUS", "LineItems": [{"Quantity": "two"}]}]})
