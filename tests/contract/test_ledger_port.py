"""What every ledger adapter must do, whatever the ledger: the port's contract.

An adapter that behaves differently from the port fails here, not in a comment.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from invoice_sync.errors import (
    DuplicateName,
    DuplicateNumber,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    StaleObject,
    Unsupported,
)
from invoice_sync.ledgers.port import InvoiceDraft, LedgerDocument, PaymentDraft, marked, marker
from tests.contract.conftest import LedgerCase


def _customer(case: LedgerCase, name: str = "Contract Customer") -> str:
    return case.ledger.create_customer(name, "billing@example.com", "USD", f"cus_{name}", f"cust-{name}").id


def test_create_get_and_find_by_number(case: LedgerCase) -> None:
    """Given a new invoice draft, when created, then get and find-by-number return the same
    document with the draft's total, the full balance open and the invoice-sync marker."""
    draft = case.draft(_customer(case))
    created = case.ledger.create_invoice(draft, "create-1")
    assert created.total == Decimal("182.38")
    assert created.balance == Decimal("182.38")
    assert created.number == draft.number
    fetched = case.ledger.get_invoice(created.id)
    found = case.ledger.find_invoice(draft.number or "")
    assert found is not None
    assert fetched.id == found.id == created.id
    assert (found.private_note or "").startswith(marker("stripe", draft.source_id))
    assert case.ledger.find_invoice("NO-SUCH-NUMBER") is None


def test_update_replaces_lines_and_moves_the_version(case: LedgerCase) -> None:
    customer = _customer(case)
    draft = case.draft(customer)
    created = case.ledger.create_invoice(draft, "create-2")
    changed = case.draft(customer, number=draft.number, amount="300.00", tax="24.75")
    updated = case.ledger.update_invoice(created.id, created.version, changed, "update-2")
    assert updated.id == created.id
    assert updated.total == Decimal("344.75")
    assert updated.version != created.version


def test_idempotent_replay_creates_one_document(case: LedgerCase) -> None:
    """Given the same create sent twice with the same idempotency key (a retry after a lost
    response), then both answers name the same document."""
    draft = case.draft(_customer(case))
    first = case.ledger.create_invoice(draft, "replay-1")
    second = case.ledger.create_invoice(draft, "replay-1")
    assert second.id == first.id


def test_after_the_idempotency_window_the_number_still_protects(case: LedgerCase) -> None:
    """Given the ledger forgot the key (its replay window is short), then the same create is
    refused as a duplicate number rather than making a second document: push then adopts the
    document it finds by number."""
    draft = case.draft(_customer(case))
    first = case.ledger.create_invoice(draft, "window-1")
    case.forget_idempotency()
    with pytest.raises(DuplicateNumber):
        case.ledger.create_invoice(draft, "window-1")
    found = case.ledger.find_invoice(draft.number or "")
    assert found is not None
    assert found.id == first.id


def test_lost_response_never_makes_a_second_document(case: LedgerCase) -> None:
    """Given the ledger commits a create but its answer is lost, then the adapter either gets the
    original answer back (a ledger that replays idempotency keys) or reports the ledger
    unavailable (one that cannot tell a retry from a new create); either way the ledger holds
    exactly one document with that number, which find-by-number returns for push to adopt."""
    draft = case.draft(_customer(case))
    case.lose_responses(1)
    try:
        created: str | None = case.ledger.create_invoice(draft, "lost-1").id
    except LedgerUnavailable:
        created = None
    found = case.ledger.find_invoice(draft.number or "")
    assert found is not None
    assert created in {None, found.id}
    with pytest.raises(DuplicateNumber):
        case.ledger.create_invoice(draft, "lost-2")


