"""Webhooks the sandboxes send, as the vendors they play send them: after the change, never inside
the request that made it, signed, retried when the receiver does not answer 2xx.

A ``WebhookEmitter`` belongs to one sandbox. It keeps the subscriptions of each tenant (an address,
the key the vendor signs with, a body format where the vendor has several), a bounded queue of
deliveries, one daemon thread posting them in order, and a log of every delivery with the status
of each attempt, which tests (and the control API ``GET /_sandbox/<root>/<tenant>/deliveries``)
read to assert what was sent and what the receiver answered.

What each vendor sends (body, headers, signature) is built by its sandbox; this module only carries
it. The signatures are computed here with ``hmac`` rather than by importing invoice-sync's verifiers:
the sandbox plays the vendor, and the tests prove the product's verifiers accept what it sends.

One thread, first in first out: while a delivery is retried the later ones wait. That is Intuit's
rule ("you may not receive subsequent events until you correctly acknowledge the first"); for the
others it is a simplification. Retries wait ``retry_delays`` (short, for tests; the vendors wait
seconds to hours), and a delivery that never gets a 2xx ends ``failed``. A full queue refuses the
delivery (logged ``dropped``) rather than block the request that caused it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Attempt",
    "Delivery",
    "Subscription",
    "WebhookEmitter",
    "base64_hmac_sha256",
    "check_url",
    "post",
]

DEFAULT_RETRY_DELAYS = (0.05, 0.2, 0.5)  # seconds before the 2nd, 3rd and 4th attempts
DEFAULT_TIMEOUT = 5.0  # the vendors allow 3 (Intuit) to 10 (Stripe) seconds; Xero 5
DEFAULT_MAX_QUEUE = 1000
MAX_LOG = 10_000  # deliveries kept in the log; the oldest go first
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer kept for the log


def base64_hmac_sha256(message: bytes, key: str) -> str:
    """base64(HMAC-SHA256(message, key)): how QuickBooks, Xero and FreshBooks sign."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) address; ``ValueError`` (a 400 on the control API) if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an absolute http:// or https:// address")
    return url


@dataclass(frozen=True)
class Answer:
    """What a receiver answered one POST: ``status`` 0 when no answer came (refused, timed out)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> Answer:
    """One POST, as a vendor's sender makes it: no redirects followed, no cookies kept."""
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER)
        return Answer(response.status, answer, {k.lower(): v for k, v in response.getheaders()})
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, error=type(exc).__name__)
    finally:
        connection.close()


@dataclass(frozen=True)
class Subscription:
    """An address a tenant's changes are sent to. ``key`` signs them (never in a repr or a log)."""

    id: str
    tenant_id: str
    url: str
    key: str = field(repr=False)
    format: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """What the control API shows of it: everything but the key."""
        return {"id": self.id, "url": self.url, "format": self.format, **dict(self.options)}


@dataclass
class Attempt:
    at: float
    status: int  # 0: no answer (connection refused, timeout)
    error: str | None = None


@dataclass
class Delivery:
    """One body for one address, and what became of it: ``pending``, ``delivered`` (a 2xx),
    ``failed`` (no 2xx after every attempt), ``dropped`` (the queue was full) or ``abandoned``
    (the sandbox stopped first)."""

    id: str
    tenant_id: str
    subscription_id: str | None
    url: str
    event: str  # what it announces, for tests: "Payment.Create", "callback.verify", "invoice.paid"
    body: bytes
    headers: dict[str, str]
    # Called before each attempt for headers that change per attempt (Stripe signs the send time).
    sign: Callable[[bytes], dict[str, str]] | None = field(default=None, repr=False)
    state: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription": self.subscription_id,
            "url": self.url,
            "event": self.event,
            "body": self.body.decode("utf-8", "replace"),
            "headers": dict(self.headers),
            "state": self.state,
            "attempts": [{"at": a.at, "status": a.status, "error": a.error} for a in self.attempts],
        }


