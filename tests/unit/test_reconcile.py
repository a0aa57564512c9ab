"""Reconciliation's three-way comparison on hand-made sides: every class of difference, what an
incomplete side may not claim, amounts per currency, the report forms and the absence check."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync.errors import NotFound
from invoice_sync.ledgers.port import LedgerDocument, LedgerPayment, PaymentApplication
from invoice_sync.models.mapping import Connection
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sync.reconcile import (
    Comparison,
    LedgerEntry,
    Links,
    OffStripe,
    Reconciler,
    SourceDoc,
    SourceRefund,
    absence,
    format_amount,
    usual_level,
)
from invoice_sync.sync.reconcile_report import report_csv, report_html, report_json
from invoice_sync.sync.reconcile_service import LedgerDeposits, days_to_run
from invoice_sync_ops.commands.reconcile import unsent_events

START = datetime(2026, 11, 2, tzinfo=UTC)
CREATED = int(START.timestamp()) + 3600


def inv(
    source_id: str, total: int = 10_000, *, status: str = "open", tax: int = 800, currency: str = "USD"
) -> SourceDoc:
    return SourceDoc("invoice", source_id, f"N-{source_id}", currency, total, tax, status, CREATED)


def led(
    source_id: str | None,
    total: int = 10_000,
    *,
    ledger_id: str | None = None,
    balance: int | None = None,
    voided: bool = False,
    tax: int | None = 800,
    currency: str = "USD",
    kind: str = "invoice",
) -> LedgerEntry:
    return LedgerEntry(
        kind,
        ledger_id or f"L-{source_id}",
        source_id,
        None,
        currency,
        total,
        tax,
        total if balance is None else balance,
        voided,
    )


def rec(
    source_id: str,
    *,
    status: SyncStatus = SyncStatus.SYNCED,
    ledger_id: str | None = None,
    kind: str = "invoice",
) -> SyncRecord:
    return SyncRecord(
        connection_id="c",
        kind=kind,
        source_id=source_id,
        status=status,
        ledger_id=ledger_id or f"L-{source_id}",
        created_at=START,
        currency="USD",
        source_total=10_000,
    )


def compare(
    sources: list[SourceDoc],
    records: list[SyncRecord],
    ledger: list[LedgerEntry],
    lookup: dict[str, SourceDoc | None] | None = None,
) -> Comparison:
    reconciler = Reconciler(
        START, (lambda _kind, sid: (lookup or {}).get(sid)) if lookup is not None else None
    )
    reconciler.add_sources(sources)
    reconciler.add_records(records)
    reconciler.add_ledger(ledger)
    return reconciler.compare()


def classes(comparison: Comparison) -> list[tuple[str, str]]:
    return [(d.cls.value, d.source_id) for d in comparison.differences]


def test_three_sides_that_agree_are_clean() -> None:
    """Given the same invoice and payment on all three sides, there is no difference and the run is clean."""
    paid = inv("in_1", status="paid")
    payment = SourceDoc("payment", "inpay_1", None, "USD", 10_000, 0, "paid", CREATED, invoice_id="in_1")
    result = compare(
        [paid, payment],
        [rec("in_1"), rec("inpay_1", kind="payment")],
        [led("in_1", balance=0), led("inpay_1", kind="payment", balance=0)],
    )
    assert result.differences == []
    assert result.status == "clean"
    assert result.synced == 2


@pytest.mark.parametrize(
    ("sources", "records", "ledger", "expected"),
    [
        ([inv("in_1")], [rec("in_1")], [], "missing_in_ledger"),
        ([inv("in_1")], [], [], "missing_in_ledger"),
        ([], [], [led("in_9")], "unknown_to_source"),
        ([inv("in_1")], [rec("in_1")], [led("in_1"), led("in_1", ledger_id="L-dup")], "duplicate_in_ledger"),
        ([inv("in_1")], [rec("in_1")], [led("in_1", 12_345, tax=800)], "amount_differs"),
        ([inv("in_1")], [rec("in_1")], [led("in_1", 10_001, tax=801)], "tax_or_rounding_differs"),
        ([inv("in_1")], [rec("in_1")], [led("in_1", 10_050, tax=850)], "tax_or_rounding_differs"),
        ([inv("in_1", status="paid")], [rec("in_1")], [led("in_1", balance=10_000)], "status_differs"),
        ([inv("in_1", status="void")], [rec("in_1")], [led("in_1")], "status_differs"),
        ([inv("in_1")], [rec("in_1")], [led("in_1", voided=True)], "status_differs"),
        ([inv("in_1")], [rec("in_1")], [led("in_1", currency="EUR")], "currency_differs"),
    ],
)
def test_each_class_of_difference_is_found(
    sources: list[SourceDoc], records: list[SyncRecord], ledger: list[LedgerEntry], expected: str
) -> None:
    """Given one thing wrong between the sides, exactly that class is reported for the document."""
    result = compare(sources, records, ledger, lookup={"in_9": None})
    assert [c for c, _ in classes(result)] == [expected]


def test_payments_applied_twice_or_not_at_all() -> None:
    """A source payment with no ledger payment is not applied; with two live ones it is applied twice."""
    pay1 = SourceDoc("payment", "inpay_1", None, "USD", 10_000, 0, "paid", CREATED, invoice_id="in_1")
    pay2 = SourceDoc("payment", "inpay_2", None, "USD", 10_000, 0, "paid", CREATED, invoice_id="in_2")
    result = compare(
        [inv("in_1", status="paid"), inv("in_2", status="paid"), pay1, pay2],
        [rec("in_1"), rec("in_2")],
        [
            led("in_1", balance=0),
            led("in_2", balance=0),
            led("inpay_2", kind="payment", ledger_id="P1"),
            led("inpay_2", kind="payment", ledger_id="P2"),
        ],
    )
    assert ("payment_not_applied", "inpay_1") in classes(result)
    assert ("payment_applied_twice", "inpay_2") in classes(result)


def test_a_void_that_lost_its_marker_is_found_through_the_record() -> None:
    """QBO replaces a voided invoice's note: the record's ledger id still joins it (no false missing)."""
    result = compare(
        [inv("in_1", status="void")],
        [rec("in_1", ledger_id="77")],
        [led(None, 0, ledger_id="77", voided=True)],
    )
    assert result.differences == []
    assert result.unmarked == 0


def test_drafts_and_older_documents_are_not_differences() -> None:
    """A skipped (draft) record and an older record touched in the window are no subject of the run."""
    older = rec("in_old").model_copy(update={"created_at": datetime(2026, 10, 1, tzinfo=UTC)})
    result = compare([inv("in_1")], [rec("in_1", status=SyncStatus.SKIPPED), older], [])
    assert result.differences == []


def test_an_incomplete_ledger_never_claims_missing_documents() -> None:
    """Given the ledger listing failed mid-way, nothing is reported missing from it and the run
    is incomplete, not clean."""

    def failing() -> Iterator[LedgerEntry]:
        yield led("in_1", 999)
        raise TimeoutError("ledger stopped answering")

    reconciler = Reconciler(START)
    reconciler.add_sources([inv("in_1"), inv("in_2")])
    reconciler.add_records([rec("in_1"), rec("in_2")])
    reconciler.add_ledger(failing())
    result = reconciler.compare()
    assert result.status == "incomplete"
    assert "ledger" in result.incomplete
    assert classes(result) == [("amount_differs", "in_1")]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(1230, "USD", "12.30"), (1230, "JPY", "1230"), (1230, "KWD", "1.230"), (-5, "EUR", "-0.05")],
)
def test_amounts_are_written_in_each_currencys_decimals(amount: int, currency: str, text: str) -> None:
    """Minor units are shown with the currency's own exponent, never through float."""
    assert format_amount(amount, currency) == text


