"""Idempotency keys: deterministic, so a retry after a crash sends the key the first try sent."""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1c9a52-4d1e-4b8e-9a64-1f3f6f0b7c21")


def idempotency_key(*parts: str) -> str:
    """36 characters: inside QBO's 50 for ``requestid`` and Xero's 128 for ``Idempotency-Key``."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def request_key(intent_key: str, request: object) -> str:
    """The key a ledger sees: the recorded intent's, refined by what is sent. A retry of the same
    request replays; a corrected request (a mapping fixed meanwhile) is not refused as a key reused
    with another body, and the lookup by number still stands guard against a second document."""
    digest = hashlib.sha256(repr(request).encode()).hexdigest()
    return idempotency_key(intent_key, digest)
