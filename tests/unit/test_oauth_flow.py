"""The browser half of the authorization-code grant: state, PKCE, the consent address, a pasted
redirect, and the loopback listener that holds the browser until the command's verdict."""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from invoice_sync_ops.oauth_flow import (
    Pkce,
    RedirectListener,
    authorize_url,
    new_state,
    parse_redirect,
    state_matches,
)


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    """Given the verifier of RFC 7636's appendix B, the challenge is the one the RFC gives."""
    pkce = Pkce(verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert pkce.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_fresh_verifiers_and_states_are_long_and_unique() -> None:
    """RFC 7636 wants 43 to 128 characters of verifier; states must not repeat between runs."""
    assert 43 <= len(Pkce().verifier) <= 128
    assert len({new_state() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    ("returned", "matches"),
    [("abc", True), ("abd", False), ("", False), (None, False), ("abc ", False), ("ÄBC", False)],
)
def test_state_matches_only_this_runs_state(returned: str | None, matches: bool) -> None:
    """Only the exact state of this run matches; a missing or different one (even non-ASCII) does not."""
    assert state_matches("abc", returned) is matches


def test_authorize_url_adds_to_a_query_already_there() -> None:
    """Given a consent address that already has a query, the request's parameters are appended
    (encoded), not put after a second '?'."""
    url = authorize_url("https://example.test/authorize?prompt=consent", {"scope": "a b", "state": "x&y"})
    query = parse_qs(urlsplit(url).query)
    assert query == {"prompt": ["consent"], "scope": ["a b"], "state": ["x&y"]}


def test_a_pasted_redirect_gives_its_query() -> None:
    pasted = "  https://example.test/done?code=c0de&state=s7&realmId=123\n"
    assert parse_redirect(pasted) == {"code": "c0de", "state": "s7", "realmId": "123"}


def test_something_else_pasted_is_refused_without_repeating_it() -> None:
    """Given a pasted value that is not a redirect address (say, the code alone), the error says so
    and does not repeat what was pasted (it may be the code)."""
    with pytest.raises(ValueError, match="not the address") as caught:
        parse_redirect("c0de-secret-value")
    assert "c0de-secret-value" not in str(caught.value)


def test_the_listener_holds_the_browser_until_the_verdict() -> None:
    """Given a listener, when the browser lands on its callback, then the command gets the query,
    and the browser's page, sent only after the command answers, shows that answer (escaped)."""
    with RedirectListener(0, host="localhost") as listener:
        assert listener.redirect_uri == f"http://localhost:{listener.port}/callback"
        pages: list[httpx.Response] = []
        browser = threading.Thread(
            target=lambda: pages.append(
                httpx.get(f"http://127.0.0.1:{listener.port}/callback?code=c&state=s", timeout=10)
            )
        )
        browser.start()
        callback = listener.wait(5)
        assert callback is not None
        assert callback.params == {"code": "c", "state": "s"}
        assert pages == []  # still waiting for the verdict
        callback.answer(True, "Connected <Acme & Co>")
        callback.answer(False, "a second answer is ignored")
        assert callback.delivered(5)
        browser.join(5)
    assert pages[0].status_code == 200
    assert "Connected &lt;Acme &amp; Co&gt;" in pages[0].text
    assert pages[0].headers["Cache-Control"] == "no-store"


def test_a_refusal_answers_400_and_other_paths_404() -> None:
    with RedirectListener(0) as listener:
        base = f"http://127.0.0.1:{listener.port}"
        assert httpx.get(f"{base}/favicon.ico", timeout=5).status_code == 404
        assert listener.wait(0.1) is None  # a stray request is not a redirect
        pages: list[httpx.Response] = []
        browser = threading.Thread(
            target=lambda: pages.append(httpx.get(f"{base}/callback?error=access_denied", timeout=10))
        )
        browser.start()
        callback = listener.wait(5)
        assert callback is not None
        callback.answer(False, "Not allowed")
        browser.join(5)
    assert pages[0].status_code == 400
    assert "Not connected" in pages[0].text


def test_a_custom_path_is_the_only_one_served() -> None:
    with RedirectListener(0, path="/oauth/done") as listener:
        assert listener.redirect_uri.endswith("/oauth/done")
        assert httpx.get(f"http://127.0.0.1:{listener.port}/callback", timeout=5).status_code == 404


def test_a_taken_port_fails_to_listen() -> None:
    """Given a port another process listens on, the listener cannot start (the command turns the
    OSError into one line naming --port)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            RedirectListener(taken.getsockname()[1])


def test_no_redirect_within_the_wait_gives_none() -> None:
    with RedirectListener(0) as listener:
        assert listener.wait(0.05) is None
