"""Counting what one Lambda invocation costs: its AWS requests, its HTTP requests, its log bytes
and its time, for ``bench/cost.py``.

How it is counted:

* **AWS requests** through botocore's event hooks on every client created after ``install()``
  (the store layer builds a fresh session per client, so ``botocore.session.Session.create_client``
  is wrapped only to register the hooks on each new client's event system). Per API call:
  ``before-parameter-build`` keeps the call's parameters, ``before-send`` (registered first, so
  before moto's own handler, and again last, so after it) brackets each HTTP attempt, i.e. the time
  moto takes to answer, and ``after-call`` records the call with its parsed response. Attempts are
  counted (a retried call is two requests). Calls outside an invocation (setup, the bench's own
  queue reads) are not counted.
* **Billing units** per call: SQS requests in 64 KB chunks of payload; SNS publishes in 64 KB
  chunks; DynamoDB read and write request units computed from item sizes by DynamoDB's rules
  (moto reports no consumed capacity): an item's size is its attribute names plus values (strings
  as UTF-8, numbers one byte per two significant digits plus one, lists and maps 3 bytes plus one
  per element); reads 4 KB per RRU, half for eventually consistent reads (every index query), at
  least one unit per request; writes 1 KB per WRU on the larger of the item before and after,
  transactional writes twice, and each global secondary index the item enters, leaves or changes
  in costs its own WRUs (a key change is a delete and a put). Before and after images come from a
  separate, uncounted client; the time that takes is left out of the invocation.
* **S3** PUT-class and GET-class requests, and bytes written per key prefix (for storage).
* **HTTP** requests made through httpx (the ledger and Stripe clients): count, time and bytes
  sent, per host.
* **Logs**: whatever the function writes to stdout and stderr during the invocation (Powertools'
  JSON lines and the EMF metrics blob), captured at the file-descriptor level as Lambda does;
  one log event per line.
* **Time**: the invocation's wall time, less the time moto spent answering, less the time inside
  HTTP requests, less this meter's own work. That is the CPU time of our code and of botocore's
  client side (serialising, signing, parsing), which ``bench/cost.py`` then scales to the
  function's CPU share and adds modeled network latencies to.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import httpx

KB = 1024
SQS_CHUNK = 64 * KB

S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListBuckets",
        "ListMultipartUploads",
        "ListParts",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "PutObjectTagging",
        "PutObjectAcl",
    }
)
S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
DYNAMODB_CONTROL = frozenset(
    {"DescribeTable", "ListTables", "DescribeTimeToLive", "DescribeContinuousBackups"}
)


# ------------------------------------------------------------------------------ DynamoDB sizes


def number_size(text: str) -> int:
    """DynamoDB's size of a number: one byte per two significant digits, plus one."""
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """The size of one typed attribute value (``{"S": "..."}``, ``{"M": {...}}``, ...)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner).encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_class(key: dict[str, Any]) -> str:
    """What kind of item a key names, for the write table: the partition's prefix (``CONN``,
    ``LINK``, ...) and, under a connection's records, the record kind (``CONN invoice``); for a
    link, the prefix of its name (``LINK payment-of:``, ``LINK pi_``, ``LINK ch_``)."""
    pk = str(next(iter(key.get("pk", {}).values()), ""))
    sk = str(next(iter(key.get("sk", {}).values()), ""))
    prefix = pk.split("#", 1)[0]
    if prefix == "CONN":
        return f"CONN {sk.split('#', 1)[0]}"
    if prefix == "LINK":
        if ":" in sk:
            return f"LINK {sk.split(':', 1)[0]}:"
        return f"LINK {sk.split('_', 1)[0]}_"
    return prefix or "?"


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]


def index_writes(shape: TableShape, old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    """WRUs the table's global secondary indexes take for one item going from ``old`` to ``new``."""
    total = 0.0
    for index in shape.indexes:

        def projected(item: dict[str, Any] | None, index: Index = index) -> dict[str, Any] | None:
            if not item or not all(key in item for key in index.keys):
                return None  # sparse: not in this index
            if index.projection == "ALL":
                return item
            wanted = set(shape.keys) | set(index.keys) | set(index.include)
            return {name: value for name, value in item.items() if name in wanted}

        before, after = projected(old), projected(new)
        if before is None and after is None:
            continue
        if before is None or after is None:
            total += write_units(item_size(before or after))
        elif any(before[key] != after[key] for key in index.keys):
            total += write_units(item_size(before)) + write_units(item_size(after))
        else:
            total += write_units(max(item_size(before), item_size(after)))
    return total


