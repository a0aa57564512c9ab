"""S3 raw archive: every accepted webhook, byte for byte, so any window can be replayed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from invoice_sync.store import aws


def archive_key(source: str, connection_id: str, received: datetime, event_id: str) -> str:
    # Date-partitioned so a replay of a window lists only its days.
    return f"raw/{source}/{connection_id}/{received:%Y/%m/%d}/{event_id}.json"


@dataclass(frozen=True)
class ArchivedEvent:
    """One object of the raw archive, as its key and S3's listing describe it."""

    key: str
    source: str
    connection_id: str
    day: date
    event_id: str
    stored_at: datetime  # when S3 received it: the webhook's arrival, to the second


def parse_archive_key(key: str) -> tuple[str, str, date, str] | None:
    """(source, connection, day, event id) of a key ``archive_key`` made; None for any other key."""
    parts = key.split("/")
    if len(parts) != 7 or parts[0] != "raw" or not parts[6].endswith(".json"):
        return None
    try:
        day = date(int(parts[3]), int(parts[4]), int(parts[5]))
    except ValueError:
        return None
    return parts[1], parts[2], day, parts[6].removesuffix(".json")


class RawArchive:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or aws.client("s3")

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ContentMD5=_md5(body),
            Metadata=metadata,
        )

    def get(self, key: str) -> bytes:
        response = self._client.get_object(Bucket=self.bucket, Key=key)
        data: bytes = response["Body"].read()
        return data

    def list(self, source: str, connection_id: str, from_day: date, to_day: date) -> Iterator[ArchivedEvent]:
        """Every archived event of a connection received on the days from ``from_day`` to
        ``to_day`` (inclusive, UTC), day by day in key order, page by page: one listing per day's
        prefix, so a window costs its own days only, whatever the archive holds."""
        paginator = self._client.get_paginator("list_objects_v2")
        day = from_day
        while day <= to_day:
            prefix = f"raw/{source}/{connection_id}/{day:%Y/%m/%d}/"
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    parsed = parse_archive_key(item["Key"])
                    if parsed is None:
                        continue
                    yield ArchivedEvent(
                        item["Key"], parsed[0], parsed[1], parsed[2], parsed[3], item["LastModified"]
                    )
            day += timedelta(days=1)


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
