"""Xero webhook bodies -> ``LedgerEvent``s. Pure.

A delivery is ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``
(``shared/specs/xero/xero-webhooks.yaml``). An Intent-to-Receive post is the same object with
``events: []`` (and sequences of 0): it yields no event, and its 200 is the handshake. INVOICE
events become ``kind="invoice"`` (the fast path: the worker reads the invoice's payments) and
CREDITNOTE events ``kind="credit_note"``; CONTACT and SUBSCRIPTION events are dropped. Xero has no
payment category, so payments come from the poll (design 3.3).

``event_id`` is ``"{firstEventSequence}:{i}"``, ``i`` the event's index in the body (dropped events
count), so a redelivery of the same body names its events the same way.
"""

from __future__ import annotations

from typing import Any

from invoice_sync.ledgers.webhooks import (
    LedgerEvent,
    LedgerEventKind,
    UnparseableWebhook,
    events_list,
    load_json,
    obj,
    text,
    timestamp,
)

KINDS: dict[str, LedgerEventKind] = {"INVOICE": "invoice", "CREDITNOTE": "credit_note"}
MAX_SEQUENCE = 2_147_483_647  # the spec's maximum


def parse(body: bytes) -> list[LedgerEvent]:
    """The INVOICE and CREDITNOTE events of a verified Xero webhook body, in body order."""
    document = obj(load_json(body), "body")
    if "events" not in document:
        raise UnparseableWebhook("events: missing (not a Xero webhook body)")
    events = events_list(document["events"], "events")
    first = _sequence(document.get("firstEventSequence"), "firstEventSequence")
    _sequence(document.get("lastEventSequence"), "lastEventSequence")
    if not isinstance(document.get("entropy"), str):
        raise UnparseableWebhook("entropy: expected a string")
    found: list[LedgerEvent] = []
    for i, raw in enumerate(events):
        where = f"events[{i}]"
        event = obj(raw, where)
        kind = KINDS.get(text(event.get("eventCategory"), f"{where}.eventCategory"))
        if kind is None:
            continue
        found.append(
            LedgerEvent(
                tenant_id=text(event.get("tenantId"), f"{where}.tenantId"),
                kind=kind,
                object_id=text(event.get("resourceId"), f"{where}.resourceId"),
                operation=text(event.get("eventType"), f"{where}.eventType").lower(),
                changed_at=timestamp(event.get("eventDateUtc")),
                event_id=f"{first}:{i}",
            )
        )
    return found


def _sequence(value: Any, where: str) -> int:
    # bool is an int to Python, not to JSON; 0 is what an Intent-to-Receive post sends.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        raise UnparseableWebhook(f"{where}: expected an integer from 0 to {MAX_SEQUENCE}")
    return value
