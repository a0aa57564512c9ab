"""FreshBooks webhook deliveries -> ``LedgerEvent``s. Pure.

A delivery is a form (``name=payment.create&object_id=…&account_id=…&business_id=…&identity_id=…
&user_id=…``), read by ``ledgers.webhooks.freshbooks_form`` (and verified by ``verify_freshbooks``
on the way). ``payment.create``, ``payment.update`` and ``payment.delete`` become
``kind="payment"``; ``callback.verify`` (the registration handshake, which comes unsigned: there is
no verifier yet) becomes ``kind="callback_verify"`` carrying the verifier, the callback id as
``object_id``. Every other name is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from invoice_sync.ledgers.webhooks import LedgerEvent, optional_text, text

VERIFY_EVENT = "callback.verify"
PAYMENT_EVENTS = frozenset({"payment.create", "payment.update", "payment.delete"})


def is_verify(form: Mapping[str, str]) -> bool:
    """True for the registration handshake, the one delivery the intake does not verify."""
    return form.get("name") == VERIFY_EVENT


def parse(form: Mapping[str, str]) -> list[LedgerEvent]:
    """The events of a FreshBooks delivery's form: zero or one. Raises ``UnparseableWebhook``."""
    name = text(form.get("name"), "name")
    if name == VERIFY_EVENT:
        return [
            LedgerEvent(
                tenant_id=optional_text(form.get("account_id"), "account_id"),
                kind="callback_verify",
                object_id=text(form.get("object_id"), "object_id"),
                operation="verify",
                changed_at=None,
                event_id=None,
                verifier=SecretStr(text(form.get("verifier"), "verifier")),
            )
        ]
    if name not in PAYMENT_EVENTS:
        return []
    return [
        LedgerEvent(
            tenant_id=text(form.get("account_id"), "account_id"),
            kind="payment",
            object_id=text(form.get("object_id"), "object_id"),
            operation=name.partition(".")[2],
            changed_at=None,
            event_id=None,
        )
    ]
