"""The ledger port's contract, run against every adapter and its sandbox over HTTP.

Each ledger contributes one ``LedgerCase``: its adapter wired exactly as bootstrap wires it (the
shared HTTP plumbing, its error mapping, its limits, a real OAuth refresh against the sandbox),
the ids its sandbox company has (items, tax codes, accounts), and the sandbox's fault controls.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest

from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.port import InvoiceDraft, LedgerPort, LineDraft, PaymentDraft, marker
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.models.mapping import Connection, LedgerKind, Mappings
from invoice_sync.models.tokens import TokenSet
from invoice_sync.settings import Settings
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox


class MemoryVault:
    """Secrets Manager stand-in that records every save, in order."""

    def __init__(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saved: list[TokenSet] = []

    def ledger_tokens(self, connection_id: str) -> TokenSet:
        return self.tokens

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saved.append(tokens)


class MemoryLease:
    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        return True

    def release_lock(self, name: str, owner: str) -> None:
        return None


@dataclass
class LedgerCase:
    name: str
    ledger: LedgerPort
    vault: MemoryVault
    item_id: str  # an active item (QBO) / item code (Xero)
    account: str | None  # a revenue account code where the ledger needs one
    tax_code: str  # a taxable code
    no_tax_code: str
    payment_account: str | None
    refund_from: str | None  # the account a refund's money leaves from
    pays_out_credit: bool  # whether the ledger's API can pay money out of a credit note
    inject_status: Callable[[int, int], None]
    expire_access_tokens: Callable[[], None]
    forget_idempotency: Callable[[], None]
    lose_responses: Callable[[int], None]  # the next writes commit but their answers are lost
    invalid_item_id: str  # a reference the ledger refuses
    inactive_item_id: str | None = None  # an item the ledger keeps but marks inactive
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def draft(
        self,
        customer_id: str,
        *,
        number: str | None = None,
        amount: str = "150.00",
        tax: str = "12.38",
        quantity: int = 3,
        item_id: str | None = None,
    ) -> InvoiceDraft:
        """A two-line invoice: one taxed line, one untaxed, totals consistent."""
        number = number or f"CT-{next(self.numbers):04d}"
        lines = (
            LineDraft(
                item_id=item_id or self.item_id,
                description="Consulting",
                quantity=quantity,
                amount=Decimal(amount),
                tax_code=self.tax_code,
                tax=Decimal(tax),
                account=self.account,
            ),
            LineDraft(
                item_id=item_id or self.item_id,
                description="Setup",
                quantity=1,
                amount=Decimal("20.00"),
                tax_code=self.no_tax_code,
                account=self.account,
            ),
        )
        subtotal = Decimal(amount) + Decimal("20.00")
        return InvoiceDraft(
            source_id=f"in_contract_{number}",
            customer_id=customer_id,
            number=number,
            issued_on=date(2026, 11, 2),
            due_on=date(2026, 12, 2),
            currency="USD",
            lines=lines,
            discount=Decimal(0),
            tax=Decimal(tax),
            total=subtotal + Decimal(tax),
            memo="Contract test",
            private_note=marker("stripe", f"in_contract_{number}"),
        )

    def payment(self, invoice_id: str, customer_id: str, amount: Decimal, source_id: str) -> PaymentDraft:
        return PaymentDraft(
            source_id=source_id,
            customer_id=customer_id,
            invoice_id=invoice_id,
            amount=amount,
            currency="USD",
            paid_on=date(2026, 11, 20),
            private_note=marker("stripe", source_id),
            account=self.payment_account,
        )


def _ledger(kind: LedgerKind, url: str, tenant: str, vault: MemoryVault) -> LedgerPort:
    """The adapter exactly as production builds it (``LedgerRegistry``), pointed at the sandbox.

    One second of Retry-After (what the Xero sandbox sends for an injected 429) is waited out.
    """
    environment = {
        **dict.fromkeys(
            ["SYNC_TABLE", "MAPPINGS_TABLE", "SYNC_QUEUE_URL", "ARCHIVE_BUCKET", "ALERTS_TOPIC_ARN"], "-"
        ),
        **LEDGERS[kind].environment(url),
        "LEDGER_MAX_ATTEMPTS": "3",
        "LEDGER_BACKOFF_SECONDS": "0.01",
        "LEDGER_MAX_BACKOFF_SECONDS": "1.0",
    }
    registry = LedgerRegistry(Settings.from_env(environment), MemoryLease(), vault)
    connection = Connection(connection_id="contract", ledger=kind, tenant_id=tenant)
    return registry(Mappings(connection=connection))


def _vault() -> MemoryVault:
    return MemoryVault(
        TokenSet.model_validate(
            {"client_id": "ct", "client_secret": "ct-secret", "refresh_token": "ct-refresh"}
        )
    )


CREDENTIALS = {"client_id": "ct", "client_secret": "ct-secret", "refresh_token": "ct-refresh"}


def quickbooks_case() -> Iterator[LedgerCase]:
    sandbox = QuickBooksSandbox()
    url = sandbox.start()
    realm = "4620816365000000001"
    sandbox.seed_company(realm, **CREDENTIALS)
    vault = _vault()
    yield LedgerCase(
        name="quickbooks",
        ledger=_ledger("quickbooks", url, realm, vault),
        vault=vault,
        item_id="1",
        account=None,
        tax_code="TAX",
        no_tax_code="NON",
        payment_account=None,
        refund_from="35",  # Checking, a Bank account
        pays_out_credit=False,  # QBO has no call for it; a RefundReceipt pays out as it is created
        inject_status=lambda status, count: sandbox.inject_status(realm, status, count),
        expire_access_tokens=lambda: sandbox.expire_access_tokens(realm),
        forget_idempotency=lambda: sandbox.forget_request_ids(realm),
        lose_responses=lambda count: sandbox.lose_responses(realm, count),
        invalid_item_id="9",  # inactive in the sandbox company
        inactive_item_id="9",  # "Old plan"
    )
    sandbox.stop()


def xero_case() -> Iterator[LedgerCase]:
    sandbox = XeroSandbox()
    url = sandbox.start()
    tenant = "0d7f6e4c-1a2b-4c3d-8e9f-000000000001"
    sandbox.seed_organisation(tenant, **CREDENTIALS)
    vault = _vault()
    yield LedgerCase(
        name="xero",
        ledger=_ledger("xero", url, tenant, vault),
        vault=vault,
        item_id="CONSULT",
        account="200",
        tax_code="OUTPUT2",
        no_tax_code="NONE",
        payment_account="090",
        refund_from="090",
        pays_out_credit=True,  # a refund Payment on the credit note
        inject_status=lambda status, count: sandbox.inject_status(tenant, status, count),
        expire_access_tokens=lambda: sandbox.expire_access_tokens(tenant),
        forget_idempotency=lambda: sandbox.forget_idempotency_keys(tenant),
        lose_responses=lambda count: sandbox.lose_responses(tenant, count),
        invalid_item_id="NO-SUCH-ITEM",
    )
    sandbox.stop()


def freshbooks_case() -> Iterator[LedgerCase]:
    sandbox = FreshBooksSandbox()
    url = sandbox.start()
    account = "zDmNq"
    sandbox.seed_account(account, business_id=900001, **CREDENTIALS)
    vault = _vault()
    ledger = _ledger("freshbooks", url, account, vault)
    assert isinstance(ledger, FreshBooksLedger)
    yield LedgerCase(
        name="freshbooks",
        ledger=ledger,
        vault=vault,
        item_id="Consulting",  # lines are named after one of the account's items
        account=None,
        tax_code="Sales Tax",
        no_tax_code="",
        payment_account=None,
        refund_from=None,
        pays_out_credit=False,  # FreshBooks' API records no refund out of a credit note
        inject_status=lambda status, count: sandbox.inject_status(account, status, count),
        expire_access_tokens=lambda: sandbox.expire_access_tokens(account),
        # FreshBooks keeps no keys: the adapter's own replay memory is the window that lapses.
        forget_idempotency=ledger.forget_replays,
        lose_responses=lambda count: sandbox.lose_responses(account, count),
        invalid_item_id="NO-SUCH-ITEM",  # not among the account's items
    )
    sandbox.stop()


CASES: dict[str, Callable[[], Iterator[LedgerCase]]] = {
    "quickbooks": quickbooks_case,
    "xero": xero_case,
    "freshbooks": freshbooks_case,
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[LedgerCase]:
    yield from CASES[request.param]()