# ----------------------------------------------------------------------------------- records


@dataclass
class WriteTally:
    """The DynamoDB writes of one kind of item within one invocation kind."""

    items: int = 0
    units: float = 0.0  # write units, index copies included
    index_units: float = 0.0  # of which index copies


@dataclass
class OperationTally:
    """One (service, operation) within one invocation kind."""

    calls: int = 0
    requests: float = 0.0  # billable requests: attempts, SQS/SNS in 64 KB chunks
    read_units: float = 0.0
    write_units: float = 0.0
    bytes_written: int = 0


@dataclass
class Invocation:
    """One measured invocation. Times in seconds: ``wall`` elapsed; ``thread`` CPU time of the
    invoking thread (``time.thread_time``, so neither waits nor other processes on a shared
    machine count); ``moto`` and ``overhead`` the parts of each that moto and this meter took;
    ``http`` the elapsed time inside HTTP requests (served by other threads)."""

    function: str
    scenario: str
    wall: float = 0.0
    thread: float = 0.0
    moto: float = 0.0
    moto_thread: float = 0.0
    http: float = 0.0
    overhead: float = 0.0
    overhead_thread: float = 0.0
    aws_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    http_requests: Counter[str] = field(default_factory=Counter)
    http_bytes_sent: int = 0
    log_lines: list[int] = field(default_factory=list)  # bytes of each line written
    result: Any = None

    @property
    def cpu(self) -> float:
        """CPU seconds of our code and botocore's client side: the thread's CPU time less
        moto's and the meter's (HTTP waits are not CPU time; httpx's own work is kept)."""
        return max(0.0, self.thread - self.moto_thread - self.overhead_thread)


