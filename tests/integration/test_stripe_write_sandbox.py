"""The Stripe client's write side against the Stripe stand-in over real HTTP (issue 7, payments
back): a full out-of-band pay, a partial payment as a reported and attached PaymentRecord with the
last instalment making the invoice paid, refusals in Stripe's error shape, and the idempotency
store: a replay answers the saved object with one effect, a saved 500 stays saved, and the same
key with other parameters is 400 idempotency_error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from pydantic import SecretStr

from invoice_sync.sources.stripe import parse_invoice
from invoice_sync.sources.stripe_api import (
    PAYMENT_EXPANDS,
    StripeApi,
    StripeApiError,
    StripeIdempotencyError,
    StripeNotFound,
    StripeUnavailable,
)
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, form_params, generate_invoices

ACCOUNT = "acct_1WriteAccount01"
OTHER = "acct_1WriteAccount02"
KEY = "sk_test_write_integration_key_0042"
OTHER_KEY = "sk_test_write_integration_key_0043"
START = 1_700_000_000
OPEN = "in_1Hist000002"  # generate_invoices alternates paid, open: the second is open
PAID = "in_1Hist000001"


class FakeClock:
    """The stand-in's clock and the client's sleep: sleeping moves time on, nothing waits."""

    def __init__(self) -> None:
        self.now = float(START)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[StripeSandbox]:
    server = StripeSandbox(clock=clock)
    server.seed_account(ACCOUNT, api_key=KEY, invoices=generate_invoices(4, start=START))
    server.seed_account(OTHER, api_key=OTHER_KEY, invoices=generate_invoices(4, start=START))
    server.start()
    yield server
    server.stop()


def client(sandbox: StripeSandbox, clock: FakeClock, key: str = KEY, **options: Any) -> StripeApi:
    return StripeApi(sandbox.base_url, SecretStr(key), sleep=clock.sleep, **options)


def report(api: StripeApi, amount: int, key: str, **extra: Any) -> dict[str, Any]:
    return api.report_payment(
        amount=amount,
        currency="USD",
        initiated_at=START + 86_400,
        display_name="Recorded in QuickBooks",
        payment_reference="qbo:190",
        customer="cus_HistContoso",
        description="Cheque 1042 recorded in QuickBooks (payment 190)",
        metadata={"invoice_sync_connection": "acme-qbo", "invoice_sync_record": "ledger_payment#190:147"},
        idempotency_key=key,
        **extra,
    )


def effects(sandbox: StripeSandbox, account: str = ACCOUNT) -> int:
    return sum(1 for write in sandbox.writes(account) if write["effect"])


def test_a_full_out_of_band_pay_makes_the_invoice_paid(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """Given an open invoice, when paid out of band, then it is paid for its total with nothing
    remaining and paid_at set; the read after it shows the same snapshot, with
    amount_paid_off_stripe the total and the stripe SDK and invoice-sync's parser reading it."""
    api = client(sandbox, clock)
    before = api.get_invoice(OPEN)
    assert before["status"] == "open" and before["amount_paid"] == 0
    paid = api.pay_out_of_band(OPEN, "key-full-1")
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", before["total"], 0)
    assert paid["status_transitions"]["paid_at"] == int(clock.now)
    assert "amount_paid_off_stripe" not in paid  # only on request, as Stripe
    read = api.get_invoice(OPEN, expand=PAYMENT_EXPANDS)
    assert read["status"] == "paid" and read["amount_paid_off_stripe"] == before["total"]
    assert read["payments"]["object"] == "list"
    assert parse_invoice(read).status.value == "paid"
    typed = stripe.Invoice.construct_from(read, KEY)
    assert (typed.status, typed.amount_paid, typed.amount_paid_off_stripe) == (
        "paid",
        before["total"],
        before["total"],
    )


