"""The ledger sandboxes' limits and random throttling, driven in-process through their WSGI apps
(``httpx.WSGITransport``: no sockets) on a fake clock.

QBO's limits per company are Intuit's (LEDGER-APIS.md 1.3): besides 500 a minute and 10 at
once, 10 requests a second and at most 40 ``/batch`` requests a minute, each refused 429
ThrottleExceeded with no Retry-After. ``throttle_randomly`` answers a share of calls 429, as a
company whose quota other apps share does, changing nothing and counting against no limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

REALM = "9130350000000001"
TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-000000000001"
ACCOUNT = "zDmNq"
CLIENT = ("client-id", "client-secret")
MINOR = {"minorversion": "75"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


def client(app: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sandbox.test")


def qbo_token(http: httpx.Client) -> dict[str, str]:
    response = http.post(
        "/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": "rt-0"}, auth=CLIENT
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}", "Accept": "application/json"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def qbo(clock: FakeClock) -> Iterator[tuple[QuickBooksSandbox, httpx.Client, dict[str, str]]]:
    sandbox = QuickBooksSandbox(clock=clock, batch_requests_per_minute=3)
    sandbox.seed_company(REALM, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="rt-0")
    with client(sandbox.wsgi_app) as http:
        yield sandbox, http, qbo_token(http)


def batch(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
    return http.post(f"/v3/company/{REALM}/batch", params=MINOR, json=body, headers=headers)


def read(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return http.get(f"/v3/company/{REALM}/item/1", params=MINOR, headers=headers)


def test_qbo_refuses_batch_requests_past_its_batch_window(
    qbo: tuple[QuickBooksSandbox, httpx.Client, dict[str, str]], clock: FakeClock
) -> None:
    """Given 3 /batch requests a minute (40 by default), the 4th within the minute is 429
    ThrottleExceeded with no Retry-After header, while an ordinary read still goes; once the
    first batch is a minute old, a batch goes again."""
    _, http, headers = qbo
    statuses = []
    for _ in range(4):
        statuses.append(batch(http, headers).status_code)
        clock.now += 10
    assert statuses == [200, 200, 200, 429]
    refused = batch(http, headers)
    assert refused.json()["Fault"]["Error"][0]["code"] == "3001"
    assert "Retry-After" not in refused.headers
    assert read(http, headers).status_code == 200
    clock.now += 20  # the first batch was sent 60 s ago
    assert batch(http, headers).status_code == 200


def test_qbo_refuses_the_eleventh_request_in_a_second(
    qbo: tuple[QuickBooksSandbox, httpx.Client, dict[str, str]], clock: FakeClock
) -> None:
    """Given Intuit's 10 requests a second, the 11th in the same second is 429 (well inside 500 a
    minute), and a second later requests go again."""
    _, http, headers = qbo
    statuses = [read(http, headers).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    clock.now += 1
    assert read(http, headers).status_code == 200


def test_qbo_defaults_are_intuits_limits() -> None:
    """A sandbox built without options enforces what LEDGER-APIS.md 1.3 says QBO enforces."""
    sandbox = QuickBooksSandbox()
    assert (
        sandbox.requests_per_minute,
        sandbox.requests_per_second,
        sandbox.max_concurrent,
        sandbox.batch_requests_per_minute,
    ) == (500, 10, 10, 40)


def test_random_throttling_refuses_a_share_of_calls_and_changes_nothing(clock: FakeClock) -> None:
    """Given Xero throttling 100 % of calls at random, a create is refused 429 with Retry-After
    and X-Rate-Limit-Problem and stores nothing; at 0 % it goes through. A refused call does not
    count against the minute (X-MinLimit-Remaining is as before)."""
    sandbox = XeroSandbox(clock=clock)
    sandbox.seed_organisation(TENANT, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="xrt")
    with client(sandbox.wsgi_app) as http:
        token = http.post(
            "/connect/token", data={"grant_type": "refresh_token", "refresh_token": "xrt"}, auth=CLIENT
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}
        body = {"Contacts": [{"Name": "Acme Corp"}]}
        sandbox.throttle_randomly(TENANT, 1.0)
        refused = http.put("/api.xro/2.0/Contacts", json=body, headers=headers)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-Rate-Limit-Problem"] == "minute"
        assert refused.headers["X-MinLimit-Remaining"] == "60"
        assert sandbox.documents(TENANT, "Contacts") == []
        sandbox.throttle_randomly(TENANT, 0.0)
        created = http.put("/api.xro/2.0/Contacts", json=body, headers=headers)
        assert created.status_code == 200
        assert created.headers["X-MinLimit-Remaining"] == "59"
        assert [c["Name"] for c in sandbox.documents(TENANT, "Contacts")] == ["Acme Corp"]


def test_random_throttling_is_repeatable_from_its_seed_and_set_over_http(clock: FakeClock) -> None:
    """Given FreshBooks throttling 40 % of calls, set through the control API with a seed, the
    same seed refuses the same calls again; some are refused and some served, and a rate
    outside 0..1 is a 400."""
    sandbox = FreshBooksSandbox(clock=clock, requests_per_minute=1000)
    sandbox.seed_account(
        ACCOUNT, business_id=900001, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="frt"
    )
    with client(sandbox.wsgi_app) as http:
        token = http.post(
            "/auth/oauth/token",
            json={
                "grant_type": "refresh_token",
                "refresh_token": "frt",
                "client_id": CLIENT[0],
                "client_secret": CLIENT[1],
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def statuses() -> list[int]:
            control = http.post(
                f"/_sandbox/accounts/{ACCOUNT}/faults", json={"throttle_rate": 0.4, "seed": 7}
            )
            assert control.status_code == 200
            return [
                http.get(f"/accounting/account/{ACCOUNT}/users/clients", headers=headers).status_code
                for _ in range(30)
            ]

        first, second = statuses(), statuses()
        assert first == second
        assert set(first) == {200, 429}
        bad = http.post(f"/_sandbox/accounts/{ACCOUNT}/faults", json={"throttle_rate": 2})
        assert bad.status_code == 400
