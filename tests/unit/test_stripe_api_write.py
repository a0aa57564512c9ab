"""The Stripe client's write side (issue 7, payments back), against httpx.MockTransport: Stripe's
form encoding, the Idempotency-Key on every attempt, which failures are retried in place and
which are not, the error each status becomes, and the secret key in no exception."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr

from invoice_sync.errors import ConnectionBroken, ParkError, TransientError
from invoice_sync.sources.stripe_api import (
    API_VERSION,
    PAYMENT_EXPANDS,
    StripeApi,
    StripeApiError,
    StripeAuthError,
    StripeConflict,
    StripeIdempotencyError,
    StripeNotFound,
    StripeRateLimited,
    StripeUnavailable,
    domain_error,
    form_encode,
)

KEY = "sk_test_unit_secret_key_4242"
IDEM = "0d6f7a52-6f1e-5f55-9a4c-2f1d1b7f0c11"
INVOICE = {"id": "in_1", "object": "invoice", "status": "paid", "amount_paid": 10825, "amount_remaining": 0}
RECORD = {"id": "pr_1", "object": "payment_record", "amount_requested": {"currency": "usd", "value": 5000}}


def stripe_error(status: int, *, headers: dict[str, str] | None = None, **error: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers=headers)


class Recorder:
    """A MockTransport handler answering from a script, one response per request, keeping each request."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    def form(self, index: int = 0) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].content.decode(), keep_blank_values=True)


def api(recorder: Recorder, slept: list[float] | None = None, **options: Any) -> StripeApi:
    waits = slept if slept is not None else []
    return StripeApi(
        "https://api.stripe.test",
        SecretStr(KEY),
        http=httpx.Client(transport=httpx.MockTransport(recorder)),
        sleep=waits.append,
        **options,
    )


def test_form_encoding_is_stripes_nested_brackets() -> None:
    """Given nested params, a list of scalars and a boolean, when encoded, then they become
    a[b][c]=v, expand[]=x and true, None is left out, and a float (money) is refused."""
    assert form_encode(
        {
            "amount_requested": {"currency": "usd", "value": 5000},
            "payment_method_details": {"type": "custom", "custom": {"display_name": "Cheque", "type": None}},
            "metadata": {"k": "v"},
            "expand": ["payments", "amount_paid_off_stripe"],
            "paid_out_of_band": True,
            "description": None,
        }
    ) == [
        ("amount_requested[currency]", "usd"),
        ("amount_requested[value]", "5000"),
        ("payment_method_details[type]", "custom"),
        ("payment_method_details[custom][display_name]", "Cheque"),
        ("metadata[k]", "v"),
        ("expand[]", "payments"),
        ("expand[]", "amount_paid_off_stripe"),
        ("paid_out_of_band", "true"),
    ]
    assert form_encode({"items": [{"a": 1}]}) == [("items[0][a]", "1")]
    with pytest.raises(TypeError, match="float"):
        form_encode({"amount": 50.0})


def test_pay_out_of_band_posts_the_form_with_key_version_and_bearer() -> None:
    """Given an open invoice, when paid out of band, then one POST to /v1/invoices/in_1/pay carries
    paid_out_of_band=true form-encoded, the Idempotency-Key, the pinned Stripe-Version and the
    Bearer key, and the invoice Stripe answers comes back."""
    recorder = Recorder(httpx.Response(200, json=INVOICE))
    assert api(recorder).pay_out_of_band("in_1", IDEM) == INVOICE
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", "/v1/invoices/in_1/pay")
    assert recorder.form() == [("paid_out_of_band", "true")]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Idempotency-Key"] == IDEM
    assert request.headers["Stripe-Version"] == API_VERSION
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_report_payment_sends_the_design_parameters() -> None:
    """Given a partial payment of 50.00 USD recorded in QuickBooks, when reported, then the form
    holds the parameters of design 3.5.1 step 7.1 under stripe-python's names (lowercase currency,
    minor units, guaranteed outcome at the initiation time, custom method and processor reference,
    customer, description, metadata), and the PaymentRecord comes back."""
    recorder = Recorder(httpx.Response(200, json=RECORD))
    found = api(recorder).report_payment(
        amount=5000,
        currency="USD",
        initiated_at=1_764_676_800,
        display_name="Recorded in QuickBooks",
        payment_reference="qbo:190",
        customer="cus_1",
        description="Cheque 1042 recorded in QuickBooks (payment 190)",
        metadata={"invoice_sync_connection": "acme-qbo", "invoice_sync_record": "ledger_payment#190:147"},
        idempotency_key=f"{IDEM}:report",
    )
    assert found == RECORD
    assert recorder.requests[0].url.path == "/v1/payment_records/report_payment"
    assert recorder.requests[0].headers["Idempotency-Key"] == f"{IDEM}:report"
    assert dict(recorder.form()) == {
        "amount_requested[currency]": "usd",
        "amount_requested[value]": "5000",
        "initiated_at": "1764676800",
        "outcome": "guaranteed",
        "guaranteed[guaranteed_at]": "1764676800",
        "payment_method_details[type]": "custom",
        "payment_method_details[custom][display_name]": "Recorded in QuickBooks",
        "processor_details[type]": "custom",
        "processor_details[custom][payment_reference]": "qbo:190",
        "customer_details[customer]": "cus_1",
        "description": "Cheque 1042 recorded in QuickBooks (payment 190)",
        "metadata[invoice_sync_connection]": "acme-qbo",
        "metadata[invoice_sync_record]": "ledger_payment#190:147",
    }


