"""The ledgers the local stack can play: each one's sandbox, seed data, mapping rules and view.

The same Stripe events go through the same push code whichever ledger the connection names; what
differs is only what a person would set up for that ledger (its item codes, tax codes, accounts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from invoice_sync.ledgers.port import marker
from invoice_sync.models.mapping import LedgerKind, MappingRule, RuleKind
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox


class Sandbox(Protocol):
    base_url: str

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str: ...

    def stop(self) -> None: ...

    def documents(self, tenant_id: str, collection: str, /) -> list[dict[str, Any]]: ...

    # Webhooks (sandboxes/base.py): every sandbox sends them; FreshBooks issues its own verifier,
    # so its ``subscribe`` takes no key (a callback, verified by sending the code back).
    def subscribe(
        self, tenant_id: str, url: str, key: str, /, *, format: str | None = None
    ) -> dict[str, Any]: ...

    def deliveries(self, tenant_id: str | None = None, /) -> list[dict[str, Any]]: ...

    def wait_for_deliveries(self, timeout: float = 10.0, /) -> bool: ...

    # A payment a person records in the ledger (the sandbox's own write, its webhook included).
    def record_payment_by_hand(
        self,
        tenant_id: str,
        invoice_id: str,
        amount: Decimal,
        /,
        *,
        paid_on: date | None = None,
        reference: str | None = None,
        note: str | None = None,
        account: str | None = None,
    ) -> dict[str, Any]: ...


MARKER = marker("stripe", "")
Row = tuple[str, str, str, str, str, str]  # type, id, number or reference, customer, total, open


@dataclass(frozen=True)
class Credentials:
    client_id: str = "local-client"
    client_secret: str = "local-client-secret"  # noqa: S105 - a sandbox credential, not a secret
    refresh_token: str = "local-refresh-0"  # noqa: S105


def _rule(kind: RuleKind, source: str, ledger_id: str, account: str | None = None) -> MappingRule:
    return MappingRule(kind=kind, source_value=source, ledger_id=ledger_id, ledger_account=account)


@dataclass(frozen=True)
class LocalLedger:
    kind: LedgerKind
    title: str
    tenant_id: str
    rules: tuple[MappingRule, ...]
    connection: dict[str, str] = field(default_factory=dict)  # extra Connection fields

    def sandbox(self) -> Sandbox:
        if self.kind == "freshbooks":
            return FreshBooksSandbox()
        return QuickBooksSandbox() if self.kind == "quickbooks" else XeroSandbox()

    def environment(self, url: str) -> dict[str, str]:
        """Where push finds this ledger: the variables template.yaml sets for the real one; and
        where ``invoice-sync connect`` finds its consent page (``*_AUTHORIZE_URL``, CLI only) and,
        for Xero, the list of organisations a token reaches (``XERO_CONNECTIONS_URL``)."""
        if self.kind == "quickbooks":
            return {
                "QUICKBOOKS_API_BASE": url,
                "QUICKBOOKS_TOKEN_URL": f"{url}/oauth2/v1/tokens/bearer",
                "QUICKBOOKS_AUTHORIZE_URL": f"{url}/connect/oauth2",
            }
        if self.kind == "freshbooks":
            return {
                "FRESHBOOKS_API_BASE": url,
                "FRESHBOOKS_TOKEN_URL": f"{url}/auth/oauth/token",
                "FRESHBOOKS_AUTHORIZE_URL": f"{url}/oauth/authorize",
            }
        return {
            "XERO_API_BASE": f"{url}/api.xro/2.0",
            "XERO_TOKEN_URL": f"{url}/connect/token",
            "XERO_AUTHORIZE_URL": f"{url}/identity/connect/authorize",
            "XERO_CONNECTIONS_URL": f"{url}/connections",
        }

    def seed(self, sandbox: Sandbox, credentials: Credentials) -> None:
        if isinstance(sandbox, QuickBooksSandbox):
            sandbox.seed_company(
                self.tenant_id,
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                refresh_token=credentials.refresh_token,
                company_name="Acme Books (sandbox)",
            )
        elif isinstance(sandbox, XeroSandbox):
            sandbox.seed_organisation(
                self.tenant_id,
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                refresh_token=credentials.refresh_token,
                name="Acme Books (sandbox)",
            )
        elif isinstance(sandbox, FreshBooksSandbox):
            sandbox.seed_account(
                self.tenant_id,
                business_id=900001,
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                refresh_token=credentials.refresh_token,
                business_name="Acme Books (sandbox)",
            )

    def documents(self, sandbox: Sandbox, kind: str) -> list[dict[str, Any]]:
        """Stored documents of one kind (``customer``, ``invoice``, ``payment`` on invoices,
        ``refund``) as the sandbox holds them."""
        names = {
            "quickbooks": {
                "customer": "Customer",
                "invoice": "Invoice",
                "payment": "Payment",
                "refund": "RefundReceipt",
            },
            "xero": {
                "customer": "Contacts",
                "invoice": "Invoices",
                "payment": "Payments",
                "refund": "CreditNotes",
            },
            "freshbooks": {
                "customer": "clients",
                "invoice": "invoices",
                "payment": "payments",
                "refund": "credit_notes",
            },
        }[self.kind]
        found = sandbox.documents(self.tenant_id, names[kind])
        if self.kind == "xero" and kind == "payment":
            # Xero pays a refund out as a Payment on its credit note: shown with the refund.
            return [d for d in found if d.get("Invoice")]
        return found

    def rows(self, sandbox: Sandbox) -> list[Row]:
        """The ledger's customers, invoices and payments as one table, for people to read."""
        view: dict[str, Callable[[dict[str, Any]], Row]] = (
            {
                "customer": lambda d: ("Customer", d["Id"], "", d.get("DisplayName", ""), "", ""),
                "invoice": lambda d: (
                    "Invoice",
                    d["Id"],
                    str(d.get("DocNumber", "")),
                    str(d["CustomerRef"]["value"]),
                    str(d["TotalAmt"]),
                    str(d["Balance"]),
                ),
                "payment": lambda d: (
                    "Payment",
                    d["Id"],
                    str(d.get("PaymentRefNum", "")),
                    str(d["CustomerRef"]["value"]),
                    str(d["TotalAmt"]),
                    str(d.get("UnappliedAmt", "")),
                ),
                "refund": lambda d: (
                    "RefundReceipt",
                    d["Id"],
                    str(d.get("DocNumber", "")),
                    str(d["CustomerRef"]["value"]),
                    str(d["TotalAmt"]),
                    str(d["Balance"]),
                ),
            }
            if self.kind == "quickbooks"
            else {
                "customer": lambda d: (
                    "Contact",
                    d["ContactID"][:8],
                    str(d.get("ContactNumber", "")),
                    d.get("Name", ""),
                    "",
                    "",
                ),
                "invoice": lambda d: (
                    "Invoice",
                    d["InvoiceID"][:8],
                    str(d.get("InvoiceNumber", "")),
                    str(d["Contact"].get("Name", "")),
                    str(d["Total"]),
                    str(d["AmountDue"]),
                ),
                "payment": lambda d: (
                    "Payment",
                    d["PaymentID"][:8],
                    str(d.get("Reference", "")).removeprefix(MARKER),
                    str(d.get("Invoice", {}).get("InvoiceNumber", "")),
                    str(d["Amount"]),
                    "",
                ),
                "refund": lambda d: (
                    "Credit note (refund)",
                    d["CreditNoteID"][:8],
                    str(d.get("CreditNoteNumber", "")),
                    str(d["Contact"].get("Name", "")),
                    str(d["Total"]),
                    str(d["RemainingCredit"]),
                ),
            }
        )
        if self.kind == "freshbooks":
            view = self._freshbooks_view()
        return [
            view[kind](doc)
            for kind in ("customer", "invoice", "payment", "refund")
            for doc in self.documents(sandbox, kind)
        ]

    @staticmethod
    def _freshbooks_view() -> dict[str, Callable[[dict[str, Any]], Row]]:
        # Money is {"amount": Decimal, "code": ...}; a deleted (voided) invoice keeps its row.
        return {
            "customer": lambda d: (
                "Client",
                str(d["id"]),
                str(d.get("note") or ""),
                d.get("organization", ""),
                "",
                "",
            ),
            "invoice": lambda d: (
                "Invoice" if d.get("vis_state") != 1 else "Invoice (deleted)",
                str(d["id"]),
                str(d.get("invoice_number", "")),
                str(d.get("organization", "")),
                str(d["amount"]["amount"]),
                str(d["outstanding"]["amount"]),
            ),
            "payment": lambda d: (
                "Payment",
                str(d["id"]),
                str(d.get("note") or "").removeprefix(MARKER),
                str(d.get("invoiceid", "")),
                str(d["amount"]["amount"]),
                "",
            ),
            "refund": lambda d: (
                "Credit note (refund)",
                str(d["id"]),
                str(d.get("credit_number", "")),
                str(d.get("organization", "")),
                str(d["amount"]["amount"]),
                "",
            ),
        }


