"""The Stripe stand-in's payouts (design two-way 6, "Payouts"), read over HTTP by invoice-sync's own
Stripe client as it would read api.stripe.com: the payout, its balance transactions page by page
with their sources expanded, the invoice a payment intent paid, a manual payout's empty list, the
control API that seeds them, and the signed payout.* webhooks the intake parses."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from pydantic import SecretStr

from invoice_sync.sources.stripe import parse_event, verify_signature
from invoice_sync.sources.stripe_api import StripeApi, StripeNotFound
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, generate_invoices
from tests.integration.test_sandbox_webhooks import Receiver, receiver  # noqa: F401 - the fixture

ACCOUNT = "acct_1PayoutAccount01"
KEY = "sk_test_payout_key_0042"
WHSEC = "whsec_payout_secret_0042"
NOW = 1_796_364_000  # 2026-12-04, the worked example's arrival day
ARRIVAL = 1_796_342_400  # 2026-12-04T00:00:00Z
FLUSH = 10.0


def paid_by_card(invoice: dict[str, Any], payment_intent: str) -> dict[str, Any]:
    """A generated open invoice paid in full by a card payment, as Stripe shows one: status paid and
    one InvoicePayment naming the payment intent (what ``GET /v1/invoice_payments`` filters on)."""
    paid = copy.deepcopy(invoice)
    paid.update(status="paid", amount_paid=paid["total"], amount_remaining=0)
    paid["status_transitions"]["paid_at"] = paid["created"] + 3600
    paid["payments"] = {
        "object": "list",
        "data": [
            {
                "id": f"inpay_{payment_intent[3:]}",
                "object": "invoice_payment",
                "amount_paid": paid["total"],
                "amount_requested": paid["total"],
                "created": paid["created"] + 3600,
                "currency": "usd",
                "invoice": paid["id"],
                "is_default": True,
                "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                "status": "paid",
                "status_transitions": {"canceled_at": None, "paid_at": paid["created"] + 3600},
            }
        ],
        "has_more": False,
        "total_count": 1,
        "url": "/v1/invoice_payments",
    }
    return paid


def worked_example() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """Design 3.5.2's worked example: two invoices paid by card (their charges' payment intents
    name them), a partial refund of the first charge, a Billing fee; 202.43 paid out."""
    first, second = (
        paid_by_card(invoice, pi)
        for invoice, pi in zip(
            generate_invoices(2, start=NOW - 10 * 86_400, statuses=("open",)),
            ("pi_3QxA", "pi_3QxB"),
            strict=True,
        )
    )
    payout = {"id": "po_1QxYz", "amount": 20243, "currency": "usd", "arrival_date": ARRIVAL, "created": NOW}
    charge_a = {"id": "ch_3QxA", "object": "charge", "amount": 15000, "payment_intent": "pi_3QxA"}
    charge_b = {"id": "ch_3QxB", "object": "charge", "amount": 8000, "payment_intent": "pi_3QxB"}
    refund_c = {
        "id": "re_3QxC",
        "object": "refund",
        "amount": 2000,
        "charge": "ch_3QxA",
        "payment_intent": "pi_3QxA",
    }
    transactions = [
        {"id": "txn_a", "type": "charge", "amount": 15000, "fee": 465, "source": charge_a},
        {"id": "txn_b", "type": "charge", "amount": 8000, "fee": 262, "source": charge_b},
        {"id": "txn_c", "type": "refund", "amount": -2000, "source": refund_c},
        {"id": "txn_d", "type": "stripe_fee", "amount": -30, "description": "Billing - Usage Fee"},
    ]
    return [first, second], payout, transactions


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    server = StripeSandbox(clock=lambda: float(NOW))
    server.seed_account(ACCOUNT, api_key=KEY)
    server.start()
    yield server
    server.stop()


def client(sandbox: StripeSandbox) -> StripeApi:
    return StripeApi(sandbox.base_url, SecretStr(KEY), sleep=lambda _: None)


def seeded(sandbox: StripeSandbox, *, emit: bool = False) -> dict[str, Any]:
    invoices, payout, transactions = worked_example()
    sandbox.add_invoices(ACCOUNT, invoices, sdk_check=True)
    return sandbox.seed_payout(ACCOUNT, payout | {"balance_transaction": "txn_p"}, transactions, emit=emit)


# --- the reads -----------------------------------------------------------------------------------


def test_the_worked_example_reads_back_as_design_3_5_2_needs(sandbox: StripeSandbox) -> None:
    """Given the worked example seeded, get_payout answers the automatic, reconciled payout, and
    list_balance_transactions answers its four transactions and its own type=payout one, each with
    net = amount - fee, the charges expanded with their payment intents, the refund with its
    charge; the nets without the payout's own add up to the payout (202.43)."""
    seeded(sandbox)
    api = client(sandbox)
    payout = api.get_payout("po_1QxYz")
    assert (payout["object"], payout["amount"], payout["automatic"]) == ("payout", 20243, True)
    assert (payout["status"], payout["reconciliation_status"]) == ("paid", "completed")
    assert payout["balance_transaction"] == "txn_p"
    found = {t["id"]: t for t in api.list_balance_transactions("po_1QxYz")}
    assert set(found) == {"txn_a", "txn_b", "txn_c", "txn_d", "txn_p"}
    for txn in found.values():
        assert txn["object"] == "balance_transaction"
        assert txn["net"] == txn["amount"] - txn["fee"]
        assert txn["currency"] == "usd" and txn["exchange_rate"] is None
        assert not any(name.startswith("_") for name in txn)
    assert found["txn_a"]["source"]["payment_intent"] == "pi_3QxA"
    assert found["txn_a"]["source"]["object"] == "charge"
    assert found["txn_a"]["fee_details"] == [
        {
            "amount": 465,
            "application": None,
            "currency": "usd",
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]
    assert found["txn_c"]["source"]["charge"] == "ch_3QxA"
    assert found["txn_d"]["source"] is None and found["txn_d"]["reporting_category"] == "fee"
    own = found["txn_p"]
    assert (own["type"], own["amount"], own["source"]["id"]) == ("payout", -20243, "po_1QxYz")
    assert sum(t["net"] for t in found.values() if t["type"] != "payout") == payout["amount"]
    fees = sum(t["fee"] for t in found.values()) - sum(
        t["amount"] for t in found.values() if t["type"] == "stripe_fee"
    )
    assert fees == 757  # the fee line: 4.65 + 2.62 + 0.30


def test_a_charge_finds_its_invoice_through_its_payment_intent(sandbox: StripeSandbox) -> None:
    """Given the worked example, the payment intent of each charge finds the invoice it paid
    (``GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=...``), and a
    payment intent of no invoice finds none."""
    seeded(sandbox)
    api = client(sandbox)
    invoices = {i["id"]: i for i in sandbox.documents(ACCOUNT, "invoices")}
    for txn in api.list_balance_transactions("po_1QxYz"):
        if txn["type"] == "charge":
            invoice_id = api.invoice_of_payment_intent(txn["source"]["payment_intent"])
            assert invoice_id in invoices and invoices[invoice_id]["amount_paid"] > 0
    assert api.invoice_of_payment_intent("pi_3NotAnInvoice") is None


def test_without_expand_a_source_is_its_id_and_other_expands_are_refused(sandbox: StripeSandbox) -> None:
    """Given the worked example, the list without expand[] names each source by id; expanding
    anything but data.source answers 400 as Stripe does; a transaction is also read by id."""
    seeded(sandbox)
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        plain = http.get("/v1/balance_transactions", params={"payout": "po_1QxYz"}).json()
        assert {t["source"] for t in plain["data"]} == {"ch_3QxA", "ch_3QxB", "re_3QxC", None, "po_1QxYz"}
        refused = http.get("/v1/balance_transactions", params={"payout": "po_1QxYz", "expand[]": "data.fee"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "expand"
        one = http.get("/v1/balance_transactions/txn_a", params={"expand[]": "source"}).json()
        assert one["source"]["id"] == "ch_3QxA" and "_payout" not in one


def test_every_page_is_followed(sandbox: StripeSandbox) -> None:
    """Given a payout of 250 charges, list_balance_transactions reads pages of 100 following
    starting_after (three requests) and gets all 251 transactions, each once."""
    charges = [
        {
            "id": f"txn_{n:04d}",
            "type": "charge",
            "amount": 100,
            "source": {"id": f"ch_{n:04d}", "amount": 100},
        }
        for n in range(250)
    ]
    sandbox.seed_payout(
        ACCOUNT,
        {"id": "po_big", "amount": 25000, "currency": "usd", "arrival_date": ARRIVAL},
        charges,
        emit=False,
    )
    api = client(sandbox)
    found = api.list_balance_transactions("po_big")
    assert len(found) == len({t["id"] for t in found}) == 251
    assert api.use.requests == 3


def test_a_manual_payout_lists_nothing(sandbox: StripeSandbox) -> None:
    """Given a manual payout (automatic false, reconciliation not_applicable) seeded with its
    charges, the payout-filtered list answers data: [] (Stripe cannot say what it settles), while
    the charges are in the account's unfiltered list."""
    sandbox.seed_payout(
        ACCOUNT,
        {"id": "po_manual", "amount": 500, "currency": "usd", "arrival_date": ARRIVAL, "automatic": False},
        [{"id": "txn_m", "type": "charge", "amount": 500, "source": {"id": "ch_m", "amount": 500}}],
        emit=False,
    )
    api = client(sandbox)
    assert api.get_payout("po_manual")["reconciliation_status"] == "not_applicable"
    assert api.list_balance_transactions("po_manual") == []
    everything = [t["id"] for page in api.list_objects("balance_transactions") for t in page]
    assert "txn_m" in everything


def test_nothing_is_listed_until_reconciliation_completes(sandbox: StripeSandbox) -> None:
    """Given an automatic payout paid but still reconciling, its list is empty; once
    update_payout completes reconciliation, the transactions are listed."""
    _, payout, transactions = worked_example()
    sandbox.seed_payout(ACCOUNT, payout | {"reconciliation_status": "in_progress"}, transactions, emit=False)
    api = client(sandbox)
    assert api.list_balance_transactions("po_1QxYz") == []
    sandbox.update_payout(ACCOUNT, "po_1QxYz", reconciliation_status="completed")
    assert len(api.list_balance_transactions("po_1QxYz")) == 5


def test_an_unknown_payout_is_not_found(sandbox: StripeSandbox) -> None:
    """Given no such payout, get_payout and the payout-filtered list answer 404 resource_missing."""
    api = client(sandbox)
    with pytest.raises(StripeNotFound):
        api.get_payout("po_nope")
    with pytest.raises(StripeNotFound) as missing:
        api.list_balance_transactions("po_nope")
    assert missing.value.param == "payout"


# --- what a seed may be --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payout", "transactions", "named"),
    [
        ({"amount": 0}, [], "amount must be at least 1"),
        ({"currency": "USD"}, [], "lowercase"),
        ({"automatic": False, "reconciliation_status": "completed"}, [], "manual payout"),
        ({"status": "pending", "reconciliation_status": "completed"}, [], "only a paid payout"),
        ({"colour": "red"}, [], "unknown field"),
        ({}, [{"type": "payout", "amount": -1}], "made by the stand-in"),
        ({}, [{"type": "charge", "amount": 100, "fee": 3, "net": 100}], "net is amount - fee"),
        ({}, [{"type": "charge", "amount": 100, "fee": 3, "fee_details": []}], "fee_details must add up"),
        ({}, [{"type": "charge", "amount": 100, "source": "ch_unseeded"}], "is not seeded"),
        ({}, [{"type": "charge", "amount": 100, "source": {"id": "cus_1", "amount": 1}}], "charge"),
        ({}, [{"type": "gift", "amount": 100}], "type must be one of"),
        (
            {},
            [{"type": "charge", "amount": 1, "id": "txn_1"}, {"type": "charge", "amount": 1, "id": "txn_1"}],
            "txn_1",
        ),
    ],
)
def test_a_seed_stripe_could_not_hold_is_refused_by_name(
    sandbox: StripeSandbox, payout: dict[str, Any], transactions: list[dict[str, Any]], named: str
) -> None:
    """Given a payout or transaction Stripe could not have, seed_payout raises ValueError saying
    what, and the account holds no payout."""
    base = {"id": "po_bad", "amount": 100, "currency": "usd", "arrival_date": ARRIVAL}
    with pytest.raises(ValueError, match=named):
        sandbox.seed_payout(ACCOUNT, base | payout, transactions, emit=False)
    assert sandbox.documents(ACCOUNT, "payouts") == []
    assert sandbox.documents(ACCOUNT, "balance_transactions") == []


def test_the_control_api_seeds_and_moves_a_payout(sandbox: StripeSandbox) -> None:
    """Given the control API, POST /_sandbox/accounts/<account>/payouts creates the payout (201,
    the payout as the API shows it), a bad one is 400 naming the field, an unknown account 404;
    POST .../payouts/<id> moves it on (paid -> failed) and refuses a move Stripe never makes."""
    _, payout, transactions = worked_example()
    root = f"{sandbox.base_url}/_sandbox/accounts"
    with httpx.Client() as http:
        made = http.post(f"{root}/{ACCOUNT}/payouts", json={"payout": payout, "transactions": transactions})
        assert made.status_code == 201 and made.json()["id"] == "po_1QxYz"
        bad = http.post(f"{root}/{ACCOUNT}/payouts", json={"payout": payout | {"id": "po_2", "amount": -5}})
        assert bad.status_code == 400 and "amount" in bad.json()["error"]
        assert http.post(f"{root}/acct_nobody/payouts", json={"payout": payout}).status_code == 404
        failed = http.post(f"{root}/{ACCOUNT}/payouts/po_1QxYz", json={"status": "failed"})
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        again = http.post(f"{root}/{ACCOUNT}/payouts/po_1QxYz", json={"status": "paid"})
        assert again.status_code == 400 and "cannot go from failed to paid" in again.json()["error"]
        assert http.post(f"{root}/{ACCOUNT}/payouts/po_none", json={"status": "paid"}).status_code == 404
    assert client(sandbox).get_payout("po_1QxYz")["failure_code"] == "account_closed"


# --- webhooks ------------------------------------------------------------------------------------


def test_a_reconciled_payout_sends_paid_then_reconciliation_completed(
    sandbox: StripeSandbox,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    """Given an endpoint subscribed with a whsec_, seeding a reconciled automatic payout sends
    payout.paid (showing reconciliation in progress, as Stripe sends it) then
    payout.reconciliation_completed, each in Stripe's envelope, signed so that both the product's
    verifier and stripe-python accept it, and parsed by the product into its Payout."""
    sandbox.subscribe(ACCOUNT, receiver.on("/stripe"), WHSEC)
    seeded(sandbox, emit=True)
    sandbox.flush(FLUSH)
    paid, reconciled = receiver.at("/stripe")
    kinds = []
    for got in (paid, reconciled):
        verify_signature(got.body, got.headers["stripe-signature"], [WHSEC], now=NOW, tolerance=300)
        event = stripe.Webhook.construct_event(got.body.decode(), got.headers["stripe-signature"], WHSEC)
        kinds.append(event.type)
        envelope = json.loads(got.body)
        assert envelope["object"] == "event" and envelope["id"].startswith("evt_")
        assert envelope["request"] == {"id": None, "idempotency_key": None}
    assert kinds == ["payout.paid", "payout.reconciliation_completed"]
    first, second = parse_event(paid.body), parse_event(reconciled.body)
    assert first is not None and first.payout is not None
    assert second is not None and second.payout is not None
    assert (first.payout.source_id, first.payout.amount) == ("po_1QxYz", 20243)
    assert first.payout.reconciliation_status == "in_progress"
    assert second.payout.reconciliation_status == "completed"
    assert json.loads(reconciled.body)["data"]["previous_attributes"] == {
        "reconciliation_status": "in_progress"
    }


def test_update_payout_sends_the_event_of_each_change(
    sandbox: StripeSandbox,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    """Given a payout in transit, update_payout to paid and reconciled in one call sends payout.paid
    then payout.reconciliation_completed; a later failure sends payout.failed; a seed with
    emit=False or of a pending payout sends nothing."""
    sandbox.subscribe(ACCOUNT, receiver.on("/stripe"), WHSEC)
    _, payout, transactions = worked_example()
    sandbox.seed_payout(
        ACCOUNT, payout | {"status": "in_transit", "reconciliation_status": "in_progress"}, transactions
    )
    sandbox.seed_payout(ACCOUNT, payout | {"id": "po_quiet"}, [], emit=False)
    sandbox.flush(FLUSH)
    assert receiver.at("/stripe") == []
    sandbox.update_payout(ACCOUNT, "po_1QxYz", status="paid", reconciliation_status="completed")
    sandbox.update_payout(ACCOUNT, "po_1QxYz", status="failed")
    sandbox.flush(FLUSH)
    bodies = [json.loads(got.body) for got in receiver.at("/stripe")]
    assert [b["type"] for b in bodies] == ["payout.paid", "payout.reconciliation_completed", "payout.failed"]
    assert bodies[0]["data"]["previous_attributes"] == {"status": "in_transit"}
    assert bodies[2]["data"]["object"]["status"] == "failed"


def test_payouts_are_listed_with_their_status_filter(sandbox: StripeSandbox) -> None:
    """Given a paid and a pending payout, GET /v1/payouts lists both newest first, status=paid
    keeps the paid one, and an unknown status is 400 naming the parameter."""
    base = {"amount": 100, "currency": "usd", "arrival_date": ARRIVAL}
    sandbox.seed_payout(ACCOUNT, base | {"id": "po_old", "created": NOW - 60}, [], emit=False)
    sandbox.seed_payout(ACCOUNT, base | {"id": "po_new", "status": "pending"}, [], emit=False)
    api = client(sandbox)
    assert [p["id"] for page in api.list_objects("payouts") for p in page] == ["po_new", "po_old"]
    assert [p["id"] for page in api.list_objects("payouts", status="paid") for p in page] == ["po_old"]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        refused = http.get("/v1/payouts", params={"status": "reversed"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "status"
