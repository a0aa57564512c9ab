"""Ledger efficiency: a backfill of generated invoices into each ledger sandbox, the sandbox
enforcing the ledger's real limits; ledger requests per invoice against the batch floor, and
invoices a minute against the ceiling those limits allow.

Method, per ledger:

- **The ledger** is its sandbox (``invoice_sync_ops.sandboxes``) in a child process, over real
  HTTP, seeded as the local stack seeds it and built with the limits of LEDGER-APIS.md: QuickBooks
  Online 500 requests a minute, 10 a second, 10 at once, and at most 40 ``/batch`` requests a
  minute per company (1.3); Xero 60 calls a minute, 5 at once, 5,000 a day per organisation
  (2.3); FreshBooks publishes none (3.3), so the sandbox's and the adapter's assumption is used:
  100 requests a minute, 5 at once (one aggregator claims 432,000 a day, 300 a minute: this is
  the cautious side). Each limit is a sliding window answered with 429 (Xero and FreshBooks with
  Retry-After; QBO documents none and sends none). In a child process because a ledger's work is
  the ledger's: in this process it would take this process's CPU, which it never does in reality.
- **The product** is ``invoice-sync backfill`` itself (``commands.backfill.run``): it lists the
  invoices from the Stripe stand-in (a child process too; generated open invoices: one or two
  lines, three customers, 8.25 % tax), archives each as an event and hands them to the push use
  case's batch path (``PushService.handle_batch``) in batches of the ledger's size, with the
  adapters the push Lambda builds (``LedgerRegistry``: limits, retries, token refresh). AWS is
  moto in this process (``mock_aws``), not the local stack's moto server: the same store code,
  without an HTTP server in this process competing for its one interpreter (that costs the
  server's share of the CPU and made each AWS call slower, 68 ms an invoice against 29 ms
  measured). It is still not free: moto's DynamoDB and S3 cost some 6 ms of CPU a call, four
  calls an invoice, where real AWS costs network waiting, not CPU. The table shows this
  process's CPU per invoice and how busy it was, so a run the machine, not the ledger, held back
  says so.
- **Requests** are what the sandbox logged on its API (its OAuth token endpoint left out), 429s
  included. The floor is the fewest requests that can carry the invoices: QBO ceil(N/30) ``/batch``
  requests, Xero ceil(N/50) ``PUT /Invoices``, FreshBooks N (no batch call).
- **Ceiling.** The shortest time the limits allow for the floor's requests: request k of a
  sliding window of L a minute can go no sooner than floor(k/L) minutes after the first, and C at
  once of latency s take ceil(R/C) s at least; so T_min = max(floor((R-1)/L) min, ceil(R/C) s)
  for R floor requests, L the binding window (QBO 40 batch requests a minute, Xero 60, FreshBooks
  100) and C the concurrency. "% of ceiling" is T_min / elapsed: 100 % is the fastest run the
  ledger's limits permit, whatever the run's length (the steady rate, L x batch size a minute,
  is printed beside invoices/min; a short run can beat it by the first window's burst, which is
  why the fraction is not taken against it). Elapsed is the whole ``backfill`` run. "Quota
  used" is the same measure for the requests the run did send in the binding window: how full
  the client kept the ledger's quota, whatever each request carried (FreshBooks' two requests an
  invoice can use its quota fully and still reach only half its invoice ceiling).
- **Checked** against the sandbox's stored invoices afterwards: exactly N, one per number (a
  number twice is a duplicate), none missing, each total equal to the source's to the cent.
- **429s.** ``--throttle-rate P`` makes the sandbox answer a share P of API calls 429 at random
  (repeatably), on top of its limits, as a company whose quota other apps share does: the
  figures show what that costs and that it loses or duplicates nothing.
- **Time scale.** ``--time-scale S`` runs the ledger's clock S times faster: the sandbox's
  windows, Retry-After, token lifetimes and ``--latency``, and the client's limiter and back-off
  (the registry's clock and sleep), all together; figures are given in ledger time. It is honest
  only one way: this process's own work is not compressed, so a scaled run can understate the
  ceiling fraction, never overstate it. Use it when the CPU column shows headroom (FreshBooks'
  10,000 invoices take 200 real minutes at its 100 a minute; at S=20 they take 10). S < 1 is
  the other way round and is no ledger figure: it gives this process more time per ledger
  request, which isolates the client's pacing (limiter, batches in flight) from this machine's
  CPU; the table says so when it is used.

    .venv/bin/python bench/ledger_efficiency.py [--ledger all] [--invoices N] [--time-scale 1]
        [--throttle-rate 0] [--latency 0]

Last line: ``ledger_efficiency_worst_ceiling_fraction=<f> ratio``, the lowest "% of ceiling" of
the ledgers run (the line before it, the highest "% over floor").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe
from typing import Any

import httpx

LEDGER_NAMES = ("quickbooks", "xero", "freshbooks")
START = 1_600_000_000  # 2020-09-13: the generated invoices, one a minute from here
REGION = "us-east-1"
SECRETS_PREFIX = "invoice-sync/bench"
CONNECTION = "bench"
STRIPE_ACCOUNT = "acct_1BenchLedgerEff"
STRIPE_KEY = "sk_test_bench_ledger_efficiency"
WEBHOOK_SECRET = "whsec_bench"  # noqa: S105 - a benchmark value


@dataclass(frozen=True)
class Ledger:
    """A ledger's real limits (LEDGER-APIS.md) and where the sandbox keeps what the bench reads."""

    name: str
    title: str
    batch: int  # invoices one create request carries
    per_minute: int  # the binding window for create requests
    concurrent: int
    sandbox_limits: dict[str, int]
    control_root: str
    invoices: str  # the sandbox's collection of invoices
    api_prefix: str  # the API's paths (its OAuth token endpoint is elsewhere)
    number: Callable[[dict[str, Any]], str]
    total: Callable[[dict[str, Any]], Decimal]

    def creates(self, method: str, path: str) -> bool:
        if self.name == "quickbooks":
            return method == "POST" and path.endswith("/batch")
        if self.name == "xero":
            return method == "PUT" and path.endswith("/Invoices")
        return method == "POST" and path.endswith("/invoices/invoices")


