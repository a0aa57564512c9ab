"""``invoice-sync try FILE|in_...``: one invoice through the full mapping, before anything is sent.

It prints what push would send for that invoice (the very payload: built by the payload function
the connection's ledger adapter calls), every mapping rule still missing, how the customer would
be resolved, and the totals the ledger will show beside the source's, with the difference. With
``--push`` it then sends it, through the same push use case the Lambda runs (sync record, intent,
idempotency key), and reports the ledger document; pushing the same invoice again creates nothing.

Exit status: 0 ready (or pushed); 1 failed (bad file, unknown invoice or connection, Stripe or the
ledger unreachable); 2 usage; 3 mapping rules missing; 4 the ledger would not take it as it is
(totals that do not add up, a draft or unnumbered invoice, a payload the ledger cannot copy
exactly, a ledger total that differs from the source's), or push parked it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from invoice_sync.errors import InvalidPayload, InvalidSnapshot, LedgerValidation, MappingMissing
from invoice_sync.ledgers.freshbooks import payloads as freshbooks
from invoice_sync.ledgers.port import InvoiceDraft, LedgerPort
from invoice_sync.ledgers.quickbooks import payloads as quickbooks
from invoice_sync.ledgers.xero import payloads as xero
from invoice_sync.mapping.resolver import check_totals, resolve
from invoice_sync.models.documents import Invoice, InvoiceStatus
from invoice_sync.models.mapping import CustomerPolicy, LedgerKind, MappingRule, Mappings
from invoice_sync.sources import SOURCES
from invoice_sync.sources.stripe import parse_invoice
from invoice_sync.sources.stripe_api import StripeApiError
from invoice_sync.sync.push import Outcome, find_customer
from invoice_sync_ops.commands import COMMON, CliError, Context
from invoice_sync_ops.stripe_import import (
    archive,
    archived_message,
    push_service,
    stripe_client,
    synthetic_event,
)

LEDGERS: tuple[LedgerKind, ...] = ("quickbooks", "xero", "freshbooks")
TITLES = {"quickbooks": "QuickBooks Online", "xero": "Xero", "freshbooks": "FreshBooks"}
EXIT_UNMAPPED = 3
EXIT_NOT_READY = 4
INVOICE_ID = re.compile(r"^in_[A-Za-z0-9]+$")
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# What the payload's CustomerRef / Contact / customerid holds when push would create the customer
# first: its id is the ledger's to give.
NEW_CUSTOMER = "<new customer>"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "try",
        parents=[COMMON],
        help="map one invoice and show the exact ledger payload and totals (--push: send it)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "invoice",
        metavar="FILE|STRIPE_INVOICE_ID",
        help="a JSON file (a Stripe invoice, a Stripe invoice.* event, a generic invoice event) "
        "or a Stripe invoice id (in_...), read from Stripe's API",
    )
    parser.add_argument(
        "--ledger",
        choices=LEDGERS,
        help="the ledger to build the payload for (default: the connection's); another ledger "
        "only shows the payload, built from the connection's own rules",
    )
    parser.add_argument("--push", action="store_true", help="send it to the ledger through push")
    parser.add_argument(
        "--stripe-key", help="Stripe secret key (default: STRIPE_API_KEY, then Secrets Manager)"
    )
    parser.set_defaults(func=run)


# --- what the ledger will show ------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal  # before discounts, tax excluded
    discount: Decimal
    tax: Decimal
    total: Decimal

    def as_json(self) -> dict[str, str]:
        return {name: format(getattr(self, name), "f") for name in ("subtotal", "discount", "tax", "total")}


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value if not isinstance(value, dict) else value.get("amount")))
    except InvalidOperation:
        return Decimal(0)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def quickbooks_totals(payload: dict[str, Any]) -> Totals:
    """QBO: the item lines, less the discount line, plus ``TxnTaxDetail.TotalTax`` (an explicit
    total tax overrides QBO's own per-line computation)."""
    lines = payload.get("Line") or []
    subtotal = sum(
        (_dec(line["Amount"]) for line in lines if line.get("DetailType") == "SalesItemLineDetail"),
        Decimal(0),
    )
    discount = sum(
        (_dec(line["Amount"]) for line in lines if line.get("DetailType") == "DiscountLineDetail"), Decimal(0)
    )
    tax = _dec((payload.get("TxnTaxDetail") or {}).get("TotalTax", 0))
    return Totals(subtotal, discount, tax, subtotal - discount + tax)


def xero_totals(body: dict[str, Any]) -> Totals:
    """Xero: each line's ``LineAmount`` (after its discount), the lines' ``TaxAmount`` added on top
    for ``Exclusive`` amounts, already inside them for ``Inclusive``, none for ``NoTax``."""
    kind = body.get("LineAmountTypes", "Exclusive")
    net = discount = tax = Decimal(0)
    for item in body.get("LineItems") or []:
        line_discount = _dec(item.get("DiscountAmount", 0))
        amount = (
            _dec(item["LineAmount"])
            if "LineAmount" in item
            else _cents(_dec(item.get("Quantity", 1)) * _dec(item.get("UnitAmount", 0))) - line_discount
        )
        net += amount
        discount += line_discount
        tax += _dec(item.get("TaxAmount", 0)) if kind != "NoTax" else Decimal(0)
    if kind == "Inclusive":
        return Totals(net + discount - tax, discount, tax, net)
    return Totals(net + discount, discount, tax, net + tax)


def freshbooks_totals(body: dict[str, Any]) -> Totals:
    """FreshBooks: ``qty * unit_cost`` per line, one invoice discount percent taken before tax, and
    each line's tax percents applied to its discounted amount, rounded half up to the cent."""
    percent = _dec(body.get("discount_value") or 0)
    subtotal = tax = Decimal(0)
    for line in body.get("lines") or []:
        amount = _cents(_dec(line.get("qty", 1)) * _dec(line.get("unit_cost", 0)))
        subtotal += amount
        taxable = amount * (1 - percent / HUNDRED)
        for slot in ("taxAmount1", "taxAmount2"):
            if line.get(slot):
                tax += _cents(taxable * _dec(line[slot]) / HUNDRED)
    discount = _cents(subtotal * percent / HUNDRED)
    return Totals(subtotal, discount, tax, subtotal - discount + tax)


BUILDERS: dict[str, Callable[[InvoiceDraft], dict[str, Any]]] = {
    # The functions the adapters' create_invoice / create_invoices call with the draft.
    "quickbooks": quickbooks.invoice_payload,
    "xero": xero.invoice_body,
    "freshbooks": freshbooks.invoice_body,
}
LEDGER_TOTALS: dict[str, Callable[[dict[str, Any]], Totals]] = {
    "quickbooks": quickbooks_totals,
    "xero": xero_totals,
    "freshbooks": freshbooks_totals,
}
# Where the payload goes in the adapter's request, for people reading it.
REQUESTS = {
    "quickbooks": "POST /v3/company/{realm}/invoice (in /batch: BatchItemRequest[].Invoice)",
    "xero": 'PUT /Invoices {"Invoices": [<payload>, ...]}',
    "freshbooks": 'POST .../invoices/invoices {"invoice": <payload>, with action_mark_as_sent}',
}


def source_totals(invoice: Invoice) -> Totals:
    """The source's figures: Stripe's subtotal (tax-inclusive lines keep their tax in it), its
    discounts, the tax added on top, and the total."""

    def money(minor: int) -> Decimal:
        return invoice.money(minor).to_decimal()

    return Totals(
        money(invoice.subtotal), money(invoice.discount), money(invoice.exclusive_tax), money(invoice.total)
    )


# --- the preview ---------------------------------------------------------------------------------


@dataclass
class Preview:
    invoice: Invoice
    ledger: LedgerKind
    connection_ledger: LedgerKind
    source: Totals
    customer: dict[str, Any]
    unmapped: list[str]
    problems: list[str]
    draft: InvoiceDraft | None = None
    payload: dict[str, Any] | None = None
    ledger_totals: Totals | None = None

    @property
    def difference(self) -> Decimal | None:
        return None if self.ledger_totals is None else self.ledger_totals.total - self.source.total

    @property
    def exit_code(self) -> int:
        if self.unmapped:
            return EXIT_UNMAPPED
        return EXIT_NOT_READY if self.problems else 0


def _customer(
    invoice: Invoice, mappings: Mappings, rule: MappingRule | None, ledger: LedgerPort | None
) -> tuple[dict[str, Any], str]:
    """How push would pick the ledger customer (a rule; else found by name or created), looked up
    read-only; and the id the payload carries."""
    source_id, name = invoice.customer.source_id, invoice.customer.display_name
    info: dict[str, Any] = {"source_id": source_id, "name": name, "ledger_id": None, "ledger_name": None}
    if rule is not None:
        return {**info, "resolution": "rule", "ledger_id": rule.ledger_id}, rule.ledger_id
    if mappings.connection.customer_policy is CustomerPolicy.REQUIRE_MAPPING:
        return {**info, "resolution": "mapping required"}, NEW_CUSTOMER
    if ledger is None:
        return {
            **info,
            "resolution": "found by name or created (not looked up: another ledger)",
        }, NEW_CUSTOMER
    found, name = find_customer(invoice, ledger)  # push's own lookup, which only reads
    if found is None:
        return {**info, "resolution": "created by name", "ledger_name": name}, NEW_CUSTOMER
    return {**info, "resolution": "found by name", "ledger_id": found.id, "ledger_name": found.name}, found.id


def preview(
    invoice: Invoice,
    mappings: Mappings,
    *,
    ledger: LedgerKind | None = None,
    customer_rule: MappingRule | None = None,
    adapter: LedgerPort | None = None,
) -> Preview:
    """Maps ``invoice`` as push would and builds the payload for ``ledger`` (default: the
    connection's). ``adapter`` (the connection's ledger) is used only to look the customer up."""
    connection_ledger = mappings.connection.ledger
    kind = ledger or connection_ledger
    if kind != connection_ledger:
        # Another ledger: the connection's rules, read as that ledger reads them (Xero, say, asks
        # for an account code on every product rule), and no customer lookup.
        mappings = Mappings(
            connection=mappings.connection.model_copy(update={"ledger": kind}), rules=mappings.rules
        )
        adapter = None
    result = Preview(
        invoice=invoice,
        ledger=kind,
        connection_ledger=connection_ledger,
        source=source_totals(invoice),
        customer={"source_id": invoice.customer.source_id, "name": invoice.customer.display_name},
        unmapped=[],
        problems=[],
    )
    if invoice.status is InvoiceStatus.DRAFT:
        result.problems.append("a draft: push keeps drafts out of the books")
    elif not invoice.number:
        result.problems.append("no invoice number: push needs it to find the ledger copy again")
    try:
        check_totals(invoice)
    except InvalidSnapshot as exc:
        result.problems.append(str(exc))
    try:
        resolved = resolve(invoice, mappings, customer_rule)
    except MappingMissing as exc:
        result.unmapped = list(exc.missing)
        return result
    except InvalidSnapshot as exc:
        result.problems.append(str(exc))
        return result
    result.customer, customer_id = _customer(invoice, mappings, customer_rule, adapter)
    result.draft = replace(resolved.draft, customer_id=resolved.customer_id or customer_id)
    try:
        result.payload = BUILDERS[kind](result.draft)
    except LedgerValidation as exc:
        result.problems.append(f"{TITLES[kind]} would refuse it: {exc}")
        return result
    shown = LEDGER_TOTALS[kind](result.payload)
    # In the currency's own decimals (JPY none, KWD three), as the ledger prints them.
    places = result.source.total
    result.ledger_totals = Totals(
        *(getattr(shown, name).quantize(places) for name in ("subtotal", "discount", "tax", "total"))
    )
    if result.difference:
        result.problems.append(
            f"{TITLES[kind]} would show {result.ledger_totals.total} {invoice.currency}, "
            f"the source {result.source.total}: {result.difference:+} apart"
        )
    return result


# --- reading the invoice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    invoice: Invoice
    source: str  # "stripe" or "generic"
    body: bytes | None  # an event as received (archived as is on --push); None: make one up
    raw_invoice: dict[str, Any] | None  # the Stripe invoice object, when there is one


def load_file(path: Path) -> Loaded:
    """A Stripe invoice object, a Stripe ``invoice.*`` event or a generic invoice event; any other
    content is a ``CliError`` in one line naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise CliError(f"{path}: not JSON ({exc.__class__.__name__}{where})") from None
    if not isinstance(document, dict):
        raise CliError(
            f"{path}: expected a JSON object (a Stripe invoice or event), got a {type(document).__name__}"
        )
    try:
        if document.get("object") == "invoice":
            return Loaded(parse_invoice(document), "stripe", None, document)
        if document.get("object") == "event":
            event_type = str(document.get("type", ""))
            obj = (document.get("data") or {}).get("object") or {}
            if (
                not event_type.startswith("invoice.")
                or not isinstance(obj, dict)
                or obj.get("object") != "invoice"
            ):
                kind = event_type or "untyped"
                raise CliError(f"{path}: a Stripe {kind} event; try takes invoices and invoice.* events")
            handled = SOURCES["stripe"].parse_event(raw) is not None
            return Loaded(parse_invoice(obj), "stripe", raw if handled else None, obj)
        if isinstance((document.get("data") or {}).get("invoice"), dict):
            event = SOURCES["generic"].parse_event(raw)
            if event is None or event.invoice is None:
                raise CliError(f"{path}: a generic {document.get('type')} event; try takes invoice events")
            return Loaded(event.invoice, "generic", raw, None)
    except InvalidPayload as exc:
        raise CliError(f"{path}: not a valid invoice: {exc}") from None
    raise CliError(f"{path}: neither a Stripe invoice, a Stripe invoice.* event nor a generic invoice event")


def load(ctx: Context, args: argparse.Namespace, connection_id: str) -> Loaded:
    name = str(args.invoice)
    if INVOICE_ID.match(name) and not Path(name).exists():
        try:
            obj = stripe_client(ctx, args.stripe_key, connection_id).get_invoice(name)
        except StripeApiError as exc:
            raise CliError(f"Stripe: {exc}") from None
        try:
            return Loaded(parse_invoice(obj), "stripe", None, obj)
        except InvalidPayload as exc:
            raise CliError(f"Stripe invoice {name} is not one invoice-sync can read: {exc}") from None
    return load_file(Path(name))


# --- output --------------------------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    """JSON with Decimals as exact numbers (as the ledger clients send them), indented."""

    def mark(item: Any) -> Any:
        if isinstance(item, Decimal):
            return f"\x00dec:{item:f}\x00"
        if isinstance(item, dict):
            return {k: mark(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [mark(v) for v in item]
        return item

    return re.sub(r'"\\u0000dec:(-?\d+(?:\.\d+)?)\\u0000"', r"\1", json.dumps(mark(value), indent=2))


def document(connection_id: str, result: Preview, pushed: dict[str, Any] | None) -> dict[str, Any]:
    """The ``--json`` document: these keys, always, in this order."""
    invoice = result.invoice
    return {
        "connection": connection_id,
        "ledger": result.ledger,
        "invoice": {"source_id": invoice.source_id, "number": invoice.number, "status": invoice.status.value},
        "source": {"currency": invoice.currency, **result.source.as_json()},
        "ledger_totals": result.ledger_totals.as_json() if result.ledger_totals else None,
        "difference": format(result.difference, "f") if result.difference is not None else None,
        "unmapped": result.unmapped,
        "problems": result.problems,
        "customer": result.customer,
        "payload": result.payload,
        "pushed": pushed,
    }


def show(ctx: Context, connection_id: str, result: Preview, pushed: dict[str, Any] | None) -> None:
    invoice = result.invoice
    title = f"try {invoice.number or '(no number)'} ({invoice.source_id}) → {TITLES[result.ledger]}"
    totals = Table(title="Totals", show_edge=False)
    for column in ("", f"source ({invoice.currency})", TITLES[result.ledger], "difference"):
        totals.add_column(column, justify="right")
    for name in ("subtotal", "discount", "tax", "total"):
        source = getattr(result.source, name)
        ledger = getattr(result.ledger_totals, name) if result.ledger_totals else None
        difference = "" if ledger is None else ("0" if ledger == source else f"{ledger - source:+}")
        totals.add_row(name, str(source), "" if ledger is None else str(ledger), difference)
    ctx.console.print(Panel(totals, title=title, subtitle=f"connection {connection_id}", expand=False))
    customer = result.customer
    resolution = customer.get("resolution", "not resolved")
    target = customer.get("ledger_id") or customer.get("ledger_name") or ""
    ctx.console.print(
        f"customer {customer['name']} ({customer['source_id']}): {resolution} {target}".rstrip(),
        markup=False,
        highlight=False,
    )
    if result.unmapped:
        ctx.console.print(f"[red]unmapped ({len(result.unmapped)})[/], so push would park it:")
        for missing in result.unmapped:
            ctx.console.print(f"  - {missing}", markup=False, highlight=False)
    for problem in result.problems:
        ctx.console.print(f"[yellow]problem[/]: {problem}", highlight=False)
    if result.payload is not None:
        ctx.console.print(f"payload ({REQUESTS[result.ledger]}):", markup=False, highlight=False)
        ctx.console.print(Syntax(_json_text(result.payload), "json", word_wrap=True, theme="ansi_dark"))
    if pushed is not None:
        ctx.console.print(
            f"pushed: {pushed['outcome']}; ledger document {pushed.get('ledger_id') or '-'} "
            f"number {pushed.get('number') or '-'} total {pushed.get('total') or '-'}"
            + (f" ({pushed['reason']})" if pushed.get("reason") else ""),
            markup=False,
            highlight=False,
        )


# --- running it ------------------------------------------------------------------------------------------


def _push(ctx: Context, connection_id: str, loaded: Loaded, adapter: LedgerPort) -> dict[str, Any]:
    """One invoice through the push use case (exactly-once path), archived first as intake does."""
    if loaded.body is not None:
        body = loaded.body
    else:
        assert loaded.raw_invoice is not None
        _, body = synthetic_event(loaded.raw_invoice)
    message = archived_message(archive(ctx), connection_id, loaded.source, body)
    assert message is not None  # a handled event, or one made up for the invoice's status
    service = push_service(ctx)
    # Through handle_batch, as the push Lambda runs it: one invoice is a batch of one.
    (result,) = service.handle_batch([message])
    if isinstance(result, Exception):
        raise result
    pushed: dict[str, Any] = {
        "outcome": result.outcome.value,
        "ledger_id": result.ledger_id,
        "number": None,
        "total": None,
        "reason": result.reason,
    }
    if result.ledger_id and result.outcome in (Outcome.SYNCED, Outcome.UNCHANGED, Outcome.STALE):
        held = adapter.get_invoice(result.ledger_id)
        pushed.update(number=held.number, total=format(held.total, "f"))
    return pushed


def run(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    mappings = ctx.connection_mappings(connection_id)
    connection_ledger = mappings.connection.ledger
    if args.push and args.ledger and args.ledger != connection_ledger:
        raise CliError(
            f"--push sends to the connection's ledger ({connection_ledger}): drop --ledger {args.ledger}", 2
        )
    loaded = load(ctx, args, connection_id)
    invoice = loaded.invoice
    same_ledger = (args.ledger or connection_ledger) == connection_ledger
    adapter = ctx.ledger(connection_id) if same_ledger else None
    result = preview(
        invoice,
        mappings,
        ledger=args.ledger,
        customer_rule=ctx.mappings.customer_rule(connection_id, invoice.customer.source_id),
        adapter=adapter,
    )
    pushed: dict[str, Any] | None = None
    code = result.exit_code
    if args.push and code == 0:
        assert adapter is not None
        pushed = _push(ctx, connection_id, loaded, adapter)
        if pushed["outcome"] == Outcome.PARKED.value:
            code = EXIT_UNMAPPED if "mapping" in str(pushed["reason"]) else EXIT_NOT_READY
    elif args.push:
        ctx.say("not pushed: fix what is listed first")
    if ctx.json:
        print(_json_text(document(connection_id, result, pushed)))
    else:
        show(ctx, connection_id, result, pushed)
    return code
