"""Cost per million invoices: M invoices through intake, push, export and reconcile on moto,
every AWS request counted and priced with the dated price table ``infra/aws_prices.toml``.

What runs. Each invoice is finalized, then paid; ``--credit-note-share`` of them then get a
post-payment credit note. Its webhooks are the repo's Stripe fixtures (``a1`` finalized, ``a2``
paid, ``f1`` credit note) re-branded per invoice (ids, number, customer, today's timestamps),
pretty-printed as Stripe sends them, signed with the connection's secret, and sent as Stripe sends
them for those actions to an endpoint subscribed as the README says (``--events recommended``):
``invoice.finalized``, ``invoice.paid``, ``credit_note.created``. ``--events all`` subscribes
``invoice.updated`` and ``invoice.payment_succeeded`` too, which Stripe fires beside them:
finalizing then sends ``invoice.finalized`` and ``invoice.updated``; paying ``invoice.paid``,
``invoice.payment_succeeded`` and ``invoice.updated``; a credit note ``credit_note.created``
and ``invoice.updated``. Every webhook is one
``webhook_intake.handler`` invocation with an API Gateway HTTP (payload 2.0) event. The sync
queue is then drained into ``push.handler`` in batches sized as Lambda's SQS event source would
size them (``bench/cost_esm.py``: template BatchSize, MaximumBatchingWindowInSeconds and
MaximumConcurrency; five pollers), in rounds of ``--chunk`` invoices (finalized, drained, paid,
drained, credited, drained). Push talks to the ``--ledger`` sandbox over HTTP. Finally
``nightly_export.handler`` and ``reconcile.handler`` run for the day (reconcile reads Stripe from
the Stripe stand-in over HTTP). Both ran before any invoice existed for an empty day too: that
run is the fixed cost of a scheduled run; the difference is the per-invoice part. Each handler
is invoked once unmetered first, so a process's first-invocation wiring is not in the figures.
Everything goes through the four handlers with the environment template.yaml gives the
functions, on moto in-process (``mock_aws``), the stack's resources created from template.yaml.

Two arrival patterns, half the invoices each: a realistic trickle (``--invoices-per-month``,
default 1,000,000, i.e. about 0.4 invoices a second, Poisson bursts) and a backfill-like rate
(``--backfill-rate`` messages a second) where every batch is full. ``--batch-fill N`` replaces the
trickle's simulated batches with batches of N.

What is counted (``bench/cost_meter.py``): every AWS request by service and operation through
botocore's event hooks, in billing units (SQS and SNS 64 KB chunks, DynamoDB read and write
request units from item sizes, GSI writes included, S3 PUT- and GET-class requests and bytes
written); the event source mapping's ReceiveMessage and DeleteMessageBatch from the model;
Lambda invocations; API Gateway requests; log bytes (what the functions print, captured per
invocation, plus Lambda's START/END/REPORT lines unless the function's LoggingConfig sets
SystemLogLevel WARN or above, as JSON records under LogFormat JSON, plus one API Gateway
access-log line per webhook in the template's format); HTTP bytes sent to the ledger and Stripe
(data transfer out).

Billed duration per invocation: the invoking thread's CPU time (``time.thread_time``: waits and
other processes on a shared machine do not count) less moto's and the meter's own is the CPU
time of our code and botocore's client side; it is multiplied by ``1769 / MemorySize``
(Lambda gives one vCPU at 1,769 MB and a proportional share below) times ``--cpu-factor``, and
then a modeled network latency is added per AWS request (``AWS_LATENCY_MS``) and per ledger and
Stripe request (``--ledger-ms``, ``--stripe-ms``); rounded up to 1 ms, at each function's
MemorySize read from template.yaml. The same measurement is priced at other memory sizes to
show the cheapest one that leaves a quarter above the handler's resident memory after import.
Cold starts: ``--cold-start-share`` of invocations also pay the handler's import time
(measured in a fresh interpreter).

The bench plays a month's traffic in minutes, so the ledger sandboxes' and push's own per-minute
limits are lifted (the real rate never meets them). ``--push-window`` (or ``--window``) and
``--batch-size`` run with another MaximumBatchingWindowInSeconds / BatchSize for push's event
source (what-if; template.yaml is not changed).

Prices: list prices, no free tiers (see the table's header). Fixed monthly costs and storage are
printed apart. The fixed costs come from template.yaml where it says them: each SQS event source
polling its idle queue (push's on SyncQueue, payments_back's on LedgerEventsQueue), every schedule
at its expression's invocations a month (the parameters' defaults), alarms by the metrics they are
billed for (a metric-math alarm each metric it reads), the log groups (free; their bytes are in
the figures). The scheduled runs are measured: export and reconcile of an empty day, and the Xero
payments poll (``payments_back`` with XeroPollSchedule's input) once with no Xero connection and
once with one idle Xero connection with payments back on (seeded in a Xero sandbox after the
day's runs, so export and reconcile never see it; its first poll, which only saves the cursor,
unmetered). Custom metrics: the EMF metrics seen in the run, and apart the names payments back's
handlers can emit (read from their source) that the run did not emit, since the bench drives no
ledger webhooks or ledger payments.

    .venv/bin/python bench/cost.py [--invoices 1000] [--credit-note-share 0.1] [--seed 7]
        [--ledger quickbooks] [--events recommended|all] [--batch-fill N] [--backfill-rate 100]
        [--push-window S] [--batch-size N] [--ledger-ms 300] [--dump invocations.json]

Last line: ``cost_per_million_invoices=<usd> USD`` (the trickle, per-invoice costs).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cost_esm
import cost_prices
from cost_meter import Invocation, Meter, OperationTally, WriteTally, item_size
from invoice_sync_ops.template import DEFAULT_TEMPLATE, load_template

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "events" / "stripe"
REGION = "us-east-1"
MILLION = 1_000_000
MONTH_SECONDS = 30 * 24 * 3600
FULL_VCPU_MB = 1769  # Lambda: one vCPU at 1,769 MB, CPU share proportional to memory below
API_VERSION = "2026-06-24.dahlia"
ROUTE_KEY = "POST /webhooks/{source}/{connection}"
HANDLERS = ("webhook_intake", "push", "nightly_export", "reconcile")
# The Xero payments poll: payments_back invoked by XeroPollSchedule with this input.
POLL_HANDLER = "payments_back"
POLL_EVENT = {"source": "schedule", "action": "poll-xero"}
POLL_CONNECTION = "xero-poll"  # the Xero connection seeded for the poll's per-connection figure
POLL_TENANT = "0b6e1c4a-2f3d-4a5b-8c7d-9e0f1a2b3c4d"  # its Xero organisation (not the demo's)
MEMORY_CHOICES = (128, 160, 192, 256, 384, 512, 1024, 1769, 3008)
# Modeled round trip of one AWS request from Lambda in the same region (ms): typical p50s, not
# measured here. The service's default is the "*" entry.
AWS_LATENCY_MS: dict[str, dict[str, float]] = {
    "dynamodb": {"*": 5.0, "Query": 8.0, "BatchWriteItem": 10.0, "TransactWriteItems": 12.0},
    "sqs": {"*": 10.0, "SendMessageBatch": 12.0},
    "s3": {
        "*": 20.0,
        "GetObject": 15.0,
        "HeadObject": 10.0,
        "PutObject": 25.0,
        "UploadPart": 40.0,
        "CompleteMultipartUpload": 30.0,
        "CopyObject": 30.0,
    },
    "secretsmanager": {"*": 15.0},
    "sns": {"*": 20.0},
    "kms": {"*": 5.0},
}
# CloudWatch Logs counts 26 bytes per event beside its message (PutLogEvents' size rule).
LOG_EVENT_OVERHEAD = 26
DYNAMODB_ITEM_OVERHEAD = 100  # bytes of index/overhead DynamoDB stores per item (and per GSI copy)


# ------------------------------------------------------------------------------- template facts


@dataclass
class FunctionFacts:
    logical_id: str
    memory_mb: int
    timeout_s: float
    ephemeral_mb: int = 512
    environment: dict[str, Any] = field(default_factory=dict)
    logging_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventSourceFacts:
    """One SQS event source mapping: the function it invokes and its template settings."""

    function: str  # the handler's name (push, payments_back)
    queue: str  # the queue's logical id
    batch_size: int
    window_s: float
    max_concurrency: int


@dataclass
class ScheduleFacts:
    """One EventBridge Scheduler schedule: its expression at the parameter's default, what it
    invokes, and how many times a month that is."""

    logical_id: str
    expression: str
    target: str  # the handler's name, or the target's logical id when it is not a function
    runs_per_month: float


@dataclass
class TemplateFacts:
    functions: dict[str, FunctionFacts]
    globals_environment: dict[str, Any]
    parameters: dict[str, Any]
    batch_size: int  # push's event source (the one the bench drives)
    batching_window_s: float
    max_concurrency: int
    access_log_format: str
    alarms: int
    schedules: int
    kms_keys: int
    kms_rotation: bool
    email_subscription: bool
    log_retention_days: int
    event_sources: list[EventSourceFacts] = field(default_factory=list)
    schedule_list: list[ScheduleFacts] = field(default_factory=list)
    alarm_metrics: int = 0  # what CloudWatch bills alarms by: metrics, a metric-math alarm's each
    log_groups: int = 0


def _param(parameters: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    return value


_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def _cron_field(text: str, low: int, high: int) -> float:
    """How many values one cron field takes (``*``, ``?``, lists, ranges, ``/`` steps)."""
    total = 0.0
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first, last = (int(x) for x in base.split("-", 1))
        else:
            first = int(base) if base.isdigit() else low
            last = high if step else first
        total += len(range(first, last + 1, int(step) if step else 1))
    return total


def runs_per_month(expression: str) -> float:
    """Invocations a 30-day month of an EventBridge Scheduler ``rate(...)`` or ``cron(...)``
    expression (cron: minutes x hours x days; a day-of-week list counts its share of 30 days)."""
    rate = re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip())
    if rate:
        unit = _RATE_UNITS.get(rate.group(2))
        if unit is None:
            raise SystemExit(f"schedule expression {expression!r}: unknown rate unit")
        return MONTH_SECONDS / (int(rate.group(1)) * unit)
    cron = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise SystemExit(f"schedule expression {expression!r}: a cron needs six fields")
        minutes, hours, dom, _, dow, _ = fields
        per_day = _cron_field(minutes, 0, 59) * _cron_field(hours, 0, 23)
        if dom not in ("*", "?"):
            days = _cron_field(dom, 1, 31) * 30 / 30.44
        elif dow not in ("*", "?"):
            numbered = re.sub(r"[A-Z]{3}", lambda m: str(_WEEKDAYS.index(m.group(0)) + 1), dow.upper())
            days = _cron_field(numbered.split("#")[0].rstrip("L"), 1, 7) * 30 / 7
        else:
            days = 30.0
        return per_day * days
    raise SystemExit(f"schedule expression {expression!r}: neither rate(...) nor cron(...)")


def _alarm_metrics(props: dict[str, Any]) -> int:
    """Metrics one alarm is billed for: its metric, or each metric a metric-math alarm reads."""
    queries = props.get("Metrics")
    if isinstance(queries, list):
        return max(1, sum(1 for query in queries if "MetricStat" in query))
    return 1


def _target(arn: Any, handlers: dict[str, str]) -> str:
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        logical_id = str(arn["Fn::GetAtt"][0])
        return handlers.get(logical_id, logical_id)
    return str(arn)


def template_facts(template: dict[str, Any]) -> TemplateFacts:
    parameters = template.get("Parameters", {})
    globals_fn = template.get("Globals", {}).get("Function", {})
    functions: dict[str, FunctionFacts] = {}
    sources: list[EventSourceFacts] = []
    schedule_resources: list[tuple[str, dict[str, Any]]] = []
    alarms = schedules = keys = alarm_metrics = log_groups = 0
    rotation = False
    access_log = ""
    handlers = {
        logical_id: match.group(1)
        for logical_id, resource in template["Resources"].items()
        if (
            match := re.fullmatch(
                r"invoice_sync\.handlers\.(\w+)\.handler",
                str(resource.get("Properties", {}).get("Handler", "")),
            )
        )
    }
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        if kind == "AWS::CloudWatch::Alarm":
            alarms += 1
            alarm_metrics += _alarm_metrics(props)
        elif kind == "AWS::Logs::LogGroup":
            log_groups += 1
        elif kind == "AWS::Scheduler::Schedule":
            schedules += 1
            schedule_resources.append((logical_id, props))
        elif kind == "AWS::KMS::Key":
            keys += 1
            rotation = rotation or bool(props.get("EnableKeyRotation"))
        elif kind == "AWS::Serverless::HttpApi":
            access_log = str(props.get("AccessLogSettings", {}).get("Format", ""))
        elif kind == "AWS::Serverless::Function":
            match = re.fullmatch(r"invoice_sync\.handlers\.(\w+)\.handler", str(props.get("Handler", "")))
            if not match:
                continue
            name = match.group(1)
            functions[name] = FunctionFacts(
                logical_id=logical_id,
                memory_mb=int(_param(parameters, props.get("MemorySize", globals_fn.get("MemorySize", 128)))),
                timeout_s=float(_param(parameters, props.get("Timeout", globals_fn.get("Timeout", 3)))),
                ephemeral_mb=int(props.get("EphemeralStorage", {}).get("Size", 512)),
                environment=dict(props.get("Environment", {}).get("Variables", {})),
                # SAM merges a map the function sets with Globals' (the function's keys win).
                logging_config={
                    key: _param(parameters, value)
                    for key, value in {
                        **(globals_fn.get("LoggingConfig") or {}),
                        **(props.get("LoggingConfig") or {}),
                    }.items()
                    if key != "LogGroup"
                },
            )
            for event in props.get("Events", {}).values():
                if event.get("Type") == "SQS":
                    ep = event.get("Properties", {})
                    scaling = ep.get("ScalingConfig", {})
                    sources.append(
                        EventSourceFacts(
                            function=name,
                            queue=_target(ep.get("Queue"), {}),
                            batch_size=int(_param(parameters, ep.get("BatchSize", 10))),
                            window_s=float(_param(parameters, ep.get("MaximumBatchingWindowInSeconds", 0))),
                            max_concurrency=int(_param(parameters, scaling.get("MaximumConcurrency", 1000))),
                        )
                    )
    missing = [name for name in HANDLERS if name not in functions]
    if missing:
        raise SystemExit(f"template.yaml has no function for {', '.join(missing)}")
    push_source = next((source for source in sources if source.function == "push"), None)
    if push_source is None:
        raise SystemExit("template.yaml gives push no SQS event source")
    schedule_list = [
        ScheduleFacts(
            logical_id=logical_id,
            expression=str(_param(parameters, props.get("ScheduleExpression", ""))),
            target=_target(props.get("Target", {}).get("Arn"), handlers),
            runs_per_month=runs_per_month(str(_param(parameters, props.get("ScheduleExpression", "")))),
        )
        for logical_id, props in schedule_resources
    ]
    return TemplateFacts(
        functions=functions,
        globals_environment=dict(globals_fn.get("Environment", {}).get("Variables", {})),
        parameters=parameters,
        batch_size=push_source.batch_size,
        batching_window_s=push_source.window_s,
        max_concurrency=push_source.max_concurrency,
        event_sources=sources,
        schedule_list=schedule_list,
        alarm_metrics=alarm_metrics,
        log_groups=log_groups,
        access_log_format=" ".join(access_log.split()),
        alarms=alarms,
        schedules=schedules,
        kms_keys=keys,
        kms_rotation=rotation,
        email_subscription=True,  # the AlertEmail subscription an operator is expected to set
        log_retention_days=int(parameters.get("LogRetentionDays", {}).get("Default", 30)),
    )


def resolve_environment(facts: TemplateFacts, literals: dict[str, str]) -> dict[str, str]:
    """Every function's environment from the template: literals kept, parameters at their
    defaults, resource references and ``!Sub``/``!FindInMap`` from ``literals`` (by name)."""
    resolved: dict[str, str] = {}
    variables = dict(facts.globals_environment)
    for function in facts.functions.values():
        variables.update(function.environment)
    for name, raw in variables.items():
        value = _param(facts.parameters, raw)
        if isinstance(value, str | int | float | bool):
            resolved[name] = str(value)
    resolved.update(literals)
    return resolved


# ----------------------------------------------------------------------------- Stripe webhooks

TIME_KEYS = frozenset(
    {
        "created",
        "finalized_at",
        "paid_at",
        "effective_at",
        "due_date",
        "period_start",
        "period_end",
        "webhooks_delivered_at",
        "automatically_finalizes_at",
        "next_payment_attempt",
        "canceled_at",
    }
)


def _shift(value: Any, delta: int) -> Any:
    if isinstance(value, dict):
        return {
            k: (v + delta if k in TIME_KEYS and isinstance(v, int) and v > 10**9 else _shift(v, delta))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_shift(v, delta) for v in value]
    return value


def _fixture_object(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    obj: dict[str, Any] = document["data"]["object"]
    return obj


class Stories:
    """Per invoice: its open and paid snapshots and its credit note, from the fixtures."""

    def __init__(self, *, per_customer: int, now: float) -> None:
        self.per_customer = max(1, per_customer)
        self.open = _fixture_object("a1_invoice.finalized.current.json")
        self.paid = _fixture_object("a2_invoice.paid.current.json")
        # a2 also carries a4's edit of the description and footer (the fixtures' story); here the
        # payment is the only change, as for most invoices.
        self.paid.update(description=self.open["description"], footer=self.open["footer"])
        self.credit = _fixture_object("f1_credit_note.created.current.json")
        # The fixtures' story starts 2026-01-01; move it to today, an hour back (never yesterday).
        today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = max(int(today.timestamp()) + 60, int(now) - 3600)
        self.delta = start - int(self.open["created"])
        self.created = start

    def _rebrand(self, obj: dict[str, Any], n: int) -> dict[str, Any]:
        c = n // self.per_customer
        text = json.dumps(obj)
        for old, new in (
            ("cnli_1QfAcmeCredit01", f"cnli_1Bn{n:07d}"),
            ("cn_1QfAcmeCredit01", f"cn_1Bn{n:07d}"),
            ("in_1QaCurrentAcme01", f"in_1Bn{n:07d}"),
            ("inpay_1QaAcmePay0001", f"inpay_1Bn{n:07d}"),
            ("pi_3QaAcmePay0001", f"pi_3Bn{n:07d}"),
            ("il_1QaAcme", f"il_1Bn{n:07d}"),
            ("ii_1QaAcme", f"ii_1Bn{n:07d}"),
            ("ACME-0001", f"BN-{n:07d}"),
            ("cus_RAcme01", f"cus_Bn{c:05d}"),
            ("Acme Corp", f"Customer {c:05d} Inc"),
            ("acme.example", f"c{c:05d}.example"),
        ):
            text = text.replace(old, new)
        rebranded: dict[str, Any] = _shift(json.loads(text), self.delta)
        return rebranded

    def invoice(self, n: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        opened = self._rebrand(self.open, n)
        paid = self._rebrand(self.paid, n)
        credit = self._rebrand(self.credit, n)
        credit.update(
            type="post_payment",
            pre_payment_amount=0,
            post_payment_amount=credit["total"],
            customer_balance_transaction=f"cbtxn_1Bn{n:07d}",
            memo="Goodwill credit for a late delivery",
        )
        return opened, paid, credit


def envelope(
    event_id: str, kind: str, obj: dict[str, Any], created: int, previous: dict[str, Any] | None = None
) -> bytes:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    return json.dumps(event, indent=2).encode()  # Stripe sends its events pretty-printed


def phases(
    stories: Stories, n: int, *, lean: bool, credit_note: bool
) -> tuple[list[bytes], list[bytes], list[bytes], dict[str, Any], dict[str, Any] | None]:
    """The webhooks of invoice ``n``: finalizing, paying, crediting; and its final snapshots."""
    opened, paid, credit = stories.invoice(n)
    t = stories.created + n % 3000
    evt = f"evt_1Bn{n:07d}"
    finalize = [envelope(f"{evt}Fin", "invoice.finalized", opened, t)]
    pay = [envelope(f"{evt}Paid", "invoice.paid", paid, t + 2)]
    if not lean:
        finalize.append(envelope(f"{evt}UpdF", "invoice.updated", opened, t, {"status": "draft"}))
        pay.append(envelope(f"{evt}PSuc", "invoice.payment_succeeded", paid, t + 2))
        pay.append(
            envelope(
                f"{evt}UpdP",
                "invoice.updated",
                paid,
                t + 2,
                {"status": "open", "amount_paid": 0, "amount_remaining": paid["amount_due"]},
            )
        )
    final = paid
    crediting: list[bytes] = []
    if credit_note:
        final = copy.deepcopy(paid)
        final["post_payment_credit_notes_amount"] = credit["total"]
        crediting.append(envelope(f"{evt}Cn", "credit_note.created", credit, t + 4))
        if not lean:
            crediting.append(
                envelope(
                    f"{evt}UpdC", "invoice.updated", final, t + 4, {"post_payment_credit_notes_amount": 0}
                )
            )
    return finalize, pay, crediting, final, credit if credit_note else None


# ----------------------------------------------------------------------------------- the run


@dataclass
class Scenario:
    name: str
    title: str
    invoices: list[int]
    esm: cost_esm.EsmResult | None
    fill: int | None = None  # --batch-fill: batches of this size instead of the simulation


@dataclass
class RunFacts:
    meter: Meter
    invoices: int
    scenarios: list[Scenario]
    webhooks_per_invoice: Counter[str]
    intake_statuses: Counter[int]
    push_failures: int
    message_bytes: float
    secrets_per_connection: int
    emf_metrics: set[tuple[str, str]]
    dynamodb_bytes: int
    dynamodb_ttl_bytes: int
    init_seconds: dict[str, float]
    wall_seconds: float
    init_rss: dict[str, float] = field(default_factory=dict)
    unseen_metrics: set[str] = field(default_factory=set)  # payments back's, not emitted in the run


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure_init(env: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """Per handler, in a fresh interpreter with the function's environment: seconds to import
    it (a cold start's INIT) and the peak resident memory after (MiB; what is left of the
    function's MemorySize for the invocations)."""
    seconds: dict[str, float] = {}
    rss: dict[str, float] = {}
    for name in (*HANDLERS, POLL_HANDLER):
        code = (
            "import resource, time; t = time.perf_counter(); "
            f"import invoice_sync.handlers.{name}; "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
        )
        output = subprocess.run(  # noqa: S603 - this interpreter, a fixed import
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **env, "AWS_EC2_METADATA_DISABLED": "true"},
        ).stdout
        took, peak = output.strip().splitlines()[-1].split()
        seconds[name], rss[name] = float(took), float(peak)
    return seconds, rss