LEDGERS = {
    "quickbooks": Ledger(
        name="quickbooks",
        title="QuickBooks Online",
        batch=30,
        per_minute=40,
        concurrent=10,
        sandbox_limits={
            "requests_per_minute": 500,
            "requests_per_second": 10,
            "max_concurrent": 10,
            "batch_requests_per_minute": 40,
        },
        control_root="companies",
        invoices="Invoice",
        api_prefix="/v3/",
        number=lambda doc: str(doc.get("DocNumber")),
        total=lambda doc: Decimal(str(doc["TotalAmt"])),
    ),
    "xero": Ledger(
        name="xero",
        title="Xero",
        batch=50,
        per_minute=60,
        concurrent=5,
        sandbox_limits={"calls_per_minute": 60, "max_concurrent": 5, "calls_per_day": 5000},
        control_root="organisations",
        invoices="Invoices",
        api_prefix="/api.xro/",
        number=lambda doc: str(doc.get("InvoiceNumber")),
        total=lambda doc: Decimal(str(doc["Total"])),
    ),
    "freshbooks": Ledger(
        name="freshbooks",
        title="FreshBooks",
        batch=1,
        per_minute=100,
        concurrent=5,
        sandbox_limits={"requests_per_minute": 100, "max_concurrent": 5},
        control_root="accounts",
        invoices="invoices",
        api_prefix="/accounting/",
        number=lambda doc: str(doc.get("invoice_number")),
        total=lambda doc: Decimal(str(doc["amount"]["amount"])),
    ),
}
# Big enough that the floor's requests fill more than two of the binding windows (below one the
# ceiling is the ledger's latency, not its limits), small enough that `all` takes minutes.
DEFAULT_INVOICES = {"quickbooks": 2_500, "xero": 6_500, "freshbooks": 120}


