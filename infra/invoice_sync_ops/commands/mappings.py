"""``invoice-sync mappings export|import|check|history``: a connection's mapping as a file.

``export FILE`` writes the connection's settings and rules (YAML or CSV, by the file's name);
``import FILE`` makes the connection equal to a file, as a new mapping version (``--dry-run``
prints what would change); ``check`` reads the ledger's chart and reports every rule or setting
that points at something missing or inactive (exit 1 when there is any); ``history`` lists the
versions imports made. The file format is ``docs/cli-mappings.md``. An import also records the
connection's ledger company in the tenant directory (ledger webhooks name their company, design
two-way 3.2); ``check`` also says what payments back still needs when it is on (its secrets:
whether they exist, never their values).

A bad file is one line on stderr (file, line, field, what is wrong) and exit 1, and nothing is
written: the whole file is parsed and checked before the first write.
"""

from __future__ import annotations

import argparse
import getpass
import gzip
import hashlib
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from invoice_sync.errors import ConnectionBroken
from invoice_sync.mapping import file as mapping_file
from invoice_sync.mapping.changes import Plan, plan
from invoice_sync.mapping.check import NOT_CHECKED, check, check_payments_back
from invoice_sync.mapping.file import MappingDocument, MappingFileError
from invoice_sync.models.mapping import Connection, MappingVersion
from invoice_sync.store.mappings import MappingWriteError
from invoice_sync.store.secrets import LedgerWebhookNotConfigured
from invoice_sync_ops.commands import COMMON, CliError, Context

# A version record keeps the imported document when it fits comfortably in one DynamoDB item
# (400 KB); a larger one (tens of thousands of customers) keeps only its hash and counts.
SNAPSHOT_LIMIT = 300_000
SHOWN_PER_CHANGE = 8
# An import holds its connection's lease this long at most (a crash frees it after that).
IMPORT_LEASE_SECONDS = 300


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mappings = commands.add_parser("mappings", help="a connection's mapping rules as a YAML or CSV file")
    actions = mappings.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", parents=[COMMON], help="write the mapping to FILE (- for stdout)")
    export.add_argument("file", metavar="FILE", help="where to write: NAME.yaml, NAME.yml, NAME.csv or -")
    export.add_argument("--format", choices=("yaml", "csv"), help="the form (default: from FILE's name)")
    export.add_argument("--version", type=int, help="an earlier version an import recorded")
    export.add_argument(
        "--with-learned", action="store_true", help="include customer rules push learned by itself"
    )
    export.set_defaults(func=run_export)
    load = actions.add_parser(
        "import", parents=[COMMON], help="make the connection's mapping equal to FILE (a new version)"
    )
    load.add_argument("file", metavar="FILE", help="a mapping file: NAME.yaml, NAME.yml or NAME.csv")
    load.add_argument("--format", choices=("yaml", "csv"), help="the form (default: from FILE's name)")
    load.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    load.set_defaults(func=run_import)
    checking = actions.add_parser(
        "check", parents=[COMMON], help="report rules pointing at missing or inactive ledger entries"
    )
    checking.set_defaults(func=run_check)
    history = actions.add_parser("history", parents=[COMMON], help="the mapping versions imports made")
    history.set_defaults(func=run_history)


# --- export -------------------------------------------------------------------------------------


def _current(ctx: Context, connection_id: str) -> MappingDocument:
    connection = ctx.connection(connection_id)
    return MappingDocument.of(connection, ctx.mappings.all_rules(connection_id))


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    try:
        form = mapping_file.format_of(args.file if args.file != "-" else "-.yaml", args.format)
    except MappingFileError as exc:
        raise CliError(str(exc)) from None
    if args.version is not None and args.version != connection.mapping_version:
        document = _recorded(ctx, connection_id, args.version)
        version = args.version
    else:
        document = _current(ctx, connection_id)
        version = connection.mapping_version
    if not args.with_learned:
        document = document.without_learned()
    text = mapping_file.dump(document, form)
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.file)
    # Written beside the target and renamed, so a failed export never leaves half a file.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    counts = document.counts()
    ctx.emit(
        {
            "connection": connection_id,
            "mapping_version": version,
            "file": str(path),
            "format": form,
            "counts": counts,
            "with_learned": bool(args.with_learned),
        }
    )
    ctx.say(
        f"wrote {path}: mapping version {version} of {connection_id}, "
        + ", ".join(f"{n} {section.replace('_', ' ')}" for section, n in counts.items())
    )
    return 0


def _recorded(ctx: Context, connection_id: str, number: int) -> MappingDocument:
    record = ctx.mappings.version(connection_id, number)
    if record is None:
        known = ", ".join(str(v.version) for v in ctx.mappings.versions(connection_id)) or "none"
        raise CliError(f"no record of mapping version {number} of {connection_id} (recorded: {known})")
    if record.snapshot is None:
        raise CliError(
            f"mapping version {number} was too large to keep in its record; only its hash "
            f"{record.file_sha256[:12]} and counts are known"
        )
    return mapping_file.parse_yaml(gzip.decompress(record.snapshot).decode("utf-8"), f"version {number}")


