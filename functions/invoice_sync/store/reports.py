"""S3 ``reports/``: reconciliation reports per connection and day, and each connection's run history
(the last runs' counts, for the report's chart and the absence check)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from invoice_sync.store import aws

HISTORY_RUNS = 60


def report_prefix(connection_id: str, day: str) -> str:
    return f"reports/{connection_id}/{day}/"


class ReportBucket:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or aws.client("s3")

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def history(self, connection_id: str) -> list[dict[str, Any]]:
        """The connection's past runs, oldest first (empty before the first).

        Listed before it is read: the reconcile role may list ``reports/`` only, and without
        s3:ListBucket on the key S3 answers a missing object with 403, not 404."""
        key = f"reports/{connection_id}/history.json"
        listed = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        if not any(o.get("Key") == key for o in listed.get("Contents", [])):
            return []
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchKey", "404"}:
                return []
            raise
        runs = json.loads(body["Body"].read())
        return list(runs) if isinstance(runs, list) else []

    def save_history(self, connection_id: str, runs: list[dict[str, Any]]) -> None:
        body = json.dumps(runs[-HISTORY_RUNS:], sort_keys=True).encode()
        self.put(f"reports/{connection_id}/history.json", body, "application/json")

    def link(self, key: str, seconds: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )
        return url
