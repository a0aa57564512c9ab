"""Generic source: X-Invoice-Sync-Signature, the published JSON Schema and the parser, held together.

The schema in schemas/ is what billing-system developers code against; the parser is what runs. The
agreement tests put the same bodies through both, so neither can change without the other.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from invoice_sync.errors import BadSignature, InvalidPayload
from invoice_sync.models.documents import CreditNoteStatus, InvoiceStatus, SourceEvent, version_of
from invoice_sync.models.money import exponent
from invoice_sync.sources import generic, signing, stripe
from invoice_sync.sources.generic import (
    SIGNATURE_HEADER,
    parse_event,
    sign,
    signature_header,
    validate_event,
    verify_signature,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events" / "generic"
SCHEMA_PATH = ROOT / "schemas" / "generic-webhook.schema.json"
DOCS_PATH = ROOT / "docs" / "generic-webhooks.md"

SECRET = "whsec_generic_current"
OLD_SECRET = "whsec_generic_previous"
NOW = 1_767_225_600
TOLERANCE = 300

# Until SourceEvent/Invoice.source accept "generic" (and SourceEvent has explicit_version), building
# the domain objects fails. strict: once the models change these pass, and the marker must go.


def fixture_bytes(prefix: str) -> bytes:
    matches = sorted(EVENTS.glob(f"{prefix}_*.json"))
    assert len(matches) == 1, f"expected one fixture for {prefix}, found {matches}"
    return matches[0].read_bytes()


def fixture(prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(prefix))
    return data


HANDLED = ["a1", "a2", "a3", "b1", "c1", "d1", "d2", "f1", "f2"]
ALL_FIXTURES = sorted(p.name for p in EVENTS.glob("*.json"))


# --- signature ------------------------------------------------------------------------------------

BODY = fixture_bytes("a1")


def verify(header: str | None, secrets: list[str], *, body: bytes = BODY, now: float = NOW) -> None:
    verify_signature(body, header, secrets, now=now, tolerance=TOLERANCE)


def test_header_name_is_lowercase_as_intake_passes_it() -> None:
    """Intake lower-cases header names, so the constant must be lower case to be found."""
    assert SIGNATURE_HEADER == "x-invoice-sync-signature"


def test_valid_signature_is_accepted() -> None:
    """Given a header signed with the connection's secret now, verification passes."""
    verify(signature_header(BODY, [SECRET], NOW), [SECRET])


def test_sender_rotating_sends_two_v1_and_either_may_match() -> None:
    """Given two v1 values (the sender signing with old and new secret), the second matching is enough."""
    verify(f"t={NOW},v1={sign(BODY, 'some-other-secret', NOW)},v1={sign(BODY, SECRET, NOW)}", [SECRET])
    verify(signature_header(BODY, [OLD_SECRET, SECRET], NOW), [SECRET])


def test_operator_rotating_configures_two_secrets_and_the_old_still_matches() -> None:
    """Given two configured secrets (new, old) and a body signed with the old one, verification passes."""
    verify(signature_header(BODY, [OLD_SECRET], NOW), [SECRET, OLD_SECRET])


def test_wrong_secret_and_no_secret_are_refused() -> None:
    """Given another secret, or no configured secret at all, verification raises BadSignature."""
    with pytest.raises(BadSignature, match="no X-Invoice-Sync-Signature v1 matches"):
        verify(signature_header(BODY, ["attacker"], NOW), [SECRET])
    with pytest.raises(BadSignature):
        verify(signature_header(BODY, [SECRET], NOW), [])


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_body_tampered_by_one_byte_is_refused(index: int) -> None:
    """Given a signed body with one byte flipped afterwards, verification raises BadSignature."""
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(BadSignature):
        verify(signature_header(BODY, [SECRET], NOW), [SECRET], body=bytes(tampered))


def test_reformatted_body_is_refused() -> None:
    """Given the same JSON re-serialised (what a proxy or framework might do), the signature fails:
    it covers the exact bytes, which is why the docs say to sign what is sent."""
    reformatted = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    with pytest.raises(BadSignature):
        verify(signature_header(BODY, [SECRET], NOW), [SECRET], body=reformatted)


@pytest.mark.parametrize("skew", [TOLERANCE + 1, 86_400])
def test_stale_timestamp_is_refused(skew: int) -> None:
    """Given a correct signature made longer ago than the tolerance, verification refuses (replay)."""
    with pytest.raises(BadSignature, match="tolerance"):
        verify(signature_header(BODY, [SECRET], NOW - skew), [SECRET])


