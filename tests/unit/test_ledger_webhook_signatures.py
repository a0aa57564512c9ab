"""The ledgers' webhook signatures (QuickBooks, Xero, FreshBooks): known answers computed here with
``hmac`` on their own, python-quickbooks' recipe as a cross-check, rotation, constant-time use, and
hostile headers that must be a ``BadSignature`` and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from pydantic import SecretStr
from quickbooks.client import QuickBooks
from werkzeug.datastructures import ImmutableMultiDict

from invoice_sync.errors import BadSignature, RequestRejected
from invoice_sync.ledgers import webhooks
from invoice_sync.ledgers.webhooks import (
    freshbooks_form,
    freshbooks_signed_string,
    sign,
    verify_freshbooks,
    verify_quickbooks,
    verify_xero,
)
from invoice_sync.models.messages import LedgerEventMessage

EVENTS = Path(__file__).resolve().parents[1] / "events"
QBO_BODY = (EVENTS / "quickbooks" / "legacy_payment_create.json").read_bytes()
XERO_BODY = (EVENTS / "xero" / "invoice_events.json").read_bytes()
FB_BODY = (EVENTS / "freshbooks" / "payment_create.form").read_bytes()

KEY = "verifier-token-current"
OLD_KEY = "verifier-token-previous"

Verifier = Callable[[bytes, "str | None", Sequence[SecretStr]], object]


def keys(*values: str) -> list[SecretStr]:
    return [SecretStr(v) for v in values]


def independent_b64_hmac(key: str, message: bytes) -> str:
    """base64(HMAC-SHA256) written out here, not through the module under test."""
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def fb_signature(body: bytes, key: str) -> str:
    """FreshBooks' recipe as its SDK docs give it: json.dumps of the form, default separators."""
    return independent_b64_hmac(key, json.dumps(dict(parse_qsl(body.decode()))).encode())


# Each ledger as (verifier, body, how a sender signs that body with a key).
LEDGERS: dict[str, tuple[Verifier, bytes, Callable[[bytes, str], str]]] = {
    "quickbooks": (verify_quickbooks, QBO_BODY, lambda b, k: independent_b64_hmac(k, b)),
    "xero": (verify_xero, XERO_BODY, lambda b, k: independent_b64_hmac(k, b)),
    "freshbooks": (verify_freshbooks, FB_BODY, fb_signature),
}
ALL = pytest.mark.parametrize("ledger", sorted(LEDGERS))


# --- known answers --------------------------------------------------------------------------------


# RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"), as published: hex of the 32-byte digest.
RFC4231_CASE_2 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

# The fixtures signed with KEY by `openssl dgst -sha256 -hmac verifier-token-current -binary | base64`
# (FreshBooks: over the json.dumps string printed in test_freshbooks_known_answer_vector).
QBO_VECTOR = "rv44M+X1K0LZnJkb7EkDqpkrq7MRWnva+oCY55o2Mmw="
XERO_VECTOR = "/biCmSUiXg6gDrSBInnKL71X5T5KMki+Ka6ZdUqzoz4="
FB_VECTOR = "Fb1sA6U2Xdyr4lA0SI9KCYKeQLr2D5CNbRqs/s4kEnM="


def test_sign_matches_the_rfc_4231_vector() -> None:
    """Given RFC 4231's test case 2, sign() is the base64 of the published HMAC-SHA256 digest (so the
    algorithm, the key encoding and the base64 alphabet are all the standard ones)."""
    expected = base64.b64encode(bytes.fromhex(RFC4231_CASE_2)).decode()
    assert sign(b"what do ya want for nothing?", "Jefe") == expected


