"""Chaos run: a generated population of invoices, payments, credit notes and refunds through the
local stack end to end while the ledger, the network and push itself misbehave; then the ledger
sandbox is reconciled against the population, document by document, to the cent.

What runs (docs/chaos.md has the detail):

- **The stack** is ``LocalStack``: moto's server over HTTP, the ledger's sandbox over HTTP, the
  intake behind the local HTTP API, push fed by ``--pollers`` SQS event sources (Lambda's
  concurrency: the template's PushMaxConcurrency is 2), each poller its own "container" with its
  own adapters, tokens and limiter.
- **The population** (``chaos_population``): ``--documents N`` source documents, each webhook
  signed with the connection's secret and posted over HTTP, up to ``--duplicates K`` times each,
  in order or ``--shuffle``d, by ``--senders`` threads that retry as Stripe does (a non-2xx or a
  dropped connection is sent again).
- **Ledger faults** through the sandbox's control API: ``--ledger-errors RATE`` of API calls
  answered 429 (half) or 500/502/503 (half) instead of being served; ``--lost-responses RATE`` of
  the writes the ledger commits lose their answer (a 502 page or a dropped connection, at random).
- **Crashes** (``--crashes RATE``): after that share of successful ledger writes, the push
  invocation dies before it records anything (a ``BaseException`` raised by a wrapper around the
  adapter, in this process only: nothing of it is in the product's code). The batch goes back to
  the queue whole, as Lambda's would, and the "container" is gone: the next invocation on that
  poller builds new adapters (tokens and limiter from scratch).
- **A revoked token** (``--revoke-token-at FRACTION``): when that share of the webhooks has been
  sent, the sandbox disconnects the app (refresh token revoked, access tokens dead). Push parks
  what arrives meanwhile and alerts once; ``--reconnect-after`` seconds later the operator
  reconnects through the real path (``invoice-sync connect LEDGER --connection acme``, the consent
  page followed by a browser stand-in) and re-drives (``invoice-sync redrive``).
- **Drained** when the sync queue is empty and push idle; then the operator re-drives what the
  design leaves for one (parked records, dead letters: ``invoice-sync redrive``) until nothing
  changes, and says what that took.
- **Reconciled** against the sandbox's own store (its control API), each document read with the
  adapter's pure parser and keyed by the marker push writes (``invoice-sync: stripe <id>``):
  a source document with two ledger copies is a duplicate, with none missing, with another amount
  a mismatch (Xero's refund payouts are checked the same way).

``--seed`` fixes the population, the delivery order and every fault draw; thread timing is not
fixed, so two runs of one seed inject the same kinds and rates of fault, not on the same calls.

    .venv/bin/python bench/chaos.py [--documents 500] [--duplicates 3] [--shuffle]
        [--ledger-errors 0.2] [--lost-responses 0.02] [--crashes 0.02] [--revoke-token-at 0.5]
        [--ledger quickbooks|xero|freshbooks] [--seed 1]

Last line: ``chaos documents=N ledger=N duplicates=0 missing=0 amount_mismatches=0 parked=P``
(``ledger``: the ledger documents carrying a population marker, duplicates included; ``parked``:
records still parked after the operator's re-drives, each with its reason printed above).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos_population
from chaos_population import Expected, Population, Webhook

LEDGER_NAMES = ("quickbooks", "xero", "freshbooks")
CONNECTION = "acme"  # the local stack's connection
# What a crash interrupts: every ledger call that writes (the port's writes).
WRITES = frozenset(
    {
        "create_customer",
        "create_invoices",
        "create_invoice",
        "update_invoice",
        "void_invoice",
        "create_credit_note",
        "apply_credit_note",
        "void_credit_note",
        "create_payment",
        "create_refund",
        "pay_out_credit",
    }
)


# One operator command at a time (each redirects this process's stdout while it runs).
CLI_LOCK = threading.Lock()


class Crash(BaseException):
    """The push process dying between a ledger write and the state write. A BaseException so no
    ``except Exception`` on the way up treats it as an error to handle: nothing after it runs."""


# --------------------------------------------------------------------------------------------------
# Push in "containers" that crash


class CrashingLedger:
    """A ledger adapter whose writes, once they have succeeded, kill the invocation at a rate."""

    def __init__(self, inner: Any, crashes: Containers) -> None:
        self._inner = inner
        self._crashes = crashes

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in WRITES:
            return value

        def write(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            self._crashes.maybe_crash(name)
            return result

        return write


class CrashingLedgers:
    """The registry push gets: the real one's adapters, each wrapped once (push groups a batch's
    creates by adapter identity)."""

    def __init__(self, registry: Any, crashes: Containers) -> None:
        self.registry = registry
        self._crashes = crashes
        self._wrapped: dict[int, CrashingLedger] = {}

    def __call__(self, mappings: Any) -> Any:
        inner = self.registry(mappings)
        wrapper = self._wrapped.get(id(inner))
        if wrapper is None:
            wrapper = self._wrapped[id(inner)] = CrashingLedger(inner, self._crashes)
        return wrapper

    def usage_since_last(self) -> Any:
        return self.registry.usage_since_last()

    def quotas(self) -> Any:
        return self.registry.quotas()


class Containers:
    """One push service per poller thread, as Lambda keeps one per concurrent container: its own
    ledger registry (adapters, OAuth tokens in memory, limiter); the stores are shared (they hold
    nothing that a container would keep to itself). A crash throws the thread's container away."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._draw = random.Random(seed + 2)
        self._lock = threading.Lock()
        self._services: dict[int, Any] = {}
        self.crashes: Counter[str] = Counter()
        self.cold_starts = 0

    def maybe_crash(self, write: str) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            crash = self._draw.random() < self.rate
            if crash:
                self.crashes[write] += 1
        if crash:
            raise Crash(write)

    def service(self) -> Any:
        from invoice_sync.ledgers.registry import LedgerRegistry  # noqa: PLC0415
        from invoice_sync.settings import get_settings  # noqa: PLC0415
        from invoice_sync.wiring import stores  # noqa: PLC0415
        from invoice_sync.wiring.push import build_push  # noqa: PLC0415
        from invoice_sync.wiring.push import push as wired  # noqa: PLC0415

        key = threading.get_ident()
        with self._lock:
            found = self._services.get(key)
            if found is not None:
                return found
            self.cold_starts += 1
        base = wired()
        settings = get_settings()
        registry = LedgerRegistry(settings, base.state, stores.secrets())
        service = build_push(
            settings,
            state=base.state,
            mappings=base.mappings,
            archive=base.archive,
            alerts=base.alerts,
            ledger_for=CrashingLedgers(registry, self),  # type: ignore[arg-type]
            payouts=base.payouts,
        )
        with self._lock:
            self._services[key] = service
        return service

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The push handler builds its service here while the run lasts; afterwards the process's
        own wiring again (a test run goes on in the same process)."""
        from invoice_sync import bootstrap  # noqa: PLC0415

        before = bootstrap.__dict__.get("push")
        bootstrap.push = self.service  # type: ignore[attr-defined]
        try:
            yield
        finally:
            if before is None:
                del bootstrap.push
            else:
                bootstrap.push = before  # type: ignore[attr-defined]

    def wrap(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def invoke(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler(event, context)
            except Crash:
                with self._lock:
                    self._services.pop(threading.get_ident(), None)
                # The invocation died: SQS sees none of its messages deleted, all come back.
                return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

        return invoke


class MetricsFilter(io.TextIOBase):
    """Stdout without the functions' metrics lines (EMF JSON), which would bury the figures."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._line = ""

    def write(self, text: str) -> int:
        self._line += text
        *lines, self._line = self._line.split("\n")
        for line in lines:
            if not line.startswith('{"_aws"'):
                self._out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.flush()


