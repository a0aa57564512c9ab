"""The sources' parsers alone (no AWS): for any body, a parsed event, None, or ``InvalidPayload``.

Anything else escaping ``parse_event`` becomes a 5xx at the endpoint, which a sender retries for
days. These run without moto, so they try many more bodies than the endpoint's properties.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from invoice_sync.errors import InvalidPayload
from invoice_sync.sources import SOURCES
from invoice_sync.sync.intake import sync_message
from tests.property.conftest import fixtures
from tests.property.strategies import bodies, mutated_fixture


def _with_lone_surrogate() -> bytes:
    """A real Stripe invoice whose customer name holds half a surrogate pair (``\\udfff``)."""
    event = json.loads(fixtures("stripe")[0])
    event["data"]["object"]["customer_name"] = "Acme \udfff"
    return json.dumps(event).encode()


@settings(max_examples=600)
@given(source=st.sampled_from(["stripe", "generic"]), data=st.data())
@example(source="stripe", data=None)  # the fixed bodies below
def test_a_body_is_parsed_ignored_or_refused_never_anything_else(
    source: str, data: st.DataObject | None
) -> None:
    """Given any body (bytes, text, any JSON, a real event broken in one to three places, nested
    thousands deep, lone surrogates), parse_event returns an event or None, or raises
    InvalidPayload; and an event it returns serialises into its queue message with the raw body."""
    sent = (
        [data.draw(st.one_of(bodies(source), mutated_fixture(source)), label="body")]
        if data
        else [
            b"[" * 50_000,
            _with_lone_surrogate(),
        ]
    )
    for body in sent:
        try:
            event = SOURCES[source].parse_event(body)
        except InvalidPayload as refusal:
            reason = str(refusal)
            event = None
        else:
            reason = None
        if reason is not None:
            assert reason  # a refusal always says why
            continue
        if event is None:
            continue
        message = sync_message(
            event,
            source=source,
            connection_id="acme",
            raw=body.decode("utf-8"),
            received_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        assert message.model_dump_json()
