"""Invoice.content_hash: what shapes the ledger invoice, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from invoice_sync.models.documents import Customer, Invoice, InvoiceStatus
from invoice_sync.sources.stripe import parse_event

RawEvent = Callable[[str], bytes]


def invoice_of(raw_event: RawEvent, prefix: str) -> Invoice:
    event = parse_event(raw_event(prefix))
    assert event is not None
    return event.invoice


def test_open_and_paid_snapshots_hash_the_same(raw_event: RawEvent) -> None:
    """Given a4 (open, edited) and a2 (the same invoice paid, same content), content_hash is equal:
    payments, amount_paid and status are not part of the ledger invoice."""
    opened = invoice_of(raw_event, "a4")
    paid = invoice_of(raw_event, "a2")
    assert opened.status is InvoiceStatus.OPEN
    assert paid.status is InvoiceStatus.PAID
    assert paid.payments
    assert opened.content_hash() == paid.content_hash()


def test_open_and_paid_snapshots_of_the_same_content_hash_the_same(raw_event: RawEvent) -> None:
    """Given a1 (open) turned into its paid form by changing only status and payments, the hash is
    unchanged."""
    opened = invoice_of(raw_event, "a1")
    paid = invoice_of(raw_event, "a2")
    as_paid = opened.model_copy(
        update={"status": InvoiceStatus.PAID, "payments": paid.payments, "amount_paid": paid.amount_paid}
    )
    assert as_paid.content_hash() == opened.content_hash()


def test_edited_description_changes_the_hash(raw_event: RawEvent) -> None:
    """Given a1 and a4 (description edited; it becomes the ledger's customer memo), the hashes differ,
    so the ledger invoice is rewritten. (a1 vs a2 differ for the same reason.)"""
    assert invoice_of(raw_event, "a1").content_hash() != invoice_of(raw_event, "a4").content_hash()
    assert invoice_of(raw_event, "a1").content_hash() != invoice_of(raw_event, "a2").content_hash()


def test_changed_line_amount_changes_the_hash(raw_event: RawEvent) -> None:
    """Given the same invoice with one line amount changed by one cent, the hash differs."""
    invoice = invoice_of(raw_event, "a1")
    first = invoice.lines[0]
    changed = invoice.model_copy(
        update={"lines": (first.model_copy(update={"amount": first.amount + 1}), *invoice.lines[1:])}
    )
    assert changed.content_hash() != invoice.content_hash()


def test_void_changes_the_hash(raw_event: RawEvent) -> None:
    """Given the same invoice voided, the hash differs (a void must reach the ledger)."""
    invoice = invoice_of(raw_event, "a1")
    voided = invoice.model_copy(update={"status": InvoiceStatus.VOID})
    assert voided.content_hash() != invoice.content_hash()


def test_hash_is_deterministic_and_hex(raw_event: RawEvent) -> None:
    """Given two parses of the same bytes, the hash is identical and a sha256 hex digest."""
    first = invoice_of(raw_event, "b1").content_hash()
    assert first == invoice_of(raw_event, "b1").content_hash()
    assert len(first) == 64
    int(first, 16)


@pytest.mark.parametrize(
    ("name", "email", "expected"),
    [("Acme Corp", "a@x.test", "Acme Corp"), (None, "a@x.test", "a@x.test"), (None, None, "cus_1")],
)
def test_customer_display_name_falls_back(name: str | None, email: str | None, expected: str) -> None:
    """Given a customer with or without name/e-mail, display_name falls back name -> e-mail -> id."""
    assert Customer(source_id="cus_1", name=name, email=email).display_name == expected


def test_customer_display_name_is_never_empty() -> None:
    """Given a customer whose name is only spaces, display_name still falls back (never empty), as its
    docstring promises; push uses it as the QBO DisplayName."""
    assert Customer(source_id="cus_1", name="   ", email="a@x.test").display_name == "a@x.test"