def scaled_clock(scale: float, base: Callable[[], float]) -> Callable[[], float]:
    """``base`` running ``scale`` times faster from now on (now reads the same)."""
    origin = base()
    return lambda: origin + (base() - origin) * scale


# --------------------------------------------------------------------------------------------------
# The ledger: a sandbox in a child process


def serve_sandbox(name: str, scale: float, latency: float, pipe: Pipe) -> None:
    """Child process: the ledger's sandbox with its real limits on a clock ``scale`` times fast,
    seeded as the local stack seeds it; sends its URL, serves until told to stop."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from invoice_sync_ops.local.ledgers import LEDGERS as LOCAL  # noqa: PLC0415
    from invoice_sync_ops.local.ledgers import Credentials  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.xero import XeroSandbox  # noqa: PLC0415

    kind = {"quickbooks": QuickBooksSandbox, "xero": XeroSandbox, "freshbooks": FreshBooksSandbox}[name]
    sandbox = kind(
        clock=scaled_clock(scale, time.time),
        latency_seconds=latency / scale,
        **LEDGERS[name].sandbox_limits,
    )
    LOCAL[name].seed(sandbox, Credentials())
    pipe.send(sandbox.start())
    pipe.recv()
    sandbox.stop()


def serve_stripe(invoices: int, pipe: Pipe) -> None:
    """Child process: the Stripe stand-in holding the generated invoices; sends its URL, serves
    until told to stop. Apart from this process for the same reason as the ledger: listing 10,000
    invoices is Stripe's work (its JSON took a fifth of this process's CPU when it ran here)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from invoice_sync_ops.sandboxes.stripe import StripeSandbox  # noqa: PLC0415

    stripe = StripeSandbox()
    stripe.seed_account(STRIPE_ACCOUNT, api_key=STRIPE_KEY, invoices=generated_invoices(invoices))
    pipe.send(stripe.start())
    pipe.recv()
    stripe.stop()


def generated_invoices(count: int) -> list[dict[str, Any]]:
    """The open invoices the Stripe stand-in lists (the same ones on both sides of the pipe)."""
    from invoice_sync_ops.sandboxes.stripe import generate_invoices  # noqa: PLC0415

    return generate_invoices(
        count, start=START, step_seconds=60, prefix="BENCH", id_prefix="in_1Bench", statuses=("open",)
    )


def child(target: Callable[..., None], *args: Any) -> tuple[Any, Pipe, str]:
    """Starts ``target(*args, pipe)`` in a fresh interpreter; returns it, its pipe and the URL it
    sent (within two minutes, or its exit code says why not)."""
    spawn = multiprocessing.get_context("spawn")
    parent, end = spawn.Pipe()
    process = spawn.Process(target=target, args=(*args, end), daemon=True)
    process.start()
    if not parent.poll(120):  # the child failed to start: its traceback is on stderr
        process.kill()
        raise RuntimeError(f"{target.__name__} did not start (exit code {process.exitcode})")
    return process, parent, parent.recv()


def stop(process: Any, pipe: Pipe) -> None:
    with contextlib.suppress(OSError):
        pipe.send("stop")
    process.join(timeout=10)


# --------------------------------------------------------------------------------------------------
# The product: invoice-sync backfill on moto, against the sandbox


