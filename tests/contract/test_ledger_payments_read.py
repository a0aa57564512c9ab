"""The port's read side for payments, run against every adapter and its sandbox over HTTP: a
payment a person recorded in the ledger and one invoice-sync booked both read back as
``LedgerPayment``, and the ledger lists what changed since a moment, oldest first, page by page.

A person is played by the sandbox's control call ``POST /_sandbox/<root>/<tenant>/payments-by-hand``
(sent over HTTP here, as a test in another process would). The adapters are the contract suite's
own (``conftest._ledger``: built as production builds them); each case here also knows its sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_sync.errors import NotFound
from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.port import LedgerPayment, PaymentApplication, marked, marker
from invoice_sync_ops.sandboxes.base import BY_HAND_PAYMENTS, BY_HAND_REMOVALS, SandboxServer
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox
from tests.contract.conftest import CREDENTIALS, LedgerCase, _ledger, _vault


@dataclass
class PaymentsCase:
    case: LedgerCase
    sandbox: SandboxServer[Any]
    tenant: str
    unknown_id: str  # a payment id the ledger does not have
    payment_id: Callable[[dict[str, Any]], str]  # the id in the ledger's own payment object

    def _control(self, call: str, body: dict[str, str]) -> httpx.Response:
        url = f"{self.sandbox.base_url}/_sandbox/{self.sandbox.control_root}/{self.tenant}/{call}"
        return httpx.post(url, json=body, timeout=10)

    def by_hand(self, invoice_id: str, amount: str, **fields: str) -> httpx.Response:
        """A person records a payment in the ledger: the sandbox's control call, over HTTP."""
        return self._control(BY_HAND_PAYMENTS, {"invoice_id": invoice_id, "amount": amount, **fields})

    def remove_by_hand(self, payment_id: str) -> httpx.Response:
        """A person voids (QBO) or deletes (Xero, FreshBooks) a payment in the ledger."""
        return self._control(BY_HAND_REMOVALS, {"payment_id": payment_id})


def _case(
    name: str,
    sandbox: SandboxServer[Any],
    tenant: str,
    seed: Callable[[], None],
    **fields: Any,
) -> LedgerCase:
    url = sandbox.start()
    seed()
    vault = _vault()
    return LedgerCase(
        name=name,
        ledger=_ledger(name, url, tenant, vault),  # type: ignore[arg-type]
        vault=vault,
        inject_status=lambda status, count: sandbox.inject_status(tenant, status, count),  # type: ignore[attr-defined]
        expire_access_tokens=lambda: sandbox.expire_access_tokens(tenant),
        forget_idempotency=lambda: None,
        lose_responses=lambda count: sandbox.lose_responses(tenant, count),  # type: ignore[attr-defined]
        invalid_item_id="NO-SUCH-ITEM",
        **fields,
    )


def quickbooks() -> Iterator[PaymentsCase]:
    sandbox = QuickBooksSandbox()
    realm = "4620816365000000002"
    case = _case(
        "quickbooks",
        sandbox,
        realm,
        lambda: sandbox.seed_company(realm, **CREDENTIALS),
        item_id="1",
        account=None,
        tax_code="TAX",
        no_tax_code="NON",
        payment_account=None,
        refund_from="35",
        pays_out_credit=False,
    )
    yield PaymentsCase(case, sandbox, realm, "999999", lambda obj: str(obj["Id"]))
    sandbox.stop()


def xero() -> Iterator[PaymentsCase]:
    sandbox = XeroSandbox()
    tenant = "0d7f6e4c-1a2b-4c3d-8e9f-000000000002"
    case = _case(
        "xero",
        sandbox,
        tenant,
        lambda: sandbox.seed_organisation(tenant, **CREDENTIALS),
        item_id="CONSULT",
        account="200",
        tax_code="OUTPUT2",
        no_tax_code="NONE",
        payment_account="090",
        refund_from="090",
        pays_out_credit=True,
    )
    yield PaymentsCase(
        case, sandbox, tenant, "6d1f2b8e-0000-4000-8000-000000000000", lambda obj: str(obj["PaymentID"])
    )
    sandbox.stop()