def test_the_report_forms_carry_every_difference_with_links() -> None:
    """JSON has the stable keys, CSV one row per difference, HTML the summary, chart and table."""
    result = compare([inv("in_1"), inv("in_2")], [rec("in_1")], [led("in_1", 12_000)])
    report = report_json(
        result,
        connection_id="c",
        ledger="xero",
        start=date(2026, 11, 2),
        end=date(2026, 11, 2),
        generated_at=START,
        links=Links("xero", "t1"),
    )
    assert set(report) == {
        "schema",
        "connection_id",
        "ledger",
        "window",
        "generated_at",
        "status",
        "complete",
        "incomplete",
        "summary",
        "absence",
        "differences",
    }
    assert report["summary"]["differences"]["amount_differs"] == 1
    first = next(d for d in report["differences"] if d["class"] == "amount_differs")
    assert first["difference"] == "20.00"
    assert first["ledger_urls"] == ["https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=L-in_1"]
    rows = list(csv.DictReader(io.StringIO(report_csv(report).decode())))
    assert len(rows) == len(report["differences"]) == 2
    page = report_html(report, [{"date": "2026-11-01", "differences": {"amount_differs": 3}}]).decode()
    assert 'id="summary"' in page and 'id="differences"' in page and "<svg" in page and "<script" not in page


def test_usual_level_is_the_median_of_the_same_weekday() -> None:
    """Usual = median of the last runs on that weekday; a day far below it is an incident, a
    normal one or a short history is not."""
    history = [{"weekday": 0, "synced": n, "status": "clean"} for n in (100, 120, 90, 400)]
    history += [{"weekday": 1, "synced": 5, "status": "clean"}] * 5
    assert usual_level(history, 0) == 110
    assert usual_level(history[:2], 0) is None
    assert absence(3, usual_level(history, 0)) is not None
    assert absence(60, usual_level(history, 0)) is None
    assert absence(0, None) is None


# --- refunds: invoice-sync's refund records against the ledger, and against Stripe per charge ---

BEFORE = int(START.timestamp()) - 86_400  # a day before the window


def refund(
    refund_id: str, charge: str, amount: int, *, status: str = "succeeded", created: int = CREATED
) -> SourceRefund:
    return SourceRefund(refund_id, charge, "USD", amount, status, created)


def refund_rec(
    charge: str,
    total: int,
    *,
    booked: int | None = None,
    status: SyncStatus = SyncStatus.SYNCED,
    ledger_id: str | None = "R-1",
    created_at: datetime = START,
) -> SyncRecord:
    """A refund record as push writes it: ``ch_...:refunded:N`` for the charge's running total N,
    the cash it booked as ``ledger_total``."""
    return SyncRecord(
        connection_id="c",
        kind="refund",
        source_id=f"{charge}:refunded:{total}",
        status=status,
        ledger_id=ledger_id,
        created_at=created_at,
        currency="USD",
        source_total=total,
        ledger_total=total if booked is None and status is SyncStatus.SYNCED else booked,
    )


def compare_refunds(
    stripe: dict[str, list[SourceRefund]],
    records: list[SyncRecord],
    ledger: list[LedgerEntry],
    *,
    failing: bool = False,
) -> Comparison:
    """The three sides of refunds: Stripe's refunds per charge (those created in the window are
    listed), the records, the ledger. ``failing``: Stripe's per-charge read fails."""

    def charge_refunds(charge: str) -> list[SourceRefund]:
        if failing:
            raise ConnectionError("stripe down")
        return stripe.get(charge, [])

    reconciler = Reconciler(START, lambda _kind, _sid: None, charge_refunds)
    reconciler.add_sources([inv("in_1")])
    reconciler.add_refunds(
        r for refunds in stripe.values() for r in refunds if r.created >= START.timestamp()
    )
    reconciler.add_records([rec("in_1"), *records])
    reconciler.add_ledger([led("in_1"), *ledger])
    return reconciler.compare()


def test_refunds_that_agree_on_three_sides_are_clean() -> None:
    """Given a partial refund of 25.00 on ch_1 at Stripe, its record booked as 25.00 and one
    QBO RefundReceipt with its marker and amount; and a second charge refunded 10.00 that Xero
    books as a credit note (listed under credit notes) with its refund payout: nothing differs,
    each side counts its refunds, and the payouts (that refund's, and a credit note's refunded
    part paid out, ``cn_...:refund``) are counted apart, not judged as documents."""
    result = compare_refunds(
        {"ch_1": [refund("re_1", "ch_1", 2_500)], "ch_2": [refund("re_2", "ch_2", 1_000)]},
        [refund_rec("ch_1", 2_500), refund_rec("ch_2", 1_000, ledger_id="X-2")],
        [
            led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-1"),
            led("ch_2:refunded:1000", 1_000, kind="credit_note", ledger_id="X-2", balance=0),
            led("ch_2:refunded:1000:payout", 1_000, kind="payment", ledger_id="P-2"),
            led("cn_1:refund", 500, kind="payment", ledger_id="P-3"),  # a credit note's refund paid out
        ],
    )
    assert result.differences == []
    assert result.status == "clean"
    assert result.sides["source"].counts["refund"] == 2
    assert result.sides["records"].counts["refund"] == 2
    assert result.sides["ledger"].counts == {"invoice": 1, "refund": 2, "refund_payout": 2}


