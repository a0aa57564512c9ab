"""The HMAC webhook signature both sources use: Stripe's recipe.

``{header}: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{raw body}")>[,v1=...]``. Several
``v1`` values arrive while a sender rolls its secret; several secrets are configured here while an
operator rotates ours. Every comparison is constant time, and the loop does not stop at the first
match, so timing reveals neither which secret matched nor how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from invoice_sync.errors import BadSignature

MAX_TIMESTAMP_DIGITS = 12


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``v1`` signature: hex HMAC-SHA256, keyed with the secret, of ``"{t}.{payload}"``."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """A header value as a sender builds it: ``t=<unix seconds>`` then one ``v1`` per secret."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(payload, s, timestamp)}" for s in secrets)])


def verify(
    payload: bytes, header: str | None, secrets: Sequence[str], *, now: float, tolerance: int, name: str
) -> None:
    """Raises ``BadSignature`` (naming the ``name`` header) unless one ``v1`` matches one secret
    within ``tolerance`` seconds of ``now``, either way (a future stamp is as suspect as an old one)."""
    if not header:
        raise BadSignature(f"missing {name} header")
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1" and value:
            candidates.append(value)
    # Digits only: the signed string is str(int(t)), so "t=+0017..." would never verify anyway.
    # At most 12 of them (year 33658): a longer run is no time of ours, and int() of thousands of
    # digits raises ValueError, of hundreds overflows the float ``now`` (both would answer 5xx).
    if (
        len(timestamps) != 1
        or not (timestamps[0].isascii() and timestamps[0].isdigit())
        or len(timestamps[0]) > MAX_TIMESTAMP_DIGITS
    ):
        raise BadSignature(f"{name} needs exactly one t=<unix seconds> timestamp")
    if not candidates:
        raise BadSignature(f"{name} has no v1 signature")
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance:
        raise BadSignature(f"{name} timestamp is outside the tolerance")
    matched = False
    for secret in secrets:
        expected = sign(payload, secret, timestamp).encode()
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise BadSignature(f"no {name} v1 matches the endpoint secret")
