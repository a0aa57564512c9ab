"""The ledgers' own webhooks: signature checks, and the event every ledger's parser yields. Pure.

Each ledger signs differently (design two-way.md 2.2-2.4, 3.2):

* QuickBooks: ``intuit-signature`` = base64(HMAC-SHA256(raw body, the app's verifier token));
* Xero: ``x-xero-signature`` = base64(HMAC-SHA256(raw body, the webhook key));
* FreshBooks: ``x-freshbooks-hmac-sha256`` = base64(HMAC-SHA256(``json.dumps(form)``, the verifier)),
  where ``form`` is the form-encoded body read as a dict in the order the fields came, and
  ``json.dumps`` runs with its defaults (``", "`` / ``": "`` separators, ``ensure_ascii``): not
  the raw body.

Every configured key is tried (an operator rotating a key keeps the old one beside the new), and the
loop does not stop at the first match, so timing tells neither which key matched nor how much of a
guess was right. The header is never decoded: the computed base64 string is compared with the
header string by ``hmac.compare_digest``, so a malformed, non-ASCII or missing header is simply a
mismatch (``BadSignature``, answered 401), never another exception. No message names a key, a
signature or a body value.

The parsers (``ledgers/<name>/webhook.py``) turn a verified body into ``LedgerEvent``s, each naming
its own tenant; the intake routes the tenant to a connection and makes a ``LedgerEventMessage`` of
it. An authentic body they cannot read raises ``UnparseableWebhook`` (answered 400 and archived as
refused), whatever it holds: never a ``TypeError`` or ``KeyError``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import SecretStr

from invoice_sync.errors import BadSignature, InvalidPayload
from invoice_sync.models.mapping import LedgerKind
from invoice_sync.models.messages import LedgerEventMessage

QUICKBOOKS_HEADER = "intuit-signature"
XERO_HEADER = "x-xero-signature"
FRESHBOOKS_HEADER = "x-freshbooks-hmac-sha256"

MAX_EVENTS = 1000  # events (kept or not) one body may carry: more is refused, not worked through
MAX_TEXT = 255  # an id, a tenant, an operation: longer is no vendor's
MAX_FORM_FIELDS = 100  # FreshBooks sends six or seven

LedgerEventKind = Literal["payment", "credit_note", "invoice", "callback_verify"]


class UnparseableWebhook(InvalidPayload):
    """An authentic ledger webhook whose body is not a shape invoice-sync reads: answered 400."""


@dataclass(frozen=True)
class LedgerEvent:
    """One change a ledger webhook announces: a hint that the object may have changed.

    ``tenant_id`` is the ledger company it happened in (QBO realm, Xero tenant, FreshBooks account);
    ``None`` only for a FreshBooks ``callback.verify`` that carries no account. ``verifier`` is set
    for ``callback_verify`` only (its ``SecretStr`` keeps it out of reprs and logs).
    """

    tenant_id: str | None
    kind: LedgerEventKind
    object_id: str
    operation: str
    changed_at: datetime | None
    event_id: str | None
    verifier: SecretStr | None = None

    def message(self, connection_id: str, ledger: LedgerKind) -> LedgerEventMessage:
        """The queue message for this event once the intake has routed its tenant to a connection."""
        return LedgerEventMessage(
            connection_id=connection_id,
            ledger=ledger,
            kind=self.kind,
            object_id=self.object_id,
            operation=self.operation,
            changed_at=self.changed_at,
            event_id=self.event_id,
            verifier=self.verifier,
        )


# --- signatures -----------------------------------------------------------------------------------


def sign(message: bytes, key: str) -> str:
    """base64(HMAC-SHA256(message, key)): the signature all three ledgers send."""
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _verify(message: bytes, header: str | None, keys: Sequence[SecretStr], name: str) -> None:
    if not header:
        raise BadSignature(f"missing {name} header")
    # compare_digest takes str only when both are ASCII (TypeError otherwise): a header that is not
    # cannot be base64, so it is refused as a mismatch before any comparison.
    if not header.isascii():
        raise BadSignature(f"{name} is not a base64 signature")
    matched = False
    for key in keys:
        secret = key.get_secret_value()
        if not secret:
            continue  # an empty key would let anyone sign: it is no key
        matched |= hmac.compare_digest(sign(message, secret), header)
    if not matched:
        raise BadSignature(f"{name} matches no configured key")


def verify_quickbooks(body: bytes, header: str | None, keys: Sequence[SecretStr]) -> None:
    """Raises ``BadSignature`` unless ``intuit-signature`` is the raw body signed with one verifier
    token in ``keys``."""
    _verify(body, header, keys, QUICKBOOKS_HEADER)


def verify_xero(body: bytes, header: str | None, keys: Sequence[SecretStr]) -> None:
    """Raises ``BadSignature`` unless ``x-xero-signature`` is the raw body signed with one webhook key
    in ``keys``. The Intent-to-Receive posts are checked the same way."""
    _verify(body, header, keys, XERO_HEADER)


def freshbooks_form(body: bytes) -> dict[str, str]:
    """A FreshBooks delivery's form fields, in the order they came. Raises ``UnparseableWebhook``.

    A repeated field keeps its first value, as werkzeug's ``request.form`` (the object FreshBooks'
    recipe dumps) does; ``dict(parse_qsl(...))`` would keep the last.
    """
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise UnparseableWebhook("body is not a form-encoded FreshBooks delivery") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def freshbooks_signed_string(form: dict[str, str]) -> str:
    """What FreshBooks signs: ``json.dumps`` of the form with its defaults. Compact separators,
    sorted keys or ``ensure_ascii=False`` each give another string (and a 401)."""
    return json.dumps(form)


def verify_freshbooks(body: bytes, header: str | None, keys: Sequence[SecretStr]) -> dict[str, str]:
    """Raises ``BadSignature`` unless ``x-freshbooks-hmac-sha256`` is ``json.dumps(form)`` signed with
    one verifier in ``keys``; returns the form. A body that is no form cannot have been signed by
    FreshBooks, so it too is a ``BadSignature``."""
    if not header:
        raise BadSignature(f"missing {FRESHBOOKS_HEADER} header")
    try:
        form = freshbooks_form(body)
    except UnparseableWebhook:
        raise BadSignature(f"body is not a form {FRESHBOOKS_HEADER} can sign") from None
    _verify(freshbooks_signed_string(form).encode("ascii"), header, keys, FRESHBOOKS_HEADER)
    return form


# --- parsing helpers the three parsers share ------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(body: bytes) -> Any:
    """The decoded body, or ``UnparseableWebhook`` (bad UTF-8 or JSON, NaN, a nest too deep)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnparseableWebhook("body is not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError):
        raise UnparseableWebhook("body is not valid JSON (UTF-8)") from None


def events_list(value: Any, where: str) -> list[Any]:
    """``value`` as a list of at most ``MAX_EVENTS`` items."""
    if not isinstance(value, list):
        raise UnparseableWebhook(f"{where}: expected an array")
    if len(value) > MAX_EVENTS:
        raise UnparseableWebhook(f"{where}: more than {MAX_EVENTS} events")
    return value


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnparseableWebhook(f"{where}: expected an object")
    return value


def text(value: Any, where: str) -> str:
    """A non-empty string of at most ``MAX_TEXT`` characters that UTF-8 can carry (a lone surrogate
    from a ``\\ud800`` escape cannot travel in a queue message)."""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise UnparseableWebhook(f"{where}: expected a string of 1 to {MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnparseableWebhook(f"{where}: not valid Unicode") from None
    return value


def optional_text(value: Any, where: str) -> str | None:
    return None if value is None else text(value, where)


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.+\-Z]{2,40}")


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (no offset = UTC, as Xero's ``eventDateUtc``). The
    time is a hint: a missing or unreadable one is ``None``, not a refusal."""
    if not isinstance(value, str) or not _ISO_TIME.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
