"""Logger and Metrics, created once; every handler uses the same ones.

Service name and namespace fall back to the template's values, so importing a handler outside
Lambda (tests, the local stack) still gives valid EMF and named log lines.

No Tracer: creating Powertools' Tracer loads the X-Ray SDK (about half a second of cold start).
Lambda's active tracing (template parameter ``Tracing``) still records each invocation.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    # Not imported at run time: the intake's cold start must not load httpx and the adapters.
    from invoice_sync.ledgers.http import Quota

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "invoice-sync"

# botocore at DEBUG writes every request's parameters and every response body: Secrets Manager's
# secret values, DynamoDB items and SQS bodies with customer e-mails. Lambda sets the root logger
# to the template's ApplicationLogLevel, so a DEBUG there would send them to CloudWatch; these
# loggers never go below INFO (tests/e2e/test_log_secrets.py).
for _wire in ("botocore", "boto3"):
    logging.getLogger(_wire).setLevel(max(logging.INFO, logging.getLogger(_wire).level))

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "InvoiceSync")

Handler = TypeVar("Handler", bound=Callable[..., Any])

# What every line would repeat that its log group (/aws/lambda/<function>) already says: about
# 170 bytes a line, a third of an intake invocation's log bytes (bench/cost.py counts them).
# The request id, cold start and correlation id stay.
REDUNDANT_KEYS = ("function_name", "function_memory_size", "function_arn")


def logged(correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    """Powertools' ``inject_lambda_context`` without the keys the log group already names."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def without_redundant_keys(event: Any, context: Any) -> Any:
            logger.remove_keys(list(REDUNDANT_KEYS))
            return handler(event, context)

        injected = logger.inject_lambda_context(
            without_redundant_keys, correlation_id_path=correlation_id_path
        )
        return functools.wraps(handler)(injected)  # type: ignore[return-value]

    return wrap


# --- metrics the alarms and the dashboard read (template.yaml) -----------------------------------
# Every metric carries the ``service`` dimension only, and Parked its ``reason`` too: each distinct
# dimension set is a custom metric billed by the month, so no connection id or source id is ever a
# dimension (the log lines name them; CloudWatch Logs Insights finds the connection behind a figure).


def emit_parked(reasons: Iterable[str]) -> None:
    """One ``Parked`` figure per distinct reason of a batch, with the reason as its dimension:
    ParkError reasons are short and stable (a handful of phrases), so the dimension stays small."""
    for reason, count in sorted(Counter(reasons).items()):
        with single_metric(
            name="Parked",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="reason", value=reason)


def webhook_to_ledger_ms(received_at: datetime | None, now: datetime) -> float | None:
    """Milliseconds from the webhook's arrival at intake to its document's ledger write; None when
    the message does not carry its arrival (a replay, a backfill)."""
    if received_at is None:
        return None
    return max(0.0, (now - received_at).total_seconds() * 1000)


def day_quota_used_percent(quotas: Iterable[Quota]) -> float | None:
    """The highest share (0-100) of a daily ledger quota used, as the ledger's last response said;
    None when no ledger among these counts a daily quota down.

    Xero counts its 5,000 calls a day per organisation down in X-DayLimit-Remaining. QuickBooks
    and FreshBooks publish per-minute limits only, which the adapters' limiters fill on purpose,
    so they have no daily figure to watch. (Imported here: only push, which has loaded the
    adapters already, asks.)
    """
    from invoice_sync.ledgers.xero.client import CALLS_PER_DAY  # noqa: PLC0415

    day_quotas = {"X-DayLimit-Remaining": CALLS_PER_DAY}
    used = [
        100.0 * (limit - quota.remaining[header]) / limit
        for quota in quotas
        for header, limit in day_quotas.items()
        if header in quota.remaining
    ]
    return max(used) if used else None


def token_days_left(expiries: Iterable[datetime | None], now: datetime) -> float | None:
    """Days until the first of these refresh tokens expires (negative once one has); None when no
    connection has a known expiry (FreshBooks' refresh tokens do not expire)."""
    known = [(expiry - now).total_seconds() / 86400 for expiry in expiries if expiry is not None]
    return round(min(known), 2) if known else None
