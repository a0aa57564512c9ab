"""``invoice-sync secret webhook|stripe-api|ledger-webhook|stripe-writer``: store a connection's
webhook signing secret, its Stripe API key, its ledger's webhook key or its Stripe writer key in
Secrets Manager, where intake, payments back and the CLI read them.

The value is read from standard input (a pipe, or a prompt that does not echo), never from the
command line, where it would stay in the shell's history and the process list; it is never
printed. ``webhook --rotate`` keeps the current secret beside the new one, so webhooks signed
with either are accepted while the sender switches over; ``webhook --retire`` then drops the old.

Payments back (issue 7) reads two more: ``ledger-webhook``, the key the ledger signs its webhooks
with (QuickBooks: the app's webhook verifier token; Xero: the webhook key; FreshBooks: a callback's
verifier), where ``--add`` keeps the keys already stored (a rotation, or several FreshBooks
callbacks) and the default replaces them; and ``stripe-writer``, the one Stripe key that may write
(a restricted key with Invoices and Payment Records write, Invoice Payments read).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from invoice_sync.errors import ConnectionBroken, UnknownConnection
from invoice_sync.store.secrets import LedgerWebhookNotConfigured
from invoice_sync_ops.commands import COMMON, CliError, Context

# A secret shorter than this is a typo or a placeholder, not a signing secret.
MIN_WEBHOOK_SECRET = 16
# Where each ledger shows the key its webhooks are signed with (``secret ledger-webhook``).
LEDGER_WEBHOOK_KEY = {
    "quickbooks": "the Verifier Token on the app's Webhooks page (Intuit developer portal)",
    "xero": "the Webhook key on the app's Webhooks page (Xero developer portal)",
    "freshbooks": "the verifier FreshBooks sent when the callback was registered",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "secret",
        help="store a connection's webhook signing secret or Stripe API key (read from stdin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    webhook = kinds.add_parser(
        "webhook", parents=[COMMON], help="the signing secret of the connection's webhook endpoint"
    )
    how = webhook.add_mutually_exclusive_group()
    how.add_argument(
        "--rotate", action="store_true", help="keep the current secret beside the new one (a rotation)"
    )
    how.add_argument(
        "--retire", action="store_true", help="end a rotation: keep only the newest secret, read nothing"
    )
    webhook.set_defaults(func=run_webhook)
    stripe = kinds.add_parser(
        "stripe-api", parents=[COMMON], help="the Stripe API key that try and backfill read invoices with"
    )
    stripe.set_defaults(func=run_stripe)
    ledger_webhook = kinds.add_parser(
        "ledger-webhook",
        parents=[COMMON],
        help="the key the ledger signs its webhooks with (payments back)",
    )
    ledger_webhook.add_argument(
        "--add",
        action="store_true",
        help="keep the keys already stored beside the new one (a rotation); default: replace them",
    )
    ledger_webhook.set_defaults(func=run_ledger_webhook)
    writer = kinds.add_parser(
        "stripe-writer",
        parents=[COMMON],
        help="the Stripe restricted key payments back writes with (invoices, payment records)",
    )
    writer.set_defaults(func=run_stripe_writer)


def _read_value(what: str) -> str:
    """One line from a pipe, or from a prompt that does not echo; never from argv."""
    value = (getpass.getpass(f"{what} (not shown): ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not value:
        raise CliError(f"no {what} given on standard input")
    return value


def _current_webhook_secrets(ctx: Context, connection_id: str) -> list[str]:
    try:
        return [s.get_secret_value() for s in ctx.secrets.webhook_secrets(connection_id)]
    except UnknownConnection:
        return []


def run_webhook(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    current = _current_webhook_secrets(ctx, connection_id)
    if args.retire:
        if len(current) < 2:
            raise CliError(f"{connection_id} has no rotation to end ({len(current)} secret stored)")
        kept = current[:1]
    else:
        secret = _read_value("webhook signing secret")
        if connection.source == "stripe" and not secret.startswith("whsec_"):
            raise CliError("a Stripe webhook signing secret starts with whsec_ (shown per endpoint)")
        if len(secret) < MIN_WEBHOOK_SECRET:
            raise CliError(f"a webhook signing secret has at least {MIN_WEBHOOK_SECRET} characters")
        # Newest first: intake tries them in order, and --retire keeps the first.
        kept = [secret, *[s for s in current if s != secret][:1]] if args.rotate else [secret]
    ctx.secrets.put_webhook_secrets(connection_id, kept)
    data = {
        "connection": connection_id,
        "secret": "webhook",
        "name": f"{ctx.secrets.prefix}/{connection_id}/webhook",
        "active_secrets": len(kept),
    }
    if ctx.json:
        ctx.emit(data)
    else:
        rotation = " (the new one and the previous, until `secret webhook --retire`)" if len(kept) > 1 else ""
        ctx.say(f"webhook secret of {connection_id} stored: {len(kept)} active{rotation}")
    return 0


def run_stripe(args: argparse.Namespace, ctx: Context) -> int:  # noqa: ARG001 - the CLI's signature
    connection_id = ctx.connection_id
    ctx.connection(connection_id)
    key = _read_value("Stripe API key")
    if not key.startswith(("sk_", "rk_")):
        raise CliError("a Stripe API key starts with sk_ or rk_ (a restricted key with invoice read access)")
    ctx.secrets.put_stripe_api_key(connection_id, key)
    try:
        ctx.secrets.stripe_api_key(connection_id)  # reads back as try and backfill will read it
    except ConnectionBroken as exc:
        raise CliError(f"the stored Stripe key does not read back: {exc}") from None
    data = {
        "connection": connection_id,
        "secret": "stripe-api",
        "name": ctx.secrets.stripe_secret_name(connection_id),
        "mode": "live" if "_live_" in key else "test",
    }
    if ctx.json:
        ctx.emit(data)
    else:
        ctx.say(f"Stripe API key of {connection_id} stored ({data['mode']} mode)")
    return 0


def run_ledger_webhook(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    key = _read_value(f"{connection.ledger} webhook key")
    if key.startswith(("whsec_", "sk_", "rk_", "pk_")):
        raise CliError(
            f"that is a Stripe value, not the {connection.ledger} webhook key "
            f"({LEDGER_WEBHOOK_KEY[connection.ledger]})"
        )
    if len(key) < MIN_WEBHOOK_SECRET or any(ch.isspace() for ch in key):
        raise CliError(
            f"a ledger webhook key has at least {MIN_WEBHOOK_SECRET} characters and no spaces "
            f"({LEDGER_WEBHOOK_KEY[connection.ledger]})"
        )
    try:
        if args.add:
            ctx.secrets.add_ledger_webhook_key(connection_id, key)
        else:
            ctx.secrets.put_ledger_webhook_keys(connection_id, [key])
        # Read back as the ledger webhook function will read it.
        active = len(ctx.secrets.ledger_webhook_keys(connection_id))
    except LedgerWebhookNotConfigured as exc:
        raise CliError(f"{exc} (store it again without --add to replace it)") from None
    data = {
        "connection": connection_id,
        "secret": "ledger-webhook",
        "ledger": connection.ledger,
        "name": f"{ctx.secrets.prefix}/{connection_id}/ledger-webhook",
        "active_keys": active,
    }
    if ctx.json:
        ctx.emit(data)
    else:
        kept = " (the new one first, the earlier ones kept)" if active > 1 else ""
        ctx.say(f"{connection.ledger} webhook key of {connection_id} stored: {active} active{kept}")
    return 0


def run_stripe_writer(args: argparse.Namespace, ctx: Context) -> int:  # noqa: ARG001 - the CLI's signature
    connection_id = ctx.connection_id
    ctx.connection(connection_id)
    key = _read_value("Stripe writer key")
    if not key.startswith(("sk_", "rk_")):
        raise CliError(
            "a Stripe writer key starts with rk_ (a restricted key with Invoices and Payment Records "
            "write, Invoice Payments read) or sk_"
        )
    ctx.secrets.put_stripe_writer_key(connection_id, key)
    try:
        ctx.secrets.stripe_writer_key(connection_id)  # reads back as payments back will read it
    except ConnectionBroken as exc:
        raise CliError(f"the stored Stripe writer key does not read back: {exc}") from None
    data = {
        "connection": connection_id,
        "secret": "stripe-writer",
        "name": ctx.secrets.stripe_writer_secret_name(connection_id),
        "mode": "live" if "_live_" in key else "test",
        "restricted": key.startswith("rk_"),
    }
    if ctx.json:
        ctx.emit(data)
    else:
        ctx.say(f"Stripe writer key of {connection_id} stored ({data['mode']} mode)")
    if not data["restricted"]:
        # Works, but a leak of it can do anything in the Stripe account.
        ctx.errors.print(
            "note: a secret key (sk_) can do anything in the Stripe account; a restricted key (rk_) "
            "with Invoices and Payment Records write and Invoice Payments read is all payments back needs",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0