def _lift_ledger_limits() -> None:
    """The bench plays a month's traffic in minutes: a ledger's per-minute limit, which the real
    rate (0.4 invoices a second) never meets, would throttle it. The client-side limiter's
    windows are widened here as the sandboxes' are (a measurement artefact, not a product
    setting); if the limiter moves, the bench warns and runs throttled."""
    try:
        from invoice_sync.ledgers import limits  # noqa: PLC0415 - only to widen the window
    except ImportError:
        print("warning: ledger limiter not found; the run may be throttled", file=sys.stderr)
        return
    original = limits.RateLimiter.__init__
    wide = 100_000

    def lifted(self: Any, *args: Any, **kwargs: Any) -> None:
        widened = [args[0] * wide, *args[1:]] if args and isinstance(args[0], int) else list(args)
        for key, value in list(kwargs.items()):
            if key.startswith("per_") and isinstance(value, int):
                kwargs[key] = value * wide
            elif key == "named" and isinstance(value, dict):
                kwargs[key] = {name: limit * wide for name, limit in value.items()}
        original(self, *widened, **kwargs)

    limits.RateLimiter.__init__ = lifted  # type: ignore[method-assign]


def _sandbox(kind: str) -> Any:
    """The ledger's sandbox with its rate limits lifted (every ``*per_*`` and concurrency
    argument its constructor takes, whatever they are called today)."""
    from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.xero import XeroSandbox  # noqa: PLC0415

    cls: type[Any] = {"quickbooks": QuickBooksSandbox, "xero": XeroSandbox}.get(kind, FreshBooksSandbox)
    unlimited = {
        name: 10**9
        for name, parameter in inspect.signature(cls).parameters.items()
        if ("per_" in name or "concurrent" in name) and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return cls(**unlimited)


def _host(url: str) -> str:
    match = re.match(r"https?://([^/:]+):(\d+)", url)
    assert match, url
    return f"{match.group(1)}:{match.group(2)}"


def run(args: argparse.Namespace, facts: TemplateFacts) -> RunFacts:
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from invoice_sync_ops.local.ledgers import LEDGERS  # noqa: PLC0415
    from invoice_sync_ops.local.stack import SECRETS_PREFIX, DemoCompany, seed_demo  # noqa: PLC0415
    from invoice_sync_ops.sandboxes.stripe import StripeSandbox  # noqa: PLC0415
    from invoice_sync_ops.template import create_stack_resources  # noqa: PLC0415

    began = time.perf_counter()
    aws_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)  # Lambda keeps EMF on
    ledger = LEDGERS[args.ledger]
    sandbox = _sandbox(ledger.kind)
    stripe = StripeSandbox(reads_per_second=10**6)
    ledger_url, stripe_url = sandbox.start(), stripe.start()
    # The Xero poll's connection: in the ledger's own sandbox when that is Xero, else in one of its own.
    xero = sandbox if ledger.kind == "xero" else _sandbox("xero")
    xero_url = ledger_url if xero is sandbox else xero.start()
    try:
        with environment(aws_env), mock_aws():
            session = boto3.session.Session(region_name=REGION)
            resources = create_stack_resources(session)
            literals = {
                **resources.environment(),
                "SECRETS_PREFIX": SECRETS_PREFIX,
                **LEDGERS["xero"].environment(xero_url),
                **ledger.environment(ledger_url),
                "STRIPE_API_BASE": stripe_url,
                "EXPORT_TMPDIR": args.tmpdir,
            }
            env = resolve_environment(facts, literals)
            init_seconds, init_rss = ({}, {}) if args.no_init else measure_init(env)
            with environment(env):
                facts_run = _drive(
                    args,
                    facts,
                    session,
                    resources,
                    ledger,
                    sandbox,
                    stripe,
                    init_seconds,
                    began,
                    seed_demo,
                    DemoCompany(),
                    ledger_url,
                    stripe_url,
                    (xero, xero_url),
                )
                facts_run.init_rss = init_rss
                return facts_run
    finally:
        sandbox.stop()
        stripe.stop()
        if xero is not sandbox:
            xero.stop()


