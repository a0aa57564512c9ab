"""No secret in any log line: end-to-end flows on the local stack, every logger at DEBUG.

The flows: signed Stripe webhooks in over HTTP (invoice, payment, an unmapped product that parks
and alerts, an authentic but invalid body that is archived and alerted, a forged signature, an
unknown connection), push through the OAuth token refresh into the QuickBooks sandbox, and the
operator's reconciliation, which reads Stripe with the connection's API key.

What must never appear: the webhook signing secret, the Stripe API key, the OAuth client secret,
every access and refresh token the ledger issued during the run (recorded as the sandbox issues
them), every webhook signature sent, and every customer e-mail address the webhooks carried. Each
is looked for as it is and as JSON or a URL would escape it, in every record any logger emitted
(its message, its arguments, its extra fields, its traceback) and in everything written to the
process's stdout and stderr (where Powertools writes its JSON lines).

The detector is checked first: a planted secret, logged the way the code logs, must be caught.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from invoice_sync.observability import SERVICE
from invoice_sync.observability import logger as app_logger
from invoice_sync.sources.stripe import signature_header
from invoice_sync_ops.cli import main
from invoice_sync_ops.local.stack import LocalStack

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"
FLOWS = (
    "a1_invoice.finalized.current.json",
    "a2_invoice.paid.current.json",
    "a3_invoice.payment_succeeded.current.json",
    "c1_invoice.finalized.unmapped_product.current.json",
    "d3_invoice.finalized.jpy.current.json",
    "f1_credit_note.created.current.json",
    "g1_charge.refunded.partial.current.json",
)
EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class Records(logging.Handler):
    """Keeps every record of every logger, rendered whole: message, arguments, extras, traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: v for k, v in vars(record).items() if k not in {"msg", "args", "exc_info"}}
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!r} % {record.args!r}"
        traceback = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.lines.append(f"{message} {json.dumps(fields, default=str)} {traceback}")
        self.names.append(record.name)


def _forms(secret: str) -> set[str]:
    """The secret, and how JSON or a URL would write it."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    }


def leaks(lines: list[str], secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(what leaked, the line) for every line that holds any form of any secret."""
    found = []
    for name, secret in secrets.items():
        forms = _forms(secret)
        found += [(name, line[:300]) for line in lines if any(form in line for form in forms)]
    return found


class Capture:
    """Every record of every logger at DEBUG (``Records`` on the root logger), and the JSON lines
    the app's Powertools logger writes, through its own formatter to a buffer of ours."""

    def __init__(self) -> None:
        self.records = Records()
        self.json_lines = io.StringIO()
        self._json = logging.StreamHandler(self.json_lines)
        self._json.setFormatter(app_logger.registered_formatter)
        self._levels: dict[str, int] = {}

    def __enter__(self) -> Capture:
        root = logging.getLogger()
        root.addHandler(self.records)
        logging.getLogger(SERVICE).addHandler(self._json)
        # Every logger at DEBUG, the third-party ones too (botocore, httpx, werkzeug, moto).
        for name in ["", *logging.root.manager.loggerDict]:
            one = logging.getLogger(name)
            self._levels[name] = one.level
            one.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger().removeHandler(self.records)
        logging.getLogger(SERVICE).removeHandler(self._json)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    def lines(self) -> list[str]:
        return self.records.lines + self.json_lines.getvalue().splitlines()

    def by_logger(self) -> list[tuple[str, str]]:
        """(logger name, line) for every record, and ("invoice-sync", line) for each JSON line."""
        return [
            *zip(self.records.names, self.records.lines, strict=True),
            *(("invoice-sync", line) for line in self.json_lines.getvalue().splitlines()),
        ]


def test_the_detector_catches_a_planted_secret() -> None:
    """Given a token logged the ways code logs (a message argument, an extra field of the app's
    JSON logger, a third-party debug line, a traceback), then the detector finds each one, JSON-
    or URL-escaped forms included, and a line without it is not reported."""
    planted = "RT1-planted/secret+token=="
    with Capture() as capture:
        app_logger.info("refreshed", extra={"refresh_token": planted})
        logging.getLogger("botocore.endpoint").debug("body: %s", json.dumps({"t": planted}))
        logging.getLogger("httpx").debug("url: %s", "https://x/?t=" + urllib.parse.quote(planted, safe=""))
        try:
            raise ValueError(f"bad token {planted}")
        except ValueError:
            app_logger.exception("failed")
        app_logger.info("clean line")
    found = leaks(capture.lines(), {"refresh token": planted})
    assert len(found) >= 5  # record and JSON line of the extra and of the traceback, botocore, httpx
    assert all(name == "refresh token" for name, _ in found)
    assert not leaks(["clean line", "RT1-planted/other"], {"refresh token": planted})


