"""Mappings table: connections and their mapping rules, versioned.

Items:
- ``pk=CONN#{id}, sk=CONNECTION``: the connection;
- ``pk=CONNECTIONS, sk={id}``: the directory of connections;
- ``pk=CONN#{id}, sk=RULE#{kind}#{source value}``: a product or tax-rate rule (a few hundred at
  most, read together);
- ``pk=CUST#{id}, sk={source customer id}``: a customer rule, set by an operator or learned when
  push found or created the customer. One per customer, so they are read one at a time, never
  with the rules.

A warm Lambda keeps what it read for ``cache_seconds``: webhooks must not pay a DynamoDB read each
to learn that a connection exists.
"""

from __future__ import annotations

import time
from typing import Any

from invoice_sync.models.mapping import Connection, MappingRule, Mappings, RuleKind
from invoice_sync.store import aws


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


class MappingsStore:
    def __init__(self, table: str, client: Any | None = None, *, cache_seconds: float = 60.0) -> None:
        self.table = table
        self._client = client or aws.client("dynamodb")
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Any]] = {}

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
        self._cache[f"connection#{connection_id}"] = (time.monotonic(), connection)
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
        self._cache[f"mappings#{connection_id}"] = (time.monotonic(), result)
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
            self._cache[key] = (time.monotonic(), rule)
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
            self._cache[f"customer#{connection_id}#{rule.source_value}"] = (time.monotonic(), rule)
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

    def learned_customer(self, connection_id: str, source_id: str, ledger_id: str, name: str) -> None:
        """Remembers a customer found or created in the ledger, so the next invoice skips the lookup.

        Not a new mapping version: it records a fact about the ledger, not an operator's rule.
        """
        self.put_rule(
            connection_id,
            MappingRule(
                kind=RuleKind.CUSTOMER, source_value=source_id, ledger_id=ledger_id, ledger_name=name
            ),
        )