@pytest.mark.parametrize("skew", [TOLERANCE + 1, 86_400])
def test_future_timestamp_is_refused(skew: int) -> None:
    """Given a timestamp further ahead than the tolerance, verification refuses (pre-signed replays)."""
    with pytest.raises(BadSignature, match="tolerance"):
        verify(signature_header(BODY, [SECRET], NOW + skew), [SECRET])


@pytest.mark.parametrize("skew", [-TOLERANCE, 0, TOLERANCE])
def test_timestamp_at_the_tolerance_edge_is_accepted(skew: int) -> None:
    """Given a timestamp exactly at the tolerance either side, verification passes."""
    verify(signature_header(BODY, [SECRET], NOW + skew), [SECRET])


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_refused(header: str | None) -> None:
    """Given no header, verification raises BadSignature naming the header."""
    with pytest.raises(BadSignature, match="missing X-Invoice-Sync-Signature"):
        verify(header, [SECRET])


GOOD = sign(BODY, SECRET, NOW)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={GOOD}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v1=",  # empty signature
        f"t=yesterday,v1={GOOD}",  # timestamp not a number
        f"t=+{NOW},v1={GOOD}",  # int() would take it; the recipe signs digits only
        f"t={NOW}.0,v1={GOOD}",  # not whole seconds
        f"t={NOW}000,v1={GOOD}",  # milliseconds: outside the tolerance
        f"t={NOW},t={NOW},v1={GOOD}",  # two timestamps: ambiguous
        f"t={NOW},v2={GOOD}",  # unknown scheme only
        f"t={NOW},v1={GOOD.upper()}",  # hex is lower case
    ],
)
def test_malformed_header_is_refused(header: str) -> None:
    """Given a header without exactly one usable timestamp and a matching v1, BadSignature."""
    with pytest.raises(BadSignature):
        verify(header, [SECRET])


def test_spaces_and_unknown_schemes_in_header_are_tolerated() -> None:
    """Given spaces after commas and a v0 entry (future schemes), the v1 match still counts."""
    verify(f"t={NOW}, v0=deadbeef, v1={GOOD}", [SECRET])


def test_signature_comparison_is_constant_time_by_construction() -> None:
    """Reading the code (not timing it): signatures are compared only with hmac.compare_digest, never
    with == or !=, and every secret x candidate pair is compared (no early exit on a match)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(signing.verify)))  # the code both sources share
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]
    assert len(calls) == 1
    secret_names = {"expected", "candidate", "candidates"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            assert not names & secret_names, "a signature is compared with an ordinary operator"
        if isinstance(node, ast.For):
            assert not any(isinstance(n, ast.Break | ast.Return) for n in ast.walk(node)), "early exit"


def test_signature_header_carries_one_v1_per_secret() -> None:
    """Given two secrets, signature_header builds "t=..,v1=..,v1=.." in that order."""
    assert signature_header(BODY, [SECRET, OLD_SECRET], NOW) == (
        f"t={NOW},v1={sign(BODY, SECRET, NOW)},v1={sign(BODY, OLD_SECRET, NOW)}"
    )


# --- the worked example in the docs is right ------------------------------------------------------


def docs_example() -> tuple[str, int, bytes, str]:
    """The secret, timestamp, body and expected v1 of the worked example in docs/generic-webhooks.md."""
    text = DOCS_PATH.read_text()
    secret = re.search(r"^secret:\s+(\S+)$", text, re.M)
    timestamp = re.search(r"^timestamp:\s+(\d+)$", text, re.M)
    body = re.search(r"^body:\s+(\{.*\})$", text, re.M)
    v1 = re.search(r"^v1:\s+([0-9a-f]{64})$", text, re.M)
    assert secret and timestamp and body and v1, "worked example not found in the docs"
    return secret.group(1), int(timestamp.group(1)), body.group(1).encode(), v1.group(1)


def test_docs_worked_example_matches_sign() -> None:
    """The hex in the docs' worked example is what sign() computes, so a developer can check their code."""
    secret, timestamp, body, v1 = docs_example()
    assert sign(body, secret, timestamp) == v1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_docs_openssl_recipe_gives_the_same_signature() -> None:
    """The shell recipe in the docs (printf '%s.%s' | openssl dgst -sha256 -hmac) gives sign()'s value."""
    secret, timestamp, body, v1 = docs_example()
    openssl = shutil.which("openssl")
    assert openssl is not None
    result = subprocess.run(
        [openssl, "dgst", "-sha256", "-hmac", secret],
        input=f"{timestamp}.".encode() + body,
        capture_output=True,
        check=True,
    )
    assert result.stdout.decode().strip().split()[-1] == v1


# --- parsing into the domain ----------------------------------------------------------------------


def parsed(prefix: str) -> SourceEvent:
    event = parse_event(fixture_bytes(prefix))
    assert event is not None
    return event


