"""Checks a connection's mapping against the ledger's chart: every rule and setting that points at
an item, account or tax code that does not exist, is inactive, or cannot be used where push uses it.

Pure: the mapping and the chart in, the problems out (``mappings check`` prints them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from invoice_sync.ledgers.port import Chart, ChartEntry
from invoice_sync.models.mapping import Connection, LedgerKind, MappingRule, RuleKind

Need = Literal["item", "tax code", "revenue account", "money account", "account"]
NOT_CHECKED = ("customer", "currency")  # the chart holds neither customers nor currencies


@dataclass(frozen=True)
class Problem:
    kind: str  # a rule kind, or "setting"
    source_value: str  # the rule's source value, or the setting's name
    ledger_id: str
    problem: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


# Settings, what each must point at, and whether the ledger needs it set.
SETTINGS: tuple[tuple[str, Need], ...] = (
    ("default_item_id", "item"),
    ("default_account", "revenue account"),
    ("no_tax_code", "tax code"),
    ("payment_account", "money account"),
    ("refund_item_id", "item"),
    ("refund_account", "revenue account"),
    ("refund_from_account", "money account"),
    ("rounding_account", "account"),
)


def _find(chart: Chart, need: Need) -> tuple[dict[str, ChartEntry], str] | None:
    if need == "item":
        return {e.id: e for e in chart.items}, "item"
    if need == "tax code":
        return {e.id: e for e in chart.tax_codes}, "tax code"
    if chart.accounts is None:
        return None
    return {e.id: e for e in chart.accounts}, "account"


def _problem(chart: Chart, ledger: LedgerKind, need: Need, ledger_id: str) -> str | None:
    found = _find(chart, need)
    if found is None:
        return f"{ledger} has no chart of accounts to post to: this account is not used"
    entries, noun = found
    entry = entries.get(ledger_id)
    if entry is None:
        return f"no {noun} {ledger_id} in the ledger"
    label = f"{noun} {ledger_id} ({entry.name})"
    if not entry.active:
        return f"{label} is inactive"
    if need in {"item", "tax code"} and not entry.sales:
        return f"{label} cannot be used on sales"
    if need == "revenue account" and not entry.sales:
        return f"{label} is {entry.type or 'not revenue'}: not a revenue account"
    if need == "money account" and not entry.payments:
        return f"{label} is {entry.type or 'not a bank account'}: payments cannot be made to or from it"
    return None


def check(connection: Connection, rules: Iterable[MappingRule], chart: Chart) -> tuple[list[Problem], int]:
    """The problems, and how many rules and settings were checked."""
    ledger = connection.ledger
    problems: list[Problem] = []
    checked = 0
    for rule in sorted(rules, key=lambda r: (r.kind.value, r.source_value)):
        needs: list[tuple[Need, str]] = []
        if rule.kind is RuleKind.PRODUCT:
            if rule.ledger_id:
                needs.append(("item", rule.ledger_id))
            if rule.ledger_account:
                needs.append(("revenue account", rule.ledger_account))
            elif ledger == "xero":
                problems.append(
                    Problem(
                        rule.kind.value, rule.source_value, rule.ledger_id, "no revenue account code (Xero)"
                    )
                )
        elif rule.kind is RuleKind.TAX_RATE:
            needs.append(("tax code", rule.ledger_id))
        else:
            continue
        checked += 1
        for need, ledger_id in needs:
            text = _problem(chart, ledger, need, ledger_id)
            if text is not None:
                problems.append(Problem(rule.kind.value, rule.source_value, ledger_id, text))
    for name, need in SETTINGS:
        value = getattr(connection, name)
        if not value:
            if ledger == "xero" and name == "payment_account":
                problems.append(
                    Problem("setting", name, "", "not set: Xero payments need a bank account code")
                )
            continue
        checked += 1
        text = _problem(chart, ledger, need, value)
        if text is not None:
            problems.append(Problem("setting", name, value, text))
    payout_problems, payout_checked = check_payouts(connection, chart)
    return problems + payout_problems, checked + payout_checked


# Payout settings and what each must point at in QuickBooks and Xero (FreshBooks books only the fee
# expense, whose category is not in a chart of accounts).
PAYOUT_SETTINGS: tuple[tuple[str, Need, bool], ...] = (
    ("payout_bank_account", "money account", True),
    ("payout_fee_account", "account", True),
    ("payout_unmatched_account", "account", True),
    ("payout_adjustment_account", "account", False),
)


def check_payouts(connection: Connection, chart: Chart) -> tuple[list[Problem], int]:
    """What payouts as deposits need when they are on (design two-way 3.8): the accounts a deposit
    posts to, and payments and refunds that land in and leave from the account the deposit empties
    (QuickBooks: Undeposited Funds; Xero: the clearing account ``payment_account``). Otherwise no
    deposit can equal the bank line."""
    if not connection.payout_deposits:
        return [], 0
    ledger = connection.ledger
    problems: list[Problem] = []
    checked = 0

    def problem(name: str, value: str, text: str) -> None:
        problems.append(Problem("setting", name, value, text))

    if ledger == "freshbooks":
        checked += 1
        if not connection.payout_fee_account:
            problem("payout_fee_account", "", "not set: the expense category Stripe's fees are booked to")
        return problems, checked
    for name, need, required in PAYOUT_SETTINGS:
        value = getattr(connection, name)
        checked += 1
        if not value:
            if required:
                problem(name, "", "not set: payout deposits are on")
            continue
        text = _problem(chart, ledger, need, value)
        if text is not None:
            problem(name, value, text)
    checked += 1
    if ledger == "quickbooks":
        if connection.payment_account:
            problem(
                "payment_account",
                connection.payment_account,
                "must be unset with payout deposits on: payments must land in Undeposited Funds, "
                "which the payout's deposit empties",
            )
        refund_from = connection.refund_from_account
        entries = {e.id: e for e in chart.accounts or ()}
        found = entries.get(refund_from or "")
        if found is None or "undeposited" not in found.name.lower():
            problem(
                "refund_from_account",
                refund_from or "",
                "must be the Undeposited Funds account with payout deposits on: refunds must leave "
                "the money the payout's deposit empties",
            )
    elif ledger == "xero":
        if connection.refund_from_account not in (None, connection.payment_account):
            problem(
                "refund_from_account",
                connection.refund_from_account or "",
                "must be unset or the clearing account (payment_account) with payout deposits on",
            )
        if not connection.payout_contact_id:
            problem(
                "payout_contact_id", "", "not set: Xero's bank transactions need the Stripe supplier contact"
            )
    return problems, checked


def check_payments_back(connection: Connection, *, writer_key: bool, webhook_keys: bool) -> list[Problem]:
    """What payments back needs when it is on (design 3.8): the Stripe writer key, and the ledger's
    webhook key (Xero may go without: its payments are polled). ``writer_key`` and
    ``webhook_keys`` say whether those secrets exist; the caller reads them, this stays pure."""
    if not connection.payments_back:
        return []
    problems: list[Problem] = []
    if not writer_key:
        problems.append(
            Problem(
                "setting",
                "payments_back",
                "",
                "on, but no Stripe writer key is stored (invoice-sync secret stripe-writer)",
            )
        )
    if not webhook_keys and connection.ledger != "xero":
        problems.append(
            Problem(
                "setting",
                "payments_back",
                "",
                f"on, but no {connection.ledger} webhook key is stored (invoice-sync secret ledger-webhook)",
            )
        )
    return problems