def freshbooks() -> Iterator[PaymentsCase]:
    sandbox = FreshBooksSandbox()
    account = "zDmNr"
    case = _case(
        "freshbooks",
        sandbox,
        account,
        lambda: sandbox.seed_account(account, business_id=900002, **CREDENTIALS),
        item_id="Consulting",
        account=None,
        tax_code="Sales Tax",
        no_tax_code="",
        payment_account=None,
        refund_from=None,
        pays_out_credit=False,
    )
    assert isinstance(case.ledger, FreshBooksLedger)
    yield PaymentsCase(case, sandbox, account, "999999", lambda obj: str(obj["id"]))
    sandbox.stop()


CASES: dict[str, Callable[[], Iterator[PaymentsCase]]] = {
    "quickbooks": quickbooks,
    "xero": xero,
    "freshbooks": freshbooks,
}


@pytest.fixture(params=sorted(CASES))
def payments(request: pytest.FixtureRequest) -> Iterator[PaymentsCase]:
    yield from CASES[request.param]()


def _invoice(payments: PaymentsCase, name: str) -> tuple[str, str]:
    """(customer id, invoice id) of a new invoice of 182.38 in the ledger."""
    case = payments.case
    customer = case.ledger.create_customer(name, None, "USD", f"cus_{name}", f"cust-{name}").id
    invoice = case.ledger.create_invoice(case.draft(customer), f"inv-{name}")
    return customer, invoice.id


def _next_second() -> datetime:
    """Waits for the clock to enter a new whole second and returns that moment: every ledger keeps
    change times to the second, so what happened before it is older by a whole second."""
    time.sleep(1 - time.time() % 1 + 0.05)
    return datetime.now(UTC)


def _all_pages(payments: PaymentsCase, since: datetime) -> tuple[list[LedgerPayment], int]:
    found: list[LedgerPayment] = []
    page = 1
    while True:
        rows, more = payments.case.ledger.list_ledger_payments(since, page)
        assert len(rows) <= payments.case.ledger.payment_page_size  # type: ignore[attr-defined]
        found.extend(rows)
        if not more:
            return found, page
        page += 1
        assert page < 20, "the listing never ends"


def test_a_payment_recorded_by_hand_reads_back_applied_to_its_invoice(payments: PaymentsCase) -> None:
    """Given a person records a cheque of 50.00 against an invoice in the ledger, then the port
    reads it back as 50.00 applied to that invoice, with no invoice-sync marker, not voided, and
    the invoice's balance is lower by that amount (the ledger's own bookkeeping)."""
    _, invoice_id = _invoice(payments, "By Hand")
    answer = payments.by_hand(invoice_id, "50.00", reference="1042", note="cheque from Acme")
    assert answer.status_code == 201, answer.text
    payment_id = payments.payment_id(answer.json())

    payment = payments.case.ledger.get_ledger_payment(payment_id)

    assert payment.id == payment_id
    assert payment.applications == (PaymentApplication(invoice_id, Decimal("50.00")),)
    assert payment.total == Decimal("50.00")
    assert payment.currency == "USD"
    assert payment.voided is False
    assert marked(payment.note) is None
    assert "1042" in (payment.reference or "")
    assert payment.updated_at is not None
    assert payments.case.ledger.get_invoice(invoice_id).balance == Decimal("132.38")


def test_a_payment_invoice_sync_booked_reads_back_with_its_marker(payments: PaymentsCase) -> None:
    """Given invoice-sync booked a payment (create_payment with its marker note), then the port
    reads it back with that marker, so payments back can tell it is its own and never send it."""
    customer, invoice_id = _invoice(payments, "Pushed")
    draft = payments.case.payment(invoice_id, customer, Decimal("182.38"), "in_pushed_1")
    booked = payments.case.ledger.create_payment(draft, "pay-pushed-1")

    payment = payments.case.ledger.get_ledger_payment(booked.id)

    assert marked(payment.note) == ("stripe", "in_pushed_1")
    assert (payment.note or "").startswith(marker("stripe", "in_pushed_1"))
    assert payment.applications == (PaymentApplication(invoice_id, Decimal("182.38")),)


