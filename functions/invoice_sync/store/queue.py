"""SQS sync queue: sending snapshots (one, or ten to a request), its depth, and the dead-letter
queue's redrive back onto it. The ledger events queue (payments back): hints sent ten to a request."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from invoice_sync.errors import MessageTooLarge, TransientError
from invoice_sync.models.messages import LedgerEventMessage, SyncMessage
from invoice_sync.store import aws

# SQS allows 256 KiB per message; leave room for attributes and the envelope.
MAX_INLINE_BYTES = 240_000
# SendMessageBatch takes at most 10 entries and 256 KiB in all.
BATCH_ENTRIES = 10
BATCH_BYTES = 250_000


# A dead-letter redrive stops after this many empty long polls in a row.
EMPTY_POLLS_TO_STOP = 2


class QueueSendFailed(TransientError):
    """SQS refused some entries of a batch; ``failed`` says which messages and why."""

    def __init__(self, failed: list[tuple[SyncMessage, str]]) -> None:
        super().__init__(f"SQS refused {len(failed)} message(s): {failed[0][1]}")
        self.failed = failed


@dataclass(frozen=True)
class QueueDepth:
    """SQS's approximate counts: waiting, being worked on (in flight), and delayed."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


def _body(message: SyncMessage) -> str:
    # Every field is written, None included: a snapshot must read back as exactly itself.
    body = message.model_dump_json()
    if len(body.encode()) > MAX_INLINE_BYTES:
        if message.raw is not None:
            # The body must be archived before it may be left behind: that is the sender's call.
            raise MessageTooLarge(f"message of {len(body.encode())} bytes with its raw body")
        # Too big to travel: push re-reads the raw archive instead.
        body = message.model_copy(
            update={"invoice": None, "credit_note": None, "refund": None}
        ).model_dump_json()
    return body


def _attributes(message: SyncMessage) -> dict[str, Any]:
    return {
        "connection": {"DataType": "String", "StringValue": message.connection_id},
        "event_type": {"DataType": "String", "StringValue": message.event_type},
    }


def depth_of(client: Any, queue_url: str) -> QueueDepth:
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueDepth(
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


class SyncQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client or aws.client("sqs")

    def send(self, message: SyncMessage) -> None:
        self._client.send_message(
            QueueUrl=self.queue_url, MessageBody=_body(message), MessageAttributes=_attributes(message)
        )

    def send_batch(
        self,
        messages: Sequence[SyncMessage],
        *,
        delay_seconds: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Sends ``messages`` ten to a request (fewer when their bodies would pass SQS's 256 KiB
        per request); returns how many were sent. Raises ``QueueSendFailed`` naming the entries
        SQS refused, after sending every other one. ``delay_seconds`` (at most 900) holds them back
        that long; ``progress`` gets each request's count."""
        failed: list[tuple[SyncMessage, str]] = []
        sent = 0
        for chunk in _chunks([(m, _body(m)) for m in messages]):
            response = self._client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": body,
                        "MessageAttributes": _attributes(message),
                        **({"DelaySeconds": delay_seconds} if delay_seconds else {}),
                    }
                    for i, (message, body) in enumerate(chunk)
                ],
            )
            for entry in response.get("Failed", []):
                failed.append(
                    (chunk[int(entry["Id"])][0], f"{entry.get('Code')}: {entry.get('Message', '')}")
                )
            done = len(response.get("Successful", []))
            sent += done
            if progress is not None:
                progress(done)
        if failed:
            raise QueueSendFailed(failed)
        return sent

    def depth(self) -> QueueDepth:
        return depth_of(self._client, self.queue_url)


_M = TypeVar("_M")


def _chunks(items: list[tuple[_M, str]]) -> list[list[tuple[_M, str]]]:
    chunks: list[list[tuple[_M, str]]] = []
    size = 0
    for item in items:
        length = len(item[1].encode())
        if not chunks or len(chunks[-1]) == BATCH_ENTRIES or size + length > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += length
    return chunks


def _ledger_body(message: LedgerEventMessage) -> str:
    """``to_queue_body()`` with every non-ASCII character escaped: SQS refuses a body holding a
    character outside its set (U+FFFE, U+FFFF), which an authentic webhook's id may carry, and a
    refusal would be a 503 the ledger retries for ever. The same JSON, read the same way."""
    return json.dumps(json.loads(message.to_queue_body()), separators=(",", ":"))


