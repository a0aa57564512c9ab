"""A lost answer as a dropped connection, over a real loopback socket: the sandbox commits the
write and closes the connection without a byte of answer (what a client sees when the ledger's
edge dies after the ledger saved the document), and the server goes on serving."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox

REALM = "9130350000000001"
CLIENT = ("client-id", "client-secret")
MINOR = {"minorversion": "75"}


@pytest.fixture
def qbo() -> Iterator[tuple[QuickBooksSandbox, str, dict[str, str]]]:
    sandbox = QuickBooksSandbox(requests_per_second=1000)  # the limits are not what is tested
    sandbox.seed_company(REALM, client_id=CLIENT[0], client_secret=CLIENT[1], refresh_token="rt")
    url = sandbox.start()
    try:
        token = httpx.post(
            f"{url}/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": "rt"},
            auth=CLIENT,
        ).json()["access_token"]
        yield sandbox, url, {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    finally:
        sandbox.stop()


def test_a_dropped_connection_hides_a_committed_write(
    qbo: tuple[QuickBooksSandbox, str, dict[str, str]],
) -> None:
    """Given the next write's answer lost as a dropped connection (set over the control API), the
    client's POST fails with the server disconnecting, yet the customer is stored and the call is
    logged with status 0; the next write on the same client is answered as usual."""
    sandbox, url, headers = qbo
    control = httpx.post(
        f"{url}/_sandbox/companies/{REALM}/faults", json={"lose_responses": 1, "lost_as": "drop"}
    )
    assert control.status_code == 200
    with httpx.Client(base_url=url, headers=headers) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(f"/v3/company/{REALM}/customer", params=MINOR, json={"DisplayName": "Acme Corp"})
        answered = http.post(f"/v3/company/{REALM}/customer", params=MINOR, json={"DisplayName": "Beta Ltd"})
    assert answered.status_code == 200
    names = [c["DisplayName"] for c in sandbox.documents(REALM, "Customer")]
    assert "Acme Corp" in names and "Beta Ltd" in names
    assert [status for _, path, status in sandbox.request_log if "/customer" in path] == [0, 200]


def test_mixed_lost_answers_are_either_a_gateway_page_or_a_drop(
    qbo: tuple[QuickBooksSandbox, str, dict[str, str]],
) -> None:
    """Given every committed write losing its answer, mixed, writes end as 502 pages or dropped
    connections (both kinds among 12), and every one of them was stored."""
    sandbox, url, headers = qbo
    sandbox.fail_randomly(REALM, lose_rate=1.0, lost_as="mixed", seed=5)
    seen: set[str] = set()
    with httpx.Client(base_url=url, headers=headers) as http:
        for n in range(12):
            try:
                answer = http.post(
                    f"/v3/company/{REALM}/customer", params=MINOR, json={"DisplayName": f"C{n}"}
                )
                seen.add(str(answer.status_code))
            except httpx.RemoteProtocolError:
                seen.add("dropped")
    assert seen == {"502", "dropped"}
    stored = {c["DisplayName"] for c in sandbox.documents(REALM, "Customer")}
    assert {f"C{n}" for n in range(12)} <= stored
