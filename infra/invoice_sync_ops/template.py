"""template.yaml as the single source of truth for the local stack.

The integration fixtures, the local stack and the demo create their DynamoDB tables, queues, bucket
and topic from the resource definitions in template.yaml, so a key schema, an index or a redrive
setting cannot differ between what is tested and what is deployed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import yaml

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DEFAULT_REGION = "us-east-1"

Template = dict[str, Any]


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``...).

    Each tag becomes the long form CloudFormation itself uses: ``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": "s"}``.
    """


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(
            None, None, f"unexpected node for !{tag_suffix}", node.start_mark
        )

    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)

_cache: dict[Path, Template] = {}


def load_template(path: Path | None = None) -> Template:
    """Parse template.yaml (short-form intrinsics included) into plain dicts and lists.

    The parsed template is cached per path; every call returns a deep copy, so a caller may mutate it.
    """
    resolved = (path or DEFAULT_TEMPLATE).resolve()
    if resolved not in _cache:
        with resolved.open(encoding="utf-8") as handle:
            loaded = yaml.load(handle, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
        if not isinstance(loaded, dict) or "Resources" not in loaded:
            raise ValueError(f"{resolved} is not a CloudFormation template")
        _cache[resolved] = loaded
    return copy.deepcopy(_cache[resolved])


def resource_properties(
    logical_id: str, resource_type: str, template: Template | None = None
) -> dict[str, Any]:
    """The Properties of one resource, checked to be of the expected type."""
    tpl = template if template is not None else load_template()
    resource = tpl["Resources"].get(logical_id)
    if resource is None:
        raise KeyError(f"template has no resource {logical_id}")
    if resource.get("Type") != resource_type:
        raise ValueError(f"{logical_id} is {resource.get('Type')}, not {resource_type}")
    return cast("dict[str, Any]", resource.get("Properties", {}))


def _literal(value: Any, where: str) -> Any:
    """Refuse intrinsic functions where the local stack needs a plain value."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
        raise ValueError(f"{where} uses an intrinsic function; the local stack needs a literal value")
    return value


def table_create_kwargs(logical_id: str, table_name: str, template: Template | None = None) -> dict[str, Any]:
    """boto3 ``create_table`` keyword arguments for an AWS::DynamoDB::Table of the template."""
    props = resource_properties(logical_id, "AWS::DynamoDB::Table", template)
    billing_mode = _literal(props.get("BillingMode", "PROVISIONED"), f"{logical_id}.BillingMode")
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _literal(props["KeySchema"], f"{logical_id}.KeySchema"),
        "AttributeDefinitions": _literal(props["AttributeDefinitions"], f"{logical_id}.AttributeDefinitions"),
        "BillingMode": billing_mode,
    }
    if billing_mode == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]

    indexes = []
    for index in props.get("GlobalSecondaryIndexes", []):
        gsi = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        if billing_mode == "PROVISIONED":
            gsi["ProvisionedThroughput"] = index["ProvisionedThroughput"]
        indexes.append(gsi)
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes

    # CloudFormation spells it SSEEnabled, the DynamoDB API Enabled.
    sse = props.get("SSESpecification")
    if sse is not None:
        spec: dict[str, Any] = {"Enabled": bool(_literal(sse.get("SSEEnabled", False), f"{logical_id}.SSE"))}
        if "SSEType" in sse:
            spec["SSEType"] = sse["SSEType"]
        if "KMSMasterKeyId" in sse:
            spec["KMSMasterKeyId"] = _literal(sse["KMSMasterKeyId"], f"{logical_id}.KMSMasterKeyId")
        kwargs["SSESpecification"] = spec
    if "TableClass" in props:
        kwargs["TableClass"] = props["TableClass"]
    return kwargs


def ttl_attribute(logical_id: str, template: Template | None = None) -> str | None:
    """The table's TTL attribute name, or None when the template enables no TTL."""
    props = resource_properties(logical_id, "AWS::DynamoDB::Table", template)
    spec = props.get("TimeToLiveSpecification")
    if not spec or not spec.get("Enabled", False):
        return None
    return cast("str", spec["AttributeName"])


def queue_attributes(logical_id: str, template: Template | None = None) -> dict[str, str]:
    """SQS attributes of an AWS::SQS::Queue that the local stack can reproduce (not the redrive ARN)."""
    props = resource_properties(logical_id, "AWS::SQS::Queue", template)
    attributes: dict[str, str] = {}
    for name in (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
    ):
        if name in props:
            attributes[name] = str(_literal(props[name], f"{logical_id}.{name}"))
    if "SqsManagedSseEnabled" in props:
        attributes["SqsManagedSseEnabled"] = str(bool(props["SqsManagedSseEnabled"])).lower()
    return attributes


def max_receive_count(logical_id: str, template: Template | None = None) -> int:
    """maxReceiveCount of the queue's RedrivePolicy."""
    props = resource_properties(logical_id, "AWS::SQS::Queue", template)
    return int(_literal(props["RedrivePolicy"]["maxReceiveCount"], f"{logical_id}.maxReceiveCount"))


@dataclass(frozen=True)
class StackResources:
    """Names of the resources the functions use, as a deployed stack's Outputs would give them."""

    sync_table: str
    mappings_table: str
    sync_queue_url: str
    dead_letter_queue_url: str
    archive_bucket: str
    alerts_topic_arn: str
    # Local only: an SQS queue subscribed to the alerts topic, so tests and the demo can read alerts.
    alerts_inbox_url: str
    # Payments back (issue 7): the ledgers' hints, and where they go after five failed deliveries.
    ledger_events_queue_url: str = ""
    ledger_events_dead_letter_queue_url: str = ""

    def environment(self) -> dict[str, str]:
        """The environment variables template.yaml's Globals give every function for these resources."""
        return {
            "SYNC_TABLE": self.sync_table,
            "MAPPINGS_TABLE": self.mappings_table,
            "SYNC_QUEUE_URL": self.sync_queue_url,
            "LEDGER_EVENTS_QUEUE_URL": self.ledger_events_queue_url,
            "ARCHIVE_BUCKET": self.archive_bucket,
            "ALERTS_TOPIC_ARN": self.alerts_topic_arn,
        }


def _ensure_table(dynamodb: Any, logical_id: str, name: str, template: Template) -> None:
    try:
        dynamodb.create_table(**table_create_kwargs(logical_id, name, template))
    except dynamodb.exceptions.ResourceInUseException:
        return  # already there: created by an earlier call on the same endpoint
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ttl = ttl_attribute(logical_id, template)
    if ttl:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
    props = resource_properties(logical_id, "AWS::DynamoDB::Table", template)
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


def _ensure_queue(sqs: Any, name: str, attributes: Mapping[str, str]) -> str:
    try:
        url = cast("str", sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist:
        return cast("str", sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"])
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=dict(attributes))
    return url


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return cast("str", attributes["QueueArn"])


def _ensure_queue_pair(
    sqs: Any, name: str, queue_id: str, dlq_id: str, template: Template
) -> tuple[str, str]:
    """A queue and its dead-letter queue as the template defines them: the DLQ (``{name}-dlq``)
    takes redrives from that queue only; returns (DLQ url, queue url)."""
    dlq_url = _ensure_queue(sqs, f"{name}-dlq", queue_attributes(dlq_id, template))
    redrive = {
        "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
        "maxReceiveCount": max_receive_count(queue_id, template),
    }
    url = _ensure_queue(
        sqs, name, {**queue_attributes(queue_id, template), "RedrivePolicy": json.dumps(redrive)}
    )
    allow = {"redrivePermission": "byQueue", "sourceQueueArnList": [_queue_arn(sqs, url)]}
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": json.dumps(allow)})
    return dlq_url, url


def lifecycle_rules(logical_id: str, template: Template | None = None) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules in the S3 API's shape (PutBucketLifecycleConfiguration).

    CloudFormation writes ``Prefix``, ``ExpirationInDays``, ``TransitionInDays`` and
    ``NoncurrentVersionExpiration.NoncurrentDays`` where the API takes a ``Filter``,
    ``Expiration.Days``, ``Transitions[].Days`` and ``NoncurrentVersionExpiration.NoncurrentDays``.
    """
    props = resource_properties(logical_id, "AWS::S3::Bucket", template)
    rules = []
    for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
        api: dict[str, Any] = {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "Transitions" in rule:
            api["Transitions"] = [
                {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                for t in rule["Transitions"]
            ]
        if "NoncurrentVersionExpiration" in rule:
            days = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            api["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
        if "AbortIncompleteMultipartUpload" in rule:
            days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
        rules.append(api)
    return rules


def _ensure_bucket(s3: Any, logical_id: str, name: str, region: str, template: Template) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    props = resource_properties(logical_id, "AWS::S3::Bucket", template)
    status = props.get("VersioningConfiguration", {}).get("Status", "Enabled")
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    encryption = props.get("BucketEncryption")
    if encryption:
        # CloudFormation's ServerSideEncryptionConfiguration list is the API's Rules list, and its
        # ServerSideEncryptionByDefault the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                (
                    "ApplyServerSideEncryptionByDefault" if key == "ServerSideEncryptionByDefault" else key
                ): value
                for key, value in rule.items()
            }
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    # The export's staging clean-up among them: what a crashed export left behind expires.
    rules = lifecycle_rules(logical_id, template)
    if rules:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})


def create_stack_resources(
    session: boto3.session.Session | None = None,
    *,
    prefix: str = "invoice-sync-local",
    endpoint_url: str | None = None,
    template: Template | None = None,
) -> StackResources:
    """Create the stack's data resources in the account behind ``session`` (moto in-process or server).

    Tables, queues, bucket and topic take their settings from template.yaml. Safe to call again on
    the same endpoint: existing resources are reused.
    """
    tpl = template if template is not None else load_template()
    session = session or boto3.session.Session()
    region = session.region_name or DEFAULT_REGION

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url)

    dynamodb, sqs, s3, sns = client("dynamodb"), client("sqs"), client("s3"), client("sns")

    sync_table = f"{prefix}-sync-state"
    mappings_table = f"{prefix}-mappings"
    _ensure_table(dynamodb, "SyncStateTable", sync_table, tpl)
    _ensure_table(dynamodb, "MappingsTable", mappings_table, tpl)

    # Each dead-letter queue only takes redrives from its own queue (RedriveAllowPolicy byQueue).
    dlq_url, sync_url = _ensure_queue_pair(sqs, f"{prefix}-sync", "SyncQueue", "SyncDeadLetterQueue", tpl)
    ledger_dlq_url, ledger_url = _ensure_queue_pair(
        sqs, f"{prefix}-ledger-events", "LedgerEventsQueue", "LedgerEventsDeadLetterQueue", tpl
    )

    bucket = f"{prefix}-archive"
    _ensure_bucket(s3, "ArchiveBucket", bucket, region, tpl)

    topic_arn = cast("str", sns.create_topic(Name=f"{prefix}-alerts")["TopicArn"])
    inbox_url = _ensure_queue(sqs, f"{prefix}-alerts-inbox", {})
    inbox_arn = _queue_arn(sqs, inbox_url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": inbox_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=inbox_url, Attributes={"Policy": json.dumps(policy)})
    # SNS returns the existing subscription for the same topic, protocol and endpoint.
    # Not raw delivery: the inbox gets the SNS envelope, so Subject and attributes stay readable.
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)

    return StackResources(
        sync_table=sync_table,
        mappings_table=mappings_table,
        sync_queue_url=sync_url,
        dead_letter_queue_url=dlq_url,
        archive_bucket=bucket,
        alerts_topic_arn=topic_arn,
        alerts_inbox_url=inbox_url,
        ledger_events_queue_url=ledger_url,
        ledger_events_dead_letter_queue_url=ledger_dlq_url,
    )
