"""SNS alerts topic: one message per newly parked record or broken connection, storms summarised.

A storm is many alerts of one kind, connection and reason at once: a product without a mapping
parks every invoice that sells it, a revoked token every document of the connection. Sending each
would bury the operator in thousands of e-mails about one cause, so alerts about one document or
one connection are counted in a window per (kind, connection, reason), kept in the SyncState table
(``AlertWindows``):

- the first ``allowance`` alerts of a window go out one by one, each naming its document and the
  command that fixes it; the last of them says that more like it will be summarised;
- later ones in the window are counted (with the first few of their source ids) and not sent;
- when the window is over, one summary says how many came, which, and what to do: sent by the
  next alert of the same key, by the push batch of a process that counted into the window
  (``flush_due``), or at the latest by the nightly export (``flush_due(everything=True)``).

Nothing is ever silently lost: a publish that fails takes its count back so the retry sends it; a
window store that fails lets the alert out unwindowed; a summary is marked sent only after SNS took
it. Reports (the daily report, a reconciliation, an export failure) are one per connection and day
already and always go straight out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from invoice_sync.observability import logger
from invoice_sync.store import aws

WINDOW_SECONDS = 3600
# Alerts of one key sent one by one in a window before the rest are counted. One: the first alert
# of a cause names its document, the command that fixes it and that more like it will be counted;
# a storm of thousands is that e-mail and, an hour later, one summary naming the rest (issue 8:
# one e-mail, not thousands). A deployment that wants a few distinct ones read one by one can
# pass ``allowance`` to ``AlertWindows``.
ALLOWANCE = 1
# Source ids a summary names; the rest are counted (the record list is `invoice-sync log`).
EXAMPLES = 20
# Window items outlive their window by a week for the summary and a look at what was counted.
KEEP_SECONDS = 7 * 24 * 3600
PARTITION = "ALERT#WINDOW"


def storm_key(details: dict[str, Any]) -> str | None:
    """The window an alert counts in, or None for one that always goes out: alerts about one
    document (they carry its source_id) and about one connection (kind ``connection``) by kind,
    connection and reason; reports and summaries never."""
    connection, reason, kind = details.get("connection_id"), details.get("reason"), details.get("kind")
    if not connection or not reason or not kind:
        return None
    if "source_id" not in details and kind != "connection":
        return None
    return f"{kind}#{connection}#{reason}"


@dataclass(frozen=True)
class Window:
    """One window's state as stored: ``count`` alerts came, the first ``allowance`` were sent."""

    key: str
    kind: str
    connection_id: str
    reason: str
    opened: int
    until: int
    count: int
    allowance: int
    subject: str
    examples: tuple[str, ...]
    summarised: bool

    @property
    def suppressed(self) -> int:
        return max(0, self.count - self.allowance)


def _window(item: dict[str, Any]) -> Window:
    return Window(
        key=item["sk"]["S"],
        kind=item["kind"]["S"],
        connection_id=item["connection_id"]["S"],
        reason=item["reason"]["S"],
        opened=int(item["opened"]["N"]),
        until=int(item["until"]["N"]),
        count=int(item["alerts"]["N"]),
        allowance=int(item["allowance"]["N"]),
        subject=item.get("subject", {}).get("S", ""),
        examples=tuple(sorted(item.get("examples", {}).get("SS", []))),
        summarised="summarised" in item,
    )


