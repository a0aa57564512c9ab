"""The Stripe client's payout reads (design two-way 3.5.2 steps 6 and 8), against
httpx.MockTransport: the payout, its balance transactions page by page with sources expanded, the
invoice a payment intent paid, and the same retry and error rules as every other read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from invoice_sync.errors import ParkError, TransientError
from invoice_sync.sources.stripe_api import (
    API_VERSION,
    StripeApiError,
    StripeNotFound,
    StripeRateLimited,
    domain_error,
)
from tests.unit.test_stripe_api_write import KEY, Recorder, api, stripe_error

PAYOUT = {"id": "po_1QxYz", "object": "payout", "amount": 20243, "status": "paid"}


def txn(txn_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": txn_id, "object": "balance_transaction", **fields}


def listing(*data: dict[str, Any], has_more: bool = False) -> httpx.Response:
    return httpx.Response(
        200, json={"object": "list", "data": list(data), "has_more": has_more, "url": "/v1/x"}
    )


def test_get_payout_reads_it_with_the_pinned_version() -> None:
    """Given a payout, get_payout GETs /v1/payouts/{id} with the Bearer key and the pinned API
    version, no Idempotency-Key, and returns the object."""
    recorder = Recorder(httpx.Response(200, json=PAYOUT))
    assert api(recorder).get_payout("po_1QxYz") == PAYOUT
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.path == "/v1/payouts/po_1QxYz"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Stripe-Version"] == API_VERSION
    assert "Idempotency-Key" not in request.headers


def test_get_payout_refuses_another_object() -> None:
    """Given Stripe answering something that is not a payout, get_payout raises StripeApiError."""
    with pytest.raises(StripeApiError, match="'transfer' for payout po_1"):
        api(Recorder(httpx.Response(200, json={"id": "tr_1", "object": "transfer"}))).get_payout("po_1")


def test_missing_payout_is_not_found_and_parks() -> None:
    """Given a 404 resource_missing, get_payout raises StripeNotFound, a ParkError in the domain."""
    recorder = Recorder(
        stripe_error(404, type="invalid_request_error", code="resource_missing", message="No such payout")
    )
    with pytest.raises(StripeNotFound) as missing:
        api(recorder).get_payout("po_nope")
    assert isinstance(domain_error(missing.value), ParkError)


def test_balance_transactions_follow_every_page_with_sources_expanded() -> None:
    """Given three pages of a payout's transactions, list_balance_transactions asks for
    payout=po_..., limit=100 and expand[]=data.source each time, follows starting_after with each
    page's last id, and returns every transaction in order."""
    recorder = Recorder(
        listing(txn("txn_a", type="charge"), txn("txn_b", type="charge"), has_more=True),
        listing(txn("txn_c", type="refund"), has_more=True),
        listing(txn("txn_p", type="payout")),
    )
    found = api(recorder).list_balance_transactions("po_1QxYz")
    assert [t["id"] for t in found] == ["txn_a", "txn_b", "txn_c", "txn_p"]
    for request in recorder.requests:
        assert request.url.path == "/v1/balance_transactions"
        assert request.url.params["payout"] == "po_1QxYz"
        assert request.url.params["limit"] == "100"
        assert request.url.params.get_list("expand[]") == ["data.source"]
    assert [r.url.params.get("starting_after") for r in recorder.requests] == [None, "txn_b", "txn_c"]


def test_pages_can_resume_after_a_transaction_already_read() -> None:
    """Given starting_after, balance_transaction_pages starts there (a later delivery carrying on
    from where a large payout stopped) and yields one page at a time."""
    recorder = Recorder(listing(txn("txn_c"), has_more=True), listing(txn("txn_d")))
    pages = list(api(recorder).balance_transaction_pages("po_1", starting_after="txn_b"))
    assert [[t["id"] for t in page] for page in pages] == [["txn_c"], ["txn_d"]]
    assert [r.url.params.get_list("starting_after") for r in recorder.requests] == [["txn_b"], ["txn_c"]]


def test_a_manual_payout_lists_nothing() -> None:
    """Given the empty list Stripe answers for a manual payout, list_balance_transactions is []
    after one request."""
    recorder = Recorder(listing())
    assert api(recorder).list_balance_transactions("po_manual") == []
    assert len(recorder.requests) == 1


def test_something_else_in_the_list_is_refused() -> None:
    """Given a page holding an object that is not a balance transaction, or an answer that is not
    a list, the read raises StripeApiError rather than hand on a wrong line."""
    with pytest.raises(StripeApiError, match="'charge' among payout po_1"):
        api(Recorder(listing({"id": "ch_1", "object": "charge"}))).list_balance_transactions("po_1")
    with pytest.raises(StripeApiError, match="other than a list"):
        api(Recorder(httpx.Response(200, json=PAYOUT))).list_balance_transactions("po_1")


def test_balance_transaction_reads_retry_a_429_then_give_up() -> None:
    """Given a 429 then the page, the read is retried after the back-off; given 429 on every try,
    it raises StripeRateLimited, a TransientError in the domain (the message comes back later)."""
    slept: list[float] = []
    recorder = Recorder(stripe_error(429, code="rate_limit", message="slow"), listing(txn("txn_a")))
    assert [t["id"] for t in api(recorder, slept).list_balance_transactions("po_1")] == ["txn_a"]
    assert slept == [0.5]
    recorder = Recorder(*[stripe_error(429, code="rate_limit", message="slow")] * 2)
    with pytest.raises(StripeRateLimited) as throttled:
        api(recorder, max_attempts=2).list_balance_transactions("po_1")
    assert isinstance(domain_error(throttled.value), TransientError)


def test_invoice_of_payment_intent_reads_its_invoice_payment() -> None:
    """Given the InvoicePayment of pi_1 naming in_A, invoice_of_payment_intent asks
    /v1/invoice_payments filtered by payment[type]=payment_intent and payment[payment_intent]=pi_1
    and returns in_A."""
    recorder = Recorder(listing({"id": "inpay_1", "object": "invoice_payment", "invoice": "in_A"}))
    assert api(recorder).invoice_of_payment_intent("pi_1") == "in_A"
    (request,) = recorder.requests
    assert request.url.path == "/v1/invoice_payments"
    assert request.url.params["payment[type]"] == "payment_intent"
    assert request.url.params["payment[payment_intent]"] == "pi_1"


def test_invoice_of_payment_intent_reads_an_expanded_invoice() -> None:
    """Given the InvoicePayment's invoice expanded into an object, its id is returned."""
    recorder = Recorder(listing({"id": "inpay_1", "invoice": {"id": "in_A", "object": "invoice"}}))
    assert api(recorder).invoice_of_payment_intent("pi_1") == "in_A"


def test_a_payment_intent_that_paid_no_invoice_is_none() -> None:
    """Given no InvoicePayment for the payment intent (a charge made outside Invoicing), None."""
    assert api(Recorder(listing())).invoice_of_payment_intent("pi_shop") is None


def test_a_payment_intent_on_two_invoices_is_refused() -> None:
    """Given InvoicePayments of one payment intent on two invoices, StripeApiError naming both:
    the deposit line is not guessed."""
    recorder = Recorder(listing({"id": "inpay_1", "invoice": "in_A"}, {"id": "inpay_2", "invoice": "in_B"}))
    with pytest.raises(StripeApiError, match="2 invoices: in_A, in_B"):
        api(recorder).invoice_of_payment_intent("pi_1")
