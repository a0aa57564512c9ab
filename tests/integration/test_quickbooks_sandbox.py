"""The QuickBooks Online sandbox speaks QBO v3 faithfully over real HTTP (what the QBO adapter relies on)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox, dumps

REALM = "9130350000000001"
CLIENT = ("client-id", "client-secret")
MINOR = {"minorversion": "75"}
SEEDED_REFRESH_TOKEN = "rt-0"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


class Qbo:
    """A minimal QBO client: just enough HTTP to drive the sandbox the way the adapter does."""

    def __init__(self, base_url: str, realm: str = REALM, refresh_token: str = SEEDED_REFRESH_TOKEN) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.realm = realm
        self.refresh_token = refresh_token
        self.access_token = ""

    def refresh(self, auth: tuple[str, str] = CLIENT) -> httpx.Response:
        response = self.http.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": self.refresh_token},
            auth=auth,
            headers={"Accept": "application/json"},
        )
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
            self.access_token = response.json()["access_token"]
        return response

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(
            f"/v3/company/{self.realm}/{path}", params={**MINOR, **params}, headers=self._headers()
        )

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return self.http.post(
            f"/v3/company/{self.realm}/{path}",
            params={**MINOR, **params},
            # Decimals go out as JSON numbers (never via float), as the adapter sends money.
            content=dumps(body),
            headers={**self._headers(), "Content-Type": "application/json"},
        )

    def query(self, sql: str) -> dict[str, Any]:
        response = self.get("query", query=sql)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["QueryResponse"]
        return result


def fault_code(response: httpx.Response) -> str:
    code: str = response.json()["Fault"]["Error"][0]["code"]
    return code


def seed(sandbox: QuickBooksSandbox, realm: str = REALM, **kwargs: Any) -> None:
    # Refresh tokens are unique per connection; it is the token that tells the token endpoint which realm.
    token = SEEDED_REFRESH_TOKEN if realm == REALM else f"rt-{realm}"
    sandbox.seed_company(realm, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token=token, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[QuickBooksSandbox]:
    box = QuickBooksSandbox(clock=clock)
    seed(box)
    yield box
    box.stop()


@pytest.fixture
def qbo(sandbox: QuickBooksSandbox) -> Iterator[Qbo]:
    client = Qbo(sandbox.start())
    assert client.refresh().status_code == 200
    yield client
    client.http.close()


def make_customer(qbo: Qbo, name: str = "Acme Ltd") -> str:
    response = qbo.post("customer", {"DisplayName": name})
    assert response.status_code == 200, response.text
    customer_id: str = response.json()["Customer"]["Id"]
    return customer_id


def sales_line(
    amount: str, item: str = "1", qty: str | None = None, price: str | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"ItemRef": {"value": item}, "TaxCodeRef": {"value": "NON"}}
    if qty is not None and price is not None:
        detail |= {"Qty": Decimal(qty), "UnitPrice": Decimal(price)}
    return {"Amount": Decimal(amount), "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}


def invoice_body(customer_id: str, doc_number: str = "INV-1", amount: str = "150.00") -> dict[str, Any]:
    return {"CustomerRef": {"value": customer_id}, "DocNumber": doc_number, "Line": [sales_line(amount)]}


def decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


# ------------------------------------------------------------------------------------------------ OAuth


def test_refresh_rotates_token_and_old_one_is_rejected(sandbox: QuickBooksSandbox) -> None:
    """Refresh tokens rotate: the new one works, the previous one is dead at once (invalid_grant)."""
    # Given a client holding the seeded refresh token
    client = Qbo(sandbox.start())
    # When it refreshes
    first = client.refresh()
    # Then it gets a bearer token, a new refresh token, and QBO's lifetimes
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 8726400
    assert body["refresh_token"] != "rt-0"
    # And the old refresh token is no longer accepted
    client.refresh_token = "rt-0"
    stale = client.refresh()
    assert stale.status_code == 400
    assert stale.json() == {"error": "invalid_grant"}
    # And the access token works against the API
    assert client.get("companyinfo/" + REALM).status_code == 200


def test_revoked_refresh_token_and_bad_client(sandbox: QuickBooksSandbox) -> None:
    """A revoked refresh token answers invalid_grant; wrong client credentials answer 401 invalid_client."""
    # Given a seeded company
    client = Qbo(sandbox.start())
    # When the client uses wrong credentials, then it is invalid_client
    bad = client.refresh(auth=("client-id", "wrong"))
    assert bad.status_code == 401
    assert bad.json() == {"error": "invalid_client"}
    # When the refresh token is revoked, then the token endpoint answers invalid_grant
    sandbox.revoke_refresh_token(REALM)
    revoked = client.refresh()
    assert revoked.status_code == 400
    assert revoked.json() == {"error": "invalid_grant"}


def test_expired_access_token_answers_401_authentication_fault(qbo: Qbo, clock: FakeClock) -> None:
    """Access tokens expire after 3600 s (and on demand) with QBO's AuthenticationFault body."""
    # Given a fresh access token that works
    assert qbo.get("item/1").status_code == 200
    # When an hour passes
    clock.now += 3601
    # Then the API answers 401 with the AuthenticationFault shape
    response = qbo.get("item/1")
    assert response.status_code == 401
    fault = response.json()["Fault"]
    assert fault["type"] == "AuthenticationFault"
    assert fault["Error"][0]["code"] == "3200"
    assert "errorCode=003200" in fault["Error"][0]["Message"]
    # And after a refresh it works, until the sandbox expires all access tokens
    assert qbo.refresh().status_code == 200
    assert qbo.get("item/1").status_code == 200