def seed_aws(name: str, ledger_url: str, stripe_url: str) -> Any:
    """The stack's tables, bucket, queue, topic and secrets in moto, and one connection wired to
    the sandbox (its mapping rules, webhook secret, Stripe key and OAuth refresh token), as the
    local stack seeds them. Returns the CLI's target for it."""
    import boto3  # noqa: PLC0415

    from invoice_sync.models.mapping import Connection  # noqa: PLC0415
    from invoice_sync.models.tokens import TokenSet  # noqa: PLC0415
    from invoice_sync.store.mappings import MappingsStore  # noqa: PLC0415
    from invoice_sync.store.secrets import SecretStore  # noqa: PLC0415
    from invoice_sync_ops.local.ledgers import LEDGERS as LOCAL  # noqa: PLC0415
    from invoice_sync_ops.local.ledgers import Credentials  # noqa: PLC0415
    from invoice_sync_ops.target import Target  # noqa: PLC0415
    from invoice_sync_ops.template import create_stack_resources  # noqa: PLC0415

    local = LOCAL[name]
    session = boto3.session.Session(region_name=REGION)
    resources = create_stack_resources(session)
    mappings = MappingsStore(resources.mappings_table, session.client("dynamodb"))
    mappings.put_connection(
        Connection.model_validate(
            {
                "connection_id": CONNECTION,
                "ledger": local.kind,
                "tenant_id": local.tenant_id,
                **local.connection,
            }
        )
    )
    for rule in local.rules:
        mappings.put_rule(CONNECTION, rule)
    secrets = SecretStore(SECRETS_PREFIX, session.client("secretsmanager"))
    secrets.put_webhook_secrets(CONNECTION, [WEBHOOK_SECRET])
    secrets.put_stripe_api_key(CONNECTION, STRIPE_KEY)
    credentials = Credentials()
    secrets.save_ledger_tokens(
        CONNECTION,
        TokenSet.model_validate(
            {
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "refresh_token": credentials.refresh_token,
            }
        ),
    )
    return Target(
        name="bench",
        region=REGION,
        sync_table=resources.sync_table,
        mappings_table=resources.mappings_table,
        sync_queue_url=resources.sync_queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        archive_bucket=resources.archive_bucket,
        alerts_topic_arn=resources.alerts_topic_arn,
        secrets_prefix=SECRETS_PREFIX,
        ledger_environment=local.environment(ledger_url),
        stripe_api_base=stripe_url,
    )


@dataclass
class Run:
    ledger: Ledger
    invoices: int
    exit_code: int
    counts: dict[str, int]
    elapsed: float  # ledger seconds
    real: float
    cpu: float
    requests: int
    creates: int
    accepted_creates: int  # answered other than 429
    throttled: int
    other: Counter[str]
    stored: int
    duplicated: int
    missing: int
    unexpected: int
    wrong_totals: int
    latency: float

    @property
    def floor(self) -> int:
        return math.ceil(self.invoices / self.ledger.batch)

    @property
    def over_floor(self) -> float:
        return self.requests / self.floor - 1

    @property
    def fastest(self) -> float:
        """T_min: the shortest time the limits allow for the floor's requests (ledger seconds)."""
        window = (self.floor - 1) // self.ledger.per_minute * 60.0
        return max(window, math.ceil(self.floor / self.ledger.concurrent) * self.latency)

    @property
    def ceiling_fraction(self) -> float | None:
        """T_min / elapsed; None when the floor fits in one window and no latency bounds it."""
        return self.fastest / self.elapsed if self.fastest > 0 else None

    @property
    def quota_used(self) -> float | None:
        """How full the binding window was kept, whatever the requests carried: the shortest time
        the limits allow for the requests this run sent in it, over elapsed (QBO's window holds
        its /batch requests; Xero's and FreshBooks' every request)."""
        # A 429 is refused before the ledger counts it (the sandboxes' model), so it uses no quota.
        quickbooks = self.ledger.name == "quickbooks"
        sent = self.accepted_creates if quickbooks else self.requests - self.throttled
        fastest = (sent - 1) // self.ledger.per_minute * 60.0
        return fastest / self.elapsed if fastest > 0 else None

    @property
    def per_minute(self) -> float:
        return self.invoices / self.elapsed * 60

    @property
    def lost(self) -> int:
        return self.missing


