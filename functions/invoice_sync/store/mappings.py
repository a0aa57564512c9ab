"""Mappings table: connections and their mapping rules, versioned.

Items: ``pk=CONN#{id}, sk=CONNECTION`` holds the connection; ``sk=RULE#{kind}#{source value}``
holds one rule. A warm Lambda keeps what it read for ``cache_seconds``: webhooks must not pay a
DynamoDB read each to learn that a connection exists.
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
        self._cache: dict[str, tuple[float, Mappings | None]] = {}

    def connection(self, connection_id: str) -> Connection | None:
        mappings = self.mappings(connection_id)
        return mappings.connection if mappings else None

    def mappings(self, connection_id: str) -> Mappings | None:
        """The connection and all its rules, from one paged query (cached while warm)."""
        cached = self._cache.get(connection_id)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
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
        self._cache[connection_id] = (time.monotonic(), result)
        return result

    def forget(self, connection_id: str) -> None:
        self._cache.pop(connection_id, None)

    def put_connection(self, connection: Connection) -> None:
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"CONN#{connection.connection_id}"},
                "sk": {"S": "CONNECTION"},
                **_typed(connection.model_dump(mode="json")),
            },
        )
        self.forget(connection.connection_id)

    def put_rule(self, connection_id: str, rule: MappingRule) -> None:
        self._client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"CONN#{connection_id}"},
                "sk": {"S": f"RULE#{rule.kind.value}#{rule.source_value}"},
                **_typed(rule.model_dump(mode="json")),
            },
        )
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