class LedgerEventsSendFailed(TransientError):
    """SQS refused some ledger events of a batch (the delivery is answered 503 and retried)."""

    def __init__(self, failed: list[tuple[LedgerEventMessage, str]]) -> None:
        super().__init__(f"SQS refused {len(failed)} ledger event(s): {failed[0][1]}")
        self.failed = failed


class LedgerEventsQueue:
    """The ledger events queue (``LedgerEventsQueue`` in template.yaml): what ``ledger_events``
    and the Xero poll send, and ``payments_back`` works through. A body is
    ``LedgerEventMessage.to_queue_body()``, the one serialisation that carries a FreshBooks
    verifier; the attributes name the connection and the kind, never the verifier."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client or aws.client("sqs")

    def send_batch(self, messages: Sequence[LedgerEventMessage]) -> int:
        """Sends ``messages`` ten to a request (fewer when their bodies would pass 256 KiB a
        request); returns how many were sent. Raises ``LedgerEventsSendFailed`` naming the entries
        SQS refused, after sending every other one; an SQS error raises as it is."""
        failed: list[tuple[LedgerEventMessage, str]] = []
        sent = 0
        for chunk in _chunks([(m, _ledger_body(m)) for m in messages]):
            response = self._client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": body,
                        "MessageAttributes": {
                            "connection": {"DataType": "String", "StringValue": message.connection_id},
                            "kind": {"DataType": "String", "StringValue": message.kind},
                        },
                    }
                    for i, (message, body) in enumerate(chunk)
                ],
            )
            for entry in response.get("Failed", []):
                failed.append(
                    (chunk[int(entry["Id"])][0], f"{entry.get('Code')}: {entry.get('Message', '')}")
                )
            sent += len(response.get("Successful", []))
        if failed:
            raise LedgerEventsSendFailed(failed)
        return sent

    def depth(self) -> QueueDepth:
        return depth_of(self._client, self.queue_url)


class DeadLetterQueue:
    """The sync queue's dead-letter queue: what push failed ``maxReceiveCount`` times."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client or aws.client("sqs")

    def depth(self) -> QueueDepth:
        return depth_of(self._client, self.queue_url)

    def redrive(
        self,
        target_url: str,
        *,
        limit: int | None = None,
        visibility_seconds: int = 60,
        wait_seconds: int = 2,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Moves dead letters back onto ``target_url`` (the sync queue), body and attributes as
        they are, ten at a time; returns how many moved.

        A message is deleted from here only after SQS accepted its copy there: a crash in between
        leaves a duplicate at worst, which push (state, not operations) turns into a no-op; never a
        loss. What the receive hides stays hidden ``visibility_seconds``, so one pass never sees a
        message twice. (moto's server has no StartMessageMoveTask, so the move is done by hand,
        and the same code runs on AWS.)
        """
        moved = 0
        empty = 0
        while limit is None or moved < limit:
            wanted = BATCH_ENTRIES if limit is None else min(BATCH_ENTRIES, limit - moved)
            # Long polling: a short poll samples only some of SQS's servers and may come back empty
            # while messages wait; two empty long polls in a row mean the queue is drained.
            received = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_seconds,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not received:
                empty += 1
                if empty >= EMPTY_POLLS_TO_STOP:
                    break
                continue
            empty = 0
            response = self._client.send_message_batch(
                QueueUrl=target_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": m["Body"],
                        **(
                            {"MessageAttributes": m["MessageAttributes"]}
                            if m.get("MessageAttributes")
                            else {}
                        ),
                    }
                    for i, m in enumerate(received)
                ],
            )
            copied = [received[int(entry["Id"])] for entry in response.get("Successful", [])]
            if copied:
                self._client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(copied)
                    ],
                )
            moved += len(copied)
            if progress is not None:
                progress(len(copied))
            if response.get("Failed"):
                first = response["Failed"][0]
                raise TransientError(
                    f"SQS refused {len(response['Failed'])} dead letter(s) after {moved} moved: "
                    f"{first.get('Code')}: {first.get('Message', '')}"
                )
        return moved
