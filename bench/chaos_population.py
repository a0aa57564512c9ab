"""The chaos run's population: generated Stripe documents and the signed webhooks that carry them.

Invoices come from the Stripe stand-in's generator (``sandboxes.stripe.generate_invoices``: one or
two mapped lines, 8.25 % tax, three customers), so they map with the local stack's rules. Each is
finalized; most are then paid (the payment as the current API shape lists it, with its payment
intent, so a refund of it can find the invoice); some of the paid ones then get a credit note
(post-payment, to the customer's balance, shaped as ``tests/events/stripe/f1``) or a partial or
full refund (``charge.refunded``, shaped as ``g1``). What the ledger should hold for each source
document is kept beside it: its source id (the id the adapters' marker carries) and its amount.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cost import envelope  # the cost bench's Stripe event, pretty-printed as Stripe sends it
from invoice_sync_ops.sandboxes.stripe import generate_invoices

# The shares of invoices that stay open, are paid, are paid then credited, are paid then refunded.
MIX = (("open", 0.10), ("paid", 0.60), ("credited", 0.15), ("refunded", 0.15))
# Seconds between an invoice's finalization, its payment and its credit note or refund.
STEP = 600


@dataclass(frozen=True)
class Expected:
    """One source document and what its ledger copy must say."""

    kind: str  # invoice, payment, credit_note, refund
    source_id: str  # what the adapters' marker names
    amount: int  # minor units (USD cents)
    number: str  # the invoice's number, for people reading a difference


@dataclass(frozen=True)
class Webhook:
    event_id: str
    event_type: str
    body: bytes


@dataclass
class Population:
    documents: list[Expected] = field(default_factory=list)
    webhooks: list[Webhook] = field(default_factory=list)
    stories: dict[str, int] = field(default_factory=dict)  # by kind of story

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for document in self.documents:
            counts[document.kind] = counts.get(document.kind, 0) + 1
        return counts


def _paid(invoice: dict[str, Any], serial: str, at: int) -> dict[str, Any]:
    paid = copy.deepcopy(invoice)
    total = int(paid["total"])
    paid.update(status="paid", amount_paid=total, amount_remaining=0, attempted=True)
    paid["status_transitions"]["paid_at"] = at
    paid["payments"] = {
        "object": "list",
        "data": [
            {
                "id": f"inpay_1Chaos{serial}",
                "object": "invoice_payment",
                "amount_paid": total,
                "amount_requested": total,
                "created": at,
                "currency": "usd",
                "invoice": paid["id"],
                "is_default": True,
                "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": f"pi_3Chaos{serial}"},
                "status": "paid",
                "status_transitions": {"canceled_at": None, "paid_at": at},
            }
        ],
        "has_more": False,
        "total_count": 1,
        "url": "/v1/invoice_payments",
    }
    return paid


def _credit_note(invoice: dict[str, Any], serial: str, at: int) -> dict[str, Any]:
    """A post-payment credit note for the invoice's first line, put on the customer's balance."""
    line = invoice["lines"]["data"][0]
    tax = int(line["taxes"][0]["amount"])
    amount = int(line["amount"])
    total = amount + tax
    taxes = [{**line["taxes"][0], "amount": tax, "taxable_amount": amount}]
    return {
        "id": f"cn_1Chaos{serial}",
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": at,
        "currency": "usd",
        "customer": invoice["customer"],
        "customer_balance_transaction": f"cbtxn_1Chaos{serial}",
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": at,
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"cnli_1Chaos{serial}",
                    "object": "credit_note_line_item",
                    "amount": amount,
                    "description": line["description"],
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "invoice_line_item": line["id"],
                    "livemode": False,
                    "metadata": {},
                    "pretax_credit_amounts": [],
                    "quantity": line["quantity"],
                    "tax_rates": [],
                    "taxes": taxes,
                    "type": "invoice_line_item",
                    "unit_amount": amount // int(line["quantity"]),
                    "unit_amount_decimal": str(amount // int(line["quantity"])),
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/credit_notes/cn_1Chaos{serial}/lines",
        },
        "livemode": False,
        "memo": "Goodwill credit for a late delivery",
        "metadata": {},
        "number": f"{invoice['number']}-CN-01",
        "out_of_band_amount": None,
        "post_payment_amount": total,
        "pre_payment_amount": 0,
        "pretax_credit_amounts": [],
        "reason": "order_change",
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "total": total,
        "total_excluding_tax": amount,
        "total_taxes": taxes,
        "type": "post_payment",
        "voided_at": None,
    }


def _refunded_charge(invoice: dict[str, Any], serial: str, refunded: int, at: int) -> dict[str, Any]:
    total = int(invoice["total"])
    charge = f"ch_3Chaos{serial}"
    return {
        "id": charge,
        "object": "charge",
        "amount": total,
        "amount_captured": total,
        "amount_refunded": refunded,
        "balance_transaction": f"txn_3Chaos{serial}",
        "billing_details": {"email": invoice["customer_email"], "name": invoice["customer_name"]},
        "captured": True,
        "created": at - STEP,
        "currency": "usd",
        "customer": invoice["customer"],
        "description": f"Payment for invoice {invoice['number']}",
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": f"pi_3Chaos{serial}",
        "payment_method": f"pm_1Chaos{serial}",
        "refunded": refunded == total,
        "refunds": {
            "object": "list",
            "data": [
                {
                    "id": f"re_3Chaos{serial}",
                    "object": "refund",
                    "amount": refunded,
                    "charge": charge,
                    "created": at,
                    "currency": "usd",
                    "payment_intent": f"pi_3Chaos{serial}",
                    "reason": "requested_by_customer",
                    "status": "succeeded",
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/charges/{charge}/refunds",
        },
        "status": "succeeded",
    }


def _stories(rng: random.Random) -> Iterator[str]:
    kinds, weights = zip(*MIX, strict=True)
    while True:
        yield rng.choices(kinds, weights)[0]


def generate(documents: int, *, seed: int, start: int) -> Population:
    """Stories of invoices until ``documents`` source documents exist (an open invoice is one
    document; a paid one two, its payment the second; a credited or refunded one three)."""
    rng = random.Random(seed)
    population = Population()
    # Enough invoices for the worst case (every story an open invoice); only the used ones matter.
    invoices = generate_invoices(
        documents, start=start, step_seconds=1, prefix="CHAOS", id_prefix="in_1Chaos", statuses=("open",)
    )
    stories = _stories(rng)
    for index, invoice in enumerate(invoices):
        left = documents - len(population.documents)
        if left <= 0:
            break
        story = next(stories)
        if left == 1:
            story = "open"
        elif left == 2 and story in ("credited", "refunded"):
            story = "paid"
        population.stories[story] = population.stories.get(story, 0) + 1
        serial = f"{index + 1:06d}"
        number = str(invoice["number"])
        created = int(invoice["created"])
        event = f"evt_1Chaos{serial}"
        population.documents.append(Expected("invoice", invoice["id"], int(invoice["total"]), number))
        population.webhooks.append(
            Webhook(
                f"{event}Fin",
                "invoice.finalized",
                envelope(f"{event}Fin", "invoice.finalized", invoice, created),
            )
        )
        if story == "open":
            continue
        paid = _paid(invoice, serial, created + STEP)
        population.documents.append(Expected("payment", f"inpay_1Chaos{serial}", int(paid["total"]), number))
        population.webhooks.append(
            Webhook(
                f"{event}Paid", "invoice.paid", envelope(f"{event}Paid", "invoice.paid", paid, created + STEP)
            )
        )
        at = created + 2 * STEP
        if story == "credited":
            note = _credit_note(invoice, serial, at)
            population.documents.append(Expected("credit_note", note["id"], int(note["total"]), number))
            population.webhooks.append(
                Webhook(
                    f"{event}Cn",
                    "credit_note.created",
                    envelope(f"{event}Cn", "credit_note.created", note, at),
                )
            )
        elif story == "refunded":
            total = int(invoice["total"])
            # A third of the refunds give everything back; the others a part, to the cent.
            refunded = total if rng.random() < 1 / 3 else rng.randint(100, total - 1)
            charge = _refunded_charge(invoice, serial, refunded, at)
            population.documents.append(
                Expected("refund", f"{charge['id']}:refunded:{refunded}", refunded, number)
            )
            population.webhooks.append(
                Webhook(
                    f"{event}Ref", "charge.refunded", envelope(f"{event}Ref", "charge.refunded", charge, at)
                )
            )
    return population


def deliveries(population: Population, *, duplicates: int, shuffle: bool, seed: int) -> list[Webhook]:
    """Each webhook 1 to ``duplicates`` times (Stripe delivers at least once), in the order the
    documents happened, or all shuffled (Stripe does not promise an order)."""
    rng = random.Random(seed + 1)
    out: list[Webhook] = []
    for webhook in population.webhooks:
        out.extend([webhook] * rng.randint(1, max(1, duplicates)))
    if shuffle:
        rng.shuffle(out)
    return out
