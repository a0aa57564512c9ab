"""The whole of invoice-sync on one machine, no AWS account and no Docker.

- AWS is moto's server, over HTTP, on a free loopback port; the resources come from template.yaml.
- The ledger (QuickBooks Online, Xero or FreshBooks) is played by its sandbox in
  ``invoice_sync_ops.sandboxes``, over HTTP.
- Stripe's API (what ``invoice-sync try`` and ``backfill`` read) is the stand-in in
  ``invoice_sync_ops.sandboxes.stripe``, seeded with the demo's invoices and a few more.
- API Gateway is ``LocalHttpApi`` (the webhook route and the ledger webhook route); Lambda's SQS
  event source is ``SqsEventSource``. The ledger events queue has a worker only with
  ``payments_back_worker``: then ``payments_back`` takes what the ledger webhook function sends,
  the ledger sandbox sends its webhooks to the ledger webhook route and the Stripe stand-in its
  own to the Stripe route, so a payment recorded by hand in the ledger goes the whole way round
  (ledger -> Stripe -> intake -> push). FreshBooks' callback is registered as ``connect``
  registers it, and its verification goes ledger_events -> the worker -> FreshBooks. Without
  it what the ledger webhook function sends stays on the queue, for tests to read.
- The functions run in this process, with the environment template.yaml would give them, pointed
  at the local endpoints through ``AWS_ENDPOINT_URL`` (boto3 reads it itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

from invoice_sync.ledgers.http import token_grant
from invoice_sync.models.mapping import Connection
from invoice_sync.models.tokens import TokenSet
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.local.api_gateway import LocalHttpApi
from invoice_sync_ops.local.event_source import SqsEventSource
from invoice_sync_ops.local.lambda_runtime import LocalContext
from invoice_sync_ops.local.ledgers import LEDGERS, Credentials, LocalLedger, Sandbox
from invoice_sync_ops.sandboxes.stripe import StripeSandbox, fixture_invoices, generate_invoices
from invoice_sync_ops.target import Target
from invoice_sync_ops.template import StackResources, create_stack_resources

REGION = "us-east-1"
SECRETS_PREFIX = "invoice-sync/local"
# The generated history the Stripe stand-in holds besides the fixtures' invoices: a dozen
# finalized invoices, one a day from 2025-06-01 (HIST-0001 ...), for `backfill --since 2025-06-01`.
HISTORY_START = 1_748_736_000
HISTORY_COUNT = 12
# The event FreshBooks' payments callback is registered for (as `connect` does): its children
# payment.create, payment.update and payment.delete.
FRESHBOOKS_CALLBACK_EVENT = "payment"


@dataclass(frozen=True)
class DemoCompany:
    """The connection the local stack seeds: a Stripe account wired to one sandbox ledger."""

    connection_id: str = "acme"
    webhook_secret: str = "whsec_local_demo"  # noqa: S105 - a local demo value, printed by local up
    stripe_account: str = "acct_1LocalAcme0001"
    stripe_api_key: str = "sk_test_local_demo_acme"
    # The ledger's webhook key (QBO verifier token, Xero webhook key, FreshBooks verifier): what a
    # ledger webhook to /ledger-webhooks/<ledger>/acme is signed with.
    ledger_webhook_key: str = "ledger_webhook_local_demo"
    # Payments back (issue 7): off, as for any connection until an operator turns it on; then the
    # ledger webhook function queues the ledger's payments instead of answering them "ignored".
    payments_back: bool = False
    # The restricted Stripe key payments back writes with: the stand-in has one key per account,
    # so locally it is the account's key (stored as the connection's stripe-writer secret).
    stripe_writer_key: str = "sk_test_local_demo_acme"
    credentials: Credentials = field(default_factory=Credentials)


def seed_demo(
    resources: StackResources,
    ledger: LocalLedger,
    sandbox: Sandbox,
    company: DemoCompany,
    client: Callable[[str], Any],
) -> None:
    """One connection ready to sync: ledger company, mapping rules, webhook secret and OAuth tokens,
    and for ledger webhooks its key and the tenant directory entry of its ledger company."""
    ledger.seed(sandbox, company.credentials)
    mappings = MappingsStore(resources.mappings_table, client("dynamodb"))
    mappings.put_connection(
        Connection.model_validate(
            {
                "connection_id": company.connection_id,
                "ledger": ledger.kind,
                "tenant_id": ledger.tenant_id,
                **ledger.connection,
                "payments_back": company.payments_back,
            }
        )
    )
    mappings.put_tenant_connection(ledger.kind, ledger.tenant_id, company.connection_id)
    for rule in ledger.rules:
        mappings.put_rule(company.connection_id, rule)
    secrets = SecretStore(SECRETS_PREFIX, client("secretsmanager"))
    secrets.put_webhook_secrets(company.connection_id, [company.webhook_secret])
    secrets.put_stripe_api_key(company.connection_id, company.stripe_api_key)
    secrets.put_ledger_webhook_keys(company.connection_id, [company.ledger_webhook_key])
    if company.payments_back:
        secrets.put_stripe_writer_key(company.connection_id, company.stripe_writer_key)
    credentials = company.credentials
    secrets.save_ledger_tokens(
        company.connection_id,
        TokenSet.model_validate(
            {
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "refresh_token": credentials.refresh_token,
            }
        ),
    )


PushHandler = Callable[[dict[str, Any], Any], Any]


def serve_moto(pipe: Pipe) -> None:
    """Child process: moto's server on a free loopback port; sends ``host:port`` and serves until
    the parent closes the pipe (or dies: the process is a daemon)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    pipe.send(f"{host}:{port}")
    with contextlib.suppress(EOFError):
        pipe.recv()  # anything, or EOF when the parent goes: time to stop
    server.stop()


