"""QuickBooks Online webhook bodies -> ``LedgerEvent``s. Pure.

Two shapes arrive (design two-way.md 2.2, 3.2):

* legacy: ``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id",
  "operation", "lastUpdated"}]}}]}``;
* CloudEvents 1.0: a JSON array of ``{"specversion", "id", "type": "qbo.<entity>.<verb>.v1", "time",
  "intuitentityid", "intuitaccountid", ...}``.

Payment and CreditMemo changes are kept; every other entity is dropped (an authentic body about an
Invoice is fine, and yields nothing). A body that is neither shape, or has the wrong types where a
kept event needs its fields, raises ``UnparseableWebhook``.
"""

from __future__ import annotations

import re
from typing import Any

from invoice_sync.ledgers.webhooks import (
    MAX_EVENTS,
    LedgerEvent,
    LedgerEventKind,
    UnparseableWebhook,
    events_list,
    load_json,
    obj,
    text,
    timestamp,
)

KINDS: dict[str, LedgerEventKind] = {"payment": "payment", "creditmemo": "credit_note"}
CLOUD_EVENT_TYPE = re.compile(r"qbo\.(payment|creditmemo)\.([a-z]+)\.v\d+")
# CloudEvents name the verb in the past tense; the legacy body (and the message) in the present.
_VERBS = {"created": "create", "updated": "update", "deleted": "delete", "merged": "merge", "voided": "void"}


def parse(body: bytes) -> list[LedgerEvent]:
    """The Payment and CreditMemo events of a verified QuickBooks webhook body, in body order."""
    document = load_json(body)
    if isinstance(document, dict) and "eventNotifications" in document:
        return _legacy(document)
    if isinstance(document, list) and all(
        isinstance(e, dict) and "specversion" in e for e in events_list(document, "CloudEvents")
    ):
        return _cloud_events(document)
    raise UnparseableWebhook(
        "body is neither an eventNotifications object nor an array of CloudEvents (QuickBooks)"
    )


def _legacy(document: dict[str, Any]) -> list[LedgerEvent]:
    notifications = events_list(document["eventNotifications"], "eventNotifications")
    seen = 0
    events: list[LedgerEvent] = []
    for n, raw in enumerate(notifications):
        where = f"eventNotifications[{n}]"
        notification = obj(raw, where)
        realm = text(notification.get("realmId"), f"{where}.realmId")
        change = obj(notification.get("dataChangeEvent"), f"{where}.dataChangeEvent")
        entities = events_list(change.get("entities"), f"{where}.dataChangeEvent.entities")
        seen += len(entities)
        if seen > MAX_EVENTS:
            raise UnparseableWebhook(f"eventNotifications: more than {MAX_EVENTS} events")
        for e, raw_entity in enumerate(entities):
            at = f"{where}.dataChangeEvent.entities[{e}]"
            entity = obj(raw_entity, at)
            kind = KINDS.get(text(entity.get("name"), f"{at}.name").lower())
            if kind is None:
                continue
            events.append(
                LedgerEvent(
                    tenant_id=realm,
                    kind=kind,
                    object_id=text(entity.get("id"), f"{at}.id"),
                    operation=text(entity.get("operation"), f"{at}.operation").lower(),
                    changed_at=timestamp(entity.get("lastUpdated")),
                    event_id=None,
                )
            )
    return events


def _cloud_events(document: list[Any]) -> list[LedgerEvent]:
    events: list[LedgerEvent] = []
    for i, raw in enumerate(document):
        where = f"[{i}]"
        text(raw["specversion"], f"{where}.specversion")
        match = CLOUD_EVENT_TYPE.fullmatch(text(raw.get("type"), f"{where}.type"))
        if match is None:
            continue
        entity, verb = match.groups()
        events.append(
            LedgerEvent(
                tenant_id=text(raw.get("intuitaccountid"), f"{where}.intuitaccountid"),
                kind=KINDS[entity],
                object_id=text(raw.get("intuitentityid"), f"{where}.intuitentityid"),
                operation=_VERBS.get(verb, verb),
                changed_at=timestamp(raw.get("time")),
                event_id=text(raw.get("id"), f"{where}.id"),
            )
        )
    return events
