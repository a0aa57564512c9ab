"""The browser half of the OAuth 2.0 authorization-code flow: a one-shot redirect listener on the
loopback interface, the ``state`` that ties the redirect to this run, and PKCE.

``invoice-sync connect`` uses it. The listener hands the
redirect's query to the waiting command and holds the browser's request open until the command
says how it ended, so the tab shows the real outcome ("connected" only once the tokens are saved).

Where no listener can be reached (a redirect URI on https, or on another machine), the person
pastes the address the browser landed on instead: ``parse_redirect`` reads it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import queue
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit

CALLBACK_PATH = "/callback"
# How long a browser's request is held open for the verdict (the token exchange and the saves).
VERDICT_SECONDS = 60.0
# How long closing the listener waits for an answered browser to get its page.
DELIVERY_SECONDS = 3.0


def new_state() -> str:
    return secrets.token_urlsafe(32)


def state_matches(expected: str, returned: str | None) -> bool:
    """Whether the redirect carries this run's ``state``, compared in constant time."""
    if not returned:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), returned.encode("utf-8"))


def authorize_url(base: str, params: dict[str, str]) -> str:
    """The consent page's address with the request's parameters added to any it already has."""
    separator = "&" if urlsplit(base).query else "?"
    return f"{base}{separator}{urlencode(params)}"


def parse_redirect(address: str) -> dict[str, str]:
    """The query of a redirect address a person pasted (first value of each parameter).

    Raises ``ValueError`` when it is not an address with a query: the person pasted something
    else, and the message says so without repeating what was pasted (it may hold the code).
    """
    url = urlsplit(address.strip())
    if not url.scheme or not url.query:
        raise ValueError("that is not the address the browser landed on (no ?code=... or ?error=...)")
    return {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}


@dataclass(frozen=True)
class Pkce:
    """RFC 7636: the verifier stays here; only its S256 challenge goes through the browser."""

    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Callback:
    """One redirect that reached the listener: its query parameters (first value of each)."""

    params: dict[str, str]
    _verdict: queue.Queue[tuple[bool, str]] = field(default_factory=lambda: queue.Queue(maxsize=1))
    _delivered: threading.Event = field(default_factory=threading.Event)
    _answered: threading.Event = field(default_factory=threading.Event)

    def answer(self, ok: bool, message: str) -> None:
        """What the browser tab shows; only the first answer counts."""
        with contextlib.suppress(queue.Full):
            self._verdict.put_nowait((ok, message))
            self._answered.set()

    def delivered(self, timeout: float) -> bool:
        """Waits until the browser has been sent its page (True), or ``timeout`` (False)."""
        return self._delivered.wait(timeout)


def _page(ok: bool, message: str) -> bytes:
    title = "Connected" if ok else "Not connected"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>invoice-sync: {title}</title></head>"
        f"<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{html.escape(message)}</p>"
        "</body></html>"
    ).encode()


class RedirectListener:
    """``http://HOST:PORT/PATH`` served on 127.0.0.1 until closed; ``wait`` gives the first redirect.

    ``host`` is only what the redirect URI says: ledgers that refuse IP addresses in redirect
    URIs (Intuit) are given ``localhost``, which the browser resolves to this loopback listener.
    Port 0 takes any free port (then the redirect URI cannot have been registered in advance).
    """

    def __init__(self, port: int, *, host: str = "127.0.0.1", path: str = CALLBACK_PATH) -> None:
        self._callbacks: queue.Queue[Callback] = queue.Queue()
        self._seen: list[Callback] = []
        self._host = host
        self._path = path
        callbacks, seen = self._callbacks, self._seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != path:
                    self._reply(404, _page(False, "Nothing here."))
                    return
                query = parse_qs(url.query, keep_blank_values=True)
                callback = Callback({name: values[0] for name, values in query.items()})
                seen.append(callback)
                callbacks.put(callback)
                try:
                    ok, message = callback._verdict.get(timeout=VERDICT_SECONDS)
                except queue.Empty:
                    ok, message = False, "invoice-sync stopped waiting; see the terminal."
                try:
                    self._reply(200 if ok else 400, _page(ok, message))
                finally:
                    callback._delivered.set()

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                # The request line carries the authorization code: it must not reach a log.
                return

        # Loopback only: the code must not be catchable from the network.
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://{self._host}:{self.port}{self._path}"

    def wait(self, timeout: float) -> Callback | None:
        try:
            return self._callbacks.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        # An answered browser gets its page before the process that answered it goes away.
        deadline = DELIVERY_SECONDS
        for callback in list(self._seen):
            if callback._answered.is_set() and not callback.delivered(deadline):
                break
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RedirectListener:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
