"""The Stripe stand-in speaks Stripe's wire format over HTTP, and the CLI's Stripe client reads it
as it would read api.stripe.com: pages, cursors, filters, auth, 404, 429 and 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import stripe
from moto import mock_aws
from pydantic import SecretStr

from invoice_sync.errors import ConnectionBroken
from invoice_sync.sources.stripe_api import (
    KEY_ENV,
    StripeApi,
    StripeAuthError,
    StripeNotFound,
    StripeRateLimited,
    api_key,
)
from invoice_sync.store.secrets import SecretStore
from invoice_sync_ops.sandboxes.stripe import (
    StripeSandbox,
    fixture_invoices,
    generate_invoices,
    validate_invoice,
)

ACCOUNT = "acct_1TestAccount01"
KEY = "sk_test_integration_key_0042"
START = 1_700_000_000  # 2023-11-14


class FakeClock:
    """The sandbox's clock and the client's sleep: sleeping moves time on, nothing waits."""

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
    server.seed_account(
        ACCOUNT, api_key=KEY, invoices=generate_invoices(250, start=START, step_seconds=3600), sdk_check=True
    )
    server.start()
    yield server
    server.stop()


def client(sandbox: StripeSandbox, clock: FakeClock, key: str = KEY, **options: Any) -> StripeApi:
    return StripeApi(sandbox.base_url, SecretStr(key), sleep=clock.sleep, **options)


def test_listing_pages_through_every_invoice_newest_first(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """250 invoices come back as pages of 100, 100 and 50 following starting_after, newest first,
    each once; the request log shows the cursor of each page."""
    api = client(sandbox, clock)
    pages = list(api.list_invoices())
    assert [len(page) for page in pages] == [100, 100, 50]
    ids = [invoice["id"] for page in pages for invoice in page]
    assert len(set(ids)) == 250
    created = [invoice["created"] for page in pages for invoice in page]
    assert created == sorted(created, reverse=True)
    assert api.use.requests == 3
    paths = [path for _, path, _ in sandbox.request_log]
    assert "starting_after=" + pages[0][-1]["id"] in paths[1]


def test_created_window_and_status_filter(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """created[gte]/created[lte] bound the list inclusively, and status keeps one status only."""
    api = client(sandbox, clock)
    window = [
        i
        for page in api.list_invoices(created_gte=START + 10 * 3600, created_lte=START + 19 * 3600)
        for i in page
    ]
    assert len(window) == 10
    assert {i["created"] for i in window} == {START + n * 3600 for n in range(10, 20)}
    paid = [i for page in api.list_invoices(status="paid") for i in page]
    assert len(paid) == 125
    assert {i["status"] for i in paid} == {"paid"}


def test_the_official_sdk_reads_the_same_list(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """stripe-python, pointed at the stand-in, auto-pages to the same invoices in the same order:
    the list object, cursors and invoice objects are Stripe's own shape."""
    sdk = stripe.StripeClient(KEY, base_addresses={"api": sandbox.base_url})
    through_sdk = [i.id for i in sdk.v1.invoices.list(params={"limit": 100}).auto_paging_iter()]
    ours = [i["id"] for page in client(sandbox, clock).list_invoices() for i in page]
    assert through_sdk == ours
    one = sdk.v1.invoices.retrieve(ours[0])
    assert one.object == "invoice"
    assert one.lines.data[0].pricing is not None


def test_a_wrong_key_is_refused_without_the_key_in_any_message(
    sandbox: StripeSandbox, clock: FakeClock
) -> None:
    """A bad key answers 401 with Stripe's error object (key masked); the client raises one line
    that names where the key came from, never the key."""
    wrong = "sk_test_definitely_not_the_key"
    raw = httpx.get(f"{sandbox.base_url}/v1/invoices", headers={"Authorization": f"Bearer {wrong}"})
    assert raw.status_code == 401
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert wrong not in raw.text
    assert "sk_test_****_key" in raw.json()["error"]["message"]
    with pytest.raises(StripeAuthError) as refused:
        client(sandbox, clock, key=wrong, key_source="--stripe-key").get_invoice("in_1Hist000001")
    assert "--stripe-key" in str(refused.value)
    assert wrong not in str(refused.value)
    assert refused.value.status == 401


def test_no_key_at_all_is_401_asking_for_bearer_auth(sandbox: StripeSandbox) -> None:
    """A request without Authorization gets Stripe's 'You did not provide an API key' 401."""
    raw = httpx.get(f"{sandbox.base_url}/v1/invoices")
    assert raw.status_code == 401
    assert "did not provide an API key" in raw.json()["error"]["message"]


def test_an_unknown_invoice_is_resource_missing(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """GET /v1/invoices/{unknown} is 404 resource_missing with param id; the client says so."""
    raw = httpx.get(f"{sandbox.base_url}/v1/invoices/in_nope", headers={"Authorization": f"Bearer {KEY}"})
    assert raw.status_code == 404
    assert raw.json()["error"] | {} == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "param": "id",
        "message": "No such invoice: 'in_nope'",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
    }
    with pytest.raises(StripeNotFound, match="No such invoice: 'in_nope'"):
        client(sandbox, clock).get_invoice("in_nope")