class AlertWindows:
    """Alert windows in the SyncState table (pk ``ALERT#WINDOW``, sk the window's key): one
    conditional write per alert counted."""

    def __init__(
        self,
        table: str,
        client: Any | None = None,
        *,
        window_seconds: int = WINDOW_SECONDS,
        allowance: int = ALLOWANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._client = client or aws.client("dynamodb")
        self.window_seconds = window_seconds
        self.allowance = allowance
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": PARTITION}, "sk": {"S": key}}

    def count(self, key: str) -> Window | None:
        """The key's open window with this alert counted (its ``count`` is the alert's place), or
        None when no window is open for the key."""
        try:
            response = self._client.update_item(
                TableName=self.table,
                Key=self._key(key),
                UpdateExpression="ADD alerts :one",
                ConditionExpression="attribute_exists(pk) AND #until > :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"N": str(self.now())}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return _window(response["Attributes"])

    def get(self, key: str) -> Window | None:
        item = self._client.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True).get(
            "Item"
        )
        return _window(item) if item else None

    def open(self, key: str, subject: str, details: dict[str, Any]) -> Window | None:
        """Start the key's window with this alert as its first; None when another worker just
        started one (count again), or when the last window still owes its summary."""
        now = self.now()
        item = {
            **self._key(key),
            **{name: {"S": str(details[name])} for name in ("kind", "connection_id", "reason")},
            "opened": {"N": str(now)},
            "until": {"N": str(now + self.window_seconds)},
            "alerts": {"N": "1"},
            "allowance": {"N": str(self.allowance)},
            "subject": {"S": subject},
            "expires_at": {"N": str(now + self.window_seconds + KEEP_SECONDS)},
        }
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(pk) OR (#until <= :now AND "
                    "(attribute_exists(summarised) OR alerts <= allowance))"
                ),
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return _window(item)

    def uncount(self, key: str) -> None:
        """Take back an alert counted but not sent (its publish failed: the retry counts again)."""
        self._client.update_item(
            TableName=self.table,
            Key=self._key(key),
            UpdateExpression="ADD alerts :minus",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":minus": {"N": "-1"}},
        )

    def add_example(self, key: str, example: str) -> None:
        self._client.update_item(
            TableName=self.table,
            Key=self._key(key),
            UpdateExpression="ADD examples :example",
            ExpressionAttributeValues={":example": {"SS": [example]}},
        )

    def mark_summarised(self, window: Window) -> None:
        """After SNS took the summary: that window (and no newer one) owes nothing more."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key=self._key(window.key),
                UpdateExpression="SET summarised = :at",
                ConditionExpression="opened = :opened",
                ExpressionAttributeValues={
                    ":at": {"N": str(self.now())},
                    ":opened": {"N": str(window.opened)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def due(self) -> list[Window]:
        """Windows over whose counted alerts are not summarised yet (one query: windows expire)."""
        windows: list[Window] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="#until <= :now AND alerts > allowance AND attribute_not_exists(summarised)",
            ExpressionAttributeNames={"#until": "until"},
            ExpressionAttributeValues={":pk": {"S": PARTITION}, ":now": {"N": str(self.now())}},
            ConsistentRead=True,
        ):
            windows.extend(_window(item) for item in page["Items"])
        return windows


class AlertPublisher:
    def __init__(
        self, topic_arn: str, client: Any | None = None, *, windows: AlertWindows | None = None
    ) -> None:
        self.topic_arn = topic_arn
        self._client = client or aws.client("sns")
        # Without windows (the operator CLI's one-off runs) every alert goes out.
        self.windows = windows
        # Keys this process counted alerts into, with their windows' ends: flush_due looks only
        # when one of these is over, so a push batch costs no DynamoDB read for it otherwise.
        self._counted: dict[str, int] = {}

    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None:
        """E-mail subscribers read ``text``; machines read the JSON after it. An alert of a storm
        is counted instead of sent (module docstring)."""
        key = storm_key(details)
        if self.windows is None or key is None:
            self._send(subject, text, details)
            return
        try:
            window = self._place(self.windows, key, subject, details)
        except (ClientError, BotoCoreError) as error:
            # The window store is out: the alert goes out anyway (a storm is better than a loss).
            logger.warning("alert window unavailable", extra={"error": type(error).__name__})
            self._send(subject, text, details)
            return
        if window is None:
            self._send(subject, text, details)
        elif window.count <= self.windows.allowance:
            if window.count == self.windows.allowance:
                text += (
                    f"\n\nMore alerts like this one ({details['kind']}, connection "
                    f"{details['connection_id']}, {details['reason']}) in the next "
                    f"{self.windows.window_seconds // 60} minutes are counted and sent as one summary."
                )
            try:
                self._send(subject, text, details)
            except Exception:
                self.windows.uncount(key)
                raise
        else:
            if window.suppressed <= EXAMPLES:
                self.windows.add_example(key, str(details.get("source_id") or subject))
            self._counted[key] = window.until
            logger.info("alert counted, not sent", extra={"key": key, "place": window.count})

    def _place(self, windows: AlertWindows, key: str, subject: str, details: dict[str, Any]) -> Window | None:
        """The alert's window, with it counted: a window opened for it if none is (the last
        one's summary sent first); None when it should simply go out (a race lost twice)."""
        for _attempt in range(2):
            window = windows.count(key)
            if window is not None:
                return window
            last = windows.get(key)
            if last is not None and last.until <= windows.now() and last.suppressed and not last.summarised:
                self._summarise(last)
            opened = windows.open(key, subject, details)
            if opened is not None:
                return opened
        return None

    def flush_due(self, *, everything: bool = False) -> int:
        """Send the summaries of windows that are over: those this process counted into (a push
        batch), or every one (the nightly run, for windows whose processes are gone). Returns
        how many were sent."""
        if self.windows is None:
            return 0
        now = self.windows.now()
        if not everything and not any(until <= now for until in self._counted.values()):
            return 0
        sent = 0
        for window in self.windows.due():
            if everything or window.key in self._counted:
                self._summarise(window)
                sent += 1
        self._counted = {key: until for key, until in self._counted.items() if until > now}
        return sent

    def _summarise(self, window: Window) -> None:
        assert self.windows is not None
        kind, connection, reason = window.kind, window.connection_id, window.reason
        opened = datetime.fromtimestamp(window.opened, UTC).isoformat(timespec="minutes")
        until = datetime.fromtimestamp(window.until, UTC).isoformat(timespec="minutes")
        more = window.suppressed - len(window.examples)
        named = ", ".join(window.examples) + (f" and {more} more" if more > 0 else "")
        self._send(
            f"invoice-sync: {window.suppressed} more: {reason} ({connection})",
            f'{window.suppressed} more alerts like "{window.subject}" ({kind}, connection '
            f"{connection}, reason {reason}) came between {opened} and {until} UTC after the first "
            f"{window.allowance}, and were counted instead of sent one by one: {named}.\n"
            "None is lost: each document is parked with its reason. `invoice-sync status "
            f"--connection {connection}` counts them by status and reason; once the cause is "
            f"fixed, `invoice-sync redrive --connection {connection}` re-drives "
            "them all.",
            {
                "kind": "alert_summary",
                "alert_kind": kind,
                "connection_id": connection,
                "reason": reason,
                "alerts": window.count,
                "sent": window.allowance,
                "counted": window.suppressed,
                "examples": list(window.examples),
                "window": {"from": opened, "until": until},
            },
        )
        self.windows.mark_summarised(window)

    def _send(self, subject: str, text: str, details: dict[str, Any]) -> None:
        self._client.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],  # SNS rejects longer subjects
            Message=f"{text}\n\n{json.dumps(details, indent=2, sort_keys=True, default=str)}",
            MessageAttributes={
                key: {"DataType": "String", "StringValue": str(details[key])}
                # kind: "daily_report", "export", "connection", ... for subscription filter policies
                for key in ("connection_id", "reason", "kind")
                if details.get(key)
            },
        )
