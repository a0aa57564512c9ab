"""S3 raw archive: every accepted webhook, byte for byte, so any window can be replayed.

Two kinds of object, both under ``raw/{source}/{connection}/{yyyy}/{mm}/{dd}/``:

- **Bundles** (``{digest}.jsonl.gz``): what push writes, one object for all the webhooks of one
  connection and day in an SQS batch. The raw body travels in the queue message until then, so a
  webhook costs no S3 PUT of its own (a PUT is 12 times an SQS send). Each line is one event:
  ``{"event_id", "event_type", "received_at", "body"}`` (``body_b64`` for a body that is not
  UTF-8). The name is the digest of the content, so a retried batch writes the same object again.
  An event's key is the bundle's key and ``#`` and its event id.
- **Single objects** (``{event_id}.json``): the body as sent, for a webhook too big to travel in
  a queue message, and for the operator's backfill.

``get`` and ``list`` read both alike.

Authentic webhooks refused as invalid are kept one level down, under ``.../{dd}/rejected/``
(``refused_key``): in the same retention as the rest, but not events, so ``list`` (and so a replay)
passes them by.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from invoice_sync.errors import InvalidSnapshot
from invoice_sync.store import aws

BUNDLE_SUFFIX = ".jsonl.gz"
# Bundles a reader keeps parsed: a replay or re-drive reads a bundle's events one after another.
_BUNDLES_KEPT = 8


def archive_key(source: str, connection_id: str, received: datetime, event_id: str) -> str:
    # Date-partitioned so a replay of a window lists only its days.
    return f"raw/{source}/{connection_id}/{received:%Y/%m/%d}/{event_id}.json"


def refused_key(source: str, connection_id: str, received: datetime, name: str) -> str:
    """Where an authentic but invalid webhook (``name``: its body's digest) is kept. Eight parts, so
    ``parse_archive_key`` reads it as no event."""
    return f"raw/{source}/{connection_id}/{received:%Y/%m/%d}/rejected/{name}"


@dataclass(frozen=True)
class BundledEvent:
    """One webhook for a bundle: the exact body and what the archive's listing tells of it."""

    event_id: str
    event_type: str
    received_at: datetime
    body: bytes


def _line(event: BundledEvent) -> dict[str, str]:
    line = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "received_at": event.received_at.isoformat(),
    }
    try:
        line["body"] = event.body.decode("utf-8")
    except UnicodeDecodeError:
        line["body_b64"] = base64.b64encode(event.body).decode("ascii")
    return line


def _body_of(line: dict[str, str]) -> bytes:
    if "body" in line:
        return line["body"].encode("utf-8")
    return base64.b64decode(line["body_b64"])


@dataclass(frozen=True)
class ArchivedEvent:
    """One object of the raw archive, as its key and S3's listing describe it."""

    key: str
    source: str
    connection_id: str
    day: date
    event_id: str
    stored_at: datetime  # the webhook's arrival: its bundle line's, or S3's time for a single object


def parse_archive_key(key: str) -> tuple[str, str, date, str] | None:
    """(source, connection, day, event id) of an event's key, a single object's (``archive_key``)
    or a bundled event's (``bundle#event``); None for any other key."""
    name, _, event_id = key.partition("#")
    parts = name.split("/")
    if len(parts) != 7 or parts[0] != "raw":
        return None
    if event_id:
        if not parts[6].endswith(BUNDLE_SUFFIX):
            return None
    elif parts[6].endswith(".json"):
        event_id = parts[6].removesuffix(".json")
    else:
        return None
    try:
        day = date(int(parts[3]), int(parts[4]), int(parts[5]))
    except ValueError:
        return None
    return parts[1], parts[2], day, event_id