def test_limit_over_100_is_a_parameter_error(sandbox: StripeSandbox) -> None:
    """Stripe caps list pages at 100: limit=101 is a 400 naming the limit parameter."""
    raw = httpx.get(
        f"{sandbox.base_url}/v1/invoices", params={"limit": "101"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["param"] == "limit"


def test_injected_429s_are_retried_with_backoff(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """Two injected 429s (rate_limit, no Retry-After, as Stripe sends them) are retried after
    growing back-off waits, and the third attempt answers."""
    sandbox.inject_status(ACCOUNT, 429, count=2)
    api = client(sandbox, clock)
    assert api.get_invoice("in_1Hist000001")["id"] == "in_1Hist000001"
    assert (api.use.requests, api.use.throttled, api.use.retried) == (3, 2, 2)
    assert clock.slept == [0.5, 1.0]


def test_the_per_second_read_limit_answers_429_and_the_client_waits_it_out(clock: FakeClock) -> None:
    """A test-mode key gets 25 reads a second; the 26th in the same second is a 429 (and again half
    a second later, the window still full), and the client backs off past the second and goes on."""
    server = StripeSandbox(clock=clock)
    server.seed_account(ACCOUNT, api_key=KEY, invoices=generate_invoices(3, start=START))
    server.start()
    try:
        api = StripeApi(server.base_url, SecretStr(KEY), sleep=clock.sleep)
        for _ in range(26):
            api.get_invoice("in_1Hist000001")
        assert api.use.throttled == 2
        assert [status for _, _, status in server.request_log].count(429) == 2
        assert clock.slept == [0.5, 1.0]
        raw = httpx.get(f"{server.base_url}/v1/invoices", headers={"Authorization": f"Bearer {KEY}"})
        assert raw.status_code == 200
    finally:
        server.stop()


def test_throttling_that_lasts_gives_up_within_bounds(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """A 429 that does not clear ends after max_attempts, with one line and a bounded total wait."""
    sandbox.inject_status(ACCOUNT, 429, count=10)
    api = client(sandbox, clock, max_attempts=3)
    with pytest.raises(StripeRateLimited, match="429"):
        api.get_invoice("in_1Hist000001")
    assert api.use.requests == 3
    assert sum(clock.slept) == pytest.approx(1.5)


def test_server_errors_are_retried(sandbox: StripeSandbox, clock: FakeClock) -> None:
    """A 503 (Stripe-Should-Retry) is retried like a 429; the list then completes."""
    sandbox.inject_status(ACCOUNT, 503)
    pages = list(client(sandbox, clock).list_invoices(created_gte=START, created_lte=START))
    assert [i["id"] for page in pages for i in page] == ["in_1Hist000001"]


def test_seeding_refuses_what_the_parser_or_sdk_could_not_read(sandbox: StripeSandbox) -> None:
    """The stand-in only serves invoices invoice-sync's parser and the stripe SDK both read: one
    without lines, or of another object type, is refused at seeding."""
    (good,) = generate_invoices(1, start=START)
    assert validate_invoice(good, sdk=True) is good
    with pytest.raises(ValueError, match="lines"):
        validate_invoice({k: v for k, v in good.items() if k != "lines"})
    with pytest.raises(ValueError, match="not an invoice"):
        sandbox.add_invoices(ACCOUNT, [{**good, "object": "credit_note"}])


def test_the_fixtures_seed_over_the_control_api(clock: FakeClock) -> None:
    """POST /_sandbox/accounts seeds an account with the webhook fixtures' invoices (one each, the
    latest snapshot) plus generated ones; POST .../invoices adds more."""
    server = StripeSandbox(clock=clock)
    server.start()
    try:
        seeded = httpx.post(
            f"{server.base_url}/_sandbox/accounts",
            json={
                "account_id": ACCOUNT,
                "api_key": KEY,
                "fixtures": True,
                "generate": {"count": 2, "start": START},
            },
        )
        assert seeded.status_code == 201
        extra = generate_invoices(1, start=START, id_prefix="in_1Extra", prefix="EXTRA")
        added = httpx.post(f"{server.base_url}/_sandbox/accounts/{ACCOUNT}/invoices", json=extra)
        assert added.json() == {"added": 1}
        held = {i["id"]: i for i in server.documents(ACCOUNT, "invoices")}
        assert len(held) == len(fixture_invoices()) + 3
        assert held["in_1QaCurrentAcme01"]["status"] == "paid"  # a2/a3's snapshot, the latest
    finally:
        server.stop()


def test_the_key_comes_from_the_flag_then_the_environment_then_secrets_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--stripe-key wins, then STRIPE_API_KEY, then {prefix}/{connection}/stripe-api; a missing
    secret is one line saying how to store it; the accessor hands out a SecretStr only."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        store = SecretStore("invoice-sync/test", client, cache_seconds=0)
        with pytest.raises(ConnectionBroken, match="no Stripe API key stored for connection acme"):
            store.stripe_api_key("acme")
        with pytest.raises(StripeAuthError, match="invoice-sync secret stripe-api --connection acme"):
            api_key(None, store, "acme")
        store.put_stripe_api_key("acme", "rk_test_from_secrets")
        stored = json.loads(
            client.get_secret_value(SecretId="invoice-sync/test/acme/stripe-api")["SecretString"]
        )
        assert stored == {"api_key": "rk_test_from_secrets"}
        key, source = api_key(None, store, "acme")
        assert isinstance(key, SecretStr)
        assert key.get_secret_value() == "rk_test_from_secrets"
        assert "rk_test" not in repr(key) and source == "the secret invoice-sync/test/acme/stripe-api"
        monkeypatch.setenv(KEY_ENV, "sk_test_from_env")
        assert api_key(None, store, "acme")[0].get_secret_value() == "sk_test_from_env"
        assert api_key("sk_test_flag", store, "acme")[0].get_secret_value() == "sk_test_flag"
        client.put_secret_value(SecretId="invoice-sync/test/acme/stripe-api", SecretString='{"api_key": 5}')
        with pytest.raises(ConnectionBroken, match="holds no Stripe key"):
            store.stripe_api_key("acme")
