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
from invoice_sync.models.documents import Invoice
from invoice_sync.sources import SOURCES
from invoice_sync.sync.intake import sync_message
from tests.property.conftest import fixtures
from tests.property.strategies import bodies, mutated_fixture
from tests.property.test_money_mapping import documents


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


def _generic_body(document: Invoice, description: str, name: str) -> bytes:
    """The generic schema's ``invoice.upserted`` for ``document``, its first line described as
    ``description`` and its customer named ``name``."""
    lines = []
    for index, line in enumerate(document.lines):
        lines.append(
            {
                "id": line.source_id,
                "description": description if index == 0 else line.description,
                **({"product_id": line.product_id} if line.product_id else {}),
                "quantity": line.quantity,
                "amount": line.amount,
                "discount": line.discount,
                "taxes": [
                    {
                        "rate_id": t.rate_id,
                        "amount": t.amount,
                        "inclusive": t.inclusive,
                        "taxable_amount": t.taxable_amount,
                    }
                    for t in line.taxes
                ],
            }
        )
    invoice = {
        "id": document.source_id,
        "number": document.number,
        "status": "open",
        "currency": document.currency,
        "customer": {"id": document.customer.source_id, "name": name},
        "issued_on": document.issued_on.isoformat(),
        "lines": lines,
        "subtotal": document.subtotal,
        "discount": document.discount,
        "tax": document.tax,
        "total": document.total,
    }
    event = {"id": "evt_generic_1", "type": "invoice.upserted", "created": 1_767_225_600, "version": 3}
    return json.dumps({**event, "data": {"invoice": invoice}}).encode()


@given(
    document=documents(),
    description=st.text(min_size=1, max_size=200),
    name=st.text(min_size=1, max_size=60),
)
@settings(max_examples=100)
def test_a_valid_generic_invoice_is_accepted_exactly_as_sent(
    document: Invoice, description: str, name: str
) -> None:
    """Given any invoice that adds up (0, 2 and 3 decimals, up to 40 lines, discounts, inclusive
    and exclusive taxes) in the generic schema, with any Unicode text in its first line and its
    customer's name, then parse_event accepts it: the snapshot has the sender's lines, totals and
    text unchanged, and it serialises into its queue message."""
    body = _generic_body(document, description, name)
    event = SOURCES["generic"].parse_event(body)
    assert event is not None and event.invoice is not None
    parsed = event.invoice
    assert (parsed.subtotal, parsed.discount, parsed.tax, parsed.total) == (
        document.subtotal,
        document.discount,
        document.tax,
        document.total,
    )
    assert parsed.lines[0].description == description and parsed.customer.name == name
    assert [(x.amount, x.discount, x.quantity, x.taxes) for x in parsed.lines] == [
        (x.amount, x.discount, x.quantity, x.taxes) for x in document.lines
    ]
    message = sync_message(
        event,
        source="generic",
        connection_id="acme",
        raw=body.decode(),
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert message.model_dump_json()
