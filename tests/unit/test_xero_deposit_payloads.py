"""Xero's payout deposit bodies (spend / receive money and the bank transfer), with the design's
worked example (two-way 3.5.2: payout po_1QxYz, USD 202.43), checked against Xero's OpenAPI
description (``xero_accounting.yaml`` ``BankTransactions`` / ``BankTransfers``)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync.errors import LedgerValidation
from invoice_sync.ledgers.http import dumps
from invoice_sync.ledgers.port import DepositDraft, DepositLine, marker
from invoice_sync.ledgers.xero import payloads
from invoice_sync.ledgers.xero.adapter import part_key
from invoice_sync_ops.specs import spec_path, xero_validator

needs_spec = pytest.mark.skipif(
    not spec_path().exists(),
    reason="the Xero OpenAPI spec (shared/specs/xero/xero_accounting.yaml) is absent",
)
STRIPE = "5b1b0d84-0000-4000-8000-00000000e1fe"
MARKER = marker("stripe", "po_1QxYz")


def _worked_example(*extra: DepositLine) -> DepositDraft:
    lines = (
        DepositLine("payment", Decimal("150.00"), "INV-1001", ledger_id="pay-190"),
        DepositLine("payment", Decimal("80.00"), "INV-1002", ledger_id="pay-191"),
        DepositLine("refund", Decimal("-20.00"), "Refund of ch_a", ledger_id="pay-77"),
        DepositLine("fee", Decimal("-7.57"), "Stripe fees, payout po_1QxYz", account="404"),
        *extra,
    )
    return DepositDraft(
        source_id="po_1QxYz",
        number="PO-3FA2C91B0D",
        arrival_on=date(2026, 12, 4),
        currency="USD",
        bank_account="090",
        clearing_account="091",
        contact_id=STRIPE,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        private_note=MARKER,
    )


def _wire(body: dict[str, Any]) -> Any:
    """What goes over HTTP, parsed back: exact decimals become JSON numbers."""
    return json.loads(dumps(body))


def test_worked_example_spends_the_fees_and_transfers_the_net() -> None:
    """Given the worked example, then payments and refunds (already in clearing) make no line, the
    SPEND carries the 7.57 of fees as a positive amount to the fee account with the Stripe contact,
    there is no RECEIVE, and the transfer moves 202.43 from clearing to the bank, each carrying the
    marker and the number in its Reference."""
    spend, receive, transfer = payloads.deposit_bodies(_worked_example())
    assert spend == {
        "Type": "SPEND",
        "Contact": {"ContactID": STRIPE},
        "BankAccount": {"Code": "091"},
        "Date": "2026-12-04",
        "Reference": f"{MARKER} PO-3FA2C91B0D spend",
        "LineAmountTypes": "NoTax",
        "CurrencyCode": "USD",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Stripe fees, payout po_1QxYz",
                "Quantity": Decimal(1),
                "UnitAmount": Decimal("7.57"),
                "AccountCode": "404",
            }
        ],
    }
    assert receive is None
    assert transfer == {
        "FromBankAccount": {"Code": "091"},
        "ToBankAccount": {"Code": "090"},
        "Amount": Decimal("202.43"),
        "Date": "2026-12-04",
        "Reference": f"{MARKER} PO-3FA2C91B0D",
    }
    # 230.00 in, 20.00 out, then the spend and the transfer: clearing is back to zero
    assert (
        Decimal("230.00") - Decimal("20.00") - spend["LineItems"][0]["UnitAmount"] - transfer["Amount"] == 0
    )


@needs_spec
def test_deposit_bodies_validate_against_the_xero_spec() -> None:
    """Given a payout with fees, a dispute and unmatched money, then the SPEND and RECEIVE fit the
    spec's ``BankTransactions`` request schema and the transfer its ``BankTransfers`` one."""
    spend, receive, transfer = payloads.deposit_bodies(
        _worked_example(
            DepositLine("adjustment", Decimal("-15.00"), "Dispute du_1", account="400"),
            DepositLine("unmatched", Decimal("12.00"), "ch_z", account="260"),
        )
    )
    assert spend is not None
    assert receive is not None
    transactions = xero_validator("BankTransactions")
    assert transactions(_wire({"BankTransactions": [spend]})) == []
    assert transactions(_wire({"BankTransactions": [receive]})) == []
    assert xero_validator("BankTransfers")(_wire({"BankTransfers": [transfer]})) == []


