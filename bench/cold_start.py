"""Cold start of each Lambda handler: a fresh interpreter importing the handler module, beside a
bare ``import boto3`` (and ``import boto3`` plus one SQS client) in the same run.

Every measurement is its own ``python -c`` subprocess with the environment the template gives
the function (Globals plus the function's own variables), a region and dummy credentials, so
the figure is what Lambda's init phase pays for our code: the handler module's imports and its
module-level objects (Powertools Logger and Metrics, the use case's modules). The second figure
per handler adds the first invocation's wiring (``bootstrap``'s services and their AWS clients).
For the webhook intake a third adds the first webhook itself (a signed Stripe ``invoice.paid``
through the handler, the wired service's stores replaced by in-memory stand-ins): what is loaded
or built only when a request needs it (a source's parser, a model's schema) shows up there, so a
cost moved out of the import is not hidden. Repetitions are interleaved round-robin so the
machine's noise falls on every target alike; the median of each is printed with its ratio to the
bare ``import boto3`` of the same run.

``--lambda-packages`` hides the packages this machine has and the Lambda layer does not install
(``rich``, ``click``, ``pygments``: httpx imports its command line when they are importable), so
push and reconcile are measured as they load in Lambda. Without it the figures are this venv's.

One untimed run per target first fills the bytecode and page caches, with ``socket.connect``
made to raise: nothing may reach the network while importing or wiring. Then one
``python -X importtime`` per handler names the three packages that cost most (self time summed
per top-level package) and the module of ours that first pulled each one in.

    .venv/bin/python bench/cold_start.py [--repetitions 9] [--lambda-packages]

Last line: ``cold_start_worst_ratio=<ratio> x`` (the slowest handler over bare boto3; target 1.5).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
REGION = "us-east-1"
FIXTURE = ROOT / "tests" / "events" / "stripe" / "a2_invoice.paid.current.json"
SECRET = "whsec_bench"  # noqa: S105 - a benchmark value
# Importable here (the ``local`` extra), absent from layers/dependencies: httpx imports its CLI
# through them when it can.
NOT_IN_LAYER = ("rich", "click", "pygments")

# template.yaml Globals.Function.Environment.Variables, with made-up resource names.
GLOBALS = {
    "POWERTOOLS_SERVICE_NAME": "invoice-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "SYNC_TABLE": "bench-SyncStateTable-1",
    "MAPPINGS_TABLE": "bench-MappingsTable-1",
    "SYNC_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/bench-sync",
    "ARCHIVE_BUCKET": "bench-archivebucket-1",
    "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:bench-AlertsTopic-1",
    "SECRETS_PREFIX": "invoice-sync/bench",
    "QUICKBOOKS_API_BASE": "https://quickbooks.api.intuit.com",
    "QUICKBOOKS_TOKEN_URL": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "MAX_WEBHOOK_BYTES": "262144",
}

# What the Lambda runtime sets (region, the role's credentials, the function) and a guard.
RUNTIME = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-not-real",
    "AWS_SESSION_TOKEN": "bench-token-not-real",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Target:
    name: str
    statement: str  # what is timed from a fresh interpreter
    wiring: str  # then what the first invocation builds ("" for none)
    environment: dict[str, str]
    module: str | None = None  # the handler module, for -X importtime
    first: str = ""  # then the first request ("" for none); ``{event}`` is a fresh signed event


HANDLERS = [
    Target(
        "webhook_intake",
        "import invoice_sync.handlers.webhook_intake",
        "from invoice_sync import bootstrap; bootstrap.intake()",
        {"AWS_LAMBDA_FUNCTION_NAME": "bench-WebhookIntakeFunction"},
        "invoice_sync.handlers.webhook_intake",
        # The wired service's stores replaced by stand-ins; the handler, the use case, the source's
        # parser and the models run as they do for a real webhook.
        "from invoice_sync.handlers import webhook_intake\n"
        "from invoice_sync.models.mapping import Connection\n"
        "from pydantic import SecretStr\n"
        "class _Stores:\n"
        "    def connection(self, connection_id):\n"
        "        return Connection(connection_id=connection_id, tenant_id='1')\n"
        f"    def webhook_secrets(self, connection_id): return [SecretStr({SECRET!r})]\n"
        "    def put(self, key, body, metadata): pass\n"
        "    def send(self, message): message.model_dump_json()\n"
        "class _Context:\n"
        "    function_name = 'bench-WebhookIntakeFunction'; memory_limit_in_mb = 256\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:bench'\n"
        "    aws_request_id = 'bench'\n"
        "service = bootstrap.intake()\n"
        "service.connections = service.secrets = service.archive = service.queue = _Stores()\n"
        "answer = webhook_intake.handler({event}, _Context())\n"
        "assert answer['statusCode'] == 200 and 'queued' in answer['body'], answer\n",
    ),
    Target(
        "push",
        "import invoice_sync.handlers.push",
        "from invoice_sync import bootstrap; bootstrap.push()",
        {"AWS_LAMBDA_FUNCTION_NAME": "bench-PushFunction"},
        "invoice_sync.handlers.push",
    ),
    Target(
        "nightly_export",
        "import invoice_sync.handlers.nightly_export",
        "from invoice_sync import bootstrap; bootstrap.nightly_export(); bootstrap.mappings()",
        {
            "AWS_LAMBDA_FUNCTION_NAME": "bench-NightlyExportFunction",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
            "EXPORT_TIME_ZONE": "UTC",
            "EXPORT_TMPDIR": "/tmp",  # noqa: S108 - the template's value
        },
        "invoice_sync.handlers.nightly_export",
    ),
    Target(
        "reconcile",
        "import invoice_sync.handlers.reconcile",
        "from invoice_sync import bootstrap; bootstrap.reconcile(); bootstrap.mappings()",
        {
            "AWS_LAMBDA_FUNCTION_NAME": "bench-ReconcileFunction",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
            "RECONCILE_PICKUP_DAYS": "7",
        },
        "invoice_sync.handlers.reconcile",
    ),
    # Issue 7's two functions: the ledger webhook route and the payments-back worker (and Xero poll).
    Target(
        "ledger_events",
        "import invoice_sync.handlers.ledger_events",
        "from invoice_sync import bootstrap; bootstrap.ledger_intake()",
        {
            "AWS_LAMBDA_FUNCTION_NAME": "bench-LedgerEventsFunction",
            "LEDGER_EVENTS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/bench-ledger-events",
        },
        "invoice_sync.handlers.ledger_events",
    ),
    Target(
        "payments_back",
        "import invoice_sync.handlers.payments_back",
        "from invoice_sync import bootstrap; bootstrap.payments_back()",
        {
            "AWS_LAMBDA_FUNCTION_NAME": "bench-PaymentsBackFunction",
            "LEDGER_EVENTS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/bench-ledger-events",
        },
        "invoice_sync.handlers.payments_back",
    ),
]

BASELINES = [
    Target("boto3", "import boto3", "", {}),
    Target("boto3+sqs", "import boto3; boto3.client('sqs', region_name='us-east-1')", "", {}),
]

GUARD = (
    "import socket\n"
    "def _refuse(*a, **k):\n"
    "    raise AssertionError(f'network call during cold start: {a!r}')\n"
    "socket.socket.connect = _refuse\n"
    "socket.create_connection = _refuse\n"
)


HIDE = (
    "import sys\n"
    "class _NotInLayer:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.partition('.')[0] in {NOT_IN_LAYER!r}:\n"
    "            raise ModuleNotFoundError(f'{name} is not in the Lambda layer', name=name)\n"
    "sys.meta_path.insert(0, _NotInLayer())\n"
)


def webhook_event() -> str:
    """A signed API Gateway HTTP API event of the fixture, signed now, as a Python literal."""
    body = FIXTURE.read_bytes()
    now = int(time.time())
    v1 = hmac.new(SECRET.encode(), str(now).encode() + b"." + body, hashlib.sha256).hexdigest()
    event = {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}/{connection}",
        "rawPath": "/webhooks/stripe/bench",
        "headers": {"content-type": "application/json", "stripe-signature": f"t={now},v1={v1}"},
        "requestContext": {"requestId": "bench", "http": {"method": "POST"}, "stage": "$default"},
        "pathParameters": {"source": "stripe", "connection": "bench"},
        "body": body.decode(),
        "isBase64Encoded": False,
    }
    return f"json.loads({json.dumps(event)!r})"


def environment(target: Target) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    return {**env, **GLOBALS, **RUNTIME, **target.environment}


def program(target: Target, *, guard: bool = False, hide: bool = False) -> str:
    # The timer starts before the statement and nothing else is imported first, as in
    # ``python -c "import time; t=time.perf_counter(); import <module>; ..."``.
    wiring = target.wiring or "pass"
    first = target.first.replace("{event}", webhook_event()) if target.first else "pass"
    return (
        (GUARD if guard else "")
        + (HIDE if hide else "")
        + "import time; t = time.perf_counter()\n"
        + f"{target.statement}\n"
        + "a = time.perf_counter()\n"
        + f"{wiring}\n"
        + "b = time.perf_counter()\n"
        + ("import json\n" if target.first else "")
        + f"{first}\n"
        + "c = time.perf_counter()\n"
        + "print(a - t, b - t, c - t)\n"  # last line: the request's own log lines come before
    )


def run(target: Target, *, guard: bool = False, hide: bool = False) -> tuple[float, float, float]:
    out = subprocess.run(  # noqa: S603 - this interpreter, our own program text
        [sys.executable, "-c", program(target, guard=guard, hide=hide)],
        check=True,
        capture_output=True,
        text=True,
        env=environment(target),
        cwd=ROOT,
    ).stdout
    imported, wired, first = out.splitlines()[-1].split()
    return float(imported), float(wired), float(first)


def heaviest(target: Target, top: int = 3, *, hide: bool = False) -> list[str]:
    """Self time per top-level package under ``-X importtime``, and our module that pulled it in."""
    assert target.module
    err = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-X", "importtime", "-c", (HIDE if hide else "") + f"import {target.module}"],
        check=True,
        capture_output=True,
        text=True,
        env=environment(target),
        cwd=ROOT,
    ).stderr
    rows: list[tuple[int, int, str]] = []  # (depth, self us, module), in the order printed
    for line in err.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|", 2)
        name = name.removeprefix(" ")
        stripped = name.lstrip(" ")
        rows.append(((len(name) - len(stripped)) // 2, int(own), stripped))
    per_package: dict[str, int] = defaultdict(int)
    first_seen: dict[str, int] = {}
    for index, (_, self_us, module) in enumerate(rows):
        package = module.split(".")[0]
        per_package[package] += self_us
        first_seen.setdefault(package, index)
    ranked = sorted(
        ((us, package) for package, us in per_package.items() if package != "invoice_sync"), reverse=True
    )
    named = []
    for us, package in ranked[:top]:
        # importtime prints a module after its children: its parent is the next row less deep.
        index = first_seen[package]
        depth = rows[index][0]
        via, through = "the interpreter", package
        for later_depth, _, module in rows[index + 1 :]:
            if later_depth < depth:
                depth = later_depth
                if module.startswith("invoice_sync."):
                    via = module
                    break
                through = module.split(".")[0]
        chain = via if through == package else f"{via} through {through}"
        named.append(f"{package} {us / 1000:.0f} ms (first pulled in by {chain})")
    ours = per_package.get("invoice_sync", 0)
    named.append(f"invoice_sync's own modules {ours / 1000:.0f} ms")
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument(
        "--lambda-packages",
        action="store_true",
        help=f"hide what the Lambda layer does not install ({', '.join(NOT_IN_LAYER)})",
    )
    args = parser.parse_args()
    hide = args.lambda_packages
    targets = BASELINES + HANDLERS
    for target in targets:
        run(target, guard=True, hide=hide)  # warm caches; fails if anything opens a connection
    imported: dict[str, list[float]] = defaultdict(list)
    wired: dict[str, list[float]] = defaultdict(list)
    served: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repetitions):
        for target in targets:
            a, b, c = run(target, hide=hide)
            imported[target.name].append(a)
            wired[target.name].append(b)
            served[target.name].append(c)
    base = statistics.median(imported["boto3"])
    cores = os.cpu_count()
    packages = f"; {', '.join(NOT_IN_LAYER)} hidden (not in the Lambda layer)" if hide else ""
    print(
        f"python {sys.version.split()[0]}, {cores} cores, {args.repetitions} repetitions each, medians"
        + packages
    )
    for target in BASELINES:
        median = statistics.median(imported[target.name])
        print(f"{target.statement:<58} {median:6.3f} s  {median / base:4.2f} x boto3")
    worst = 0.0
    for target in HANDLERS:
        median = statistics.median(imported[target.name])
        first = statistics.median(wired[target.name])
        ratio = median / base
        worst = max(worst, ratio)
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        request = ""
        if target.first:
            whole = statistics.median(served[target.name])
            request = f"; with the first webhook too {whole:.3f} s ({whole / base:.2f} x)"
        print(
            f"{target.statement:<58} {median:6.3f} s  {ratio:4.2f} x boto3 ({verdict} {TARGET_RATIO} x); "
            f"with first-invocation wiring {first:.3f} s ({first / base:.2f} x){request}"
        )
    for target in HANDLERS:
        print(f"heaviest imports of {target.name}: " + "; ".join(heaviest(target, hide=hide)))
    print(f"cold_start_boto3_import={base:.3f} s")
    print(f"cold_start_worst_ratio={worst:.2f} x")


if __name__ == "__main__":
    main()