@dataclass
class Issued:
    """Every access and refresh token the ledger sandbox hands out while the flows run."""

    tokens: list[str] = field(default_factory=list)

    def wrap(self, issue: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
            answer = issue(*args, **kwargs)
            self.tokens += [str(answer[k]) for k in ("access_token", "refresh_token") if answer.get(k)]
            return answer

        return recorded


def _post(
    stack: LocalStack, body: bytes, secret: str, signatures: list[str], connection: str | None = None
) -> int:
    header = signature_header(body, [secret], int(time.time()))
    signatures.append(header.split("v1=", 1)[1])
    response = httpx.post(
        stack.webhook_url(connection_id=connection),
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response.status_code


@dataclass
class Run:
    """What the flows logged, by logger, and every secret they involved, by name."""

    lines: list[tuple[str, str]]
    secrets: dict[str, str]

    def leaks(self, keep: Callable[[str], bool]) -> list[tuple[str, str]]:
        return leaks([line for name, line in self.lines if keep(name)], self.secrets)


def _wire_dump(name: str) -> bool:
    """botocore's DEBUG request and response dumps (``Making request ... with params``,
    ``Response body``): every byte on the wire, by design."""
    return name.startswith("botocore")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The local stack with the app's logger at DEBUG from its start and every other logger at
    DEBUG while the flows run."""
    issued = Issued()
    signatures: list[str] = []
    emails: set[bytes] = set()
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
        with LocalStack() as stack:
            stack.sandbox._issue_tokens = issued.wrap(stack.sandbox._issue_tokens)  # type: ignore[attr-defined]
            company = stack.company
            with Capture() as capture:
                for fixture in FLOWS:
                    body = (EVENTS / fixture).read_bytes()
                    emails |= set(EMAIL.findall(body))
                    assert _post(stack, body, company.webhook_secret, signatures) == 200
                invalid = (EVENTS / FLOWS[0]).read_bytes().replace(b'"currency": "usd"', b'"currency": 7')
                assert _post(stack, invalid, company.webhook_secret, signatures) == 400
                assert _post(stack, b"{}", "whsec_forged", signatures) == 401
                ghost = (EVENTS / FLOWS[0]).read_bytes()
                assert _post(stack, ghost, company.webhook_secret, signatures, connection="ghost") == 404
                assert stack.drain()
                # The operator's reconciliation reads Stripe with the connection's key.
                target = tmp_path_factory.mktemp("target") / "target.json"
                stack.target().write(target)
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    main(["reconcile", "--from", "today", "--to", "today", "--target", str(target)])
        app_logger.setLevel(logging.ERROR)
    assert issued.tokens, "push should have refreshed its token with the sandbox"
    assert emails, "the fixtures carry customer e-mails"
    secrets = {
        "webhook signing secret": company.webhook_secret,
        "Stripe API key": company.stripe_api_key,
        "OAuth client secret": company.credentials.client_secret,
        "initial refresh token": company.credentials.refresh_token,
        **{f"issued token {i}": token for i, token in enumerate(issued.tokens)},
        **{f"signature {i}": signature for i, signature in enumerate(signatures)},
        **{f"customer e-mail {e.decode()}": e.decode() for e in emails},
    }
    return Run(capture.by_logger() + [("stdout", line) for line in printed.getvalue().splitlines()], secrets)


def test_no_secret_token_signature_or_email_in_any_log_line(run: Run) -> None:
    """Given every logger at DEBUG, when webhooks go through intake and push into the QuickBooks
    sandbox (token refresh included), an authentic invalid body and forged or misrouted ones are
    refused, and the operator reconciles the day against Stripe, then no log line of ours, of
    httpx, werkzeug, moto or urllib3, and nothing the CLI printed, holds the signing secret, the
    Stripe key, the OAuth client secret, any token issued, any signature sent or any customer
    e-mail. (botocore's wire dumps: the next test.)"""
    ours = [line for name, line in run.lines if name == "invoice-sync"]
    assert len(ours) > 20, "the app's logger really was at DEBUG"
    assert len(run.lines) > 200, "the third-party loggers really were at DEBUG"
    assert run.leaks(lambda name: not _wire_dump(name)) == []


def test_botocore_never_logs_its_wire_dumps_under_a_debug_root_logger() -> None:
    """Given the root logger at DEBUG, as Lambda sets it when the template's ApplicationLogLevel is
    DEBUG, then botocore and boto3 still log at INFO at most: their DEBUG lines are every request's
    parameters and response body (secret values, items with customer e-mails), which the run
    above shows when they are forced to DEBUG (``_wire_dump`` lines are left out of its check)."""
    from invoice_sync import observability  # noqa: F401, PLC0415 - the handlers import it first

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        for name in ("botocore", "boto3", "botocore.endpoint", "botocore.parsers", "boto3.resources"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
    finally:
        root.setLevel(level)