def backfill(
    ledger: Ledger, invoices: int, *, scale: float, throttle_rate: float, latency: float, seed: int
) -> Run:
    from moto import mock_aws  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415

    from invoice_sync.ledgers.registry import LedgerRegistry  # noqa: PLC0415
    from invoice_sync_ops.commands import Context, backfill  # noqa: PLC0415
    from invoice_sync_ops.local.ledgers import LEDGERS as LOCAL  # noqa: PLC0415

    sandbox, sandbox_pipe, ledger_url = child(serve_sandbox, ledger.name, scale, latency)
    try:
        stripe, stripe_pipe, stripe_url = child(serve_stripe, invoices)
    except BaseException:
        stop(sandbox, sandbox_pipe)
        raise
    try:
        source = {
            str(obj["number"]): Decimal(int(obj["total"])) / 100 for obj in generated_invoices(invoices)
        }
        tenant = LOCAL[ledger.name].tenant_id
        control = f"{ledger_url}/_sandbox/{ledger.control_root}/{tenant}"
        if throttle_rate:
            httpx.post(
                f"{control}/faults", json={"throttle_rate": throttle_rate, "seed": seed}
            ).raise_for_status()
        with mock_aws():
            target = seed_aws(ledger.name, ledger_url, stripe_url)
            args = argparse.Namespace(
                since=datetime.fromtimestamp(START, UTC),
                until=None,
                status=("open",),
                limit=None,
                dry_run=False,
                stripe_key=None,
                json=True,
                connection=CONNECTION,
            )
            quiet = Console(file=io.StringIO())
            ctx = Context(args=args, console=quiet, errors=quiet, _target=target)
            # The adapters as push builds them, their limiter and back-off on the ledger's clock.
            ctx.__dict__["ledgers"] = LedgerRegistry(
                target.settings(),
                ctx.state,
                ctx.secrets,
                clock=scaled_clock(scale, time.monotonic),
                sleep=lambda seconds: time.sleep(seconds / scale),
            )
            out = io.StringIO()
            cpu, began = time.process_time(), time.perf_counter()
            with contextlib.redirect_stdout(out):
                code = backfill.run(args, ctx)
            real, cpu = time.perf_counter() - began, time.process_time() - cpu
            report = json.loads(out.getvalue())
        log = httpx.get(f"{ledger_url}/_sandbox/requests", timeout=60).json()
        stored = json.loads(
            httpx.get(f"{control}/{ledger.invoices}", timeout=120).content, parse_float=Decimal
        )
    finally:
        stop(stripe, stripe_pipe)
        stop(sandbox, sandbox_pipe)
    api = [entry for entry in log if entry["path"].startswith(ledger.api_prefix)]
    other: Counter[str] = Counter(
        f"{entry['method']} {entry['path'].split('?')[0].rsplit('/', 1)[-1]}"
        for entry in api
        if not ledger.creates(entry["method"], entry["path"].split("?")[0])
    )
    numbers = Counter(ledger.number(doc) for doc in stored)
    totals = {ledger.number(doc): ledger.total(doc) for doc in stored}
    return Run(
        ledger=ledger,
        invoices=invoices,
        exit_code=code,
        counts={name: value for name, value in report["counts"].items() if value},
        elapsed=real * scale,
        real=real,
        cpu=cpu,
        requests=len(api),
        creates=sum(1 for e in api if ledger.creates(e["method"], e["path"].split("?")[0])),
        accepted_creates=sum(
            1 for e in api if ledger.creates(e["method"], e["path"].split("?")[0]) and e["status"] != 429
        ),
        throttled=sum(1 for e in api if e["status"] == 429),
        other=other,
        stored=len(stored),
        duplicated=sum(count - 1 for count in numbers.values() if count > 1),
        missing=sum(1 for number in source if number not in numbers),
        unexpected=sum(1 for number in numbers if number not in source),
        wrong_totals=sum(
            1 for number, total in source.items() if number in totals and totals[number] != total
        ),
        latency=latency,
    )


