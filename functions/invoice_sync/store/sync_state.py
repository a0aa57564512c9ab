"""SyncState table: one item per (connection, kind, source id), alert markers, ledger use and locks."""

from __future__ import annotations

import builtins
import json
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from botocore.exceptions import ClientError

from invoice_sync.errors import TransientError
from invoice_sync.models.sync import (
    DocumentKind,
    LedgerPaid,
    LedgerPaidState,
    PollCursor,
    SyncRecord,
    SyncStatus,
    utcnow,
)
from invoice_sync.models.tokens import TokenSet
from invoice_sync.store import aws


@dataclass(frozen=True)
class TokenDates:
    """When a connection's tokens were refreshed and when they expire: dates only, no secret."""

    refreshed_at: datetime | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None


@dataclass(frozen=True)
class PendingCallback:
    """A FreshBooks webhook callback ``connect`` registered and FreshBooks has not verified yet
    (``pending``), or has (``verified``): what lets an unsigned ``callback.verify`` through."""

    callback_id: str
    state: Literal["pending", "verified"]
    event: str  # the FreshBooks event name registered (payment.create, …)
    expires_at: int  # epoch seconds; DynamoDB's TTL removes the item some time after


# A pending FreshBooks callback lives an hour (design 3.2): its verification arrives in seconds.
CALLBACK_TTL_SECONDS = 3600

# BatchGetItem reads at most 100 keys a request; unprocessed keys are asked for again, backing off.
BATCH_GET_KEYS = 100
BATCH_GET_ATTEMPTS = 8


class ConcurrentUpdate(TransientError):
    """Another worker changed the record since it was read; the message is retried later."""


# LINK# items that name a sync record (payments back, design 3.8), beside the charge links that
# name an invoice: a ledger payment push booked (``ledger-payment:{id}``), a Stripe payment
# record payments back made (``pr_…``), and a charge or payment intent of a payment push booked
# (``payment-of:{ch_…|pi_…}``, for the payout that settles it, design 3.5.2 step 8).
RECORD_LINK_PREFIXES = ("ledger-payment:", "pr_", "payment-of:")


def _record_key(connection_id: str, kind: str, source_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": f"{kind}#{source_id}"}}


# The JSON attributes a record may carry, packed together into one binary attribute when that is
# smaller (issue 9: DynamoDB bills a write unit per started KB of the item, so a 1.2 KB record costs
# twice what a 0.9 KB one does). Packed together rather than one by one: a line's id appears in both
# ``summary`` and ``line_products``, and one deflate stream refers back to it instead of storing it
# twice. Order matters for compression only; reading takes whatever names the blob holds.
PACKED_FIELDS = ("summary", "line_products", "refunds", "ledger_paid")
PACKED_ATTRIBUTE = "packed"
# Blob format 1: this byte, then a raw deflate stream (zlib, wbits -15: no zlib header or checksum,
# DynamoDB already keeps the bytes intact) primed with ``_PACK_DICTIONARY_1``, of
# ``name NUL text NUL name NUL text``. JSON text never holds a raw NUL (json escapes control
# characters), and a text that does is left out of the blob. The dictionary is part of the format:
# changing it means a new format byte, with this one still read.
_PACK_FORMAT_1 = 1
_PACK_DICTIONARY_1 = (
    b'{"booked": {}, "charges": {"ch_3", "credit": {"cn_1'
    b'{"ledger_payment#":{"amount":,"at":"2026-","state":"done"},"state":"pending"}'
    b'{"il_1": "prod_'
    b'"ln":[["il_1",null,1,0,0,0,null,null,"TAX"]]'
    b'{"st":"paid","iss":"2026-","due":"2026-","cid":"cus_","cn":"","ce":"","sub":,"dis":0,"tax":'
    b',"tot":,"paid":,"inv":"in_1","invn":"","ref":"pi_3ch_3inpay_1'
)


def _pack(texts: dict[str, str]) -> bytes:
    framed = b"\0".join(part for name, text in texts.items() for part in (name.encode(), text.encode()))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _PACK_DICTIONARY_1)
    return bytes([_PACK_FORMAT_1]) + deflate.compress(framed) + deflate.flush()