@pytest.mark.parametrize(
    ("prefix", "source_id", "currency", "status", "subtotal", "discount", "tax", "total", "paid"),
    [
        ("a1", "inv_1001", "USD", InvoiceStatus.OPEN, 154999, 0, 12787, 167786, 0),
        ("a2", "inv_1001", "USD", InvoiceStatus.OPEN, 154999, 0, 12787, 167786, 100000),
        ("a3", "inv_1001", "USD", InvoiceStatus.PAID, 154999, 0, 12787, 167786, 167786),
        ("b1", "inv_2042", "EUR", InvoiceStatus.OPEN, 47900, 3600, 6156, 50456, 0),
        ("c1", "inv_1002", "USD", InvoiceStatus.VOID, 30000, 0, 2475, 32475, 0),
        ("d1", "inv_jp_0001", "JPY", InvoiceStatus.OPEN, 12000, 0, 1200, 13200, 0),
        ("d2", "inv_kw_0001", "KWD", InvoiceStatus.OPEN, 12500, 0, 0, 12500, 0),
    ],
)
def test_each_fixture_becomes_an_invoice_in_exact_minor_units(
    prefix: str,
    source_id: str,
    currency: str,
    status: InvoiceStatus,
    subtotal: int,
    discount: int,
    tax: int,
    total: int,
    paid: int,
) -> None:
    """Given each handled fixture, parse_event gives a generic Invoice whose money is ints, whose
    currency is upper case (b1 sends "eur") and whose totals add up as push's check_totals demands."""
    event = parsed(prefix)
    invoice = event.invoice
    assert invoice is not None
    assert (event.source, invoice.source) == ("generic", "generic")
    assert (invoice.source_id, invoice.currency, invoice.status) == (source_id, currency, status)
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (
        subtotal,
        discount,
        tax,
        total,
    )
    assert invoice.amount_paid == paid == sum(p.amount for p in invoice.payments)
    money = [invoice.subtotal, invoice.discount, invoice.tax, invoice.total, invoice.amount_paid]
    money += [line.amount for line in invoice.lines] + [p.amount for p in invoice.payments]
    money += [t.amount for line in invoice.lines for t in line.taxes]
    assert all(type(value) is int for value in money)
    assert sum(line.amount for line in invoice.lines) == invoice.subtotal
    assert invoice.subtotal - invoice.discount + invoice.exclusive_tax == invoice.total
    assert invoice.lines_complete is True


def test_a1_maps_every_field() -> None:
    """Given a1, every field lands where push expects it: ids, dates, customer, products, taxes, memo."""
    event = parsed("a1")
    invoice = event.invoice
    assert invoice is not None
    assert (event.event_id, event.event_type, event.created) == ("evt_a1_inv1001_v1", "invoice.upserted", NOW)
    assert invoice.number == "INV-1001"
    assert (invoice.issued_on, invoice.due_on) == (date(2026, 1, 1), date(2026, 1, 31))
    assert invoice.customer.source_id == "cus_acme"
    assert invoice.customer.display_name == "Acme Corp"
    assert [line.product_id for line in invoice.lines] == ["consulting-hour", "support-monthly"]
    assert [(t.rate_id, t.amount, t.inclusive) for t in invoice.lines[0].taxes] == [
        ("us-ca-8.25", 12375, False)
    ]
    assert invoice.memo == "Thank you for your business."
    assert invoice.payments == ()


def test_payments_keep_their_ids_and_belong_to_the_invoice() -> None:
    """Given a3 (two payments), each Payment keeps the sender's stable id, the invoice id and currency,
    so the payment already booked from a2 is recognised and only the second is new."""
    a2, a3 = parsed("a2").invoice, parsed("a3").invoice
    assert a2 is not None and a3 is not None
    assert [p.source_id for p in a2.payments] == ["pay_5001"]
    assert [(p.source_id, p.amount, p.paid_on) for p in a3.payments] == [
        ("pay_5001", 100000, date(2026, 1, 8)),
        ("pay_5002", 67786, date(2026, 1, 15)),
    ]
    assert all(p.invoice_source_id == "inv_1001" and p.currency == "USD" for p in a3.payments)
    assert not any(p.cumulative for p in a3.payments)


def test_inclusive_tax_is_not_added_to_the_total() -> None:
    """Given b1, whose second line includes its VAT, that tax is kept on the line as inclusive and
    left out of the invoice's tax, as the domain's exclusive_tax counts it."""
    invoice = parsed("b1").invoice
    assert invoice is not None
    assert [(t.amount, t.inclusive, t.taxable_amount) for t in invoice.lines[1].taxes] == [
        (1900, True, 10000)
    ]
    assert invoice.exclusive_tax == invoice.tax == 6156
    assert invoice.lines[0].discount == 3600