# --------------------------------------------------------------------------------------------------
# The operator's commands, run as a person would type them


class Browser:
    """Follows the consent page's address as the person's browser would, onto the listener."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def __call__(self, url: str) -> bool:
        thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return True

    @staticmethod
    def _visit(url: str) -> None:
        with httpx.Client(timeout=30) as http:
            consent = http.get(url)
            if consent.status_code == 302:
                http.get(consent.headers["Location"])


def cli(stack: Any, *argv: str) -> tuple[int, Any]:
    """``invoice-sync ARGV --json`` against the stack, in this process; (exit code, its JSON)."""
    from rich.console import Console  # noqa: PLC0415

    from invoice_sync_ops import cli as command_line  # noqa: PLC0415
    from invoice_sync_ops.commands import CliError, Context  # noqa: PLC0415

    args = command_line.parser().parse_args([*argv, "--json"])
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        args=args, console=Console(file=out, width=200), errors=Console(file=err), _target=stack.target()
    )
    try:
        # --json prints its document with print(): this process's stdout is the bench's own.
        with CLI_LOCK, contextlib.redirect_stdout(out):
            code = int(args.func(args, ctx))
    except CliError as error:
        return error.code, {"error": str(error)}
    return code, command_json(out.getvalue()) or {"output": out.getvalue(), "errors": err.getvalue()}


def command_json(text: str) -> dict[str, Any] | None:
    """The command's JSON document in what stdout got while it ran: the first JSON object that is
    not a metrics line (EMF, ``_aws``) a function running meanwhile printed."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at >= 0:
        try:
            document, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(document, dict) and "_aws" not in document:
            return document
        at = text.find("{", end)
    return None


