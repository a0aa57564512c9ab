"""The secret store's webhook-secret cache: read once per ``cache_seconds`` while warm, never
cached when 0, a missing secret never cached (it may be created any moment), errors not hidden."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from invoice_sync.errors import UnknownConnection
from invoice_sync.store import secrets as secrets_module
from invoice_sync.store.secrets import SecretStore


class FakeSecretsManager:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads: list[str] = []
        self.error: str | None = None

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.reads.append(SecretId)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "GetSecretValue")
        if SecretId not in self.values:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "x"}}, "GetSecretValue"
            )
        return {"SecretString": self.values[SecretId]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(secrets_module, "monotonic", clock)
    return clock


def _store(client: FakeSecretsManager, cache_seconds: int) -> SecretStore:
    client.values["p/acme/webhook"] = json.dumps({"secrets": ["whsec_1"]})
    return SecretStore("p", client, cache_seconds=cache_seconds)


def test_secrets_are_read_once_while_fresh_and_again_after(clock: Clock) -> None:
    client = FakeSecretsManager()
    store = _store(client, 300)
    assert [s.get_secret_value() for s in store.webhook_secrets("acme")] == ["whsec_1"]
    client.values["p/acme/webhook"] = json.dumps({"secrets": ["whsec_2", "whsec_1"]})
    clock.now += 300
    assert [s.get_secret_value() for s in store.webhook_secrets("acme")] == ["whsec_1"]
    assert client.reads == ["p/acme/webhook"]
    clock.now += 1
    assert [s.get_secret_value() for s in store.webhook_secrets("acme")] == ["whsec_2", "whsec_1"]
    assert len(client.reads) == 2


def test_zero_seconds_reads_every_time(clock: Clock) -> None:
    client = FakeSecretsManager()
    store = _store(client, 0)
    store.webhook_secrets("acme")
    store.webhook_secrets("acme")
    assert len(client.reads) == 2


def test_a_missing_secret_is_an_unknown_connection_and_not_cached(clock: Clock) -> None:
    client = FakeSecretsManager()
    store = SecretStore("p", client, cache_seconds=300)
    with pytest.raises(UnknownConnection, match="no webhook secret"):
        store.webhook_secrets("acme")
    client.values["p/acme/webhook"] = json.dumps({"secrets": ["whsec_1"]})
    assert len(store.webhook_secrets("acme")) == 1


def test_throttling_is_raised_as_it_is_not_as_an_unknown_connection(clock: Clock) -> None:
    client = FakeSecretsManager()
    store = _store(client, 300)
    client.error = "ThrottlingException"
    with pytest.raises(ClientError):
        store.webhook_secrets("acme")
    client.error = None
    assert len(store.webhook_secrets("acme")) == 1


@pytest.mark.parametrize("value", [json.dumps({"secrets": [""]}), json.dumps({"other": 1}), "null", "[1]"])
def test_a_malformed_secret_is_an_unknown_connection(clock: Clock, value: str) -> None:
    client = FakeSecretsManager()
    client.values["p/acme/webhook"] = value
    with pytest.raises(UnknownConnection, match="malformed"):
        SecretStore("p", client).webhook_secrets("acme")


def test_a_value_that_is_not_json_is_an_error_not_a_rejection(clock: Clock) -> None:
    client = FakeSecretsManager()
    client.values["p/acme/webhook"] = "whsec_plain"
    with pytest.raises(ValueError, match="Expecting value"):
        SecretStore("p", client).webhook_secrets("acme")
