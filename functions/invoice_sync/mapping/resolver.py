"""Turns a source invoice into a ledger draft through one connection's mapping rules.

Every missing rule is reported at once, by name, so an operator fixes a parked invoice in one
pass instead of one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoice_sync.errors import InvalidSnapshot, MappingMissing
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft, marker
from invoice_sync.models.documents import Billed, Invoice
from invoice_sync.models.mapping import CustomerPolicy, MappingRule, Mappings, RuleKind


@dataclass(frozen=True)
class Resolved:
    """A draft whose customer may still need finding or creating in the ledger."""

    draft: InvoiceDraft
    customer_id: str | None  # None: auto-create policy and no rule yet


def check_totals(invoice: Billed) -> None:
    """The snapshot must add up before anything reaches the books."""
    lines = sum(line.amount for line in invoice.lines)
    expected = invoice.subtotal - invoice.discount + invoice.exclusive_tax
    problems = []
    if lines != invoice.subtotal:
        problems.append(
            f"lines sum to {invoice.money(lines)} but subtotal is {invoice.money(invoice.subtotal)}"
        )
    if expected != invoice.total:
        problems.append(
            f"subtotal - discount + tax = {invoice.money(expected)}"
            f" but total is {invoice.money(invoice.total)}"
        )
    if problems:
        raise InvalidSnapshot("totals do not add up", "; ".join(problems))


def _currency(currency: str, mappings: Mappings, missing: dict[str, str]) -> str:
    """The ledger's code for the invoice's currency. A connection that maps currencies accepts only
    those: an invoice in another currency waits for a rule instead of reaching a ledger company
    that may not hold it. One without currency rules accepts every currency as it is."""
    accepted = mappings.of_kind(RuleKind.CURRENCY)
    if not accepted:
        return currency
    rule = mappings.lookup(RuleKind.CURRENCY, currency)
    if rule is None:
        known = ", ".join(sorted(r.source_value for r in accepted))
        missing["currency"] = f"currency {currency} (the connection accepts {known})"
        return currency
    return rule.ledger_id.upper()


def resolve(invoice: Billed, mappings: Mappings, customer_rule: MappingRule | None = None) -> Resolved:
    connection = mappings.connection
    # Keyed by what is missing, so a product on five lines is reported once.
    missing: dict[str, str] = {}
    lines: list[LineDraft] = []
    if not invoice.lines:
        raise InvalidSnapshot("invoice has no lines")
    if not invoice.lines_complete:
        raise InvalidSnapshot("invoice lines incomplete", "the webhook carried only the first page of lines")
    needs_account = connection.ledger == "xero"
    for line in invoice.lines:
        item_id: str | None = None
        account: str | None = None
        if line.product_id:
            rule = mappings.lookup(RuleKind.PRODUCT, line.product_id)
            item_id, account = (rule.ledger_id, rule.ledger_account) if rule else (None, None)
            if item_id is None:
                missing.setdefault(
                    f"product:{line.product_id}", f"product {line.product_id} ({line.description})"
                )
            elif needs_account and not account:
                missing.setdefault(
                    f"account:{line.product_id}",
                    f"product {line.product_id} ({line.description}): no revenue account code",
                )
        elif connection.default_item_id is not None and (connection.default_account or not needs_account):
            item_id, account = connection.default_item_id, connection.default_account
        else:
            missing.setdefault(
                "default-item", f"line without product ({line.description}): set a default item"
            )
        tax_code = connection.no_tax_code
        rates = sorted({t.rate_id for t in line.taxes})
        if rates:
            # One tax code per ledger line: several rates on a line need a combined code, mapped
            # under the rates' ids joined by "+".
            key = "+".join(rates)
            rule = mappings.lookup(RuleKind.TAX_RATE, key)
            if rule is None:
                missing.setdefault(f"tax:{key}", f"tax rate {key}")
            else:
                tax_code = rule.ledger_id
        inclusive = sum(t.amount for t in line.taxes if t.inclusive)
        if item_id is not None:
            lines.append(
                LineDraft(
                    item_id=item_id,
                    description=line.description,
                    quantity=line.quantity or 1,
                    # Inclusive taxes are taken out of the line so the ledger sees net amounts
                    # and one tax figure; the document total is unchanged.
                    amount=invoice.money(line.amount - inclusive).to_decimal(),
                    tax_code=tax_code,
                    discount=invoice.money(line.discount).to_decimal(),
                    tax=invoice.money(sum(t.amount for t in line.taxes)).to_decimal(),
                    account=account,
                )
            )
    currency = _currency(invoice.currency, mappings, missing)
    customer_id: str | None = None
    if customer_rule:
        customer_id = customer_rule.ledger_id
    elif connection.customer_policy is CustomerPolicy.REQUIRE_MAPPING:
        missing["customer"] = f"customer {invoice.customer.source_id} ({invoice.customer.display_name})"
    if missing:
        raise MappingMissing(list(missing.values()))
    all_tax = sum(t.amount for line in invoice.lines for t in line.taxes)
    draft = InvoiceDraft(
        source_id=invoice.source_id,
        customer_id=customer_id or "",
        number=invoice.number,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on if isinstance(invoice, Invoice) else None,
        currency=currency,
        lines=tuple(lines),
        discount=invoice.money(invoice.discount).to_decimal(),
        tax=invoice.money(all_tax).to_decimal(),
        total=invoice.money(invoice.total).to_decimal(),
        memo=invoice.memo,
        private_note=marker(invoice.source, invoice.source_id),
    )
    return Resolved(draft=draft, customer_id=customer_id)