def test_explicit_version_orders_snapshots_and_created_is_the_fallback() -> None:
    """Given a1..a3 (version 1, 2, 3), SourceEvent.version is the sender's version; given b1 (no version),
    it falls back to created and status rank as for Stripe."""
    assert [parsed(p).version for p in ("a1", "a2", "a3")] == [1, 2, 3]
    b1 = parsed("b1")
    assert b1.version == b1.created * 10 + 1  # open ranks 1


def test_credit_note_maps_every_field_as_stripe_credit_notes_do() -> None:
    """Given f1 (one consulting hour of a1's line_1 credited: 150.00 + 12.38 tax), parse_event gives a
    generic CreditNote shaped as stripe.parse_credit_note shapes one: the invoice it credits, the
    invoice line each line credits (push takes the product from there), exact minor units, and all
    of the total reducing what the invoice owes."""
    event = parsed("f1")
    note = event.credit_note
    assert note is not None and event.invoice is None
    assert (event.source, note.source, event.event_type) == ("generic", "generic", "credit_note.upserted")
    assert (note.source_id, note.number, note.status) == (
        "cn_1001_01",
        "INV-1001-CN-01",
        CreditNoteStatus.ISSUED,
    )
    assert (note.invoice_source_id, note.currency, note.issued_on) == ("inv_1001", "USD", date(2026, 1, 7))
    assert note.customer.source_id == "cus_acme"
    (line,) = note.lines
    assert (line.source_id, line.invoice_line_id, line.product_id) == ("cnl_1", "line_1", None)
    assert (line.quantity, line.amount, [(t.rate_id, t.amount) for t in line.taxes]) == (
        1,
        15000,
        [("us-ca-8.25", 1238)],
    )
    assert (note.subtotal, note.discount, note.tax, note.total) == (15000, 0, 1238, 16238)
    assert (note.for_invoice, note.refunded) == (16238, 0)
    assert note.exclusive_tax == note.tax
    assert note.lines_complete is True
    assert note.memo == "One consulting hour billed twice."
    invoice = parsed("a1").invoice
    assert invoice is not None
    assert line.invoice_line_id in {x.source_id for x in invoice.lines}


def test_voided_credit_note_orders_after_the_issued_one() -> None:
    """Given f2 (the same note voided, version 2), it parses as void and its version is above f1's;
    without versions, void still ranks above issued at the same second."""
    f1, f2 = parsed("f1"), parsed("f2")
    assert f2.credit_note is not None and f2.credit_note.status is CreditNoteStatus.VOID
    assert (f1.version, f2.version) == (1, 2)
    assert f2.credit_note.content_hash() != f1.document.content_hash()
    assert version_of(NOW, f2.credit_note) > version_of(NOW, f1.document)


@pytest.mark.parametrize(
    ("changes", "for_invoice", "refunded"),
    [
        ({}, 16238, 0),  # neither sent: all of it reduces the invoice
        ({"for_invoice": ..., "refunded": ...}, 16238, 0),
        ({"for_invoice": ..., "refunded": 6238}, 10000, 6238),  # default: what was not refunded
        ({"for_invoice": 0, "refunded": 16238}, 0, 16238),  # all refunded
        ({"for_invoice": 0, "refunded": 0}, 0, 0),  # all left as customer credit
        ({"for_invoice": 10000, "refunded": None}, 10000, 0),
    ],
)
def test_for_invoice_and_refunded_defaults(changes: dict[str, Any], for_invoice: int, refunded: int) -> None:
    """Given for_invoice and refunded sent, omitted or null, the CreditNote's for_invoice is what was sent,
    else the total less what was refunded; refunded defaults to 0."""
    body = fixture("f1")
    for key, value in changes.items():
        if value is ...:
            del body["data"]["credit_note"][key]
        else:
            body["data"]["credit_note"][key] = value
    event = parse_event(json.dumps(body).encode())
    assert event is not None and event.credit_note is not None
    assert (event.credit_note.for_invoice, event.credit_note.refunded) == (for_invoice, refunded)


def test_credit_note_line_with_its_own_product_keeps_it() -> None:
    """Given a credit note line naming a product instead of an invoice line, the product is kept and
    no invoice line is named."""
    body = fixture("f1")
    line = body["data"]["credit_note"]["lines"][0]
    del line["invoice_line_id"]
    line["product_id"] = "consulting-hour"
    event = parse_event(json.dumps(body).encode())
    assert event is not None and event.credit_note is not None
    (parsed_line,) = event.credit_note.lines
    assert (parsed_line.product_id, parsed_line.invoice_line_id) == ("consulting-hour", None)


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_exponent_rule_documented_matches_the_domain(currency: str) -> None:
    """The docs' exponent examples (JPY 0, USD 2, KWD 3) are the domain's own table."""
    assert exponent(currency) == {"JPY": 0, "USD": 2, "KWD": 3}[currency]


