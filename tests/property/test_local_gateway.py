"""The local HTTP API (``LocalHttpApi``) hands the intake what API Gateway would: properties over
real HTTP of the headers it passes on and of its size limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoice_sync_ops.local.api_gateway import MAX_BODY, LocalHttpApi


class Seen:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def handler(self, event: dict[str, Any], _context: object) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": "{}", "headers": {"Content-Type": "application/json"}}


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    api = LocalHttpApi(seen.handler)
    url = api.start()
    yield f"{url}/webhooks/stripe/acme", seen
    api.stop()


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=,.-", min_size=1, max_size=20)


@given(
    values=st.lists(token, min_size=1, max_size=4), case=st.sampled_from([str.lower, str.title, str.upper])
)
def test_a_header_sent_several_times_arrives_joined_with_commas(
    gateway: tuple[str, Seen], values: list[str], case: Any
) -> None:
    """Given Stripe-Signature sent once or more (any case), then the event carries one lower-case
    header whose value is the values joined with commas, as API Gateway's payload 2.0 does (so a
    second signature header cannot hide behind the first)."""
    url, seen = gateway
    response = httpx.post(url, content=b"{}", headers=[(case("stripe-signature"), v) for v in values])
    assert response.status_code == 200
    assert seen.events[-1]["headers"]["stripe-signature"] == ",".join(values)


@settings(max_examples=6)
@given(size=st.sampled_from([MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, MAX_BODY + 4096]), chunked=st.booleans())
def test_the_size_limit_holds_for_sized_and_chunked_bodies(
    gateway: tuple[str, Seen], size: int, chunked: bool
) -> None:
    """Given a body of ``size`` bytes, sent with a Content-Length or chunked (no length), then over
    the limit 413 and the function is not invoked; at or under it the function gets every byte."""
    url, seen = gateway
    before = len(seen.events)
    body = b"x" * size

    def pieces() -> Iterator[bytes]:
        for start in range(0, size, 1 << 20):
            yield body[start : start + (1 << 20)]

    response = httpx.post(url, content=pieces() if chunked else body, timeout=60)
    if size > MAX_BODY:
        assert response.status_code == 413
        assert len(seen.events) == before
    else:
        assert response.status_code == 200
        assert len(seen.events[-1]["body"]) == size