@pytest.mark.parametrize(
    ("ledger", "expected", "amounts"),
    [
        ([], ("missing_in_ledger", "ch_1:refunded:2500"), ("25.00", None)),
        (
            [
                led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-1"),
                led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-9"),
            ],
            ("duplicate_in_ledger", "ch_1:refunded:2500"),
            ("25.00", "50.00"),
        ),
        (
            [led("ch_1:refunded:2500", 3_000, kind="refund", ledger_id="R-1")],
            ("amount_differs", "ch_1:refunded:2500"),
            ("25.00", "30.00"),
        ),
        (
            [led("ch_1:refunded:2500", 0, kind="refund", ledger_id="R-1", voided=True)],
            ("status_differs", "ch_1:refunded:2500"),
            (None, None),
        ),
    ],
)
def test_a_booked_refund_has_exactly_one_ledger_document_of_its_amount(
    ledger: list[LedgerEntry], expected: tuple[str, str], amounts: tuple[str | None, str | None]
) -> None:
    """Given a refund record push booked (synced as R-1, 25.00) and Stripe agreeing, the ledger
    holding no refund document, two, one of another amount or a void one is each its class, with
    the booked and the ledger amounts."""
    result = compare_refunds({"ch_1": [refund("re_1", "ch_1", 2_500)]}, [refund_rec("ch_1", 2_500)], ledger)
    assert classes(result) == [expected]
    (found,) = result.differences
    assert found.kind == "refund"
    links = Links("quickbooks", "t1")
    row = found.as_json(links)
    assert (row["source_amount"], row["ledger_amount"]) == amounts
    assert all("refundreceipt" in url for url in row["ledger_urls"])


def test_a_ledger_refund_document_whose_record_is_unknown() -> None:
    """Given a refund document carrying invoice-sync's marker that no record names: unknown to the
    source when Stripe holds no refund of its charge before the window (every record of the
    charge would have been read), whether Stripe knows the charge's refunds or none at all; not
    claimed when the charge was refunded before the window (its record may be older)."""
    stray = led("ch_7:refunded:900", 900, kind="refund", ledger_id="R-7")
    for stripe in ({}, {"ch_7": [refund("re_7", "ch_7", 900)]}):
        result = compare_refunds(stripe, [], [stray])
        expected = [("unknown_to_source", "ch_7:refunded:900")]
        if stripe:
            expected.append(("missing_in_records", "ch_7"))  # nor is Stripe's refund recorded
        assert classes(result) == expected
    older = compare_refunds({"ch_7": [refund("re_7", "ch_7", 900, created=BEFORE)]}, [], [stray])
    assert older.differences == []


def test_refund_records_that_book_nothing_are_not_expected_in_the_ledger() -> None:
    """Given a refund Stripe made that a credit note gave back (record skipped, nothing booked), a
    payout the ledger cannot make (record parked) and a refund of a charge that paid no invoice
    invoice-sync knows (parked, no ledger id), with no refund document: nothing differs, and each
    record still accounts for its charge's refunded total."""
    result = compare_refunds(
        {
            "ch_1": [refund("re_1", "ch_1", 5_000)],
            "ch_2": [refund("re_2", "ch_2", 1_200)],
            "ch_3": [refund("re_3", "ch_3", 700)],
        },
        [
            refund_rec("ch_1", 5_000, status=SyncStatus.SKIPPED, ledger_id=None),
            refund_rec("ch_2", 1_200, status=SyncStatus.REJECTED, ledger_id="X-2"),
            refund_rec("ch_3", 700, status=SyncStatus.REJECTED, ledger_id=None),
        ],
        [],
    )
    assert result.differences == []