def reconnect(stack: Any, ledger: str) -> tuple[int, Any]:
    from invoice_sync_ops.commands import connect  # noqa: PLC0415

    connect.open_browser = Browser()
    return cli(
        stack,
        "connect",
        ledger,
        "--connection",
        CONNECTION,
        "--client-id",
        stack.company.credentials.client_id,
        "--client-secret",
        stack.company.credentials.client_secret,
        "--port",
        "0",
        "--timeout",
        "60",
    )


def redrive(stack: Any) -> dict[str, Any]:
    code, result = cli(stack, "redrive", "--connection", CONNECTION, "--yes")
    if code != 0:
        raise RuntimeError(f"redrive failed: {result}")
    return dict(result)


def parked(stack: Any) -> list[Any]:
    from invoice_sync.models.sync import SyncStatus  # noqa: PLC0415
    from invoice_sync.store.sync_state import SyncStateStore  # noqa: PLC0415

    store = SyncStateStore(stack.resources.sync_table, stack.client("dynamodb"))
    return [r for s in SyncStatus if s.parked for r in store.needing_attention(CONNECTION, s)]


def records(stack: Any) -> list[Any]:
    from invoice_sync.store.sync_state import SyncStateStore  # noqa: PLC0415

    return list(SyncStateStore(stack.resources.sync_table, stack.client("dynamodb")).list(CONNECTION))


def dead_letters(stack: Any) -> int:
    from invoice_sync.store.queue import depth_of  # noqa: PLC0415

    depth = depth_of(stack.client("sqs"), stack.resources.dead_letter_queue_url)
    return int(depth.visible + depth.in_flight)


# --------------------------------------------------------------------------------------------------
# Delivery


@dataclass
class Delivery:
    sent: int = 0
    attempts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # 4xx answers: a webhook the intake rejected
    revoked_at: float | None = None
    reconnect: tuple[int, Any] | None = None
    reconnect_redrive: dict[str, Any] | None = None
    reconnect_attempts: int = 0


def deliver(
    stack: Any,
    webhooks: list[Webhook],
    *,
    senders: int,
    revoke_at: float | None,
    revoke: Callable[[], None],
    max_backlog: int = 0,
) -> Delivery:
    """Posts every webhook; with ``max_backlog``, the senders wait while the sync queue holds more
    messages than that (waiting or in flight). moto's SQS costs time proportional to the messages
    a queue holds on every send and receive (it recounts them for the queue's attributes), so an
    unpaced run of thousands of documents spends itself inside moto; SQS does not, and pacing
    changes when a webhook is sent, not the order or the faults."""
    from invoice_sync.sources.signing import signature_header  # noqa: PLC0415

    result = Delivery()
    lock = threading.Lock()
    room = Backlog(stack, max_backlog)
    revoke_index = int(len(webhooks) * revoke_at) if revoke_at is not None else None
    url = stack.webhook_url()
    secret = stack.company.webhook_secret

    def send(http: httpx.Client, webhook: Webhook) -> None:
        for attempt in range(1, 21):
            header = signature_header(webhook.body, [secret], int(time.time()))
            try:
                response = http.post(
                    url,
                    content=webhook.body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
                status = str(response.status_code)
            except httpx.TransportError as error:
                status = type(error).__name__
            with lock:
                result.attempts += 1
                result.statuses[status] += 1
            if status == "200":
                return
            if status.startswith("4"):
                with lock:
                    result.refused.append(f"{webhook.event_id}: {status}")
                return
            time.sleep(min(2.0, 0.1 * attempt))  # Stripe retries; sooner here
        with lock:
            result.refused.append(f"{webhook.event_id}: gave up")

    def work() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    if result.sent >= len(webhooks):
                        return
                    index = result.sent
                    result.sent += 1
                if index == revoke_index:
                    revoke()
                    with lock:
                        result.revoked_at = time.monotonic()
                room.wait()
                send(http, webhooks[index])
                if index % 500 == 0:
                    print(f"  sent {index:,} of {len(webhooks):,} webhooks", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=work, name=f"sender-{i}", daemon=True) for i in range(senders)]
    with room:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return result


