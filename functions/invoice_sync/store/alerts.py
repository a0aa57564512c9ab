"""SNS alerts topic: one message per newly parked record or broken connection."""

from __future__ import annotations

import json
from typing import Any

from invoice_sync.store import aws


class AlertPublisher:
    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client or aws.client("sns")

    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None:
        """E-mail subscribers read ``text``; machines read the JSON after it."""
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
