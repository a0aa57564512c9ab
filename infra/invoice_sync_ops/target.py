"""Where the operator CLI finds a deployment: a stack's resources, on AWS or on the local stack.

A deployed stack is found by name: its CloudFormation Outputs name the tables, queues, bucket,
topic and secrets prefix. The local stack (``invoice-sync local up``) writes the same facts to a
target file, with the endpoint of moto's server and the ledger sandboxes' URLs, because nothing
there runs CloudFormation.

Resolution, first match wins: ``--target FILE`` or ``INVOICE_SYNC_TARGET``; ``--stack NAME`` or
``INVOICE_SYNC_STACK``; ``--local`` (the file ``local up`` wrote).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from invoice_sync.settings import Settings

# Outputs of template.yaml, by the Target field they fill.
STACK_OUTPUTS = {
    "sync_table": "SyncStateTableName",
    "mappings_table": "MappingsTableName",
    "sync_queue_url": "SyncQueueUrl",
    "dead_letter_queue_url": "SyncDeadLetterQueueUrl",
    "archive_bucket": "ArchiveBucketName",
    "alerts_topic_arn": "AlertsTopicArn",
    "secrets_prefix": "SecretsPrefix",
}
# Outputs a stack deployed before payments back (issue 7) does not have: the Target field stays
# None there, and a command that needs one says so.
OPTIONAL_STACK_OUTPUTS = {
    "ledger_events_queue_url": "LedgerEventsQueueUrl",
    "ledger_events_dead_letter_queue_url": "LedgerEventsDeadLetterQueueUrl",
    "ledger_webhook_url": "LedgerWebhookUrl",
}


def default_local_file() -> Path:
    """Where ``local up`` writes its target: per user, gone with the machine's temporary files."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / "invoice-sync-local-target.json"


class TargetError(Exception):
    """No deployment could be found from the options given: one line says why and what to pass."""


class Target(BaseModel):
    """A deployment's resources, as its stack's Outputs give them (plus local endpoints)."""

    model_config = ConfigDict(frozen=True)

    name: str  # the stack name, or "local"
    region: str
    sync_table: str
    mappings_table: str
    sync_queue_url: str
    dead_letter_queue_url: str
    archive_bucket: str
    alerts_topic_arn: str
    secrets_prefix: str
    # Payments back (issue 7): the ledger events queue, its dead letters, and the ledger webhook
    # URL pattern (``…/ledger-webhooks/<ledger>/<connection>``). None for an older stack or an
    # older target file, which still load.
    ledger_events_queue_url: str | None = None
    ledger_events_dead_letter_queue_url: str | None = None
    ledger_webhook_url: str | None = None
    # Local stack only: moto's server, and where each ledger's API and token endpoint are
    # (the variables template.yaml would give push: QUICKBOOKS_API_BASE, XERO_TOKEN_URL, ...).
    aws_endpoint: str | None = None
    ledger_environment: dict[str, str] = {}
    # A Stripe API stand-in (local only); the real one is https://api.stripe.com.
    stripe_api_base: str = "https://api.stripe.com"

    def client(self, service: str) -> Any:
        """A boto3 client for this deployment's account and region (moto's server when local)."""
        if self.aws_endpoint:
            # moto's server takes any credentials: a shell with no AWS configuration must still
            # reach the local stack, and must never send its real keys there.
            session = boto3.session.Session(
                region_name=self.region,
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - moto's placeholder, not a secret
            )
            return session.client(service, endpoint_url=self.aws_endpoint)
        return boto3.session.Session(region_name=self.region).client(service)

    def ledger_events_queue(self) -> str:
        """The ledger events queue's URL, for a command that must send to it; a ``TargetError``
        (one line, exit 1) where this stack or target file has none."""
        if not self.ledger_events_queue_url:
            raise TargetError(
                f"this stack has no ledger events queue ({self.name}: it, or its target file, is "
                "older than payments back): deploy the current template (locally: restart "
                "`invoice-sync local up`)"
            )
        return self.ledger_events_queue_url

    def settings(self) -> Settings:
        """The settings push would run with here: for building ledger adapters the same way."""
        return Settings.from_env(
            {
                "SYNC_TABLE": self.sync_table,
                "MAPPINGS_TABLE": self.mappings_table,
                "SYNC_QUEUE_URL": self.sync_queue_url,
                "LEDGER_EVENTS_QUEUE_URL": self.ledger_events_queue_url or "",
                "ARCHIVE_BUCKET": self.archive_bucket,
                "ALERTS_TOPIC_ARN": self.alerts_topic_arn,
                "SECRETS_PREFIX": self.secrets_prefix,
                **self.ledger_environment,
            }
        )

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2))
        path.chmod(0o600)


def from_file(path: Path) -> Target:
    try:
        return Target.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise TargetError(f"no target file at {path}: is `invoice-sync local up` running?") from None
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise TargetError(f"target file {path} is not readable: {exc.__class__.__name__}") from None


def from_stack(name: str, region: str | None = None) -> Target:
    """A deployed stack, by name, from its CloudFormation Outputs."""
    session = boto3.session.Session(region_name=region)
    if not session.region_name:
        raise TargetError("no AWS region: set AWS_REGION or pass --region")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        raise TargetError(f"stack {name}: {exc.response['Error'].get('Message', 'not found')}") from None
    except BotoCoreError as exc:
        raise TargetError(f"cannot reach CloudFormation: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in STACK_OUTPUTS.values() if key not in outputs]
    if missing:
        raise TargetError(f"stack {name} is not an invoice-sync stack: no output {', '.join(missing)}")
    return Target(
        name=name,
        region=session.region_name,
        **{field: outputs[key] for field, key in STACK_OUTPUTS.items()},
        **{field: outputs.get(key) for field, key in OPTIONAL_STACK_OUTPUTS.items()},
    )


def resolve(
    *,
    target_file: str | None,
    stack: str | None,
    local: bool,
    region: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    env = os.environ if environ is None else environ
    if target_file or env.get("INVOICE_SYNC_TARGET"):
        return from_file(Path(target_file or env["INVOICE_SYNC_TARGET"]))
    if stack or env.get("INVOICE_SYNC_STACK"):
        return from_stack(stack or env["INVOICE_SYNC_STACK"], region)
    if local:
        return from_file(default_local_file())
    raise TargetError(
        "no deployment given: pass --stack NAME (or set INVOICE_SYNC_STACK) for a deployed stack, "
        "or --local for a running `invoice-sync local up`"
    )
