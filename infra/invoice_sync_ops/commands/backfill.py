"""``invoice-sync backfill --since DATE``: historical invoices from Stripe's API into the ledger.

Each invoice Stripe lists (newest first, 100 a page) goes the way a webhook goes: made into a
Stripe event and handed, raw body and all, to the push use case the Lambda runs, in batches of
the ledger's batch size (QBO 30 per ``/batch``, Xero 50 per ``PUT /Invoices``, FreshBooks one by
one). Push archives each batch's events in one bundle of the raw archive before anything else
(so ``replay`` and ``redrive`` read them again), as it does intake's. Several batches are in
flight at once (``BATCHES_IN_FLIGHT``), all within the ledger's limits, and a batch waits for
the ledger's window rather than failing (``PATIENCE_SECONDS``). The version guard and sync
records make it safe to re-run: what is already synced comes back ``unchanged`` and nothing new
is written.

Exit status: 0 every invoice synced (or already was, or was skipped); 1 failed (Stripe or the
ledger unreachable, or some invoices failed and a re-run will retry them); 2 usage; 3 some
invoices were parked (unmapped rules, refused by the ledger): see ``unmapped`` and the sync log.
"""

from __future__ import annotations

import argparse
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from invoice_sync.errors import InvalidPayload
from invoice_sync.ledgers.http import Quota
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.money import Money
from invoice_sync.sources.stripe_api import StripeApi, StripeApiError
from invoice_sync.sync.push import Outcome, PushResult, PushService
from invoice_sync_ops.commands import COMMON, CliError, Context
from invoice_sync_ops.stripe_import import (
    BACKFILL_STATUSES,
    carried_message,
    push_service,
    stripe_client,
    synthetic_event,
)

EXIT_PARKED = 3
OUTCOMES = ("synced", "unchanged", "stale", "skipped", "parked", "failed", "invalid")
PROBLEMS = frozenset({"parked", "failed", "invalid"})
SHOWN_PROBLEMS = 1000
SHOWN_ROWS = 200
# How long a batch may wait for the ledger's limits (its window, a 429's Retry-After) before it
# fails. The push Lambda gives up after seconds, since its invocation is the budget; a backfill
# has no deadline, and a batch that fails comes back one invoice at a time (its intents are
# recorded, so the next attempt looks each one up first), so it waits out a whole minute.
# Longer waits (Xero's day limit) still fail the batch: re-run once the ledger allows.
PATIENCE_SECONDS = 90.0
# Batches handed to push at once (see _Batches); the adapter's limiter caps the ledger requests.
BATCHES_IN_FLIGHT = 4


