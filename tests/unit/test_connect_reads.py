"""connect's reads after the grant (company info, tenants) wait out a 429 or a passing 5xx."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from invoice_sync.models.tokens import TokenSet
from invoice_sync_ops.commands import CliError, connect

SPEC = cast(Any, SimpleNamespace(title="Xero"))
TOKENS = TokenSet(
    client_id="c", client_secret=SecretStr("s"), refresh_token=SecretStr("r"), access_token=SecretStr("a")
)


def _client(answers: list[httpx.Response]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_a_429_is_waited_out_as_the_ledger_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the ledger answers 429 with Retry-After 7, then a 503, then the company, then connect
    waits 7 s, then its own back-off (4 s), and reads the company: the grant is not wasted."""
    waits: list[float] = []
    monkeypatch.setattr(connect, "_sleep", waits.append)
    http, seen = _client(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(503),
            httpx.Response(200, json={"Organisations": [{"Name": "Acme"}]}),
        ]
    )
    body = connect._get(SPEC, http, TOKENS, "https://ledger.test/org", "organisation")
    assert body == {"Organisations": [{"Name": "Acme"}]}
    assert waits == [7.0, 4.0]
    assert len(seen) == 3
    assert all(r.headers["Authorization"] == "Bearer a" for r in seen)


def test_a_ledger_that_stays_throttled_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given 429s with a Retry-After of an hour on every try, then each wait is capped at a minute
    and after four tries the error names the status, with no token in it."""
    waits: list[float] = []
    monkeypatch.setattr(connect, "_sleep", waits.append)
    http, seen = _client([httpx.Response(429, headers={"Retry-After": "3600"}) for _ in range(4)])
    with pytest.raises(CliError, match="answered HTTP 429 reading its organisation") as error:
        connect._get(SPEC, http, TOKENS, "https://ledger.test/org", "organisation")
    assert "Bearer" not in str(error.value)
    assert waits == [60.0, 60.0, 60.0]
    assert len(seen) == 4


def test_a_refused_token_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(connect, "_sleep", waits.append)
    http, seen = _client([httpx.Response(401)])
    with pytest.raises(CliError, match="refused the new access token"):
        connect._get(SPEC, http, TOKENS, "https://ledger.test/org", "organisation")
    assert waits == [] and len(seen) == 1