def test_report_payment_refuses_amounts_that_are_not_positive_minor_units() -> None:
    """Given zero, a negative amount or a bool, when reported, then nothing is sent."""
    recorder = Recorder()
    for amount in (0, -5, True):
        with pytest.raises(ValueError, match="minor units"):
            api(recorder).report_payment(
                amount=amount, currency="usd", initiated_at=1, display_name="x", idempotency_key=IDEM
            )
    assert recorder.requests == []


def test_attach_payment_posts_the_record_id() -> None:
    """Given a reported payment, when attached, then the invoice's attach_payment gets
    payment_record=pr_1 with its own key, and the invoice comes back."""
    recorder = Recorder(httpx.Response(200, json=INVOICE))
    assert api(recorder).attach_payment("in_1", "pr_1", f"{IDEM}:attach")["id"] == "in_1"
    assert recorder.requests[0].url.path == "/v1/invoices/in_1/attach_payment"
    assert recorder.form() == [("payment_record", "pr_1")]
    assert recorder.requests[0].headers["Idempotency-Key"] == f"{IDEM}:attach"


def test_a_write_without_a_key_is_never_sent() -> None:
    """Given no Idempotency-Key (or one over Stripe's 255 characters), when writing, then
    ValueError and no request: a retried write without a key could pay twice."""
    recorder = Recorder()
    for key in ("", "k" * 256):
        with pytest.raises(ValueError, match="Idempotency-Key"):
            api(recorder).pay_out_of_band("in_1", key)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "first",
    [
        stripe_error(429, type="invalid_request_error", code="rate_limit", message="slow down"),
        stripe_error(500, type="api_error", message="An unknown error occurred"),
        stripe_error(503, type="api_error", message="unavailable", headers={"Stripe-Should-Retry": "true"}),
        stripe_error(409, type="invalid_request_error", code="lock_timeout", message="locked"),
        stripe_error(409, type="idempotency_error", code="idempotency_key_in_use", message="in use"),
    ],
    ids=["429", "500", "503", "409-lock", "409-key-in-use"],
)
def test_passing_failures_are_retried_with_the_same_key(first: httpx.Response) -> None:
    """Given a 429, 5xx or 409 first, when paying, then the call is sent again after the back-off
    with the very same Idempotency-Key and form, and the second answer is returned."""
    slept: list[float] = []
    recorder = Recorder(first, httpx.Response(200, json=INVOICE))
    assert api(recorder, slept).pay_out_of_band("in_1", IDEM)["status"] == "paid"
    assert [r.headers["Idempotency-Key"] for r in recorder.requests] == [IDEM, IDEM]
    assert recorder.form(0) == recorder.form(1) == [("paid_out_of_band", "true")]
    assert slept == [0.5]


def test_a_timeout_is_retried_with_the_same_key() -> None:
    """Given a read timeout (Stripe may have acted), when paying, then the retry carries the same
    key, so Stripe answers the saved result instead of acting again."""

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    recorder = Recorder(timeout, httpx.Response(200, json=INVOICE))
    assert api(recorder).pay_out_of_band("in_1", IDEM)["id"] == "in_1"
    assert [r.headers["Idempotency-Key"] for r in recorder.requests] == [IDEM, IDEM]


def test_a_replayed_500_is_not_retried_in_place() -> None:
    """Given a 500 Stripe saved under the key (Idempotent-Replayed: true) or one with
    Stripe-Should-Retry: false, when paying, then one request and StripeUnavailable: the same key
    would get the same 500 for a day, so the caller re-reads and bumps its key."""
    for headers in ({"Idempotent-Replayed": "true"}, {"Stripe-Should-Retry": "false"}):
        recorder = Recorder(stripe_error(500, type="api_error", message="boom", headers=headers))
        with pytest.raises(StripeUnavailable) as failed:
            api(recorder).pay_out_of_band("in_1", IDEM)
        assert len(recorder.requests) == 1
        assert failed.value.status == 500
        assert isinstance(domain_error(failed.value), TransientError)


def test_retries_are_bounded() -> None:
    """Given 429 on every try, when paying with max_attempts=3, then three requests and
    StripeRateLimited, a TransientError in the domain."""
    recorder = Recorder(*[stripe_error(429, code="rate_limit", message="slow")] * 3)
    with pytest.raises(StripeRateLimited) as failed:
        api(recorder, max_attempts=3).pay_out_of_band("in_1", IDEM)
    assert len(recorder.requests) == 3
    assert isinstance(domain_error(failed.value), TransientError)