class Meter:
    """The invocation being measured, and the tallies of every one measured so far."""

    def __init__(self, host_kinds: dict[str, str] | None = None) -> None:
        self.current: Invocation | None = None
        self.invocations: list[Invocation] = []
        # (function, scenario) -> (service, operation) -> tally
        self.tallies: dict[tuple[str, str], dict[tuple[str, str], OperationTally]] = defaultdict(
            lambda: defaultdict(OperationTally)
        )
        self.s3_bytes_by_prefix: Counter[tuple[str, str, str]] = Counter()  # (function, scenario, prefix)
        # (function, scenario, item class) -> the DynamoDB writes of that kind of item
        self.writes_by_item: dict[tuple[str, str, str], WriteTally] = defaultdict(WriteTally)
        self.host_kinds = host_kinds or {}
        self.sent_message_bytes: list[int] = []  # each sync message as sent (body and attributes)
        self.emf_metrics: set[tuple[str, str]] = set()  # (metric name, dimension values) in EMF
        self._lookup: dict[str, Any] = {}
        self._shapes: dict[str, TableShape] = {}
        self._installed = False
        self._originals: list[tuple[Any, str, Any]] = []
        self._backend: Any = None

    # --- installation ------------------------------------------------------------------------

    def install(self, lookup_session: Any) -> None:
        """Hook every botocore client and httpx transport created from now on.

        ``lookup_session`` (a boto3 session made before this call) gives the uncounted clients
        that read items' before and after images."""
        for service in ("dynamodb", "s3"):
            self._lookup[service] = lookup_session.client(service)
        try:
            from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 - only when moto is in-process
            from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

            self._backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][lookup_session.region_name]
        except (ImportError, KeyError):
            self._backend = None
        meter = self
        original_create = botocore.session.Session.create_client

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original_create(session, *args, **kwargs)
            meter._hook(client)
            return client

        original_send = httpx.HTTPTransport.handle_request

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            invocation = meter.current
            if invocation is None:
                return original_send(transport, request)
            began = time.perf_counter()
            response = original_send(transport, request)
            response.read()  # the body is part of the round trip
            invocation.http += time.perf_counter() - began
            kind = meter.host_kinds.get(f"{request.url.host}:{request.url.port}", "other")
            invocation.http_requests[kind] += 1
            head = sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
            invocation.http_bytes_sent += head + len(request.content) + len(str(request.url)) + 16
            return response

        self._originals = [
            (botocore.session.Session, "create_client", original_create),
            (httpx.HTTPTransport, "handle_request", original_send),
        ]
        botocore.session.Session.create_client = create_client
        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign,assignment]
        self._installed = True

    def uninstall(self) -> None:
        for owner, name, original in self._originals:
            setattr(owner, name, original)
        self._installed = False

    def _hook(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_name
        events.register("before-parameter-build", self._before_build(service))
        events.register_first("before-send", self._send_started)
        events.register_last("before-send", self._send_answered)
        events.register("after-call", self._after_call(service))

    # --- invocations -------------------------------------------------------------------------

    @contextmanager
    def invocation(self, function: str, scenario: str) -> Iterator[Invocation]:
        """Measure one invocation of ``function``: its stdout/stderr are captured as its log."""
        invocation = Invocation(function, scenario)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            self.current = invocation
            began, began_cpu = time.perf_counter(), time.thread_time()
            try:
                yield invocation
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                invocation.wall = time.perf_counter() - began
                invocation.thread = time.thread_time() - began_cpu
                self.current = None
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                captured.seek(0)
                lines = [line for line in captured.read().split(b"\n") if line.strip()]
                invocation.log_lines = [len(line) for line in lines]
                self._emf(lines)
        self.invocations.append(invocation)

    def _emf(self, lines: list[bytes]) -> None:
        """Remember the metrics each EMF blob defines: each name and dimension set is a metric."""
        for line in lines:
            if b'"_aws"' not in line:
                continue
            try:
                blob = json.loads(line)
            except ValueError:
                continue
            for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
                for dimensions in directive.get("Dimensions", [[]]):
                    values = ",".join(f"{d}={blob.get(d)}" for d in dimensions)
                    for metric in directive.get("Metrics", []):
                        self.emf_metrics.add((f"{directive.get('Namespace')}/{metric['Name']}", values))

    # --- botocore hooks ----------------------------------------------------------------------

    def _before_build(self, service: str) -> Callable[..., None]:
        def handler(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            if self.current is None:
                return
            began, began_cpu = time.perf_counter(), time.thread_time()
            context["cost_params"] = dict(params)
            context["cost_attempts"] = 0
            if service == "dynamodb":
                context["cost_before"] = self._images(model.name, params)
            self.current.overhead += time.perf_counter() - began
            self.current.overhead_thread += time.thread_time() - began_cpu

        return handler

    def _send_started(self, request: Any, **_: Any) -> None:
        if self.current is not None:
            request.context["cost_sent"] = time.perf_counter(), time.thread_time()

    def _send_answered(self, request: Any, **_: Any) -> None:
        sent = request.context.get("cost_sent")
        if self.current is not None and sent is not None:
            self.current.moto += time.perf_counter() - sent[0]
            self.current.moto_thread += time.thread_time() - sent[1]
            request.context["cost_attempts"] = request.context.get("cost_attempts", 0) + 1

    def _after_call(self, service: str) -> Callable[..., None]:
        def handler(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            invocation = self.current
            if invocation is None or "cost_params" not in context:
                return
            began, began_cpu = time.perf_counter(), time.thread_time()
            operation = model.name
            params = context["cost_params"]
            attempts = max(1, int(context.get("cost_attempts", 1)))
            invocation.aws_calls[(service, operation)] += attempts
            tally = self.tallies[(invocation.function, invocation.scenario)][(service, operation)]
            tally.calls += 1
            failed = "Error" in parsed and bool(parsed["Error"].get("Code"))
            if service == "sqs":
                tally.requests += attempts * _sqs_chunks(operation, params, parsed)
                if operation == "SendMessage":
                    self.sent_message_bytes.append(_message_bytes(params))
                elif operation == "SendMessageBatch":
                    self.sent_message_bytes.extend(_message_bytes(e) for e in params.get("Entries", []))
            elif service == "sns":
                tally.requests += attempts * _sns_chunks(params)
            elif service == "dynamodb":
                if operation not in DYNAMODB_CONTROL:
                    tally.requests += attempts
                    reads, writes = self._capacity(operation, params, parsed, context, failed=failed)
                    tally.read_units += reads
                    tally.write_units += writes
            else:
                tally.requests += attempts
            if service == "s3" and not failed:
                written = self._s3_written(operation, params, parsed)
                if written:
                    tally.bytes_written += written
                    prefix = str(params.get("Key", "")).split("/", 1)[0] + "/"
                    if "/_staging/" not in str(params.get("Key", "")):
                        self.s3_bytes_by_prefix[(invocation.function, invocation.scenario, prefix)] += written
            invocation.overhead += time.perf_counter() - began
            invocation.overhead_thread += time.thread_time() - began_cpu

        return handler

    # --- DynamoDB capacity -------------------------------------------------------------------

    def _shape(self, table: str) -> TableShape:
        if table not in self._shapes:
            described = self._lookup["dynamodb"].describe_table(TableName=table)["Table"]
            indexes = tuple(
                Index(
                    name=index["IndexName"],
                    keys=tuple(key["AttributeName"] for key in index["KeySchema"]),
                    projection=index["Projection"]["ProjectionType"],
                    include=tuple(index["Projection"].get("NonKeyAttributes", [])),
                )
                for index in described.get("GlobalSecondaryIndexes", [])
            )
            keys = tuple(key["AttributeName"] for key in described["KeySchema"])
            self._shapes[table] = TableShape(keys=keys, indexes=indexes)
        return self._shapes[table]

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """An item's current image, uncounted: from moto's backend when it is in this process
        (a request through botocore costs moto ten times as much), else through a client."""
        if self._backend is not None:
            try:
                found = self._backend.get_item(table, key)
            except Exception:  # noqa: BLE001 - moto's internals moved: use the client from now on
                self._backend = None
            else:
                return None if found is None else dict(found.to_json()["Attributes"])
        item: dict[str, Any] | None = (
            self._lookup["dynamodb"].get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        )
        return item

    def _key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self._shape(table).keys if name in item}

    def _writes_of(self, operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """(table, key, kind) of every item a write operation touches."""
        if operation in DYNAMODB_WRITES:
            table = params["TableName"]
            key = params.get("Key") or self._key_of(table, params.get("Item", {}))
            return [(table, key, operation)]
        if operation == "BatchWriteItem":
            found = []
            for table, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        found.append((table, self._key_of(table, request["PutRequest"]["Item"]), "PutItem"))
                    else:
                        found.append((table, request["DeleteRequest"]["Key"], "DeleteItem"))
            return found
        if operation == "TransactWriteItems":
            found = []
            for entry in params.get("TransactItems", []):
                ((kind, body),) = entry.items()
                table = body["TableName"]
                key = body.get("Key") or self._key_of(table, body.get("Item", {}))
                found.append((table, key, {"Put": "PutItem", "Update": "UpdateItem"}.get(kind, kind)))
            return found
        return []

    def _images(self, operation: str, params: dict[str, Any]) -> list[dict[str, Any] | None]:
        return [self._get(table, key) for table, key, _ in self._writes_of(operation, params)]

    def _capacity(
        self,
        operation: str,
        params: dict[str, Any],
        parsed: dict[str, Any],
        context: dict[str, Any],
        *,
        failed: bool,
    ) -> tuple[float, float]:
        if operation == "GetItem":
            item = parsed.get("Item")
            if "ProjectionExpression" in params:
                item = self._get(params["TableName"], params["Key"])  # billed on the whole item
            return read_units(item_size(item), consistent=bool(params.get("ConsistentRead"))), 0.0
        if operation in ("Query", "Scan"):
            items = parsed.get("Items", [])
            if operation == "Query" and ("ProjectionExpression" in params or params.get("Select") == "COUNT"):
                items = self._lookup["dynamodb"].query(**_whole_items(params)).get("Items", [])
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            return read_units(sum(item_size(i) for i in items), consistent=consistent), 0.0
        if operation == "BatchGetItem":
            units = 0.0
            for table, request in params.get("RequestItems", {}).items():
                consistent = bool(request.get("ConsistentRead"))
                for item in parsed.get("Responses", {}).get(table, []):
                    units += read_units(item_size(item), consistent=consistent)
            return units, 0.0
        if operation == "TransactGetItems":
            units = 0.0
            for response in parsed.get("Responses", []):
                units += read_units(item_size(response.get("Item")), consistent=True, transactional=True)
            return units, 0.0
        touched = self._writes_of(operation, params)
        if not touched:
            return 0.0, 0.0
        befores: list[dict[str, Any] | None] = context.get("cost_before", [None] * len(touched))
        factor = 2 if operation == "TransactWriteItems" else 1
        total = 0.0
        invocation = self.current
        for (table, key, kind), before in zip(touched, befores, strict=True):
            after = before if failed else self._get(table, key)
            requested = params.get("Item") if kind == "PutItem" and operation == "PutItem" else None
            size = max(item_size(before), item_size(after), item_size(requested))
            units = factor * write_units(size)
            indexed = 0.0 if failed else index_writes(self._shape(table), before, after)
            total += units + indexed
            if invocation is not None:
                tally = self.writes_by_item[(invocation.function, invocation.scenario, item_class(key))]
                tally.items += 1
                tally.units += units + indexed
                tally.index_units += indexed
        return 0.0, total

    # --- S3 ----------------------------------------------------------------------------------

    def _s3_written(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> int:
        if operation in ("PutObject", "UploadPart"):
            body = params.get("Body", b"")
            if isinstance(body, bytes | bytearray):
                return len(body)
            if isinstance(body, str):
                return len(body.encode())
            if hasattr(body, "seek") and hasattr(body, "tell"):
                here = body.tell()
                body.seek(0, 2)
                size = int(body.tell())
                body.seek(here)
                return size
            return 0
        if operation in ("CopyObject", "CompleteMultipartUpload"):
            if operation == "CompleteMultipartUpload":
                return 0  # its parts were counted as they were uploaded
            head = self._lookup["s3"].head_object(Bucket=params["Bucket"], Key=params["Key"])
            return int(head.get("ContentLength", 0))
        return 0


# ------------------------------------------------------------------------------ SQS, SNS sizes


def _attributes_bytes(attributes: dict[str, Any] | None) -> int:
    total = 0
    for name, value in (attributes or {}).items():
        total += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        inner = value.get("StringValue") or value.get("BinaryValue") or ""
        total += len(inner) if isinstance(inner, bytes) else len(str(inner).encode())
    return total


def _message_bytes(entry: dict[str, Any]) -> int:
    return len(entry["MessageBody"].encode()) + _attributes_bytes(entry.get("MessageAttributes"))


def _chunks(payload: int) -> int:
    return max(1, math.ceil(payload / SQS_CHUNK))


def _sqs_chunks(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> int:
    if operation == "SendMessage":
        return _chunks(
            len(params["MessageBody"].encode()) + _attributes_bytes(params.get("MessageAttributes"))
        )
    if operation == "SendMessageBatch":
        return _chunks(
            sum(
                len(entry["MessageBody"].encode()) + _attributes_bytes(entry.get("MessageAttributes"))
                for entry in params.get("Entries", [])
            )
        )
    if operation == "ReceiveMessage":
        return _chunks(
            sum(
                len(m.get("Body", "").encode()) + _attributes_bytes(m.get("MessageAttributes"))
                for m in parsed.get("Messages", [])
            )
        )
    return 1


def _sns_chunks(params: dict[str, Any]) -> int:
    payload = len(str(params.get("Message", "")).encode()) + len(str(params.get("Subject", "")).encode())
    return _chunks(payload + _attributes_bytes(params.get("MessageAttributes")))


def _whole_items(params: dict[str, Any]) -> dict[str, Any]:
    """The same query without its projection: DynamoDB bills a query on the whole items read."""
    query = {k: v for k, v in params.items() if k not in ("ProjectionExpression", "Select")}
    names = query.get("ExpressionAttributeNames")
    if names:
        used = " ".join(str(query.get(k, "")) for k in ("KeyConditionExpression", "FilterExpression"))
        query["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in used}
        if not query["ExpressionAttributeNames"]:
            del query["ExpressionAttributeNames"]
    return query
