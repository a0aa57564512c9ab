"""S3 exports: files streamed into a staging prefix through multipart uploads, then published.

A file is written as it is produced: bytes gather in a buffer until a part is full (S3's minimum
part is 5 MiB, every part but the last), the part goes up, the buffer empties. So memory holds one
part per open file, whatever the size of the day. A small file goes up in one PutObject.

Nothing appears under a day's key until every file of it is complete: files are written under
``exports/_staging/<run>/...``, then copied to the day's key (the manifest last), then the staging
copies are deleted. A failed run aborts its open uploads and deletes what it staged; the bucket's
lifecycle rule aborts any upload a crashed run left behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import IO, Any

from invoice_sync.store import aws

MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's smallest part, except the last
MAX_PARTS = 10_000  # S3's most parts per upload
COPY_LIMIT = 5 * 1024 * MIB  # CopyObject's largest object; larger ones are copied in parts
COPY_PART_BYTES = 512 * MIB
STAGING = "exports/_staging"


def day_prefix(connection_id: str, day: date) -> str:
    return f"exports/{connection_id}/{day:%Y/%m/%d}/"


@dataclass(frozen=True)
class WrittenFile:
    """A finished file: where it was staged, its size and its SHA-256 (hex)."""

    name: str
    key: str
    size: int
    sha256: str
    content_type: str


class MultipartWriter:
    """One object written part by part as bytes arrive; ``close`` completes it, ``abort`` drops it."""

    def __init__(
        self, client: Any, bucket: str, key: str, content_type: str, part_bytes: int = 8 * MIB
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"parts must be at least {MIN_PART_BYTES} bytes")
        self._client = client
        self.bucket = bucket
        self.key = key
        self.content_type = content_type
        self.part_bytes = part_bytes
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        if len(self._buffer) >= self.part_bytes:
            self._send(bytes(self._buffer))
            self._buffer.clear()

    def _send(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
            )["UploadId"]
        if len(self._parts) >= MAX_PARTS:
            raise ValueError(f"{self.key} needs more than {MAX_PARTS} parts: raise the part size")
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def close(self, name: str) -> WrittenFile:
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self.content_type
            )
        else:
            if self._buffer:
                self._send(bytes(self._buffer))
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None  # complete: nothing left to abort
        self._buffer.clear()
        return WrittenFile(name, self.key, self._size, self._hash.hexdigest(), self.content_type)

    def abort(self) -> None:
        """Drops what was uploaded; a no-op for a file that never started an upload."""
        self._buffer.clear()
        if self._upload_id is not None:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None


class ExportBucket:
    """The archive bucket's ``exports/`` prefix."""

    def __init__(self, bucket: str, client: Any | None = None, *, part_bytes: int = 8 * MIB) -> None:
        self.bucket = bucket
        self._client = client or aws.client("s3")
        self.part_bytes = part_bytes

    def writer(self, key: str, content_type: str) -> MultipartWriter:
        return MultipartWriter(self._client, self.bucket, key, content_type, self.part_bytes)

    def upload_file(self, handle: IO[bytes], key: str, name: str, content_type: str) -> WrittenFile:
        """A file on local disk (the workbook), streamed up part by part."""
        writer = self.writer(key, content_type)
        try:
            while chunk := handle.read(self.part_bytes):
                writer.write(chunk)
            return writer.close(name)
        except BaseException:
            writer.abort()
            raise

    def publish(self, staged: WrittenFile, key: str) -> None:
        """Copies a staged file to its published key (S3 replaces an object whole, never partly)."""
        source = {"Bucket": self.bucket, "Key": staged.key}
        if staged.size <= COPY_LIMIT:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource=source,
                ContentType=staged.content_type,
                MetadataDirective="REPLACE",
                Metadata={"sha256": staged.sha256},
            )
            return
        upload_id = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=staged.content_type, Metadata={"sha256": staged.sha256}
        )["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, staged.size, COPY_PART_BYTES), start=1):
                end = min(start + COPY_PART_BYTES, staged.size) - 1
                response = self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": response["CopyPartResult"]["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def described(self, key: str, name: str) -> WrittenFile:
        """A published object as a file ``publish`` can copy elsewhere (to keep it, or put it back)."""
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        return WrittenFile(
            name=name,
            key=key,
            size=int(head["ContentLength"]),
            sha256=str(head.get("Metadata", {}).get("sha256", "")),
            content_type=str(head.get("ContentType", "application/octet-stream")),
        )

    def keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            chunk = keys[start : start + 1000]
            if chunk:
                self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )

    def presign(self, key: str, seconds: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )
        return url

    def read(self, key: str) -> bytes:
        data: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data
