"""The authorization-code grant against each ledger sandbox over HTTP, exchanged and parsed by the
same ``token_grant`` that push's refresher uses: the code is single use, bound to its client and
redirect URI (and, for Xero, to its PKCE verifier), and the token set it gives refreshes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from invoice_sync.errors import LedgerUnavailable, TokenRevoked
from invoice_sync.ledgers.http import oauth_refresher, token_grant
from invoice_sync.models.tokens import TokenSet
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.oauth_flow import Pkce, authorize_url
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox

CLIENT = "grant-client"
SECRET = SecretStr("grant-secret")
REDIRECT = "http://localhost:8765/callback"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Ledger:
    kind: str
    sandbox: QuickBooksSandbox | XeroSandbox | FreshBooksSandbox
    authorize: str
    token_url: str
    json_body: bool
    pkce: bool


@pytest.fixture(params=["quickbooks", "xero", "freshbooks"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    kind = str(request.param)
    sandbox: QuickBooksSandbox | XeroSandbox | FreshBooksSandbox
    if kind == "quickbooks":
        sandbox = QuickBooksSandbox()
        sandbox.seed_company("4620816365", client_id=CLIENT, client_secret="grant-secret", refresh_token="r0")
    elif kind == "xero":
        sandbox = XeroSandbox()
        sandbox.seed_organisation(
            "0c2f7d4a-1111-4aaa-8bbb-000000000001",
            client_id=CLIENT,
            client_secret="grant-secret",
            refresh_token="r0",
        )
    else:
        sandbox = FreshBooksSandbox()
        sandbox.seed_account(
            "aBc12", business_id=77, client_id=CLIENT, client_secret="grant-secret", refresh_token="r0"
        )
    url = sandbox.start()
    env = LEDGERS[kind].environment(url)
    prefix = kind.upper() if kind != "quickbooks" else "QUICKBOOKS"
    try:
        yield Ledger(
            kind=kind,
            sandbox=sandbox,
            authorize=env[f"{prefix}_AUTHORIZE_URL"],
            token_url=env[f"{prefix}_TOKEN_URL"],
            json_body=kind == "freshbooks",
            pkce=kind == "xero",
        )
    finally:
        sandbox.stop()


def consent(ledger: Ledger, http: httpx.Client, pkce: Pkce | None = None) -> dict[str, str]:
    """What the consent page sends the browser back with (it grants at once: no person clicks)."""
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "state": "st"}
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    response = http.get(authorize_url(ledger.authorize, params))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(ledger: Ledger, http: httpx.Client, code: str, **extra: str) -> TokenSet:
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    return token_grant(
        http,
        ledger.token_url,
        grant,
        client_id=CLIENT,
        client_secret=SECRET,
        name=ledger.kind,
        json_body=ledger.json_body,
        what="authorization code exchange",
        clock=lambda: NOW,
    )


def test_a_code_exchanges_once_for_tokens_that_refresh(ledger: Ledger) -> None:
    """Given a code from the consent page, when it is exchanged with the ledger's client
    authentication (basic auth form; FreshBooks JSON), then the token set has an access token, its
    expiry and a refresh token; the refresher push uses accepts that token set; and presenting the
    same code again is refused as invalid_grant."""
    pkce = Pkce() if ledger.pkce else None
    with httpx.Client(timeout=10) as http:
        redirect = consent(ledger, http, pkce)
        assert redirect["state"] == "st"
        if ledger.kind == "quickbooks":
            assert redirect["realmId"] == "4620816365"
        extra = {"code_verifier": pkce.verifier} if pkce else {}

        tokens = exchange(ledger, http, redirect["code"], **extra)

        assert tokens.client_id == CLIENT
        assert tokens.access_token is not None
        assert tokens.access_expires_at is not None and tokens.access_expires_at > NOW + timedelta(minutes=20)
        assert tokens.refreshed_at == NOW
        refreshed = oauth_refresher(http, ledger.token_url, name=ledger.kind, json_body=ledger.json_body)(
            tokens
        )
        assert refreshed.refresh_token != tokens.refresh_token  # every sandbox rotates it

        with pytest.raises(TokenRevoked) as again:
            exchange(ledger, http, redirect["code"], **extra)
    assert again.value.code == "invalid_grant"
    assert redirect["code"] not in str(again.value)


def test_a_code_is_bound_to_its_redirect_uri(ledger: Ledger) -> None:
    """Given a code issued for one redirect URI, exchanging it with another is refused."""
    pkce = Pkce() if ledger.pkce else None
    with httpx.Client(timeout=10) as http:
        code = consent(ledger, http, pkce)["code"]
        grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost:9/other"}
        if pkce:
            grant["code_verifier"] = pkce.verifier
        with pytest.raises(TokenRevoked) as refused:
            token_grant(
                http,
                ledger.token_url,
                grant,
                client_id=CLIENT,
                client_secret=SECRET,
                name=ledger.kind,
                json_body=ledger.json_body,
            )
    assert refused.value.code == "invalid_grant"


def test_a_wrong_client_secret_is_invalid_client_and_not_repeated(ledger: Ledger) -> None:
    with httpx.Client(timeout=10) as http:
        pkce = Pkce() if ledger.pkce else None
        code = consent(ledger, http, pkce)["code"]
        grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        if pkce:
            grant["code_verifier"] = pkce.verifier
        with pytest.raises(TokenRevoked) as refused:
            token_grant(
                http,
                ledger.token_url,
                grant,
                client_id=CLIENT,
                client_secret=SecretStr("nope-9x"),
                name=ledger.kind,
                json_body=ledger.json_body,
            )
    assert refused.value.code == "invalid_client"
    assert "nope-9x" not in str(refused.value)


def test_xero_codes_need_their_pkce_verifier() -> None:
    """Given a Xero code issued with a PKCE challenge, exchanging it with another verifier is refused."""
    sandbox = XeroSandbox()
    sandbox.seed_organisation(
        "0c2f7d4a-1111-4aaa-8bbb-000000000002",
        client_id=CLIENT,
        client_secret="grant-secret",
        refresh_token="r0",
    )
    url = sandbox.start()
    try:
        env = LEDGERS["xero"].environment(url)
        ledger = Ledger("xero", sandbox, env["XERO_AUTHORIZE_URL"], env["XERO_TOKEN_URL"], False, True)
        with httpx.Client(timeout=10) as http:
            code = consent(ledger, http, Pkce())["code"]
            with pytest.raises(TokenRevoked) as refused:
                exchange(ledger, http, code, code_verifier=Pkce().verifier)
    finally:
        sandbox.stop()
    assert refused.value.code == "invalid_grant"


def test_an_unreachable_token_endpoint_is_unavailable_not_a_traceback() -> None:
    with httpx.Client(timeout=2) as http, pytest.raises(LedgerUnavailable, match="unreachable"):
        token_grant(
            http,
            "http://127.0.0.1:9/token",
            {"grant_type": "authorization_code", "code": "c"},
            client_id=CLIENT,
            client_secret=SECRET,
            name="QBO",
        )
