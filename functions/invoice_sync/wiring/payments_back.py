"""The payments-back worker's wiring: the use case on SyncState, the Mappings table, alerts, the
ledger adapters (the registry push uses, so tokens and limits are shared while warm) and, per
connection, a Stripe client holding its ``stripe-writer`` key: the one function that may write to
Stripe. The secret store also takes a FreshBooks callback's verifier once FreshBooks accepted it
(the connection's ``ledger-webhook`` secret). ``build_payments_back`` is the one recipe, for the
Lambda and for the operator CLI.

The same function runs the Xero payments poll (``XeroPollSchedule``): ``build_xero_poller`` puts it
on the same SyncState store (cursors, leases, alert markers), the connection directory, the same
ledger registry (so the worker's and the poll's calls to one Xero organisation share one limiter
and one token) and the ledger events queue it sends to."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.ledgers.xero import payloads as xero_payloads
from invoice_sync.models.mapping import Connection
from invoice_sync.settings import Settings, get_settings
from invoice_sync.sources.stripe_api import StripeApi
from invoice_sync.store import aws
from invoice_sync.store.alerts import AlertPublisher, AlertWindows
from invoice_sync.store.queue import LedgerEventsQueue
from invoice_sync.store.secrets import SecretStore
from invoice_sync.sync.payments_back import BackState, Connections, PaymentsBackService
from invoice_sync.sync.push import Alerts
from invoice_sync.sync.xero_poll import Budget, EventQueue, PollConnections, PollState, XeroPaymentPoller
from invoice_sync.wiring import once, stores
from invoice_sync.wiring.ledgers import ledgers
from invoice_sync.wiring.state import state
from invoice_sync.wiring.stripe import StripeClients

# The worker has 60 s (template.yaml): Stripe's in-place retries stop well inside it, and what is
# left over goes back to the queue under the same idempotency key.
STRIPE_TIMEOUT_SECONDS = 10.0
STRIPE_MAX_ATTEMPTS = 3
STRIPE_MAX_WAIT_SECONDS = 10.0


def stripe_writers(base_url: str, secrets: SecretStore) -> Callable[[Connection], StripeApi]:
    """One Stripe client per connection with its writer key (``stripe-writer``), kept while warm
    and rebuilt when the secret holds another key (a rotation)."""
    clients = StripeClients(
        base_url,
        secrets.stripe_writer_key,  # ConnectionBroken when none is stored
        secrets.stripe_writer_secret_name,
        timeout=STRIPE_TIMEOUT_SECONDS,
        max_attempts=STRIPE_MAX_ATTEMPTS,
        max_wait_seconds=STRIPE_MAX_WAIT_SECONDS,
    )
    return lambda connection: clients(connection.connection_id)


def build_payments_back(
    settings: Settings,
    *,
    state: BackState,
    mappings: Connections,
    alerts: Alerts,
    ledger_for: LedgerRegistry,
    secrets: SecretStore,
) -> PaymentsBackService:
    """The payments-back use case on the given stores, tuned by ``settings``."""
    return PaymentsBackService(
        state=state,
        mappings=mappings,
        alerts=alerts,
        ledger_for=ledger_for,
        stripe_for=stripe_writers(settings.stripe_api_base, secrets),
        intent_timeout=timedelta(seconds=settings.intent_timeout_seconds),
        # The Xero poll sends the Payment element it read: no second GET for it.
        payload_readers={"xero": xero_payloads.ledger_payment},
        webhook_keys=secrets,
    )


# What Xero says is left of a tenant's limits, as the adapter's plumbing keeps it (``Quota``, read
# from these response headers, on every response [P: https://developer.xero.com/faq/limits;
# shared/LEDGER-APIS.md 2.3]).
XERO_MINUTE_LEFT = "X-MinLimit-Remaining"
XERO_DAY_LEFT = "X-DayLimit-Remaining"


class RegistryBudget:
    """A connection's minute and day budget as Xero stated it on the registry's last response to
    that connection (None before any)."""

    def __init__(self, registry: LedgerRegistry) -> None:
        self.registry = registry

    def __call__(self, connection_id: str) -> Budget | None:
        quota = self.registry.quotas().get(connection_id)
        if quota is None:
            return None
        return Budget(minute=quota.remaining.get(XERO_MINUTE_LEFT), day=quota.remaining.get(XERO_DAY_LEFT))


def build_xero_poller(
    *,
    state: PollState,
    mappings: PollConnections,
    alerts: Alerts,
    ledger_for: LedgerRegistry,
    queue: EventQueue,
) -> XeroPaymentPoller:
    """The Xero payments poll on the given stores and queue."""
    return XeroPaymentPoller(
        state=state,
        connections=mappings,
        alerts=alerts,
        ledger_for=ledger_for,
        queue=queue,
        budget=RegistryBudget(ledger_for),
        # Used once the adapter hands the Payment elements out (``PaymentElementPages``).
        reader=xero_payloads.ledger_payment,
    )


@once
def alerts() -> AlertPublisher:
    """SNS only when a record parks or a connection breaks; storms are counted and summarised as
    push's are (store/alerts.py). One publisher for the worker and the poll."""
    settings = get_settings()
    return AlertPublisher(
        settings.alerts_topic_arn,
        aws.OnFirstUse("sns"),
        windows=AlertWindows(settings.sync_table, aws.OnFirstUse("dynamodb")),
    )


@once
def payments_back() -> PaymentsBackService:
    settings = get_settings()
    return build_payments_back(
        settings,
        state=state(),
        mappings=stores.mappings(),
        alerts=alerts(),
        ledger_for=ledgers(),
        secrets=stores.secrets(),
    )


@once
def xero_poller() -> XeroPaymentPoller:
    return build_xero_poller(
        state=state(),
        mappings=stores.mappings(),
        alerts=alerts(),
        ledger_for=ledgers(),
        queue=LedgerEventsQueue(get_settings().ledger_events_queue_url),
    )