LEDGERS: dict[str, LocalLedger] = {
    "quickbooks": LocalLedger(
        kind="quickbooks",
        title="QuickBooks Online",
        tenant_id="9130355000000001",
        rules=(
            _rule(RuleKind.PRODUCT, "prod_Consulting", "1"),  # item "Services"
            _rule(RuleKind.PRODUCT, "prod_Hosting", "3"),  # item "Hosting"
            _rule(RuleKind.TAX_RATE, "txr_SalesTax825", "TAX"),
        ),
        # Refunds no credit note covers take revenue back on "Services" and leave from Checking.
        connection={"no_tax_code": "NON", "refund_item_id": "1", "refund_from_account": "35"},
    ),
    "xero": LocalLedger(
        kind="xero",
        title="Xero",
        tenant_id="6f1d3b5e-8c2a-4e7f-9b1d-0a2c4e6f8a10",
        rules=(
            _rule(RuleKind.PRODUCT, "prod_Consulting", "CONSULT", account="200"),
            _rule(RuleKind.PRODUCT, "prod_Hosting", "HOSTING", account="260"),
            _rule(RuleKind.TAX_RATE, "txr_SalesTax825", "OUTPUT2"),
        ),
        connection={"no_tax_code": "NONE", "payment_account": "090", "refund_account": "200"},
    ),
    "freshbooks": LocalLedger(
        kind="freshbooks",
        title="FreshBooks",
        tenant_id="zDmNq",  # a FreshBooks account id
        rules=(
            # FreshBooks lines are named after the account's items; the sandbox seeds these two.
            _rule(RuleKind.PRODUCT, "prod_Consulting", "Consulting"),
            _rule(RuleKind.PRODUCT, "prod_Hosting", "Hosting"),
            # The line's tax name; FreshBooks gets the percent from the source's own tax amount.
            _rule(RuleKind.TAX_RATE, "txr_SalesTax825", "Sales Tax"),
        ),
        connection={"no_tax_code": "", "refund_item_id": "Consulting"},
    ),
}