def test_expire_access_tokens_and_unknown_realm(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """expire_access_tokens() makes issued tokens answer 401; an unknown realm is also 401."""
    # Given a working token, when the sandbox expires all tokens, then the next call is 401
    sandbox.expire_access_tokens(REALM)
    assert qbo.get("item/1").status_code == 401
    # Given a valid token, when it is used on another realm, then that is 401 as well
    assert qbo.refresh().status_code == 200
    qbo.realm = "123"
    assert qbo.get("item/1").status_code == 401


def test_old_minor_version_is_rejected(qbo: Qbo) -> None:
    """minorversion below 75 is refused with a 400 Fault, as Intuit retired them; missing is allowed."""
    # When the client asks for minor version 74
    response = qbo.get("item/1", minorversion="74")
    # Then it is a 400 ValidationFault naming the version
    assert response.status_code == 400
    assert response.json()["Fault"]["Error"][0]["Message"] == "Minor Version 74 is no longer supported"
    # And leaving minorversion out is fine
    no_minor = qbo.http.get(f"/v3/company/{REALM}/item/1", headers=qbo._headers())
    assert no_minor.status_code == 200


# ------------------------------------------------------------------------------------------------ Invoices


def test_create_read_query_invoice_computes_totals(qbo: Qbo) -> None:
    """Invoice gets Id, SyncToken 0, a subtotal line and QBO's TotalAmt/Balance (discount, tax override)."""
    # Given a customer
    customer_id = make_customer(qbo)
    # When an invoice with two lines, a discount line and a TotalTax override is created
    body = {
        "CustomerRef": {"value": customer_id},
        "DocNumber": "INV-1001",
        "PrivateNote": "from Stripe in_1",
        "CustomerMemo": {"value": "Thanks"},
        "DueDate": "2026-02-01",
        "Line": [
            sales_line("150.00", qty="1", price="150.00"),
            sales_line("33.33", item="3", qty="3", price="11.11"),
            {
                "DetailType": "DiscountLineDetail",
                "Amount": Decimal("10.00"),
                "DiscountLineDetail": {"PercentBased": False},
            },
        ],
        "TxnTaxDetail": {"TotalTax": Decimal("12.34")},
    }
    created = qbo.post("invoice", body)
    # Then QBO's computed fields are there, exact to the cent
    assert created.status_code == 200, created.text
    invoice = decimal_json(created)["Invoice"]
    assert invoice["SyncToken"] == "0"
    assert set(invoice["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
    subtotal = [line for line in invoice["Line"] if line["DetailType"] == "SubTotalLineDetail"]
    assert [line["Amount"] for line in subtotal] == [Decimal("183.33")]
    assert invoice["TxnTaxDetail"]["TotalTax"] == Decimal("12.34")
    assert invoice["TotalAmt"] == Decimal("185.67")  # 183.33 - 10.00 + 12.34
    assert invoice["Balance"] == Decimal("185.67")
    assert invoice["CurrencyRef"]["value"] == "USD"
    assert invoice["PrivateNote"] == "from Stripe in_1"
    assert invoice["DueDate"] == "2026-02-01"
    assert invoice["TxnDate"] == "2025-12-31"  # "today" from the injected clock, in QBO's -07:00
    assert b'"TotalAmt":185.67' in created.content  # a JSON number with two places, not a string
    # And it reads back by id and by DocNumber
    read = qbo.get(f"invoice/{invoice['Id']}")
    assert read.json()["Invoice"]["Id"] == invoice["Id"]
    found = qbo.query("select * from Invoice where DocNumber = 'INV-1001'")
    assert [row["Id"] for row in found["Invoice"]] == [invoice["Id"]]
    assert found["startPosition"] == 1
    assert found["maxResults"] == 1


def test_non_us_company_rounds_tax_per_line(sandbox: QuickBooksSandbox) -> None:
    """A non-US company computes tax per line, rounded half-up to the cent, then sums (1-cent effects)."""
    # Given a GB company (GST code "2" at 10%) and a customer
    seed(sandbox, "gb-1", country="GB", company_name="Sandbox Company UK")
    qbo = Qbo(sandbox.start(), realm="gb-1", refresh_token="rt-gb-1")
    qbo.refresh()
    customer_id = make_customer(qbo)
    # When three lines of 0.05 each are invoiced with GST (0.005 tax each, rounded up per line)
    line = {
        "Amount": Decimal("0.05"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "2"}},
    }
    response = qbo.post("invoice", {"CustomerRef": {"value": customer_id}, "Line": [line, line, line]})
    # Then tax is 3 x 0.01 = 0.03 (not round(0.015) = 0.02), and the total includes it
    assert response.status_code == 200, response.text
    invoice = decimal_json(response)["Invoice"]
    assert invoice["TxnTaxDetail"]["TotalTax"] == Decimal("0.03")
    assert invoice["TotalAmt"] == Decimal("0.18")
    assert invoice["CurrencyRef"]["value"] == "GBP"
    # And a line without a tax code is a 6000 business validation error there
    bare = {
        "Amount": Decimal("1.00"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    missing = qbo.post("invoice", {"CustomerRef": {"value": customer_id}, "Line": [bare]})
    assert missing.status_code == 400
    assert fault_code(missing) == "6000"


def test_requestid_replays_the_original_response(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """The same requestid returns the stored original response and creates nothing new."""
    # Given an invoice created with a requestid
    customer_id = make_customer(qbo)
    first = qbo.post("invoice", invoice_body(customer_id), requestid="push-abc-1")
    assert first.status_code == 200
    # When the same request is sent again with the same requestid
    again = qbo.post("invoice", invoice_body(customer_id), requestid="push-abc-1")
    # Then the response is byte-for-byte the original and there is still one invoice
    assert again.status_code == 200
    assert again.content == first.content
    assert len(sandbox.documents(REALM, "Invoice")) == 1
    # And a requestid over 50 characters is refused
    too_long = qbo.post("invoice", invoice_body(customer_id, "INV-2"), requestid="x" * 51)
    assert too_long.status_code == 400


def test_stale_sync_token_is_5010(qbo: Qbo) -> None:
    """An update with an out-of-date SyncToken fails with 5010 Stale Object Error; a current one bumps it."""
    # Given an invoice at SyncToken 0, updated once (sparse) to SyncToken 1
    invoice = qbo.post("invoice", invoice_body(make_customer(qbo))).json()["Invoice"]
    updated = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "edited"}
    )
    assert updated.status_code == 200
    assert updated.json()["Invoice"]["SyncToken"] == "1"
    assert updated.json()["Invoice"]["TotalAmt"] == 150.0  # sparse kept the lines
    # When another update still carries SyncToken 0
    stale = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "late"}
    )
    # Then it is 5010 and nothing changed
    assert stale.status_code == 400
    assert fault_code(stale) == "5010"
    assert stale.json()["Fault"]["Error"][0]["Message"] == "Stale Object Error"
    assert qbo.get(f"invoice/{invoice['Id']}").json()["Invoice"]["PrivateNote"] == "edited"


def test_duplicate_doc_number_is_6140(qbo: Qbo) -> None:
    """With custom transaction numbers on, a reused DocNumber fails with 6140 naming the holder."""
    # Given an invoice INV-7
    customer_id = make_customer(qbo)
    first = qbo.post("invoice", invoice_body(customer_id, "INV-7")).json()["Invoice"]
    # When another invoice uses INV-7
    dup = qbo.post("invoice", invoice_body(customer_id, "INV-7"))
    # Then it is 6140 with QBO's Detail text
    assert dup.status_code == 400
    error = dup.json()["Fault"]["Error"][0]
    assert error["code"] == "6140"
    assert error["Message"] == "Duplicate Document Number Error"
    assert error["Detail"].endswith(
        f"DocNumber=INV-7 is assigned to TxnType=Invoice with TxnId={first['Id']}"
    )
    assert dup.json()["Fault"]["type"] == "ValidationFault"
    # And a DocNumber over 21 characters is a 6000 business validation error
    assert fault_code(qbo.post("invoice", invoice_body(customer_id, "X" * 22))) == "6000"


def test_custom_numbers_off_numbers_documents_itself(sandbox: QuickBooksSandbox) -> None:
    """With custom transaction numbers off, QBO assigns 1001, 1002... and never answers 6140."""
    # Given a company with custom numbers off
    seed(sandbox, "auto-1", custom_txn_numbers=False)
    qbo = Qbo(sandbox.start(), realm="auto-1", refresh_token="rt-auto-1")
    qbo.refresh()
    customer_id = make_customer(qbo)
    # When two invoices are sent with the same DocNumber
    first = qbo.post("invoice", invoice_body(customer_id, "INV-7"))
    second = qbo.post("invoice", invoice_body(customer_id, "INV-7"))
    # Then both succeed with sandbox-assigned numbers
    assert [first.status_code, second.status_code] == [200, 200]
    assert [first.json()["Invoice"]["DocNumber"], second.json()["Invoice"]["DocNumber"]] == ["1001", "1002"]


def test_duplicate_customer_name_is_6240(qbo: Qbo) -> None:
    """A second customer with the same DisplayName fails with 6240; a missing DisplayName with 2020."""
    # Given customer "Acme Ltd"
    existing = make_customer(qbo, "Acme Ltd")
    # When another is created with the same name
    dup = qbo.post("customer", {"DisplayName": "Acme Ltd"})
    # Then it is 6240 and the Detail names the holder
    assert dup.status_code == 400
    assert fault_code(dup) == "6240"
    assert dup.json()["Fault"]["Error"][0]["Detail"].endswith(f"Id={existing}")
    assert fault_code(qbo.post("customer", {"CompanyName": "No name"})) == "2020"
    # And the name can be found with an escaped quote, like QBO's query language
    make_customer(qbo, "O'Brien & Sons")
    found = qbo.query("select * from Customer where DisplayName = 'O\\'Brien & Sons'")
    assert [row["DisplayName"] for row in found["Customer"]] == ["O'Brien & Sons"]


def test_payment_links_invoice_and_reduces_balance(qbo: Qbo) -> None:
    """A payment linked to an invoice reduces its Balance, links back, bumps SyncToken; overpaying is 6000."""
    # Given an invoice of 150.00
    customer_id = make_customer(qbo)
    invoice = qbo.post("invoice", invoice_body(customer_id)).json()["Invoice"]
    # When 100.00 is paid against it
    payment_body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": Decimal("100.00"),
        "PaymentRefNum": "ch_123",
        "Line": [
            {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
        ],
    }
    payment = qbo.post("payment", payment_body)
    # Then the payment is stored and the invoice shows the link and the balance left
    assert payment.status_code == 200, payment.text
    payment_id = payment.json()["Payment"]["Id"]
    after = decimal_json(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    assert after["Balance"] == Decimal("50.00")
    assert after["LinkedTxn"] == [{"TxnId": payment_id, "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"
    # And paying more than the balance left is refused
    payment_body["TotalAmt"] = Decimal("60.00")
    payment_body["Line"][0]["Amount"] = Decimal("60.00")
    over = qbo.post("payment", payment_body)
    assert over.status_code == 400
    assert fault_code(over) == "6000"
    # And voiding the payment puts the full amount back on the invoice and unlinks it
    voided = qbo.post("payment", {"Id": payment_id, "SyncToken": "0"}, operation="void")
    assert voided.status_code == 200, voided.text
    restored = decimal_json(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    assert (restored["Balance"], restored["LinkedTxn"]) == (Decimal("150.00"), [])


def test_invoice_line_validation(qbo: Qbo) -> None:
    """Inactive or unknown items are 2500, Amount != Qty*UnitPrice is 6070, unknown customer is 2500."""
    customer_id = make_customer(qbo)
    # When a line uses the inactive item 9, then it is 2500 Invalid Reference Id
    inactive = qbo.post(
        "invoice", {"CustomerRef": {"value": customer_id}, "Line": [sales_line("5.00", item="9")]}
    )
    assert inactive.status_code == 400
    assert fault_code(inactive) == "2500"
    assert "Item" in inactive.json()["Fault"]["Error"][0]["Detail"]
    # When Amount does not match Qty * UnitPrice, then it is 6070
    wrong = qbo.post(
        "invoice",
        {"CustomerRef": {"value": customer_id}, "Line": [sales_line("10.00", qty="3", price="3.33")]},
    )
    assert fault_code(wrong) == "6070"
    # When the customer does not exist, then it is 2500
    assert fault_code(qbo.post("invoice", invoice_body("999"))) == "2500"
    # When the invoice has no lines, then it is 2020
    assert fault_code(qbo.post("invoice", {"CustomerRef": {"value": customer_id}, "Line": []})) == "2020"
    # And an unknown id reads as 610 Object Not Found
    assert fault_code(qbo.get("invoice/424242")) == "610"


def test_void_keeps_the_invoice_with_zero_amounts(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """operation=void zeroes the amounts, notes "Voided" and keeps the document; delete removes it."""
    # Given an invoice
    invoice = qbo.post("invoice", invoice_body(make_customer(qbo))).json()["Invoice"]
    # When it is voided
    voided = qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")
    # Then it stays, at zero, marked Voided
    assert voided.status_code == 200, voided.text
    stored = sandbox.documents(REALM, "Invoice")
    assert len(stored) == 1
    assert stored[0]["TotalAmt"] == Decimal(0)
    assert stored[0]["Balance"] == Decimal(0)
    assert stored[0]["PrivateNote"] == "Voided"
    # And delete with the current SyncToken removes it
    deleted = qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="delete")
    assert deleted.json()["Invoice"]["status"] == "Deleted"
    assert sandbox.documents(REALM, "Invoice") == []


def test_batch_runs_items_serially_with_per_item_faults(qbo: Qbo) -> None:
    """A batch answers each bId with its object, its query result, or its own Fault."""
    customer_id = make_customer(qbo)
    # When a batch creates one good invoice, one duplicate and runs a query
    body = {
        "BatchItemRequest": [
            {"bId": "1", "operation": "create", "Invoice": invoice_body(customer_id, "B-1")},
            {"bId": "2", "operation": "create", "Invoice": invoice_body(customer_id, "B-1")},
            {"bId": "3", "Query": "select * from Item where Name = 'Hosting'"},
        ]
    }
    response = qbo.post("batch", body)
    # Then the batch succeeds as a whole, with a per-item outcome
    assert response.status_code == 200, response.text
    items = {item["bId"]: item for item in response.json()["BatchItemResponse"]}
    assert items["1"]["Invoice"]["DocNumber"] == "B-1"
    assert items["2"]["Fault"]["Error"][0]["code"] == "6140"
    assert items["3"]["QueryResponse"]["Item"][0]["Id"] == "3"
    # And more than 30 items is refused outright
    big = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Item"} for i in range(31)]}
    assert qbo.post("batch", big).status_code == 400


def test_query_paging_defaults_and_errors(qbo: Qbo) -> None:
    """Queries page with startposition/maxresults, hide inactive names by default, and 4000 on bad SQL."""
    # Active items only by default (item 9 is inactive), all with Active in (true, false)
    active = qbo.query("SELECT * FROM Item")
    assert [row["Id"] for row in active["Item"]] == ["1", "2", "3"]
    everything = qbo.query("select * from Item where Active in (true, false)")
    assert {row["Id"] for row in everything["Item"]} == {"1", "2", "3", "9"}
    page = qbo.query("select * from Item startposition 2 maxresults 1")
    assert page == {**page, "startPosition": 2, "maxResults": 1}
    assert [row["Id"] for row in page["Item"]] == ["2"]
    assert qbo.query("select * from Item where Id in ('1', '3')")["Item"][1]["Name"] == "Hosting"
    # No rows: an empty QueryResponse
    assert qbo.query("select * from Invoice where DocNumber = 'nope'") == {}
    # Unsupported SQL: 400 code 4000
    bad = qbo.get("query", query="select Name from Item where Name like '%a%'")
    assert bad.status_code == 400
    assert fault_code(bad) == "4000"
    # Tax codes of a US company are literally TAX and NON
    assert {row["Id"] for row in qbo.query("select * from TaxCode")["TaxCode"]} == {"TAX", "NON"}


# ------------------------------------------------------------------------------------------ Limits and faults


def test_rate_limit_answers_429_after_n_requests(clock: FakeClock) -> None:
    """More than requests_per_minute calls in a sliding 60 s window get a 429 ThrottlingFault."""
    # Given a sandbox limited to 5 requests per minute
    box = QuickBooksSandbox(requests_per_minute=5, clock=clock)
    seed(box)
    qbo = Qbo(box.start())
    try:
        qbo.refresh()
        # When 6 calls are made within the minute
        statuses = [qbo.get("item/1").status_code for _ in range(6)]
        # Then the 6th is throttled with QBO's ThrottlingFault
        assert statuses == [200] * 5 + [429]
        throttled = qbo.get("item/1")
        assert throttled.json()["Fault"]["type"] == "ThrottlingFault"
        assert fault_code(throttled) == "3001"
        # And once the window slides past, calls go through again
        clock.now += 61
        assert qbo.get("item/1").status_code == 200
    finally:
        box.stop()


def test_concurrency_limit_answers_429(clock: FakeClock) -> None:
    """More than max_concurrent requests in flight at once get 429."""
    # Given a sandbox allowing 2 concurrent requests, each taking 0.3 s
    box = QuickBooksSandbox(max_concurrent=2, latency_seconds=2.0, clock=clock)
    # (2 s, and the five sent together past a barrier: on a loaded machine 0.3 s let one finish
    # before the last had started, and a third was served.)
    seed(box)
    base = box.start()
    qbo = Qbo(base)
    try:
        qbo.refresh()
        statuses: list[int] = []
        lock = threading.Lock()
        together = threading.Barrier(5)

        def call() -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                together.wait()
                status = http.get(f"/v3/company/{REALM}/item/1", headers=qbo._headers()).status_code
            with lock:
                statuses.append(status)

        # When 5 requests arrive together
        threads = [threading.Thread(target=call) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then at most 2 are served and the rest are throttled
        assert sorted(statuses).count(200) <= 2
        assert 429 in statuses
    finally:
        box.stop()


def test_injected_status_answers_without_doing_anything(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """inject_status makes the next N API calls answer that status (429 or 5xx) and change nothing."""
    customer_id = make_customer(qbo)
    # Given two injected 503s
    sandbox.inject_status(REALM, 503, count=2)
    # When two writes are attempted, then both answer 503 and nothing is stored
    assert qbo.post("invoice", invoice_body(customer_id)).status_code == 503
    assert qbo.post("invoice", invoice_body(customer_id)).status_code == 503
    assert sandbox.documents(REALM, "Invoice") == []
    # And the third goes through
    assert qbo.post("invoice", invoice_body(customer_id)).status_code == 200
    # And the request log saw all of them
    statuses = [
        status
        for method, path, status in sandbox.request_log
        if path.startswith(f"/v3/company/{REALM}/invoice")
    ]
    assert statuses == [503, 503, 200]


def test_lost_response_commits_the_write(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """lose_responses: the write commits, the client sees 502, and a requestid retry returns the result."""
    customer_id = make_customer(qbo)
    # Given the next response is lost
    sandbox.lose_responses(REALM)
    # When an invoice is created
    lost = qbo.post("invoice", invoice_body(customer_id), requestid="rid-1")
    # Then the client sees a 502, yet the invoice exists
    assert lost.status_code == 502
    stored = sandbox.documents(REALM, "Invoice")
    assert len(stored) == 1
    # And the retry with the same requestid returns that invoice, creating nothing new
    retry = qbo.post("invoice", invoice_body(customer_id), requestid="rid-1")
    assert retry.json()["Invoice"]["Id"] == stored[0]["Id"]
    assert len(sandbox.documents(REALM, "Invoice")) == 1


def test_http_control_endpoints(sandbox: QuickBooksSandbox) -> None:
    """The /_sandbox endpoints seed, inspect and break a sandbox running in another process."""
    base = sandbox.start()
    with httpx.Client(base_url=base, timeout=10) as http:
        # Given a company seeded over HTTP
        seeded = http.post(
            "/_sandbox/companies",
            json={
                "realm_id": "http-1",
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
                "country": "AU",
            },
        )
        assert seeded.status_code == 201
        qbo = Qbo(base, realm="http-1", refresh_token="r")
        assert qbo.refresh(auth=("c", "s")).status_code == 200
        customer_id = make_customer(qbo)
        # Then its documents can be read back
        customers = http.get("/_sandbox/companies/http-1/Customer").json()
        assert [c["Id"] for c in customers] == [customer_id]
        # When faults are injected over HTTP, then the API answers them
        assert (
            http.post("/_sandbox/companies/http-1/faults", json={"status": 429, "count": 1}).status_code
            == 200
        )
        assert qbo.get(f"customer/{customer_id}").status_code == 429
        assert http.post("/_sandbox/companies/http-1/faults", json={"lose_responses": 1}).status_code == 200
        assert qbo.post("customer", {"DisplayName": "Lost Co"}).status_code == 502
        assert len(http.get("/_sandbox/companies/http-1/Customer").json()) == 2
        # When access tokens are expired and the refresh token revoked, then both fail
        assert http.post("/_sandbox/companies/http-1/expire-access-tokens").status_code == 200
        assert qbo.get(f"customer/{customer_id}").status_code == 401
        assert http.post("/_sandbox/companies/http-1/revoke").status_code == 200
        assert qbo.refresh(auth=("c", "s")).json() == {"error": "invalid_grant"}
        # And the request log is served
        log = http.get("/_sandbox/requests").json()
        assert {
            "method": "GET",
            "path": f"/v3/company/http-1/customer/{customer_id}?minorversion=75",
            "status": 429,
        } in log
        # And an unknown realm is a 404 on the control API
        assert http.get("/_sandbox/companies/nope/Invoice").status_code == 404


# ------------------------------------------------------------------------------------------ Refunds


def refund_body(customer_id: str, doc_number: str = "RR-1", paid_from: str | None = "35") -> dict[str, Any]:
    body = invoice_body(customer_id, doc_number, "52.38")
    if paid_from is not None:
        body["DepositToAccountRef"] = {"value": paid_from}
    return body


def test_refund_receipt_is_priced_like_a_credit_memo_and_paid_out(
    qbo: Qbo, sandbox: QuickBooksSandbox
) -> None:
    """A RefundReceipt is created over HTTP with QBO's totals (subtotal line, discount, TotalTax
    override), paid from the seeded Checking bank account and left with Balance 0; it reads back by
    id, by DocNumber and on the control API."""
    # Given a customer and the seeded bank account
    customer_id = make_customer(qbo)
    banks = qbo.query("select * from Account where AccountType = 'Bank'")["Account"]
    assert [(a["Id"], a["Name"], a["AccountSubType"], a["Classification"]) for a in banks] == [
        ("35", "Checking", "Checking", "Asset")
    ]
    # When a refund receipt with two lines, a discount and a tax override is paid from it
    body = {
        **refund_body(customer_id, "RR-1001"),
        "Line": [
            sales_line("40.00", qty="2", price="20.00"),
            sales_line("10.00", item="3"),
            {
                "DetailType": "DiscountLineDetail",
                "Amount": Decimal("5.00"),
                "DiscountLineDetail": {"PercentBased": False},
            },
        ],
        "TxnTaxDetail": {"TotalTax": Decimal("3.38")},
        "PrivateNote": "invoice-sync: stripe re_1",
    }
    created = qbo.post("refundreceipt", body)
    # Then QBO's computed fields are there, exact to the cent, and nothing is left to pay out
    assert created.status_code == 200, created.text
    refund = decimal_json(created)["RefundReceipt"]
    assert refund["SyncToken"] == "0"
    assert [ln["Amount"] for ln in refund["Line"] if ln["DetailType"] == "SubTotalLineDetail"] == [
        Decimal("50.00")
    ]
    assert refund["TxnTaxDetail"]["TotalTax"] == Decimal("3.38")
    assert refund["TotalAmt"] == Decimal("48.38")  # 50.00 - 5.00 + 3.38
    assert refund["Balance"] == Decimal(0)
    assert "RemainingCredit" not in refund  # that is a credit memo's, not a refund's
    assert refund["DepositToAccountRef"] == {"value": "35", "name": "Checking"}
    assert refund["DocNumber"] == "RR-1001"
    # And it reads back by id, by DocNumber and through the sandbox's control API
    read = decimal_json(qbo.get(f"refundreceipt/{refund['Id']}"))["RefundReceipt"]
    assert read == refund
    found = qbo.query("select * from RefundReceipt where DocNumber = 'RR-1001'")
    assert [row["Id"] for row in found["RefundReceipt"]] == [refund["Id"]]
    assert qbo.query("select * from RefundReceipt where DocNumber = 'RR-nope'") == {}
    with httpx.Client(base_url=str(qbo.http.base_url), timeout=10) as http:
        listed = http.get(f"/_sandbox/companies/{REALM}/RefundReceipt").json()
    assert [row["Id"] for row in listed] == [refund["Id"]]
    assert sandbox.documents(REALM, "RefundReceipt")[0]["TotalAmt"] == Decimal("48.38")


def test_refund_receipt_requestid_replays_the_original(qbo: Qbo, sandbox: QuickBooksSandbox) -> None:
    """A refund receipt sent again with the same requestid gets the original answer byte for byte
    and no second receipt is created (so a retried push pays the customer back once)."""
    # Given a refund receipt created with a requestid
    customer_id = make_customer(qbo)
    first = qbo.post("refundreceipt", refund_body(customer_id), requestid="refund-abc-1")
    assert first.status_code == 200, first.text
    # When the same request is retried with the same requestid
    again = qbo.post("refundreceipt", refund_body(customer_id), requestid="refund-abc-1")
    # Then the answer is the original and there is still one receipt
    assert again.status_code == 200
    assert again.content == first.content
    assert len(sandbox.documents(REALM, "RefundReceipt")) == 1


@pytest.mark.parametrize(
    ("paid_from", "code", "detail"),
    [
        (None, "2020", "Required parameter DepositToAccountRef is missing"),
        ("999", "2500", "Account assigned to this transaction does not exist (Id=999)"),
        ("1", "6000", "Services (Id=1) is Income"),  # an income account: money cannot leave it
    ],
)
def test_refund_receipt_needs_an_account_money_can_leave(
    qbo: Qbo, sandbox: QuickBooksSandbox, paid_from: str | None, code: str, detail: str
) -> None:
    """A refund receipt without DepositToAccountRef, with an unknown account, or with an account
    that is not Bank / Credit Card / Other Current Asset is refused with a QBO fault and stores
    nothing."""
    # Given a customer
    customer_id = make_customer(qbo)
    # When a refund receipt names no account, a missing one, or an income account
    refused = qbo.post("refundreceipt", refund_body(customer_id, paid_from=paid_from))
    # Then QBO's fault says which, and no receipt exists
    assert refused.status_code == 400
    assert fault_code(refused) == code
    assert detail in refused.json()["Fault"]["Error"][0]["Detail"]
    assert sandbox.documents(REALM, "RefundReceipt") == []


def test_refund_receipt_duplicate_number_is_6140(qbo: Qbo) -> None:
    """With custom transaction numbers on, a refund receipt's DocNumber must be unused by any sales
    form: a second RR-7, or a refund numbered like an existing invoice, is 6140 naming the holder."""
    # Given a refund receipt RR-7 and an invoice INV-7
    customer_id = make_customer(qbo)
    refund = qbo.post("refundreceipt", refund_body(customer_id, "RR-7")).json()["RefundReceipt"]
    invoice = qbo.post("invoice", invoice_body(customer_id, "INV-7")).json()["Invoice"]
    # When another refund receipt reuses either number
    again = qbo.post("refundreceipt", refund_body(customer_id, "RR-7"))
    clash = qbo.post("refundreceipt", refund_body(customer_id, "INV-7"))
    # Then both are 6140 with QBO's Detail naming the document that holds the number
    assert [again.status_code, clash.status_code] == [400, 400]
    assert [fault_code(again), fault_code(clash)] == ["6140", "6140"]
    assert again.json()["Fault"]["Error"][0]["Detail"].endswith(
        f"DocNumber=RR-7 is assigned to TxnType=Refund Receipt with TxnId={refund['Id']}"
    )
    assert clash.json()["Fault"]["Error"][0]["Detail"].endswith(
        f"DocNumber=INV-7 is assigned to TxnType=Invoice with TxnId={invoice['Id']}"
    )
    # And an invoice cannot take the refund's number either
    assert fault_code(qbo.post("invoice", invoice_body(customer_id, "RR-7"))) == "6140"


# --------------------------------------------------------------------------------------------- Deposits


def paid_invoice(qbo: Qbo, customer_id: str, number: str, amount: str, account: str | None = None) -> str:
    """An invoice of ``amount`` and its full payment, into Undeposited Funds unless ``account``."""
    invoice = qbo.post("invoice", invoice_body(customer_id, number, amount)).json()["Invoice"]
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": Decimal(amount),
        "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }
    if account is not None:
        body["DepositToAccountRef"] = {"value": account}
    payment = qbo.post("payment", body)
    assert payment.status_code == 200, payment.text
    payment_id: str = payment.json()["Payment"]["Id"]
    return payment_id


def linked(txn_id: str, amount: str, txn_type: str = "Payment") -> dict[str, Any]:
    return {
        "Amount": Decimal(amount),
        "LinkedTxn": [{"TxnId": txn_id, "TxnType": txn_type, "TxnLineId": "0"}],
    }


def direct(account: str, amount: str) -> dict[str, Any]:
    return {
        "Amount": Decimal(amount),
        "DetailType": "DepositLineDetail",
        "Description": "Stripe fees",
        "DepositLineDetail": {"AccountRef": {"value": account}},
    }


def deposit_body(*lines: dict[str, Any], into: str | None = "35", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"TxnDate": "2026-12-04", "Line": list(lines), **fields}
    if into is not None:
        body["DepositToAccountRef"] = {"value": into}
    return body


def test_deposit_computes_its_total_and_reads_back_by_id_and_date(qbo: Qbo, clock: FakeClock) -> None:
    """Given two payments and a refund receipt in Undeposited Funds, a Deposit linking them with a
    negative fee line on the seeded Merchant fees account is saved with TotalAmt computed from the
    lines (a supplied TotalAmt is over-written, as QBO documents), numbered lines, and reads back by
    id and by ``select * from Deposit where TxnDate = ...``."""
    customer_id = make_customer(qbo)
    first = paid_invoice(qbo, customer_id, "INV-1001", "150.00")
    second = paid_invoice(qbo, customer_id, "INV-1002", "80.00")
    refund = qbo.post(
        "refundreceipt", {**refund_body(customer_id, "RR-1", "4"), "Line": [sales_line("20.00")]}
    )
    assert refund.status_code == 200, refund.text
    body = deposit_body(
        linked(first, "150.00"),
        linked(second, "80.00"),
        linked(refund.json()["RefundReceipt"]["Id"], "-20.00", "RefundReceipt"),
        direct("92", "-7.57"),
        TotalAmt=Decimal("1.00"),
        DocNumber="PO-3FA2C91B0D",
        PrivateNote="invoice-sync: stripe po_1QxYz",
    )
    created = qbo.post("deposit", body)
    assert created.status_code == 200, created.text
    deposit = decimal_json(created)["Deposit"]
    assert deposit["TotalAmt"] == Decimal("202.43")
    assert [line["LineNum"] for line in deposit["Line"]] == [1, 2, 3, 4]
    assert deposit["DepositToAccountRef"] == {"value": "35", "name": "Checking"}
    assert deposit["Line"][3]["DepositLineDetail"]["AccountRef"] == {"value": "92", "name": "Merchant fees"}
    clock.now += 1  # inside QBO's 10 requests a second
    assert decimal_json(qbo.get(f"deposit/{deposit['Id']}"))["Deposit"] == deposit
    (found,) = qbo.query("select * from Deposit where TxnDate = '2026-12-04'")["Deposit"]
    assert found["Id"] == deposit["Id"]
    assert qbo.query("select * from Deposit where TxnDate = '2026-12-05'") == {}


@pytest.mark.parametrize(
    ("into", "line", "code"),
    [
        (None, direct("92", "5.00"), "2020"),  # DepositToAccountRef is required
        ("999", direct("92", "5.00"), "2500"),  # an account QBO does not have
        ("1", direct("92", "5.00"), "6000"),  # an Income account cannot take the money
        (
            "35",
            {"DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": "92"}}},
            "2020",
        ),
        ("35", direct("35", "5.00"), "6000"),  # a direct line cannot post to a Bank account
        ("35", direct("998", "5.00"), "2500"),
        ("35", {"Amount": Decimal("5.00")}, "2020"),  # neither linked nor a DepositLineDetail
        ("35", {"Amount": Decimal("5.00"), "LinkedTxn": [{"TxnId": "1", "TxnType": "Payment"}]}, "2020"),
        ("35", linked("1", "5.00", "Invoice"), "2170"),  # an invoice does not fund Undeposited Funds
        ("35", linked("424242", "5.00"), "2500"),  # no such payment
    ],
)
def test_deposit_validation_faults(qbo: Qbo, into: str | None, line: dict[str, Any], code: str) -> None:
    """A deposit without its account or into one of the wrong type, a line without its Amount, a
    direct line on an unknown account or one of a type the reference does not list, a linked line
    without TxnLineId ("Required for Deposit and Bill entities"), of a type that cannot be linked,
    or naming a payment QBO does not have: each is QBO's Fault, and nothing is saved."""
    response = qbo.post("deposit", deposit_body(line, into=into))
    assert response.status_code == 400, response.text
    assert fault_code(response) == code
    assert qbo.query("select * from Deposit where TxnDate = '2026-12-04'") == {}


def test_only_whole_money_in_undeposited_funds_is_deposited(qbo: Qbo, clock: FakeClock) -> None:
    """A payment received straight into Checking and a refund receipt paid from Checking are not in
    Undeposited Funds (2500); a payment deposited for less than it is, or a refund receipt's line not
    negated (the sandbox's documented assumption, design 9.2), is 6000."""
    customer_id = make_customer(qbo)
    in_checking = paid_invoice(qbo, customer_id, "INV-1", "40.00", account="35")
    undeposited = paid_invoice(qbo, customer_id, "INV-2", "50.00")
    refund = qbo.post("refundreceipt", refund_body(customer_id, "RR-1", "35")).json()["RefundReceipt"]
    refund_uf = qbo.post("refundreceipt", refund_body(customer_id, "RR-2", "4")).json()["RefundReceipt"]
    cases = [
        (linked(in_checking, "40.00"), "2500"),
        (linked(refund["Id"], "-52.38", "RefundReceipt"), "2500"),
        (linked(undeposited, "45.00"), "6000"),
        (linked(refund_uf["Id"], "52.38", "RefundReceipt"), "6000"),
    ]
    for line, code in cases:
        clock.now += 1  # inside QBO's 10 requests a second
        response = qbo.post("deposit", deposit_body(line))
        assert (response.status_code, fault_code(response)) == (400, code), response.text
    assert qbo.post("deposit", deposit_body(linked(undeposited, "50.00"))).status_code == 200


def test_deposited_money_is_locked_until_its_deposit_is_deleted(qbo: Qbo, clock: FakeClock) -> None:
    """Given a payment and a refund receipt in a deposit: a second deposit of either, and updating,
    voiding or deleting either, is 6540 "Deposited Transaction cannot be changed" naming the deposit;
    the deposit itself can be updated with its own links kept; once it is deleted
    (deposit?operation=delete) the payment can be deposited again."""
    customer_id = make_customer(qbo)
    payment = paid_invoice(qbo, customer_id, "INV-1", "50.00")
    refund = qbo.post("refundreceipt", refund_body(customer_id, "RR-1", "4")).json()["RefundReceipt"]
    body = deposit_body(
        linked(payment, "50.00"), linked(refund["Id"], "-52.38", "RefundReceipt"), direct("93", "10.00")
    )
    deposit = decimal_json(qbo.post("deposit", body))["Deposit"]
    assert deposit["TotalAmt"] == Decimal("7.62")
    clock.now += 1  # inside QBO's 10 requests a second
    refusals = [
        qbo.post("deposit", deposit_body(linked(payment, "50.00"))),
        qbo.post("deposit", deposit_body(linked(refund["Id"], "-52.38", "RefundReceipt"))),
        qbo.post("payment", {"Id": payment, "SyncToken": "0"}, operation="void"),
        qbo.post("payment", {"Id": payment, "SyncToken": "0"}, operation="delete"),
        qbo.post("payment", {"Id": payment, "SyncToken": "0", "sparse": True, "PrivateNote": "x"}),
        qbo.post("refundreceipt", {"Id": refund["Id"], "SyncToken": "0"}, operation="delete"),
    ]
    assert [(r.status_code, fault_code(r)) for r in refusals] == [(400, "6540")] * len(refusals)
    assert f"Deposit Id={deposit['Id']}" in refusals[0].json()["Fault"]["Error"][0]["Detail"]
    clock.now += 1
    updated = qbo.post("deposit", {**body, "Id": deposit["Id"], "SyncToken": "0", "PrivateNote": "edited"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["Deposit"]["SyncToken"] == "1"
    deleted = qbo.post("deposit", {"Id": deposit["Id"], "SyncToken": "1"}, operation="delete")
    assert deleted.status_code == 200, deleted.text
    assert fault_code(qbo.get(f"deposit/{deposit['Id']}")) == "610"
    assert qbo.post("deposit", deposit_body(linked(payment, "50.00"))).status_code == 200


def test_the_seeded_chart_has_the_payout_accounts(qbo: Qbo) -> None:
    """The seeded company has the accounts a payout's deposit posts to besides Checking and
    Undeposited Funds: Merchant fees (92, Expense) and Stripe unmatched (93, Other Income)."""
    rows = qbo.query("select * from Account where Id in ('92', '93')")["Account"]
    assert {(row["Id"], row["Name"], row["AccountType"]) for row in rows} == {
        ("92", "Merchant fees", "Expense"),
        ("93", "Stripe unmatched", "Other Income"),
    }