# --------------------------------------------------------------------------------------------------


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def show(runs: list[Run], scale: float, throttle_rate: float, latency: float) -> None:
    print(
        f"time scale {scale:g}, random 429s {throttle_rate:.0%} of calls, ledger latency {latency:g} s; "
        "times in ledger seconds"
    )
    if scale < 1:
        print(
            f"NOTE: a ledger clock {1 / scale:g} x slower than real time gives this process {1 / scale:g} x "
            "the time per ledger request: a diagnostic of the client's pacing alone, not a ledger figure"
        )
    header = (
        f"{'ledger':<18}{'invoices':>9}{'requests':>10}{'req/inv':>9}{'floor':>7}{'over floor':>11}"
        f"{'inv/min':>9}{'steady':>8}{'of ceiling':>11}{'429s':>6}{'lost':>6}{'dup':>5}{'totals':>7}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        print(
            f"{run.ledger.title:<18}{run.invoices:>9}{run.requests:>10}{run.requests / run.invoices:>9.4f}"
            f"{run.floor:>7}{run.over_floor:>11.1%}{run.per_minute:>9.0f}"
            f"{run.ledger.per_minute * run.ledger.batch:>8}{_share(run.ceiling_fraction):>11}"
            f"{run.throttled:>6}"
            f"{run.lost:>6}{run.duplicated:>5}{'ok' if not run.wrong_totals else run.wrong_totals:>7}"
        )
    print()
    header = (
        f"{'ledger':<18}{'elapsed':>9}{'T_min':>7}{'quota used':>11}{'real':>8}{'CPU busy':>9}{'CPU/inv':>9}"
        f"  {'outcomes; stored; requests besides creates'}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        others = ", ".join(f"{count} {what}" for what, count in run.other.most_common())
        extra = f"; {run.unexpected} unexpected" if run.unexpected else ""
        print(
            f"{run.ledger.title:<18}{run.elapsed:>8.1f}s{run.fastest:>6.0f}s{_share(run.quota_used):>11}"
            f"{run.real:>7.1f}s"
            f"{run.cpu / run.real:>9.0%}{run.cpu / run.invoices * 1000:>7.1f}ms"
            f"  exit {run.exit_code} {run.counts}; {run.stored} stored{extra}; {others or 'none'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ledger", choices=[*LEDGER_NAMES, "all"], default="all")
    parser.add_argument(
        "--invoices",
        type=int,
        help="invoices per ledger (default: "
        + ", ".join(f"{name} {count:,}" for name, count in DEFAULT_INVOICES.items())
        + ")",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="ledger seconds per real second")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="share of API calls answered 429")
    parser.add_argument("--latency", type=float, default=0.0, help="ledger seconds each API call takes")
    parser.add_argument("--seed", type=int, default=1, help="of the random 429s")
    parser.add_argument(
        "--workers", type=int, help="batches backfill keeps in flight (default: its BATCHES_IN_FLIGHT)"
    )
    args = parser.parse_args()
    if args.time_scale <= 0 or not 0 <= args.throttle_rate < 1 or args.latency < 0:
        parser.error("--time-scale must be positive, --throttle-rate in [0, 1), --latency at least 0")
    # Set before the package is imported: Powertools reads them at import.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",  # moto's placeholder
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": "invoice-sync",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if args.workers is not None:
        from invoice_sync_ops.commands import backfill as command  # noqa: PLC0415

        command.BATCHES_IN_FLIGHT = args.workers
    names = LEDGER_NAMES if args.ledger == "all" else (args.ledger,)
    runs = []
    for name in names:
        runs.append(
            backfill(
                LEDGERS[name],
                args.invoices or DEFAULT_INVOICES[name],
                scale=args.time_scale,
                throttle_rate=args.throttle_rate,
                latency=args.latency,
                seed=args.seed,
            )
        )
        print(f"{name}: done in {runs[-1].real:.0f} s", file=sys.stderr, flush=True)
    show(runs, args.time_scale, args.throttle_rate, args.latency)
    fractions = [run.ceiling_fraction for run in runs if run.ceiling_fraction is not None]
    for run in runs:
        print(f"{run.ledger.name}_over_floor={run.over_floor:.3f} ratio")
    print(f"ledger_efficiency_worst_over_floor={max(run.over_floor for run in runs):.3f} ratio")
    for run in runs:
        print(f"{run.ledger.name}_ceiling_fraction={_share(run.ceiling_fraction)}")
    worst = f"{min(fractions):.3f}" if fractions else "nan"
    print(f"ledger_efficiency_worst_ceiling_fraction={worst} ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
