"""The Stripe stand-in's payouts and balance transactions have Stripe's shape.

The repo holds no Stripe OpenAPI document (``../shared/specs`` has Xero's only; its README points
at the official ``stripe`` package for Stripe's object models). So the shapes are checked against
stripe-python's typed resource classes (16.x, generated from Stripe's OpenAPI spec): a Payout and a
BalanceTransaction the stand-in serves carry exactly the fields the class declares, each of the
declared type (``Optional`` allows null, an expandable field an id or an object, a ``Literal`` its
values); the expanded charge and refund carry only declared fields, of their declared types. A
field the stand-in invented, misspelt or typed wrongly fails here, before a payout test trusts it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any, ForwardRef

import pytest
import stripe
from pydantic import SecretStr

from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync_ops.sandboxes.stripe import StripeSandbox

ACCOUNT = "acct_1ContractPayouts"
KEY = "sk_test_contract_payouts_01"
NOW = 1_796_364_000
ARRIVAL = 1_796_342_400


def declared(resource: type) -> dict[str, Any]:
    """The instance fields a stripe-python resource class declares, with their annotations."""
    return {
        name: hint
        for name, hint in vars(resource).get("__annotations__", {}).items()
        if typing.get_origin(hint) is not typing.ClassVar and not name.isupper()
    }


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a stripe-python annotation."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(hint, ForwardRef | str):
        return isinstance(value, dict)  # an expanded object (ExpandableField's other half)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint  # UntypedStripeObject[str] (metadata) is a generic of a StripeObject
    if isinstance(base, type) and issubclass(base, stripe.StripeObject):
        return isinstance(value, dict)
    return isinstance(hint, type) and isinstance(value, hint)


def mismatches(obj: dict[str, Any], resource: type, *, complete: bool) -> list[str]:
    fields = declared(resource)
    wrong = [f"{name}: not a {resource.__name__} field" for name in sorted(set(obj) - set(fields))]
    if complete:
        wrong += [f"{name}: missing" for name in sorted(set(fields) - set(obj))]
    wrong += [
        f"{name}: {obj[name]!r} is not {fields[name]}"
        for name in sorted(set(obj) & set(fields))
        if not conforms(obj[name], fields[name])
    ]
    return wrong


@pytest.fixture
def served() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """A payout of a charge, a refund, a Billing fee and an adjustment, read back over HTTP."""
    sandbox = StripeSandbox(clock=lambda: float(NOW))
    sandbox.seed_account(ACCOUNT, api_key=KEY)
    sandbox.seed_payout(
        ACCOUNT,
        {"id": "po_1Contract", "amount": 9420, "currency": "usd", "arrival_date": ARRIVAL},
        [
            {
                "type": "charge",
                "amount": 10000,
                "fee": 320,
                "source": {"id": "ch_1", "amount": 10000, "payment_intent": "pi_1", "customer": "cus_1"},
            },
            {"type": "refund", "amount": -200, "source": {"id": "re_1", "amount": 200, "charge": "ch_1"}},
            {"type": "stripe_fee", "amount": -30, "description": "Billing - Usage Fee"},
            {"type": "adjustment", "amount": -30, "reporting_category": "dispute"},
        ],
        emit=False,
    )
    sandbox.start()
    try:
        api = StripeApi(sandbox.base_url, SecretStr(KEY))
        yield api.get_payout("po_1Contract"), api.list_balance_transactions("po_1Contract")
    finally:
        sandbox.stop()


def test_the_payout_is_a_complete_stripe_payout(served: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """Given the payout the stand-in serves, it has every field stripe-python's Payout declares and
    no other, each of its declared type, and the SDK reads it as a Payout."""
    payout, _ = served
    assert mismatches(payout, stripe.Payout, complete=True) == []
    typed = stripe.Payout.construct_from(payout, "sk_test_contract")
    assert isinstance(typed, stripe.Payout) and typed.amount == 9420


def test_each_balance_transaction_is_a_complete_stripe_balance_transaction(
    served: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Given the payout's transactions (its own type=payout one included), each has every field
    stripe-python's BalanceTransaction declares and no other, of its declared type, and its
    fee_details are FeeDetails (amount, application, currency, description, type)."""
    _, transactions = served
    assert len(transactions) == 5
    for txn in transactions:
        assert mismatches(txn, stripe.BalanceTransaction, complete=True) == [], txn["id"]
        for detail in txn["fee_details"]:
            assert mismatches(detail, stripe.BalanceTransaction.FeeDetail, complete=True) == []
    assert {t["type"] for t in transactions} == {"charge", "refund", "stripe_fee", "adjustment", "payout"}


def test_expanded_sources_are_stripe_charges_and_refunds(
    served: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Given the expanded sources, the charge carries only Charge fields and the refund only Refund
    fields, each of its declared type (the stand-in fills a subset: what a payout's lines read)."""
    _, transactions = served
    sources = {t["type"]: t["source"] for t in transactions}
    assert mismatches(sources["charge"], stripe.Charge, complete=False) == []
    assert mismatches(sources["refund"], stripe.Refund, complete=False) == []
    assert mismatches(sources["payout"], stripe.Payout, complete=True) == []
    assert sources["charge"]["payment_intent"] == "pi_1" and sources["refund"]["charge"] == "ch_1"