def test_unhandled_event_type_is_ignored() -> None:
    """Given a well-formed event of a type invoice-sync does not handle (e1 customer.updated), parse_event
    gives None (intake answers 200 "ignored") whatever its data holds."""
    assert parse_event(fixture_bytes("e1")) is None


def test_unhandled_event_type_still_needs_a_well_formed_envelope() -> None:
    """An unknown type does not switch the envelope checks off: a misspelt envelope field is a 400."""
    body = fixture("e1")
    body["crated"] = body.pop("created")
    with pytest.raises(InvalidPayload, match="created: required field is missing"):
        parse_event(json.dumps(body).encode())


# --- invalid bodies: refused by name, values never echoed, and the schema agrees ------------------

SENTINEL = "LEAKED-7f3a"  # a value that must never appear in an error message

Mutation = Callable[[dict[str, Any]], None]


def _invoice(body: dict[str, Any]) -> dict[str, Any]:
    invoice: dict[str, Any] = body["data"]["invoice"]
    return invoice


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets (or, with ..., deletes) ``data.invoice.lines.0.quantity``-style paths."""

    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _rename(path: str, new_name: str) -> Mutation:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[new_name] = node.pop(last)

    return apply


# (id, fixture, mutation, the field path the 400 must name). Both the parser and the schema refuse.
SCHEMA_INVALID: list[tuple[str, str, Mutation, str]] = [
    ("unknown envelope field", "a1", _set("livemode", SENTINEL), "livemode: unknown field"),
    ("typo in envelope field", "a1", _rename("created", "crated"), "crated: unknown field"),
    (
        "typo in invoice field",
        "a1",
        _rename("data.invoice.total", "totl"),
        "data.invoice.totl: unknown field",
    ),
    (
        "typo in line field",
        "a1",
        _rename("data.invoice.lines.0.quantity", "quantiy"),
        "data.invoice.lines[0].quantiy: unknown field",
    ),
    ("unknown field in data", "a1", _set("data.customer", {"id": SENTINEL}), "data.customer: unknown field"),
    (
        "negative quantity",
        "a1",
        _set("data.invoice.lines.0.quantity", -987654),
        "data.invoice.lines[0].quantity",
    ),
    (
        "fractional quantity",
        "a1",
        _set("data.invoice.lines.0.quantity", 1.5),
        "data.invoice.lines[0].quantity",
    ),
    (
        "quantity as string",
        "a1",
        _set("data.invoice.lines.0.quantity", "10"),
        "data.invoice.lines[0].quantity",
    ),
    ("amount as decimal string", "a1", _set("data.invoice.total", "1677.86"), "data.invoice.total"),
    ("amount as float", "a1", _set("data.invoice.total", 1677.86), "data.invoice.total"),
    ("amount as boolean", "a1", _set("data.invoice.lines.1.amount", True), "data.invoice.lines[1].amount"),
    ("amount beyond 2**53", "a1", _set("data.invoice.total", 2**60), "data.invoice.total"),
    ("negative total", "a1", _set("data.invoice.total", -987654), "data.invoice.total"),
    ("currency too short", "a1", _set("data.invoice.currency", "US"), "data.invoice.currency"),
    ("currency too long", "a1", _set("data.invoice.currency", "LEAKED"), "data.invoice.currency"),
    ("currency symbol", "a1", _set("data.invoice.currency", "$$$"), "data.invoice.currency"),
    ("currency missing", "a1", _set("data.invoice.currency", ...), "data.invoice.currency: required field"),
    ("lines missing", "a1", _set("data.invoice.lines", ...), "data.invoice.lines: required field is missing"),
    ("lines empty", "a1", _set("data.invoice.lines", []), "data.invoice.lines"),
    ("lines not a list", "a1", _set("data.invoice.lines", {"0": {}}), "data.invoice.lines"),
    ("line description empty", "a1", _set("data.invoice.lines.0.description", ""), "lines[0].description"),
    ("unknown status", "a1", _set("data.invoice.status", SENTINEL), "data.invoice.status"),
    ("date in another format", "a1", _set("data.invoice.issued_on", "01/02/2026"), "data.invoice.issued_on"),
    (
        "date with a time",
        "a1",
        _set("data.invoice.issued_on", "2026-01-01T00:00:00Z"),
        "data.invoice.issued_on",
    ),
    ("impossible date", "a1", _set("data.invoice.due_on", "2026-02-30"), "data.invoice.due_on"),
    ("created in milliseconds", "a1", _set("created", 1_767_225_600_000), "created"),
    ("created as ISO string", "a1", _set("created", "2026-01-01T00:00:00Z"), "created"),
    ("negative version", "a1", _set("version", -1), "version"),
    ("version as string", "a1", _set("version", "2"), "version"),
    ("event id empty", "a1", _set("id", ""), "id"),
    ("event id with a slash", "a1", _set("id", "evt/../1"), "id"),
    ("event id non-ascii", "a1", _set("id", "évt_1"), "id"),
    ("event id too long", "a1", _set("id", "e" * 256), "id"),
    ("invoice id with a space", "a1", _set("data.invoice.id", "inv 1001"), "data.invoice.id"),
    ("type with spaces", "a1", _set("type", "invoice upserted"), "type"),
    ("data missing", "a1", _set("data", ...), "data: required field is missing"),
    ("data without invoice", "a1", _rename("data.invoice", "inv"), "data.invoice: required field is missing"),
    ("customer missing", "a1", _set("data.invoice.customer", ...), "data.invoice.customer"),
    ("customer id missing", "a1", _set("data.invoice.customer.id", ...), "data.invoice.customer.id"),
    ("tax rate id missing", "a1", _set("data.invoice.lines.0.taxes.0.rate_id", ...), "taxes[0].rate_id"),
    (
        "tax rate id with a plus",
        "a1",
        _set("data.invoice.lines.0.taxes.0.rate_id", "a+b"),
        "taxes[0].rate_id",
    ),
    (
        "tax inclusive as string",
        "a1",
        _set("data.invoice.lines.0.taxes.0.inclusive", "no"),
        "taxes[0].inclusive",
    ),
    ("payment of zero", "a2", _set("data.invoice.payments.0.amount", 0), "data.invoice.payments[0].amount"),
    ("payment without date", "a2", _set("data.invoice.payments.0.paid_on", ...), "payments[0].paid_on"),
    ("voided but not void", "c1", _set("data.invoice.status", "open"), "data.invoice.status"),
    ("payment event, no payments", "a2", _set("data.invoice.payments", []), "data.invoice.payments"),
    ("payment event, payments absent", "a2", _set("data.invoice.payments", ...), "data.invoice.payments"),
    ("metadata not an object", "b1", _set("data.invoice.metadata", [SENTINEL]), "data.invoice.metadata"),
    # credit notes
    (
        "typo in credit note field",
        "f1",
        _rename("data.credit_note.for_invoice", "for_invoce"),
        "data.credit_note.for_invoce: unknown field",
    ),
    (
        "typo in credit note line field",
        "f1",
        _rename("data.credit_note.lines.0.invoice_line_id", "invoice_line"),
        "data.credit_note.lines[0].invoice_line: unknown field",
    ),
    (
        "credit note line names neither invoice line nor product",
        "f1",
        _set("data.credit_note.lines.0.invoice_line_id", ...),
        "data.credit_note.lines[0]: needs invoice_line_id or product_id",
    ),
    (
        "credit note line with both null",
        "f1",
        _set("data.credit_note.lines.0.invoice_line_id", None),
        "data.credit_note.lines[0]: needs invoice_line_id or product_id",
    ),
    (
        "credit note without its invoice",
        "f1",
        _set("data.credit_note.invoice_id", ...),
        "data.credit_note.invoice_id: required field is missing",
    ),
    (
        "credit note invoice id null",
        "f1",
        _set("data.credit_note.invoice_id", None),
        "data.credit_note.invoice_id",
    ),
    (
        "issued credit note without number",
        "f1",
        _set("data.credit_note.number", ...),
        "data.credit_note.number",
    ),
    (
        "issued credit note, number null",
        "f1",
        _set("data.credit_note.number", None),
        "data.credit_note.number",
    ),
    (
        "credit note status of an invoice",
        "f1",
        _set("data.credit_note.status", "open"),
        "data.credit_note.status",
    ),
    (
        "credit note voided but issued",
        "f2",
        _set("data.credit_note.status", "issued"),
        "data.credit_note.status",
    ),
    (
        "negative for_invoice",
        "f1",
        _set("data.credit_note.for_invoice", -987654),
        "data.credit_note.for_invoice",
    ),
    ("refunded as string", "f1", _set("data.credit_note.refunded", "0"), "data.credit_note.refunded"),
    ("negative credit note total", "f1", _set("data.credit_note.total", -987654), "data.credit_note.total"),
    ("credit note lines empty", "f1", _set("data.credit_note.lines", []), "data.credit_note.lines"),
    (
        "credit note event carries an invoice",
        "f1",
        _set("data", {"invoice": fixture("a1")["data"]["invoice"]}),
        "data.invoice: unknown field",
    ),
    (
        "invoice event carries a credit note",
        "a1",
        _set("data", {"credit_note": fixture("f1")["data"]["credit_note"]}),
        "data.credit_note: unknown field",
    ),
    ("payment in a credit note", "f1", _set("data.credit_note.payments", []), "data.credit_note.payments"),
]

# What JSON Schema cannot say: the parser refuses, the schema lets through (documented as such).
PARSER_ONLY: list[tuple[str, str, Mutation, str]] = [
    ("lines do not add up to subtotal", "a1", _set("data.invoice.subtotal", 154998), "data.invoice.subtotal"),
    ("total does not add up", "a1", _set("data.invoice.total", 167787), "data.invoice.total"),
    ("tax disagrees with lines", "a1", _set("data.invoice.tax", 12788), "data.invoice.tax"),
    ("discount disagrees with lines", "b1", _set("data.invoice.discount", 3601), "data.invoice.discount"),
    ("amount_paid disagrees", "a2", _set("data.invoice.amount_paid", 100001), "data.invoice.amount_paid"),
    ("duplicate line ids", "a1", _set("data.invoice.lines.1.id", "line_1"), "data.invoice.lines: ids"),
    (
        "duplicate payment ids",
        "a3",
        _set("data.invoice.payments.1.id", "pay_5001"),
        "data.invoice.payments: ids",
    ),
    # credit notes
    (
        "credit lines do not add up",
        "f1",
        _set("data.credit_note.subtotal", 15001),
        "data.credit_note.subtotal",
    ),
    ("credit total does not add up", "f1", _set("data.credit_note.total", 16239), "data.credit_note.total"),
    ("credit tax disagrees", "f1", _set("data.credit_note.tax", 1237), "data.credit_note.tax"),
    ("credit discount disagrees", "f1", _set("data.credit_note.discount", 1), "data.credit_note.discount"),
    (
        "duplicate credit line ids",
        "f1",
        lambda body: body["data"]["credit_note"]["lines"].append(
            dict(body["data"]["credit_note"]["lines"][0], amount=0, taxes=[])
        ),
        "data.credit_note.lines: ids",
    ),
    (
        "for_invoice above the total",
        "f1",
        _set("data.credit_note.for_invoice", 16239),
        "data.credit_note.for_invoice",
    ),
    (
        "for_invoice and refunded above the total",
        "f1",
        _set("data.credit_note.refunded", 1),
        "data.credit_note.for_invoice",
    ),
    (
        "refunded above the total",
        "f1",
        lambda body: body["data"]["credit_note"].update(for_invoice=None, refunded=16239),
        "data.credit_note.refunded",
    ),
]

# Bodies both must accept that a strict reading might wrongly refuse.
ALSO_VALID: list[tuple[str, str, Mutation]] = [
    ("integral float is an integer", "a1", _set("data.invoice.lines.0.quantity", 10.0)),
    ("lower-case currency", "a1", _set("data.invoice.currency", "usd")),
    ("nulls for optional fields", "a1", _set("data.invoice.number", None)),
    ("version omitted", "a1", _set("version", ...)),
    ("free-form metadata", "a1", _set("data.invoice.lines.0.metadata", {"any": [1, {"thing": None}]})),
    ("unknown type, any data", "e1", _set("data", {"whatever": [1, 2, 3]})),
    ("zero quantity", "a1", _set("data.invoice.lines.0.quantity", 0)),
    ("voided credit note without number", "f2", _set("data.credit_note.number", ...)),
    (
        "credit note line with its own product",
        "f1",
        _rename("data.credit_note.lines.0.invoice_line_id", "product_id"),
    ),
    (
        "credit note line with both",
        "f1",
        _set("data.credit_note.lines.0.product_id", "consulting-hour"),
    ),
    (
        "product null, invoice line given",
        "f1",
        _set("data.credit_note.lines.0.product_id", None),
    ),
    ("credit note optional nulls", "f1", _set("data.credit_note.for_invoice", None)),
    (
        "credit note partly refunded",
        "f1",
        lambda body: body["data"]["credit_note"].update(for_invoice=10000, refunded=6238),
    ),
    ("credit note left as customer credit", "f1", _set("data.credit_note.for_invoice", 0)),
    ("credit note upserted as void", "f2", _set("type", "credit_note.upserted")),
]


@pytest.fixture(scope="module")
def schema() -> jsonschema.protocols.Validator:
    document = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    # With the format checker, as the docs advise senders ("format" is only an annotation otherwise).
    return jsonschema.Draft202012Validator(document, format_checker=jsonschema.FormatChecker())


def mutated(prefix: str, mutation: Mutation) -> dict[str, Any]:
    body = copy.deepcopy(fixture(prefix))
    mutation(body)
    return body


def refusal(body: bytes) -> str:
    with pytest.raises(InvalidPayload) as caught:
        parse_event(body)
    assert caught.value.status_code == 400
    return str(caught.value)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_validates_against_the_published_schema(
    schema: jsonschema.protocols.Validator, name: str
) -> None:
    """Given each fixture, the JSON Schema in schemas/ accepts it, and so does the parser."""
    body = (EVENTS / name).read_bytes()
    schema.validate(json.loads(body))
    validate_event(body)  # no InvalidPayload


@pytest.mark.parametrize(
    ("fixture_id", "mutation", "path"), [c[1:] for c in SCHEMA_INVALID], ids=[c[0] for c in SCHEMA_INVALID]
)
def test_invalid_body_is_refused_by_parser_and_schema_alike(
    schema: jsonschema.protocols.Validator, fixture_id: str, mutation: Mutation, path: str
) -> None:
    """Given a fixture broken in one way, the parser answers 400 naming the field (and not echoing the
    value), and the published schema refuses the same body: the two cannot drift apart."""
    body = mutated(fixture_id, mutation)
    message = refusal(json.dumps(body).encode())
    assert path in message
    for leaked in (SENTINEL, "987654", "01/02/2026", "2026-02-30", "1677.86", "évt", "inv 1001"):
        assert leaked not in message
    assert not schema.is_valid(body), "the schema accepts what the parser refuses"


@pytest.mark.parametrize(
    ("fixture_id", "mutation", "path"), [c[1:] for c in PARSER_ONLY], ids=[c[0] for c in PARSER_ONLY]
)
def test_inconsistent_snapshot_is_refused_beyond_the_schema(
    schema: jsonschema.protocols.Validator, fixture_id: str, mutation: Mutation, path: str
) -> None:
    """Given a snapshot that does not add up (or repeats an id), the parser answers 400 naming the field
    without its value; the schema cannot express these, which the docs say."""
    body = mutated(fixture_id, mutation)
    message = refusal(json.dumps(body).encode())
    assert path in message
    assert not re.search(r"\d{5,}", message), "an amount was echoed"
    assert schema.is_valid(body)


@pytest.mark.parametrize(
    ("fixture_id", "mutation"), [c[1:] for c in ALSO_VALID], ids=[c[0] for c in ALSO_VALID]
)
def test_edge_cases_are_accepted_by_parser_and_schema_alike(
    schema: jsonschema.protocols.Validator, fixture_id: str, mutation: Mutation
) -> None:
    """Given a body at an edge the contract allows, both the schema and the parser accept it."""
    body = mutated(fixture_id, mutation)
    schema.validate(body)
    validate_event(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"id": NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"invoice"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_body_that_is_not_a_json_object_is_refused(body: bytes, expected: str) -> None:
    """Given a body that is not JSON, or JSON but not an object, parse_event answers 400 saying so."""
    assert expected in refusal(body)


def test_many_problems_are_summarised() -> None:
    """Given a body wrong in many places, the message names the first five and counts the rest,
    so a response stays short."""
    body = fixture("a1")
    for line in _invoice(body)["lines"]:
        line.update(quantity=-1, amount="x", description="")
    message = refusal(json.dumps(body).encode())
    assert message.count("data.invoice.lines[") == 5
    assert message.endswith("and 1 more")


def test_unknown_field_name_is_shown_but_defanged() -> None:
    """Given an unknown field whose name is long and holds a newline, the message names it cut short and
    on one line, so a hostile key cannot flood or forge a log line."""
    body = fixture("a1")
    body["evil\nINFO forged " + "x" * 200] = 1
    message = refusal(json.dumps(body).encode())
    assert "\n" not in message
    assert "evil?INFO" in message
    assert len(message) < 200


def test_generic_module_offers_what_intake_calls() -> None:
    """Intake calls SIGNATURE_HEADER, verify_signature(payload, header, secrets, now=, tolerance=) and
    parse_event(payload) on a source module: the generic one has the same shape as the Stripe one."""
    for name in ("SIGNATURE_HEADER", "sign", "signature_header", "verify_signature", "parse_event"):
        assert hasattr(generic, name)
    assert inspect.signature(generic.verify_signature) == inspect.signature(stripe.verify_signature)
    assert inspect.signature(generic.parse_event) == inspect.signature(stripe.parse_event)
