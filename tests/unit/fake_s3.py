"""An in-memory stand-in for the S3 calls the export makes, checking S3's multipart rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MIN_PART = 5 * 1024 * 1024


class FakeS3:
    """Objects in a dict; multipart uploads checked as S3 checks them (every part but the last at
    least 5 MiB, parts numbered from 1). ``fail_on`` makes the n-th call of an operation raise."""

    def __init__(self, fail_on: dict[str, int] | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, dict[int, bytes]]] = {}
        self.calls: dict[str, int] = {}
        self.part_sizes: list[list[int]] = []
        self.fail_on = dict(fail_on or {})
        self._next = 0

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail_on.get(name) == self.calls[name]:
            raise OSError(f"S3 unavailable during {name}")

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self._call("put_object")
        self.objects[Key] = bytes(Body)
        return {}

    def create_multipart_upload(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._call("create_multipart_upload")
        self._next += 1
        upload_id = f"u{self._next}"
        self.uploads[upload_id] = (Key, {})
        return {"UploadId": upload_id}

    def upload_part(
        self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes
    ) -> dict[str, Any]:
        self._call("upload_part")
        self.uploads[UploadId][1][PartNumber] = bytes(Body)
        return {"ETag": f'"{UploadId}-{PartNumber}"'}

    def complete_multipart_upload(
        self, *, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any]
    ) -> dict[str, Any]:
        self._call("complete_multipart_upload")
        key, parts = self.uploads.pop(UploadId)
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == list(range(1, len(parts) + 1)), numbers
        sizes = [len(parts[n]) for n in numbers]
        assert all(size >= MIN_PART for size in sizes[:-1]), sizes
        self.part_sizes.append(sizes)
        self.objects[key] = b"".join(parts[n] for n in numbers)
        return {}

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> dict[str, Any]:
        self._call("abort_multipart_upload")
        self.uploads.pop(UploadId, None)
        return {}

    def copy_object(self, *, Bucket: str, Key: str, CopySource: dict[str, str], **_: Any) -> dict[str, Any]:
        self._call("copy_object")
        self.objects[Key] = self.objects[CopySource["Key"]]
        return {}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._call("head_object")
        return {"ContentLength": len(self.objects[Key]), "ContentType": "text/csv", "Metadata": {}}

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        self._call("delete_objects")
        for item in Delete["Objects"]:
            self.objects.pop(item["Key"], None)
        return {}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        store = self

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
                keys = sorted(k for k in store.objects if k.startswith(Prefix))
                yield {"Contents": [{"Key": k} for k in keys]}

        return Paginator()

    def generate_presigned_url(self, operation: str, *, Params: dict[str, str], ExpiresIn: int) -> str:
        return f"https://example.test/{Params['Key']}?expires={ExpiresIn}"

    def under(self, prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in self.objects.items() if k.startswith(prefix)}