class WebhookEmitter:
    """Subscriptions, a bounded queue and one delivery thread (started on the first delivery).
    Thread-safe: its own lock, never the sandbox's, so a slow receiver holds up no API call."""

    def __init__(
        self,
        name: str,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = DEFAULT_TIMEOUT,
        max_queue: int = DEFAULT_MAX_QUEUE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Condition()
        self._subscriptions: dict[str, dict[str, Subscription]] = {}
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=max_queue)
        self._log: deque[Delivery] = deque(maxlen=MAX_LOG)
        self._unfinished = 0
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---------------------------------------------------------------------------------------------
    # Subscriptions

    def subscribe(
        self, tenant_id: str, url: str, key: str, *, format: str | None = None, **options: Any
    ) -> Subscription:
        check_url(url)
        if not key:
            raise ValueError("key is required: the vendor signs every delivery with it")
        with self._lock:
            subscription = Subscription(
                id=f"sub_{next(self._ids)}",
                tenant_id=tenant_id,
                url=url,
                key=key,
                format=format,
                options=dict(options),
            )
            self._subscriptions.setdefault(tenant_id, {})[subscription.id] = subscription
            return subscription

    def unsubscribe(self, tenant_id: str, subscription_id: str) -> None:
        with self._lock:
            self._subscriptions.get(tenant_id, {}).pop(subscription_id, None)

    def subscriptions(self, tenant_id: str) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions.get(tenant_id, {}).values())

    # ---------------------------------------------------------------------------------------------
    # Deliveries

    def enqueue(
        self,
        tenant_id: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        event: str,
        subscription_id: str | None = None,
        sign: Callable[[bytes], dict[str, str]] | None = None,
    ) -> Delivery:
        """Queue one POST for the delivery thread and return its log entry. Never blocks: a full
        queue marks it ``dropped``. A stopped emitter starts again (a sandbox may be restarted)."""
        with self._lock:
            delivery = Delivery(
                id=f"dlv_{next(self._ids)}",
                tenant_id=tenant_id,
                subscription_id=subscription_id,
                url=url,
                event=event,
                body=body,
                headers=dict(headers),
                sign=sign,
            )
            self._log.append(delivery)
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                delivery.state = "dropped"
                return delivery
            self._unfinished += 1
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-webhooks", daemon=True)
                self._thread.start()
        return delivery

    def deliveries(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The log, oldest first (each delivery's url, event, body, headers, state and attempts)."""
        with self._lock:
            return [d.view() for d in self._log if tenant_id is None or d.tenant_id == tenant_id]

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery has ended (delivered, failed): True, or False at ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def flush(self, timeout: float = 10.0) -> None:
        """``wait_for_deliveries``, raising ``TimeoutError`` if they do not all end in time."""
        if not self.wait_for_deliveries(timeout):
            raise TimeoutError(f"{self.name}: webhook deliveries still pending after {timeout} s")

    @property
    def running(self) -> bool:
        """Whether the delivery thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread; what is still queued is ``abandoned``."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # a full queue: the thread sees _stopping next time
            self._queue.put_nowait(None)
        thread.join(timeout)
        with self._lock:
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    left.state = "abandoned"
                    self._unfinished -= 1
            self._lock.notify_all()

    # ---------------------------------------------------------------------------------------------
    # The delivery thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    self._lock.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            if attempt and self._stopping.wait(self.retry_delays[attempt - 1]):
                delivery.state = "abandoned"
                return
            headers = dict(delivery.headers)
            if delivery.sign is not None:
                headers.update(delivery.sign(delivery.body))
            answer = post(delivery.url, delivery.body, headers, timeout=self.timeout)
            with self._lock:
                delivery.headers = headers
                delivery.attempts.append(Attempt(self._clock(), answer.status, answer.error))
                if 200 <= answer.status < 300:
                    delivery.state = "delivered"
                    return
        with self._lock:
            delivery.state = "failed"