def _unpack(blob: bytes) -> dict[str, str]:
    if not blob or blob[0] != _PACK_FORMAT_1:
        raise ValueError(f"packed record attributes in an unknown format ({blob[:1]!r})")
    inflate = zlib.decompressobj(-15, _PACK_DICTIONARY_1)
    parts = (inflate.decompress(blob[1:]) + inflate.flush()).decode().split("\0")
    if len(parts) % 2:
        raise ValueError("packed record attributes are not name/text pairs")
    return dict(zip(parts[::2], parts[1::2], strict=True))


def _to_item(record: SyncRecord, revision: int, *, compact: bool = True) -> dict[str, Any]:
    """The record as a DynamoDB item. ``compact`` (what ``save`` writes) leaves out what
    ``_from_item`` restores: the connection, kind and source id (in the key already) and every
    field at its model default, and packs the JSON attributes (``PACKED_FIELDS``) into one
    compressed binary attribute when that makes the item smaller. ``compact=False`` is the form
    written before (issue 9), every attribute plain; both read back the same."""
    updated = record.updated_at or utcnow()
    item: dict[str, Any] = {
        **_record_key(record.connection_id, record.kind, record.source_id),
        "revision": {"N": str(revision)},
    }
    if record.status is not SyncStatus.PENDING:
        # The day index holds settled records only. An intent (pending) lives for the seconds of a
        # ledger call: indexing it would cost an index write, and its removal another, on every
        # document push creates (DynamoDB bills each index write like a table write).
        item["day_pk"] = {"S": f"{record.connection_id}#{updated.date().isoformat()}"}
        item["day_sk"] = {"S": f"{updated.isoformat()}#{record.kind}#{record.source_id}"}
    if record.status.parked:
        # Sparse index: only records that need a person carry these attributes.
        item["attention_pk"] = {"S": f"{record.connection_id}#{record.status.value}"}
        item["attention_sk"] = {"S": f"{updated.isoformat()}#{record.kind}#{record.source_id}"}
    if compact:
        # A default left out is restored by the model on reading: a model default must keep its
        # meaning for as long as items written under it exist.
        values = record.model_dump(
            mode="json", exclude_defaults=True, exclude={"connection_id", "kind", "source_id"}
        )
    else:
        values = record.model_dump(mode="json", exclude_none=True)
    texts: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            # ``ledger_paid``: one string attribute, so records stay flat (S and N values only).
            item[name] = {"S": json.dumps(value, sort_keys=True, separators=(",", ":"))}
        elif isinstance(value, bool) or not isinstance(value, int):
            item[name] = {"S": str(value)}
        else:
            item[name] = {"N": str(value)}
        if compact and name in PACKED_FIELDS and "\0" not in item[name]["S"]:
            texts[name] = item[name]["S"]
    if texts:
        blob = _pack(texts)
        plain = sum(len(name) + len(text.encode()) for name, text in texts.items())
        if len(PACKED_ATTRIBUTE) + len(blob) < plain:
            for name in texts:
                del item[name]
            item[PACKED_ATTRIBUTE] = {"B": blob}
    return item


def _from_item(item: dict[str, Any]) -> tuple[SyncRecord, int]:
    """A record from either form ``_to_item`` writes (and from items written before either)."""
    connection_id = item["pk"]["S"].removeprefix("CONN#")
    kind, _, source_id = item["sk"]["S"].partition("#")
    data: dict[str, Any] = {"connection_id": connection_id, "kind": kind, "source_id": source_id}
    if PACKED_ATTRIBUTE in item:
        packed = _unpack(item[PACKED_ATTRIBUTE]["B"])
        data.update((name, text) for name, text in packed.items() if name in PACKED_FIELDS)
    for name in SyncRecord.model_fields:
        if name in item:
            ((kind_of, value),) = item[name].items()
            data[name] = int(value) if kind_of == "N" else value
    return SyncRecord.model_validate(data), int(item["revision"]["N"])


class SyncStateStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client or aws.client("dynamodb")

    # --- sync records -----------------------------------------------------------------------------

    def get(self, connection_id: str, kind: DocumentKind, source_id: str) -> tuple[SyncRecord | None, int]:
        """The record and its revision (0 when there is none). Strongly consistent."""
        response = self._client.get_item(
            TableName=self.table, Key=_record_key(connection_id, kind, source_id), ConsistentRead=True
        )
        if "Item" not in response:
            return None, 0
        return _from_item(response["Item"])

    def save(self, record: SyncRecord, revision: int) -> int:
        """Writes ``record`` if nobody wrote it since ``revision`` was read; returns the new revision.

        The conditional write is what makes "record the intent, then create" safe when two
        workers hold duplicate deliveries of one snapshot: only one of them wins the intent.
        """
        now = utcnow()
        record.updated_at = now
        record.created_at = record.created_at or now
        new_revision = revision + 1
        condition = "attribute_not_exists(pk)" if revision == 0 else "revision = :revision"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Item": _to_item(record, new_revision),
            "ConditionExpression": condition,
        }
        if revision:
            kwargs["ExpressionAttributeValues"] = {":revision": {"N": str(revision)}}
        try:
            self._client.put_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(
                    f"{record.kind} {record.source_id} was updated by another worker"
                ) from exc
            raise
        return new_revision

    def list(self, connection_id: str) -> Iterator[SyncRecord]:
        """Every record of a connection, page by page."""
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}},
        ):
            for item in page["Items"]:
                yield _from_item(item)[0]

    def synced_total(self, connection_id: str, kind: DocumentKind, source_prefix: str) -> int:
        """The ledger totals of the synced records whose source id starts with ``source_prefix``."""
        return sum(
            record.ledger_total or 0
            for record, _ in self.records_with_prefix(connection_id, kind, source_prefix)
            if record.status is SyncStatus.SYNCED
        )

    def records_with_prefix(
        self, connection_id: str, kind: DocumentKind, source_prefix: str
    ) -> Iterator[tuple[SyncRecord, int]]:
        """The records of ``kind`` whose source id starts with ``source_prefix``, with their
        revisions, in sort-key order (one strongly consistent query, page by page). Payments back
        finds every invoice one ledger payment paid with ``("ledger_payment", f"{payment_id}:")``."""
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"CONN#{connection_id}"},
                ":prefix": {"S": f"{kind}#{source_prefix}"},
            },
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                yield _from_item(item)

    def needing_attention(
        self, connection_id: str, status: SyncStatus, *, newest_first: bool = False
    ) -> Iterator[SyncRecord]:
        """The connection's records in one parked status, page by page, in the order they were last
        written (the index sorts by that time), oldest or newest first."""
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName="by_status",
            KeyConditionExpression="attention_pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{connection_id}#{status.value}"}},
            ScanIndexForward=not newest_first,
        ):
            for item in page["Items"]:
                yield _from_item(item)[0]

    def find(self, connection_id: str, source_id: str) -> builtins.list[SyncRecord]:
        """Every record of one source id, whatever its kind (one GetItem per kind)."""
        found = (self.get(connection_id, kind, source_id)[0] for kind in get_args(DocumentKind))
        return [record for record in found if record is not None]

    def by_day(
        self,
        connection_id: str,
        since: datetime,
        until: datetime | None = None,
        *,
        newest_first: bool = True,
    ) -> Iterator[SyncRecord]:
        """The records last written between ``since`` and ``until`` (default: now), over the day
        index: one query per UTC day, page by page, newest first unless told otherwise. Each record
        appears once, on the day it was last written; a pending intent is not in the index (it is
        listed once it has settled: synced, parked or failed)."""
        since = since.astimezone(UTC)
        until = (until or utcnow()).astimezone(UTC)
        if since > until:
            return
        days = [since.date() + timedelta(days=n) for n in range((until.date() - since.date()).days + 1)]
        if newest_first:
            days.reverse()
        paginator = self._client.get_paginator("query")
        for day in days:
            # Second precision in the key condition; the exact bounds are checked below.
            low = max(since, datetime.combine(day, datetime.min.time(), UTC)).strftime("%Y-%m-%dT%H:%M:%S")
            high = until.strftime("%Y-%m-%dT%H:%M:%S") + "~" if day == until.date() else f"{day.isoformat()}U"
            for page in paginator.paginate(
                TableName=self.table,
                IndexName="by_day",
                KeyConditionExpression="day_pk = :pk AND day_sk BETWEEN :low AND :high",
                ExpressionAttributeValues={
                    ":pk": {"S": f"{connection_id}#{day.isoformat()}"},
                    ":low": {"S": low},
                    ":high": {"S": high},
                },
                ScanIndexForward=not newest_first,
            ):
                # The index holds keys only: each page's records are read whole, a hundred at a time.
                for record in self._records_of([{"pk": i["pk"], "sk": i["sk"]} for i in page["Items"]]):
                    if record.updated_at is None or since <= record.updated_at <= until:
                        yield record

    def _records_of(self, keys: builtins.list[dict[str, Any]]) -> Iterator[SyncRecord]:
        """The records under ``keys``, in that order (BatchGetItem, eventually consistent, as the
        index itself is); a key whose record has gone since is skipped."""
        for start in range(0, len(keys), BATCH_GET_KEYS):
            chunk = keys[start : start + BATCH_GET_KEYS]
            found: dict[tuple[str, str], dict[str, Any]] = {}
            wanted: builtins.list[dict[str, Any]] = chunk
            for attempt in range(BATCH_GET_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems={self.table: {"Keys": wanted}})
                for item in response["Responses"].get(self.table, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                wanted = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not wanted:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))  # DynamoDB's advice for unprocessed keys
            else:
                raise TransientError(
                    f"DynamoDB left {len(wanted)} record(s) unread after {BATCH_GET_ATTEMPTS} tries"
                )
            for key in chunk:
                item = found.get((key["pk"]["S"], key["sk"]["S"]))
                if item is not None:
                    yield _from_item(item)[0]

    def last_synced(self, connection_id: str, days: int = 7) -> SyncRecord | None:
        """The most recently written synced record of the last ``days`` days, if any."""
        now = utcnow()
        for record in self.by_day(connection_id, now - timedelta(days=days), now):
            if record.status is SyncStatus.SYNCED:
                return record
        return None

    # --- payment links: which invoice a charge paid, which record a ledger payment is -------------

    def _put_link(self, connection_id: str, name: str, attribute: str, value: str) -> None:
        """One ``LINK#{connection}`` item: ``name`` (a charge, a ledger payment, a payment record)
        -> ``value``. Kept under their own partition so that listing a connection's records stays
        records only, and one IAM statement covers every link."""
        self._client.put_item(
            TableName=self.table,
            Item={"pk": {"S": f"LINK#{connection_id}"}, "sk": {"S": name}, attribute: {"S": value}},
        )

    def _get_link(self, connection_id: str, name: str, attribute: str) -> str | None:
        response = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"LINK#{connection_id}"}, "sk": {"S": name}},
            ConsistentRead=True,
        )
        value = response.get("Item", {}).get(attribute)
        return None if value is None else str(value["S"])

    def link_charges(self, connection_id: str, charges: Sequence[str], invoice_source_id: str) -> None:
        """Remembers that these charges (or payment intents) paid this invoice, for their refunds."""
        for charge in charges:
            self._put_link(connection_id, charge, "invoice_source_id", invoice_source_id)

    def invoice_of_charge(self, connection_id: str, charges: Sequence[str]) -> str | None:
        """The invoice the first of these charges (or payment intents) is known to have paid."""
        for charge in charges:
            invoice = self._get_link(connection_id, charge, "invoice_source_id")
            if invoice is not None:
                return invoice
        return None

    def link(self, connection_id: str, name: str, record_sk: str) -> None:
        """Remembers which sync record ``name`` belongs to: ``ledger-payment:{ledger payment id}``
        -> the ``payment#…`` record push booked it for (echo suppression, design 3.6 rule 2), or a
        Stripe payment record ``pr_…`` -> the ``ledger_payment#…`` record that made it (loop 2).
        Writing the same link again is harmless. ``ValueError`` for any other name, so a record
        link never overwrites a charge's."""
        _check_link_name(name)
        _check_record_sk(record_sk)
        self._put_link(connection_id, name, "record_sk", record_sk)

    def linked(self, connection_id: str, name: str) -> str | None:
        """The record sort key ``link`` stored under ``name``; None when there is none (one
        strongly consistent GetItem)."""
        _check_link_name(name)
        return self._get_link(connection_id, name, "record_sk")

    # --- ledger payments on an invoice: what payments back has told Stripe (design 3.6) -----------

    def reserve_ledger_paid(
        self,
        connection_id: str,
        invoice_source_id: str,
        key: str,
        amount: int,
        state: LedgerPaidState,
        expected_revision: int,
        *,
        at: datetime | None = None,
    ) -> tuple[SyncRecord, int]:
        """Sets ``ledger_paid[key]`` (a ``ledger_payment#…`` record's sort key) on the invoice's
        record to ``amount`` minor units in ``state``, if the record is still at
        ``expected_revision``; returns the record as written and its new revision. Setting the same
        key again replaces it (a retry never adds twice). ``ConcurrentUpdate`` when the record moved
        or is gone since it was read: the caller re-reads and decides again."""
        entry = LedgerPaid(amount=amount, state=state, at=at or utcnow())
        record = self._invoice_at(connection_id, invoice_source_id, expected_revision)
        record.ledger_paid = {**(record.ledger_paid or {}), key: entry}
        return record, self.save(record, expected_revision)

    def release_ledger_paid(
        self, connection_id: str, invoice_source_id: str, key: str, expected_revision: int
    ) -> tuple[SyncRecord, int]:
        """Removes ``ledger_paid[key]`` from the invoice's record under ``expected_revision`` (a
        Stripe call that did not take the money, a parked ledger payment). Releasing a key that is
        not there writes nothing and returns the record at its revision. ``ConcurrentUpdate`` as
        ``reserve_ledger_paid``."""
        record = self._invoice_at(connection_id, invoice_source_id, expected_revision)
        if key not in (record.ledger_paid or {}):
            return record, expected_revision
        remaining = {k: v for k, v in (record.ledger_paid or {}).items() if k != key}
        record.ledger_paid = remaining or None
        return record, self.save(record, expected_revision)

    def _invoice_at(self, connection_id: str, invoice_source_id: str, expected_revision: int) -> SyncRecord:
        record, revision = self.get(connection_id, "invoice", invoice_source_id)
        if record is None or revision != expected_revision:
            raise ConcurrentUpdate(
                f"invoice {invoice_source_id} was updated by another worker"
                if record is not None
                else f"invoice {invoice_source_id} has no record (expected revision {expected_revision})"
            )
        return record

    # --- poll cursors: where a ledger poll resumes ------------------------------------------------

    def poll_cursor(self, connection_id: str, name: str = "xero-payments") -> PollCursor | None:
        """The connection's cursor for poll ``name`` (``POLL#{connection}``, sk ``name``), with the
        revision it is at; None before the first poll saved one."""
        item = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"POLL#{connection_id}"}, "sk": {"S": name}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return PollCursor(
            since=datetime.fromisoformat(item["since"]["S"]),
            revision=int(item["revision"]["N"]),
            last_run_at=datetime.fromisoformat(item["last_run_at"]["S"]) if "last_run_at" in item else None,
            last_count=int(item["last_count"]["N"]) if "last_count" in item else None,
        )

    def save_poll_cursor(
        self, connection_id: str, cursor: PollCursor, expected_revision: int, name: str = "xero-payments"
    ) -> PollCursor:
        """Writes the cursor if nobody saved it since ``expected_revision`` (0: none saved yet);
        returns it at its new revision (``cursor.revision`` itself is not consulted).
        ``ConcurrentUpdate`` when another poll saved first: two polls never both move it."""
        new_revision = expected_revision + 1
        item: dict[str, Any] = {
            "pk": {"S": f"POLL#{connection_id}"},
            "sk": {"S": name},
            "since": {"S": cursor.since.isoformat()},
            "revision": {"N": str(new_revision)},
        }
        if cursor.last_run_at is not None:
            item["last_run_at"] = {"S": cursor.last_run_at.isoformat()}
        if cursor.last_count is not None:
            item["last_count"] = {"N": str(cursor.last_count)}
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected_revision:
            kwargs["ConditionExpression"] = "revision = :revision"
            kwargs["ExpressionAttributeValues"] = {":revision": {"N": str(expected_revision)}}
        else:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        try:
            self._client.put_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(
                    f"the {name} cursor of {connection_id} was saved by another poll"
                ) from exc
            raise
        return cursor.model_copy(update={"revision": new_revision})

    # --- FreshBooks callbacks awaiting their verification (design 3.2) ----------------------------

    def put_pending_callback(
        self, connection_id: str, callback_id: str, event: str, ttl_seconds: int = CALLBACK_TTL_SECONDS
    ) -> PendingCallback:
        """Records a callback just registered with FreshBooks (``FBHOOK#{connection}``, sk the
        callback id), pending for ``ttl_seconds``; registering it again starts it afresh."""
        callback = PendingCallback(callback_id, "pending", event, int(time.time()) + ttl_seconds)
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"FBHOOK#{connection_id}"},
                "sk": {"S": callback_id},
                "state": {"S": callback.state},
                "event": {"S": event},
                "expires_at": {"N": str(callback.expires_at)},
            },
        )
        return callback

    def pending_callback(self, connection_id: str, callback_id: str) -> PendingCallback | None:
        """The callback as recorded, if its hour is not over (DynamoDB removes expired items only
        eventually, so expiry is checked here); None for a stranger's or a stale one. One GetItem,
        the only read ``ledger_events`` makes of this table (``FBHOOK#*`` leading keys)."""
        item = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"FBHOOK#{connection_id}"}, "sk": {"S": callback_id}},
            ConsistentRead=True,
        ).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= time.time():
            return None
        state = item["state"]["S"]
        if state not in ("pending", "verified"):
            return None
        return PendingCallback(callback_id, state, item["event"]["S"], int(item["expires_at"]["N"]))

    def mark_callback_verified(self, connection_id: str, callback_id: str) -> bool:
        """Marks a live pending callback verified (after FreshBooks accepted its verifier); False
        when there is none pending (expired, never registered, verified already)."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"FBHOOK#{connection_id}"}, "sk": {"S": callback_id}},
                UpdateExpression="SET #state = :verified",
                ConditionExpression="#state = :pending AND expires_at > :now",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":verified": {"S": "verified"},
                    ":pending": {"S": "pending"},
                    ":now": {"N": str(int(time.time()))},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- ledger use: requests per connection and day --------------------------------------------

    def add_ledger_use(self, connection_id: str, day: str, requests: int, throttled: int) -> None:
        """Adds to the day's count of ledger requests (and 429s) for a connection: one atomic
        update per push batch, kept 35 days. ``TransientError`` when DynamoDB refuses it."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"USE#{connection_id}"}, "sk": {"S": day}},
                UpdateExpression="ADD requests :r, throttled :t SET expires_at = :e",
                ExpressionAttributeValues={
                    ":r": {"N": str(requests)},
                    ":t": {"N": str(throttled)},
                    ":e": {"N": str(int(time.time()) + 35 * 24 * 3600)},
                },
            )
        except ClientError as exc:
            code = exc.response["Error"].get("Code", "")
            raise TransientError(f"ledger use of {connection_id} not counted: {code}") from exc

    def ledger_use(self, connection_id: str, day: str) -> tuple[int, int]:
        """(requests, throttled) the connection's ledger saw on ``day`` (YYYY-MM-DD, UTC)."""
        item = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": f"USE#{connection_id}"}, "sk": {"S": day}}
        ).get("Item", {})
        return int(item.get("requests", {}).get("N", "0")), int(item.get("throttled", {}).get("N", "0"))

    # --- token dates and reconciliation: what the daily report reads --------------------------

    def record_token_dates(self, connection_id: str, tokens: TokenSet) -> None:
        """Keeps a connection's token dates (never a token) beside its records, written whenever
        its tokens are saved, so the daily report shows token health without reading secrets."""
        item: dict[str, Any] = {"pk": {"S": f"TOKENS#{connection_id}"}, "sk": {"S": "DATES"}}
        item["recorded_at"] = {"S": utcnow().isoformat()}
        for name in ("refreshed_at", "access_expires_at", "refresh_expires_at"):
            value = getattr(tokens, name)
            if value is not None:
                item[name] = {"S": value.isoformat()}
        self._client.put_item(TableName=self.table, Item=item)

    def token_dates(self, connection_id: str) -> TokenDates | None:
        """The token dates last recorded for a connection; None before its tokens were first saved
        through push (or since this version)."""
        item = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": f"TOKENS#{connection_id}"}, "sk": {"S": "DATES"}}
        ).get("Item")
        if item is None:
            return None

        def moment(name: str) -> datetime | None:
            return datetime.fromisoformat(item[name]["S"]) if name in item else None

        return TokenDates(moment("refreshed_at"), moment("access_expires_at"), moment("refresh_expires_at"))

    def record_reconciliation(self, connection_id: str, day: str, status: str, detail: str) -> None:
        """Where reconciliation (issue 6) leaves its verdict on a connection's day for the report."""
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"RECON#{connection_id}"},
                "sk": {"S": day},
                "status": {"S": status},
                "detail": {"S": detail},
                "recorded_at": {"S": utcnow().isoformat()},
                "expires_at": {"N": str(int(time.time()) + 400 * 24 * 3600)},
            },
        )

    def reconciliation(self, connection_id: str, day: str) -> tuple[str, str] | None:
        """(status, detail) reconciliation recorded for the day (YYYY-MM-DD); None when not run."""
        item = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": f"RECON#{connection_id}"}, "sk": {"S": day}}
        ).get("Item")
        if item is None:
            return None
        return str(item["status"]["S"]), str(item.get("detail", {}).get("S", ""))

    # --- markers: event de-duplication, alert de-duplication ------------------------------------

    def _marked(self, pk: str) -> bool:
        """A live marker: DynamoDB removes expired items only eventually, so expiry is checked here."""
        response = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": "MARK"}},
            ProjectionExpression="expires_at",
        )
        item = response.get("Item")
        return item is not None and int(item.get("expires_at", {}).get("N", "0")) > time.time()

    def _mark(self, pk: str, ttl_seconds: int, attributes: dict[str, str]) -> None:
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": pk},
                "sk": {"S": "MARK"},
                **{name: {"S": value} for name, value in attributes.items()},
                "marked_at": {"S": utcnow().isoformat()},
                "expires_at": {"N": str(int(time.time()) + ttl_seconds)},
            },
        )

    def alert_sent(self, key: str) -> bool:
        return self._marked(f"ALERT#{key}")

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None:
        """Written after the alert went out: a failed publish leaves the next attempt to alert."""
        self._mark(f"ALERT#{key}", ttl_seconds, {})

    # --- leases -----------------------------------------------------------------------------------

    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        """Takes the named lease unless someone else holds an unexpired one."""
        now = int(time.time())
        try:
            self._client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"LOCK#{name}"},
                    "sk": {"S": "LOCK"},
                    "owner": {"S": owner},
                    "lease_until": {"N": str(now + lease_seconds)},
                    "expires_at": {"N": str(now + lease_seconds + 3600)},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":owner": {"S": owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lock(self, name: str, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"LOCK#{name}"}, "sk": {"S": "LOCK"}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise


def _check_link_name(name: str) -> None:
    if not name.startswith(RECORD_LINK_PREFIXES) or name in RECORD_LINK_PREFIXES:
        raise ValueError(
            f"{name!r} is not a record link (expected ledger-payment:{{id}}, pr_… or payment-of:{{charge}})"
        )


def _check_record_sk(record_sk: str) -> None:
    kind, separator, source_id = record_sk.partition("#")
    if not separator or not source_id or kind not in get_args(DocumentKind):
        raise ValueError(f"{record_sk!r} is not a sync record's sort key ({{kind}}#{{source id}})")