def test_listing_since_a_moment_gives_only_newer_payments_oldest_first_page_by_page(
    payments: PaymentsCase,
) -> None:
    """Given one payment recorded before a moment T and three after it (one pushed, two by
    hand), when the changes since T are listed in pages of two, then exactly the three newer
    ones come back, in the order they were made (a second apart), over more than one page, each
    page at most two; nothing is listed since a moment still to come."""
    customer, invoice_id = _invoice(payments, "Listed")
    older = payments.by_hand(invoice_id, "10.00", reference="old")
    assert older.status_code == 201, older.text
    since = _next_second()
    first = payments.payment_id(payments.by_hand(invoice_id, "11.00", reference="a").json())
    _next_second()  # each later by a whole second, so the order is the ledger's, not ties kept
    draft = payments.case.payment(invoice_id, customer, Decimal("12.00"), "in_listed_b")
    second = payments.case.ledger.create_payment(draft, "pay-listed-b").id
    _next_second()
    third = payments.payment_id(payments.by_hand(invoice_id, "13.00", reference="c").json())
    payments.case.ledger.payment_page_size = 2  # type: ignore[attr-defined]

    listed, pages = _all_pages(payments, since)

    assert [p.id for p in listed] == [first, second, third]
    assert [p.total for p in listed] == [Decimal("11.00"), Decimal("12.00"), Decimal("13.00")]
    assert all(p.applications == (PaymentApplication(invoice_id, p.total),) for p in listed)
    assert pages >= 2
    assert payments.case.ledger.list_ledger_payments(datetime.now(UTC).replace(year=2099), 1) == ([], False)


def test_a_payment_removed_by_hand_lists_again_as_voided_at_its_change(payments: PaymentsCase) -> None:
    """Given two payments recorded before a moment T, one recorded after it, and then the first
    one removed by a person, when the changes since T are listed, then the newer payment comes
    first and the removed one after it (listed by when it changed, not when it was made), read as
    voided; the invoice owes that money again."""
    _, invoice_id = _invoice(payments, "Removed")
    removed = payments.payment_id(payments.by_hand(invoice_id, "20.00", reference="r").json())
    payments.by_hand(invoice_id, "21.00", reference="kept")
    since = _next_second()
    newer = payments.payment_id(payments.by_hand(invoice_id, "22.00", reference="n").json())
    _next_second()
    answer = payments.remove_by_hand(removed)
    assert answer.status_code == 201, answer.text

    listed, _ = _all_pages(payments, since)

    assert [p.id for p in listed] == [newer, removed]
    assert [p.voided for p in listed] == [False, True]
    assert payments.case.ledger.get_ledger_payment(removed).voided is True
    assert payments.case.ledger.get_invoice(invoice_id).balance == Decimal("182.38") - Decimal("43.00")


def test_an_unknown_payment_is_not_found(payments: PaymentsCase) -> None:
    """Given an id the ledger has no payment for, then reading it raises NotFound."""
    with pytest.raises(NotFound):
        payments.case.ledger.get_ledger_payment(payments.unknown_id)


def test_the_ledger_refuses_a_by_hand_payment_over_the_balance(payments: PaymentsCase) -> None:
    """Given a person tries to record more than the invoice still owes, then the sandbox refuses
    it as the ledger would (400) and the invoice keeps its balance; an unknown invoice is 404."""
    _, invoice_id = _invoice(payments, "Too Much")
    refused = payments.by_hand(invoice_id, "500.00")
    assert refused.status_code == 400, refused.text
    assert payments.case.ledger.get_invoice(invoice_id).balance == Decimal("182.38")
    assert payments.by_hand("424242", "1.00").status_code == 404