def test_a_partial_payment_then_the_last_instalment(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """Given an open invoice, when 50.00 is reported and attached, then it stays open with the
    rest remaining and one payment_record InvoicePayment; when the remainder is reported and
    attached, then it is paid without any pay call, with two payments listed both ways."""
    api = client(sandbox, clock)
    total = api.get_invoice(OPEN)["total"]
    record = report(api, 5000, "key-part-1:report")
    assert record["id"].startswith("pr_") and record["object"] == "payment_record"
    assert record["amount_requested"] == {"currency": "usd", "value": 5000}
    assert record["amount_guaranteed"] == {"currency": "usd", "value": 5000}
    assert record["processor_details"]["custom"]["payment_reference"] == "qbo:190"
    assert record["metadata"]["invoice_sync_record"] == "ledger_payment#190:147"
    assert api.get_object("payment_records", record["id"]) == record
    assert stripe.PaymentRecord.construct_from(record, KEY).amount_requested.value == 5000
    first = api.attach_payment(OPEN, record["id"], "key-part-1:attach")
    assert (first["status"], first["amount_paid"], first["amount_remaining"]) == ("open", 5000, total - 5000)
    (payment,) = api.list_invoice_payments(OPEN)
    assert payment["id"].startswith("inpay_")
    assert payment["payment"] == {"type": "payment_record", "payment_record": record["id"]}
    assert (payment["status"], payment["amount_paid"]) == ("paid", 5000)
    last = report(api, total - 5000, "key-part-2:report")
    done = api.attach_payment(OPEN, last["id"], "key-part-2:attach")
    assert (done["status"], done["amount_paid"], done["amount_remaining"]) == ("paid", total, 0)
    read = api.get_invoice(OPEN, expand=PAYMENT_EXPANDS)
    assert read["amount_paid_off_stripe"] == total
    assert {p["payment"]["payment_record"] for p in read["payments"]["data"]} == {record["id"], last["id"]}
    assert len(api.list_invoice_payments(OPEN, status="paid")) == 2
    assert not any(w["path"].endswith("/pay") for w in sandbox.writes(ACCOUNT))
    assert stripe.Invoice.construct_from(read, KEY).payments.data[0].payment.type == "payment_record"


def test_paying_twice_or_paying_what_cannot_be_paid_is_refused(
    sandbox: StripeSandbox, clock: FakeClock
) -> None:
    """Given an invoice already paid (by us, or before), when paid again with a new key, then 400
    invoice_unexpected_state in Stripe's error shape, kept on the client's error; attaching to it
    too. An unknown invoice is StripeNotFound, and a pay without paid_out_of_band is refused."""
    api = client(sandbox, clock)
    api.pay_out_of_band(OPEN, "key-once")
    for invoice_id in (OPEN, PAID):
        with pytest.raises(StripeApiError) as refused:
            api.pay_out_of_band(invoice_id, f"key-again-{invoice_id}")
        assert (refused.value.status, refused.value.code) == (400, "invoice_unexpected_state")
        assert "already paid" in str(refused.value)
    record = report(api, 100, "key-late:report")
    with pytest.raises(StripeApiError) as late:
        api.attach_payment(PAID, record["id"], "key-late:attach")
    assert late.value.code == "invoice_unexpected_state"
    with pytest.raises(StripeNotFound):
        api.pay_out_of_band("in_nope", "key-nope")
    raw = httpx.post(
        f"{sandbox.base_url}/v1/invoices/in_1Hist000004/pay",
        headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": "key-card"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    assert effects(sandbox) == 2  # the one pay and the one report


def test_an_idempotent_replay_is_the_same_object_with_one_effect(
    sandbox: StripeSandbox, clock: FakeClock
) -> None:
    """Given a pay and a report already answered, when sent again with the same keys and
    parameters, then the saved answers come back (Idempotent-Replayed: true, the same pr_ id) and
    the account shows one effect each; the same key in another account is its own key."""
    api = client(sandbox, clock)
    first = api.pay_out_of_band(OPEN, "key-replay")
    clock.now += 60
    assert api.pay_out_of_band(OPEN, "key-replay") == first
    record = report(api, 700, "key-replay:report")
    assert report(api, 700, "key-replay:report") == record
    assert effects(sandbox) == 2
    assert [w["replayed"] for w in sandbox.writes(ACCOUNT)] == [False, True, False, True]
    raw = httpx.post(
        f"{sandbox.base_url}/v1/invoices/{OPEN}/pay",
        data={"paid_out_of_band": "true"},
        headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": "key-replay"},
    )
    assert raw.headers["Idempotent-Replayed"] == "true"
    other = client(sandbox, clock, key=OTHER_KEY).pay_out_of_band(OPEN, "key-replay")
    assert other["status"] == "paid" and effects(sandbox, OTHER) == 1


def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    sandbox: StripeSandbox, clock: FakeClock
) -> None:
    """Given a key used for one report, when it is sent with another amount (or to another path),
    then 400 idempotency_error, StripeIdempotencyError after a single request, and nothing done."""
    api = client(sandbox, clock)
    report(api, 700, "key-mismatch")
    requests_before = len(sandbox.request_log)
    with pytest.raises(StripeIdempotencyError) as refused:
        report(api, 800, "key-mismatch")
    assert refused.value.status == 400 and refused.value.error_type == "idempotency_error"
    assert len(sandbox.request_log) == requests_before + 1
    with pytest.raises(StripeIdempotencyError):
        api.pay_out_of_band(OPEN, "key-mismatch")
    assert api.get_invoice(OPEN)["status"] == "open"
    assert effects(sandbox) == 1


def test_a_saved_500_is_replayed_until_the_key_changes(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """Given a 500 injected on a write, when the client pays, then it retries once with the same
    key, gets the saved 500 back (replayed) and stops with StripeUnavailable, the invoice untouched;
    a new key (the caller's generation bump) pays; and past the key's life the old key works again."""
    sandbox.inject_write_status(ACCOUNT, 500)
    api = client(sandbox, clock)
    with pytest.raises(StripeUnavailable):
        api.pay_out_of_band(OPEN, "key-gen-0")
    assert [(w["status"], w["replayed"]) for w in sandbox.writes(ACCOUNT)] == [(500, False), (500, True)]
    assert api.get_invoice(OPEN)["status"] == "open"
    assert api.pay_out_of_band(OPEN, "key-gen-1")["status"] == "paid"
    clock.now += 86_401
    with pytest.raises(StripeApiError, match="already paid"):
        api.pay_out_of_band(OPEN, "key-gen-0")


def test_a_throttled_or_lost_write_is_retried_with_one_effect(
    sandbox: StripeSandbox, clock: FakeClock
) -> None:
    """Given a 429 on a write (not saved) and then a pay whose answer is lost after it committed
    (a 502 page), when the client pays, then it retries with the same key and gets the saved
    success: one effect."""
    sandbox.inject_write_status(ACCOUNT, 429)
    sandbox._lose_responses(ACCOUNT, 1)
    api = client(sandbox, clock)
    assert api.pay_out_of_band(OPEN, "key-lost")["status"] == "paid"
    assert [w["status"] for w in sandbox.writes(ACCOUNT)] == [429, 200, 200]
    assert effects(sandbox) == 1
    assert api.use.retried == 2


def test_report_payment_checks_its_required_parameters(sandbox: StripeSandbox) -> None:
    """Given a report without initiated_at, or without the custom method's display name, then
    400 parameter_missing naming it, not saved: the same key then works with the full form."""
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "key-params"}
    form = {
        "amount_requested[currency]": "usd",
        "amount_requested[value]": "500",
        "payment_method_details[type]": "custom",
        "payment_method_details[custom][display_name]": "Cheque",
    }
    url = f"{sandbox.base_url}/v1/payment_records/report_payment"
    missing = httpx.post(url, data=form, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"] | {} == {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "param": "initiated_at",
        "message": "Missing required param: initiated_at.",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
    }
    no_name = {k: v for k, v in form.items() if "display_name" not in k} | {"initiated_at": "1700000000"}
    assert httpx.post(url, data=no_name, headers=headers).json()["error"]["param"] == (
        "payment_method_details[custom][display_name]"
    )
    made = httpx.post(url, data=form | {"initiated_at": "1700000000"}, headers=headers)
    assert made.status_code == 200 and made.json()["id"].startswith("pr_")


def test_the_form_is_read_back_as_stripe_nests_it() -> None:
    """Given Stripe-encoded pairs, then form_params nests brackets, lists [] and [0][k]."""
    assert form_params([("a[b][c]", "1"), ("expand[]", "x"), ("expand[]", "y"), ("l[0][k]", "v")]) == {
        "a": {"b": {"c": "1"}},
        "expand": ["x", "y"],
        "l": [{"k": "v"}],
    }
    with pytest.raises(ValueError, match="malformed"):
        form_params([("a", "1"), ("a[b]", "2")])


def test_stripe_python_writes_to_the_stand_in_as_to_stripe(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """Given the official stripe-python client pointed at the stand-in, when it reports a payment,
    attaches it, lists the invoice's payments and pays another invoice out of band (its own
    encoding: expand[0], its own Idempotency-Key), then each answer is a typed object of the right
    kind and the stand-in holds what our client would have made."""
    sdk = stripe.StripeClient(KEY, base_addresses={"api": sandbox.base_url})
    record = sdk.v1.payment_records.report_payment(
        params={
            "amount_requested": {"currency": "usd", "value": 2500},
            "initiated_at": START,
            "outcome": "guaranteed",
            "guaranteed": {"guaranteed_at": START},
            "payment_method_details": {"type": "custom", "custom": {"display_name": "Recorded in Xero"}},
            "processor_details": {"type": "custom", "custom": {"payment_reference": "xero:abc"}},
        },
        options={"idempotency_key": "sdk-report"},
    )
    assert record.id.startswith("pr_") and record.amount_guaranteed.value == 2500
    invoice = sdk.v1.invoices.attach_payment(
        OPEN,
        params={"payment_record": record.id, "expand": ["payments"]},
        options={"idempotency_key": "sdk-attach"},
    )
    assert invoice.amount_paid == 2500 and invoice.payments is not None
    assert invoice.payments.data[0].payment.payment_record == record.id
    listed = sdk.v1.invoice_payments.list(params={"invoice": OPEN, "payment": {"type": "payment_record"}})
    assert [p.id for p in listed.data] == [invoice.payments.data[0].id]
    paid = sdk.v1.invoices.pay("in_1Hist000004", params={"paid_out_of_band": True})
    assert paid.status == "paid" and paid.amount_remaining == 0
    assert sandbox.writes(ACCOUNT)[-1]["key"]  # stripe-python sent its own key
