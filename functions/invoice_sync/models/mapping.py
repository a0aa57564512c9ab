"""Connections and mapping rules: how source products, taxes and customers land in one ledger."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr

from invoice_sync.models.documents import SourceKind

LedgerKind = Literal["quickbooks", "xero", "freshbooks"]


class RuleKind(StrEnum):
    CUSTOMER = "customer"
    PRODUCT = "product"
    TAX_RATE = "tax_rate"
    # Source currency -> the ledger's code for it. A connection with any currency rule accepts
    # only the currencies it maps; one without accepts every currency.
    CURRENCY = "currency"


class CustomerPolicy(StrEnum):
    AUTO_CREATE = "auto_create"  # find the ledger customer by name, create it when missing
    REQUIRE_MAPPING = "require_mapping"  # park until an operator maps the customer


class MappingRule(BaseModel):
    """Source attribute (kind, value) -> ledger reference. Unique per connection and (kind, value)."""

    model_config = ConfigDict(frozen=True)

    kind: RuleKind
    source_value: str
    ledger_id: str
    ledger_name: str | None = None
    source_name: str | None = None
    # Xero: the revenue account code a product's lines post to (``ledger_id`` is then the item
    # code, or empty for none). QBO items carry their income account, so it is unused there.
    ledger_account: str | None = None
    # Customer rules only: True when push found or created the customer and remembered it, False
    # when an operator set it; None for rules stored before this was recorded (treated as learned,
    # so an import never deletes what it cannot tell apart).
    learned: bool | None = None


class Connection(BaseModel):
    """One source account wired to one ledger company."""

    model_config = ConfigDict(frozen=True)

    connection_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    source: SourceKind = "stripe"
    ledger: LedgerKind = "quickbooks"
    tenant_id: str  # QBO realmId, Xero tenant id, FreshBooks account id
    mapping_version: int = 1
    customer_policy: CustomerPolicy = CustomerPolicy.AUTO_CREATE
    # Used for a line with no product (a one-off Stripe invoice item), when set.
    default_item_id: str | None = None
    default_account: str | None = None  # Xero: account code of lines with no product
    # Tax code for lines with no tax (QBO US: "NON"; non-US companies: the exempt code's id).
    no_tax_code: str = "NON"
    # Where received money lands: a Xero bank or clearing account code (required for Xero
    # payments); QBO defaults to Undeposited Funds when unset.
    payment_account: str | None = None
    # Refunds not carried by a credit note take revenue back on this item (QBO item id,
    # FreshBooks item name, Xero item code) or, for Xero, this revenue account code.
    refund_item_id: str | None = None
    refund_account: str | None = None
    # The account refunded money leaves from (QBO: a bank account id; Xero: a bank account code);
    # unset, payment_account.
    refund_from_account: str | None = None
    # Reserved: the account a rounding adjustment line would post to. Mapping files carry it and
    # ``mappings check`` checks it, but push adds no rounding line yet (it sends the source's tax).
    rounding_account: str | None = None
    # Payments back (issue 7): payments made in the ledger are mirrored to Stripe, except those
    # made before ``payments_back_since`` (when set). Off unless an operator turns it on.
    payments_back: bool = False
    payments_back_since: AwareDatetime | None = None
    # Payouts as bank deposits (issue 7): each Stripe payout becomes one deposit equal to the bank
    # line. The bank account it lands in (QBO account id, Xero bank account code; FreshBooks has
    # none), the accounts its fees, adjustments (disputes, reversals) and unmatched money post to
    # (FreshBooks: the fees' expense category id), and Xero's "Stripe" supplier contact.
    payout_deposits: bool = False
    payout_bank_account: str | None = None
    payout_fee_account: str | None = None
    payout_adjustment_account: str | None = None
    payout_unmatched_account: str | None = None
    payout_contact_id: str | None = None
    active: bool = True


class Mappings(BaseModel):
    """All rules of one connection at one version, indexed for lookups."""

    model_config = ConfigDict(frozen=True)

    connection: Connection
    rules: tuple[MappingRule, ...] = ()
    _index: dict[tuple[RuleKind, str], MappingRule] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object, /) -> None:
        self._index.update({(rule.kind, rule.source_value): rule for rule in self.rules})

    def lookup(self, kind: RuleKind, source_value: str) -> MappingRule | None:
        return self._index.get((kind, source_value))

    def of_kind(self, kind: RuleKind) -> tuple[MappingRule, ...]:
        return tuple(rule for rule in self.rules if rule.kind is kind)


class MappingVersion(BaseModel):
    """The record of one imported mapping version: who, when, from which file, what changed."""

    model_config = ConfigDict(frozen=True)

    version: int
    at: str  # ISO 8601, UTC
    actor: str
    file: str
    file_sha256: str
    counts: dict[str, int]  # rules per section in the imported file
    changes: dict[str, int]  # added / changed / removed rules, changed settings
    # The imported document (gzip of its canonical YAML), when small enough to keep in the item.
    snapshot: bytes | None = None
