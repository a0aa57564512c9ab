"""Hostile input at the webhook endpoint: properties of the intake handler on in-process moto.

For any request (body, headers, encoding, size, signature, timestamp) to either source:
- the answer is never a 5xx, and its body is one short JSON reason with no traceback or internals;
- a request refused before its signature verifies writes nothing and queues nothing;
- an authentic (correctly signed) body refused as invalid is answered 400, queues nothing, is
  archived once under its digest, and only the connection's first such refusal of the day alerts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from invoice_sync.sources import signing
from invoice_sync.store.archive import refused_key
from tests.property.conftest import (
    GENERIC_SECRET,
    MAX_BYTES,
    ROUTE,
    STRIPE_SECRET,
    TOLERANCE,
    Answer,
    Intake,
    fixtures,
)
from tests.property.strategies import bodies, forged_signatures, other_headers

SOURCES = {
    "stripe": ("acme", STRIPE_SECRET, "stripe-signature"),
    "generic": ("inhouse", GENERIC_SECRET, "x-invoice-sync-signature"),
}
# Seconds kept clear of the tolerance's boundary: the intake's clock reads after the test's.
MARGIN = 10
# What only our own code could put in an answer: a traceback's lines, a module path, AWS internals.
INTERNALS = ("Traceback (most recent call last)", 'File "', "site-packages", "botocore", "invoice_sync.")


def assert_clean(answer: Answer, sent: bytes, *, allowed: set[int]) -> None:
    """Never a 5xx; a JSON object with one short reason (or an outcome); nothing internal in it."""
    assert answer.status < 500, answer
    assert answer.status in allowed, answer
    assert answer.headers.get("Content-Type") == "application/json"
    document = answer.json()
    assert isinstance(document, dict)
    if answer.status == 200:
        assert set(document) == {"outcome", "event_id"}
    else:
        assert set(document) == {"error"} and isinstance(document["error"], str)
        assert 0 < len(document["error"]) <= 1200
    for secret in (STRIPE_SECRET, GENERIC_SECRET):
        assert secret not in answer.text
    said = sent.decode("utf-8", "replace")
    for marker in INTERNALS:
        # A field name echoed from the body may spell anything printable; the rest is ours.
        assert marker not in answer.text or marker in said, (marker, answer.text)


def signed(source: str, body: bytes, now: int) -> dict[str, str]:
    _, secret, header = SOURCES[source]
    return {header: signing.signature_header(body, [secret], now)}


@given(
    source=st.sampled_from(["stripe", "generic"]),
    data=st.data(),
    extra=other_headers,
    header_case=st.sampled_from([str.lower, str.title, str.upper]),
)
def test_requests_that_do_not_verify_are_refused_and_leave_nothing(
    intake: Intake, source: str, data: st.DataObject, extra: dict[str, str], header_case: object
) -> None:
    """Given any body and a signature header that must not verify (missing, garbage, wrong secret,
    other bytes, outside the tolerance either way, a timestamp that is no number or too long), when
    posted to the source's connection, then 401 (413 when too big) with a clean reason, and the
    queue, the archive and the alerts topic are exactly as before."""
    connection, secret, header = SOURCES[source]
    body = data.draw(bodies(source), label="body")
    now = int(time.time())
    forged = data.draw(forged_signatures(body, secret, now), label="signature")
    headers = dict(extra)
    if forged is not None:
        assert callable(header_case)
        headers[header_case(header)] = forged
    before = intake.counts()
    answer = intake.post(source, connection, headers, body)
    assert_clean(answer, body, allowed={401, 413})
    assert intake.counts() == before


@given(
    source=st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s),
    connection=st.one_of(
        st.sampled_from(["acme", "inhouse", "paused", "ghost", "ACME", "a", "-x", "acme " * 700]),
        st.text(min_size=1, max_size=3000).filter(lambda s: "/" not in s),
    ),
    body=bodies(),
    sign=st.booleans(),
)
@example(source="stripe", connection="x" * 3000, body=b"{}", sign=True)
@example(source="stripe", connection="paused", body=fixtures("stripe")[0], sign=True)
@example(source="generic", connection="acme", body=fixtures("generic")[0], sign=True)
def test_unknown_routes_and_connections_are_404_and_leave_nothing(
    intake: Intake, source: str, connection: str, body: bytes, sign: bool
) -> None:
    """Given any source and connection path segment other than a live connection of that source
    (another source's, a paused one, a made-up one, 3,000 characters, any text), even with a body
    correctly signed with a real secret, then 404 (413 when too big), and nothing is written."""
    if (source, connection) in {("stripe", "acme"), ("generic", "inhouse")}:
        connection = "ghost"
    headers = {}
    if sign:
        headers = {"stripe-signature": signing.signature_header(body, [STRIPE_SECRET], int(time.time()))}
    before = intake.counts()
    answer = intake.post(source, connection, headers, body)
    assert_clean(answer, body, allowed={404, 413})
    assert intake.counts() == before


@given(source=st.sampled_from(["stripe", "generic"]), data=st.data())
@example(source="stripe", data=None)  # the two fixed bodies below
def test_authentic_bodies_are_never_a_5xx_and_invalid_ones_are_archived_and_alerted_once(
    intake: Intake, source: str, data: st.DataObject | None
) -> None:
    """Given any body correctly signed with the connection's secret, then 200 (queued or ignored)
    or 400 (413 over the size limit, nothing written), never a 5xx. A 400 queues nothing; the
    body is archived under its digest, once (the same body again writes nothing new); the
    connection's first refusal of the day alerts, and no later one does."""
    connection, _, _ = SOURCES[source]
    sent = [data.draw(bodies(source), label="body")] if data else [b"{not json", b"\xff\xfe\x00garbage"]
    for body in sent * 2:  # a sender retries what it was refused: the second time adds nothing
        now = int(time.time())
        day = datetime.fromtimestamp(now, UTC)
        key = refused_key(source, connection, day, hashlib.sha256(body).hexdigest()[:32])
        marker = refused_key(source, connection, day, "_alerted")
        already = set(intake.keys(marker.rsplit("/", 1)[0] + "/"))
        before = intake.counts()
        answer = intake.post(source, connection, signed(source, body, now), body)
        assert_clean(answer, body, allowed={200, 400, 413})
        after = intake.counts()
        if answer.status == 413:  # a generated body over the limit: refused before anything else
            assert after == before
            continue
        if answer.status == 200:
            outcome = answer.json()["outcome"]
            assert outcome in {"queued", "ignored"}
            assert after.queued - before.queued == (1 if outcome == "queued" else 0)
            assert after.alerts == before.alerts
            continue
        assert after.queued == before.queued
        now_there = set(intake.keys(marker.rsplit("/", 1)[0] + "/"))
        assert key in now_there
        assert now_there - already <= {key, marker}
        assert after.archived - before.archived == len(now_there - already)
        assert after.alerts - before.alerts == (0 if marker in already else 1)


def test_the_refusal_alert_names_the_archived_body_and_carries_no_secret(intake: Intake) -> None:
    """Given three authentic invalid webhooks of a generic connection no test has used, then
    exactly one alert names the connection and where the first body is archived, with the
    reason and no secret in it."""
    intake.add_connection("fresh-co", "generic", GENERIC_SECRET)
    for number in range(3):
        body = json.dumps(
            {"id": f"evt_{number}", "type": "invoice.upserted", "created": 1, "data": {}}
        ).encode()
        answer = intake.post("generic", "fresh-co", signed("generic", body, int(time.time())), body)
        assert answer.status == 400
    mine = [a for a in intake.alerts() if "(fresh-co)" in a["Subject"]]
    assert len(mine) == 1
    (alert,) = mine
    assert "invalid webhook refused" in alert["Subject"]
    assert "/rejected/" in alert["Message"] and "data.invoice" in alert["Message"]
    assert GENERIC_SECRET not in alert["Message"] and STRIPE_SECRET not in alert["Message"]


@settings(max_examples=12)
@given(
    size=st.one_of(
        st.sampled_from([MAX_BYTES - 1, MAX_BYTES, MAX_BYTES + 1, 2 * MAX_BYTES]),
        st.integers(min_value=MAX_BYTES - 4096, max_value=MAX_BYTES + 4096),
    ),
    sign=st.booleans(),
)
def test_size_limit_holds_at_the_byte(intake: Intake, size: int, sign: bool) -> None:
    """Given a real Stripe event padded with JSON whitespace to ``size`` bytes, then over the limit
    413 and nothing written, signed or not; at or under it a signed one is queued (a body too big
    to travel in its message is archived on its own first) and an unsigned one is 401."""
    event = fixtures("stripe")[0]
    body = event + b" " * (size - len(event))
    assert len(body) == size
    headers = signed("stripe", body, int(time.time())) if sign else {}
    before = intake.counts()
    answer = intake.post("stripe", "acme", headers, body)
    after = intake.counts()
    if size > MAX_BYTES:
        assert_clean(answer, b"", allowed={413})
        assert after == before
    elif not sign:
        assert_clean(answer, b"", allowed={401})
        assert after == before
    else:
        assert_clean(answer, b"", allowed={200})
        assert after.queued == before.queued + 1
        assert after.alerts == before.alerts


@given(offset=st.integers(min_value=-(10**7), max_value=10**7))
@example(offset=TOLERANCE - MARGIN)
@example(offset=-TOLERANCE + MARGIN)
@example(offset=TOLERANCE + MARGIN)
@example(offset=-TOLERANCE - MARGIN)
def test_timestamp_tolerance_holds_both_ways(intake: Intake, offset: int) -> None:
    """Given a real event correctly signed but stamped ``offset`` seconds from now, then 401 with
    nothing written exactly when the stamp is more than the tolerance away, past or future."""
    body = fixtures("stripe")[0]
    now = int(time.time())
    # The intake reads its clock a moment after this one (seconds, on a loaded machine): offsets
    # that close to the boundary are moved out past it.
    if abs(abs(offset) - TOLERANCE) < MARGIN:
        offset = (TOLERANCE + MARGIN) * (1 if offset > 0 else -1)
    before = intake.counts()
    answer = intake.post("stripe", "acme", signed("stripe", body, now + offset), body)
    if abs(offset) > TOLERANCE:
        assert_clean(answer, body, allowed={401})
        assert intake.counts() == before
    else:
        assert_clean(answer, body, allowed={200})


def _raw_event(
    connection: str, body: str, *, base64_flag: bool, headers: dict[str, str]
) -> dict[str, object]:
    return {
        "version": "2.0",
        "routeKey": ROUTE,
        "rawPath": f"/webhooks/stripe/{connection}",
        "headers": headers,
        "requestContext": {"requestId": "property", "http": {"method": "POST"}},
        "pathParameters": {"source": "stripe", "connection": connection},
        "body": body,
        "isBase64Encoded": base64_flag,
    }


@given(text=st.text(max_size=200), sign=st.booleans())
@example(text="not base64!", sign=True)
@example(text="e30", sign=True)  # "{}" without its padding
@example(text="\ud800", sign=False)
def test_encodings_the_gateway_may_flag_are_read_or_refused_cleanly(
    intake: Intake, text: str, sign: bool
) -> None:
    """Given an event body that is any text, flagged base64 (valid or not) or not (lone surrogates
    included), then never a 5xx: a body that cannot be read is 400; nothing is queued, and if
    anything is archived it is under rejected/ (an authentic body refused as invalid)."""
    now = int(time.time())
    for flag in (True, False):
        try:
            decoded = base64.b64decode(text, validate=True) if flag else text.encode()
        except ValueError:
            decoded = text.encode("utf-8", "surrogatepass")
        headers = (
            {"stripe-signature": signing.signature_header(decoded, [STRIPE_SECRET], now)} if sign else {}
        )
        before = intake.counts()
        keys = set(intake.keys())
        answer = intake.send(_raw_event("acme", text, base64_flag=flag, headers=headers))
        assert_clean(answer, text.encode("utf-8", "surrogatepass"), allowed={200, 400, 401})
        if answer.status != 200:
            assert intake.counts().queued == before.queued
            assert all("/rejected/" in key for key in set(intake.keys()) - keys)