class MotoProcess:
    """moto's server in an interpreter of its own, for a run whose single process would otherwise
    spend half its time inside moto with the GIL held (the chaos bench): the functions' boto3
    calls and moto's handling of them then use two cores. Same HTTP API as the in-process server."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._pipe, end = spawn.Pipe()
        self._process = spawn.Process(target=serve_moto, args=(end,), name="moto", daemon=True)
        self._process.start()
        if not self._pipe.poll(120):
            self._process.kill()
            raise RuntimeError(f"moto's server did not start (exit code {self._process.exitcode})")
        host, _, port = str(self._pipe.recv()).rpartition(":")
        self.host, self.port = host, int(port)

    def get_host_and_port(self) -> tuple[str, int]:
        return self.host, self.port

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


class LocalStack:
    """``environment`` overrides what the functions are given (a bench's own settings);
    ``wrap_push`` wraps the push handler the SQS event source invokes (a bench's fault injection
    around the real handler, so that nothing of the kind lives in the product's code);
    ``pollers`` is how many push invocations may run at once (Lambda's concurrency), each an
    event source of its own; ``moto_process`` runs moto's server in a process of its own
    (``MotoProcess``) instead of a thread of this one; ``payments_back`` turns payments back on
    for the demo connection (off by default, as for a real one) and stores its stripe-writer key;
    ``payments_back_worker`` (which implies ``payments_back``) also runs the payments_back worker
    on the ledger events queue and subscribes the ledger sandbox (QuickBooks: CloudEvents, Xero)
    to the ledger webhook route and the Stripe stand-in to the Stripe route, so that the two-way
    flow runs whole. FreshBooks issues its verifier itself: its ``payment`` callback is registered
    the way ``connect freshbooks --payments-back on`` does it (``freshbooks_callback_id``), and
    the verification it posts goes through ledger_events and the worker before any payment event
    is sent."""

    def __init__(
        self,
        *,
        ledger: str = "quickbooks",
        company: DemoCompany | None = None,
        retry_seconds: int = 1,
        environment: Mapping[str, str] | None = None,
        wrap_push: Callable[[PushHandler], PushHandler] | None = None,
        pollers: int = 1,
        moto_process: bool = False,
        payments_back: bool | None = None,
        payments_back_worker: bool = False,
    ) -> None:
        self.ledger = LEDGERS[ledger]
        self.company = company or DemoCompany()
        if payments_back_worker:
            payments_back = True
        if payments_back is not None:
            self.company = dataclasses.replace(self.company, payments_back=payments_back)
        self._payments_back_worker = payments_back_worker
        self.payments_back_source: SqsEventSource | None = None
        # The FreshBooks callback the stack registered (payments_back_worker on FreshBooks).
        self.freshbooks_callback_id: str | None = None
        self._retry_seconds = retry_seconds
        self._extra_environment = dict(environment or {})
        self._wrap_push = wrap_push
        self._pollers = max(1, pollers)
        self.event_sources: list[SqsEventSource] = []
        self._moto_process = moto_process
        self._moto: ThreadedMotoServer | MotoProcess | None = None
        self.sandbox = self.ledger.sandbox()
        self.stripe = StripeSandbox()
        self.stripe_url = ""
        self.api: LocalHttpApi | None = None
        self.event_source: SqsEventSource | None = None
        self.resources: StackResources | None = None
        self.aws_endpoint = ""
        self.ledger_url = ""
        self.api_url = ""
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        # The servers' per-request lines would bury what the stack prints.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # Port 0: the server binds a free port itself (no window for another process to take it).
        if self._moto_process:
            self._moto = MotoProcess()
        else:
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
        # moto keeps its accounts per process, not per server: without a reset, a stack started
        # after another in the same process would find the last one's tables, items and secrets.
        # A new local stack is a new, empty AWS account (moto's documented reset endpoint).
        httpx.post(f"{self.aws_endpoint}/moto-api/reset", timeout=10).raise_for_status()
        self.ledger_url = self.sandbox.start()
        self.stripe_url = self.stripe.start()
        self._environment(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )
        self.resources = create_stack_resources(boto3.session.Session(region_name=REGION))
        self._environment(
            {
                **self.resources.environment(),
                "SECRETS_PREFIX": SECRETS_PREFIX,
                **self.ledger.environment(self.ledger_url),
                # The reconcile function reads Stripe: here, the stand-in.
                "STRIPE_API_BASE": self.stripe_url,
                "POWERTOOLS_SERVICE_NAME": "invoice-sync",
                "POWERTOOLS_METRICS_NAMESPACE": "InvoiceSync",
                # Locally the EMF lines would drown the demo's output; Lambda keeps them on.
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "ERROR"),
                "SECRET_CACHE_SECONDS": "0",
                # Locally a credit note and the charge.refunded it causes are posted by the same
                # hand, in order: no need to give the credit note time to arrive first.
                "REFUND_SETTLE_SECONDS": "0",
                **self._extra_environment,
            }
        )
        # Imported only now: Powertools reads its settings from the environment at import time.
        from invoice_sync import bootstrap  # noqa: PLC0415
        from invoice_sync.handlers import ledger_events, payments_back, webhook_intake  # noqa: PLC0415
        from invoice_sync.handlers import push as push_handler  # noqa: PLC0415
        from invoice_sync.observability import logger  # noqa: PLC0415

        bootstrap.reset()
        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
        self.seed()
        self.api = LocalHttpApi(webhook_intake.handler, ledger_events.handler)
        self.api_url = self.api.start()
        push = self._wrap_push(push_handler.handler) if self._wrap_push else push_handler.handler
        self.event_sources = [
            SqsEventSource(
                self.client("sqs"), self.resources.sync_queue_url, push, retry_seconds=self._retry_seconds
            )
            for _ in range(self._pollers)
        ]
        self.event_source = self.event_sources[0]
        for source in self.event_sources:
            source.start()
        if self._payments_back_worker:
            self._start_payments_back(payments_back.handler)
        return self

    def _start_payments_back(self, handler: PushHandler) -> None:
        """The worker on the ledger events queue (Lambda's event source: batches of 10, as the
        template's), and the webhooks of both sides pointed at this stack."""
        assert self.resources is not None
        self.payments_back_source = SqsEventSource(
            self.client("sqs"),
            self.resources.ledger_events_queue_url,
            handler,
            retry_seconds=self._retry_seconds,
            function_name="payments-back",
        )
        self.payments_back_source.start()
        if self.ledger.kind == "freshbooks":
            self.freshbooks_callback_id = self._register_freshbooks_callback()
        else:
            self.sandbox.subscribe(
                self.ledger.tenant_id, self.ledger_webhook_url(), self.company.ledger_webhook_key
            )
        self.stripe.subscribe(self.company.stripe_account, self.webhook_url(), self.company.webhook_secret)

    def _register_freshbooks_callback(self) -> str:
        """The steps of ``connect freshbooks --payments-back on`` (commands/connect.py), over the
        sandbox's own API with the connection's token: the ledger-webhook secret made to exist,
        the ``payment`` callback registered at the ledger webhook route, the FBHOOK# pending item,
        then a resend of the verification (the first came before the pending item, and was
        answered 404). The callback id."""
        assert self.resources is not None
        connection_id = self.company.connection_id
        secrets = SecretStore(SECRETS_PREFIX, self.client("secretsmanager"))
        state = SyncStateStore(self.resources.sync_table, self.client("dynamodb"))
        stored = secrets.ledger_tokens(connection_id)
        env = self.ledger.environment(self.ledger_url)
        base = f"{self.ledger_url}/events/account/{self.ledger.tenant_id}/events/callbacks"
        with httpx.Client(timeout=10) as http:
            # connect holds a fresh access token from its consent; the seeded connection has only a
            # refresh token, so it is refreshed (and the rotated tokens saved, as the worker does).
            tokens = token_grant(
                http,
                env["FRESHBOOKS_TOKEN_URL"],
                {"grant_type": "refresh_token", "refresh_token": stored.refresh_token.get_secret_value()},
                client_id=stored.client_id,
                client_secret=stored.client_secret,
                name="FreshBooks",
                json_body=True,
                previous_refresh=stored.refresh_token,
            )
            secrets.save_ledger_tokens(connection_id, tokens)
            assert tokens.access_token is not None
            headers = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
            secrets.ensure_ledger_webhook_secret(connection_id)
            created = http.post(
                base,
                json={"callback": {"event": FRESHBOOKS_CALLBACK_EVENT, "uri": self.ledger_webhook_url()}},
                headers=headers,
            )
            created.raise_for_status()
            callback_id = str(created.json()["response"]["result"]["callback"]["callbackid"])
            state.put_pending_callback(connection_id, callback_id, FRESHBOOKS_CALLBACK_EVENT)
            http.put(
                f"{base}/{callback_id}", json={"callback": {"resend": True}}, headers=headers
            ).raise_for_status()
        return callback_id

    def stop(self) -> None:
        for source in self.event_sources:
            source.stop()
        if self.payments_back_source:
            self.payments_back_source.stop()
        if self.api:
            self.api.stop()
        self.sandbox.stop()
        self.stripe.stop()
        if self._moto:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from invoice_sync import bootstrap  # noqa: PLC0415

        bootstrap.reset()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _environment(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def client(self, service: str) -> Any:
        """A client of moto's server, one per service and stack: building a session and client
        parses the service's model (a quarter of a second each), and clients are thread-safe."""
        with self._clients_lock:
            key = (service, self.aws_endpoint)
            if key not in self._clients:
                session = boto3.session.Session(region_name=REGION)
                self._clients[key] = session.client(service, endpoint_url=self.aws_endpoint)
            return self._clients[key]

    # --- data -------------------------------------------------------------------------------------

    def seed(self) -> None:
        assert self.resources is not None
        seed_demo(self.resources, self.ledger, self.sandbox, self.company, self.client)
        self.stripe.seed_account(
            self.company.stripe_account,
            api_key=self.company.stripe_api_key,
            invoices=fixture_invoices() + generate_invoices(HISTORY_COUNT, start=HISTORY_START),
        )

    def target(self) -> Target:
        """What the operator CLI needs to work on this stack (``--local``)."""
        assert self.resources is not None
        return Target(
            name="local",
            region=REGION,
            aws_endpoint=self.aws_endpoint,
            sync_table=self.resources.sync_table,
            mappings_table=self.resources.mappings_table,
            sync_queue_url=self.resources.sync_queue_url,
            dead_letter_queue_url=self.resources.dead_letter_queue_url,
            archive_bucket=self.resources.archive_bucket,
            alerts_topic_arn=self.resources.alerts_topic_arn,
            secrets_prefix=SECRETS_PREFIX,
            ledger_environment=self.ledger.environment(self.ledger_url),
            stripe_api_base=self.stripe_url,
            ledger_events_queue_url=self.resources.ledger_events_queue_url or None,
            ledger_events_dead_letter_queue_url=self.resources.ledger_events_dead_letter_queue_url or None,
            # The template's LedgerWebhookUrl output has the same placeholders.
            ledger_webhook_url=f"{self.api_url}/ledger-webhooks/<ledger>/<connection>",
        )

    def webhook_url(self, source: str = "stripe", connection_id: str | None = None) -> str:
        return f"{self.api_url}/webhooks/{source}/{connection_id or self.company.connection_id}"

    def ledger_webhook_url(self, ledger: str | None = None, connection_id: str | None = None) -> str:
        """Where a ledger posts its webhooks (``LedgerWebhookUrl``): the stack's ledger and the
        demo connection unless told otherwise."""
        return (
            f"{self.api_url}/ledger-webhooks/{ledger or self.ledger.kind}/"
            f"{connection_id or self.company.connection_id}"
        )

    def ledger_events(self) -> list[dict[str, Any]]:
        """What waits on the ledger events queue (nothing takes it off without
        ``payments_back_worker``), as queue bodies (``LedgerEventMessage.from_queue_body`` reads
        each); left on the queue, visible again."""
        assert self.resources is not None
        sqs = self.client("sqs")
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(3):  # a short poll samples some of moto's messages: ask until none is new
            messages = sqs.receive_message(
                QueueUrl=self.resources.ledger_events_queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
            ).get("Messages", [])
            for message in messages:
                seen.setdefault(message["MessageId"], json.loads(message["Body"]))
        return list(seen.values())

    def poll_xero(self) -> dict[str, Any]:
        """One run of the Xero payments poll, as ``XeroPollSchedule`` starts it: the payments_back
        handler invoked with the schedule's event, with the function's 60 s (template.yaml). It
        returns the handler's summary (per connection: read, sent, the cursor saved). What it sends
        waits on the ledger events queue, for the worker when ``payments_back_worker`` runs it
        (``drain`` then waits for it)."""
        from invoice_sync.handlers import payments_back  # noqa: PLC0415

        summary: dict[str, Any] = payments_back.handler(
            {"source": "schedule", "action": "poll-xero"},
            LocalContext("payments-back", timeout_seconds=60),
        )
        return summary

    def drain(self, timeout: float = 60.0) -> bool:
        """Waits until the sync queue is empty and push is idle; with ``payments_back_worker``,
        until the ledger events queue is empty and the worker idle too, and neither sandbox has a
        webhook still on its way (each side's writes send webhooks that cause more work); False on
        timeout."""
        assert self.resources is not None
        assert self.event_source is not None
        queues = [self.resources.sync_queue_url]
        sources = list(self.event_sources)
        if self.payments_back_source is not None:
            queues.append(self.resources.ledger_events_queue_url)
            sources.append(self.payments_back_source)
        deadline = time.monotonic() + timeout
        quiet_rounds = 0
        while time.monotonic() < deadline:
            pending = sum(self._queued(url) for url in queues)
            busy = any(source.busy.is_set() for source in sources)
            if self.payments_back_source is not None and not self._webhooks_delivered():
                busy = True
            quiet_rounds = quiet_rounds + 1 if pending == 0 and not busy else 0
            if quiet_rounds >= 3:
                return True
            time.sleep(0.2)
        return False

    def _queued(self, queue_url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def _webhooks_delivered(self) -> bool:
        """True when neither the ledger sandbox nor the Stripe stand-in has a delivery unfinished."""
        return self.sandbox.wait_for_deliveries(0.0) and self.stripe.wait_for_deliveries(0.0)
