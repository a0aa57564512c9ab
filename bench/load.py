"""Load on the webhook endpoint of the local stack: concurrent signed posts for a bounded time.

The local stack (``invoice_sync_ops.local.stack``: moto's server for AWS, ``LocalHttpApi``
playing API Gateway in front of the intake handler) takes ``--concurrency`` workers, each posting
signed Stripe ``invoice.finalized`` webhooks over HTTP (keep-alive, one connection a worker) as
fast as answers come, for ``--seconds``. Every webhook is a different invoice (its own event id,
invoice id and number), signed when it is sent. ``--hostile`` mixes in that share of forged
posts (signed with another secret), which must be answered 401; every other post must be 200
``queued``. An error is any other answer, or a post that gets none.

Push is stopped while the load runs, so the figures are the intake's and the sync queue can be
counted afterwards: it must hold exactly one message per accepted webhook (none lost, none
doubled). ``--push`` leaves push running (the machine's CPU is then shared with it, as on a
laptop demo, not as in Lambda) and drains the queue at the end.

Everything runs in this one process (the HTTP API, the handler, moto's server, the client
threads), so the figures are this machine's and this interpreter's, not Lambda's: each Lambda
instance serves one request at a time and API Gateway scales them out.

    .venv/bin/python bench/load.py [--seconds 10] [--concurrency 8] [--hostile 0.1] [--push]

Last line: ``load rps=<req/s> p50_ms=<ms> p99_ms=<ms> errors=<N>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from invoice_sync.sources.stripe import signature_header
from invoice_sync_ops.local.stack import LocalStack

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "events" / "stripe" / "a1_invoice.finalized.current.json"
)


@dataclass
class Tally:
    """One worker's answers: latencies of every post, and what went wrong."""

    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)


def webhook(template: dict[str, Any], worker: int, n: int) -> bytes:
    """A new invoice each time: its own event id, invoice id, number and line ids."""
    event = json.loads(json.dumps(template))
    event["id"] = f"evt_load{worker}x{n}"
    invoice = event["data"]["object"]
    invoice["id"] = f"in_load{worker}x{n}"
    invoice["number"] = f"LOAD-{worker}-{n}"
    for index, line in enumerate(invoice["lines"]["data"]):
        line["id"] = f"il_load{worker}x{n}x{index}"
    return json.dumps(event).encode()


def work(
    url: str, secret: str, template: dict[str, Any], worker: int, stop_at: float, hostile: float, tally: Tally
) -> None:
    n = 0
    # Forged posts at an even spacing, not at random: the same share in every run.
    every = round(1 / hostile) if hostile > 0 else 0
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < stop_at:
            n += 1
            forged = bool(every) and n % every == 0
            body = webhook(template, worker, n)
            header = signature_header(body, ["whsec_forged" if forged else secret], int(time.time()))
            started = time.perf_counter()
            try:
                response = client.post(
                    url,
                    content=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
            except httpx.HTTPError as exc:
                tally.errors.append(f"{type(exc).__name__}")
                continue
            tally.latencies.append(time.perf_counter() - started)
            expected = 401 if forged else 200
            if response.status_code != expected:
                tally.errors.append(f"{response.status_code} (expected {expected}): {response.text[:120]}")
            elif forged:
                tally.refused += 1
            elif response.json().get("outcome") != "queued":
                tally.errors.append(f"200 but {response.text[:120]}")
            else:
                tally.accepted += 1


def queue_depth(stack: LocalStack) -> int:
    assert stack.resources is not None
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.sync_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def nothing_lost(stack: LocalStack, *, push: bool, accepted: int, warm: int, before: int) -> list[str]:
    """Without push: one new queue message per accepted webhook. With push: the queue drains, and
    (QuickBooks) the ledger holds one invoice per accepted webhook, the warm-up's included."""
    if not push:
        queued = queue_depth(stack) - before
        print(f"sync queue: {queued} new messages for {accepted} accepted webhooks")
        return [] if queued == accepted else [f"{queued} messages queued for {accepted} accepted webhooks"]
    drained = stack.drain(timeout=max(60.0, accepted / 5))
    print(f"push drained the queue: {'yes' if drained else 'NO (timed out)'}")
    if not drained:
        return ["push did not drain the queue"]
    if stack.ledger.kind != "quickbooks":
        return []
    numbers = [
        str(d.get("DocNumber"))
        for d in stack.sandbox.documents(stack.ledger.tenant_id, "Invoice")  # type: ignore[attr-defined]
        if str(d.get("DocNumber", "")).startswith("LOAD-")
    ]
    expected = accepted + warm
    print(f"ledger: {len(numbers)} invoices ({len(set(numbers))} numbers) for {expected} accepted webhooks")
    if len(numbers) != expected or len(set(numbers)) != expected:
        return [f"{len(numbers)} ledger invoices for {expected} accepted webhooks"]
    return []


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def run_load(
    url: str, secret: str, template: dict[str, Any], concurrency: int, seconds: float, hostile: float
) -> tuple[list[Tally], float]:
    """``concurrency`` workers posting until ``seconds`` have passed; their tallies and the time taken."""
    tallies = [Tally() for _ in range(concurrency)]
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=work,
            args=(url, secret, template, worker + 1, started + seconds, hostile, tallies[worker]),
            name=f"load-{worker + 1}",
        )
        for worker in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tallies, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the load lasts (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="workers posting at once (default 8)")
    parser.add_argument(
        "--hostile", type=float, default=0.1, help="share of forged posts, answered 401 (default 0.1)"
    )
    parser.add_argument("--push", action="store_true", help="leave push running and drain at the end")
    args = parser.parse_args()
    if not 0 <= args.hostile < 1 or args.concurrency < 1 or args.seconds <= 0:
        parser.error("--hostile is a share in [0, 1); --concurrency and --seconds are positive")

    template = json.loads(FIXTURE.read_bytes())
    with LocalStack() as stack:
        if not args.push and stack.event_source is not None:
            stack.event_source.stop()
        url = stack.webhook_url()
        secret = stack.company.webhook_secret
        # Warm-up: the handler's first call builds its clients; not part of the figures.
        warm = Tally()
        work(url, secret, template, 0, time.monotonic() + 1.0, 0, warm)
        before = queue_depth(stack) if not args.push else 0
        tallies, elapsed = run_load(url, secret, template, args.concurrency, args.seconds, args.hostile)

        latencies = sorted(x for t in tallies for x in t.latencies)
        errors = [e for t in tallies for e in t.errors]
        accepted = sum(t.accepted for t in tallies)
        refused = sum(t.refused for t in tallies)
        requests = len(latencies) + sum(1 for e in errors if not e[:3].isdigit())
        errors += nothing_lost(stack, push=args.push, accepted=accepted, warm=warm.accepted, before=before)

    rps = requests / elapsed
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    mean = statistics.fmean(latencies) * 1000 if latencies else float("nan")
    slowest = latencies[-1] * 1000 if latencies else float("nan")
    print(
        f"{args.concurrency} workers for {elapsed:.1f} s: {requests} posts ({accepted} accepted, "
        f"{refused} forged and refused 401), mean {mean:.1f} ms, max {slowest:.1f} ms"
    )
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error} (x{errors.count(error)})")
    print(f"load_requests_per_second={rps:.1f} req/s")
    print(f"load_p50={p50:.1f} ms")
    print(f"load_p99={p99:.1f} ms")
    print(f"load_errors={len(errors)} errors")
    print(f"load rps={rps:.1f} p50_ms={p50:.1f} p99_ms={p99:.1f} errors={len(errors)}")


if __name__ == "__main__":
    main()