def _drive(  # noqa: PLR0915 - the whole story, in order
    args: argparse.Namespace,
    facts: TemplateFacts,
    session: Any,
    resources: Any,
    ledger: Any,
    sandbox: Any,
    stripe: Any,
    init_seconds: dict[str, float],
    began: float,
    seed_demo: Callable[..., None],
    company: Any,
    ledger_url: str,
    stripe_url: str,
    xero_poll: tuple[Any, str],
) -> RunFacts:
    from invoice_sync import bootstrap  # noqa: PLC0415 - after the environment is set
    from invoice_sync.handlers import (  # noqa: PLC0415
        nightly_export,
        payments_back,
        push,
        reconcile,
        webhook_intake,
    )
    from invoice_sync.sources.stripe import signature_header  # noqa: PLC0415
    from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event  # noqa: PLC0415
    from invoice_sync_ops.local.ledgers import LEDGERS  # noqa: PLC0415

    rng = random.Random(args.seed)
    seed_demo(
        resources, ledger, sandbox, company, lambda service: session.client(service, region_name=REGION)
    )
    plain = {s: session.client(s, region_name=REGION) for s in ("sqs", "dynamodb", "secretsmanager")}
    queue_arn = plain["sqs"].get_queue_attributes(
        QueueUrl=resources.sync_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    secrets = plain["secretsmanager"].list_secrets()["SecretList"]

    stories = Stories(per_customer=args.invoices_per_customer, now=time.time())
    plan = []
    finals: list[dict[str, Any]] = []
    credits: list[dict[str, Any]] = []
    webhooks: Counter[str] = Counter()
    for n in range(args.invoices):
        with_credit = rng.random() < args.credit_note_share
        finalize, pay, crediting, final, credit = phases(
            stories, n, lean=args.events == "recommended", credit_note=with_credit
        )
        plan.append((finalize, pay, crediting))
        finals.append(final)
        if credit is not None:
            credits.append(credit)
        for body in (*finalize, *pay, *crediting):
            webhooks[json.loads(body)["type"]] += 1
    stripe.seed_account(company.stripe_account, api_key=company.stripe_api_key, invoices=finals)
    stripe.add_objects(company.stripe_account, "credit_notes", credits)

    meter = Meter(
        host_kinds={_host(ledger_url): "ledger", _host(xero_poll[1]): "ledger", _host(stripe_url): "stripe"}
    )
    meter.install(session)
    bootstrap.reset()  # the stores' clients are made again, now with the meter's hooks
    _lift_ledger_limits()

    def context(name: str) -> Any:
        fn = facts.functions[name]
        return LocalContext(
            f"invoice-sync-{fn.logical_id}", memory_limit_in_mb=fn.memory_mb, timeout_seconds=fn.timeout_s
        )

    statuses: Counter[int] = Counter()

    def deliver(body: bytes, scenario: str) -> None:
        event = _intake_event(body, company, signature_header)
        with meter.invocation("webhook_intake", scenario) as invocation:
            response = webhook_intake.handler(event, context("webhook_intake"))
        invocation.result = response
        statuses[int(response["statusCode"])] += 1

    failures = 0

    def drain(scenario: Scenario, *, metered: bool = True) -> None:
        nonlocal failures
        sizes: Iterator[int]
        if scenario.fill is not None:
            sizes = iter(lambda: scenario.fill or 1, 0)
        else:
            assert scenario.esm is not None
            sizes = iter(scenario.esm.batch_sequence(rng, 100_000))
        empty = 0
        while empty < 2:
            wanted = min(next(sizes), facts.batch_size)
            received: list[dict[str, Any]] = []
            while len(received) < wanted:
                got = (
                    plain["sqs"]
                    .receive_message(
                        QueueUrl=resources.sync_queue_url,
                        MaxNumberOfMessages=min(10, wanted - len(received)),
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                        VisibilityTimeout=60,
                    )
                    .get("Messages", [])
                )
                if not got:
                    break
                received.extend(got)
            if not received:
                empty += 1
                continue
            empty = 0
            if metered:
                with meter.invocation("push", scenario.name) as invocation:
                    result = push.handler(sqs_event(received, queue_arn), context("push"))
                invocation.result = result
            else:
                result = push.handler(sqs_event(received, queue_arn), context("push"))
            failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
            failures += len(failed)
            done = [m for m in received if m["MessageId"] not in failed]
            if done:
                plain["sqs"].delete_message_batch(
                    QueueUrl=resources.sync_queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            for message in received:
                if message["MessageId"] in failed:
                    plain["sqs"].change_message_visibility(
                        QueueUrl=resources.sync_queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=0,
                    )

    # A scheduled run's own cost: export and reconcile of a day with nothing in it, run before
    # any invoice exists (reconcile also reads what was written since its day began); each
    # once unmetered first, so the process's first-invocation wiring is not in the figure.
    scheduled = (("nightly_export", nightly_export.handler), ("reconcile", reconcile.handler))
    for name, handler in scheduled:
        for back, metered in ((11, False), (10, True)):
            quiet = {"date": (datetime.now(UTC).date() - timedelta(days=back)).isoformat()}
            if not metered:
                handler(quiet, context(name))
                continue
            with meter.invocation(name, "empty") as invocation:
                invocation.result = handler(quiet, context(name))
    # Intake and push warmed up the same way, on one extra invoice that is not counted.
    warm = phases(stories, args.invoices, lean=args.events == "recommended", credit_note=False)
    for body in warm[0]:
        webhook_intake.handler(_intake_event(body, company, signature_header), context("webhook_intake"))
    drain(Scenario("warm-up", "", [], None, fill=facts.batch_size), metered=False)

    scenarios = make_scenarios(args, facts)
    # Invoices go through in chunks (each chunk finalized, drained, paid, drained, credited,
    # drained): the queue stays short, as it does when push keeps up (moto's SQS slows with its
    # length), and every invoice is in the ledger before its payment arrives.
    for scenario in scenarios:
        for start in range(0, len(scenario.invoices), args.chunk):
            chunk = scenario.invoices[start : start + args.chunk]
            for step in range(3):
                for n in chunk:
                    for body in plan[n][step]:
                        deliver(body, scenario.name)
                drain(scenario)
            done = start + len(chunk)
            print(f"  {scenario.name}: {done}/{len(scenario.invoices)} invoices", file=sys.stderr)

    today = datetime.now(UTC).date()
    for name, handler in scheduled:
        with meter.invocation(name, "day") as invocation:
            invocation.result = handler({"date": today.isoformat()}, context(name))

    # The Xero payments poll (XeroPollSchedule), after the day's runs so export and reconcile
    # never see its connection: a scheduled invocation with no Xero connection to poll (the
    # deployment's part), then with one idle Xero connection with payments back on, polled once
    # unmetered first (its first poll only saves the cursor) and then as every later run polls it.
    for metered in (False, True):
        if not metered:
            payments_back.handler(dict(POLL_EVENT), context(POLL_HANDLER))
            continue
        with meter.invocation(POLL_HANDLER, "poll-none") as invocation:
            invocation.result = payments_back.handler(dict(POLL_EVENT), context(POLL_HANDLER))
    xero_sandbox, _ = xero_poll
    poll_ledger = dataclasses.replace(LEDGERS["xero"], tenant_id=POLL_TENANT)
    seed_demo(
        resources,
        poll_ledger,
        xero_sandbox,
        dataclasses.replace(company, connection_id=POLL_CONNECTION, payments_back=True),
        lambda service: session.client(service, region_name=REGION),
    )
    payments_back.handler(dict(POLL_EVENT), context(POLL_HANDLER))
    with meter.invocation(POLL_HANDLER, "poll-xero") as invocation:
        invocation.result = payments_back.handler(dict(POLL_EVENT), context(POLL_HANDLER))
    polled = (invocation.result or {}) if isinstance(invocation.result, dict) else {}
    if POLL_CONNECTION not in json.dumps(polled):
        print(f"warning: the Xero poll did not report {POLL_CONNECTION}: {polled}", file=sys.stderr)
    meter.uninstall()
    if args.dump:
        calls = Counter(
            f"{method} {re.sub(r'[0-9]+', 'N', path.split('?')[0])}"
            + (f" {m.group(1)}" if (m := re.search(r"from\+(\w+)", path)) else "")
            + f" {status}"
            for method, path, status in sandbox.request_log
        )
        args.dump.with_suffix(".ledger.json").write_text(json.dumps(calls.most_common(), indent=1))

    seen = {name.split("/", 1)[-1] for name, _ in meter.emf_metrics}
    declared = (declared_metrics(handler, outcomes) for handler, outcomes in UNDRIVEN_HANDLERS.items())
    unseen = set().union(*declared) - seen
    sizes = meter.sent_message_bytes
    message_bytes = sum(sizes) / len(sizes) if sizes else 0.0
    dynamodb_bytes, ttl_bytes = _table_bytes(plain["dynamodb"], resources.sync_table)
    mapping_bytes, _ = _table_bytes(plain["dynamodb"], resources.mappings_table)
    return RunFacts(
        meter=meter,
        invoices=args.invoices,
        scenarios=scenarios,
        webhooks_per_invoice=Counter(webhooks),
        intake_statuses=statuses,
        push_failures=failures,
        message_bytes=message_bytes,
        secrets_per_connection=len(secrets),
        emf_metrics=set(meter.emf_metrics),
        dynamodb_bytes=dynamodb_bytes + mapping_bytes,
        dynamodb_ttl_bytes=ttl_bytes,
        init_seconds=init_seconds,
        wall_seconds=time.perf_counter() - began,
        unseen_metrics=unseen,
    )


def _intake_event(body: bytes, company: Any, sign: Callable[..., str]) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event of one Stripe delivery, signed now."""
    from invoice_sync_ops.local.lambda_runtime import http_api_event  # noqa: PLC0415

    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": sign(body, [company.webhook_secret], int(time.time())),
    }
    connection = company.connection_id
    return http_api_event(
        "POST",
        f"/webhooks/stripe/{connection}",
        ROUTE_KEY,
        {"source": "stripe", "connection": connection},
        headers,
        body,
    )


# Payments back's functions carry traffic the bench does not drive (ledger webhooks, ledger
# payments); their metric names come from their handlers' source. A name built from an outcome
# (``f"PaymentsBack{result.outcome.value.title()}"``) takes every value of the enum named here.
UNDRIVEN_HANDLERS: dict[str, str] = {
    "ledger_events": "invoice_sync.sync.ledger_intake:LedgerIntakeOutcome",
    "payments_back": "invoice_sync.sync.payments_back:Outcome",
}
_METRIC_CALL = re.compile(r'add_metric\(\s*name=(f?)"([^"]+)"')


def declared_metrics(handler: str, outcomes: str) -> set[str]:
    """The EMF metric names ``invoice_sync.handlers.<handler>`` can emit: each ``add_metric`` name,
    an f-string's ``{...outcome.value.title()}`` expanded over ``outcomes`` ("module:Enum"), and
    ``Parked`` where it calls ``emit_parked`` (one metric per reason: counted once)."""
    import importlib  # noqa: PLC0415

    module = importlib.import_module(f"invoice_sync.handlers.{handler}")
    source = inspect.getsource(module)
    enum_module, _, enum_name = outcomes.partition(":")
    values = [member.value for member in getattr(importlib.import_module(enum_module), enum_name)]
    names: set[str] = set()
    for is_format, name in _METRIC_CALL.findall(source):
        if not is_format:
            names.add(name)
            continue
        prefix, brace, rest = name.partition("{")
        if not brace or not rest.endswith("outcome.value.title()}"):
            raise SystemExit(f"handlers/{handler}.py: metric name {name!r} the bench cannot expand")
        names.update(f"{prefix}{value.title()}" for value in values)
    if "emit_parked(" in source:
        names.add("Parked")
    return names


def _table_bytes(dynamodb: Any, table: str) -> tuple[int, int]:
    """Bytes the table stores (items, their GSI copies, DynamoDB's 100 bytes each), and of that
    the items that expire by TTL."""
    described = dynamodb.describe_table(TableName=table)["Table"]
    table_keys = {k["AttributeName"] for k in described["KeySchema"]}
    indexes = described.get("GlobalSecondaryIndexes", [])
    total = expiring = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            stored = item_size(item) + DYNAMODB_ITEM_OVERHEAD
            for index in indexes:
                keys = {k["AttributeName"] for k in index["KeySchema"]}
                if not keys <= item.keys():
                    continue  # sparse: not in this index
                projection = index["Projection"]
                if projection["ProjectionType"] == "ALL":
                    copy_of = item
                else:
                    wanted = table_keys | keys | set(projection.get("NonKeyAttributes", []))
                    copy_of = {name: value for name, value in item.items() if name in wanted}
                stored += item_size(copy_of) + DYNAMODB_ITEM_OVERHEAD
            total += stored
            if "expires_at" in item:
                expiring += stored
    return total, expiring


def make_scenarios(args: argparse.Namespace, facts: TemplateFacts) -> list[Scenario]:
    lean = args.events == "recommended"
    share = args.credit_note_share
    # Bursts: one Stripe action's webhooks arrive together.
    sizes = [1, 1, 1] if lean else [2, 3, 2]
    weights = [1.0, 1.0, share]
    bursts_per_invoice = 2 + share
    trickle_rate = args.invoices_per_month / MONTH_SECONDS * bursts_per_invoice
    half = args.invoices // 2
    cohorts = [list(range(half)), list(range(half, args.invoices))]
    mean_burst = sum(s * w for s, w in zip(sizes, weights, strict=True)) / sum(weights)
    trickle = cost_esm.simulate(
        bursts_per_second=trickle_rate,
        burst_sizes=sizes,
        burst_weights=weights,
        batch_size=facts.batch_size,
        window_seconds=facts.batching_window_s,
        max_concurrency=facts.max_concurrency,
        invoke_seconds=args.push_seconds,
        seconds=args.esm_hours * 3600,
        seed=args.seed,
    )
    backfill = cost_esm.simulate(
        bursts_per_second=args.backfill_rate / mean_burst,
        burst_sizes=sizes,
        burst_weights=weights,
        batch_size=facts.batch_size,
        window_seconds=facts.batching_window_s,
        max_concurrency=facts.max_concurrency,
        invoke_seconds=args.push_seconds,
        seconds=600.0,
        seed=args.seed,
    )
    rate = args.invoices_per_month / MONTH_SECONDS
    return [
        Scenario(
            "trickle",
            f"trickle ({args.invoices_per_month:,} invoices/month, {rate:.2f}/s)"
            if args.batch_fill is None
            else f"batches of {args.batch_fill} (--batch-fill)",
            cohorts[0],
            trickle,
            args.batch_fill,
        ),
        Scenario(
            "backfill", f"backfill ({args.backfill_rate:g} messages/s, full batches)", cohorts[1], backfill
        ),
    ]


# ---------------------------------------------------------------------------------- pricing


@dataclass
class Line:
    service: str
    item: str
    stage: str
    usd: float  # per invoice
    per_invoice: float = 0.0  # requests (or units) per invoice, for the requests table


@dataclass
class Priced:
    lines: list[Line]
    lambda_rows: list[tuple[str, float, float, int, float, int, float]]


def latency_ms(service: str, operation: str) -> float:
    table = AWS_LATENCY_MS.get(service, {})
    return table.get(operation, table.get("*", 10.0))


def billed_ms(invocation: Invocation, memory_mb: int, args: argparse.Namespace) -> int:
    cpu = invocation.cpu * max(1.0, FULL_VCPU_MB / memory_mb) * args.cpu_factor * 1000
    io = sum(latency_ms(s, o) * n for (s, o), n in invocation.aws_calls.items())
    io += invocation.http_requests["ledger"] * args.ledger_ms
    io += invocation.http_requests["stripe"] * args.stripe_ms
    io += invocation.http_requests["other"] * args.ledger_ms
    return max(1, math.ceil(float(cpu + io)))


def platform_log_bytes(billed: int, fn: FunctionFacts) -> list[int]:
    """Bytes of the log events Lambda itself writes per invocation, as the function's
    LoggingConfig has it: without one (text format, system logs at INFO) START, END and REPORT;
    with ``LogFormat: JSON`` the same three as JSON records; ``SystemLogLevel`` WARN or above
    writes none of them."""
    config = fn.logging_config
    if str(config.get("SystemLogLevel", "INFO")).upper() in ("WARN", "ERROR", "FATAL"):
        return []
    request_id = "3f5c1a52-8f4e-4b69-9a0e-2b7b1f2a9c11"
    memory = fn.memory_mb
    if str(config.get("LogFormat", "Text")).upper() == "JSON":
        when = '"time":"2026-12-01T12:00:00.000Z"'
        start = (
            f'{{{when},"type":"platform.start","record":{{"requestId":"{request_id}","version":"$LATEST"}}}}'
        )
        report = (
            f'{{{when},"type":"platform.report","record":{{"requestId":"{request_id}","metrics":'
            f'{{"durationMs":{billed - 0.42:.3f},"billedDurationMs":{billed},"memorySizeMB":{memory},'
            f'"maxMemoryUsedMB":{min(memory, 118)}}},"status":"success"}}}}'
        )
        end = (
            f'{{{when},"type":"platform.runtimeDone","record":{{"requestId":"{request_id}",'
            '"status":"success"}}'
        )
        return [len(start), len(end), len(report)]
    start = f"START RequestId: {request_id} Version: $LATEST\n"
    end = f"END RequestId: {request_id}\n"
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {billed - 0.42:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory} MB\tMax Memory Used: {min(memory, 118)} MB\t\n"
    )
    return [len(start), len(end), len(report)]


def access_log_bytes(facts: TemplateFacts, response_bytes: int) -> int:
    """One API Gateway access-log line in the template's format, with typical values."""
    values = {
        "requestId": "JKJaXmPLvHcESHA=",
        "identity.sourceIp": "54.187.216.72",
        "requestTime": "01/Dec/2026:12:00:00 +0000",
        "routeKey": ROUTE_KEY,
        "path": "/webhooks/stripe/acme",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": str(response_bytes),
        "responseLatency": "42",
        "integrationStatus": "200",
        "integrationErrorMessage": "-",
    }
    line = re.sub(r"\$context\.([\w.]+)", lambda m: values.get(m.group(1), "-"), facts.access_log_format)
    return len(line.encode())


def price(  # noqa: PLR0915 - every service in one place
    run_facts: RunFacts, facts: TemplateFacts, prices: cost_prices.PriceTable, args: argparse.Namespace
) -> dict[str, Priced]:
    meter = run_facts.meter
    n_total = run_facts.invoices
    by_scenario: dict[str, Priced] = {}
    # Per invocation kind: (function, scenario) -> invocations
    groups: dict[tuple[str, str], list[Invocation]] = defaultdict(list)
    for invocation in meter.invocations:
        groups[(invocation.function, invocation.scenario)].append(invocation)

    def lambda_lines(
        function: str, invocations: list[Invocation], invoices: float, scale: float = 1.0
    ) -> tuple[list[Line], tuple[str, float, float, int, float, int, float]]:
        """Lambda, logs and data transfer of these invocations, per invoice (times ``scale``)."""
        fn = facts.functions[function]
        lines: list[Line] = []
        count = len(invocations) * scale
        ms = [billed_ms(i, fn.memory_mb, args) for i in invocations]
        gb_s = sum(ms) / 1000 * fn.memory_mb / 1024 * scale
        extra_tmp = max(0, fn.ephemeral_mb - 512) / 1024 * sum(ms) / 1000 * scale
        cold = args.cold_start_share * count * run_facts.init_seconds.get(function, 0.0) * fn.memory_mb / 1024
        lines.append(
            Line(
                "Lambda",
                f"{function} requests",
                function,
                count * prices["lambda.request"] / invoices,
                count / invoices,
            )
        )
        lines.append(
            Line(
                "Lambda", f"{function} duration", function, gb_s * prices["lambda.gb_second_arm64"] / invoices
            )
        )
        if cold:
            lines.append(
                Line(
                    "Lambda",
                    f"{function} cold starts (INIT)",
                    function,
                    cold * prices["lambda.gb_second_arm64"] / invoices,
                )
            )
        if extra_tmp:
            lines.append(
                Line(
                    "Lambda",
                    f"{function} /tmp above 512 MB",
                    function,
                    extra_tmp * prices["lambda.ephemeral_storage_gb_second"] / invoices,
                )
            )
        log = 0
        for invocation, billed in zip(invocations, ms, strict=True):
            events = invocation.log_lines + platform_log_bytes(billed, fn)
            log += sum(events) + LOG_EVENT_OVERHEAD * len(events)
        log_gb = log * scale / 2**30
        lines.append(
            Line(
                "CloudWatch Logs",
                f"{function} log ingestion",
                function,
                log_gb * prices["cloudwatch.logs_ingestion_gb"] / invoices,
            )
        )
        lines.append(
            Line(
                "CloudWatch Logs",
                f"{function} log storage ({facts.log_retention_days} days)",
                function,
                log_gb
                * prices["cloudwatch.logs_storage_gb_month"]
                * facts.log_retention_days
                / 30
                / invoices,
            )
        )
        sent = sum(i.http_bytes_sent for i in invocations) * scale / 2**30
        if sent:
            lines.append(
                Line(
                    "Data transfer out",
                    f"{function} to ledger/Stripe",
                    function,
                    sent * prices["data_transfer.internet_out_gb"] / invoices,
                )
            )
        # Right-sizing: the same invocations priced at other memory sizes, among those that leave
        # room above the handler's resident memory after import (25 %, for the invocation's work).
        floor = 1.25 * run_facts.init_rss.get(function, 0.0)
        fitting = [mb for mb in MEMORY_CHOICES if mb >= floor] or [fn.memory_mb]
        best = min(fitting, key=lambda mb: sum(billed_ms(i, mb, args) for i in invocations) * mb)
        best_usd = sum(billed_ms(i, best, args) for i in invocations) / 1000 * best / 1024 * scale
        best_usd *= prices["lambda.gb_second_arm64"] / invoices
        row = (
            function,
            count / invoices,
            sum(ms) / len(ms) if ms else 0.0,
            fn.memory_mb,
            gb_s * prices["lambda.gb_second_arm64"] / invoices,
            best,
            best_usd,
        )
        return lines, row

    def merged(function: str, scenarios: list[str]) -> dict[tuple[str, str], OperationTally]:
        tallies: dict[tuple[str, str], OperationTally] = defaultdict(OperationTally)
        for scenario in scenarios:
            for key, tally in meter.tallies.get((function, scenario), {}).items():
                into = tallies[key]
                into.calls += tally.calls
                into.requests += tally.requests
                into.read_units += tally.read_units
                into.write_units += tally.write_units
                into.bytes_written += tally.bytes_written
        return tallies

    def aws_lines(
        function: str, scenarios: list[str], invoices: float, scale: float = 1.0, minus: str | None = None
    ) -> list[Line]:
        lines: list[Line] = []
        tallies = merged(function, scenarios)
        base = merged(function, [minus]) if minus else {}
        for (service, operation), tally in sorted(tallies.items()):
            other = base.get((service, operation))
            requests = tally.requests - (other.requests if other else 0)
            rru = tally.read_units - (other.read_units if other else 0)
            wru = tally.write_units - (other.write_units if other else 0)
            calls = tally.calls - (other.calls if other else 0)
            per = calls * scale / invoices
            label = f"{operation}"
            if service == "dynamodb":
                usd = (
                    rru * prices["dynamodb.read_request_unit"] + wru * prices["dynamodb.write_request_unit"]
                ) * scale
                label = (
                    f"{operation} ({(rru + wru) * scale / invoices:.2f} RU/invoice)" if calls else operation
                )
                lines.append(Line("DynamoDB", label, function, usd / invoices, per))
            elif service == "sqs":
                lines.append(
                    Line("SQS", operation, function, requests * prices["sqs.request"] * scale / invoices, per)
                )
            elif service == "s3":
                unit = (
                    0.0
                    if operation in _S3_FREE
                    else prices["s3.put_request"]
                    if operation in _S3_PUT
                    else prices["s3.get_request"]
                )
                lines.append(Line("S3", operation, function, requests * unit * scale / invoices, per))
            elif service == "secretsmanager":
                lines.append(
                    Line(
                        "Secrets Manager",
                        operation,
                        function,
                        requests * prices["secretsmanager.api_call"] * scale / invoices,
                        per,
                    )
                )
            elif service == "sns":
                email = prices["sns.email_delivery"] * calls if facts.email_subscription else 0.0
                kms = 2 * calls * prices["kms.request"]  # SNS's GenerateDataKey, the delivery's Decrypt
                lines.append(
                    Line(
                        "SNS",
                        operation,
                        function,
                        (requests * prices["sns.publish"] + email) * scale / invoices,
                        per,
                    )
                )
                lines.append(
                    Line("KMS", f"{operation} (SSE-KMS topic)", function, kms * scale / invoices, 2 * per)
                )
            elif service == "kms":
                lines.append(
                    Line("KMS", operation, function, requests * prices["kms.request"] * scale / invoices, per)
                )
            else:
                lines.append(Line(service, operation, function, 0.0, per))
        return lines

    intake_all = [i for i in meter.invocations if i.function == "webhook_intake"]
    intake_lines, intake_row = lambda_lines("webhook_intake", intake_all, n_total)
    webhooks = len(intake_all)
    intake_lines.append(
        Line(
            "API Gateway",
            "HTTP API requests",
            "webhook_intake",
            webhooks * prices["apigateway.http_request"] / n_total,
            webhooks / n_total,
        )
    )
    access = webhooks * (access_log_bytes(facts, 60) + LOG_EVENT_OVERHEAD) / 2**30
    intake_lines.append(
        Line(
            "CloudWatch Logs",
            "API access log ingestion",
            "webhook_intake",
            access * prices["cloudwatch.logs_ingestion_gb"] / n_total,
        )
    )
    intake_lines.append(
        Line(
            "Data transfer out",
            "API responses to Stripe",
            "webhook_intake",
            webhooks * 350 / 2**30 * prices["data_transfer.internet_out_gb"] / n_total,
        )
    )
    intake_lines += aws_lines("webhook_intake", [s.name for s in run_facts.scenarios], n_total)

    # Export and reconcile: the day's run less the empty day's run, per invoice.
    shared: list[Line] = []
    fixed_runs: dict[str, float] = {}
    for function in ("nightly_export", "reconcile"):
        day = groups[(function, "day")]
        empty = groups[(function, "empty")]
        day_lines, row_day = lambda_lines(function, day, n_total)
        empty_lines, _ = lambda_lines(function, empty, n_total)
        empty_by = {line.item: line.usd for line in empty_lines}
        for line in day_lines:
            if "requests" in line.item:
                continue  # one invocation a day: fixed, below
            line.usd = max(0.0, line.usd - empty_by.get(line.item, 0.0))
            shared.append(line)
        for line in aws_lines(function, ["day"], n_total, minus="empty"):
            if line.usd > 0 and line.per_invoice > 0:
                shared.append(line)
        fixed_runs[function] = sum(line.usd for line in empty_lines) * n_total + sum(
            line.usd for line in aws_lines(function, ["empty"], 1)
        )
    _ = row_day
    # The Xero poll: one scheduled invocation with no Xero connection, and what one idle Xero
    # connection adds to it (USD per invocation; its INIT is priced in fixed_monthly).
    polls: dict[str, float] = {}
    for scenario in ("poll-none", "poll-xero"):
        invocations = groups[(POLL_HANDLER, scenario)]
        if invocations:
            poll_lines, _ = lambda_lines(POLL_HANDLER, invocations, len(invocations))
            poll_lines += aws_lines(POLL_HANDLER, [scenario], len(invocations))
            polls[scenario] = sum(line.usd for line in poll_lines)
    if "poll-none" in polls:
        fixed_runs["xero_poll"] = polls["poll-none"]
        fixed_runs["xero_poll_connection"] = max(0.0, polls.get("poll-xero", 0.0) - polls["poll-none"])

    for scenario in run_facts.scenarios:
        invoices = len(scenario.invoices)
        push_invocations = groups[("push", scenario.name)]
        push_lines, push_row = lambda_lines("push", push_invocations, invoices)
        push_lines += aws_lines("push", [scenario.name], invoices)
        esm_lines = esm_cost(scenario, facts, run_facts, prices, invoices)
        lines = [*intake_lines, *esm_lines, *push_lines, *shared]
        by_scenario[scenario.name] = Priced(lines=lines, lambda_rows=[intake_row, push_row])
    by_scenario["_fixed_runs"] = Priced(
        lines=[Line("runs", k, k, v) for k, v in fixed_runs.items()], lambda_rows=[]
    )
    return by_scenario


_S3_PUT = frozenset(
    {
        "PutObject",
        "CopyObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "ListMultipartUploads",
        "ListParts",
    }
)
_S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})


def esm_cost(
    scenario: Scenario,
    facts: TemplateFacts,
    run_facts: RunFacts,
    prices: cost_prices.PriceTable,
    invoices: int,
) -> list[Line]:
    """The event source mapping's receives and deletes, per invoice, from the model."""
    messages = sum(run_facts.webhooks_per_invoice.values()) / run_facts.invoices * invoices
    if scenario.fill is not None or scenario.esm is None:
        fill = scenario.fill or 1
        batches = messages / fill
        receives = batches * max(1, math.ceil(fill * run_facts.message_bytes / 65536))
        window = batches if (fill < facts.batch_size and facts.batching_window_s > 0) else 0.0
        deletes = batches
    else:
        esm = scenario.esm
        per_message = messages / esm.messages
        receives = esm.receive_chunks(run_facts.message_bytes) * per_message
        window = esm.window_receives * per_message
        deletes = esm.deletes * per_message
    price_each = prices["sqs.request"]
    return [
        Line(
            "SQS",
            "ReceiveMessage (event source, with messages)",
            "event source",
            receives * price_each / invoices,
            receives / invoices,
        ),
        Line(
            "SQS",
            "ReceiveMessage (event source, empty at window end)",
            "event source",
            window * price_each / invoices,
            window / invoices,
        ),
        Line(
            "SQS",
            "DeleteMessageBatch (event source)",
            "event source",
            deletes * price_each / invoices,
            deletes / invoices,
        ),
    ]


# ---------------------------------------------------------------------------------- printing


def _table(headers: list[str], rows: list[list[str]], align: str) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align, strict=True)
        )

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))


