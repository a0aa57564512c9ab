"""``invoice-sync status``: is the deployment keeping up? Queue depth and dead letters, parked
records by status and reason, token age and expiry, ledger requests used today, last sync.

Every figure comes from one cheap read: SQS queue attributes, the sparse status index (parked
records only), each connection's token secret (dates only: token values are never printed), the
day's ledger-use item, and the newest day-index entries. Where payments back is on (issue 7),
whether the two secrets it needs are stored (read as it reads them; their values are not printed);
its parked ``ledger_payment`` records count with the others, by reason, and the ledger events queue
and its dead letters are shown beside the sync queue's (where the stack has them).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table

from invoice_sync.errors import ConnectionBroken
from invoice_sync.ledgers.freshbooks import client as freshbooks
from invoice_sync.ledgers.quickbooks import client as qbo
from invoice_sync.ledgers.xero import client as xero
from invoice_sync.models.mapping import Connection
from invoice_sync.models.sync import SyncStatus, utcnow
from invoice_sync.store.queue import QueueDepth, depth_of
from invoice_sync_ops.commands import COMMON, Context
from invoice_sync_ops.commands.mappings import payments_back_secrets

PARKED = [s for s in SyncStatus if s.parked]
# The ledgers' published limits: Xero 5,000 calls a day per organisation; QBO and FreshBooks
# have none per day, only per minute.
DAILY_LIMITS = {"xero": 5000}
PER_MINUTE = {
    "quickbooks": qbo.REQUESTS_PER_MINUTE,
    "xero": xero.CALLS_PER_MINUTE,
    "freshbooks": freshbooks.REQUESTS_PER_MINUTE,
}


def reason_of(last_error: str | None, alerted_reason: str | None) -> str:
    """The short, stable reason a record is parked (what its alert was de-duplicated on)."""
    if alerted_reason:
        return alerted_reason
    return (last_error or "unknown").split(":", 1)[0]


def _depth(depth: QueueDepth) -> dict[str, int]:
    return {
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
        "total": depth.total,
    }


def _optional_depth(sqs: Any, queue_url: str | None) -> dict[str, int] | None:
    return _depth(depth_of(sqs, queue_url)) if queue_url else None


def _seconds(later: datetime | None, earlier: datetime) -> int | None:
    return int((later - earlier).total_seconds()) if later else None


def _span(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {rest // 60}m"
    return f"{sign}{rest // 60}m {rest % 60}s"


def _tokens(ctx: Context, connection_id: str, now: datetime) -> dict[str, Any]:
    try:
        tokens = ctx.secrets.ledger_tokens(connection_id)
    except ConnectionBroken as error:
        return {"connected": False, "detail": error.detail or str(error)}
    return {
        "connected": True,
        "refreshed_at": tokens.refreshed_at.isoformat() if tokens.refreshed_at else None,
        "age_seconds": _seconds(now, tokens.refreshed_at) if tokens.refreshed_at else None,
        "access_expires_at": tokens.access_expires_at.isoformat() if tokens.access_expires_at else None,
        "access_expires_in_seconds": _seconds(tokens.access_expires_at, now),
        "refresh_expires_at": tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else None,
        "refresh_expires_in_seconds": _seconds(tokens.refresh_expires_at, now),
    }


def _payments_back(ctx: Context, connection: Connection) -> dict[str, Any]:
    """On or off, since when, and (only when on: two reads) whether its secrets are stored."""
    if not connection.payments_back:
        return {"on": False, "since": None, "stripe_writer_key": None, "ledger_webhook_key": None}
    writer, webhook = payments_back_secrets(ctx, connection)
    since = connection.payments_back_since
    return {
        "on": True,
        "since": since.isoformat() if since else None,
        "stripe_writer_key": writer,
        "ledger_webhook_key": webhook,
    }


def _payments_back_cell(state: dict[str, Any], ledger: str) -> str:
    if not state["on"]:
        return "off"
    needed = [("writer key", "stripe_writer_key")]
    if ledger != "xero":  # Xero's payments are polled when it sends no webhooks
        needed.append(("webhook key", "ledger_webhook_key"))
    missing = [name for name, key in needed if not state[key]]
    return f"[yellow]on, no {' or '.join(missing)}[/]" if missing else "on"


def connection_status(ctx: Context, connection: Connection, now: datetime) -> dict[str, Any]:
    connection_id = connection.connection_id
    parked: dict[str, Any] = {}
    for status in PARKED:
        reasons = Counter(
            reason_of(r.last_error, r.alerted_reason)
            for r in ctx.state.needing_attention(connection_id, status)
        )
        parked[status.value] = {"total": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))}
    day = now.date().isoformat()
    requests, throttled = ctx.state.ledger_use(connection_id, day)
    last = ctx.state.last_synced(connection_id)
    return {
        "connection_id": connection_id,
        "ledger": connection.ledger,
        "source": connection.source,
        "active": connection.active,
        "mapping_version": connection.mapping_version,
        "parked": parked,
        "tokens": _tokens(ctx, connection_id, now),
        "payments_back": _payments_back(ctx, connection),
        "ledger_use": {
            "day": day,
            "requests": requests,
            "throttled": throttled,
            "daily_limit": DAILY_LIMITS.get(connection.ledger),
            "per_minute_limit": PER_MINUTE.get(connection.ledger),
        },
        "last_synced_at": last.updated_at.isoformat() if last and last.updated_at else None,
        "last_synced": f"{last.kind} {last.source_number or last.source_id}" if last else None,
    }


def _tables(data: dict[str, Any]) -> Group:
    queues = Table(title="Queues", title_justify="left")
    for column in ("queue", "waiting", "in flight", "delayed"):
        queues.add_column(column, justify="right" if column != "queue" else "left")
    for name, key in (
        ("sync queue", "queue"),
        ("dead letters", "dead_letters"),
        ("ledger events", "ledger_events"),
        ("ledger event dead letters", "ledger_events_dead_letters"),
    ):
        depth = data[key]
        if depth is None:  # a stack older than payments back has no ledger events queue
            continue
        style = "red" if key.endswith("dead_letters") and depth["total"] else ""
        queues.add_row(
            name,
            *(
                f"[{style}]{depth[k]}[/]" if style else str(depth[k])
                for k in ("visible", "in_flight", "delayed")
            ),
        )
    connections = Table(title="Connections", title_justify="left")
    for column in (
        "connection",
        "ledger",
        "parked",
        "token age",
        "access expires in",
        "refresh expires in",
        "ledger requests today",
        "last sync (UTC)",
        "payments back",
    ):
        connections.add_column(column, overflow="fold")
    parked = Table(title="Parked records by reason", title_justify="left")
    for column in ("connection", "status", "reason", "records"):
        parked.add_column(column, justify="right" if column == "records" else "left", overflow="fold")
    for c in data["connections"]:
        tokens, use = c["tokens"], c["ledger_use"]
        limit = (
            f" of {use['daily_limit']:,}" if use["daily_limit"] else f" ({use['per_minute_limit']}/min max)"
        )
        throttled = f", {use['throttled']} throttled" if use["throttled"] else ""
        total_parked = sum(p["total"] for p in c["parked"].values())
        connections.add_row(
            c["connection_id"] + ("" if c["active"] else " (inactive)"),
            c["ledger"],
            f"[yellow]{total_parked}[/]" if total_parked else "0",
            _span(tokens.get("age_seconds")) if tokens["connected"] else "[red]not connected[/]",
            _span(tokens.get("access_expires_in_seconds")) if tokens["connected"] else "",
            _span(tokens.get("refresh_expires_in_seconds")) if tokens["connected"] else "",
            f"{use['requests']:,}{limit}{throttled}",
            (c["last_synced_at"] or "none in 7 days")[:19].replace("T", " ")
            + (f"  {c['last_synced']}" if c["last_synced"] else ""),
            _payments_back_cell(c["payments_back"], c["ledger"]),
        )
        for status, counts in c["parked"].items():
            for reason, count in counts["reasons"].items():
                parked.add_row(c["connection_id"], status, reason, str(count))
    parts: list[Table] = [queues, connections]
    if parked.row_count:
        parts.append(parked)
    return Group(*parts)


def run(args: argparse.Namespace, ctx: Context) -> int:
    target = ctx.target
    now = utcnow()
    chosen = getattr(args, "connection", None) or os.environ.get("INVOICE_SYNC_CONNECTION")
    connections = [ctx.connection(chosen)] if chosen else ctx.mappings.connections()
    sqs = target.client("sqs")
    data = {
        "queue": _depth(depth_of(sqs, target.sync_queue_url)),
        "dead_letters": _depth(depth_of(sqs, target.dead_letter_queue_url)),
        # Payments back: None where the stack (or its target file) has no such queue.
        "ledger_events": _optional_depth(sqs, target.ledger_events_queue_url),
        "ledger_events_dead_letters": _optional_depth(sqs, target.ledger_events_dead_letter_queue_url),
        "connections": [connection_status(ctx, c, now) for c in connections],
        "as_of": now.isoformat(),
    }
    if ctx.json:
        ctx.emit(data)
    else:
        ctx.console.print(_tables(data))
        if not connections:
            ctx.say("no connection registered yet")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        parents=[COMMON],
        help="queue depths, dead letters, parked records by reason, token age, ledger use today",
        description=(
            "How the deployment is doing: the sync queue and its dead letters (and the ledger "
            "events queue and its dead letters, for payments back), and per connection "
            "(every one, or --connection) the parked records by status and reason, token age and "
            "expiry, ledger requests used today against the ledger's limit, and the last sync."
        ),
    )
    parser.set_defaults(func=run)
