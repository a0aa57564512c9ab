"""``invoice-sync export``: the nightly export of one day, on demand.

The same use case the nightly_export function runs: the day's records through the day index, the
CSVs, the ledgers' import layouts, the workbook and the manifest under
``exports/<connection>/<yyyy>/<mm>/<dd>/``, replacing what an earlier run of the day wrote; then
the daily report on the alerts topic (``--no-report`` leaves it out).
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.table import Table

from invoice_sync.bootstrap import build_export
from invoice_sync.models.sync import utcnow
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.sync.daily_report import Outcome
from invoice_sync.sync.export import ExportFailed
from invoice_sync_ops.commands import COMMON, CliError, Context


def parse_day(text: str, today: date) -> date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (in the export's time zone); never the future."""
    value = text.strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"cannot read {text!r} as a date: use YYYY-MM-DD, today or yesterday", code=2
        ) from None
    if day > today:
        raise CliError(f"{day.isoformat()} is in the future (today is {today.isoformat()} there)")
    return day


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/London", code=2
        ) from None
    return name


def run(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.target.settings()
    time_zone = _zone(args.time_zone or settings.export_time_zone)
    day = parse_day(args.date, utcnow().astimezone(ZoneInfo(time_zone)).date())
    connection_id = ctx.connection_id
    ctx.connection(connection_id)  # one line for an unknown connection
    alerts = AlertPublisher(ctx.target.alerts_topic_arn, ctx.target.client("sns"))
    exporter, report = build_export(
        settings,
        state=ctx.state,
        s3_client=ctx.target.client("s3"),
        alerts=alerts,
        connections=ctx.mappings,
    )
    try:
        result = exporter.export(connection_id, day, time_zone)
    except ExportFailed as error:
        cause = error.__cause__ or error
        raise CliError(f"export of {connection_id} for {day.isoformat()} failed: {cause}") from None
    outcome = Outcome(connection_id, result.window, result)
    subject = None if args.no_report else report.send([outcome], utcnow())
    data = {**result.json(), "report": {"sent": subject is not None, "subject": subject}}
    table = Table(title=f"Export {connection_id} {day.isoformat()} ({time_zone})", title_justify="left")
    for column in ("file", "rows", "bytes", "sha256"):
        table.add_column(column, justify="right" if column in {"rows", "bytes"} else "left")
    for name, info in result.files.items():
        table.add_row(name, str(info.rows), str(info.bytes), info.sha256[:16] + "…")
    ctx.emit(data, table)
    ctx.say(f"written to s3://{result.bucket}/{result.prefix}")
    ctx.say(f"report sent: {subject}" if subject else "no report sent (--no-report)")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "export",
        parents=[COMMON],
        help="export one day's sync to S3 (CSV, import layouts, workbook, manifest) and send the report",
        description=(
            "Writes the day's records (every record last written that calendar day, in the export's "
            "time zone) as invoices, invoice_lines, payments, credit_notes and refunds CSVs (and "
            "payments_back for a connection with payments back on, deposits for one with payout "
            "deposits on), Xero and QuickBooks Online "
            "import files, an .xlsx workbook and manifest.json under "
            "exports/<connection>/<yyyy>/<mm>/<dd>/, replacing an earlier run's files; then sends "
            "the daily report to the alerts topic."
        ),
    )
    parser.add_argument("--date", required=True, help="the day: YYYY-MM-DD, today or yesterday")
    parser.add_argument("--time-zone", help="IANA time zone of the day (default: the deployment's, UTC)")
    parser.add_argument("--no-report", action="store_true", help="write the files only, send no report")
    parser.set_defaults(func=run)