class Backlog:
    """Open while the sync queue holds at most ``limit`` messages (waiting or in flight), read
    twice a second; always open when ``limit`` is 0. A context manager: the reader runs inside."""

    def __init__(self, stack: Any, limit: int) -> None:
        self._stack = stack
        self._limit = limit
        self._open = threading.Event()
        self._open.set()
        self._done = threading.Event()

    def wait(self) -> None:
        self._open.wait()

    def _read(self) -> None:
        from invoice_sync.store.queue import depth_of  # noqa: PLC0415

        while not self._done.wait(0.5):
            depth = depth_of(self._stack.client("sqs"), self._stack.resources.sync_queue_url)
            if depth.visible + depth.in_flight > self._limit:
                self._open.clear()
            else:
                self._open.set()
        self._open.set()

    def __enter__(self) -> Backlog:
        if self._limit > 0:
            threading.Thread(target=self._read, name="backlog", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()


# --------------------------------------------------------------------------------------------------
# Reconciliation against the sandbox's own store


@dataclass
class Found:
    kind: str
    ledger_id: str
    source_id: str
    total: Decimal
    voided: bool


def collections(ledger: str) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    """The sandbox's collections that hold push's documents, each with the adapter's parser."""
    if ledger == "quickbooks":
        from invoice_sync.ledgers.quickbooks import payloads as qbo  # noqa: PLC0415

        return [(name, qbo.document) for name in ("Invoice", "Payment", "CreditMemo", "RefundReceipt")]
    if ledger == "xero":
        from invoice_sync.ledgers.xero import payloads as xero  # noqa: PLC0415

        return [
            ("Invoices", xero.invoice_document),
            ("Payments", xero.payment_document),
            ("CreditNotes", xero.credit_note_document),
        ]
    from invoice_sync.ledgers.freshbooks import payloads as fb  # noqa: PLC0415

    return [
        ("invoices", fb.invoice_document),
        ("payments", fb.payment_document),
        ("credit_notes", fb.credit_note_document),
    ]


def ledger_documents(stack: Any) -> tuple[list[Found], int]:
    """Every document in the sandbox carrying push's marker, and how many carry none."""
    from invoice_sync.ledgers.port import marked  # noqa: PLC0415

    root = getattr(stack.sandbox, "control_root")  # noqa: B009 - not on the Sandbox protocol
    base = f"{stack.ledger_url}/_sandbox/{root}/{stack.ledger.tenant_id}"
    found: list[Found] = []
    unmarked = 0
    for name, parse in collections(stack.ledger.kind):
        raw = httpx.get(f"{base}/{name}", timeout=300)
        raw.raise_for_status()
        for obj in json.loads(raw.content, parse_float=Decimal):
            document = parse(obj)
            mark = marked(document.private_note)
            if mark is None:
                unmarked += 1
                continue
            found.append(Found(name, document.id, mark[1], Decimal(document.total), document.voided))
    return found, unmarked


@dataclass
class Reconciliation:
    expected: Counter[str] = field(default_factory=Counter)  # by kind
    found: Counter[str] = field(default_factory=Counter)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # marked, but no population document's
    voided: list[str] = field(default_factory=list)
    payouts: Counter[str] = field(default_factory=Counter)
    unmarked: int = 0

    @property
    def ledger(self) -> int:
        return sum(self.found.values())


PAYOUT = ":payout"


def reconcile(population: Population, stack: Any) -> Reconciliation:
    from invoice_sync.sync.reconcile import minor  # noqa: PLC0415

    found, unmarked = ledger_documents(stack)
    result = Reconciliation(unmarked=unmarked)
    expected: dict[str, Expected] = {d.source_id: d for d in population.documents}
    copies: dict[str, list[Found]] = {}
    payouts: dict[str, list[Found]] = {}
    for document in found:
        if document.source_id.endswith(PAYOUT) and document.source_id[: -len(PAYOUT)] in expected:
            payouts.setdefault(document.source_id[: -len(PAYOUT)], []).append(document)
        elif document.source_id in expected:
            copies.setdefault(document.source_id, []).append(document)
        else:
            result.unknown.append(f"{document.kind} {document.ledger_id}: {document.source_id}")
    for source in population.documents:
        result.expected[source.kind] += 1
        held = copies.get(source.source_id, [])
        result.found[source.kind] += len(held)
        what = f"{source.kind} {source.source_id} ({source.number})"
        if not held:
            result.missing.append(what)
        if len(held) > 1:
            result.duplicates.append(f"{what}: {len(held)} copies, {', '.join(d.ledger_id for d in held)}")
        for document in held:
            if document.voided:
                result.voided.append(f"{what}: {document.ledger_id}")
            if minor(document.total, "USD") != source.amount:
                result.mismatches.append(
                    f"{what}: ledger {document.total}, source {Decimal(source.amount) / 100}"
                )
        if source.kind == "refund" and stack.ledger.kind == "xero":
            # Xero books a refund as a credit note paid out: exactly one payout, of its amount.
            out = payouts.get(source.source_id, [])
            result.payouts["found"] += len(out)
            result.payouts["expected"] += 1
            if not out:
                result.missing.append(f"payout of {what}")
            if len(out) > 1:
                result.duplicates.append(f"payout of {what}: {len(out)} copies")
            result.mismatches.extend(
                f"payout of {what}: ledger {d.total}" for d in out if minor(d.total, "USD") != source.amount
            )
    return result


# --------------------------------------------------------------------------------------------------


def sandbox_calls(stack: Any) -> Counter[str]:
    """The sandbox's API calls by answer: served, 429, 5xx, and dropped (status 0: lost)."""
    log = httpx.get(f"{stack.ledger_url}/_sandbox/requests", timeout=300).json()
    counts: Counter[str] = Counter()
    for entry in log:
        status = int(entry["status"])
        counts["calls"] += 1
        if status == 0:
            counts["dropped"] += 1
        elif status == 429:
            counts["429"] += 1
        elif status >= 500:
            counts["5xx"] += 1
    return counts


def control(stack: Any, path: str, body: dict[str, Any] | None = None) -> None:
    root = getattr(stack.sandbox, "control_root")  # noqa: B009
    url = f"{stack.ledger_url}/_sandbox/{root}/{stack.ledger.tenant_id}/{path}"
    httpx.post(url, json=body, timeout=30).raise_for_status()


def watch(stack: Any, stop: threading.Event, every: float = 15.0) -> None:
    """Every ``every`` seconds, a line on stderr: where the messages are and what push has done."""
    from invoice_sync.store.queue import depth_of  # noqa: PLC0415

    last, still = -1, 0
    while not stop.wait(every):
        queue = depth_of(stack.client("sqs"), stack.resources.sync_queue_url)
        sources = stack.event_sources
        invocations = sum(s.invocations for s in sources)
        still = still + 1 if invocations == last and any(s.busy.is_set() for s in sources) else 0
        last = invocations
        if still == 8:
            print("  push has been inside one invocation for 2 minutes; the threads:", file=sys.stderr)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        print(
            f"  queue {queue.visible} waiting, {queue.in_flight} in flight; "
            f"dead letters {dead_letters(stack)}; "
            f"{sum(s.invocations for s in sources):,} push invocations, "
            f"{sum(s.failures for s in sources):,} messages handed back, "
            f"{sum(s.poll_errors for s in sources)} failed polls",
            file=sys.stderr,
            flush=True,
        )


def operate(stack: Any, *, timeout: float, wait: float, rounds: int = 12) -> list[dict[str, Any]]:
    """What the operator does once the queue has drained: re-drive the parked records and the dead
    letters, wait for them, and again while that still gets somewhere (what parks again and again
    needs a person, not a re-drive). Before another round the operator waits ``wait`` seconds (an
    alarm does not page twice a minute), long enough for an intent a failed attempt left behind to
    be known as abandoned (push's intent timeout)."""
    done: list[dict[str, Any]] = []
    best: int | None = None
    stuck = 0
    for number in range(rounds):
        records = parked(stack)
        waiting = dead_letters(stack)
        left = len(records) + waiting
        if not left:
            break
        stuck = stuck + 1 if best is not None and left >= best else 0
        if stuck >= 2:
            break
        best = left if best is None else min(best, left)
        if number > 0:
            print(f"  operator waits {wait:.0f} s before re-driving again", file=sys.stderr, flush=True)
            time.sleep(wait)
        result = redrive(stack)
        done.append(
            {
                "parked": len(records),
                "reasons": Counter((r.last_error or "").split(":")[0] for r in records),
                "queued": result.get("queued", 0),
                "dead_letters_moved": result.get("dead_letters_moved", 0),
            }
        )
        stack.drain(timeout=timeout)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=500, help="source documents (default 500)")
    parser.add_argument("--duplicates", type=int, default=3, help="each webhook delivered 1 to K times")
    parser.add_argument("--shuffle", action="store_true", help="deliver in random order")
    parser.add_argument("--ledger-errors", type=float, default=0.2, help="share of ledger calls 429/5xx")
    parser.add_argument(
        "--lost-responses", type=float, default=0.02, help="share of committed writes unanswered"
    )
    parser.add_argument("--crashes", type=float, default=0.02, help="share of ledger writes push dies after")
    parser.add_argument(
        "--revoke-token-at",
        type=float,
        default=0.5,
        help="revoke the ledger token after this share of webhooks",
    )
    parser.add_argument("--no-revoke", action="store_true", help="leave the token alone")
    parser.add_argument(
        "--reconnect-after", type=float, default=5.0, help="seconds from revocation to reconnect"
    )
    parser.add_argument("--ledger", choices=LEDGER_NAMES, default="quickbooks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pollers", type=int, default=2, help="push invocations at once (default 2)")
    parser.add_argument("--senders", type=int, default=4, help="threads posting webhooks (default 4)")
    parser.add_argument(
        "--max-backlog",
        type=int,
        default=200,
        help="senders wait while the sync queue holds more messages (moto's SQS slows with its "
        "length; 0: no pacing; default 200)",
    )
    parser.add_argument(
        "--moto-thread",
        action="store_true",
        help="run moto's server in this process (default: a process of its own, a second core)",
    )
    parser.add_argument(
        "--retry-seconds", type=int, default=2, help="a failed message's wait before redelivery"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for a drain")
    parser.add_argument("--show", type=int, default=10, help="differences listed per class")
    parser.add_argument(
        "--operator-wait",
        type=float,
        help="seconds between re-drive rounds (default: the intent timeout + 10)",
    )
    parser.add_argument(
        "--intent-timeout",
        type=int,
        default=120,
        help="push's INTENT_TIMEOUT_SECONDS (default 120, the template's); shorter is safe with one "
        "poller only, where no other worker can hold an intent",
    )
    args = parser.parse_args()
    for name in ("ledger_errors", "lost_responses", "crashes", "revoke_token_at"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    if args.documents < 1 or args.duplicates < 1:
        parser.error("--documents and --duplicates must be at least 1")
    if args.intent_timeout < 120 and args.pollers > 1:
        parser.error("--intent-timeout under 120 s lets a second poller take a live worker's intent")
    if args.operator_wait is None:
        args.operator_wait = args.intent_timeout + 10
    # Set before the package is imported: Powertools reads them at import. Parking warnings and
    # the metrics' EMF lines would bury the figures (the local stack keeps them off too).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ.update({"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "invoice-sync"})
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 <pid>: where every thread is
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Imported now: the local stack's imports read Powertools' settings from the environment.
    from invoice_sync_ops.local.stack import LocalStack  # noqa: PLC0415

    return run(args, LocalStack)


def run(args: argparse.Namespace, stack_class: Any) -> int:  # noqa: PLR0915 - the run, in order
    began = time.monotonic()
    population = chaos_population.generate(args.documents, seed=args.seed, start=int(time.time()) - 7200)
    webhooks = chaos_population.deliveries(
        population, duplicates=args.duplicates, shuffle=args.shuffle, seed=args.seed
    )
    containers = Containers(args.crashes, args.seed)
    print(
        f"chaos: {len(population.documents):,} documents {dict(population.by_kind())}, "
        f"{len(population.webhooks):,} webhooks sent {len(webhooks):,} times, ledger {args.ledger}",
        file=sys.stderr,
        flush=True,
    )
    with (
        stack_class(
            ledger=args.ledger,
            retry_seconds=args.retry_seconds,
            pollers=args.pollers,
            wrap_push=containers.wrap,
            environment={"INTENT_TIMEOUT_SECONDS": str(args.intent_timeout)},
            moto_process=not args.moto_thread,
        ) as stack,
        contextlib.redirect_stdout(MetricsFilter(sys.stdout)),
        containers.installed(),
    ):
        stop_watching = threading.Event()
        threading.Thread(target=watch, args=(stack, stop_watching), name="watch", daemon=True).start()
        half = args.ledger_errors / 2
        control(stack, "faults", {"throttle_rate": half, "seed": args.seed})
        control(
            stack,
            "faults",
            {
                "error_rate": half / (1 - half) if half else 0.0,
                "lose_rate": args.lost_responses,
                "lost_as": "mixed",
                "seed": args.seed + 3,
            },
        )
        reconnected = threading.Event()
        operator_box: dict[str, Any] = {}

        def later() -> None:
            try:
                time.sleep(args.reconnect_after)
                for attempt in range(1, 4):
                    # A person whose connect failed (the ledger answered 429 reading the company)
                    # runs it again a little later.
                    operator_box["reconnect"] = reconnect(stack, args.ledger)
                    operator_box["reconnect_attempts"] = attempt
                    if operator_box["reconnect"][0] == 0:
                        break
                    time.sleep(5)
                print(f"  reconnected: exit {operator_box['reconnect'][0]}", file=sys.stderr, flush=True)
                operator_box["redrive"] = redrive(stack)
            except Exception as error:  # noqa: BLE001 - reported, and the run goes on to show it
                operator_box["reconnect"] = (1, {"error": f"{type(error).__name__}: {error}"})
            finally:
                reconnected.set()

        def revoke() -> None:
            control(stack, "disconnect")
            print("  ledger token revoked (app disconnected in the ledger)", file=sys.stderr, flush=True)
            threading.Thread(target=later, name="operator", daemon=True).start()

        revoke_at = None if args.no_revoke else args.revoke_token_at
        if revoke_at is None:
            reconnected.set()
        sent_at = time.monotonic()
        result = deliver(
            stack,
            webhooks,
            senders=args.senders,
            revoke_at=revoke_at,
            revoke=revoke,
            max_backlog=args.max_backlog,
        )
        delivered = time.monotonic() - sent_at
        if not reconnected.wait(timeout=args.timeout):
            print("the operator's reconnect did not finish", file=sys.stderr)
        result.reconnect = operator_box.get("reconnect")
        result.reconnect_attempts = int(operator_box.get("reconnect_attempts", 0))
        result.reconnect_redrive = operator_box.get("redrive")
        print("  all sent; draining", file=sys.stderr, flush=True)
        drained = stack.drain(timeout=args.timeout)
        synced = time.monotonic() - sent_at
        operator = operate(stack, timeout=args.timeout, wait=args.operator_wait)
        left = parked(stack)
        waiting = dead_letters(stack)
        final = {(r.kind, r.source_id): r for r in records(stack)}
        stop_watching.set()
        calls = sandbox_calls(stack)
        found = reconcile(population, stack)
        invocations = sum(source.invocations for source in stack.event_sources)
        retried = sum(source.failures for source in stack.event_sources)
    elapsed = time.monotonic() - began
    report(args, population, result, calls, containers, operator, left, waiting, found)
    statuses = Counter(r.status.value for r in final.values())
    print(f"sync records: {len(final):,} {dict(statuses)}")
    for document in population.documents:
        record = final.get((document.kind, document.source_id))
        if any(line.startswith(f"{document.kind} {document.source_id} ") for line in found.missing):
            state = (
                f"{record.status.value}, attempts {record.attempts}, intent {bool(record.idempotency_key)}, "
                f"ledger id {record.ledger_id}, last error {record.last_error}"
                if record
                else "no record"
            )
            print(f"  missing {document.kind} {document.source_id}: record {state}")
    print(
        f"timing: delivered in {delivered:.0f} s, drained {'' if drained else 'NOT '}in {synced:.0f} s "
        f"({len(population.documents) / synced * 60:,.0f} documents a minute), whole run {elapsed:.0f} s; "
        f"{invocations:,} push invocations, {retried:,} messages handed back"
    )
    print(
        f"chaos documents={len(population.documents)} ledger={found.ledger} "
        f"duplicates={len(found.duplicates)} missing={len(found.missing)} "
        f"amount_mismatches={len(found.mismatches)} parked={len(left)}"
    )
    return 0 if not (found.duplicates or found.missing or found.mismatches) else 1


def report(
    args: argparse.Namespace,
    population: Population,
    delivery: Delivery,
    calls: Counter[str],
    containers: Containers,
    operator: list[dict[str, Any]],
    left: list[Any],
    waiting: int,
    found: Reconciliation,
) -> None:
    show = args.show
    print(
        f"population: {len(population.documents):,} documents {dict(found.expected)}; "
        f"stories {dict(population.stories)}; seed {args.seed}"
    )
    print(
        f"webhooks: {len(population.webhooks):,} sent {delivery.sent:,} times "
        f"(up to {args.duplicates} each{', shuffled' if args.shuffle else ', in order'}), "
        f"{delivery.attempts:,} HTTP attempts {dict(delivery.statuses)}; refused {len(delivery.refused)}"
    )
    for line in delivery.refused[:show]:
        print(f"  refused: {line}")
    print(
        f"ledger: {calls['calls']:,} API calls, {calls['429']:,} answered 429 (injected, or the ledger's own "
        f"limits), {calls['5xx']:,} 5xx (lost 502 answers among them), {calls['dropped']:,} connections "
        "dropped after a commit"
    )
    print(
        f"crashes: {sum(containers.crashes.values())} after a ledger write {dict(containers.crashes)}; "
        f"{containers.cold_starts} containers started"
    )
    if delivery.reconnect is not None:
        code, shown = delivery.reconnect
        company = shown.get("company") or shown.get("error") or shown
        print(
            f"token: revoked at {args.revoke_token_at:.0%} of the webhooks; reconnect exit {code} "
            f"({company}) after {delivery.reconnect_attempts} attempt(s)"
        )
    for number, step in enumerate(operator, start=1):
        print(
            f"operator re-drive {number}: {step['parked']} parked {dict(step['reasons'])}, "
            f"{step['queued']} events queued, {step['dead_letters_moved']} dead letters moved"
        )
    print(
        f"left parked: {len(left)} {dict(Counter((r.last_error or '').split(':')[0] for r in left))}; "
        f"dead letters {waiting}"
    )
    for record in left[:show]:
        print(f"  parked: {record.kind} {record.source_id}: {record.last_error}")
    print(
        f"ledger: {found.ledger:,} documents carry a population marker {dict(found.found)}; "
        f"{found.unmarked} without a marker (seeded, customers' own); {len(found.unknown)} unknown markers"
        + (f"; payouts {dict(found.payouts)}" if found.payouts else "")
    )
    for title, items in (
        ("duplicate", found.duplicates),
        ("missing", found.missing),
        ("amount mismatch", found.mismatches),
        ("unknown", found.unknown),
        ("voided", found.voided),
    ):
        for line in items[:show]:
            print(f"  {title}: {line}")
        if len(items) > show:
            print(f"  ... {len(items) - show} more {title}")


if __name__ == "__main__":
    sys.exit(main())