def test_stale_update_is_refused(case: LedgerCase) -> None:
    """Given the document changed since its version was read, then an update carrying the old
    version raises StaleObject (the use case re-reads and retries)."""
    customer = _customer(case)
    draft = case.draft(customer)
    created = case.ledger.create_invoice(draft, "stale-1")
    case.ledger.update_invoice(
        created.id,
        created.version,
        case.draft(customer, number=draft.number, amount="160.00", tax="13.20"),
        "stale-2",
    )
    with pytest.raises(StaleObject):
        case.ledger.update_invoice(created.id, created.version, draft, "stale-3")


def test_duplicate_number_is_refused(case: LedgerCase) -> None:
    """Given a number already used, then a create under a new key raises DuplicateNumber."""
    customer = _customer(case)
    draft = case.draft(customer)
    case.ledger.create_invoice(draft, "dup-1")
    with pytest.raises(DuplicateNumber):
        case.ledger.create_invoice(draft, "dup-2")


def test_duplicate_customer_name_is_refused(case: LedgerCase) -> None:
    _customer(case, "Twice Named")
    with pytest.raises(DuplicateName):
        case.ledger.create_customer("Twice Named", None, "USD", "cus_other", "other-key")
    found = case.ledger.find_customer("Twice Named")
    assert found is not None
    assert found.name == "Twice Named"


def test_throttling_is_retried_then_reported(case: LedgerCase) -> None:
    """Given two 429s, the call succeeds (retried in place); given more than the attempts, it
    raises LedgerThrottled, a transient error, and creates nothing."""
    customer = _customer(case)
    case.inject_status(429, 2)
    assert case.ledger.create_invoice(case.draft(customer), "throttle-1").id
    case.inject_status(429, 3)  # as many as the adapter's attempts
    draft = case.draft(customer)
    with pytest.raises(LedgerThrottled):
        case.ledger.create_invoice(draft, "throttle-2")
    assert case.ledger.find_invoice(draft.number or "") is None


def test_expired_access_token_is_refreshed_and_rotation_saved(case: LedgerCase) -> None:
    """Given the ledger refuses the access token, then the adapter refreshes once, saves the
    rotated refresh token, and the call succeeds."""
    customer = _customer(case)
    saves = len(case.vault.saved)
    refresh_before = case.vault.tokens.refresh_token.get_secret_value()
    case.expire_access_tokens()
    assert case.ledger.create_invoice(case.draft(customer), "expired-1").id
    assert len(case.vault.saved) == saves + 1
    assert case.vault.tokens.refresh_token.get_secret_value() != refresh_before


def test_validation_error_carries_the_ledgers_words(case: LedgerCase) -> None:
    """Given a draft referencing something the ledger refuses, then LedgerValidation with the
    ledger's own message (not a generic one)."""
    with pytest.raises(LedgerValidation) as caught:
        case.ledger.create_invoice(case.draft(_customer(case), item_id=case.invalid_item_id), "invalid-1")
    assert len(str(caught.value)) > 20


def test_payment_settles_the_invoice_and_is_found_again(case: LedgerCase) -> None:
    """Given an invoice, when a payment for its total is created, then the invoice balance is zero,
    the invoice links the payment, and the payment carries the marker (the crash-recovery lookup)."""
    customer = _customer(case)
    invoice = case.ledger.create_invoice(case.draft(customer), "pay-inv")
    payment = case.ledger.create_payment(
        case.payment(invoice.id, customer, invoice.total, "inpay_ct1"), "pay-1"
    )
    assert payment.total == invoice.total
    after = case.ledger.get_invoice(invoice.id)
    assert after.balance == Decimal(0)
    assert payment.id in after.linked_payment_ids
    assert (case.ledger.get_payment(payment.id).private_note or "").startswith(marker("stripe", "inpay_ct1"))


def test_void_keeps_the_document_and_marks_it_void(case: LedgerCase) -> None:
    invoice = case.ledger.create_invoice(case.draft(_customer(case)), "void-inv")
    voided = case.ledger.void_invoice(invoice.id, invoice.version, "void-1")
    assert voided.id == invoice.id
    assert case.ledger.get_invoice(invoice.id).voided


