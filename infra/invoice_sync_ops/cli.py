"""``invoice-sync``: the operator command line.

Every module of ``invoice_sync_ops.commands`` adds its commands (see that package); this module
parses, runs the one asked for, and turns any failure into one line on stderr and a non-zero
exit status: 1 when the work failed, 2 when the command line was wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import signal
import sys
import threading

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from invoice_sync.errors import InvoiceSyncError
from invoice_sync.mapping.file import MappingFileError
from invoice_sync.sources.stripe_api import StripeApiError
from invoice_sync_ops import commands
from invoice_sync_ops.commands import CliError, Context
from invoice_sync_ops.target import TargetError, default_local_file

LEDGER_CHOICES = ("quickbooks", "xero", "freshbooks")


def _local_up(args: argparse.Namespace, ctx: Context) -> int:
    from invoice_sync_ops.local.stack import LocalStack  # noqa: PLC0415 - moto loads slowly; only here

    console = ctx.console
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    target_file = default_local_file()
    with LocalStack(ledger=args.ledger, payments_back_worker=args.payments_back) as stack:
        stack.target().write(target_file)
        console.print("[bold]invoice-sync local stack[/] (Ctrl-C stops it)")
        console.print(f"  AWS (moto server)       {stack.aws_endpoint}")
        console.print(f"  ledger                  {stack.ledger.title}, tenant {stack.ledger.tenant_id}")
        console.print(f"  ledger sandbox          {stack.ledger_url}")
        console.print(f"  Stripe webhooks         {stack.webhook_url()}")
        console.print(f"  Stripe API (stand-in)   {stack.stripe_url}  (try, backfill)")
        console.print(f"  webhook secret          {stack.company.webhook_secret}  (local demo value)")
        if args.payments_back:
            # The sandbox and the Stripe stand-in are subscribed already: a payment recorded in the
            # sandbox reaches Stripe through these.
            console.print(f"  ledger webhooks         {stack.ledger_webhook_url()}  (payments back)")
            console.print(f"  ledger webhook key      {stack.company.ledger_webhook_key}  (local demo value)")
        console.print(f"  CLI target              {target_file}  (use --local)")
        try:
            with contextlib.suppress(KeyboardInterrupt):
                stopping.wait()
        finally:
            target_file.unlink(missing_ok=True)
    console.print("stopped")
    return 0


def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from invoice_sync_ops import demo  # noqa: PLC0415

    return demo.run(ctx.console, ledger=args.ledger)


def _register_builtin(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser("local", help="the local stack (moto server, a ledger sandbox)")
    up = local.add_subparsers(dest="action", required=True).add_parser(
        "up", help="start it in the foreground; other commands reach it with --local"
    )
    up.set_defaults(func=_local_up)
    up.add_argument(
        "--payments-back",
        action="store_true",
        help="turn payments back on and run its worker: payments recorded in the ledger sandbox "
        "reach the Stripe stand-in (the sandbox's webhooks, and on Xero the poll)",
    )
    demo = subparsers.add_parser("demo", help="run the end-to-end demo on a fresh local stack")
    demo.set_defaults(func=_demo)
    for command in (up, demo):
        command.add_argument(
            "--ledger",
            choices=LEDGER_CHOICES,
            default="quickbooks",
            help="which ledger sandbox the connection syncs into (default: quickbooks)",
        )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="invoice-sync", description="Operate invoice-sync: locally or on a deployed stack."
    )
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_builtin(subparsers)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Tables stay readable when the output is a pipe or a CI log (rich assumes 80 columns there).
    console = Console(width=None if sys.stdout.isatty() else 140)
    errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    ctx = Context(args=args, console=console, errors=errors)
    try:
        return int(args.func(args, ctx))
    except CliError as exc:
        return _fail(errors, str(exc), exc.code)
    except TargetError as exc:
        return _fail(errors, str(exc), 1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(errors, f"AWS refused: {error.get('Code', '')}: {error.get('Message', '')}", 1)
    except BotoCoreError as exc:
        return _fail(errors, f"AWS unreachable: {exc}", 1)
    except StripeApiError as exc:
        return _fail(errors, f"Stripe: {exc}", 1)
    except MappingFileError as exc:
        return _fail(errors, str(exc), 1)
    except InvoiceSyncError as exc:
        return _fail(errors, f"ledger: {exc}", 1)
    except httpx.HTTPError as exc:
        return _fail(errors, f"HTTP: {exc.__class__.__name__}: {exc}", 1)
    except OSError as exc:
        return _fail(errors, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)
    except KeyboardInterrupt:
        return _fail(errors, "interrupted", 130)


def _fail(errors: Console, message: str, code: int) -> int:
    errors.print(f"invoice-sync: {message}", markup=False, highlight=False, soft_wrap=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