# --- import -------------------------------------------------------------------------------------


def _actor(ctx: Context) -> str:
    """Who imported: the AWS identity the CLI writes with, else the local user."""
    try:
        arn = ctx.target.client("sts").get_caller_identity().get("Arn")
    except (BotoCoreError, ClientError):
        arn = None
    return str(arn) if arn else getpass.getuser()


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    ctx.connection(connection_id)
    try:
        form = mapping_file.format_of(args.file, args.format)
        data = Path(args.file).read_bytes()
        wanted = mapping_file.read(args.file, form, data)
    except MappingFileError as exc:
        raise CliError(str(exc)) from None
    if args.dry_run:
        return _import(args, ctx, connection_id, wanted, data)
    # One import of a connection at a time, from reading what is there to committing the new
    # version: two racing imports would otherwise leave the loser's rules live under the winner's
    # version number.
    lease, owner = f"mappings-import#{connection_id}", uuid.uuid4().hex
    if not ctx.state.acquire_lock(lease, owner, IMPORT_LEASE_SECONDS):
        raise CliError(f"another mappings import of {connection_id} is running; try again when it ends")
    try:
        return _import(args, ctx, connection_id, wanted, data)
    finally:
        ctx.state.release_lock(lease, owner)


def _import(
    args: argparse.Namespace, ctx: Context, connection_id: str, wanted: MappingDocument, data: bytes
) -> int:
    connection = ctx.connection(connection_id)  # read again under the lease
    try:
        mapping_file.check_for(wanted, connection, args.file)
    except MappingFileError as exc:
        raise CliError(str(exc)) from None
    changes = plan(_current(ctx, connection_id), wanted)
    result: dict[str, Any] = {
        "connection": connection_id,
        "file": args.file,
        "dry_run": bool(args.dry_run),
        "previous_version": connection.mapping_version,
        "mapping_version": connection.mapping_version,
        "changes": changes.as_json(),
        "written": False,
    }
    if not args.dry_run:
        # Idempotent, so also on an import that changes nothing: it fills the directory in for
        # connections registered before it existed.
        ctx.mappings.put_tenant_connection(connection.ledger, connection.tenant_id, connection_id)
    if args.dry_run or changes.empty:
        ctx.emit(result, _changes_table(changes))
        if changes.empty:
            ctx.say(
                f"nothing to change: {connection_id} stays at mapping version {connection.mapping_version}"
            )
        else:
            ctx.say("dry run: nothing written")
        return 0
    record = MappingVersion(
        version=connection.mapping_version + 1,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=_actor(ctx),
        file=os.path.basename(args.file),
        file_sha256=hashlib.sha256(data).hexdigest(),
        counts=wanted.counts(),
        changes=changes.totals(),
        snapshot=_snapshot(wanted),
    )
    try:
        # Rules first, then the settings and the version in one conditional transaction: a
        # document synced meanwhile may use the new rules under the old number, never the reverse.
        ctx.mappings.write_rules(connection_id, changes.puts, changes.deletes)
        version = ctx.mappings.commit_version(
            changes.settings.applied_to(connection), connection.mapping_version, record
        )
    except MappingWriteError as exc:
        raise CliError(str(exc)) from None
    result |= {"mapping_version": version, "written": True}
    ctx.emit(result, _changes_table(changes))
    totals = changes.totals()
    ctx.say(
        f"{connection_id}: mapping version {connection.mapping_version} -> {version} "
        f"({totals['added']} added, {totals['changed']} changed, {totals['removed']} removed, "
        f"{totals['settings']} settings)"
    )
    return 0


def _snapshot(document: MappingDocument) -> bytes | None:
    packed = gzip.compress(mapping_file.dump_yaml(document).encode("utf-8"), mtime=0)
    return packed if len(packed) <= SNAPSHOT_LIMIT else None


def _shown(values: list[str]) -> str:
    extra = len(values) - SHOWN_PER_CHANGE
    return ", ".join(values[:SHOWN_PER_CHANGE]) + (f" … and {extra} more" if extra > 0 else "")


def _changes_table(changes: Plan) -> Table:
    table = Table(title="Mapping changes", title_justify="left")
    for column in ("what", "added", "changed", "removed"):
        table.add_column(column)
    for section, found in changes.sections.items():
        if any(found.values()):
            table.add_row(section, *(_shown(found[change]) for change in ("added", "changed", "removed")))
    for name, (before, after) in changes.setting_changes.items():
        table.add_row(
            f"setting {name}",
            "",
            f"{getattr(before, 'value', before)} -> {getattr(after, 'value', after)}",
            "",
        )
    if changes.kept_learned:
        table.caption = f"{changes.kept_learned} learned customer rules kept (the file does not name them)"
    return table