def test_quickbooks_known_answer_and_python_quickbooks_agree() -> None:
    """Given the legacy fixture signed as python-quickbooks checks it (its
    QuickBooks.validate_webhook_signature), verify_quickbooks accepts the same header: our recipe is
    Intuit's as the SDK implements it, not merely self-consistent."""
    header = independent_b64_hmac(KEY, QBO_BODY)
    assert header == QBO_VECTOR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = QuickBooks(minorversion=75, verifier_token=KEY)
    assert client.validate_webhook_signature(QBO_BODY.decode("utf-8"), header)
    verify_quickbooks(QBO_BODY, QBO_VECTOR, keys(KEY))
    assert not client.validate_webhook_signature(QBO_BODY.decode("utf-8"), sign(QBO_BODY, "other"))


def test_xero_known_answer() -> None:
    """Given the Xero fixture and its signature computed by openssl with the webhook key,
    verify_xero accepts it, and the signature equals hmac's own computation here."""
    assert independent_b64_hmac(KEY, XERO_BODY) == XERO_VECTOR
    verify_xero(XERO_BODY, XERO_VECTOR, keys(KEY))


def test_freshbooks_known_answer_vector() -> None:
    """Given the SDK docs' example delivery, the signed string is exactly json.dumps' default output
    (", " and ": ", fields in the order sent, every value a string) and its signature verifies."""
    signed = freshbooks_signed_string(freshbooks_form(FB_BODY))
    assert signed == (
        '{"name": "payment.create", "object_id": "1234567", "account_id": "6BApk", '
        '"business_id": "6543", "identity_id": "1234", "user_id": "1"}'
    )
    assert independent_b64_hmac(KEY, signed.encode()) == FB_VECTOR
    assert fb_signature(FB_BODY, KEY) == FB_VECTOR
    assert verify_freshbooks(FB_BODY, FB_VECTOR, keys(KEY)) == {
        "name": "payment.create",
        "object_id": "1234567",
        "account_id": "6BApk",
        "business_id": "6543",
        "identity_id": "1234",
        "user_id": "1",
    }


def test_freshbooks_separators_trap() -> None:
    """Given a sender that signed compact JSON, sorted keys, or the raw body instead of FreshBooks'
    json.dumps defaults, each is refused: only the exact recipe verifies."""
    form = dict(parse_qsl(FB_BODY.decode()))
    wrong = [
        json.dumps(form, separators=(",", ":")).encode(),
        json.dumps(form, sort_keys=True).encode(),
        FB_BODY,
    ]
    for message in wrong:
        with pytest.raises(BadSignature):
            verify_freshbooks(FB_BODY, independent_b64_hmac(KEY, message), keys(KEY))


def test_freshbooks_non_ascii_value_is_signed_escaped() -> None:
    """Given a field with "é" (percent-encoded UTF-8 in the body), the signed string carries it as
    \\u00e9 (ensure_ascii): that verifies, and a signature over the unescaped UTF-8 does not."""
    body = b"name=payment.create&object_id=1&account_id=Caf%C3%A9&user_id=1"
    signed = '{"name": "payment.create", "object_id": "1", "account_id": "Caf\\u00e9", "user_id": "1"}'
    assert freshbooks_signed_string(freshbooks_form(body)) == signed
    form = verify_freshbooks(body, independent_b64_hmac(KEY, signed.encode()), keys(KEY))
    assert form["account_id"] == "Café"
    raw_utf8 = json.dumps(dict(parse_qsl(body.decode())), ensure_ascii=False).encode()
    with pytest.raises(BadSignature):
        verify_freshbooks(body, independent_b64_hmac(KEY, raw_utf8), keys(KEY))


def test_freshbooks_repeated_field_keeps_the_first_value_as_werkzeug_does() -> None:
    """Given a field sent twice, the form (signed and returned) keeps its first value, as werkzeug's
    request.form does under FreshBooks' documented recipe (dict(parse_qsl) would keep the last)."""
    body = b"name=payment.create&object_id=1&object_id=2&account_id=A"
    expected = json.dumps(ImmutableMultiDict(parse_qsl(body.decode())))
    assert freshbooks_signed_string(freshbooks_form(body)) == expected
    form = verify_freshbooks(body, independent_b64_hmac(KEY, expected.encode()), keys(KEY))
    assert form["object_id"] == "1"


