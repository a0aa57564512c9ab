"""QBO payloads (pure functions), exact JSON numbers, and Fault codes mapped to typed errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any, cast

import pytest

from invoice_sync.errors import (
    DuplicateName,
    DuplicateNumber,
    LedgerError,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    NotFound,
    StaleObject,
    TokenExpired,
    TransientError,
    Unsupported,
)
from invoice_sync.ledgers.http import dumps, loads
from invoice_sync.ledgers.port import DepositDraft, DepositLine, InvoiceDraft, LineDraft, PaymentDraft
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.ledgers.quickbooks.client import QuickBooksClient, fault_error
from invoice_sync.ledgers.quickbooks.payloads import (
    DOC_NUMBER_MAX,
    credit_application_payload,
    credit_memo_payload,
    deposit_document,
    deposit_payload,
    document,
    invoice_payload,
    payment_payload,
    quote,
    refund_receipt_payload,
)


def draft(
    *, discount: str = "36.00", number: str | None = "BETA-0042", memo: str | None = "PO 4471"
) -> InvoiceDraft:
    return InvoiceDraft(
        source_id="in_1PbLegacyBeta01",
        customer_id="58",
        number=number,
        issued_on=date(2026, 1, 3),
        due_on=date(2026, 2, 2),
        currency="EUR",
        lines=(
            LineDraft(
                item_id="11", description="Consulting", quantity=3, amount=Decimal("360.00"), tax_code="VAT19"
            ),
            LineDraft(
                item_id="12", description="Hosting", quantity=1, amount=Decimal("49.99"), tax_code="NON"
            ),
        ),
        discount=Decimal(discount),
        tax=Decimal("61.56"),
        total=Decimal("435.55"),
        memo=memo,
        private_note="invoice-sync: stripe in_1PbLegacyBeta01",
    )


def payment_draft(source_id: str = "inpay_1QaAcmePay0001") -> PaymentDraft:
    return PaymentDraft(
        source_id=source_id,
        customer_id="58",
        invoice_id="130",
        amount=Decimal("1677.86"),
        currency="USD",
        paid_on=date(2026, 1, 1),
        private_note="invoice-sync: stripe inpay_1QaAcmePay0001",
    )


# --- invoice_payload -------------------------------------------------------------------------------


def test_invoice_payload_shape() -> None:
    """Given a draft with two lines, a discount, tax, number and memo, the payload has QBO's shape:
    CustomerRef, SalesItemLineDetail lines, a DiscountLineDetail line, TxnTaxDetail.TotalTax,
    DocNumber, DueDate, CustomerMemo and PrivateNote."""
    payload = invoice_payload(draft())
    assert payload["CustomerRef"] == {"value": "58"}
    assert payload["CurrencyRef"] == {"value": "EUR"}
    assert payload["TxnDate"] == "2026-01-03"
    assert payload["DueDate"] == "2026-02-02"
    assert payload["DocNumber"] == "BETA-0042"
    assert payload["PrivateNote"] == "invoice-sync: stripe in_1PbLegacyBeta01"
    assert payload["CustomerMemo"] == {"value": "PO 4471"}
    assert payload["TxnTaxDetail"] == {"TotalTax": Decimal("61.56")}
    first, second, discount = payload["Line"]
    assert first == {
        "LineNum": 1,
        "Amount": Decimal("360.00"),
        "Description": "Consulting",
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": "11"},
            "Qty": 3,
            "UnitPrice": Decimal("120.0000000"),
            "TaxCodeRef": {"value": "VAT19"},
        },
    }
    assert second["LineNum"] == 2
    assert second["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}
    assert discount == {
        "Amount": Decimal("36.00"),
        "DetailType": "DiscountLineDetail",
        "DiscountLineDetail": {"PercentBased": False},
    }


def test_invoice_payload_without_discount_number_or_memo() -> None:
    """Given a draft with zero discount, no number and no memo, there is no discount line, no DocNumber
    (QBO assigns one) and no CustomerMemo."""
    payload = invoice_payload(draft(discount="0.00", number=None, memo=None))
    assert [line["DetailType"] for line in payload["Line"]] == ["SalesItemLineDetail"] * 2
    assert "DocNumber" not in payload
    assert "CustomerMemo" not in payload


def test_invoice_payload_amounts_are_exact_json_numbers() -> None:
    """Given the payload written by dumps, every amount appears with exactly its decimals."""
    text = dumps(invoice_payload(draft())).decode()
    assert '"Amount": 360.00' in text
    assert '"Amount": 49.99' in text
    assert '"Amount": 36.00' in text
    assert '"TotalTax": 61.56' in text
    assert '"UnitPrice": 120.0000000' in text
    assert loads(text.encode())["TxnTaxDetail"]["TotalTax"] == Decimal("61.56")


def test_free_line_unit_price_is_a_json_number() -> None:
    """Given a free line (amount 0.00, e.g. a trial item), the payload's UnitPrice is the number 0,
    not a leftover marker string."""
    free = LineDraft(item_id="13", description="Trial", quantity=1, amount=Decimal("0.00"), tax_code="NON")
    payload = invoice_payload(InvoiceDraft(**{**draft().__dict__, "lines": (free,)}))
    written = json.loads(dumps(payload))
    assert written["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == 0


# --- payment_payload -------------------------------------------------------------------------------


def test_payment_payload_links_the_invoice() -> None:
    """Given a payment draft, the payload links it to the ledger invoice and carries its amount."""
    payload = payment_payload(payment_draft())
    assert payload["CustomerRef"] == {"value": "58"}
    assert payload["TotalAmt"] == Decimal("1677.86")
    assert payload["TxnDate"] == "2026-01-01"
    assert payload["CurrencyRef"] == {"value": "USD"}
    assert payload["PaymentRefNum"] == "inpay_1QaAcmePay0001"
    assert payload["PrivateNote"] == "invoice-sync: stripe inpay_1QaAcmePay0001"
    assert payload["Line"] == [
        {"Amount": Decimal("1677.86"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}
    ]


def test_payment_ref_num_fits_qbo_limit() -> None:
    """Given a source id longer than 21 characters, PaymentRefNum keeps its last 21 (the unique tail)."""
    long_id = "py_3PbLegacyBeta01VeryLongIdentifier"
    payload = payment_payload(payment_draft(long_id))
    assert len(payload["PaymentRefNum"]) == DOC_NUMBER_MAX == 21
    assert long_id.endswith(payload["PaymentRefNum"])


# --- document --------------------------------------------------------------------------------------


def test_document_reads_an_invoice() -> None:
    """Given a QBO Invoice as returned (numbers parsed as Decimal), document() gives id, sync token,
    number, total, balance, currency, note and linked payment ids."""
    obj = loads(
        b'{"Id": "130", "SyncToken": "2", "DocNumber": "ACME-0001", "TotalAmt": 1677.86, "Balance": 0,'
        b' "CurrencyRef": {"value": "USD"}, "PrivateNote": "invoice-sync: stripe in_1",'
        b' "LinkedTxn": [{"TxnId": "140", "TxnType": "Payment"}, {"TxnId": "9", "TxnType": "Estimate"}]}'
    )
    doc = document(obj)
    assert doc.id == "130"
    assert doc.version == "2"
    assert doc.number == "ACME-0001"
    assert doc.total == Decimal("1677.86")
    assert doc.balance == Decimal("0")
    assert doc.currency == "USD"
    assert doc.private_note == "invoice-sync: stripe in_1"
    assert doc.voided is False
    assert doc.linked_payment_ids == ("140",)


def test_document_reads_a_payment_and_a_voided_invoice() -> None:
    """Given a Payment (PaymentRefNum, UnappliedAmt) and a voided Invoice (zero total, "Voided" note),
    document() reads the number/balance from the payment fields and flags the void."""
    payment = document(
        {"Id": 140, "SyncToken": 0, "PaymentRefNum": "inpay_1", "TotalAmt": 10, "UnappliedAmt": 0}
    )
    assert (payment.id, payment.version, payment.number, payment.total) == (
        "140",
        "0",
        "inpay_1",
        Decimal("10"),
    )
    assert payment.currency == "USD"
    voided = document({"Id": "131", "SyncToken": "3", "TotalAmt": 0, "Balance": 0, "PrivateNote": "Voided"})
    assert voided.voided is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme", "'Acme'"),
        ("O'Brien", "'O\\'Brien'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\\'", "'\\\\\\''"),
    ],
)
def test_quote_escapes_for_qbo_queries(value: str, expected: str) -> None:
    """Given a name with quotes or backslashes, quote() escapes the backslash first, then the quote,
    so the literal cannot be broken out of."""
    assert quote(value) == expected


# --- dumps / loads ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": Decimal("150.10")}, '{"a": 150.10}'),
        ({"a": Decimal("-0.01")}, '{"a": -0.01}'),
        ({"a": [Decimal("1.00"), {"b": Decimal("12000")}]}, '{"a": [1.00, {"b": 12000}]}'),
        ({"a": (Decimal("1.234"),)}, '{"a": [1.234]}'),
        ({"a": "150.10", "b": 1, "c": None, "d": True}, '{"a": "150.10", "b": 1, "c": null, "d": true}'),
    ],
)
def test_dumps_writes_decimals_as_exact_numbers(value: Any, text: str) -> None:
    """Given Decimals (negative, nested in lists and tuples), dumps writes them as JSON numbers with
    their exact digits; strings stay strings."""
    assert dumps(value).decode() == text


def test_dumps_loads_round_trip_is_exact() -> None:
    """Given a payload of Decimals, loads(dumps(x)) gives back equal Decimals (never float)."""
    payload = {"Amount": Decimal("1677.86"), "Line": [{"Amount": Decimal("0.10")}]}
    back = loads(dumps(payload))
    assert back == payload
    assert isinstance(back["Line"][0]["Amount"], Decimal)


# --- fault_error ----------------------------------------------------------------------------------


def fault(code: str) -> dict[str, Any]:
    return {
        "Fault": {"Error": [{"Message": "msg", "Detail": "detail", "code": code}], "type": "ValidationFault"}
    }


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, None, LedgerThrottled),
        (400, fault("3001"), LedgerThrottled),
        (401, None, TokenExpired),
        (400, fault("3200"), TokenExpired),
        (400, fault("5010"), StaleObject),
        (400, fault("6140"), DuplicateNumber),
        (400, fault("6240"), DuplicateName),
        (400, fault("610"), NotFound),
        (500, None, LedgerUnavailable),
        (503, fault("10000"), LedgerUnavailable),
        (400, fault("6000"), LedgerValidation),
        (400, fault("2020"), LedgerValidation),
        (400, "not a dict", LedgerValidation),
    ],
)
def test_fault_codes_map_to_typed_errors(status: int, body: Any, kind: type[LedgerError]) -> None:
    """Given a QBO status and Fault code, fault_error returns the port's error kind carrying the code."""
    error = fault_error(status, body)
    assert type(error) is kind
    if isinstance(body, dict):
        assert error.code == body["Fault"]["Error"][0]["code"]
        assert "msg (detail)" in str(error)