def test_credit_note_created_found_applied_and_voided(case: LedgerCase) -> None:
    """Given an open invoice, a credit note for part of it is created with its total, found again by
    number, applied to the invoice (the invoice's open balance and the note's unused credit both
    drop by the amount), and an unapplied credit note can be voided."""
    customer = _customer(case)
    invoice = case.ledger.create_invoice(case.draft(customer), "cn-invoice")
    credit = case.ledger.create_credit_note(
        case.draft(customer, number=f"{invoice.number}-CN", amount="50.00", tax="4.13"), "cn-create"
    )
    assert credit.total == Decimal("74.13")
    assert credit.balance == Decimal("74.13")
    found = case.ledger.find_credit_note(f"{invoice.number}-CN")
    assert found is not None
    assert found.id == credit.id
    case.ledger.apply_credit_note(credit.id, invoice.id, customer, Decimal("74.13"), "cn-apply")
    assert case.ledger.get_invoice(invoice.id).balance == Decimal("108.25")
    assert case.ledger.get_credit_note(credit.id).balance == Decimal(0)

    spare = case.ledger.create_credit_note(
        case.draft(customer, number=f"{invoice.number}-CN2", amount="10.00", tax="0.83"), "cn2-create"
    )
    voided = case.ledger.void_credit_note(spare.id, spare.version, "cn2-void")
    assert voided.voided
    assert case.ledger.get_credit_note(spare.id).voided


def test_batch_create_reports_each_item_and_replays_whole(case: LedgerCase) -> None:
    """Given three drafts in one batch, the middle one referencing something the ledger refuses,
    then the outcomes are: a document, the ledger's validation error, a document; only two
    invoices exist; and the same batch sent again (a retry) creates nothing more."""
    customer = _customer(case)
    drafts = [
        (case.draft(customer), "batch-a"),
        (case.draft(customer, item_id=case.invalid_item_id), "batch-b"),
        (case.draft(customer), "batch-c"),
    ]
    outcomes = case.ledger.create_invoices(drafts)
    assert isinstance(outcomes[1], LedgerValidation)
    first, third = outcomes[0], outcomes[2]
    assert not isinstance(first, Exception)
    assert not isinstance(third, Exception)
    assert (first.number, third.number) == (drafts[0][0].number, drafts[2][0].number)
    again = case.ledger.create_invoices(drafts)  # the identical batch: a retry after a lost answer
    assert isinstance(again[1], LedgerValidation)
    assert [getattr(again[0], "id", None), getattr(again[2], "id", None)] == [first.id, third.id]
    for draft, _ in (drafts[0], drafts[2]):
        found = case.ledger.find_invoice(draft.number or "")
        assert found is not None
        assert found.id in {first.id, third.id}
    assert case.ledger.find_invoice(drafts[1][0].number or "") is None
    assert case.ledger.batch_size >= 1


def _payout(case: LedgerCase, credit: LedgerDocument, amount: Decimal, source_id: str) -> PaymentDraft:
    return PaymentDraft(
        source_id=source_id,
        customer_id="",
        invoice_id=credit.id,
        amount=amount,
        currency="USD",
        paid_on=date(2026, 11, 21),
        private_note=marker("stripe", f"{source_id}:payout"),
        account=case.refund_from,
    )


def _refund_draft(case: LedgerCase, customer: str, number: str) -> InvoiceDraft:
    """A refund as push builds one: a single untaxed line on the refund item, for the cash."""
    draft = case.draft(customer, number=number, amount="40.00", tax="0")
    (line, _) = draft.lines
    line = replace(line, quantity=1, tax_code=case.no_tax_code, tax=Decimal(0))
    return replace(
        draft,
        source_id=f"ch_contract:refunded:{number}",
        lines=(line,),
        tax=Decimal(0),
        total=Decimal("40.00"),
        due_on=None,
        private_note=marker("stripe", f"ch_contract:refunded:{number}"),
    )


