"""Stripe-Signature verification, checked on its own and against the official stripe SDK."""

from __future__ import annotations

import time

import pytest
import stripe as stripe_sdk

from invoice_sync.errors import BadSignature
from invoice_sync.sources.stripe import sign, signature_header, verify_signature

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
BODY = b'{"id":"evt_1","object":"event","type":"invoice.paid"}'
NOW = 1_767_225_600
TOLERANCE = 300


def verify(header: str | None, secrets: list[str], *, body: bytes = BODY, now: float = NOW) -> None:
    verify_signature(body, header, secrets, now=now, tolerance=TOLERANCE)


def test_valid_signature_is_accepted() -> None:
    """Given a header signed with the endpoint secret now, verification passes."""
    verify(signature_header(BODY, [SECRET], NOW), [SECRET])


def test_second_v1_in_header_may_be_the_match() -> None:
    """Given a header with two v1 values (Stripe rolling its secret) where only the second matches,
    verification passes."""
    header = f"t={NOW},v1={sign(BODY, 'whsec_other', NOW)},v1={sign(BODY, SECRET, NOW)}"
    verify(header, [SECRET])


def test_old_configured_secret_still_matches_during_rotation() -> None:
    """Given two configured secrets (new, old) and a body signed with the old one, verification passes."""
    verify(signature_header(BODY, [OLD_SECRET], NOW), [SECRET, OLD_SECRET])


def test_unknown_keys_and_spaces_in_header_are_tolerated() -> None:
    """Given v0 entries and spaces after commas (as some proxies add), the v1 match still counts."""
    header = f"t={NOW}, v0=deadbeef, v1={sign(BODY, SECRET, NOW)}"
    verify(header, [SECRET])


def test_wrong_secret_is_refused() -> None:
    """Given a header signed with another secret, verification raises BadSignature."""
    with pytest.raises(BadSignature, match="no Stripe-Signature v1 matches"):
        verify(signature_header(BODY, ["whsec_attacker"], NOW), [SECRET])


def test_no_configured_secret_refuses_everything() -> None:
    """Given no configured secret at all, even a well-formed header is refused."""
    with pytest.raises(BadSignature):
        verify(signature_header(BODY, [SECRET], NOW), [])


@pytest.mark.parametrize("skew", [TOLERANCE + 1, -(TOLERANCE + 1), 86_400, -86_400])
def test_timestamp_outside_tolerance_is_refused(skew: int) -> None:
    """Given a correctly signed header whose timestamp is too old or too far in the future,
    verification raises BadSignature (replay protection)."""
    signed_at = NOW - skew
    with pytest.raises(BadSignature, match="tolerance"):
        verify(signature_header(BODY, [SECRET], signed_at), [SECRET])


@pytest.mark.parametrize("skew", [TOLERANCE, -TOLERANCE, 0])
def test_timestamp_at_the_tolerance_edge_is_accepted(skew: int) -> None:
    """Given a timestamp exactly at the tolerance boundary, verification passes."""
    signed_at = NOW - skew
    verify(signature_header(BODY, [SECRET], signed_at), [SECRET])


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_refused(header: str | None) -> None:
    """Given no Stripe-Signature header, verification raises BadSignature naming the header."""
    with pytest.raises(BadSignature, match="missing"):
        verify(header, [SECRET])


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={sign(BODY, SECRET, NOW)}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v1=",  # empty signature
        f"t=yesterday,v1={sign(BODY, SECRET, NOW)}",  # timestamp not an integer
        f"t={NOW},v2={sign(BODY, SECRET, NOW)}",  # unknown scheme only
    ],
)
def test_malformed_header_is_refused(header: str) -> None:
    """Given a header without a usable timestamp or v1 signature, verification raises BadSignature."""
    with pytest.raises(BadSignature):
        verify(header, [SECRET])


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_body_tampered_by_one_byte_is_refused(index: int) -> None:
    """Given a signed body with one byte changed afterwards, verification raises BadSignature."""
    header = signature_header(BODY, [SECRET], NOW)
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(BadSignature):
        verify(header, [SECRET], body=bytes(tampered))


def test_signature_header_carries_one_v1_per_secret() -> None:
    """Given two secrets, signature_header builds "t=..,v1=..,v1=.." in that order."""
    header = signature_header(BODY, [SECRET, OLD_SECRET], NOW)
    assert header == f"t={NOW},v1={sign(BODY, SECRET, NOW)},v1={sign(BODY, OLD_SECRET, NOW)}"


# --- cross-check with the official SDK ------------------------------------------------------------


def test_our_header_is_accepted_by_the_stripe_sdk() -> None:
    """Given a header built by our signature_header, stripe.WebhookSignature.verify_header accepts it
    (so our signer is Stripe's algorithm, not merely self-consistent)."""
    now = int(time.time())
    header = signature_header(BODY, [SECRET], now)
    assert stripe_sdk.WebhookSignature.verify_header(BODY.decode(), header, SECRET, TOLERANCE) is True


def test_our_header_parses_with_construct_event() -> None:
    """Given a fixture body signed by us, stripe.Webhook.construct_event verifies and parses it."""
    now = int(time.time())
    body = b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}'
    event = stripe_sdk.Webhook.construct_event(
        body.decode(), signature_header(body, [SECRET], now), SECRET, TOLERANCE
    )
    assert event.id == "evt_1"


def test_our_wrong_secret_header_is_refused_by_the_stripe_sdk() -> None:
    """Given our header signed with another secret, the SDK refuses it too (the cross-check can fail)."""
    now = int(time.time())
    header = signature_header(BODY, ["whsec_other"], now)
    with pytest.raises(stripe_sdk.SignatureVerificationError):
        stripe_sdk.WebhookSignature.verify_header(BODY.decode(), header, SECRET, TOLERANCE)


def test_stripe_sdk_generated_header_is_accepted_by_us() -> None:
    """Given a header generated by the SDK's generate_signature_header, our verify_signature accepts it."""
    header = stripe_sdk.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=NOW)
    verify(header, [SECRET])


def test_stripe_sdk_computed_signature_equals_ours() -> None:
    """Given the same timestamp, body and secret, the SDK's _compute_signature equals our sign()."""
    expected = stripe_sdk.WebhookSignature._compute_signature(f"{NOW}.{BODY.decode()}", SECRET)
    assert sign(BODY, SECRET, NOW) == expected
    verify(f"t={NOW},v1={expected}", [SECRET])
