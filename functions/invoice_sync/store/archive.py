"""S3 raw archive: every accepted webhook, byte for byte, so any window can be replayed."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from invoice_sync.store import aws


def archive_key(source: str, connection_id: str, received: datetime, event_id: str) -> str:
    # Date-partitioned so a replay of a window lists only its days.
    return f"raw/{source}/{connection_id}/{received:%Y/%m/%d}/{event_id}.json"


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


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