def report(  # noqa: PLR0915 - the whole report
    run_facts: RunFacts,
    facts: TemplateFacts,
    prices: cost_prices.PriceTable,
    priced: dict[str, Priced],
    args: argparse.Namespace,
) -> float:
    scenarios = run_facts.scenarios
    names = [s.name for s in scenarios]
    print()
    cohorts = ", ".join(f"{s.name} {len(s.invoices):,}" for s in scenarios)
    print(
        f"invoices: {run_facts.invoices:,} ({cohorts}), credit-note share {args.credit_note_share:g}, "
        f"ledger {args.ledger}, events {args.events}, run {run_facts.wall_seconds:.0f} s"
    )
    per_invoice = sum(run_facts.webhooks_per_invoice.values()) / run_facts.invoices
    print(
        f"webhooks per invoice: {per_invoice:.2f} ("
        + ", ".join(
            f"{k} {v / run_facts.invoices:.2f}" for k, v in sorted(run_facts.webhooks_per_invoice.items())
        )
        + f"); intake answers {dict(run_facts.intake_statuses)}; push failures {run_facts.push_failures}"
    )
    print(
        f"sync message: {run_facts.message_bytes:,.0f} bytes on average; "
        f"prices {prices.region}, taken {prices.taken}"
    )
    memory = ", ".join(f"{k} {v.memory_mb} MB" for k, v in facts.functions.items())
    configs = {json.dumps(f.logging_config, sort_keys=True) for f in facts.functions.values()}
    logging = (
        "none (text logs, START/END/REPORT kept)"
        if configs == {"{}"}
        else " / ".join(
            ", ".join(f"{k} {v}" for k, v in json.loads(c).items()) or "none" for c in sorted(configs)
        )
    )
    print(
        f"template: {memory}; push's SQS event source BatchSize {facts.batch_size}, window "
        f"{facts.batching_window_s:g} s, MaximumConcurrency {facts.max_concurrency}; LoggingConfig {logging}"
    )
    for s in scenarios:
        if s.fill is not None:
            print(f"event source, {s.title}: {s.fill} messages per batch (given)")
        elif s.esm is not None:
            e = s.esm
            receives = (sum(e.receives.values()) + e.window_receives) / max(1, e.messages)
            print(
                f"event source, {s.title}: mean batch {e.mean_batch:.2f} messages, {receives:.2f} receives "
                f"and {e.deletes / max(1, e.messages):.2f} deletes per message, "
                f"idle polls {e.idle_receives / e.seconds * 3600:.0f}/h"
            )
    if run_facts.init_seconds:
        print(
            "handler import (cold start INIT, fresh interpreter): "
            + ", ".join(
                f"{k} {v:.2f} s, {run_facts.init_rss.get(k, 0):.0f} MiB resident"
                for k, v in run_facts.init_seconds.items()
            )
        )

    def by_service(name: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for line in priced[name].lines:
            totals[line.service] += line.usd * MILLION
        return totals

    totals = {name: by_service(name) for name in names}
    services = sorted(totals[names[0]], key=lambda s: -totals[names[0]][s])
    grand = {name: sum(totals[name].values()) for name in names}
    print()
    print("Cost per 1,000,000 invoices, by service (USD, list prices, per-invoice costs only)")
    rows = [
        [
            svc,
            *(f"{totals[n].get(svc, 0.0):.3f}" for n in names),
            f"{100 * totals[names[0]][svc] / grand[names[0]]:.0f} %",
        ]
        for svc in services
    ]
    rows.append(["total", *(f"{grand[n]:.3f}" for n in names), "100 %"])
    _table(["service", *names, f"share ({names[0]})"], rows, "l" + "r" * len(names) + "r")

    print()
    print(f"Top items per 1,000,000 invoices ({names[0]}) and AWS requests per invoice")
    lines = sorted(priced[names[0]].lines, key=lambda line: -line.usd)
    other_lines = (
        {(line.service, line.item, line.stage): line for line in priced[names[1]].lines}
        if len(names) > 1
        else {}
    )
    rows = []
    for line in lines[: args.top]:
        twin = other_lines.get((line.service, line.item, line.stage))
        rows.append(
            [
                line.stage,
                f"{line.service}: {line.item}",
                f"{line.per_invoice:.2f}" if line.per_invoice else "",
                f"{line.usd * MILLION:.3f}",
                f"{twin.usd * MILLION:.3f}" if twin else "",
            ]
        )
    _table(["stage", "item", "req/invoice", f"$/1M {names[0]}", f"$/1M {names[1]}"], rows, "llrrr")

    print()
    print("AWS requests per invoice by service and operation (API calls; SQS/SNS billed in 64 KB chunks)")
    requests: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for name in names:
        for line in priced[name].lines:
            if line.per_invoice and line.service not in ("Lambda",):
                key = (
                    line.service,
                    f"{line.stage}: {line.item.split(' (')[0] if line.service == 'DynamoDB' else line.item}",
                )
                requests[key][name] = requests[key].get(name, 0.0) + line.per_invoice
    rows = [
        [svc, item, *(f"{requests[(svc, item)].get(n, 0.0):.3f}" for n in names)]
        for svc, item in sorted(requests)
    ]
    for name_index, name in enumerate(names):
        del name_index, name
    sums = {n: sum(v.get(n, 0.0) for (svc, _), v in requests.items() if svc not in ("KMS",)) for n in names}
    rows.append(["all", "AWS requests per invoice", *(f"{sums[n]:.2f}" for n in names)])
    _table(["service", "operation", *names], rows, "ll" + "r" * len(names))

    print()
    print("DynamoDB writes per invoice by item: items written / write units (of which index copies)")
    sizes = {s.name: max(1, len(s.invoices)) for s in scenarios}
    tallies: dict[tuple[str, str], dict[str, WriteTally]] = defaultdict(dict)
    for (function, scenario, item), tally in run_facts.meter.writes_by_item.items():
        if scenario in sizes:  # not the fixed-cost runs (an empty day's export, the Xero poll)
            tallies[(function, item)][scenario] = tally

    def per_invoice(key: tuple[str, str], name: str) -> str:
        tally = tallies[key].get(name, WriteTally())
        n = sizes[name]
        return f"{tally.items / n:.2f} / {tally.units / n:.2f} ({tally.index_units / n:.2f})"

    rows = [
        [function, item, *(per_invoice((function, item), n) for n in names)]
        for function, item in sorted(tallies, key=lambda k: -tallies[k].get(names[0], WriteTally()).units)
    ]
    _table(["function", "item", *names], rows, "ll" + "r" * len(names))

    print()
    print("Lambda per function (per invoice; billed ms = CPU x 1769/MemorySize + modeled latency)")
    rows = []
    for name in names:
        for fn, inv, ms, mem, usd, best, best_usd in priced[name].lambda_rows:
            if name != names[0] and fn == "webhook_intake":
                continue
            rows.append(
                [
                    f"{fn} ({name})" if fn == "push" else fn,
                    f"{inv:.3f}",
                    f"{ms:.1f}",
                    f"{mem}",
                    f"{usd * MILLION:.3f}",
                    f"{best}",
                    f"{best_usd * MILLION:.3f}",
                ]
            )
    _table(
        [
            "function",
            "invocations",
            "mean billed ms",
            "MB",
            "GB-s $/1M",
            "cheapest MB that fits",
            "$/1M there",
        ],
        rows,
        "lrrrrrr",
    )

    print()
    poll_fn = facts.functions[POLL_HANDLER]
    for scenario, title in (("poll-none", "no Xero connection"), ("poll-xero", "one idle Xero connection")):
        for i in (
            i for i in run_facts.meter.invocations if (i.function, i.scenario) == (POLL_HANDLER, scenario)
        ):
            calls = ", ".join(f"{s}.{o} {n}" for (s, o), n in sorted(i.aws_calls.items())) or "none"
            billed = billed_ms(i, poll_fn.memory_mb, args)
            print(
                f"Xero poll, {title}: billed {billed} ms at {poll_fn.memory_mb} MB, "
                f"AWS calls {calls}; ledger requests {i.http_requests['ledger']}; "
                f"log {sum(i.log_lines):,} bytes in {len(i.log_lines)} lines"
            )
    fixed = fixed_monthly(run_facts, facts, prices, priced, args)
    print()
    print("Fixed monthly costs (do not grow with invoices; per deployment, one connection)")
    _table(["item", "USD/month", "basis"], [[k, f"{v:.3f}", b] for k, v, b in fixed], "lrl")
    storage = storage_monthly(run_facts, facts, prices)
    print()
    print("Storage added per month of retention, per 1,000,000 invoices (accumulates while kept)")
    _table(
        ["item", "GB", "USD/month", "basis"],
        [[k, f"{g:.2f}", f"{v:.3f}", b] for k, g, v, b in storage],
        "lrrl",
    )
    unsourced = prices.unsourced()
    if unsourced:
        print()
        print(
            "prices not found in the research corpus (from memory, see infra/aws_prices.toml): "
            + ", ".join(unsourced)
        )
    print()
    for name in names:
        print(f"cost_per_million_invoices_{name}={grand[name]:.2f} USD")
    print(f"cost_per_million_invoices={grand[names[0]]:.2f} USD")
    return grand[names[0]]


def fixed_monthly(
    run_facts: RunFacts,
    facts: TemplateFacts,
    prices: cost_prices.PriceTable,
    priced: dict[str, Priced],
    args: argparse.Namespace,
) -> list[tuple[str, float, str]]:
    pollers = cost_esm.IDLE_POLLERS
    idle_polls = pollers * MONTH_SECONDS / cost_esm.LONG_POLL_SECONDS
    runs = {line.item: line.usd for line in priced["_fixed_runs"].lines}
    monthly = {schedule.target: schedule.runs_per_month for schedule in facts.schedule_list}
    warm_envs = 4  # intake and push, two warm environments each (PushMaxConcurrency 2)
    secret_reads = warm_envs * MONTH_SECONDS / 300
    rows = [
        (
            f"SQS: {source.function}'s event source polling an idle {source.queue}",
            idle_polls * prices["sqs.request"],
            f"{pollers} pollers x one 20 s long poll: {idle_polls:,.0f} receives (BatchSize "
            f"{source.batch_size}, window {source.window_s:g} s, MaximumConcurrency {source.max_concurrency}"
            " do not change an idle queue's polls)",
        )
        for source in facts.event_sources
    ]
    rows += [
        (
            "nightly export: the run itself",
            monthly.get("nightly_export", 30.0) * runs.get("nightly_export", 0.0),
            f"{monthly.get('nightly_export', 30.0):g} runs of an empty day (requests, GB-s, logs, S3, "
            "DynamoDB, SNS report)",
        ),
        (
            "reconcile: the run itself",
            monthly.get("reconcile", 30.0) * runs.get("reconcile", 0.0),
            f"{monthly.get('reconcile', 30.0):g} runs of an empty day (requests, GB-s, logs, S3, "
            "Stripe/ledger listing)",
        ),
    ]
    polls = monthly.get(POLL_HANDLER, 0.0)
    if polls and "xero_poll" in runs:
        poll_fn = facts.functions[POLL_HANDLER]
        init_s = run_facts.init_seconds.get(POLL_HANDLER, 0.0)
        init = init_s * poll_fn.memory_mb / 1024
        rows += [
            (
                "Xero poll: scheduled invocations",
                polls * (runs["xero_poll"] + init * prices["lambda.gb_second_arm64"]),
                f"{polls:,.0f} runs ({_schedule_of(facts, POLL_HANDLER)}) with no Xero connection, as "
                f"measured, each also billed its INIT ({init_s:.2f} s at "
                f"{poll_fn.memory_mb} MB: an environment idle that long is assumed gone)",
            ),
            (
                "Xero poll: per Xero connection with payments back",
                polls * runs.get("xero_poll_connection", 0.0),
                f"{polls:,.0f} polls of an idle connection (lease, cursor, one GET /Payments, "
                "log lines), measured as what one connection adds to a run",
            ),
        ]
    rows += [
        (
            "EventBridge Scheduler",
            sum(monthly.values()) * prices["scheduler.invocation"],
            ", ".join(f"{s.logical_id} {s.runs_per_month:,.0f}" for s in facts.schedule_list)
            + " invocations (inside the free 14M)",
        ),
        (
            "Secrets Manager: secrets",
            run_facts.secrets_per_connection * prices["secretsmanager.secret_month"],
            f"{run_facts.secrets_per_connection} secrets per connection",
        ),
        (
            "Secrets Manager: cached reads",
            secret_reads * prices["secretsmanager.api_call"],
            f"{warm_envs} warm environments x one read per 300 s cache",
        ),
        (
            "KMS: alerts key",
            facts.kms_keys * prices["kms.key_month"] * (2 if facts.kms_rotation else 1),
            f"{facts.kms_keys} key(s), rotation on (+$1 per rotated backing key, up to +$2)",
        ),
        (
            "KMS: aws/dynamodb requests",
            warm_envs * 12 * 730 * prices["kms.request"],
            "SSEEnabled tables: about one table-key request per 5 min per warm environment (assumed)",
        ),
        (
            "CloudWatch: custom metrics (EMF)",
            len(run_facts.emf_metrics) * prices["cloudwatch.custom_metric_month"],
            f"{len(run_facts.emf_metrics)} metric names x dimension sets seen in the run (the Xero "
            "poll's included)",
        ),
        (
            "CloudWatch: custom metrics of payments back, when on",
            len(run_facts.unseen_metrics) * prices["cloudwatch.custom_metric_month"],
            f"up to {len(run_facts.unseen_metrics)} more, each billed only in a month it is emitted: "
            + ", ".join(sorted(run_facts.unseen_metrics)),
        ),
        (
            "CloudWatch: alarms",
            facts.alarm_metrics * prices["cloudwatch.alarm_month"],
            f"{facts.alarms} alarms in template.yaml, {facts.alarm_metrics} alarm metrics (a metric-math "
            "alarm is billed for each metric it reads)",
        ),
        (
            "CloudWatch Logs: log groups",
            0.0,
            f"{facts.log_groups} log groups; a group costs nothing, its bytes are in the per-invoice "
            "figures and the runs above",
        ),
    ]
    # What if the tables were provisioned for this rate (twice the average, no bursts): the
    # trickle's measured read and write units per invoice at --invoices-per-month.
    trickle = run_facts.scenarios[0]
    units = {"read": 0.0, "write": 0.0}
    for (function, scenario), tallies in run_facts.meter.tallies.items():
        if function == "webhook_intake" or (function == "push" and scenario == trickle.name):
            invoices = run_facts.invoices if function == "webhook_intake" else len(trickle.invoices)
            for (service, _), tally in tallies.items():
                if service == "dynamodb":
                    units["read"] += tally.read_units / invoices
                    units["write"] += tally.write_units / invoices
    per_second = {k: v * args.invoices_per_month / MONTH_SECONDS for k, v in units.items()}
    provisioned = 730 * (
        math.ceil(2 * per_second["write"]) * prices["dynamodb.provisioned_wcu_hour"]
        + math.ceil(2 * per_second["read"]) * prices["dynamodb.provisioned_rcu_hour"]
    )
    rows.append(
        (
            "what if: DynamoDB provisioned for this rate",
            provisioned,
            f"instead of on-demand: {units['write']:.1f} WRU + {units['read']:.1f} RRU per invoice at "
            f"{args.invoices_per_month:,.0f}/month = {per_second['write']:.1f} WCU + "
            f"{per_second['read']:.1f} RCU average, provisioned at 2x (bursts, backfills: autoscaling)",
        )
    )
    return rows


def _schedule_of(facts: TemplateFacts, target: str) -> str:
    return ", ".join(f"{s.logical_id} {s.expression}" for s in facts.schedule_list if s.target == target)


def storage_monthly(
    run_facts: RunFacts, facts: TemplateFacts, prices: cost_prices.PriceTable
) -> list[tuple[str, float, float, str]]:
    scale = MILLION / run_facts.invoices
    by_prefix: Counter[str] = Counter()
    for (_, scenario, prefix), written in run_facts.meter.s3_bytes_by_prefix.items():
        if scenario == "empty":
            continue
        by_prefix[prefix] += written
    rows = []
    for prefix, written in sorted(by_prefix.items()):
        gb = written * scale / 2**30
        rows.append(
            (
                f"S3 {prefix}",
                gb,
                gb * prices["s3.standard_gb_month"],
                "S3 Standard (objects under 128 KB stay there)",
            )
        )
    table_gb = (run_facts.dynamodb_bytes - run_facts.dynamodb_ttl_bytes) * scale / 2**30
    ttl_gb = run_facts.dynamodb_ttl_bytes * scale / 2**30
    rows.append(
        ("DynamoDB items (+GSI copies)", table_gb, table_gb * prices["dynamodb.storage_gb_month"], "kept")
    )
    rows.append(
        (
            "DynamoDB point-in-time recovery",
            table_gb,
            table_gb * prices["dynamodb.pitr_gb_month"],
            "PITR on both tables",
        )
    )
    if ttl_gb:
        rows.append(
            (
                "DynamoDB TTL items (de-dup markers)",
                ttl_gb,
                ttl_gb * prices["dynamodb.storage_gb_month"],
                "expire after DEDUPE_TTL (7 days): a week's worth stays",
            )
        )
    del facts
    return rows


def dump(run_facts: RunFacts, facts: TemplateFacts, args: argparse.Namespace) -> None:
    """Every invocation's measured and modeled figures, for looking into one."""
    rows = [
        {
            "function": i.function,
            "scenario": i.scenario,
            "wall_ms": i.wall * 1000,
            "thread_ms": i.thread * 1000,
            "moto_thread_ms": i.moto_thread * 1000,
            "moto_ms": i.moto * 1000,
            "http_ms": i.http * 1000,
            "meter_ms": i.overhead * 1000,
            "cpu_ms": i.cpu * 1000,
            "billed_ms": billed_ms(i, facts.functions[i.function].memory_mb, args),
            "aws_calls": {f"{s}.{o}": n for (s, o), n in i.aws_calls.items()},
            "http_requests": dict(i.http_requests),
            "http_bytes_sent": i.http_bytes_sent,
            "log_bytes": sum(i.log_lines),
            "log_events": len(i.log_lines),
        }
        for i in run_facts.meter.invocations
    ]
    args.dump.write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--invoices", type=int, default=1000, help="invoices driven (half per arrival pattern)"
    )
    parser.add_argument("--credit-note-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ledger", choices=["quickbooks", "xero", "freshbooks"], default="quickbooks")
    parser.add_argument(
        "--events",
        choices=["recommended", "all"],
        default="recommended",
        help="recommended: the README's subscription (finalized, paid, credit_note.created for this story); "
        "all: also invoice.updated and invoice.payment_succeeded, as Stripe fires them",
    )
    parser.add_argument("--invoices-per-customer", type=int, default=5, help="invoices of one customer")
    parser.add_argument("--invoices-per-month", type=float, default=1_000_000, help="the trickle's rate")
    parser.add_argument("--batch-fill", type=int, default=None, help="messages per SQS batch for the trickle")
    parser.add_argument("--backfill-rate", type=float, default=100.0, help="messages a second, backfill")
    parser.add_argument(
        "--push-seconds", type=float, default=1.0, help="push invocation time in the ESM model"
    )
    parser.add_argument(
        "--esm-hours", type=float, default=3.0, help="hours of trickle the ESM model simulates"
    )
    parser.add_argument("--ledger-ms", type=float, default=300.0, help="modeled ledger API round trip")
    parser.add_argument("--stripe-ms", type=float, default=350.0, help="modeled Stripe API round trip")
    parser.add_argument(
        "--cpu-factor", type=float, default=1.0, help="Lambda vCPU speed relative to this machine's core"
    )
    parser.add_argument(
        "--cold-start-share", type=float, default=0.01, help="share of invocations that are cold"
    )
    parser.add_argument("--no-init", action="store_true", help="skip measuring the handlers' import time")
    parser.add_argument(
        "--push-window",
        "--window",
        dest="window",
        type=float,
        default=None,
        help="what if: push's MaximumBatchingWindowInSeconds instead of the template's (template.yaml "
        "is not changed)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="what if: BatchSize instead of the template's"
    )
    parser.add_argument("--chunk", type=int, default=50, help="invoices per finalize/pay/credit round")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--dump", type=Path, default=None, help="write every invocation's figures here (JSON)"
    )
    parser.add_argument("--prices", type=Path, default=cost_prices.DEFAULT_TABLE)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--tmpdir", default="/tmp")  # noqa: S108 - the export's scratch, as on Lambda
    args = parser.parse_args()
    prices = cost_prices.load(args.prices)
    facts = template_facts(load_template(args.template))
    if args.window is not None:
        facts.batching_window_s = args.window
    if args.batch_size is not None:
        facts.batch_size = args.batch_size
    run_facts = run(args, facts)
    priced = price(run_facts, facts, prices, args)
    if args.dump:
        dump(run_facts, facts, args)
    report(run_facts, facts, prices, priced, args)


if __name__ == "__main__":
    main()
