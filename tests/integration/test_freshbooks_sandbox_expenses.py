"""The FreshBooks sandbox's expenses and expense categories over real HTTP: FreshBooks' envelopes,
money as strings, ``search[...]`` filters and ``errno`` errors (https://www.freshbooks.com/api/expenses,
https://www.freshbooks.com/api/expense_categories)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from tests.integration.test_freshbooks_sandbox import ACCOUNT, FakeClock, Fb, error, money, result, seed


@pytest.fixture
def sandbox() -> Iterator[FreshBooksSandbox]:
    box = FreshBooksSandbox(clock=FakeClock())
    seed(box)
    yield box
    box.stop()


@pytest.fixture
def fb(sandbox: FreshBooksSandbox) -> Iterator[Fb]:
    client = Fb(sandbox.start())
    assert client.refresh().status_code == 200
    yield client
    client.http.close()


def expense(category_id: int, day: str = "2026-12-04", amount: str = "7.57", **extra: Any) -> dict[str, Any]:
    return {
        "expense": {
            "amount": {"amount": amount, "code": "USD"},
            "categoryid": category_id,
            "date": day,
            "vendor": "Stripe",
            "notes": "invoice-sync: stripe po_1 fees PO-1",
            "staffid": 1,
            **extra,
        }
    }


def test_categories_are_listed_with_merchant_fees_seeded(sandbox: FreshBooksSandbox, fb: Fb) -> None:
    """Given a seeded account, then GET expenses/categories lists "Merchant Fees" in FreshBooks'
    list envelope, and GET of its id answers the single category."""
    response = fb.get("expenses/categories")
    assert response.status_code == 200
    listed = response.json()["response"]["result"]
    assert {"page", "pages", "per_page", "total"} <= set(listed)
    names = {c["category"]: c["categoryid"] for c in listed["categories"]}
    assert names["Merchant Fees"] == sandbox.category_id(ACCOUNT, "Merchant Fees")
    one = result(fb.get(f"expenses/categories/{names['Merchant Fees']}"), "category")
    assert (one["category"], one["vis_state"]) == ("Merchant Fees", 0)


def test_an_expense_is_created_and_found_by_its_day(sandbox: FreshBooksSandbox, fb: Fb) -> None:
    """Given an expense of 7.57 on 2026-12-04, then it is answered with its money as a string and
    FreshBooks' fields, and search[date_min] / search[date_max] (inclusive / exclusive) find it on
    its day only."""
    fees = sandbox.category_id(ACCOUNT)
    created = result(fb.post("expenses/expenses", expense(fees)), "expense")
    assert money(created, "amount") == Decimal("7.57")
    assert (created["expenseid"], created["categoryid"], created["staffid"], created["clientid"]) == (
        created["id"],
        fees,
        1,
        0,
    )
    fb.post("expenses/expenses", expense(fees, day="2026-12-05"))

    def on(day_min: str, day_max: str) -> list[int]:
        response = fb.get("expenses/expenses", **{"search[date_min]": day_min, "search[date_max]": day_max})
        return [e["id"] for e in response.json()["response"]["result"]["expenses"]]

    assert on("2026-12-04", "2026-12-05") == [created["id"]]
    assert result(fb.get(f"expenses/expenses/{created['id']}"), "expense")["notes"] == created["notes"]


@pytest.mark.parametrize(
    ("change", "field", "errno"),
    [
        ({"categoryid": None}, "categoryid", 1001),
        ({"categoryid": 42}, "categoryid", 1012),
        ({"staffid": None}, "staffid", 1001),
        ({"date": "04/12/2026"}, "date", 1004),
        ({"amount": {"amount": "-1.00", "code": "USD"}}, "amount", 1004),
    ],
)
def test_an_expense_freshbooks_would_refuse_is_a_422(
    sandbox: FreshBooksSandbox, fb: Fb, change: dict[str, Any], field: str, errno: int
) -> None:
    """Given an expense missing its category or staff, naming an unknown category, with a bad date
    or a negative amount, then the sandbox answers 422 with FreshBooks' error naming the field, and
    books nothing."""
    body = expense(sandbox.category_id(ACCOUNT))
    body["expense"] = {k: v for k, v in (body["expense"] | change).items() if v is not None}
    response = fb.post("expenses/expenses", body)
    assert response.status_code == 422
    assert (error(response)["field"], error(response)["errno"]) == (field, errno)
    assert sandbox.documents(ACCOUNT, "expenses") == []


def test_a_deleted_expense_is_left_out_of_the_list(sandbox: FreshBooksSandbox, fb: Fb) -> None:
    created = result(fb.post("expenses/expenses", expense(sandbox.category_id(ACCOUNT))), "expense")
    deleted = fb.put(f"expenses/expenses/{created['id']}", {"expense": {"vis_state": 1}})
    assert deleted.status_code == 200
    assert fb.get("expenses/expenses").json()["response"]["result"]["expenses"] == []
    listed = fb.get("expenses/expenses", **{"search[vis_state]": "1"}).json()["response"]["result"]
    assert [e["id"] for e in listed["expenses"]] == [created["id"]]