def test_a_409_that_lasts_is_a_conflict() -> None:
    """Given 409 lock_timeout on every try, then StripeConflict with the code kept, transient."""
    recorder = Recorder(*[stripe_error(409, code="lock_timeout", message="locked")] * 2)
    with pytest.raises(StripeConflict) as failed:
        api(recorder, max_attempts=2).pay_out_of_band("in_1", IDEM)
    assert failed.value.code == "lock_timeout"
    assert isinstance(domain_error(failed.value), TransientError)


def test_a_400_is_not_retried_and_keeps_stripes_code() -> None:
    """Given a 400 with Stripe's code, when paying, then one request and a StripeApiError with
    the status, code, param, type and Request-Id on it, so a caller can decide (re-read on an
    invoice already paid); in the domain it parks with the code."""
    recorder = Recorder(
        stripe_error(
            400,
            type="invalid_request_error",
            code="invoice_payment_intent_requires_action",
            param="invoice",
            message="This payment requires additional user action before it can be completed.",
            headers={"Request-Id": "req_123"},
        )
    )
    with pytest.raises(StripeApiError) as refused:
        api(recorder).pay_out_of_band("in_1", IDEM)
    error = refused.value
    assert len(recorder.requests) == 1
    assert (error.status, error.code, error.param, error.error_type, error.request_id) == (
        400,
        "invoice_payment_intent_requires_action",
        "invoice",
        "invalid_request_error",
        "req_123",
    )
    assert "requires additional user action" in str(error)
    parked = domain_error(error)
    assert isinstance(parked, ParkError) and not isinstance(parked, ConnectionBroken)
    assert "invoice_payment_intent_requires_action" in str(parked)


def test_a_key_reused_with_other_parameters_is_its_own_error() -> None:
    """Given 400 idempotency_error, then StripeIdempotencyError after one request (a bug: parked)."""
    recorder = Recorder(
        stripe_error(
            400,
            type="idempotency_error",
            message="Keys for idempotent requests can only be used with the same parameters they were "
            "first used with. Try using a key other than '0d6f' if you meant to execute a different request.",
        )
    )
    with pytest.raises(StripeIdempotencyError) as refused:
        api(recorder).attach_payment("in_1", "pr_2", IDEM)
    assert len(recorder.requests) == 1
    assert refused.value.status == 400
    parked = domain_error(refused.value)
    assert isinstance(parked, ParkError)
    assert parked.reason == "Stripe idempotency key reused with other parameters"


def test_auth_and_not_found_map_to_their_kinds_without_the_key() -> None:
    """Given 401 echoing the key, 403, and 404, then StripeAuthError (ConnectionBroken in the
    domain) and StripeNotFound, each after one request, and the key in no message."""
    for status in (401, 403):
        recorder = Recorder(
            stripe_error(status, type="invalid_request_error", message=f"Invalid API Key {KEY}")
        )
        with pytest.raises(StripeAuthError) as refused:
            api(recorder).pay_out_of_band("in_1", IDEM)
        assert len(recorder.requests) == 1
        broken = domain_error(refused.value)
        assert isinstance(broken, ConnectionBroken) and broken.reason == "Stripe key refused"
        assert KEY not in str(refused.value) and KEY not in str(broken) and KEY not in repr(refused.value)
    recorder = Recorder(
        stripe_error(
            404,
            type="invalid_request_error",
            code="resource_missing",
            param="id",
            message=f"No such invoice {KEY}",
        )
    )
    with pytest.raises(StripeNotFound) as missing:
        api(recorder).pay_out_of_band("in_nope", IDEM)
    assert missing.value.code == "resource_missing"
    assert KEY not in str(missing.value)


def test_get_invoice_expands_and_invoice_payments_page() -> None:
    """Given an invoice read with PAYMENT_EXPANDS, then the query repeats expand[]; given two pages
    of invoice payments, then list_invoice_payments follows starting_after and returns both."""
    pages = [
        {"object": "list", "data": [{"id": "inpay_1"}], "has_more": True},
        {"object": "list", "data": [{"id": "inpay_2"}], "has_more": False},
    ]
    recorder = Recorder(
        httpx.Response(200, json=INVOICE), *(httpx.Response(200, json=page) for page in pages)
    )
    client = api(recorder)
    assert client.get_invoice("in_1", expand=PAYMENT_EXPANDS)["id"] == "in_1"
    assert recorder.requests[0].url.params.get_list("expand[]") == ["payments", "amount_paid_off_stripe"]
    assert "Idempotency-Key" not in recorder.requests[0].headers
    assert [p["id"] for p in client.list_invoice_payments("in_1")] == ["inpay_1", "inpay_2"]
    assert recorder.requests[1].url.params["invoice"] == "in_1"
    assert recorder.requests[2].url.params["starting_after"] == "inpay_1"


def test_reads_still_do_not_retry_a_409() -> None:
    """Given a 409 on a read, then it is not retried: only writes, which carry a key, wait out a lock."""
    recorder = Recorder(stripe_error(409, code="lock_timeout", message="locked"))
    with pytest.raises(StripeConflict):
        api(recorder).get_invoice("in_1")
    assert len(recorder.requests) == 1