def _day(text: str) -> datetime:
    """A UTC date (YYYY-MM-DD) or ISO 8601 time; a date means its midnight, UTC."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _until(text: str) -> datetime:
    """Like ``_day``, but a date means its last second: ``--until 2025-06-30`` takes the 30th."""
    moment = _day(text)
    return moment + timedelta(days=1, seconds=-1) if len(text) == 10 else moment


def _statuses(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    if "draft" in chosen:
        raise argparse.ArgumentTypeError("drafts are never imported: they are not in the books")
    unknown = [s for s in chosen if s not in BACKFILL_STATUSES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown status {', '.join(unknown) or '(none)'}: choose from {', '.join(BACKFILL_STATUSES)}"
        )
    return chosen


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backfill",
        parents=[COMMON],
        help="import historical invoices from Stripe's API through push (batches, progress, quota)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since", type=_day, required=True, help="invoices created from this day (YYYY-MM-DD, UTC) on"
    )
    parser.add_argument("--until", type=_until, help="... up to and including this day (default: now)")
    parser.add_argument(
        "--status",
        type=_statuses,
        default=BACKFILL_STATUSES,
        help=f"comma-separated statuses (default: {','.join(BACKFILL_STATUSES)}; never draft)",
    )
    parser.add_argument("--limit", type=int, help="at most this many invoices (the newest first)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list and count only: nothing archived or sent"
    )
    parser.add_argument(
        "--stripe-key", help="Stripe secret key (default: STRIPE_API_KEY, then Secrets Manager)"
    )
    parser.set_defaults(func=run)


@dataclass
class Report:
    connection: str
    ledger: str
    batch_size: int
    since: datetime
    until: datetime | None
    statuses: tuple[str, ...]
    dry_run: bool
    listed: int = 0  # what Stripe listed in the window (any status)
    counts: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    selected: int = 0  # invoices of the asked statuses handled so far
    # The rows kept for the listing: every problem up to SHOWN_PROBLEMS, the rest up to SHOWN_ROWS,
    # so a backfill of a million invoices does not hold a million rows.
    invoices: list[dict[str, Any]] = field(default_factory=list)
    _shown: Counter[str] = field(default_factory=Counter)

    def keep(self, row: dict[str, Any]) -> None:
        """A row whose outcome is final: counted, and listed while there is room."""
        problem = row["outcome"] in PROBLEMS
        if self._shown[str(problem)] < (SHOWN_PROBLEMS if problem else SHOWN_ROWS):
            self._shown[str(problem)] += 1
            self.invoices.append(row)

    quota_before: tuple[int, int] = (0, 0)  # the adapter's counts when this run began

    def document(
        self, stripe: StripeApi, quota: Quota | None, use_today: tuple[str, int, int]
    ) -> dict[str, Any]:
        """The ``--json`` document: these keys, always."""
        return {
            "connection": self.connection,
            "ledger": self.ledger,
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "statuses": list(self.statuses),
            "dry_run": self.dry_run,
            "listed": self.listed,
            "selected": self.selected,
            "counts": {name: self.counts.get(name, 0) for name in OUTCOMES},
            "batch_size": self.batch_size,
            "batches": self.batches,
            "stripe": {"requests": stripe.use.requests, "throttled": stripe.use.throttled},
            "ledger_quota": {
                # This run's requests; ``remaining`` is what the ledger last said is left (Xero says).
                "requests": (quota.requests - self.quota_before[0]) if quota else 0,
                "throttled": (quota.throttled - self.quota_before[1]) if quota else 0,
                "remaining": dict(quota.remaining) if quota else {},
            },
            "ledger_use_today": {"day": use_today[0], "requests": use_today[1], "throttled": use_today[2]},
            "invoices": self.invoices,
            "invoices_not_listed": self.selected - len(self.invoices),
        }


def _total(obj: dict[str, Any]) -> str | None:
    """Stripe's total (minor units) as an exact decimal string in its currency's decimals."""
    try:
        return format(Money(minor=int(obj["total"]), currency=str(obj["currency"]).upper()).to_decimal(), "f")
    except (KeyError, TypeError, ValueError):
        return None


def _row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_id": obj.get("id"),
        "number": obj.get("number"),
        "status": obj.get("status"),
        "created": datetime.fromtimestamp(int(obj.get("created") or 0), UTC).date().isoformat(),
        "total": _total(obj),
        "currency": str(obj.get("currency", "")).upper(),
        "outcome": None,
        "ledger_id": None,
        "reason": None,
    }


def _settle(rows: list[dict[str, Any]], results: list[PushResult | Exception], report: Report) -> None:
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, Exception):
            row.update(outcome="failed", reason=f"{result.__class__.__name__}: {result}")
        else:
            row.update(outcome=result.outcome.value, ledger_id=result.ledger_id, reason=result.reason)
        report.counts[str(row["outcome"])] += 1
        report.keep(row)


# An invoice on its way: its listing row and the body of the event made up for it.
Pending = list[tuple[dict[str, Any], bytes]]
Outcomes = list[PushResult | Exception | InvalidPayload | None]


class _Batches:
    """Hands batches to push ``BATCHES_IN_FLIGHT`` at a time, on worker threads, and settles them
    in the order they were sent. A batch's own work (parsing its events, archiving them, its sync
    records) is mostly waiting on AWS, and its ledger request on the ledger; with several batches
    in flight the waiting overlaps, and the ledger's quota, not the round trips, sets the pace.
    The threads share the connection's one adapter, so its limiter keeps them inside the ledger's
    limits together, and they write disjoint sync records (each invoice is in one batch)."""

    def __init__(self, service: PushService, connection_id: str, report: Report, workers: int) -> None:
        self._service = service
        self._connection_id = connection_id
        self._report = report
        self._workers = max(workers, 1)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="backfill-push")
        self._in_flight: deque[tuple[Pending, Future[Outcomes]]] = deque()

    def send(self, batch: Pending) -> None:
        self._in_flight.append((batch, self._pool.submit(self._push, batch)))
        while len(self._in_flight) > self._workers:
            self._settle_oldest()

    def _push(self, batch: Pending) -> Outcomes:
        """On a worker: each event parsed as intake parses it, then those that parsed pushed together
        (push archives their raw bodies in one bundle first)."""
        outcomes: Outcomes = [None] * len(batch)  # None: an event push does not handle
        messages: list[SyncMessage] = []
        places: list[int] = []
        for index, (_, body) in enumerate(batch):
            try:
                message = carried_message(self._connection_id, "stripe", body)
            except InvalidPayload as exc:
                outcomes[index] = exc
                continue
            if message is not None:
                messages.append(message)
                places.append(index)
        if messages:
            for index, result in zip(places, self._service.handle_batch(messages), strict=True):
                outcomes[index] = result
        return outcomes

    def _settle_oldest(self) -> None:
        batch, future = self._in_flight.popleft()
        outcomes = future.result()
        # A result still DEFERRED would mean a create never sent; handle_batch replaces every one.
        assert not any(isinstance(r, PushResult) and r.outcome is Outcome.DEFERRED for r in outcomes)
        pushed: list[tuple[dict[str, Any], PushResult | Exception]] = []
        for (row, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InvalidPayload):
                row.update(outcome="invalid", reason=str(outcome))
                self._report.counts["invalid"] += 1
                self._report.keep(row)
            elif outcome is not None:
                pushed.append((row, outcome))
        _settle([row for row, _ in pushed], [result for _, result in pushed], self._report)
        self._report.batches += 1

    def count_ledger_use(self) -> None:
        self._service.count_ledger_use()  # push counts each batch; this adds any request outside one

    def drain(self) -> None:
        """Waits for every batch sent and settles it; the threads end."""
        try:
            while self._in_flight:
                self._settle_oldest()
        finally:
            self._pool.shutdown(wait=True)


def run(args: argparse.Namespace, ctx: Context) -> int:  # noqa: PLR0915 - one linear flow
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", 2)
    until: datetime | None = args.until
    if until is not None and until < args.since:
        raise CliError("--until is before --since", 2)
    connection_id = ctx.connection_id
    mappings = ctx.connection_mappings(connection_id)
    stripe = stripe_client(ctx, args.stripe_key, connection_id)
    ledger = None if args.dry_run else ctx.ledger(connection_id)
    if ledger is not None:
        ctx.ledgers.set_patience(PATIENCE_SECONDS)
    batch_size = max(ledger.batch_size, 1) if ledger else 0
    report = Report(
        connection=connection_id,
        ledger=mappings.connection.ledger,
        batch_size=batch_size,
        since=args.since,
        until=until,
        statuses=tuple(args.status),
        dry_run=args.dry_run,
    )
    quotas = ctx.ledgers.quotas()
    if connection_id in quotas:
        report.quota_before = (quotas[connection_id].requests, quotas[connection_id].throttled)
    batches = None if args.dry_run else _Batches(push_service(ctx), connection_id, report, BATCHES_IN_FLIGHT)
    one_status = report.statuses[0] if len(report.statuses) == 1 else None
    pending: Pending = []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=ctx.errors if ctx.json else ctx.console,
        transient=False,
    )
    try:
        with progress:
            task = progress.add_task("listing" if args.dry_run else "importing", total=args.limit, counts="")
            for page in stripe.list_invoices(
                created_gte=int(args.since.timestamp()),
                created_lte=int(until.timestamp()) if until else None,
                status=one_status,
            ):
                done = False
                for obj in page:
                    report.listed += 1
                    if obj.get("status") not in report.statuses:
                        continue  # drafts, and statuses not asked for
                    row = _row(obj)
                    report.selected += 1
                    if batches is None:
                        row["outcome"] = "listed"
                        report.keep(row)
                    else:
                        pending.append((row, synthetic_event(obj)[1]))
                        if len(pending) >= batch_size:
                            batches.send(pending)
                            pending = []
                    progress.update(task, advance=1, counts=_counts_text(report))
                    if args.limit is not None and report.selected >= args.limit:
                        done = True
                        break
                if done:
                    break
            if pending and batches is not None:
                batches.send(pending)
                pending = []
            if batches is not None:
                batches.drain()
            progress.update(task, total=report.selected, counts=_counts_text(report))
    except StripeApiError as exc:
        raise CliError(
            f"Stripe: {exc} ({report.selected} invoices handled before it; re-run to go on)"
        ) from None
    finally:
        if batches is not None:
            batches.drain()  # a Stripe failure midway still settles what was sent
            batches.count_ledger_use()  # push counts each batch; this adds any request outside one
    quota = ctx.ledgers.quotas().get(connection_id)
    today = datetime.now(UTC).date().isoformat()
    requests, throttled = ctx.state.ledger_use(connection_id, today)
    data = report.document(stripe, quota, (today, requests, throttled))
    if ctx.json:
        ctx.emit(data)
    else:
        _show(ctx, data)
    if report.counts["failed"]:
        return 1
    return EXIT_PARKED if report.counts["parked"] or report.counts["invalid"] else 0


def _counts_text(report: Report) -> str:
    return " ".join(f"{name} {report.counts[name]}" for name in OUTCOMES if report.counts.get(name))


def _show(ctx: Context, data: dict[str, Any]) -> None:
    listing = Table(
        title=f"Stripe invoices since {data['since'][:10]}" + (" (dry run)" if data["dry_run"] else "")
    )
    for column in ("invoice", "number", "status", "created", "total", "outcome", "ledger id", "note"):
        listing.add_column(column)
    for row in data["invoices"]:
        total = row["total"]
        listing.add_row(
            str(row["source_id"]),
            str(row["number"] or ""),
            str(row["status"]),
            str(row["created"]),
            f"{total} {row['currency']}" if total is not None else "",
            str(row["outcome"] or ""),
            str(row["ledger_id"] or ""),
            str(row["reason"] or ""),
        )
    ctx.console.print(listing)
    if data["invoices_not_listed"]:
        ctx.console.print(
            f"({data['invoices_not_listed']} more not listed: every problem up to {SHOWN_PROBLEMS} "
            f"and {SHOWN_ROWS} others are; `invoice-sync log` has them all)",
            highlight=False,
        )
    counts = ", ".join(f"{name} {value}" for name, value in data["counts"].items() if value) or "nothing"
    ctx.console.print(
        f"{data['selected']} of {data['listed']} listed invoices selected "
        f"({', '.join(data['statuses'])}): {counts}",
        highlight=False,
    )
    if not data["dry_run"]:
        quota = data["ledger_quota"]
        remaining = (
            ", ".join(f"{k} {v}" for k, v in quota["remaining"].items()) or "not reported by the ledger"
        )
        use = data["ledger_use_today"]
        ctx.console.print(
            f"{data['ledger']}: {data['batches']} batches of up to {data['batch_size']}; "
            f"this run {quota['requests']} requests, {quota['throttled']} throttled; remaining {remaining}; "
            f"today {use['requests']} requests, {use['throttled']} throttled ({use['day']})",
            highlight=False,
        )
    stripe = data["stripe"]
    ctx.console.print(
        f"Stripe: {stripe['requests']} requests, {stripe['throttled']} throttled", highlight=False
    )