def test_throttling_and_outages_are_transient() -> None:
    """Given 429 and 500, the errors are TransientError (retry later); a validation error is not."""
    assert isinstance(fault_error(429, None), TransientError)
    assert isinstance(fault_error(500, None), TransientError)
    assert not isinstance(fault_error(400, fault("6000")), TransientError)


# --- cross-check with the python-quickbooks community SDK ------------------------------------------


def test_invoice_payload_survives_python_quickbooks_round_trip() -> None:
    """Given our invoice payload, python-quickbooks' Invoice.from_json(...).to_json() keeps every field
    we send, with its value (so our field names and nesting are QBO's)."""
    qb_invoice = pytest.importorskip("quickbooks.objects.invoice")
    sent = json.loads(dumps(invoice_payload(draft())))
    back = json.loads(qb_invoice.Invoice.from_json(sent).to_json())
    assert back["CustomerRef"]["value"] == "58"
    assert back["CurrencyRef"]["value"] == "EUR"
    assert back["DocNumber"] == "BETA-0042"
    assert back["TxnDate"] == "2026-01-03"
    assert back["DueDate"] == "2026-02-02"
    assert back["PrivateNote"] == sent["PrivateNote"]
    assert back["CustomerMemo"] == {"value": "PO 4471"}
    assert back["TxnTaxDetail"]["TotalTax"] == pytest.approx(61.56)
    sales = [line for line in back["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [
        (
            ln["Amount"],
            ln["SalesItemLineDetail"]["ItemRef"]["value"],
            ln["SalesItemLineDetail"]["Qty"],
            ln["SalesItemLineDetail"]["UnitPrice"],
            ln["SalesItemLineDetail"]["TaxCodeRef"]["value"],
        )
        for ln in sales
    ] == [(360.0, "11", 3, 120.0, "VAT19"), (49.99, "12", 1, 49.99, "NON")]
    (discount,) = [line for line in back["Line"] if line["DetailType"] == "DiscountLineDetail"]
    assert discount["Amount"] == pytest.approx(36.0)
    assert discount["DiscountLineDetail"]["PercentBased"] is False


def test_payment_payload_survives_python_quickbooks_round_trip() -> None:
    """Given our payment payload, python-quickbooks' Payment.from_json(...).to_json() keeps the amount,
    reference and the link to the invoice."""
    qb_payment = pytest.importorskip("quickbooks.objects.payment")
    sent = json.loads(dumps(payment_payload(payment_draft())))
    back = json.loads(qb_payment.Payment.from_json(sent).to_json())
    assert back["CustomerRef"]["value"] == "58"
    assert back["TotalAmt"] == pytest.approx(1677.86)
    assert back["PaymentRefNum"] == "inpay_1QaAcmePay0001"
    assert back["PrivateNote"] == sent["PrivateNote"]
    (line,) = back["Line"]
    assert line["Amount"] == pytest.approx(1677.86)
    assert [(t["TxnId"], t["TxnType"]) for t in line["LinkedTxn"]] == [("130", "Invoice")]


def test_credit_memo_payload_survives_the_community_sdk_model() -> None:
    """Given our CreditMemo payload (an invoice's shape without a due date), python-quickbooks'
    CreditMemo model keeps its customer, number, lines and tax override."""
    qb_memo = pytest.importorskip("quickbooks.objects.creditmemo")
    sent = json.loads(dumps(credit_memo_payload(draft())))
    assert "DueDate" not in sent
    back = json.loads(qb_memo.CreditMemo.from_json(sent).to_json())
    assert back["CustomerRef"]["value"] == "58"
    assert back["DocNumber"] == "BETA-0042"
    assert back["TxnTaxDetail"]["TotalTax"] == pytest.approx(61.56)
    assert len([ln for ln in back["Line"] if ln["DetailType"] == "SalesItemLineDetail"]) == len(
        [ln for ln in sent["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    )


def test_credit_application_is_a_zero_payment_linking_invoice_and_memo() -> None:
    """Applying credit in QBO is a payment of zero whose credit-memo line funds its invoice line;
    the community SDK's Payment model keeps both links."""
    sent = json.loads(dumps(credit_application_payload("58", "130", "140", Decimal("162.38"), "note")))
    assert sent["TotalAmt"] == 0
    assert [(ln["Amount"], ln["LinkedTxn"][0]["TxnType"]) for ln in sent["Line"]] == [
        (162.38, "Invoice"),
        (162.38, "CreditMemo"),
    ]
    qb_payment = pytest.importorskip("quickbooks.objects.payment")
    back = json.loads(qb_payment.Payment.from_json(sent).to_json())
    assert [ln["LinkedTxn"][0]["TxnId"] for ln in back["Line"]] == ["130", "140"]


def _kept(sent: Any, back: Any, path: str = "$") -> list[str]:
    """Where ``back`` lost or changed something of ``sent`` (extra keys in ``back`` are the SDK's
    defaults and do not count): every key we send, at every depth, with an equal value."""
    if isinstance(sent, dict):
        if not isinstance(back, dict):
            return [path]
        return [lost for key, value in sent.items() for lost in _kept(value, back.get(key), f"{path}.{key}")]
    if isinstance(sent, list):
        if not isinstance(back, list) or len(back) != len(sent):
            return [path]
        return [
            lost
            for i, (a, b) in enumerate(zip(sent, back, strict=True))
            for lost in _kept(a, b, f"{path}[{i}]")
        ]
    return [] if sent == back else [f"{path}: {sent!r} != {back!r}"]


# --- refund receipts -------------------------------------------------------------------------------


def test_refund_receipt_payload_is_a_credit_memo_paid_from_an_account() -> None:
    """A RefundReceipt takes a credit memo's lines, tax override, currency, number and notes (one
    shared builder), no due date, plus DepositToAccountRef naming the account the money leaves."""
    payload = refund_receipt_payload(draft(), "35")
    assert payload == {**credit_memo_payload(draft()), "DepositToAccountRef": {"value": "35"}}
    assert "DueDate" not in payload
    assert payload["TxnTaxDetail"] == {"TotalTax": Decimal("61.56")}
    assert payload["DocNumber"] == "BETA-0042"
    assert payload["CustomerMemo"] == {"value": "PO 4471"}


@pytest.mark.parametrize("paid_from", [None, ""])
def test_refund_receipt_without_an_account_is_refused(paid_from: str | None) -> None:
    """QBO requires DepositToAccountRef: without an account the payload is refused as a validation
    error (parked with a reason) saying what to configure, before anything is sent."""
    with pytest.raises(LedgerValidation, match="account the refund is paid from"):
        refund_receipt_payload(draft(), paid_from)


def test_refund_receipt_payload_loads_into_the_community_sdk_model_without_loss() -> None:
    """Given our RefundReceipt payload, python-quickbooks' RefundReceipt.from_json(...).to_json()
    keeps every field we send at every depth with its exact value (so our names and nesting are
    QBO's), including DepositToAccountRef."""
    qb_refund = pytest.importorskip("quickbooks.objects.refundreceipt")
    text = dumps(refund_receipt_payload(draft(), "35"))
    sent = json.loads(text, parse_float=Decimal)
    # The SDK model is fed what a JSON client would parse (floats), read back exactly as Decimals.
    back = json.loads(qb_refund.RefundReceipt.from_json(json.loads(text)).to_json(), parse_float=Decimal)
    assert _kept(sent, back) == []
    assert back["DepositToAccountRef"]["value"] == "35"


def test_document_reads_a_refund_receipt() -> None:
    """Given a RefundReceipt as QBO returns it (Balance 0: paid out as it is created), document()
    gives its number and total and nothing left to pay out."""
    doc = document(
        loads(
            b'{"Id": "150", "SyncToken": "0", "DocNumber": "CN-0007", "TotalAmt": 52.38, "Balance": 0,'
            b' "DepositToAccountRef": {"value": "35", "name": "Checking"}, "CurrencyRef": {"value": "USD"},'
            b' "PrivateNote": "invoice-sync: stripe re_1"}'
        )
    )
    assert (doc.id, doc.version, doc.number) == ("150", "0", "CN-0007")
    assert doc.total == Decimal("52.38")
    assert doc.balance == Decimal(0)
    assert doc.private_note == "invoice-sync: stripe re_1"
    assert doc.voided is False


class _NoRequests:
    """A QBO client that fails the test if the adapter sends anything."""

    def request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError(f"unexpected QBO request {args} {kwargs}")

    def query(self, statement: str) -> dict[str, Any]:
        raise AssertionError(f"unexpected QBO query {statement}")


def _offline_ledger() -> QuickBooksLedger:
    return QuickBooksLedger(cast(QuickBooksClient, _NoRequests()))


def test_create_refund_without_an_account_sends_nothing() -> None:
    """create_refund with no paid_from is refused by the payload before any request reaches QBO."""
    with pytest.raises(LedgerValidation):
        _offline_ledger().create_refund(draft(), None, "refund-key-1")


def test_pay_out_credit_is_unsupported_and_tells_a_person_what_to_do() -> None:
    """QBO's API cannot pay a credit memo out: pay_out_credit sends nothing and raises Unsupported
    (parked for a person) naming the memo, the amount and the steps in QBO."""
    payout = PaymentDraft(
        source_id="re_1",
        customer_id="58",
        invoice_id="140",
        amount=Decimal("52.38"),
        currency="USD",
        paid_on=date(2026, 1, 5),
        private_note="invoice-sync: stripe re_1",
        account="35",
    )
    with pytest.raises(Unsupported) as raised:
        _offline_ledger().pay_out_credit(payout, "payout-key-1")
    message = str(raised.value)
    assert "credit memo 140" in message
    assert "52.38 USD" in message
    assert "by hand" in message
    assert "customer 58" in message
    assert "account 35" in message
    assert "Receive payment" in message


# --- payouts as bank deposits (design two-way 3.4, 3.5.2) -----------------------------------------


def payout_draft(*lines: DepositLine, number: str = "PO-3FA2C91B0D", bank: str | None = "35") -> DepositDraft:
    """The design's worked example (payout po_1QxYz, USD 202.43, arriving 2026-12-04) unless other
    lines are given: two payments, a partial refund and the aggregated Stripe fee line."""
    lines = lines or (
        DepositLine("payment", Decimal("150.00"), "INV-1001", ledger_id="190", source_id="txn_a"),
        DepositLine("payment", Decimal("80.00"), "INV-1002", ledger_id="191", source_id="txn_b"),
        DepositLine("refund", Decimal("-20.00"), "refund of ch_a", ledger_id="77", source_id="txn_c"),
        DepositLine("fee", Decimal("-7.57"), "Stripe fees, payout po_1QxYz", account="92"),
    )
    return DepositDraft(
        source_id="po_1QxYz",
        number=number,
        arrival_on=date(2026, 12, 4),
        currency="USD",
        bank_account=bank,
        clearing_account=None,
        contact_id=None,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        private_note="invoice-sync: stripe po_1QxYz",
    )


def test_deposit_payload_books_the_worked_example() -> None:
    """Given the design's worked example, the Deposit goes to the bank account on the arrival date
    with its number and marker; payments and the refund receipt are linked lines (TxnLineId "0",
    the refund negative), the fees one negative DepositLineDetail line on the fee account; no
    TotalAmt is sent (QBO computes it), and the lines add up to the bank line, 202.43."""
    payload = deposit_payload(payout_draft())
    assert payload == {
        "DepositToAccountRef": {"value": "35"},
        "TxnDate": "2026-12-04",
        "CurrencyRef": {"value": "USD"},
        "DocNumber": "PO-3FA2C91B0D",
        "PrivateNote": "invoice-sync: stripe po_1QxYz",
        "Line": [
            {
                "Amount": Decimal("150.00"),
                "LinkedTxn": [{"TxnId": "190", "TxnType": "Payment", "TxnLineId": "0"}],
            },
            {
                "Amount": Decimal("80.00"),
                "LinkedTxn": [{"TxnId": "191", "TxnType": "Payment", "TxnLineId": "0"}],
            },
            {
                "Amount": Decimal("-20.00"),
                "LinkedTxn": [{"TxnId": "77", "TxnType": "RefundReceipt", "TxnLineId": "0"}],
            },
            {
                "Amount": Decimal("-7.57"),
                "DetailType": "DepositLineDetail",
                "Description": "Stripe fees, payout po_1QxYz",
                "DepositLineDetail": {"AccountRef": {"value": "92"}},
            },
        ],
    }
    assert sum((line["Amount"] for line in payload["Line"]), Decimal(0)) == Decimal("202.43")
    assert b'"Amount": -7.57' in dumps(payload)  # exact JSON numbers, never through float


def test_deposit_payload_loads_into_the_community_sdk_model_without_loss() -> None:
    """Given the worked example's Deposit payload, python-quickbooks' Deposit.from_json(...).to_json()
    (the QBO model the repository checks payloads against) keeps every field we send at every depth
    with its exact value: DocNumber, the linked lines' TxnLineId and the direct line's AccountRef
    are Deposit fields."""
    qb_deposit = pytest.importorskip("quickbooks.objects.deposit")
    text = dumps(deposit_payload(payout_draft()))
    sent = json.loads(text, parse_float=Decimal)
    back = json.loads(qb_deposit.Deposit.from_json(json.loads(text)).to_json(), parse_float=Decimal)
    assert _kept(sent, back) == []


def test_adjustment_and_unmatched_lines_are_signed_direct_lines_on_their_accounts() -> None:
    """A dispute adjustment (negative) and money no synced payment accounts for (positive) become
    DepositLineDetail lines on their own accounts, each with its description and sign."""
    payload = deposit_payload(
        payout_draft(
            DepositLine("payment", Decimal("100.00"), "INV-7", ledger_id="190"),
            DepositLine("adjustment", Decimal("-15.00"), "adjustment: dispute du_1", account="94"),
            DepositLine("unmatched", Decimal("12.00"), "charge ch_9 without its payment", account="93"),
        )
    )
    direct = [
        (ln["Amount"], ln["DepositLineDetail"]["AccountRef"]["value"], ln["Description"])
        for ln in payload["Line"][1:]
    ]
    assert direct == [
        (Decimal("-15.00"), "94", "adjustment: dispute du_1"),
        (Decimal("12.00"), "93", "charge ch_9 without its payment"),
    ]


@pytest.mark.parametrize(
    ("lines", "bank", "number", "words"),
    [
        ((), None, "PO-3FA2C91B0D", "bank account the payout lands in"),
        ((), "35", "PO-" + "A" * 19, "longer than QBO's 21"),
        ((DepositLine("payment", Decimal("5.00"), "INV-1"),), "35", "PO-1", "names no QBO Payment"),
        ((DepositLine("refund", Decimal("-5.00"), "re"),), "35", "PO-1", "names no QBO RefundReceipt"),
        ((DepositLine("refund", Decimal("5.00"), "re", ledger_id="77"),), "35", "PO-1", "must be negative"),
        (
            (DepositLine("payment", Decimal("-5.00"), "pay", ledger_id="190"),),
            "35",
            "PO-1",
            "must be positive",
        ),
        ((DepositLine("fee", Decimal("-1.00"), "fees"),), "35", "PO-1", "names no QBO account"),
    ],
)
def test_a_deposit_qbo_would_refuse_or_book_wrong_is_refused_before_sending(
    lines: tuple[DepositLine, ...], bank: str | None, number: str, words: str
) -> None:
    """Given a draft without its bank account, with a number past QBO's 21 characters, a linked line
    without its document or of the wrong sign, or a direct line without its account, the payload is
    refused as LedgerValidation (parked with the reason) and create_deposit sends nothing."""
    bad = payout_draft(*lines, number=number, bank=bank)
    with pytest.raises(LedgerValidation, match=words):
        deposit_payload(bad)
    with pytest.raises(LedgerValidation, match=words):
        _offline_ledger().create_deposit(bad, "deposit-key-1")


def test_deposit_document_reads_a_deposit_as_qbo_returns_it() -> None:
    """Given a Deposit as QBO answers it (TotalAmt computed, lines linked), deposit_document gives
    its id, SyncToken, number, total, currency and marker, nothing open on it, and the payments it
    moved out of Undeposited Funds (not the refund receipt)."""
    doc = deposit_document(
        loads(
            b'{"Deposit": {"Id": "205", "SyncToken": "0", "DocNumber": "PO-3FA2C91B0D",'
            b' "TxnDate": "2026-12-04",'
            b' "TotalAmt": 202.43, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},'
            b' "PrivateNote": "invoice-sync: stripe po_1QxYz", "DepositToAccountRef": {"value": "35"},'
            b' "Line": [{"Id": "1", "Amount": 150.00, "LinkedTxn": [{"TxnId": "190", "TxnType": "Payment",'
            b' "TxnLineId": "0"}]}, {"Id": "2", "Amount": -20.00, "LinkedTxn": [{"TxnId": "77",'
            b' "TxnType": "RefundReceipt", "TxnLineId": "0"}]}, {"Id": "3", "Amount": 72.43,'
            b' "DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": "92"}}}]}}'
        )["Deposit"]
    )
    assert (doc.id, doc.version, doc.number, doc.currency) == ("205", "0", "PO-3FA2C91B0D", "USD")
    assert doc.total == Decimal("202.43")
    assert doc.balance == Decimal(0)
    assert doc.private_note == "invoice-sync: stripe po_1QxYz"
    assert doc.linked_payment_ids == ("190",)


class _Deposits:
    """A QBO client whose query answers fixed Deposit rows in pages, recording each statement."""

    def __init__(self, rows: list[dict[str, Any]], page_size: int) -> None:
        self.rows = rows
        self.page_size = page_size
        self.statements: list[str] = []

    def request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError(f"unexpected QBO request {args} {kwargs}")

    def query(self, statement: str) -> dict[str, Any]:
        self.statements.append(statement)
        start = int(statement.split("STARTPOSITION ")[1].split(maxsplit=1)[0])
        page = self.rows[start - 1 : start - 1 + self.page_size]
        return {"Deposit": page} if page else {}


def _deposit_row(obj_id: str, note: str | None, number: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Id": obj_id,
        "SyncToken": "0",
        "TotalAmt": Decimal("202.43"),
        "TxnDate": "2026-12-04",
    }
    if note is not None:
        row["PrivateNote"] = note
    if number is not None:
        row["DocNumber"] = number
    return row


def test_find_deposit_adopts_only_the_marked_one_of_the_day_across_pages() -> None:
    """Given the arrival day's deposits over two pages (a person's without a note, one with another
    payout's marker, one with this marker but another number, then ours), find_deposit queries that
    TxnDate page by page and adopts only the one carrying this payout's marker and number."""
    rows = [
        _deposit_row("201", None),
        _deposit_row("202", "invoice-sync: stripe po_Other"),
        _deposit_row("203", "invoice-sync: stripe po_1QxYz", number="DEP-9"),
        _deposit_row("204", "invoice-sync: stripe po_1QxYz", number="PO-3FA2C91B0D"),
    ]
    client = _Deposits(rows, page_size=2)
    ledger = QuickBooksLedger(cast(QuickBooksClient, client))
    ledger.deposit_page_size = 2
    found = ledger.find_deposit(payout_draft())
    assert found is not None and found.id == "204"
    assert [s.split(" ORDERBY")[0] for s in client.statements] == [
        "select * from Deposit where TxnDate = '2026-12-04'"
    ] * 2


def test_find_deposit_finds_nothing_when_no_deposit_of_the_day_is_marked() -> None:
    """Given only deposits a person made that day (no marker, or a marker of another payout),
    find_deposit answers None, so push creates the deposit rather than adopting a stranger's."""
    client = _Deposits([_deposit_row("201", "Stripe payout"), _deposit_row("202", None)], page_size=1000)
    assert QuickBooksLedger(cast(QuickBooksClient, client)).find_deposit(payout_draft()) is None


def test_find_deposit_refuses_a_draft_without_a_marker() -> None:
    """A draft whose private note carries no marker could only be matched to unmarked deposits, a
    person's: find_deposit refuses it before any query."""
    unmarked = replace(payout_draft(), private_note="Stripe payout")
    with pytest.raises(ValueError, match="no marker"):
        _offline_ledger().find_deposit(unmarked)


def test_a_payment_already_deposited_maps_to_a_refusal_with_its_code() -> None:
    """QBO's 6540 (a deposited transaction cannot be changed, or deposited again) is the ledger
    refusing the document: LedgerValidation carrying code 6540 (parked, never retried)."""
    error = fault_error(
        400,
        {"Fault": {"Error": [{"Message": "Deposited Transaction cannot be changed", "code": "6540"}]}},
    )
    assert isinstance(error, LedgerValidation)
    assert not isinstance(error, TransientError)
    assert error.code == "6540"
