"""``invoice-sync``: the operator command line. So far: ``local up`` and ``demo``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from rich.console import Console

LEDGER_CHOICES = ("quickbooks", "xero", "freshbooks")


def _local_up(console: Console, ledger: str) -> int:
    from invoice_sync_ops.local.stack import LocalStack  # noqa: PLC0415 - moto loads slowly; only here

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with LocalStack(ledger=ledger) as stack:
        console.print("[bold]invoice-sync local stack[/] (Ctrl-C stops it)")
        console.print(f"  AWS (moto server)       {stack.aws_endpoint}")
        console.print(f"  ledger                  {stack.ledger.title}, tenant {stack.ledger.tenant_id}")
        console.print(f"  ledger sandbox          {stack.ledger_url}")
        console.print(f"  Stripe webhooks         {stack.webhook_url()}")
        console.print(f"  webhook secret          {stack.company.webhook_secret}  (local demo value)")
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    console.print("stopped")
    return 0


def _demo(console: Console, ledger: str) -> int:
    from invoice_sync_ops import demo  # noqa: PLC0415

    return demo.run(console, ledger=ledger)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="invoice-sync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="the local stack (moto server, a ledger sandbox)")
    up = local.add_subparsers(dest="action", required=True).add_parser(
        "up", help="start it in the foreground"
    )
    demo = commands.add_parser("demo", help="run the end-to-end demo on a fresh local stack")
    for command in (up, demo):
        command.add_argument(
            "--ledger",
            choices=LEDGER_CHOICES,
            default="quickbooks",
            help="which ledger sandbox the connection syncs into (default: quickbooks)",
        )
    args = parser.parse_args(argv)
    # Tables stay readable when the output is a pipe or a CI log (rich assumes 80 columns there).
    console = Console(width=None if sys.stdout.isatty() else 140)
    if args.command == "local":
        return _local_up(console, args.ledger)
    return _demo(console, args.ledger)


if __name__ == "__main__":
    sys.exit(main())