def test_refund_document_is_created_found_again_and_paid_out(case: LedgerCase) -> None:
    """Given a refund draft, when created, then the refund document has the cash as its total, is
    found again by number with the marker, a retry with the same key names the same document, and
    the money has left: either as it is created (QBO RefundReceipt, balance 0) or by paying out the
    credit it books (the payout listed on it and marked), unless the ledger has no such call."""
    customer = _customer(case)
    draft = _refund_draft(case, customer, f"RF-{next(case.numbers):04d}")
    refund = case.ledger.create_refund(draft, case.refund_from, "refund-create")
    assert refund.total == Decimal("40.00")
    found = case.ledger.find_refund(draft.number or "")
    assert found is not None
    assert found.id == refund.id
    assert (found.private_note or "").strip() == draft.private_note
    assert case.ledger.create_refund(draft, case.refund_from, "refund-create").id == refund.id
    assert case.ledger.find_refund("NO-SUCH-REFUND") is None
    if refund.balance == Decimal(0):
        return
    assert refund.balance == Decimal("40.00")
    if not case.pays_out_credit:
        with pytest.raises(Unsupported, match="by hand"):
            case.ledger.pay_out_credit(_payout(case, refund, refund.balance, "re_ct1"), "refund-payout")
        return
    payout = case.ledger.pay_out_credit(_payout(case, refund, refund.balance, "re_ct1"), "refund-payout")
    after = case.ledger.get_refund(refund.id)
    assert after.balance == Decimal(0)
    assert payout.id in after.linked_payment_ids
    note = case.ledger.get_payment(payout.id).private_note or ""
    assert note.strip() == marker("stripe", "re_ct1:payout")


def test_credit_note_credit_is_paid_out_only_up_to_what_is_left(case: LedgerCase) -> None:
    """Given a credit note of 74.13, when 50.00 of it is paid out (a credit note's refund), then its
    unused credit is 24.13 and the payout is listed and marked; paying out more than is left is
    refused in the ledger's words. A ledger with no API for it says so (Unsupported)."""
    customer = _customer(case)
    credit = case.ledger.create_credit_note(
        case.draft(customer, amount="50.00", tax="4.13"), f"po-create-{case.name}"
    )
    if not case.pays_out_credit:
        with pytest.raises(Unsupported, match="by hand"):
            case.ledger.pay_out_credit(_payout(case, credit, Decimal("50.00"), "cn_ct1"), "po-1")
        return
    payout = case.ledger.pay_out_credit(_payout(case, credit, Decimal("50.00"), "cn_ct1"), "po-1")
    after = case.ledger.get_credit_note(credit.id)
    assert after.balance == Decimal("24.13")
    assert payout.id in after.linked_payment_ids
    note = case.ledger.get_payment(payout.id).private_note or ""
    assert note.strip() == marker("stripe", "cn_ct1:payout")
    with pytest.raises(LedgerValidation):
        case.ledger.pay_out_credit(_payout(case, credit, Decimal("30.00"), "cn_ct2"), "po-2")


def test_chart_names_what_mappings_point_at(case: LedgerCase) -> None:
    """Given the sandbox company's seeded chart, the port's chart lists its items, tax codes and (where
    the ledger has them) accounts under the references mapping rules use, with what ``mappings check``
    relies on: the mapped item and taxable code active, the revenue account usable for sales, the
    payment and refund accounts able to take money, an inactive item listed as inactive, and a
    reference the ledger refuses absent."""
    chart = case.ledger.chart()
    items = {entry.id: entry for entry in chart.items}
    taxes = {entry.id: entry for entry in chart.tax_codes}
    assert items[case.item_id].active
    assert taxes[case.tax_code].active
    assert taxes[case.tax_code].sales
    if case.no_tax_code:
        assert taxes[case.no_tax_code].active
    if case.inactive_item_id is not None:
        assert not items[case.inactive_item_id].active
    else:
        assert case.invalid_item_id not in items
    if chart.accounts is None:
        assert (case.account, case.payment_account, case.refund_from) == (None, None, None)
        return
    accounts = {entry.id: entry for entry in chart.accounts}
    if case.account is not None:
        assert accounts[case.account].active
        assert accounts[case.account].sales
    for money_account in (case.payment_account, case.refund_from):
        if money_account is not None:
            assert accounts[money_account].payments
            assert not accounts[money_account].sales


