"""The operator CLI's commands: one module each, sharing one way to find the deployment, print
and fail.

A command module has ``register(commands)``, which adds its parser (built with ``parent=COMMON``
where it works on a deployment) and sets ``func`` to a ``run(args, ctx) -> int``. It prints
through ``ctx`` (a table for people, ``--json`` for scripts: stable keys, one JSON document on
stdout) and fails by raising ``CliError``: ``main`` turns that (and any AWS, ledger or file
error) into one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rich.console import Console
from rich.table import Table

from invoice_sync.ledgers.port import LedgerPort
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.secrets import SecretStore
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync_ops.target import Target, resolve


class CliError(Exception):
    """What went wrong, in one line a person can act on. ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def common_parser() -> argparse.ArgumentParser:
    """Options every deployment command takes: where the deployment is, and the output form."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("deployment (first match: --target, --stack, --local)")
    where.add_argument("--stack", help="a deployed stack's name (or INVOICE_SYNC_STACK)")
    where.add_argument("--region", help="its AWS region (default: the AWS configuration's)")
    where.add_argument("--local", action="store_true", help="the stack `invoice-sync local up` is running")
    where.add_argument("--target", help="a target file (or INVOICE_SYNC_TARGET), as `local up` writes")
    common.add_argument(
        "--connection",
        help="the connection to work on (or INVOICE_SYNC_CONNECTION; default: the only one registered)",
    )
    common.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    return common


COMMON = common_parser()


@dataclass
class Context:
    """What a command gets: the deployment (resolved on first use) and the two output streams."""

    args: argparse.Namespace
    console: Console
    errors: Console
    _target: Target | None = field(default=None, repr=False)

    @cached_property
    def target(self) -> Target:
        if self._target is not None:
            return self._target
        return resolve(
            target_file=getattr(self.args, "target", None),
            stack=getattr(self.args, "stack", None),
            local=getattr(self.args, "local", False),
            region=getattr(self.args, "region", None),
        )

    # --- the deployment's stores, built as the functions build them ----------------------------

    @cached_property
    def mappings(self) -> MappingsStore:
        # No cache: an operator reads what is there now, right after changing it.
        return MappingsStore(self.target.mappings_table, self.target.client("dynamodb"), cache_seconds=0)

    @cached_property
    def state(self) -> SyncStateStore:
        return SyncStateStore(self.target.sync_table, self.target.client("dynamodb"))

    @cached_property
    def secrets(self) -> SecretStore:
        # As the functions wire it: saved tokens also record their dates (non-secret) for the daily
        # report, so a reconnect shows at once as healthy tokens.
        return SecretStore(
            self.target.secrets_prefix,
            self.target.client("secretsmanager"),
            cache_seconds=0,
            on_tokens_saved=self.state.record_token_dates,
        )

    @cached_property
    def ledgers(self) -> LedgerRegistry:
        """Adapters built exactly as push builds them (same limits, same token lease and vault)."""
        return LedgerRegistry(self.target.settings(), self.state, self.secrets)

    @cached_property
    def connection_id(self) -> str:
        """The connection the command works on: ``--connection``, the environment, or the only one."""
        return self.choose_connection(
            none="no connection registered yet: run `invoice-sync connect LEDGER` first",
            several="pass --connection ID",
        )

    def choose_connection(self, *, none: str, several: str) -> str:
        """``--connection``, else ``INVOICE_SYNC_CONNECTION``, else the only one registered; ``none``
        is the error when none is, ``several`` what to do when there are several."""
        chosen = getattr(self.args, "connection", None) or os.environ.get("INVOICE_SYNC_CONNECTION")
        if chosen:
            return str(chosen)
        registered = [c.connection_id for c in self.mappings.connections()]
        if len(registered) == 1:
            return registered[0]
        if not registered:
            raise CliError(none)
        raise CliError(f"several connections ({', '.join(registered)}): {several}")

    def connection(self, connection_id: str) -> Connection:
        """A registered connection, or one line saying it is not there and how to list them."""
        connection = self.mappings.connection(connection_id)
        if connection is None:
            known = ", ".join(c.connection_id for c in self.mappings.connections()) or "none yet"
            raise CliError(f"unknown connection {connection_id!r} (registered: {known})")
        return connection

    def connection_mappings(self, connection_id: str) -> Mappings:
        """The connection with its product and tax-rate rules, as push reads them."""
        self.connection(connection_id)  # the one-line error for an unknown id
        mappings = self.mappings.mappings(connection_id)
        assert mappings is not None
        return mappings

    def ledger(self, connection_id: str) -> LedgerPort:
        """The connection's ledger adapter: its tokens refreshed and saved as push would."""
        return self.ledgers(self.connection_mappings(connection_id))

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def emit(self, data: Any, table: Table | None = None) -> None:
        """``data`` as JSON with ``--json``, else the table (or nothing when there is none)."""
        if self.json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str))
        elif table is not None:
            self.console.print(table)

    def say(self, text: str) -> None:
        """A line for people; kept off stdout with ``--json`` so scripts read JSON only."""
        (self.errors if self.json else self.console).print(text)
