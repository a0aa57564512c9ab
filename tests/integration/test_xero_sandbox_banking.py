"""The Xero sandbox's spend / receive money (``BankTransactions``) and ``BankTransfers`` over real
HTTP: validated as Xero validates them, answered in Xero's shapes (checked against
``xero_accounting.yaml``), and kept in bank account balances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync_ops.sandboxes.xero import XeroSandbox, dumps
from tests.integration.test_xero_sandbox import SPEC, TENANT, FakeClock, Xero, decimal_json, seed


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    box = XeroSandbox(clock=FakeClock())
    seed(box)
    yield box
    box.stop()


@pytest.fixture
def xero(sandbox: XeroSandbox) -> Iterator[Xero]:
    client = Xero(sandbox.start())
    assert client.refresh().status_code == 200
    yield client
    client.http.close()


def spend(contact_id: str | None, amount: str = "7.57", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": "SPEND",
        "BankAccount": {"Code": "091"},
        "Date": "2026-12-04",
        "Reference": "invoice-sync: stripe po_1 PO-1 spend",
        "LineAmountTypes": "NoTax",
        "LineItems": [
            {"Description": "Stripe fees", "Quantity": 1, "UnitAmount": Decimal(amount), "AccountCode": "404"}
        ],
        **extra,
    }
    if contact_id is not None:
        body["Contact"] = {"ContactID": contact_id}
    return body


def transfer(amount: str = "202.43", **extra: Any) -> dict[str, Any]:
    return {
        "FromBankAccount": {"Code": "091"},
        "ToBankAccount": {"Code": "090"},
        "Amount": Decimal(amount),
        "Date": "2026-12-04",
        "Reference": "invoice-sync: stripe po_1 PO-1",
        **extra,
    }


def test_spend_money_is_booked_and_lowers_the_bank_balance(sandbox: XeroSandbox, xero: Xero) -> None:
    """Given the Stripe supplier, when spend money of 7.57 is put to the clearing account, then Xero
    answers it with its totals, line account and the contact, and the clearing balance drops."""
    stripe = sandbox.seed_supplier(TENANT)
    assert sandbox.seed_supplier(TENANT) == stripe  # seeded once: found again when present
    response = xero.put("BankTransactions", {"BankTransactions": [spend(stripe)]}, summarizeErrors="false")
    assert response.status_code == 200, response.text
    (booked,) = decimal_json(response)["BankTransactions"]
    assert (booked["Type"], booked["Status"], booked["Total"], booked["SubTotal"]) == (
        "SPEND",
        "AUTHORISED",
        Decimal("7.57"),
        Decimal("7.57"),
    )
    assert booked["Contact"]["ContactID"] == stripe
    assert booked["LineItems"][0]["AccountCode"] == "404"
    assert booked["StatusAttributeString"] == "OK"
    assert sandbox.balances(TENANT)["091"] == Decimal("-7.57")
    where = 'Reference=="invoice-sync: stripe po_1 PO-1 spend" AND Type=="SPEND"'
    found = decimal_json(xero.get("BankTransactions", where=where))["BankTransactions"]
    assert [t["BankTransactionID"] for t in found] == [booked["BankTransactionID"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Contact": None}, "The Contact must contain at least 1 of the following elements"),
        ({"BankAccount": {"Code": "404"}}, "BankAccount 404 is not a bank account"),
        ({"Type": "SPEND-TRANSFER"}, "created through BankTransfers"),
        ({"LineItems": []}, "At least one line item is required"),
        (
            {"LineItems": [{"Quantity": 1, "UnitAmount": Decimal("1.00"), "AccountCode": "090"}]},
            "Account code '090' is not a valid code",
        ),
    ],
)
def test_spend_money_xero_would_refuse_is_a_validation_exception(
    sandbox: XeroSandbox, xero: Xero, change: dict[str, Any], message: str
) -> None:
    """Given spend money without a contact, to a non-bank account, of a transfer type, without
    lines or coded to a bank account, then the sandbox answers 400 ValidationException naming the
    fault and books nothing."""
    body = {k: v for k, v in (spend(sandbox.seed_supplier(TENANT)) | change).items() if v is not None}
    response = xero.put("BankTransactions", {"BankTransactions": [body]})
    assert response.status_code == 400
    error = response.json()
    assert error["Type"] == "ValidationException"
    messages = [m["Message"] for e in error["Elements"] for m in e["ValidationErrors"]]
    assert any(message in m for m in messages), messages
    assert sandbox.documents(TENANT, "BankTransactions") == []


def test_a_transfer_moves_money_between_bank_accounts_as_two_bank_transactions(
    sandbox: XeroSandbox, xero: Xero
) -> None:
    """Given a transfer of 202.43 from clearing to the bank, then Xero answers it with both of its
    bank transactions (SPEND-TRANSFER and RECEIVE-TRANSFER), the balances move by the amount, and
    the transfer is found by its Reference; deleted, it is left out of the list and of the balances."""
    response = xero.put("BankTransfers", {"BankTransfers": [transfer()]})
    assert response.status_code == 200, response.text
    (booked,) = decimal_json(response)["BankTransfers"]
    assert (booked["Amount"], booked["Status"]) == (Decimal("202.43"), "AUTHORISED")
    sides = {t["BankTransactionID"]: t["Type"] for t in sandbox.documents(TENANT, "BankTransactions")}
    assert sides == {
        booked["FromBankTransactionID"]: "SPEND-TRANSFER",
        booked["ToBankTransactionID"]: "RECEIVE-TRANSFER",
    }
    assert (sandbox.balances(TENANT)["091"], sandbox.balances(TENANT)["090"]) == (
        Decimal("-202.43"),
        Decimal("202.43"),
    )
    where = 'Reference=="invoice-sync: stripe po_1 PO-1"'
    assert [t["BankTransferID"] for t in xero.get("BankTransfers", where=where).json()["BankTransfers"]] == [
        booked["BankTransferID"]
    ]
    deleted = xero.post(
        f"BankTransfers/{booked['BankTransferID']}", {"BankTransfers": [{"Status": "DELETED"}]}
    )
    assert deleted.status_code == 200, deleted.text
    assert xero.get("BankTransfers", where=where).json()["BankTransfers"] == []
    assert len(xero.get("BankTransfers", includeDeleted="true").json()["BankTransfers"]) == 1
    assert sandbox.balances(TENANT)["091"] == Decimal("0.00")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ToBankAccount": {"Code": "091"}}, "must be different"),
        ({"Amount": Decimal("0")}, "Amount must be greater than zero"),
        ({"FromBankAccount": None}, "FromBankAccount must be specified"),
        ({"ToBankAccount": {"Code": "200"}}, "ToBankAccount 200 is not a bank account"),
    ],
)
def test_a_transfer_xero_would_refuse_is_a_validation_exception(
    sandbox: XeroSandbox, xero: Xero, change: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in (transfer() | change).items() if v is not None}
    response = xero.put("BankTransfers", {"BankTransfers": [body]}, summarizeErrors="false")
    assert response.status_code == 400  # createBankTransfer takes no summarizeErrors: always summarised
    messages = [m["Message"] for e in response.json()["Elements"] for m in e["ValidationErrors"]]
    assert any(message in m for m in messages), messages
    assert sandbox.documents(TENANT, "BankTransfers") == []


def test_a_transfer_replayed_with_its_idempotency_key_is_booked_once(
    sandbox: XeroSandbox, xero: Xero
) -> None:
    first = xero.put("BankTransfers", {"BankTransfers": [transfer()]}, key="transfer-1")
    again = xero.put("BankTransfers", {"BankTransfers": [transfer()]}, key="transfer-1")
    assert first.json()["BankTransfers"] == again.json()["BankTransfers"]
    assert len(sandbox.documents(TENANT, "BankTransfers")) == 1


def test_bank_bodies_and_answers_fit_the_openapi_spec(sandbox: XeroSandbox, xero: Xero) -> None:
    """Requests and answers (an error element too) fit the spec's BankTransactions and
    BankTransfers schemas."""
    if not SPEC.is_file():
        pytest.skip(f"Xero OpenAPI spec not found at {SPEC}")
    from invoice_sync_ops.specs import xero_validator  # noqa: PLC0415 - only when the spec is present

    transactions = xero_validator("BankTransactions", SPEC)
    transfers = xero_validator("BankTransfers", SPEC)
    stripe = sandbox.seed_supplier(TENANT)
    body = {"BankTransactions": [spend(stripe)]}
    assert transactions(json.loads(dumps(body))) == []
    assert transactions(xero.put("BankTransactions", body).json()) == []
    failed = xero.put("BankTransactions", {"BankTransactions": [spend(None)]}, summarizeErrors="false")
    assert failed.status_code == 200
    assert failed.json()["BankTransactions"][0]["StatusAttributeString"] == "ERROR"
    assert transactions(failed.json()) == []
    assert transfers(xero.put("BankTransfers", {"BankTransfers": [transfer()]}).json()) == []
    assert transfers(xero.get("BankTransfers").json()) == []
    assert transactions(xero.get("BankTransactions").json()) == []


def test_the_stripe_supplier_is_seeded_over_the_control_api(sandbox: XeroSandbox, xero: Xero) -> None:
    """Given the control call, then the supplier is created once and its id answered again."""
    url = f"{sandbox.base_url}/_sandbox/organisations/{TENANT}/suppliers"
    first = xero.http.post(url, json={"name": "Stripe"})
    again = xero.http.post(url, json={"name": "Stripe"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() == {"ContactID": sandbox.seed_supplier(TENANT)}
    (contact,) = sandbox.documents(TENANT, "Contacts")
    assert (contact["Name"], contact["IsSupplier"]) == ("Stripe", True)
