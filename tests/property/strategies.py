"""Hypothesis strategies for hostile webhook requests: bodies, signature headers, other headers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from invoice_sync.sources import signing
from tests.property.conftest import TOLERANCE, fixtures

# Any JSON value, nested a little.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    # Lone surrogates: json.dumps writes them as \uD800-style escapes, which decode to text that
    # no UTF-8 encoder takes.
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@st.composite
def mutated_fixture(draw: st.DrawFn, source: str) -> bytes:
    """A real event of ``source`` with one to three edits: a value replaced by any JSON value, or a
    field deleted, or a field added. Most of them break the schema somewhere deep inside."""
    document = json.loads(draw(st.sampled_from(fixtures(source))))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        path = draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return json.dumps(document).encode()


def bodies(source: str = "stripe") -> st.SearchStrategy[bytes]:
    """Anything a sender might post: bytes (often not UTF-8), text, any JSON, a real event broken."""
    return st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(fixtures(source)),
        mutated_fixture(source),
        # Nested deeper than the decoder's recursion goes, bare or inside an event's data.
        st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(500, 50_000).map(
            lambda n: (
                b'{"id":"evt_1","type":"invoice.paid","created":1,"data":'
                + b'{"a":' * n
                + b"1"
                + b"}" * n
                + b"}"
            )
        ),
        # Not JSON: NaN, a BOM in front, a truncated event.
        st.sampled_from(
            [b"NaN", b'{"id": NaN}', b"\xef\xbb\xbf{}", b'{"id": "evt_1", "type": "invoice.paid"']
        ),
    )


# What may stand for the t= of a signature header: times far off, not numbers, too many digits.
timestamps = st.one_of(
    st.integers(min_value=0, max_value=2**63).map(str),
    st.integers(min_value=-(10**12), max_value=-1).map(str),
    st.text(max_size=20),
    st.sampled_from(["", "1e9", "0x10", " 1", "1.5", "\u0661\u0662\u0663", "9" * 400, "9" * 5000, "+1"]),
)


def _within(stamp: str, now: int) -> bool:
    """A stamp the endpoint could take: up to 12 ASCII digits, within the tolerance of now and ten
    seconds more (int() of thousands of digits would raise here, too)."""
    return (
        stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and abs(int(stamp) - now) <= TOLERANCE + 10
    )


@st.composite
def forged_signatures(draw: st.DrawFn, body: bytes, secret: str, now: int) -> str | None:
    """A signature header that must not verify: missing, garbage, the right recipe with the wrong
    secret, the right secret for other bytes, the right everything outside the tolerance, or a
    timestamp that is no number; sometimes several ``t=`` or ``v1=`` parts."""
    kind = draw(
        st.sampled_from(["missing", "garbage", "wrong-secret", "other-body", "stale", "bad-time", "no-v1"])
    )
    if kind == "missing":
        return None
    if kind == "garbage":
        return draw(st.text(max_size=300))
    if kind == "wrong-secret":
        other = draw(st.text(min_size=1, max_size=40).filter(lambda s: s != secret))
        return signing.signature_header(body, [other], now)
    if kind == "other-body":
        other_body = draw(st.binary(max_size=50).filter(lambda b: b != body))
        return signing.signature_header(other_body, [secret], now)
    if kind == "stale":
        # Ten seconds past the tolerance: the endpoint reads its clock a moment after this one.
        offset = draw(st.integers(min_value=TOLERANCE + 10, max_value=10**9))
        moment = now + offset * draw(st.sampled_from([-1, 1]))
        return signing.signature_header(body, [secret], max(moment, 0))
    if kind == "no-v1":
        return f"t={now}" + draw(st.sampled_from(["", ",v1=", ",v0=abc", ",v2=" + "0" * 64]))
    stamp = draw(timestamps.filter(lambda t: not _within(t, now)))
    signature = signing.sign(body, secret, now)
    extra = draw(st.sampled_from(["", f",t={now}", ",v1=deadbeef"]))
    return f"t={stamp},v1={signature}{extra}"


header_names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
other_headers = st.dictionaries(header_names, st.text(max_size=60), max_size=5)