def test_lines_out_of_clearing_spend_and_lines_into_it_receive() -> None:
    """Given a dispute (money out), unmatched money and a fee given back (money in), then the SPEND
    holds the fees and the dispute, the RECEIVE the other two, all as positive amounts, and the
    transfer the payout's total (150 + 80 - 20 - 7.57 - 15 + 12 + 0.30 = 199.73)."""
    draft = _worked_example(
        DepositLine("adjustment", Decimal("-15.00"), "Dispute du_1", account="400"),
        DepositLine("unmatched", Decimal("12.00"), "ch_z", account="260"),
        DepositLine("fee", Decimal("0.30"), "Fee refund", account="404"),
    )
    spend, receive, transfer = payloads.deposit_bodies(draft)
    assert spend is not None
    assert receive is not None
    assert [(i["AccountCode"], i["UnitAmount"]) for i in spend["LineItems"]] == [
        ("404", Decimal("7.57")),
        ("400", Decimal("15.00")),
    ]
    assert [(i["AccountCode"], i["UnitAmount"]) for i in receive["LineItems"]] == [
        ("260", Decimal("12.00")),
        ("404", Decimal("0.30")),
    ]
    assert receive["Reference"] == f"{MARKER} PO-3FA2C91B0D receive"
    assert transfer["Amount"] == Decimal("199.73")


def test_a_payout_of_payments_only_needs_no_bank_transaction_and_no_contact() -> None:
    """Given a payout whose lines are payments only (no fee), then only the transfer is built, and
    no Stripe contact is needed for it."""
    draft = _worked_example()
    lines = draft.lines[:2]
    draft = replace(draft, lines=lines, total=Decimal("230.00"), contact_id=None)
    spend, receive, transfer = payloads.deposit_bodies(draft)
    assert (spend, receive, transfer["Amount"]) == (None, None, Decimal("230.00"))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"contact_id": None}, "payout_contact_id"),
        ({"clearing_account": None}, "payment_account"),
        ({"bank_account": None}, "payout_bank_account"),
        ({"bank_account": "091"}, "is the clearing account"),
    ],
)
def test_a_deposit_xero_cannot_take_is_refused_before_any_request(
    changes: dict[str, Any], words: str
) -> None:
    """Given a draft missing what Xero needs, then building its bodies raises LedgerValidation
    naming the connection setting to fill."""
    with pytest.raises(LedgerValidation, match=words):
        payloads.deposit_bodies(replace(_worked_example(), **changes))


def test_a_fee_line_without_an_account_is_refused() -> None:
    draft = _worked_example()
    lines = (*draft.lines[:3], DepositLine("fee", Decimal("-7.57"), "Stripe fees"))
    with pytest.raises(LedgerValidation, match="payout_fee_account"):
        payloads.deposit_bodies(replace(draft, lines=lines))


def test_a_transfer_reads_back_as_the_deposit_with_its_number() -> None:
    """Given Xero's answer for the transfer, then it reads as the port's deposit: its id, amount,
    the number taken from the reference, and a deleted transfer as voided; a reference someone
    else wrote stays as it is."""
    answer = {
        "BankTransferID": "76eea4b6-f026-464c-b6f3-5fb39a196145",
        "Amount": Decimal("202.43"),
        "Reference": f"{MARKER} PO-3FA2C91B0D",
        "Status": "AUTHORISED",
        "CreatedDateUTC": "/Date(1764806400000+0000)/",
    }
    document = payloads.transfer_document(answer, "USD")
    assert (document.id, document.total, document.number, document.balance, document.voided) == (
        "76eea4b6-f026-464c-b6f3-5fb39a196145",
        Decimal("202.43"),
        "PO-3FA2C91B0D",
        Decimal(0),
        False,
    )
    assert payloads.transfer_document({**answer, "Status": "DELETED"}, "USD").voided
    assert payloads.deposit_number("Sub 098801") == "Sub 098801"


def test_each_write_of_a_deposit_has_its_own_key_within_xeros_limit() -> None:
    keys = {part_key("k" * 200, part) for part in ("spend", "receive", "transfer")}
    assert len(keys) == 3
    assert all(len(key) <= 128 for key in keys)
    assert part_key("k", "spend") == part_key("k", "spend")