class RawArchive:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or aws.client("s3")
        self._bundles: OrderedDict[str, dict[str, dict[str, str]]] = OrderedDict()

    def put(self, key: str, body: bytes, metadata: dict[str, str], **conditions: str) -> None:
        """Writes one object as sent (``conditions``: S3's conditional-write headers, if any)."""
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ContentMD5=_md5(body),
            Metadata=metadata,
            **conditions,
        )

    def put_new(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """Writes ``key`` only if it does not exist yet (S3's conditional ``If-None-Match: *``);
        True when this call created it, False when it was there already."""
        try:
            self.put(key, body, metadata, IfNoneMatch="*")
        except ClientError as exc:
            # 412: the object exists; 409: a concurrent conditional write to it is in progress.
            code = exc.response.get("Error", {}).get("Code")
            if code in {"PreconditionFailed", "ConditionalRequestConflict"}:
                return False
            raise
        return True

    def put_bundle(
        self, source: str, connection_id: str, day: date, events: Sequence[BundledEvent]
    ) -> list[str]:
        """Archives ``events`` (one connection's, received on ``day``, UTC) in one object; returns
        each event's key, in order. The same events write the same object: a retry is harmless."""
        data = "".join(json.dumps(_line(event), separators=(",", ":")) + "\n" for event in events).encode()
        digest = hashlib.sha256(data).hexdigest()[:32]
        key = f"raw/{source}/{connection_id}/{day:%Y/%m/%d}/{digest}{BUNDLE_SUFFIX}"
        # mtime=0: the same events compress to the same bytes, whenever they are written.
        body = gzip.compress(data, compresslevel=6, mtime=0)
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
            ContentMD5=_md5(body),
            Metadata={"connection": connection_id, "events": str(len(events))},
        )
        return [f"{key}#{event.event_id}" for event in events]

    def get(self, key: str) -> bytes:
        """The body of one archived event, byte for byte."""
        name, _, event_id = key.partition("#")
        if not event_id:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
            return data
        line = self._bundle(name).get(event_id)
        if line is None:
            raise InvalidSnapshot("archived event not in its bundle", key)
        return _body_of(line)

    def _bundle(self, name: str) -> dict[str, dict[str, str]]:
        """A bundle's lines by event id (the first, should a retried batch have bundled it twice)."""
        lines = self._bundles.get(name)
        if lines is None:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            lines = {}
            for text in gzip.decompress(response["Body"].read()).splitlines():
                line = json.loads(text)
                lines.setdefault(line["event_id"], line)
            self._bundles[name] = lines
            if len(self._bundles) > _BUNDLES_KEPT:
                self._bundles.popitem(last=False)
        else:
            self._bundles.move_to_end(name)
        return lines

    def list(self, source: str, connection_id: str, from_day: date, to_day: date) -> Iterator[ArchivedEvent]:
        """Every archived event of a connection received on the days from ``from_day`` to
        ``to_day`` (inclusive, UTC), day by day in order of arrival: one listing per day's prefix,
        so a window costs its own days only, whatever the archive holds. A bundle is read to list
        its events. An event archived twice (a sender's duplicate, a retried batch) is listed
        once, at its first arrival."""
        paginator = self._client.get_paginator("list_objects_v2")
        day = from_day
        while day <= to_day:
            prefix = f"raw/{source}/{connection_id}/{day:%Y/%m/%d}/"
            first: dict[str, ArchivedEvent] = {}
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    for event in self._events_of(item["Key"], item["LastModified"]):
                        known = first.get(event.event_id)
                        if known is None or event.stored_at < known.stored_at:
                            first[event.event_id] = event
            yield from sorted(first.values(), key=lambda event: (event.stored_at, event.key))
            day += timedelta(days=1)

    def _events_of(self, key: str, last_modified: datetime) -> Iterator[ArchivedEvent]:
        """The events one listed object holds: a bundle's lines, or a single object's one event."""
        if key.endswith(BUNDLE_SUFFIX):
            parsed = parse_archive_key(f"{key}#-")
            if parsed is None:
                return
            for event_id, line in self._bundle(key).items():
                received = datetime.fromisoformat(line["received_at"])
                yield ArchivedEvent(f"{key}#{event_id}", parsed[0], parsed[1], parsed[2], event_id, received)
            return
        parsed = parse_archive_key(key)
        if parsed is not None:
            yield ArchivedEvent(key, parsed[0], parsed[1], parsed[2], parsed[3], last_modified)


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