@pytest.mark.parametrize("body", [b"name", b"a=1&&b=2", b"\xff\xfe", b"name=%ff", b"&".join([b"f=1"] * 101)])
def test_freshbooks_body_that_is_no_form_is_a_bad_signature(body: bytes) -> None:
    """Given a body that no form-encoding produces (a bare word, an empty field, bad UTF-8 raw or
    percent-encoded, over 100 fields), verify_freshbooks answers BadSignature: FreshBooks cannot
    have signed it, and nothing else escapes."""
    with pytest.raises(BadSignature):
        verify_freshbooks(body, independent_b64_hmac(KEY, body), keys(KEY))


# --- every ledger: good, bad, missing, rotated ----------------------------------------------------


@ALL
def test_good_signature_passes(ledger: str) -> None:
    """Given a body signed with the configured key, verification passes."""
    verify, body, signer = LEDGERS[ledger]
    verify(body, signer(body, KEY), keys(KEY))


@ALL
def test_signature_with_another_key_is_refused(ledger: str) -> None:
    """Given a body signed with a key we do not hold, verification raises BadSignature (a 401)."""
    verify, body, signer = LEDGERS[ledger]
    with pytest.raises(BadSignature) as caught:
        verify(body, signer(body, "attacker"), keys(KEY))
    assert isinstance(caught.value, RequestRejected)
    assert caught.value.status_code == 401


@ALL
@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_refused(ledger: str, header: str | None) -> None:
    """Given no signature header (absent or empty), verification raises BadSignature naming it."""
    verify, body, _ = LEDGERS[ledger]
    with pytest.raises(BadSignature, match="missing"):
        verify(body, header, keys(KEY))


@ALL
def test_old_key_still_verifies_during_rotation(ledger: str) -> None:
    """Given two configured keys (new, old) and a body signed with the old one, verification passes;
    and with the new one too."""
    verify, body, signer = LEDGERS[ledger]
    verify(body, signer(body, OLD_KEY), keys(KEY, OLD_KEY))
    verify(body, signer(body, KEY), keys(KEY, OLD_KEY))


@ALL
def test_no_configured_key_refuses_everything(ledger: str) -> None:
    """Given no key at all, or only an empty one (which anyone could sign with), a signature made
    with that empty key is refused."""
    verify, body, signer = LEDGERS[ledger]
    for configured in ([], keys("")):
        with pytest.raises(BadSignature):
            verify(body, signer(body, ""), configured)


@ALL
def test_body_tampered_by_one_byte_is_refused(ledger: str) -> None:
    """Given a signed body changed afterwards in one byte, verification raises BadSignature."""
    verify, body, signer = LEDGERS[ledger]
    header = signer(body, KEY)
    tampered = body.replace(b"1234567", b"1234568") if ledger == "freshbooks" else body.replace(b"1", b"2", 1)
    assert tampered != body
    with pytest.raises(BadSignature):
        verify(tampered, header, keys(KEY))


@ALL
@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.rstrip("="),  # padding dropped
        lambda s: s + "=",  # padding added
        lambda s: "!!" + s[2:],  # not base64 at all
        lambda s: s.replace("+", "-").replace("/", "_"),  # url-safe alphabet
        lambda s: s.encode().hex(),  # hex instead of base64
        lambda s: " " + s,  # leading space
        lambda s: s[:-2] + "é=",  # a non-ASCII character (compare_digest would raise TypeError)
        lambda s: "sha256=" + s,  # a prefix no ledger sends
        lambda s: s * 400,  # long
    ],
)
def test_malformed_header_is_a_bad_signature_and_nothing_else(
    ledger: str, mangle: Callable[[str], str]
) -> None:
    """Given a header mangled from the right signature (bad padding, other alphabets, non-ASCII,
    prefixes, huge), verification raises BadSignature: never ValueError, binascii.Error or
    TypeError (a 500)."""
    verify, body, signer = LEDGERS[ledger]
    good = signer(body, KEY)
    header = mangle(good)
    if header == good:
        pytest.skip("this mangling leaves this signature unchanged")
    with pytest.raises(BadSignature):
        verify(body, header, keys(KEY))


