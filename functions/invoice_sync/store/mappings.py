"""Mappings table: connections and their mapping rules, versioned.

Items:
- ``pk=CONN#{id}, sk=CONNECTION``: the connection;
- ``pk=CONNECTIONS, sk={id}``: the directory of connections;
- ``pk=CONN#{id}, sk=RULE#{kind}#{source value}``: a product or tax-rate rule (a few hundred at
  most, read together);
- ``pk=CUST#{id}, sk={source customer id}``: a customer rule, set by an operator or learned when
  push found or created the customer. One per customer, so they are read one at a time, never
  with the rules;
- ``pk=CONN#{id}, sk=VERSION#{n:06d}``: the record of mapping version n as an import made it
  (``MappingVersion``); ``mappings`` skips these;
- ``pk=TENANT#{ledger}#{tenant id}, sk=CONNECTION``: ``connection_id``, the connection a ledger
  company belongs to, so a ledger webhook naming its tenant reaches its connection (issue 7).

A warm Lambda keeps what it read for ``cache_seconds``: webhooks must not pay a DynamoDB read each
to learn that a connection exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from invoice_sync.models.mapping import (
    Connection,
    LedgerKind,
    MappingRule,
    Mappings,
    MappingVersion,
    RuleKind,
)
from invoice_sync.store import aws

# The connection fields a mapping import sets (the rest of the item belongs to `connect`).
SETTING_FIELDS = (
    "customer_policy",
    "no_tax_code",
    "default_item_id",
    "default_account",
    "payment_account",
    "refund_item_id",
    "refund_account",
    "refund_from_account",
    "rounding_account",
    "payments_back",
    "payments_back_since",
)
BATCH_WRITE = 25  # DynamoDB's most requests per BatchWriteItem


class MappingWriteError(Exception):
    """An import could not be written completely; running it again converges (state, not operations)."""


class VersionConflict(MappingWriteError):
    """The mapping version moved while an import was being written (another import ran)."""


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, typed in item.items():
        ((kind, value),) = typed.items()
        out[name] = int(value) if kind == "N" else value
    return out


def _typed(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = {"BOOL": value}
        elif isinstance(value, int):
            out[name] = {"N": str(value)}
        else:
            out[name] = {"S": str(value)}
    return out


# Entries a warm instance keeps at most (connections, their rules, customers' rules).
MAX_CACHED = 4096


class MappingsStore:
    def __init__(self, table: str, client: Any | None = None, *, cache_seconds: float = 60.0) -> None:
        self.table = table
        self._client = client or aws.client("dynamodb")
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Any]] = {}

    def _keep(self, key: str, value: Any) -> None:
        """Caches ``value``; past ``MAX_CACHED`` entries the expired ones go, then the oldest: the
        intake caches the answer for any connection id of the right shape, unknown ones included,
        and random ids must not grow a warm instance's memory without bound."""
        self._cache.pop(key, None)  # re-inserted last: the dict's order is the entries' age
        self._cache[key] = (time.monotonic(), value)
        if len(self._cache) > MAX_CACHED:
            cutoff = time.monotonic() - self._cache_seconds
            for stale in [k for k, (at, _) in self._cache.items() if at < cutoff]:
                del self._cache[stale]
            for oldest in list(self._cache)[: max(0, len(self._cache) - MAX_CACHED)]:
                del self._cache[oldest]

    def _cached(self, key: str) -> tuple[bool, Any]:
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return True, cached[1]
        return False, None

    def connection(self, connection_id: str) -> Connection | None:
        """One GetItem (cached): all the intake needs to know."""
        hit, value = self._cached(f"connection#{connection_id}")
        if hit:
            return value  # type: ignore[no-any-return]
        response = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONNECTION"}}
        )
        connection = None
        if "Item" in response:
            data = _plain(response["Item"])
            connection = Connection.model_validate({k: v for k, v in data.items() if k not in {"pk", "sk"}})
        self._keep(f"connection#{connection_id}", connection)
        return connection

    def mappings(self, connection_id: str) -> Mappings | None:
        """The connection with its product and tax-rate rules, from one paged query (cached)."""
        hit, value = self._cached(f"mappings#{connection_id}")
        if hit:
            return value  # type: ignore[no-any-return]
        connection: Connection | None = None
        rules: list[MappingRule] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                data = _plain(item)
                sort_key = data.pop("sk")
                data.pop("pk")
                if sort_key == "CONNECTION":
                    connection = Connection.model_validate(data)
                elif sort_key.startswith("RULE#"):
                    rules.append(MappingRule.model_validate(data))
        result = Mappings(connection=connection, rules=tuple(rules)) if connection else None
        self._keep(f"mappings#{connection_id}", result)
        return result

    def customer_rule(self, connection_id: str, source_id: str) -> MappingRule | None:
        """The ledger customer of one source customer, if mapped or learned (cached while warm)."""
        key = f"customer#{connection_id}#{source_id}"
        hit, value = self._cached(key)
        if hit and value is not None:
            return value  # type: ignore[no-any-return]
        response = self._client.get_item(
            TableName=self.table, Key={"pk": {"S": f"CUST#{connection_id}"}, "sk": {"S": source_id}}
        )
        rule = None
        if "Item" in response:
            data = _plain(response["Item"])
            rule = MappingRule.model_validate({k: v for k, v in data.items() if k not in {"pk", "sk"}})
            self._keep(key, rule)
        return rule

    def forget(self, connection_id: str) -> None:
        for kind in ("connection", "mappings"):
            self._cache.pop(f"{kind}#{connection_id}", None)

    def put_connection(self, connection: Connection) -> None:
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"CONN#{connection.connection_id}"},
                "sk": {"S": "CONNECTION"},
                **_typed(connection.model_dump(mode="json")),
            },
        )
        # The directory of connections, one small item each, so operators can list them with a
        # query instead of scanning every rule and customer.
        self._client.put_item(
            TableName=self.table,
            Item={"pk": {"S": "CONNECTIONS"}, "sk": {"S": connection.connection_id}},
        )
        self.forget(connection.connection_id)

    def set_tenant(self, connection_id: str, tenant_id: str) -> None:
        """Points an existing connection at (the same or, by an operator's choice, another) ledger
        company, and touches nothing else: a mapping import may have moved its settings and version
        while the person was on the consent page."""
        self._client.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONNECTION"}},
            UpdateExpression="SET tenant_id = :tenant",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":tenant": {"S": tenant_id}},
        )
        self.forget(connection_id)

    def tenant_connection(self, ledger: LedgerKind, tenant_id: str) -> str | None:
        """The connection that ledger company ``tenant_id`` belongs to (one GetItem, cached while
        warm, an unknown tenant too); None when no ``connect`` or import recorded one."""
        key = f"tenant#{ledger}#{tenant_id}"
        hit, value = self._cached(key)
        if hit:
            return value  # type: ignore[no-any-return]
        item = self._client.get_item(TableName=self.table, Key=_tenant_key(ledger, tenant_id)).get("Item")
        connection_id = str(item["connection_id"]["S"]) if item and "connection_id" in item else None
        self._keep(key, connection_id)
        return connection_id

    def put_tenant_connection(self, ledger: LedgerKind, tenant_id: str, connection_id: str) -> None:
        """Records that ledger company ``tenant_id`` belongs to ``connection_id`` (replacing any
        earlier owner: the last ``connect`` to a company wins, as its webhooks can go to one only)."""
        self._client.put_item(
            TableName=self.table,
            Item={**_tenant_key(ledger, tenant_id), "connection_id": {"S": connection_id}},
        )
        self._cache.pop(f"tenant#{ledger}#{tenant_id}", None)

    def connections(self) -> list[Connection]:
        """Every registered connection, in id order (one query and a GetItem each: few of them)."""
        ids: list[str] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "CONNECTIONS"}},
        ):
            ids.extend(item["sk"]["S"] for item in page["Items"])
        found = (self.connection(connection_id) for connection_id in sorted(ids))
        return [connection for connection in found if connection is not None]

    def put_rule(self, connection_id: str, rule: MappingRule) -> None:
        if rule.kind is RuleKind.CUSTOMER:
            key = {"pk": {"S": f"CUST#{connection_id}"}, "sk": {"S": rule.source_value}}
        else:
            key = {
                "pk": {"S": f"CONN#{connection_id}"},
                "sk": {"S": f"RULE#{rule.kind.value}#{rule.source_value}"},
            }
        self._client.put_item(TableName=self.table, Item={**key, **_typed(rule.model_dump(mode="json"))})
        if rule.kind is RuleKind.CUSTOMER:
            self._keep(f"customer#{connection_id}#{rule.source_value}", rule)
        else:
            self.forget(connection_id)

    def bump_version(self, connection_id: str) -> int:
        """A new mapping version; every document synced afterwards records it."""
        response = self._client.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONNECTION"}},
            UpdateExpression="SET mapping_version = mapping_version + :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        self.forget(connection_id)
        return int(response["Attributes"]["mapping_version"]["N"])

    def _rule_key(self, connection_id: str, rule: MappingRule) -> dict[str, Any]:
        if rule.kind is RuleKind.CUSTOMER:
            return {"pk": {"S": f"CUST#{connection_id}"}, "sk": {"S": rule.source_value}}
        return {
            "pk": {"S": f"CONN#{connection_id}"},
            "sk": {"S": f"RULE#{rule.kind.value}#{rule.source_value}"},
        }

    def _query(self, pk: str, prefix: str | None = None) -> Iterator[dict[str, Any]]:
        condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
        values = {":pk": {"S": pk}, **({":prefix": {"S": prefix}} if prefix else {})}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        ):
            yield from page["Items"]

    def customer_rules(self, connection_id: str) -> list[MappingRule]:
        """Every customer rule, set or learned (a paged query: thousands, for operators only)."""
        rules = []
        for item in self._query(f"CUST#{connection_id}"):
            data = _plain(item)
            rules.append(MappingRule.model_validate({k: v for k, v in data.items() if k not in {"pk", "sk"}}))
        return rules

    def all_rules(self, connection_id: str) -> list[MappingRule]:
        """Product, tax-rate, currency and customer rules together, as a mapping export shows them."""
        mappings = self.mappings(connection_id)
        return [*(mappings.rules if mappings else ()), *self.customer_rules(connection_id)]

    def write_rules(
        self, connection_id: str, puts: Sequence[MappingRule], deletes: Sequence[MappingRule]
    ) -> None:
        """Puts and deletes in batches of 25, retrying what DynamoDB leaves unprocessed."""
        requests: list[dict[str, Any]] = [
            {
                "PutRequest": {
                    "Item": {**self._rule_key(connection_id, rule), **_typed(rule.model_dump(mode="json"))}
                }
            }
            for rule in puts
        ]
        requests += [{"DeleteRequest": {"Key": self._rule_key(connection_id, rule)}} for rule in deletes]
        for start in range(0, len(requests), BATCH_WRITE):
            pending: dict[str, Any] = {self.table: requests[start : start + BATCH_WRITE]}
            for attempt in range(8):
                unprocessed = (
                    self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                )
                if not unprocessed:
                    break
                pending = unprocessed
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise MappingWriteError(
                    "DynamoDB left mapping rules unwritten after 8 attempts; run the import again"
                )
        self.forget(connection_id)
        for rule in (*puts, *deletes):
            self._cache.pop(f"customer#{connection_id}#{rule.source_value}", None)

    def commit_version(self, connection: Connection, expected_version: int, record: MappingVersion) -> int:
        """Sets the connection's settings and moves it to ``record.version`` (which must be
        ``expected_version + 1``), and keeps the version record, in one transaction: conditional on
        the version still being ``expected_version``, so two imports never share a number."""
        assert record.version == expected_version + 1
        key = {"pk": {"S": f"CONN#{connection.connection_id}"}, "sk": {"S": "CONNECTION"}}
        values = connection.model_dump(mode="json")
        present = [name for name in SETTING_FIELDS if values.get(name) is not None]
        absent = [name for name in SETTING_FIELDS if values.get(name) is None]
        expression = "SET mapping_version = :new, " + ", ".join(f"#{name} = :{name}" for name in present)
        if absent:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in absent)
        names = {f"#{name}": name for name in (*present, *absent)}
        attribute_values = {
            ":new": {"N": str(record.version)},
            ":old": {"N": str(expected_version)},
            **{f":{name}": _typed({name: values[name]})[name] for name in present},
        }
        item = {
            "pk": {"S": f"CONN#{connection.connection_id}"},
            "sk": {"S": f"VERSION#{record.version:06d}"},
            **_typed(record.model_dump(mode="json", exclude={"snapshot", "counts", "changes"})),
            "counts": {"M": {k: {"N": str(v)} for k, v in record.counts.items()}},
            "changes": {"M": {k: {"N": str(v)} for k, v in record.changes.items()}},
        }
        if record.snapshot is not None:
            item["snapshot"] = {"B": record.snapshot}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": key,
                            "UpdateExpression": expression,
                            "ConditionExpression": "mapping_version = :old",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": attribute_values,
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            raise VersionConflict(
                f"the mapping version of {connection.connection_id} moved from {expected_version} "
                "while this import was written (another import?); run it again"
            ) from exc
        self.forget(connection.connection_id)
        return record.version

    def versions(self, connection_id: str, *, with_snapshots: bool = False) -> list[MappingVersion]:
        """The recorded versions, oldest first (only versions made by an import have a record)."""
        return [
            _version(item, with_snapshots=with_snapshots)
            for item in self._query(f"CONN#{connection_id}", "VERSION#")
        ]

    def version(self, connection_id: str, number: int) -> MappingVersion | None:
        response = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": f"VERSION#{number:06d}"}},
            ConsistentRead=True,
        )
        return _version(response["Item"], with_snapshots=True) if "Item" in response else None

    def learned_customer(self, connection_id: str, source_id: str, ledger_id: str, name: str) -> None:
        """Remembers a customer found or created in the ledger, so the next invoice skips the lookup.

        Not a new mapping version: it records a fact about the ledger, not an operator's rule.
        """
        self.put_rule(
            connection_id,
            MappingRule(
                kind=RuleKind.CUSTOMER,
                source_value=source_id,
                ledger_id=ledger_id,
                ledger_name=name,
                learned=True,
            ),
        )


def _tenant_key(ledger: LedgerKind, tenant_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{ledger}#{tenant_id}"}, "sk": {"S": "CONNECTION"}}


def _version(item: dict[str, Any], *, with_snapshots: bool) -> MappingVersion:
    snapshot = item.get("snapshot", {}).get("B") if with_snapshots else None
    data = _plain({k: v for k, v in item.items() if k not in {"pk", "sk", "snapshot", "counts", "changes"}})
    return MappingVersion.model_validate(
        {
            **data,
            "counts": {k: int(v["N"]) for k, v in item.get("counts", {}).get("M", {}).items()},
            "changes": {k: int(v["N"]) for k, v in item.get("changes", {}).get("M", {}).items()},
            "snapshot": bytes(snapshot) if snapshot is not None else None,
        }
    )
