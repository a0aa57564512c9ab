"""Delivers an SQS queue to a function the way Lambda's SQS event source does: the sync queue to
push, the ledger events queue to payments_back.

Long-polls up to ``batch_size`` messages, invokes the handler with an SQS event, deletes what
succeeded and leaves the ``batchItemFailures`` on the queue. Lambda would wait out the queue's
visibility timeout (6 minutes) before a retry; locally a failed message comes back after
``retry_seconds`` so the demo and tests see retries in seconds. Redrive to the dead-letter queue
after maxReceiveCount is SQS's own doing (moto implements it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from invoice_sync_ops.local.lambda_runtime import LocalContext, sqs_event

Handler = Callable[[dict[str, Any], Any], Any]

# moto's SQS is not safe for receives racing each other: two receives that both find a message at
# maxReceiveCount both try to move it to the dead-letter queue, one fails (HTTP 500), and the
# messages that receive had already marked received are returned to nobody, invisible for the
# queue's visibility timeout (12 minutes). Real SQS has no such race; here, one receive at a time.
_RECEIVING = threading.Lock()


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        retry_seconds: int = 1,
        function_name: str = "push",
        timeout_seconds: float = 60,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds
        self._retry_seconds = retry_seconds
        self._function_name = function_name
        self._timeout_seconds = timeout_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.busy = threading.Event()
        self.invocations = 0
        self.failures = 0
        self.poll_errors = 0

    def poll_once(self) -> int:
        """One receive-invoke-delete round; returns how many messages it handled."""
        with _RECEIVING:
            received = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=self._wait_seconds,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
        if not received:
            return 0
        self.busy.set()
        try:
            self.invocations += 1
            try:
                result = self._handler(
                    sqs_event(received, self._arn),
                    LocalContext(self._function_name, timeout_seconds=self._timeout_seconds),
                )
                failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
            except Exception:  # noqa: BLE001 - a crashed invocation fails the whole batch, as in Lambda
                failed = {message["MessageId"] for message in received}
            self.failures += len(failed)
            done = [m for m in received if m["MessageId"] not in failed]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            for message in received:
                if message["MessageId"] in failed:
                    self._sqs.change_message_visibility(
                        QueueUrl=self._queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self._retry_seconds,
                    )
            return len(received)
        finally:
            self.busy.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - Lambda's poller outlives a failed SQS call; so does this one
                # (moto's server answers 500 now and then to receives racing each other.)
                self.poll_errors += 1
                self._stop.wait(self._wait_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqs-event-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self._wait_seconds + 65)