def test_stripes_refunded_total_per_charge_is_what_the_records_hold() -> None:
    """Given Stripe's refunds of a charge, the highest running total its records name must be
    their sum (failed and canceled refunds give nothing back): a second refund never recorded,
    a charge with no record at all, and a record of more than Stripe now counts (a refund that
    failed after it was booked) are each missing_in_records, with Stripe's total and the records'."""
    two = [refund("re_1", "ch_1", 2_500), refund("re_2", "ch_1", 1_000)]
    result = compare_refunds(
        {"ch_1": two},
        [refund_rec("ch_1", 2_500)],
        [led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-1")],
    )
    assert classes(result) == [("missing_in_records", "ch_1")]
    row = result.differences[0].as_json(Links("quickbooks", "t1"))
    assert (row["source_amount"], row["ledger_amount"], row["difference"]) == ("35.00", "25.00", "-10.00")

    none = compare_refunds({"ch_5": [refund("re_5", "ch_5", 400)]}, [], [])
    assert classes(none) == [("missing_in_records", "ch_5")]
    assert "no refund record" in none.differences[0].detail

    failed = [refund("re_1", "ch_1", 2_500, status="failed")]
    over = compare_refunds(
        {"ch_1": failed},
        [refund_rec("ch_1", 2_500)],
        [led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-1")],
    )
    assert classes(over) == [("missing_in_records", "ch_1")]
    assert over.differences[0].difference == 2_500

    both = [*two, refund("re_3", "ch_1", 600, status="canceled")]
    recorded = [refund_rec("ch_1", 2_500), refund_rec("ch_1", 3_500, booked=1_000, ledger_id="R-2")]
    ledger = [
        led("ch_1:refunded:2500", 2_500, kind="refund", ledger_id="R-1"),
        led("ch_1:refunded:3500", 1_000, kind="refund", ledger_id="R-2"),
    ]
    assert compare_refunds({"ch_1": both}, recorded, ledger).differences == []


def test_refunds_claim_nothing_an_incomplete_side_cannot_prove() -> None:
    """Given an incomplete ledger, no booked refund is claimed missing; given Stripe's per-charge
    read failing, the source side is incomplete and no charge is claimed unrecorded; a record
    older than the window whose document did not change in it is not claimed missing."""
    stripe = {"ch_1": [refund("re_1", "ch_1", 2_500)]}
    reconciler = Reconciler(START, None, lambda charge: stripe.get(charge, []))
    reconciler.add_refunds(stripe["ch_1"])
    reconciler.add_records([refund_rec("ch_1", 2_500)])
    reconciler.mark_incomplete("ledger", "503")
    assert reconciler.compare().differences == []

    down = compare_refunds(stripe, [], [], failing=True)
    assert down.differences == [] and down.status == "incomplete" and "source" in down.incomplete

    old = refund_rec("ch_1", 2_500, created_at=datetime(2026, 11, 1, tzinfo=UTC))
    assert compare_refunds(stripe, [old], []).differences == []


def test_a_scheduled_run_picks_up_the_days_left_incomplete() -> None:
    """Given a history where two days of the last week (and one older) were left incomplete and
    one was later completed, the scheduled run re-checks exactly the two still incomplete, oldest
    first, then its own day; its own day is skipped when it already has a complete verdict (a
    retry of the same night) unless asked again."""
    day = date(2026, 11, 20)
    history = [
        {"date": "2026-11-10", "status": "incomplete"},  # more than 7 days back: left alone
        {"date": "2026-11-14", "status": "incomplete"},
        {"date": "2026-11-15", "status": "incomplete"},
        {"date": "2026-11-15", "status": "clean"},  # completed by a later run
        {"date": "2026-11-16", "status": "differences"},
        {"date": "2026-11-19", "status": "incomplete"},
    ]
    assert days_to_run(history, day) == [date(2026, 11, 14), date(2026, 11, 19), day]
    done = [*history, {"date": "2026-11-20", "status": "differences"}]
    assert days_to_run(done, day) == [date(2026, 11, 14), date(2026, 11, 19)]
    assert days_to_run(done, day, again=True)[-1] == day
    assert days_to_run(done, day, lookback=0) == []


# --- payments back: the ledger's own payments against the records, and what Stripe holds ---------

SINCE = datetime(2026, 10, 1, tzinfo=UTC)


def ledger_payment(
    payment_id: str,
    *,
    applied: tuple[tuple[str, str], ...] = (("147", "40.00"),),
    note: str | None = None,
    voided: bool = False,
    updated_at: datetime = START,
) -> LedgerPayment:
    return LedgerPayment(
        id=payment_id,
        version="1",
        currency="USD",
        total=sum((Decimal(a) for _, a in applied), Decimal(0)),
        paid_on=START.date(),
        note=note,
        reference=None,
        method="Check",
        applications=tuple(PaymentApplication(invoice, Decimal(amount)) for invoice, amount in applied),
        voided=voided,
        updated_at=updated_at,
    )


def back_rec(
    payment_id: str,
    invoice: str = "147",
    *,
    target: str = "in_1",
    amount: int = 4000,
    status: SyncStatus = SyncStatus.SYNCED,
    alerted_reason: str | None = None,
) -> SyncRecord:
    """A ``ledger_payment`` record as payments back writes it (design two-way 3.8)."""
    return SyncRecord(
        connection_id="c",
        kind="ledger_payment",
        source_id=f"{payment_id}:{invoice}",
        direction="to_source",
        status=status,
        ledger_id=payment_id,
        ledger_number=invoice,
        ledger_total=amount,
        currency="USD",
        source_target=target,
        source_number=f"N-{target}",
        stripe_object="pr_1" if status is SyncStatus.SYNCED else None,
        alerted_reason=alerted_reason,
        created_at=START,
    )


class Back:
    """A ``PaymentsBackSide`` on dictionaries: what SyncState, the ledger and Stripe would answer."""

    def __init__(
        self,
        *,
        records: Sequence[SyncRecord] = (),
        pushed: set[str] | None = None,
        payments: Mapping[str, LedgerPayment | None] | None = None,
        off_stripe: Mapping[str, int | None] | None = None,
        since: datetime | None = SINCE,
        failing: str | None = None,
        settled_before: datetime | None = None,
    ) -> None:
        self._settled_before = settled_before
        self.records = list(records)
        self._pushed = pushed or set()
        self.payments = payments or {}
        self.off = off_stripe or {}
        self._since = since
        self.failing = failing
        self.asked: list[str] = []

    @property
    def since(self) -> datetime | None:
        return self._since

    @property
    def settled_before(self) -> datetime | None:
        return self._settled_before

    def _fail(self, what: str) -> None:
        self.asked.append(what)
        if self.failing == what:
            raise ConnectionError(f"{what} unavailable")

    def records_of_payment(self, ledger_payment_id: str) -> list[SyncRecord]:
        self._fail("records")
        return [r for r in self.records if r.ledger_id == ledger_payment_id]

    def pushed(self, ledger_payment_id: str) -> bool:
        self._fail("records")
        return ledger_payment_id in self._pushed

    def payment(self, ledger_payment_id: str) -> LedgerPayment | None:
        self._fail("ledger")
        return self.payments.get(ledger_payment_id)

    def invoice_records(self, invoice_id: str) -> list[SyncRecord]:
        self._fail("records")
        return [r for r in self.records if r.source_target == invoice_id]

    def from_ledger(self, payment_record_id: str) -> bool:
        self._fail("records")
        return any(r.stripe_object == payment_record_id for r in self.records)

    def off_stripe(self, invoice_id: str) -> OffStripe | None:
        self._fail("source")
        if invoice_id not in self.off:
            return None
        return OffStripe(invoice_id, f"N-{invoice_id}", "USD", self.off[invoice_id])


def compare_back(records: list[SyncRecord], ledger: list[LedgerEntry], back: Back | None) -> Comparison:
    reconciler = Reconciler(START, lambda _kind, _sid: None, None, back)
    reconciler.add_sources([inv("in_1", status="paid")])
    reconciler.add_records([rec("in_1"), *records])
    reconciler.add_ledger([led("in_1", balance=0), *ledger])
    return reconciler.compare()


def unmarked_payment(ledger_id: str, total: int = 4000, **kwargs: Any) -> LedgerEntry:
    entry = led(None, total, ledger_id=ledger_id, kind="payment", balance=0)
    return dataclasses.replace(entry, **{"updated_at": START, **kwargs})


def test_ledger_payments_with_their_records_are_compared_not_left_unmarked() -> None:
    """Given payments back on and two ledger payments a person recorded (no marker), one with its
    ledger_payment record in the window and one whose record is older (found by its key), when
    reconciled, then nothing differs, both count as checked on the to_source side (no longer
    unmarked_in_ledger), and Stripe's money paid outside Stripe (100.00) is what they sent."""
    old = back_rec("191", amount=6000).model_copy(update={"created_at": datetime(2026, 10, 20, tzinfo=UTC)})
    back = Back(records=[back_rec("190"), old], off_stripe={"in_1": 10_000})
    result = compare_back([back_rec("190")], [unmarked_payment("190"), unmarked_payment("191", 6000)], back)
    assert result.differences == []
    assert result.unmarked == 0
    assert (result.ledger_payments_checked, result.invoices_checked) == (2, 1)
    assert result.directions()["to_source"] == {
        "payments_back": True,
        "records": {"synced": 1},
        "differences": 0,
        "ledger_payments_checked": 2,
        "invoices_checked": 1,
    }
    assert result.directions()["to_ledger"]["records"] == {"synced": 1}


def test_a_ledger_payment_without_a_record_was_not_sent() -> None:
    """Given payments back on and a ledger payment recorded by a person, applying 40.00 to ledger
    invoice 147, that no ledger_payment record names, when reconciled, then it is
    ledger_payment_not_sent (direction to_source) with the ledger's amount and a link to the
    ledger payment; the webhook and the poll both missed it."""
    back = Back(payments={"190": ledger_payment("190")})
    result = compare_back([], [unmarked_payment("190")], back)
    assert classes(result) == [("ledger_payment_not_sent", "190")]
    (found,) = result.differences
    row = found.as_json(Links("quickbooks", "t1"))
    assert (row["direction"], row["kind"], row["ledger_amount"], row["source_amount"]) == (
        "to_source",
        "ledger_payment",
        "40.00",
        None,
    )
    assert row["ledger_urls"] == ["https://app.qbo.intuit.com/app/recvpayment?txnId=190"]
    assert "147" in row["detail"]
    assert result.counts()["ledger_payment_not_sent"] == 1
    assert result.directions()["to_source"]["differences"] == 1


SENDABLE = {"190": ledger_payment("190")}  # what the ledger answers, read again: a payment to send


@pytest.mark.parametrize(
    ("entry", "back", "why"),
    [
        (unmarked_payment("190", voided=True), Back(payments=SENDABLE), "void in the ledger"),
        (unmarked_payment("190", ours=True), Back(payments=SENDABLE), "its note starts with invoice-sync:"),
        (unmarked_payment("190"), Back(pushed={"190"}, payments=SENDABLE), "push booked it (its link)"),
        (
            unmarked_payment("190"),
            Back(payments=SENDABLE, settled_before=START),
            "changed so recently it may be on its way",
        ),
        (
            unmarked_payment("190", updated_at=datetime(2026, 9, 1, tzinfo=UTC)),
            Back(payments=SENDABLE),
            "older than payments back",
        ),
        (
            unmarked_payment("190"),
            Back(payments={"190": ledger_payment("190", applied=())}),
            "pays no invoice",
        ),
        (unmarked_payment("190"), Back(payments={"190": None}), "gone from the ledger when read again"),
        (
            unmarked_payment("190"),
            Back(payments={"190": ledger_payment("190", note="invoice-sync: stripe inpay_9")}),
            "ours when read again",
        ),
    ],
)
def test_ledger_payments_payments_back_rightly_leaves_alone_are_not_differences(
    entry: LedgerEntry, back: Back, why: str
) -> None:
    """Given an unmarked ledger payment with no record that payments back would rightly not send
    (void, invoice-sync's own, push's, older than payments back, paying no invoice, deleted since
    it was listed) or may still be on its way to it (changed within the last hour), when
    reconciled, then no difference is claimed (each case differs from a payment to send in that
    one respect: ``test_a_ledger_payment_without_a_record_was_not_sent``)."""
    assert compare_back([], [entry], back).differences == [], why


def test_payments_back_off_compares_nothing_new() -> None:
    """Given payments back off (no side), a ledger payment with no marker is only counted as
    unmarked_in_ledger, as before, and the to_source direction says it was not checked."""
    result = compare_back([], [unmarked_payment("190")], None)
    assert result.differences == []
    assert result.unmarked == 1
    assert result.directions()["to_source"]["payments_back"] is False


@pytest.mark.parametrize("failing", ["records", "ledger"])
def test_a_side_that_cannot_be_read_claims_no_payment_unsent(failing: str) -> None:
    """Given the records' lookup or the ledger's re-read failing, when reconciled, then no
    ledger_payment_not_sent is claimed and the run is incomplete on that side."""
    back = Back(payments={"190": ledger_payment("190")}, failing=failing)
    result = compare_back([], [unmarked_payment("190")], back)
    assert result.differences == []
    assert result.status == "incomplete" and failing in result.incomplete


def test_stripes_money_paid_outside_stripe_is_what_the_synced_records_sent() -> None:
    """Given in_1 with two synced ledger payments (40.00 and 60.00, the second from an earlier
    day, found through the invoice) and a parked one, and Stripe saying 40.00 was paid outside
    Stripe, when reconciled, then off_stripe_mismatch names in_1 with Stripe's 40.00, the
    records' 100.00, both ledger payments and the parked record's reason."""
    parked = back_rec("192", amount=500, status=SyncStatus.REJECTED, alerted_reason="paid on both sides")
    back = Back(records=[back_rec("190"), back_rec("191", amount=6000), parked], off_stripe={"in_1": 4000})
    result = compare_back([back_rec("190"), parked], [], back)
    assert classes(result) == [("off_stripe_mismatch", "in_1")]
    row = result.differences[0].as_json(Links("xero", "t1"))
    assert (row["source_amount"], row["ledger_amount"], row["difference"]) == ("40.00", "100.00", "60.00")
    assert row["ledger_ids"] == ["190", "191"]
    assert row["source_url"] == "https://dashboard.stripe.com/test/invoices/in_1"
    assert row["number"] == "N-in_1"
    assert "192 rejected (paid on both sides)" in row["detail"]
    assert row["direction"] == "to_source"


def test_an_invoice_whose_record_holds_ledger_payments_is_checked_too() -> None:
    """Given no ledger_payment record in the window but in_1's invoice record of the window
    holding a ledger payment (ledger_paid), and Stripe holding nothing paid outside Stripe, when
    reconciled, then in_1 is checked and its synced 40.00 is an off_stripe_mismatch; and Stripe
    answering without amount_paid_off_stripe makes the source side incomplete, never a claim."""
    invoice = rec("in_1").model_copy(
        update={"ledger_paid": {"ledger_payment#190:147": {"amount": 4000, "state": "done", "at": START}}}
    )
    reconciler = Reconciler(START, None, None, Back(records=[back_rec("190")], off_stripe={"in_1": 0}))
    reconciler.add_records([invoice])
    result = reconciler.compare()
    assert classes(result) == [("off_stripe_mismatch", "in_1")]
    assert result.invoices_checked == 1

    unknown = Reconciler(START, None, None, Back(records=[back_rec("190")], off_stripe={"in_1": None}))
    unknown.add_records([invoice])
    found = unknown.compare()
    assert found.differences == [] and "source" in found.incomplete


def test_the_report_shows_both_directions() -> None:
    """Given one difference each way (an invoice missing in the ledger, a ledger payment never
    sent), when the report is built, then the JSON summary counts both directions, every
    difference and CSV row says its direction, and the HTML has the directions table."""
    back = Back(payments={"190": ledger_payment("190")})
    reconciler = Reconciler(START, None, None, back)
    reconciler.add_sources([inv("in_2")])
    reconciler.add_records([rec("in_2", status=SyncStatus.NEEDS_MAPPING)])
    reconciler.add_ledger([unmarked_payment("190")])
    result = reconciler.compare()
    report = report_json(
        result,
        connection_id="c",
        ledger="quickbooks",
        start=date(2026, 11, 2),
        end=date(2026, 11, 2),
        generated_at=START,
        links=Links("quickbooks", "t1"),
    )
    directions = report["summary"]["directions"]
    assert (directions["to_ledger"]["differences"], directions["to_source"]["differences"]) == (1, 1)
    assert directions["to_ledger"]["records"] == {"needs_mapping": 1}
    assert sorted((d["class"], d["direction"]) for d in report["differences"]) == [
        ("ledger_payment_not_sent", "to_source"),
        ("missing_in_ledger", "to_ledger"),
    ]
    rows = list(csv.DictReader(io.StringIO(report_csv(report).decode())))
    assert sorted(r["direction"] for r in rows) == ["to_ledger", "to_source"]
    page = report_html(report, []).decode()
    assert 'id="directions"' in page and "the ledger to Stripe" in page


def _stripe_payment(source_id: str, total: int, **fields: Any) -> SourceDoc:
    return SourceDoc(
        "payment", source_id, None, "USD", total, 0, "paid", CREATED, invoice_id="in_1", **fields
    )


@pytest.mark.parametrize(
    ("payment", "records", "back", "ledger", "expected"),
    [
        # Stripe's paid total so far, all of it the ledger's 40.00 payments back sent: not push's.
        (
            _stripe_payment("in_1:paid:4000", 4000, cumulative=True),
            [],
            Back(records=[back_rec("190")]),
            [],
            [],
        ),
        # 10.00 more than payments back sent: push's to book, and not in the ledger.
        (
            _stripe_payment("in_1:paid:5000", 5000, cumulative=True),
            [],
            Back(records=[back_rec("190")]),
            [],
            [("payment_not_applied", "in_1:paid:5000")],
        ),
        # A card payment of 10.00 after the ledger's 40.00: push booked the 10.00 under the
        # total's marker, which is all it had to book.
        (
            _stripe_payment("in_1:paid:5000", 5000, cumulative=True),
            [],
            Back(records=[back_rec("190")]),
            [led("in_1:paid:5000", 1000, kind="payment", ledger_id="P-5")],
            [],
        ),
        # ... and 50.00 booked for it is push's amount_differs, against the 10.00 it had to book.
        (
            _stripe_payment("in_1:paid:5000", 5000, cumulative=True),
            [],
            Back(records=[back_rec("190")]),
            [led("in_1:paid:5000", 5000, kind="payment", ledger_id="P-5")],
            [("amount_differs", "in_1:paid:5000")],
        ),
        # The payment record payments back attached (the window's record names it).
        (_stripe_payment("inpay_7", 4000, payment_record="pr_1"), [back_rec("190")], Back(), [], []),
        # A payment record someone else reported: push's to book.
        (
            _stripe_payment("inpay_8", 4000, payment_record="pr_other"),
            [back_rec("190")],
            Back(),
            [],
            [("payment_not_applied", "inpay_8")],
        ),
        # Push saw it and found nothing to book (its record skipped: "recorded from the ledger").
        (
            _stripe_payment("inpay_9", 4000),
            [rec("inpay_9", kind="payment", status=SyncStatus.SKIPPED)],
            None,
            [],
            [],
        ),
        # Payments back off: Stripe's paid total is push's, as before.
        (
            _stripe_payment("in_1:paid:4000", 4000, cumulative=True),
            [],
            None,
            [],
            [("payment_not_applied", "in_1:paid:4000")],
        ),
    ],
)
def test_stripe_payments_that_are_the_ledgers_own_money_are_not_expected_in_the_ledger(
    payment: SourceDoc,
    records: list[SyncRecord],
    back: Back | None,
    ledger: list[LedgerEntry],
    expected: list[tuple[str, str]],
) -> None:
    """Given a Stripe payment on in_1, when reconciled, then it is payment_not_applied only when it
    is push's to book: not when it is the money payments back sent (Stripe's paid total within
    what the synced ledger_payment records sent, or the payment record payments back attached),
    nor when push's record says there was nothing to book; and a paid total's ledger payment is
    compared with that total less what payments back sent."""
    reconciler = Reconciler(START, lambda _kind, _sid: None, None, back)
    reconciler.add_sources([inv("in_1"), payment])
    reconciler.add_records([rec("in_1"), *records])
    reconciler.add_ledger([led("in_1"), *ledger])
    found = [c for c in classes(reconciler.compare()) if c[0] != "off_stripe_mismatch"]
    assert found == expected


def test_repair_sends_one_ledger_event_per_unsent_ledger_payment() -> None:
    """Given a report with two ledger_payment_not_sent rows for one payment and one for another,
    and a missing invoice, when --repair plans what payments back must read, then it is one
    LedgerEventMessage per ledger payment (kind payment, operation redrive, the connection's
    ledger), as ``invoice-sync redrive --kind ledger_payment`` sends, and none for the invoice."""
    connection = Connection(connection_id="acme", ledger="xero", tenant_id="t1", payments_back=True)
    differences: list[dict[str, object]] = [
        {"class": "ledger_payment_not_sent", "source_id": "pmt_1"},
        {"class": "ledger_payment_not_sent", "source_id": "pmt_1"},
        {"class": "ledger_payment_not_sent", "source_id": "pmt_2"},
        {"class": "missing_in_ledger", "source_id": "in_1"},
        {"class": "off_stripe_mismatch", "source_id": "in_2"},
    ]
    events = unsent_events(connection, differences)
    assert [(e.connection_id, e.ledger, e.kind, e.operation, e.object_id) for e in events] == [
        ("acme", "xero", "payment", "redrive", "pmt_1"),
        ("acme", "xero", "payment", "redrive", "pmt_2"),
    ]


def test_an_invoice_sharing_the_payments_ledger_id_does_not_hide_it() -> None:
    """Given a FreshBooks-like ledger where invoice 190 and payment 190 both exist (ids numbered
    apart per kind), the invoice record naming 190 and no ledger_payment record for payment 190,
    when reconciled, then the payment is still ledger_payment_not_sent, and it is not taken for
    the invoice's own document with its marker gone (no duplicate_in_ledger)."""
    back = Back(payments={"190": ledger_payment("190")})
    reconciler = Reconciler(START, lambda _kind, _sid: None, None, back)
    reconciler.add_sources([inv("in_1")])
    reconciler.add_records([rec("in_1", ledger_id="190")])
    reconciler.add_ledger([led("in_1", ledger_id="190"), unmarked_payment("190")])
    assert classes(reconciler.compare()) == [("ledger_payment_not_sent", "190")]


# --- payouts as bank deposits: each payout record's deposit in the ledger (issue 7) ----------------


def payout_rec(
    source_id: str = "po_1",
    *,
    status: SyncStatus = SyncStatus.SYNCED,
    amount: int = 146_622,
    ledger_id: str | None = "4021",
    alerted_reason: str | None = None,
    last_error: str | None = None,
) -> SyncRecord:
    """A ``payout`` record as push's PayoutService leaves it: the payout's amount (the bank line)
    in ``source_total``, the deposit's id and total in ``ledger_id`` / ``ledger_total``."""
    return SyncRecord(
        connection_id="c",
        kind="payout",
        source_id=source_id,
        status=status,
        source_number="PO-" + source_id.removeprefix("po_"),
        currency="USD",
        source_total=amount,
        ledger_id=ledger_id if status is SyncStatus.SYNCED else None,
        ledger_total=amount if status is SyncStatus.SYNCED else None,
        alerted_reason=alerted_reason,
        last_error=last_error,
        created_at=START,
    )


def deposit(ledger_id: str = "4021", total: int = 146_622, **kwargs: Any) -> LedgerEntry:
    return led("po_1", total, ledger_id=ledger_id, kind="payout", tax=None, **kwargs)


class Deposits:
    """The ledger's deposits by id, as ``get_deposit`` answers (None: ``NotFound``); records
    which it was asked for."""

    def __init__(
        self, found: Mapping[str, LedgerEntry], support: str = "deposit", *, fail: bool = False
    ) -> None:
        self.found = dict(found)
        self._support = support
        self.fail = fail
        self.read: list[str] = []

    @property
    def support(self) -> str:
        return self._support

    def deposit(self, ledger_id: str) -> LedgerEntry | None:
        self.read.append(ledger_id)
        if self.fail:
            raise ConnectionError("ledger 503")
        return self.found.get(ledger_id)


def compare_payouts(records: list[SyncRecord], deposits: Deposits) -> Comparison:
    reconciler = Reconciler(START, None, None, None, deposits=deposits)
    reconciler.add_records(records)
    reconciler.add_ledger([])
    return reconciler.compare()


def test_a_payouts_deposit_of_the_booked_total_is_clean() -> None:
    """Given a payout push booked as QBO Deposit 4021 of 1,466.22 and the ledger holding that
    deposit at that total, when compared, then nothing differs, the deposit was read once, and
    the payout is counted on the records' and the ledger's side and among the to-ledger records."""
    deposits = Deposits({"4021": deposit()})
    result = compare_payouts([payout_rec()], deposits)
    assert result.differences == []
    assert result.status == "clean"
    assert deposits.read == ["4021"]
    assert (result.deposits_checked, result.manual_deposit) == (1, 0)
    assert result.sides["records"].counts["payout"] == 1
    assert result.sides["ledger"].counts["payout"] == 1
    assert result.to_ledger == {"synced": 1}


@pytest.mark.parametrize(
    ("found", "record", "expected", "amounts"),
    [
        ({}, payout_rec(), "deposit_missing", (146_622, None)),
        ({"4021": deposit(voided=True)}, payout_rec(), "deposit_missing", (146_622, 146_622)),
        ({"4021": deposit(total=141_622)}, payout_rec(), "deposit_total_differs", (146_622, 141_622)),
        ({"4021": deposit(currency="EUR")}, payout_rec(), "deposit_total_differs", (146_622, 146_622)),
        ({}, payout_rec(ledger_id=None), "deposit_missing", (146_622, None)),
    ],
    ids=["gone", "void", "total edited", "currency", "no deposit id"],
)
def test_a_payouts_deposit_gone_or_changed_is_a_difference_to_the_ledger(
    found: dict[str, LedgerEntry], record: SyncRecord, expected: str, amounts: tuple[int, int | None]
) -> None:
    """Given a synced payout whose deposit the ledger no longer holds (NotFound), holds void, holds
    at another total or currency, or whose record names no deposit, when compared, then exactly
    that payout is reported, in the class named, direction to_ledger, with the booked total as
    the source amount and the deposit's as the ledger amount."""
    result = compare_payouts([record], Deposits(found))
    (difference,) = result.differences
    assert (difference.cls.value, difference.kind, difference.source_id) == (expected, "payout", "po_1")
    assert difference.direction == "to_ledger"
    assert difference.number == "PO-1"
    assert (difference.source_amount, difference.ledger_amount) == amounts


def test_parked_payouts_are_listed_and_skipped_ones_are_not() -> None:
    """Given a parked payout (does not add up), one pending (its create in flight or stuck) and
    three skipped (not paid yet, manual, payout deposits off), when compared, then the parked and
    the pending one are deposit_missing with their reason (as a parked invoice is
    missing_in_ledger), the skipped ones are nothing, and no deposit is read for any."""
    deposits = Deposits({})
    records = [
        payout_rec(
            "po_2",
            status=SyncStatus.REJECTED,
            alerted_reason="payout does not add up",
            last_error="payout 1,466.22 USD, its transactions add up to 1,400.00 USD",
        ),
        payout_rec("po_3", status=SyncStatus.PENDING),
        payout_rec("po_4", status=SyncStatus.SKIPPED, last_error="not paid yet (in_transit)"),
        payout_rec("po_5", status=SyncStatus.SKIPPED, last_error="manual payout: Stripe does not say"),
        payout_rec("po_6", status=SyncStatus.SKIPPED, last_error="payout deposits not enabled"),
    ]
    result = compare_payouts(records, deposits)
    assert classes(result) == [("deposit_missing", "po_2"), ("deposit_missing", "po_3")]
    assert "record rejected (payout does not add up)" in result.differences[0].detail
    assert result.differences[0].source_amount == 146_622
    assert deposits.read == []
    assert result.to_ledger == {"rejected": 1, "pending": 1, "skipped": 3}


def test_freshbooks_payouts_are_manual_deposits_never_differences() -> None:
    """Given a FreshBooks connection (deposit_support fees_only: the fees as an expense, the rest
    on a deposit slip) with two synced payouts, one whose fee expense is gone, when compared,
    then neither is a difference, both are counted as manual_deposit, and no expense is read
    (design two-way 3.9 step 3)."""
    deposits = Deposits({}, support="fees_only")
    records = [
        payout_rec("po_1", ledger_id="88", last_error="deposit slip only: FreshBooks has no deposit API"),
        payout_rec("po_2", ledger_id="89", last_error="deposit slip only: FreshBooks has no deposit API"),
    ]
    result = compare_payouts(records, deposits)
    assert result.differences == []
    assert (result.manual_deposit, result.deposits_checked) == (2, 0)
    assert deposits.read == []


def test_a_deposit_that_cannot_be_read_claims_nothing() -> None:
    """Given a ledger that fails when a payout's deposit is read, when compared, then the ledger
    side is incomplete and no payout is claimed missing or different."""
    result = compare_payouts([payout_rec(), payout_rec("po_2")], Deposits({}, fail=True))
    assert result.differences == []
    assert result.status == "incomplete"
    assert "ledger 503" in result.incomplete["ledger"]


def test_the_report_counts_payouts_to_the_ledger_and_manual_deposits() -> None:
    """Given a payout whose deposit total was edited in QBO, when the report is built, then the
    difference is in the JSON and the CSV with direction to_ledger, the summary counts it among
    the to-ledger differences with the deposits read and manual_deposit, the links open the
    payout in Stripe and the deposit in QBO, and the HTML says how many deposits were read."""
    reconciler = Reconciler(START, None, None, None, deposits=Deposits({"4021": deposit(total=141_622)}))
    reconciler.add_records([payout_rec(), rec("in_1")])
    reconciler.add_sources([inv("in_1")])
    reconciler.add_ledger([led("in_1")])
    report = report_json(
        reconciler.compare(),
        connection_id="c",
        ledger="quickbooks",
        start=date(2026, 11, 2),
        end=date(2026, 11, 2),
        generated_at=START,
        links=Links("quickbooks", "t1"),
    )
    summary = report["summary"]
    assert summary["differences"]["deposit_total_differs"] == 1
    assert summary["differences"]["deposit_missing"] == 0
    assert summary["manual_deposit"] == 0
    to_ledger = summary["directions"]["to_ledger"]
    assert (to_ledger["differences"], to_ledger["deposits_checked"], to_ledger["records"]) == (
        1,
        1,
        {"synced": 2},
    )
    (difference,) = report["differences"]
    assert difference["source_url"] == "https://dashboard.stripe.com/test/payouts/po_1"
    assert difference["ledger_urls"] == ["https://app.qbo.intuit.com/app/deposit?txnId=4021"]
    assert (difference["source_amount"], difference["ledger_amount"], difference["difference"]) == (
        "1466.22",
        "1416.22",
        "-50.00",
    )
    (row,) = csv.DictReader(io.StringIO(report_csv(report).decode()))
    assert (row["class"], row["kind"], row["direction"]) == ("deposit_total_differs", "payout", "to_ledger")
    page = report_html(report, [{"date": "2026-11-02", "differences": {"deposit_total_differs": 1}}]).decode()
    assert "1 payout deposits read from the ledger" in page
    assert "deposit_total_differs" in page


class _DepositLedger:
    """The ledger port's two deposit members, as an adapter answers them."""

    deposit_support = "deposit"

    def get_deposit(self, ledger_id: str) -> LedgerDocument:
        if ledger_id != "4021":
            raise NotFound(f"Deposit {ledger_id} not found", code="610")
        return LedgerDocument("4021", "0", "PO-1", Decimal("1466.22"), Decimal("0"), "USD")


def test_the_ledgers_deposits_are_read_by_id_and_notfound_is_none() -> None:
    """Given the ledger's get_deposit, when the service's deposit side reads Deposit 4021 and one
    the ledger does not know, then the first is the deposit in minor units, the second None (the
    check's deposit_missing), and the support is the adapter's."""
    side = LedgerDeposits(_DepositLedger())  # type: ignore[arg-type]
    found = side.deposit("4021")
    assert found is not None
    assert (found.kind, found.ledger_id, found.total, found.currency) == ("payout", "4021", 146_622, "USD")
    assert side.deposit("9999") is None
    assert side.support == "deposit"
