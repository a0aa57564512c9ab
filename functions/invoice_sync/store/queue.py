"""SQS sync queue."""

from __future__ import annotations

from typing import Any

from invoice_sync.models.messages import SyncMessage
from invoice_sync.store import aws

# SQS allows 256 KiB per message; leave room for attributes and the envelope.
MAX_INLINE_BYTES = 240_000


class SyncQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client or aws.client("sqs")

    def send(self, message: SyncMessage) -> None:
        # Every field is written, None included: a snapshot must read back as exactly itself.
        body = message.model_dump_json()
        if len(body.encode()) > MAX_INLINE_BYTES:
            body = message.model_copy(
                update={"invoice": None, "credit_note": None, "refund": None}
            ).model_dump_json()
        self._client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageAttributes={
                "connection": {"DataType": "String", "StringValue": message.connection_id},
                "event_type": {"DataType": "String", "StringValue": message.event_type},
            },
        )
