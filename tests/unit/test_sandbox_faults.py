"""The ledger sandboxes' chaos faults, driven in-process through their WSGI apps
(``httpx.WSGITransport``: no sockets) on a fake clock.

``fail_randomly`` answers a share of API calls 500, 502 or 503 instead of serving them (nothing
changes) and loses the answer of a share of the writes it commits (the write stays); both are
repeatable from a seed and set over the control API. ``disconnect`` is the app disconnected in
the ledger: the access token dies with the refresh token. The dropped connection needs a real
socket: tests/integration/test_sandbox_faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-000000000001"
REALM = "9130350000000001"
ACCOUNT = "zDmNq"
CLIENT = ("client-id", "client-secret")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


def client(app: object) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sandbox.test")  # type: ignore[arg-type]


class Xero:
    def __init__(self, sandbox: XeroSandbox, http: httpx.Client) -> None:
        self.sandbox = sandbox
        self.http = http
        self.refresh = "xrt"
        self.headers = self.token()

    def token(self) -> dict[str, str]:
        answer = self.http.post(
            "/connect/token", data={"grant_type": "refresh_token", "refresh_token": self.refresh}, auth=CLIENT
        )
        assert answer.status_code == 200, answer.text
        self.refresh = answer.json()["refresh_token"]
        token = answer.json()["access_token"]
        return {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}

    def create(self, name: str) -> httpx.Response:
        return self.http.put(
            "/api.xro/2.0/Contacts", json={"Contacts": [{"Name": name}]}, headers=self.headers
        )

    def names(self) -> list[str]:
        return [c["Name"] for c in self.sandbox.documents(TENANT, "Contacts")]


@pytest.fixture
def xero() -> Iterator[Xero]:
    sandbox = XeroSandbox(clock=FakeClock(), calls_per_minute=10_000)
    sandbox.seed_organisation(TENANT, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="xrt")
    with client(sandbox.wsgi_app) as http:
        yield Xero(sandbox, http)


def test_random_errors_answer_5xx_and_change_nothing(xero: Xero) -> None:
    """Given every call failing at random, a create is answered 500, 502 or 503 and stores
    nothing; with the rate back at 0 it goes through."""
    xero.sandbox.fail_randomly(TENANT, error_rate=1.0, seed=3)
    refused = [xero.create(f"Customer {n}").status_code for n in range(12)]
    assert set(refused) <= {500, 502, 503}
    assert len(set(refused)) > 1  # the statuses vary, as a ledger's bad minute does
    assert xero.names() == []
    xero.sandbox.fail_randomly(TENANT, error_rate=0.0)
    assert xero.create("Acme Corp").status_code == 200
    assert xero.names() == ["Acme Corp"]


def test_a_lost_answer_hides_a_write_that_happened(xero: Xero) -> None:
    """Given every committed write losing its answer as a gateway page, the create answers 502
    with an HTML body, yet the contact is stored; a read is answered as usual."""
    xero.sandbox.fail_randomly(TENANT, lose_rate=1.0, lost_as="gateway")
    lost = xero.create("Acme Corp")
    assert lost.status_code == 502
    assert lost.headers["content-type"].startswith("text/html")
    assert xero.names() == ["Acme Corp"]
    read = xero.http.get("/api.xro/2.0/Contacts", headers=xero.headers)
    assert read.status_code == 200


def test_a_refused_write_loses_no_answer(xero: Xero) -> None:
    """Given lost answers for every write and every call failing, the 5xx is the answer (nothing
    was committed, so there is nothing to lose) and nothing is stored."""
    xero.sandbox.fail_randomly(TENANT, error_rate=1.0, lose_rate=1.0, seed=1)
    assert xero.create("Acme Corp").status_code in {500, 502, 503}
    assert xero.names() == []


def test_random_faults_repeat_from_their_seed_and_are_set_over_http(xero: Xero) -> None:
    """Given 30 % errors and 30 % lost answers set through the control API with a seed, the same
    seed answers the same calls the same way again; rates outside 0..1 and an unknown way of
    losing an answer are 400s."""
    control = f"/_sandbox/organisations/{TENANT}/faults"

    def statuses(run: int) -> list[int]:
        body = {"error_rate": 0.3, "lose_rate": 0.3, "seed": 11}
        assert xero.http.post(control, json=body).status_code == 200
        return [xero.create(f"R{run} C{n}").status_code for n in range(30)]

    first, second = statuses(1), statuses(2)
    assert first == second
    assert 200 in first
    assert set(first) - {200} <= {500, 502, 503}
    stored = [sum(1 for name in xero.names() if name.startswith(f"R{run} ")) for run in (1, 2)]
    # Every 200 stored its contact, and so did each lost answer (a 502 hiding a commit).
    assert stored[0] == stored[1] > first.count(200)
    for body in ({"error_rate": 1.5}, {"lose_rate": -0.1}, {"lose_rate": 0.1, "lost_as": "smoke"}):
        assert xero.http.post(control, json=body).status_code == 400


def test_disconnect_kills_the_access_token_and_the_refresh_token(xero: Xero) -> None:
    """Given a working token, when the app is disconnected over the control API, the next call
    is 401 and the refresh grant is refused invalid_grant: the connection needs a new consent."""
    assert xero.create("Before").status_code == 200
    assert xero.http.post(f"/_sandbox/organisations/{TENANT}/disconnect").status_code == 200
    assert xero.create("After").status_code == 401
    refused = xero.http.post(
        "/connect/token", data={"grant_type": "refresh_token", "refresh_token": xero.refresh}, auth=CLIENT
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert xero.names() == ["Before"]


@pytest.mark.parametrize("kind", ["quickbooks", "freshbooks"])
def test_every_sandbox_takes_the_random_faults(kind: str) -> None:
    """Given QBO or FreshBooks failing every call at random, an API read is answered 5xx (the
    faults live in the shared sandbox base, for every ledger)."""
    clock = FakeClock()
    if kind == "quickbooks":
        qbo = QuickBooksSandbox(clock=clock)
        qbo.seed_company(REALM, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="rt")
        with client(qbo.wsgi_app) as http:
            token = http.post(
                "/oauth2/v1/tokens/bearer",
                data={"grant_type": "refresh_token", "refresh_token": "rt"},
                auth=CLIENT,
            ).json()["access_token"]
            qbo.fail_randomly(REALM, error_rate=1.0)
            answer = http.get(
                f"/v3/company/{REALM}/item/1",
                params={"minorversion": "75"},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
    else:
        fb = FreshBooksSandbox(clock=clock)
        fb.seed_account(
            ACCOUNT, business_id=900001, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="rt"
        )
        with client(fb.wsgi_app) as http:
            token = http.post(
                "/auth/oauth/token",
                json={
                    "grant_type": "refresh_token",
                    "refresh_token": "rt",
                    "client_id": CLIENT[0],
                    "client_secret": CLIENT[1],
                },
            ).json()["access_token"]
            fb.fail_randomly(ACCOUNT, error_rate=1.0)
            answer = http.get(
                f"/accounting/account/{ACCOUNT}/users/clients", headers={"Authorization": f"Bearer {token}"}
            )
    assert answer.status_code in {500, 502, 503}