def test_chart_reads_every_page(case: LedgerCase) -> None:
    """Given a page size of one row, the chart is read page by page to the end and lists exactly what
    one large page lists (Xero does not page these lists, so there it is one request either way)."""
    whole = case.ledger.chart()
    assert len(whole.items) >= 2
    setattr(case.ledger, "chart_page_size", 1)  # noqa: B010 - not every adapter pages (Xero)
    assert case.ledger.chart() == whole


def _listed(case: LedgerCase, kind: str, since: datetime) -> list[LedgerDocument]:
    return list(case.ledger.list_documents(kind, since))  # type: ignore[arg-type]


def test_list_documents_pages_through_the_window_with_markers_and_voids(case: LedgerCase) -> None:
    """Given three invoices (one voided), a credit note and a payment written now, when the
    ledger is listed since a moment before them with a page of two, then every page is read:
    each document is listed once with its marker, total, tax and change time, the void is flagged,
    and a window that starts after them lists none of them."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    customer = _customer(case, "Listing Customer")
    invoices = [case.ledger.create_invoice(case.draft(customer), f"list-{n}") for n in range(3)]
    voided = case.ledger.void_invoice(invoices[2].id, invoices[2].version, "list-void")
    note_draft = replace(
        case.draft(customer), source_id="cn_listing", private_note=marker("stripe", "cn_listing")
    )
    note = case.ledger.create_credit_note(note_draft, "list-cn")
    payment = case.ledger.create_payment(
        case.payment(invoices[0].id, customer, Decimal("182.38"), "inpay_listing"), "list-pay"
    )
    case.ledger.list_page_size = 2  # type: ignore[attr-defined]

    listed = {d.id: d for d in _listed(case, "invoice", before)}
    assert {i.id for i in invoices} <= set(listed)
    assert len(listed) == len(_listed(case, "invoice", before))  # no document twice across pages
    first = listed[invoices[0].id]
    assert marked(first.private_note) is not None
    assert first.total == Decimal("182.38")
    assert first.updated_at is not None and first.updated_at >= before
    assert listed[voided.id].voided
    assert note.id in {d.id for d in _listed(case, "credit_note", before)}
    payments = {d.id: d for d in _listed(case, "payment", before)}
    assert payments[payment.id].private_note == marker("stripe", "inpay_listing")
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert not _listed(case, "invoice", later)


def test_list_documents_stops_at_the_window_end(case: LedgerCase) -> None:
    """Given an invoice written now, a window that ended before it does not list it."""
    start = datetime.now(UTC) - timedelta(days=2)
    case.ledger.create_invoice(case.draft(_customer(case, "Window Customer")), "window-end")
    assert not list(case.ledger.list_documents("invoice", start, start + timedelta(days=1)))


def test_list_documents_reports_throttling_as_the_port_error(case: LedgerCase) -> None:
    """Given a ledger that keeps answering 429 mid-listing, the listing raises LedgerThrottled
    (which reconciliation turns into an incomplete report), never a short, clean-looking list."""
    customer = _customer(case, "Throttle Customer")
    for n in range(3):
        case.ledger.create_invoice(case.draft(customer), f"thr-{n}")
    case.ledger.list_page_size = 1  # type: ignore[attr-defined]
    listing = case.ledger.list_documents("invoice", datetime.now(UTC) - timedelta(minutes=1))
    next(listing)
    case.inject_status(429, 10)
    with pytest.raises(LedgerThrottled):
        list(listing)
