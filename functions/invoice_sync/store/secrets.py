"""Secrets Manager: webhook signing secrets and ledger OAuth tokens, one secret each per connection.

Names: ``{prefix}/{connection}/webhook`` holds ``{"secrets": ["whsec_new", "whsec_old"]}`` (two
while an operator rotates); ``{prefix}/{connection}/ledger-oauth`` holds the OAuth client and
token set; ``{prefix}/{connection}/stripe-api`` holds ``{"api_key": "rk_..."}``, the Stripe key the
operator CLI reads invoices with (``try``, ``backfill``). Payments back (issue 7) adds
``{prefix}/{connection}/ledger-webhook``, ``{"keys": ["…"]}`` (the ledger's webhook verifier token,
webhook key or verifier; a list for rotation), and ``{prefix}/{connection}/stripe-writer``,
``{"api_key": "rk_..."}``, the one Stripe key that may write (mark invoices paid, report payments);
its name does not match ``stripe-api-??????``, so a role that reads the read key cannot read it.
Values never leave this module except as ``SecretStr``.

The webhook secrets are cached while warm, ``cache_seconds`` each (0: never cached), as Powertools'
``SecretsProvider`` did; that package imports boto3 and its S3 transfer machinery at cold start
for what is one ``GetSecretValue`` and a dict here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import SecretStr, ValidationError

from invoice_sync.errors import ConnectionBroken, UnknownConnection
from invoice_sync.observability import logger
from invoice_sync.store import aws

if TYPE_CHECKING:
    from invoice_sync.models.tokens import TokenSet

_MISSING = object()  # no such secret


class LedgerWebhookNotConfigured(UnknownConnection):
    """The connection has no (usable) ledger webhook key: its ledger webhooks are answered as for an
    unknown connection (404), never checked against nothing."""


class SecretStore:
    def __init__(
        self,
        prefix: str,
        client: Any | None = None,
        *,
        cache_seconds: int = 300,
        on_tokens_saved: Callable[[str, TokenSet], None] | None = None,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        # Told after new tokens are saved (push: their dates go to the SyncState table for the
        # daily report, which then needs no access to the token secrets).
        self._on_tokens_saved = on_tokens_saved
        self._client = client or aws.client("secretsmanager")
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Any]] = {}  # name -> (monotonic expiry, parsed value)

    def _name(self, connection_id: str, kind: str) -> str:
        return f"{self.prefix}/{connection_id}/{kind}"

    def webhook_secrets(self, connection_id: str) -> list[SecretStr]:
        """The active signing secrets, cached while warm for ``cache_seconds``."""
        name = self._name(connection_id, "webhook")
        value = self._cached_json(name)
        if value is _MISSING:
            raise UnknownConnection(f"no webhook secret configured for connection {connection_id}")
        secrets = value.get("secrets") if isinstance(value, dict) else None
        if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
            raise UnknownConnection(f"webhook secret of connection {connection_id} is malformed")
        return [SecretStr(s) for s in secrets]

    def _cached_json(self, name: str) -> Any:
        """A secret's value parsed as JSON, from the cache while fresh; ``_MISSING`` when there is
        no such secret (not cached: it may be created any moment). Throttling or an outage raises
        (the intake answers 503 and the sender retries), and so does a value that is not JSON."""
        now = monotonic()
        held = self._cache.get(name)
        if held is not None and now <= held[0]:
            return held[1]
        raw = self._read(name)
        if raw is None:
            return _MISSING
        value = json.loads(raw)
        if self._cache_seconds > 0 and value is not None:
            self._cache[name] = (now + self._cache_seconds, value)
        return value

    def put_webhook_secrets(self, connection_id: str, secrets: list[str]) -> None:
        self._put(self._name(connection_id, "webhook"), json.dumps({"secrets": secrets}))

    def ledger_tokens(self, connection_id: str) -> TokenSet:
        """Always read fresh: another worker may have rotated the refresh token a moment ago."""
        # Imported here: the intake, which reads webhook secrets only, never builds the model.
        from invoice_sync.models.tokens import TokenSet  # noqa: PLC0415

        raw = self._read(self._name(connection_id, "ledger-oauth"))
        if raw is None:
            raise ConnectionBroken("ledger not connected", f"no OAuth tokens for {connection_id}")
        try:
            return TokenSet.model_validate_json(raw)
        except ValidationError:
            raise ConnectionBroken(
                "ledger not connected", f"OAuth tokens of {connection_id} are malformed"
            ) from None

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None:
        self._put(self._name(connection_id, "ledger-oauth"), tokens.to_secret_json())
        if self._on_tokens_saved is not None:
            try:
                self._on_tokens_saved(connection_id, tokens)
            except Exception as error:  # noqa: BLE001 - the tokens are saved; a lost date is a report gap
                logger.warning(
                    "token dates not recorded", extra={"connection_id": connection_id, "error": str(error)}
                )

    def ledger_webhook_keys(self, connection_id: str) -> list[SecretStr]:
        """The ledger's webhook keys (QBO verifier token, Xero webhook key, FreshBooks verifiers),
        newest first, cached while warm like the Stripe signing secrets. ``LedgerWebhookNotConfigured``
        when there is no secret or it holds no key."""
        name = self._name(connection_id, "ledger-webhook")
        try:
            value = self._cached_json(name)
        except ValueError:  # not JSON; the error would carry the value, so it goes no further
            raise LedgerWebhookNotConfigured(
                f"ledger webhook secret of {connection_id} is malformed"
            ) from None
        if value is _MISSING:
            raise LedgerWebhookNotConfigured(f"no ledger webhook key for connection {connection_id}")
        keys = value.get("keys") if isinstance(value, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise LedgerWebhookNotConfigured(f"ledger webhook secret of {connection_id} is malformed")
        return [SecretStr(k) for k in keys]

    def put_ledger_webhook_keys(self, connection_id: str, keys: Sequence[str]) -> None:
        """Replaces the ledger webhook keys (the CLI, from stdin; two while rotating). ``ValueError``
        for an empty list or an empty key; the message never holds a key."""
        if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
            raise ValueError("ledger webhook keys must be one or more non-empty strings")
        name = self._name(connection_id, "ledger-webhook")
        self._put(name, json.dumps({"keys": [k.strip() for k in keys]}))
        self._cache.pop(name, None)

    def ensure_ledger_webhook_secret(self, connection_id: str) -> None:
        """Creates the connection's ledger webhook secret with no key (``{"keys": []}``: still not
        configured) unless it exists. The CLI does this when it registers a FreshBooks callback, so
        that payments back, adding the verifier later, needs ``PutSecretValue`` and never
        ``CreateSecret``."""
        name = self._name(connection_id, "ledger-webhook")
        if self._read(name) is None:
            self._put(name, json.dumps({"keys": []}))

    def add_ledger_webhook_key(self, connection_id: str, key: str) -> None:
        """Puts ``key`` first among the connection's ledger webhook keys, read fresh (payments back,
        after FreshBooks accepted a callback's verifier); a key already there is not added twice."""
        name = self._name(connection_id, "ledger-webhook")
        raw = self._read(name)
        try:
            value = json.loads(raw) if raw is not None else {"keys": []}
        except ValueError:
            value = None
        held = value.get("keys") if isinstance(value, dict) else None
        if not isinstance(held, list):
            # Never overwritten: it may hold a key in a form this version does not read.
            raise LedgerWebhookNotConfigured(
                f"ledger webhook secret of {connection_id} is malformed; set it again "
                "(invoice-sync secret ledger-webhook)"
            )
        current = [k for k in held if isinstance(k, str) and k]
        self.put_ledger_webhook_keys(connection_id, [key, *(k for k in current if k != key)])

    def stripe_secret_name(self, connection_id: str) -> str:
        return self._name(connection_id, "stripe-api")

    def stripe_api_key(self, connection_id: str) -> SecretStr:
        """The connection's Stripe API key (a restricted key with invoice read access will do).
        ``ConnectionBroken`` when none is stored or the secret holds no key; never the value."""
        return self._stripe_key(self.stripe_secret_name(connection_id), connection_id, "Stripe API key")

    def put_stripe_api_key(self, connection_id: str, api_key: str) -> None:
        self._put(self.stripe_secret_name(connection_id), json.dumps({"api_key": api_key}))

    def stripe_writer_secret_name(self, connection_id: str) -> str:
        return self._name(connection_id, "stripe-writer")

    def stripe_writer_key(self, connection_id: str) -> SecretStr:
        """The Stripe key payments back writes with (a restricted key with Invoices and Payment
        Records write), distinct from the read key; read fresh. ``ConnectionBroken`` when none is
        stored or the secret holds no key; never the value."""
        name = self.stripe_writer_secret_name(connection_id)
        return self._stripe_key(name, connection_id, "Stripe writer key")

    def put_stripe_writer_key(self, connection_id: str, api_key: str) -> None:
        self._put(self.stripe_writer_secret_name(connection_id), json.dumps({"api_key": api_key}))

    def _stripe_key(self, name: str, connection_id: str, what: str) -> SecretStr:
        raw = self._read(name)
        if raw is None:
            raise ConnectionBroken(f"{what} missing", f"no {what} stored for connection {connection_id}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw.strip()  # a bare key is accepted too
        key = value.get("api_key") if isinstance(value, dict) else value
        if not isinstance(key, str) or not key.startswith(("sk_", "rk_")):
            raise ConnectionBroken(
                f"{what} malformed",
                f'secret {name} holds no Stripe key (expected {{"api_key": "sk_... or rk_..."}})',
            )
        return SecretStr(key)

    def _read(self, name: str) -> str | None:
        """A secret's current value, read fresh; None when there is no such secret."""
        try:
            value: str = self._client.get_secret_value(SecretId=name)["SecretString"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return value

    def _put(self, name: str, value: str) -> None:
        try:
            self._client.put_secret_value(SecretId=name, SecretString=value)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._client.create_secret(Name=name, SecretString=value)