@ALL
def test_every_key_is_compared_in_constant_time(ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given three keys and a header that matches the first, hmac.compare_digest is called once per
    key (no early exit that would time which key matched), with the computed base64 string and the
    header string, and no other comparison decides."""
    verify, body, signer = LEDGERS[ledger]
    header = signer(body, "k1")
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def recording(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", recording)
    verify(body, header, keys("k1", "k2", "k3"))
    assert len(calls) == 3
    assert all(b == header and isinstance(a, str) for a, b in calls)
    assert calls[0][0] == header

    calls.clear()
    monkeypatch.setattr(webhooks.hmac, "compare_digest", lambda *_: False)
    with pytest.raises(BadSignature):
        verify(body, header, keys("k1"))


# --- nothing secret in messages -------------------------------------------------------------------


@ALL
def test_refusal_message_names_no_key_signature_or_body_value(ledger: str) -> None:
    """Given a refused signature, the error's text names the header only: not the key, the expected
    or received signature, or any body value."""
    verify, body, signer = LEDGERS[ledger]
    header = signer(body, "attacker-key")
    with pytest.raises(BadSignature) as caught:
        verify(body, header, keys(KEY))
    message = str(caught.value) + repr(caught.value)
    for secret in (KEY, "attacker-key", header, signer(body, KEY), "1234567", "9341453172471531"):
        assert secret not in message


# --- the queue message's verifier -----------------------------------------------------------------


def verify_message() -> LedgerEventMessage:
    return LedgerEventMessage(
        connection_id="acme-fb",
        ledger="freshbooks",
        kind="callback_verify",
        object_id="2208",
        operation="verify",
        changed_at=None,
        event_id=None,
        verifier=SecretStr("scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"),
    )


def test_verifier_is_hidden_from_repr_str_dumps_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Given a callback_verify message, its verifier appears in no repr, str, model_dump,
    model_dump_json or log line."""
    message = verify_message()
    secret = "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("message %s %r", message, message)
    for shown in (repr(message), str(message), str(message.model_dump()), message.model_dump_json()):
        assert secret not in shown
    assert secret not in caplog.text
    assert message.model_dump()["verifier"] is None
    assert json.loads(message.model_dump_json())["verifier"] is None


def test_queue_body_carries_the_verifier_and_round_trips() -> None:
    """Given a callback_verify message, to_queue_body() (the SQS body) carries the verifier and
    from_queue_body() gives back an equal message with the same secret; a plain model_dump_json,
    which hides it, cannot be mistaken for a message with a verifier (it is refused on the way
    back, not read as one with a wrong or empty code)."""
    message = verify_message()
    body = message.to_queue_body()
    assert json.loads(body)["verifier"] == "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"
    back = LedgerEventMessage.from_queue_body(body)
    assert back == message
    assert back.verifier is not None
    assert back.verifier.get_secret_value() == "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd"
    with pytest.raises(ValueError, match="verifier"):
        LedgerEventMessage.model_validate_json(message.model_dump_json())


def test_verifier_only_on_callback_verify() -> None:
    """Given a payment message with a verifier, or a callback_verify without one, the model refuses
    it: a verifier never rides along on another kind, and a verify never travels without its code."""
    with pytest.raises(ValueError, match="verifier"):
        LedgerEventMessage(
            connection_id="acme-fb",
            ledger="freshbooks",
            kind="payment",
            object_id="1",
            operation="create",
            changed_at=None,
            event_id=None,
            verifier=SecretStr("x"),
        )
    with pytest.raises(ValueError, match="verifier"):
        LedgerEventMessage(
            connection_id="acme-fb",
            ledger="freshbooks",
            kind="callback_verify",
            object_id="1",
            operation="verify",
            changed_at=None,
            event_id=None,
        )