# --- check --------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace, ctx: Context) -> int:  # noqa: ARG001 - the common options only
    connection_id = ctx.connection_id
    mappings = ctx.connection_mappings(connection_id)
    connection = mappings.connection
    chart = ctx.ledger(connection_id).chart()
    problems, checked = check(connection, mappings.rules, chart)
    if connection.payments_back:
        writer, webhook = payments_back_secrets(ctx, connection)
        problems += check_payments_back(connection, writer_key=writer, webhook_keys=webhook)
        checked += 1
    data = {
        "connection": connection_id,
        "ledger": connection.ledger,
        "mapping_version": connection.mapping_version,
        "problems": [p.as_json() for p in problems],
        "checked": {
            "rules_and_settings": checked,
            "chart": chart.counts(),
            "not_checked": [f"{kind} rules" for kind in NOT_CHECKED],
        },
    }
    table = Table(title=f"Mapping problems ({connection_id}, version {connection.mapping_version})")
    for column in ("kind", "source value", "ledger id", "problem"):
        table.add_column(column)
    for p in problems:
        table.add_row(p.kind, p.source_value, p.ledger_id, p.problem)
    ctx.emit(data, table if problems else None)
    counts = chart.counts()
    ctx.say(
        f"{len(problems)} problem(s) in {checked} rules and settings, against {counts['items']} items, "
        f"{counts['tax_codes']} tax codes and {counts['accounts']} accounts in {connection.ledger}"
    )
    return 1 if problems else 0


def payments_back_secrets(ctx: Context, connection: Connection) -> tuple[bool, bool]:
    """Whether the Stripe writer key and the ledger webhook key are stored (readable as payments
    back and the ledger webhook function read them); their values go no further than the store."""
    try:
        ctx.secrets.stripe_writer_key(connection.connection_id)
        writer = True
    except ConnectionBroken:
        writer = False
    try:
        ctx.secrets.ledger_webhook_keys(connection.connection_id)
        webhook = True
    except LedgerWebhookNotConfigured:
        webhook = False
    return writer, webhook


# --- payments back, turned on or off by connect ---------------------------------------------------


def set_payments_back(ctx: Context, connection_id: str, on: bool, *, how: str) -> Connection:
    """Turns payments back on or off as a mapping version of its own (as an import of the current
    mapping with that one setting changed would): recorded in ``history``, conditional on the
    version, under the import lease. Turned on, ``payments_back_since`` becomes now unless it is
    set already (nothing made before it is mirrored). Returns the connection as it now is."""
    lease, owner = f"mappings-import#{connection_id}", uuid.uuid4().hex
    if not ctx.state.acquire_lock(lease, owner, IMPORT_LEASE_SECONDS):
        raise CliError(
            f"a mappings import of {connection_id} is running; try --payments-back again when it ends"
        )
    try:
        connection = ctx.connection(connection_id)  # read again under the lease
        since = connection.payments_back_since
        if on and since is None:
            since = datetime.now(UTC).replace(microsecond=0)
        wanted = connection.model_copy(update={"payments_back": on, "payments_back_since": since})
        if wanted == connection:
            return connection
        current = _current(ctx, connection_id)
        changed = sum(
            getattr(connection, name) != getattr(wanted, name)
            for name in ("payments_back", "payments_back_since")
        )
        document = MappingDocument.of(wanted, current.rules)
        text = mapping_file.dump_yaml(document).encode("utf-8")
        record = MappingVersion(
            version=connection.mapping_version + 1,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            actor=_actor(ctx),
            file=how,
            file_sha256=hashlib.sha256(text).hexdigest(),
            counts=document.counts(),
            changes={"added": 0, "changed": 0, "removed": 0, "settings": changed},
            snapshot=_snapshot(document),
        )
        try:
            version = ctx.mappings.commit_version(wanted, connection.mapping_version, record)
        except MappingWriteError as exc:
            raise CliError(str(exc)) from None
        return wanted.model_copy(update={"mapping_version": version})
    finally:
        ctx.state.release_lock(lease, owner)


# --- history ------------------------------------------------------------------------------------


def run_history(args: argparse.Namespace, ctx: Context) -> int:  # noqa: ARG001
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    versions = ctx.mappings.versions(connection_id, with_snapshots=True)
    rows = [
        {**v.model_dump(mode="json", exclude={"snapshot"}), "exportable": v.snapshot is not None}
        for v in versions
    ]
    table = Table(title=f"Mapping versions of {connection_id} (now {connection.mapping_version})")
    for column in ("version", "at", "by", "file", "sha256", "added", "changed", "removed", "settings"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version),
            v.at,
            v.actor,
            v.file,
            v.file_sha256[:12],
            *(str(v.changes.get(k, 0)) for k in ("added", "changed", "removed", "settings")),
        )
    ctx.emit(
        {"connection": connection_id, "mapping_version": connection.mapping_version, "versions": rows}, table
    )
    return 0
