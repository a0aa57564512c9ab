"""template.yaml and the local stack built from it (moto in-process)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync_ops.template import (
    DEFAULT_TEMPLATE,
    StackResources,
    create_stack_resources,
    lifecycle_rules,
    load_template,
    table_create_kwargs,
    ttl_attribute,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = DEFAULT_TEMPLATE.parent

EXPECTED_RESOURCES = {
    "DependenciesLayer": "AWS::Serverless::LayerVersion",
    "HttpApi": "AWS::Serverless::HttpApi",
    "HttpApiAccessLogGroup": "AWS::Logs::LogGroup",
    "WebhookIntakeFunction": "AWS::Serverless::Function",
    "WebhookIntakeLogGroup": "AWS::Logs::LogGroup",
    "PushFunction": "AWS::Serverless::Function",
    "PushLogGroup": "AWS::Logs::LogGroup",
    "SyncQueue": "AWS::SQS::Queue",
    "SyncDeadLetterQueue": "AWS::SQS::Queue",
    "SyncStateTable": "AWS::DynamoDB::Table",
    "MappingsTable": "AWS::DynamoDB::Table",
    "ArchiveBucket": "AWS::S3::Bucket",
    "ArchiveBucketPolicy": "AWS::S3::BucketPolicy",
    "AlertsTopic": "AWS::SNS::Topic",
    "AlertsSubscription": "AWS::SNS::Subscription",
    "NightlyExportFunction": "AWS::Serverless::Function",
    "NightlyExportLogGroup": "AWS::Logs::LogGroup",
    "NightlyExportSchedule": "AWS::Scheduler::Schedule",
    "NightlyExportScheduleRole": "AWS::IAM::Role",
    "ExportDeadLetterQueue": "AWS::SQS::Queue",
    "ReconcileFunction": "AWS::Serverless::Function",
    "ReconcileLogGroup": "AWS::Logs::LogGroup",
    "ReconcileSchedule": "AWS::Scheduler::Schedule",
    "ReconcileScheduleRole": "AWS::IAM::Role",
    "ReconcileDeadLetterQueue": "AWS::SQS::Queue",
    "ReconcileDeadLettersAlarm": "AWS::CloudWatch::Alarm",
    "ReconcileErrorsAlarm": "AWS::CloudWatch::Alarm",
    "WebhookIntakeRole": "AWS::IAM::Role",
    "PushRole": "AWS::IAM::Role",
    "NightlyExportRole": "AWS::IAM::Role",
    "ReconcileRole": "AWS::IAM::Role",
    "LedgerEventsFunction": "AWS::Serverless::Function",
    "LedgerEventsLogGroup": "AWS::Logs::LogGroup",
    "LedgerEventsRole": "AWS::IAM::Role",
    "LedgerEventsQueue": "AWS::SQS::Queue",
    "LedgerEventsDeadLetterQueue": "AWS::SQS::Queue",
    "LedgerEventsDeadLettersAlarm": "AWS::CloudWatch::Alarm",
    "LedgerEventsErrorsAlarm": "AWS::CloudWatch::Alarm",
    "PaymentsBackFunction": "AWS::Serverless::Function",
    "PaymentsBackLogGroup": "AWS::Logs::LogGroup",
    "PaymentsBackRole": "AWS::IAM::Role",
    "PaymentsBackErrorsAlarm": "AWS::CloudWatch::Alarm",
    "XeroPollSchedule": "AWS::Scheduler::Schedule",
    "XeroPollScheduleRole": "AWS::IAM::Role",
    "PaymentsBackDeadLetterQueue": "AWS::SQS::Queue",
    "PaymentsBackDeadLettersAlarm": "AWS::CloudWatch::Alarm",
}
EXPECTED_OUTPUTS = {
    "WebhookUrl",
    "SyncStateTableName",
    "MappingsTableName",
    "SyncQueueUrl",
    "SyncDeadLetterQueueUrl",
    "ArchiveBucketName",
    "AlertsTopicArn",
    "SecretsPrefix",
    "LedgerWebhookUrl",
    "LedgerEventsQueueUrl",
    "LedgerEventsDeadLetterQueueUrl",
}


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """A moto account in us-east-1 with fake credentials, so nothing can reach real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def stack(aws: boto3.session.Session) -> StackResources:
    return create_stack_resources(aws, prefix="test")


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _requirement_name(line: str) -> str:
    return re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower()


def _requirement_spec(line: str) -> str:
    return re.sub(r"^[A-Za-z0-9_.-]+(\[[^\]]*\])?", "", line).replace(" ", "")


def test_template_declares_resources_parameters_and_outputs(template: dict[str, Any]) -> None:
    """Proves the short-tag loader reads template.yaml and that every resource and output the
    code and operators rely on is declared with the expected type."""
    resources = template["Resources"]
    for logical_id, resource_type in EXPECTED_RESOURCES.items():
        assert resources[logical_id]["Type"] == resource_type, logical_id
    assert set(template["Outputs"]) >= EXPECTED_OUTPUTS
    assert {
        "AlertEmail",
        "LogRetentionDays",
        "QuickBooksEnvironment",
        "PushMaxConcurrency",
        "Tracing",
    } <= set(template["Parameters"])
    assert resources["AlertsSubscription"]["Condition"] == "HasAlertEmail"
    # Short tags became CloudFormation's long form.
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SYNC_TABLE"] == {"Ref": "SyncStateTable"}
    assert env["QUICKBOOKS_API_BASE"]["Fn::FindInMap"][0] == "QuickBooks"
    assert set(StackResources.__dataclass_fields__) >= {"sync_table", "alerts_inbox_url"}
    # Every variable StackResources fills in locally is one the template sets in Lambda.
    local = StackResources("t", "m", "q", "d", "b", "a", "i").environment()
    assert set(local) <= set(env)


def test_push_queue_settings_follow_the_push_timeout(template: dict[str, Any]) -> None:
    """Proves the SQS wiring the push function depends on: visibility timeout six times the push
    timeout plus the batching window (AWS's rule for SQS event sources), partial batch failures,
    capped concurrency, and five receives before the DLQ."""
    resources = template["Resources"]
    push = resources["PushFunction"]["Properties"]
    queue = resources["SyncQueue"]["Properties"]
    event = push["Events"]["SyncQueueMessages"]["Properties"]
    assert queue["VisibilityTimeout"] == 6 * push["Timeout"] + event["MaximumBatchingWindowInSeconds"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "PushMaxConcurrency"}
    assert "ReservedConcurrentExecutions" not in push


def test_functions_log_json_without_platform_lines_by_default(template: dict[str, Any]) -> None:
    """Proves every function logs JSON at INFO and Lambda's START/END/REPORT lines are kept only at
    the PlatformLogLevel parameter, WARN unless the operator asks (bench/cost.py counts log bytes)."""
    logging = template["Globals"]["Function"]["LoggingConfig"]
    assert logging == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": {"Ref": "PlatformLogLevel"},
    }
    parameter = template["Parameters"]["PlatformLogLevel"]
    assert parameter["Default"] == "WARN"
    assert set(parameter["AllowedValues"]) == {"DEBUG", "INFO", "WARN"}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            # Only the log group is the function's own (SAM merges it into the Globals' map).
            assert set(resource["Properties"]["LoggingConfig"]) == {"LogGroup"}, name


def test_layer_requirements_match_pyproject_dependencies() -> None:
    """Proves the Lambda layer ships the same third-party packages, with the same version ranges,
    as pyproject's runtime dependencies (boto3 excepted: the runtime has it), and that the code
    root has no requirements file of its own."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        _requirement_name(dep): _requirement_spec(dep) for dep in pyproject["project"]["dependencies"]
    }
    declared.pop("boto3", None)
    lines = (REPO / "layers" / "dependencies" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    layer = {
        _requirement_name(line): _requirement_spec(line)
        for line in (raw.strip() for raw in lines)
        if line and not line.startswith("#")
    }
    assert layer == declared
    assert not (REPO / "functions" / "requirements.txt").exists()


def test_local_tables_match_the_template(template: dict[str, Any], stack: StackResources) -> None:
    """Proves create_stack_resources builds tables whose keys, attribute types and GSIs are the
    template's, with TTL on where the template sets it (SyncState: event and alert markers, leases),
    and a sync queue whose redrive policy points at the DLQ."""
    dynamodb = boto3.client("dynamodb")
    for logical_id, name in (("SyncStateTable", stack.sync_table), ("MappingsTable", stack.mappings_table)):
        expected = table_create_kwargs(logical_id, name, template)
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == expected["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
            expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        )
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        actual_gsis = {
            gsi["IndexName"]: (gsi["KeySchema"], gsi["Projection"])
            for gsi in table.get("GlobalSecondaryIndexes", [])
        }
        expected_gsis = {
            gsi["IndexName"]: (gsi["KeySchema"], gsi["Projection"])
            for gsi in expected.get("GlobalSecondaryIndexes", [])
        }
        assert actual_gsis == expected_gsis
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        wanted = "ENABLED" if ttl_attribute(logical_id, template) else "DISABLED"
        assert ttl["TimeToLiveStatus"] == wanted
        if wanted == "ENABLED":
            assert ttl["AttributeName"] == ttl_attribute(logical_id, template) == "expires_at"
    sync_indexes = table_create_kwargs("SyncStateTable", "x", template)["GlobalSecondaryIndexes"]
    assert {gsi["IndexName"] for gsi in sync_indexes} == {"by_day", "by_status"}

    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.sync_queue_url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert (
        int(redrive["maxReceiveCount"])
        == template["Resources"]["SyncQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    )
    assert attributes["VisibilityTimeout"] == str(
        template["Resources"]["SyncQueue"]["Properties"]["VisibilityTimeout"]
    )

    versioning = boto3.client("s3").get_bucket_versioning(Bucket=stack.archive_bucket)
    assert versioning["Status"] == "Enabled"


def test_create_stack_resources_is_idempotent(aws: boto3.session.Session) -> None:
    """Proves a second call on the same account reuses what exists and returns the same names."""
    first = create_stack_resources(aws, prefix="again")
    second = create_stack_resources(aws, prefix="again")
    assert first == second
    assert (
        len(boto3.client("sns").list_subscriptions_by_topic(TopicArn=first.alerts_topic_arn)["Subscriptions"])
        == 1
    )


def function_role(template: dict[str, Any], function_id: str) -> tuple[str, dict[str, Any]]:
    """The logical id and Properties of the AWS::IAM::Role the function runs with."""
    role = template["Resources"][function_id]["Properties"]["Role"]
    assert role == {"Fn::GetAtt": [role["Fn::GetAtt"][0], "Arn"]}, f"{function_id}: {role!r}"
    role_id = role["Fn::GetAtt"][0]
    assert template["Resources"][role_id]["Type"] == "AWS::IAM::Role", role_id
    return role_id, template["Resources"][role_id]["Properties"]


def role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies; a statement under ``Fn::If`` counts as the
    one it grants when its condition holds (the other branch is ``AWS::NoValue``)."""
    statements = []
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                _condition, granted, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}, statement
                statements.append(granted)
            else:
                statements.append(statement)
    return statements


def test_function_policies_are_least_privilege(template: dict[str, Any]) -> None:
    """Proves every function runs with a role of its own, defined in the template (not SAM's
    generated one, which attaches AWSLambdaBasicExecutionRole and, for an SQS event,
    AWSLambdaSQSQueueExecutionRole, both on every resource), with inline statements only: no
    managed policy, no SAM policy template, no `*` in an action, no bare `*` resource but X-Ray's
    (which has no resource-level permissions). tests/integration/test_template_security.py checks
    each resource names one of the stack's own."""
    functions = _functions(template)
    assert functions
    roles = set()
    for logical_id, resource in functions.items():
        assert "Policies" not in resource["Properties"], f"{logical_id}: SAM would generate its role"
        role_id, role = function_role(template, logical_id)
        roles.add(role_id)
        assert "ManagedPolicyArns" not in role, role_id
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
        for statement in role_statements(role):
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"{role_id} {statement.get('Sid')}: action {action}"
            for resource_arn in _as_list(statement["Resource"]):
                if resource_arn == "*":
                    assert {a.split(":")[0] for a in _as_list(statement["Action"])} == {"xray"}, role_id
    assert len(roles) == len(functions), "a role shared by two functions grants each the other's rights"


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    """Proves no function logs into a never-expiring, implicitly created log group: each names
    (LoggingConfig.LogGroup) a log group of its own, /aws/lambda/<stack>-<function>, whose
    retention is the LogRetentionDays parameter, and its role may write to that group only."""
    resources = template["Resources"]
    named = set()
    for logical_id in _functions(template):
        group = resources[logical_id]["Properties"]["LoggingConfig"]["LogGroup"]
        group_id = group["Ref"]
        props = resources[group_id]["Properties"]
        assert resources[group_id]["Type"] == "AWS::Logs::LogGroup", group_id
        assert props["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/${AWS::StackName}-"), group_id
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        named.add(props["LogGroupName"]["Fn::Sub"])
        _role_id, role = function_role(template, logical_id)
        writes = [
            st for st in role_statements(role) if any(a.startswith("logs:") for a in _as_list(st["Action"]))
        ]
        assert [st["Resource"] for st in writes] == [{"Fn::GetAtt": [group_id, "Arn"]}], logical_id
        assert set(_as_list(writes[0]["Action"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert len(named) == len(_functions(template))
    access_logs = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["DestinationArn"]
    assert access_logs == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}


def test_alerts_reach_the_local_inbox(stack: StackResources) -> None:
    """Proves an alert published to the topic lands in the alerts inbox queue (in the SNS
    envelope), which is how tests and the demo read alerts."""
    boto3.client("sns").publish(
        TopicArn=stack.alerts_topic_arn, Subject="DLQ not empty", Message="3 messages"
    )
    received = boto3.client("sqs").receive_message(
        QueueUrl=stack.alerts_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    messages = received.get("Messages", [])
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Message"] == "3 messages"
    assert envelope["Subject"] == "DLQ not empty"


def test_template_path_is_the_repository_root() -> None:
    """Proves the loader's default path is the template at the repository root (not a copy)."""
    assert Path(__file__).resolve().parents[2] / "template.yaml" == DEFAULT_TEMPLATE
    assert DEFAULT_TEMPLATE.is_file()


def _statements(template: dict[str, Any], logical_id: str) -> dict[str, dict[str, Any]]:
    """The function's role's statements by Sid."""
    return {st["Sid"]: st for st in role_statements(function_role(template, logical_id)[1])}


def test_nightly_export_reads_the_day_index_and_writes_only_exports(template: dict[str, Any]) -> None:
    """Proves the export function's role reads records through the day index only (the records it
    names with BatchGetItem, leading key CONN# only; GetItem and
    PutItem on the table are limited to token dates, reconciliation and marker items), writes,
    reads and lists only exports/ of the archive bucket, publishes to the alerts topic, reads no
    secret, and runs on the schedule's parameters with a retry policy and a dead-letter queue."""
    statements = _statements(template, "NightlyExportFunction")
    assert statements["ReadDayIndex"]["Action"] == "dynamodb:Query"
    assert statements["ReadDayIndex"]["Resource"] == {"Fn::Sub": "${SyncStateTable.Arn}/index/by_day"}
    keys = statements["ReportFactsAndMarkers"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(keys) == {"TOKENS#*", "RECON#*", "ALERT#*", "LOCK#*"}
    # The index holds keys only: the records it names are read whole, and records only.
    assert statements["ReadDayRecords"]["Action"] == "dynamodb:BatchGetItem"
    assert statements["ReadDayRecords"]["Resource"] == {"Fn::GetAtt": ["SyncStateTable", "Arn"]}
    keys = statements["ReadDayRecords"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert keys == ["CONN#*"]
    for sid, statement in statements.items():
        for action in _as_list(statement["Action"]):
            assert not action.startswith("secretsmanager:"), sid
            if action.startswith("s3:") and action != "s3:ListBucket":
                assert statement["Resource"] == {"Fn::Sub": "${ArchiveBucket.Arn}/exports/*"}, sid
    assert statements["ListExports"]["Condition"] == {"StringLike": {"s3:prefix": ["exports/*"]}}
    assert statements["Report"]["Resource"] == {"Ref": "AlertsTopic"}
    function = template["Resources"]["NightlyExportFunction"]["Properties"]
    assert function["Timeout"] == 900
    assert function["Environment"]["Variables"]["EXPORT_TIME_ZONE"] == {"Ref": "ExportTimeZone"}
    assert function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ExportDeadLetterQueue", "Arn"]
    }
    schedule = template["Resources"]["NightlyExportSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "ExportScheduleTime"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ExportTimeZone"}
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["NightlyExportFunction", "Arn"]}
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert schedule["Target"]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ExportDeadLetterQueue", "Arn"]}
    assert template["Parameters"]["ExportTimeZone"]["Default"] == "UTC"
    assert template["Parameters"]["ExportScheduleTime"]["Default"].startswith("cron(")
    role = template["Resources"]["NightlyExportScheduleRole"]["Properties"]
    invoke = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert {st["Action"] for st in invoke} == {"lambda:InvokeFunction", "sqs:SendMessage"}


SECRET_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
    ":secret:invoice-sync/${AWS::StackName}/*/"
)


def test_reconcile_role_reads_the_three_sides_and_writes_only_reports(template: dict[str, Any]) -> None:
    """Proves the reconcile function's role names every action outright (no wildcard action) on
    named resources: the day index (Query) and the records it names (BatchGetItem), verdict,
    token-date and token-lease items of the table (by leading key), records and links read for
    payments back (GetItem, Query, by leading key), the connections, the
    ledger-oauth (rotated on refresh) and stripe-api secrets only, reports/ of the archive bucket
    (put, get, list under the prefix), the alerts topic and its key, its own dead-letter queue;
    and that it cannot touch the sync queue (repair is the operator's), raw/ or exports/."""
    statements = _statements(template, "ReconcileFunction")
    resources = template["Resources"]
    expected: dict[str, tuple[set[str], Any]] = {
        "ReadDayIndex": ({"dynamodb:Query"}, {"Fn::Sub": "${SyncStateTable.Arn}/index/by_day"}),
        "ReadDayRecords": ({"dynamodb:BatchGetItem"}, {"Fn::GetAtt": ["SyncStateTable", "Arn"]}),
        "VerdictsAndTokenLease": (
            {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"},
            {"Fn::GetAtt": ["SyncStateTable", "Arn"]},
        ),
        "ReadPaymentsBackRecords": (
            {"dynamodb:GetItem", "dynamodb:Query"},
            {"Fn::GetAtt": ["SyncStateTable", "Arn"]},
        ),
        "ListConnections": ({"dynamodb:GetItem", "dynamodb:Query"}, {"Fn::GetAtt": ["MappingsTable", "Arn"]}),
        "RotateLedgerTokens": (
            {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"},
            {"Fn::Sub": SECRET_ARN + "ledger-oauth-??????"},
        ),
        "ReadStripeKeys": ({"secretsmanager:GetSecretValue"}, {"Fn::Sub": SECRET_ARN + "stripe-api-??????"}),
        "WriteReports": ({"s3:PutObject", "s3:GetObject"}, {"Fn::Sub": "${ArchiveBucket.Arn}/reports/*"}),
        "ListReports": ({"s3:ListBucket"}, {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}),
        "Alert": ({"sns:Publish"}, {"Ref": "AlertsTopic"}),
        "EncryptAlerts": ({"kms:GenerateDataKey", "kms:Decrypt"}, {"Fn::GetAtt": ["AlertsKey", "Arn"]}),
        "FailedRuns": ({"sqs:SendMessage"}, {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}),
        "WriteOwnLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            {"Fn::GetAtt": ["ReconcileLogGroup", "Arn"]},
        ),
        "WriteTraces": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, "*"),
    }
    assert set(statements) == set(expected)
    for sid, (actions, resource) in expected.items():
        statement = statements[sid]
        assert statement["Effect"] == "Allow", sid
        assert set(_as_list(statement["Action"])) == actions, sid
        assert all("*" not in action for action in actions), sid
        assert statement["Resource"] == resource, sid
    keys = statements["VerdictsAndTokenLease"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(keys) == {"RECON#*", "TOKENS#*", "LOCK#*"}
    keys = statements["ReadDayRecords"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert keys == ["CONN#*"]
    keys = statements["ReadPaymentsBackRecords"]["Condition"]["ForAllValues:StringLike"][
        "dynamodb:LeadingKeys"
    ]
    assert set(keys) == {"CONN#*", "LINK#*"}
    assert statements["ListReports"]["Condition"] == {"StringLike": {"s3:prefix": ["reports/*"]}}
    function = resources["ReconcileFunction"]["Properties"]
    assert function["Handler"] == "invoice_sync.handlers.reconcile.handler"
    # bench/reconcile.py: ~205 s and ~1.3 GB for a million documents per side.
    assert function["Timeout"] == 900
    assert function["MemorySize"] >= 2048
    assert function["Environment"]["Variables"]["RECONCILE_PICKUP_DAYS"] == 7
    assert function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]
    }
    schedule = resources["ReconcileSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "ReconcileScheduleTime"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ExportTimeZone"}
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert schedule["Target"]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]
    }
    # Daily, after the export (both in ExportTimeZone): cron(minute hour ...).
    export_cron = template["Parameters"]["ExportScheduleTime"]["Default"].removeprefix("cron(").split()
    reconcile_cron = template["Parameters"]["ReconcileScheduleTime"]["Default"].removeprefix("cron(").split()
    assert (int(reconcile_cron[1]), int(reconcile_cron[0])) > (int(export_cron[1]), int(export_cron[0]))
    assert reconcile_cron[2:] == export_cron[2:]
    invoke = resources["ReconcileScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {(st["Action"], json.dumps(st["Resource"])) for st in invoke} == {
        ("lambda:InvokeFunction", json.dumps({"Fn::GetAtt": ["ReconcileFunction", "Arn"]})),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]})),
    }
    for alarm in ("ReconcileDeadLettersAlarm", "ReconcileErrorsAlarm"):
        assert resources[alarm]["Properties"]["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    assert "ReconcileFunctionName" in template["Outputs"]


def test_local_bucket_aborts_stale_export_staging(template: dict[str, Any], stack: StackResources) -> None:
    """Proves the local bucket carries the template's lifecycle rules, the export staging rule
    among them (stale multipart uploads aborted and staged files expired after a day)."""
    rules = boto3.client("s3").get_bucket_lifecycle_configuration(Bucket=stack.archive_bucket)["Rules"]
    staging = next(rule for rule in rules if rule["ID"] == "export-staging-cleanup")
    assert staging["Filter"] == {"Prefix": "exports/_staging/"}
    assert staging["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert staging["Expiration"] == {"Days": 1}
    assert {rule["ID"] for rule in rules} == {
        rule["ID"] for rule in lifecycle_rules("ArchiveBucket", template)
    }


def test_every_function_that_alerts_may_publish_to_the_alerts_topic(template: dict[str, Any]) -> None:
    """Proves each function whose wiring builds an AlertPublisher (intake for an authentic but
    invalid webhook, push, export, reconcile) may publish to the alerts topic and use its KMS key:
    without them its first alert would fail in AWS, never on moto, which checks no permissions."""
    for logical_id in (
        "WebhookIntakeFunction",
        "PushFunction",
        "NightlyExportFunction",
        "ReconcileFunction",
        "LedgerEventsFunction",
        "PaymentsBackFunction",
    ):
        _, role = function_role(template, logical_id)
        grants = {
            (action, str(resource))
            for statement in role_statements(role)
            for action in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        }
        assert ("sns:Publish", str({"Ref": "AlertsTopic"})) in grants, logical_id
        key = str({"Fn::GetAtt": ["AlertsKey", "Arn"]})
        assert {("kms:GenerateDataKey", key), ("kms:Decrypt", key)} <= grants, logical_id


def test_ledger_events_function_reads_webhook_keys_and_sends_to_its_queue_only(
    template: dict[str, Any],
) -> None:
    """Proves the internet-facing ledger webhook function (design two-way.md 5) is on its route,
    answers within Intuit's window, and its role grants exactly: send to the ledger events queue,
    GetItem on the Mappings table and on FBHOOK# items of the SyncState table, the ledger-webhook
    secrets (not the OAuth tokens, not a Stripe key), PutObject under raw/ledger/, the alert with
    its key, its own logs; no write to a table, no PutSecretValue."""
    function = template["Resources"]["LedgerEventsFunction"]["Properties"]
    assert function["Handler"] == "invoice_sync.handlers.ledger_events.handler"
    assert function["Timeout"] <= 10
    assert function["Events"]["LedgerWebhook"] == {
        "Type": "HttpApi",
        "Properties": {
            "ApiId": {"Ref": "HttpApi"},
            "Method": "POST",
            "Path": "/ledger-webhooks/{ledger}/{connection}",
        },
    }
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["LEDGER_EVENTS_QUEUE_URL"] == {"Ref": "LedgerEventsQueue"}
    _role_id, role = function_role(template, "LedgerEventsFunction")
    statements = {st["Sid"]: st for st in role_statements(role)}
    granted = {
        sid: (sorted(_as_list(st["Action"])), st["Resource"])
        for sid, st in statements.items()
        if sid != "WriteTraces"
    }
    secret = (
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
        "invoice-sync/${AWS::StackName}/*/ledger-webhook-??????"
    )
    assert granted == {
        "EnqueueLedgerEvents": (["sqs:SendMessage"], {"Fn::GetAtt": ["LedgerEventsQueue", "Arn"]}),
        "ReadConnections": (["dynamodb:GetItem"], {"Fn::GetAtt": ["MappingsTable", "Arn"]}),
        "ReadPendingCallbacks": (["dynamodb:GetItem"], {"Fn::GetAtt": ["SyncStateTable", "Arn"]}),
        "ReadLedgerWebhookSecrets": (["secretsmanager:GetSecretValue"], {"Fn::Sub": secret}),
        "ArchiveRefusedLedgerWebhooks": (["s3:PutObject"], {"Fn::Sub": "${ArchiveBucket.Arn}/raw/ledger/*"}),
        "Alert": (["sns:Publish"], {"Ref": "AlertsTopic"}),
        "EncryptAlerts": (["kms:Decrypt", "kms:GenerateDataKey"], {"Fn::GetAtt": ["AlertsKey", "Arn"]}),
        "WriteOwnLogs": (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            {"Fn::GetAtt": ["LedgerEventsLogGroup", "Arn"]},
        ),
    }
    keys = statements["ReadPendingCallbacks"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert keys == ["FBHOOK#*"]


def test_ledger_events_queue_is_encrypted_with_a_dead_letter_queue_like_the_sync_queue(
    template: dict[str, Any], stack: StackResources
) -> None:
    """Proves the ledger events queue has SQS-managed encryption, a visibility of six times the
    worker's 60 s and a dead-letter queue after five receives that takes redrives from it only, in
    the template and in the local stack built from it."""
    resources = template["Resources"]
    queue = resources["LedgerEventsQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] == 360
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["LedgerEventsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    dead = resources["LedgerEventsDeadLetterQueue"]["Properties"]
    assert dead["SqsManagedSseEnabled"] is True
    own = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-ledger-events"
    assert dead["RedriveAllowPolicy"]["sourceQueueArnList"] == [{"Fn::Sub": own}]
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.ledger_events_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "360"
    assert attributes["SqsManagedSseEnabled"] == "true"
    redrive = json.loads(attributes["RedrivePolicy"])
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.ledger_events_dead_letter_queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert (redrive["deadLetterTargetArn"], int(redrive["maxReceiveCount"])) == (dlq["QueueArn"], 5)
    # (moto keeps RedriveAllowPolicy but does not return it: the template's is checked above.)
    assert stack.environment()["LEDGER_EVENTS_QUEUE_URL"] == stack.ledger_events_queue_url


def test_payments_back_function_reads_the_ledger_events_queue_and_writes_with_the_writer_key(
    template: dict[str, Any],
) -> None:
    """Proves the payments-back worker (design two-way.md 3.3, 5) polls the ledger events queue in
    small batches with partial failures at a concurrency of two, within the queue's visibility,
    and its role grants exactly: its records (no UpdateItem but alert windows), the connections
    (read only), the ledger tokens, the stripe-writer keys (read only; not the reading Stripe key,
    not the webhook secrets), the alert with its key, the queue's receive side, its own logs; no
    archive. SendMessage only for the Xero poll: to the ledger events queue (what it read) and to
    its own dead-letter queue (a failed scheduled run)."""
    resources = template["Resources"]
    function = resources["PaymentsBackFunction"]["Properties"]
    assert function["Handler"] == "invoice_sync.handlers.payments_back.handler"
    assert (function["Timeout"], function["MemorySize"]) == (60, 192)
    assert resources["LedgerEventsQueue"]["Properties"]["VisibilityTimeout"] == 6 * function["Timeout"]
    assert function["Events"]["LedgerEventsMessages"] == {
        "Type": "SQS",
        "Properties": {
            "Queue": {"Fn::GetAtt": ["LedgerEventsQueue", "Arn"]},
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    }
    _role_id, role = function_role(template, "PaymentsBackFunction")
    statements = {st["Sid"]: st for st in role_statements(role)}
    granted = {
        sid: (sorted(_as_list(st["Action"])), st["Resource"])
        for sid, st in statements.items()
        if sid != "WriteTraces"
    }
    secret = (
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
        "invoice-sync/${AWS::StackName}/*/"
    )
    table = {"Fn::GetAtt": ["SyncStateTable", "Arn"]}
    assert granted == {
        "SyncRecords": (
            ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
            table,
        ),
        "AlertWindows": (["dynamodb:UpdateItem"], table),
        "ReadConnections": (["dynamodb:GetItem", "dynamodb:Query"], {"Fn::GetAtt": ["MappingsTable", "Arn"]}),
        "RotateLedgerTokens": (
            ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            {"Fn::Sub": secret + "ledger-oauth-??????"},
        ),
        "ReadStripeWriterKeys": (
            ["secretsmanager:GetSecretValue"],
            {"Fn::Sub": secret + "stripe-writer-??????"},
        ),
        "Alert": (["sns:Publish"], {"Ref": "AlertsTopic"}),
        "EncryptAlerts": (["kms:Decrypt", "kms:GenerateDataKey"], {"Fn::GetAtt": ["AlertsKey", "Arn"]}),
        "PollLedgerEventsQueue": (
            sorted(
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility",
                ]
            ),
            {"Fn::GetAtt": ["LedgerEventsQueue", "Arn"]},
        ),
        "WriteOwnLogs": (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            {"Fn::GetAtt": ["PaymentsBackLogGroup", "Arn"]},
        ),
        # FreshBooks' callback verification: the pending item marked verified, its key stored.
        "VerifiedCallbacks": (["dynamodb:UpdateItem"], table),
        "AddLedgerWebhookKeys": (
            ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            {"Fn::Sub": secret + "ledger-webhook-??????"},
        ),
        # The Xero poll (design two-way 3.3, 5): what it read goes to the worker's queue; a failed
        # scheduled run to the function's own dead-letter queue (EventInvokeConfig OnFailure).
        "EnqueuePolledPayments": (["sqs:SendMessage"], {"Fn::GetAtt": ["LedgerEventsQueue", "Arn"]}),
        "FailedPolls": (["sqs:SendMessage"], {"Fn::GetAtt": ["PaymentsBackDeadLetterQueue", "Arn"]}),
    }
    keys = statements["AlertWindows"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert keys == ["ALERT#*"]
    verified = statements["VerifiedCallbacks"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert verified == ["FBHOOK#*"]


def test_the_xero_poll_runs_payments_back_on_its_schedule_with_a_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    """Proves the Xero payments poll (design two-way 3.3, 5) is a schedule on the
    XeroPollScheduleTime parameter (every 15 minutes by default, in a flexible window) that invokes
    the payments-back function with the poll-xero event the handler answers; that the schedule's
    role may invoke that function and write its dead-letter queue only, for this account only;
    that the function retries a failed run once and keeps it in that queue (encrypted, 14 days,
    alarmed); and that PushRole is not what it runs with."""
    resources = template["Resources"]
    assert template["Parameters"]["XeroPollScheduleTime"]["Default"] == "rate(15 minutes)"
    schedule = resources["XeroPollSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "XeroPollScheduleTime"}
    assert schedule["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5}
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["PaymentsBackFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["XeroPollScheduleRole", "Arn"]}
    assert json.loads(target["Input"]) == {"source": "schedule", "action": "poll-xero"}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600}
    dead_letters = {"Fn::GetAtt": ["PaymentsBackDeadLetterQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": dead_letters}

    role = resources["XeroPollScheduleRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    assert {(st["Action"], json.dumps(st["Resource"])) for st in policy["PolicyDocument"]["Statement"]} == {
        ("lambda:InvokeFunction", json.dumps({"Fn::GetAtt": ["PaymentsBackFunction", "Arn"]})),
        ("sqs:SendMessage", json.dumps(dead_letters)),
    }

    function = resources["PaymentsBackFunction"]["Properties"]
    invoke = function["EventInvokeConfig"]
    assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (1, 900)
    assert invoke["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": dead_letters}
    assert function["Role"] == {"Fn::GetAtt": ["PaymentsBackRole", "Arn"]}
    queue = resources["PaymentsBackDeadLetterQueue"]["Properties"]
    assert (queue["SqsManagedSseEnabled"], queue["MessageRetentionPeriod"]) == (True, 1209600)
    alarm = resources["PaymentsBackDeadLettersAlarm"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["PaymentsBackDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]


def test_push_reads_the_stripe_read_key_and_writes_deposit_slips_for_payouts(
    template: dict[str, Any],
) -> None:
    """Proves push's role (payouts as deposits, design two-way 5) may read each connection's
    stripe-api key (a payout's balance transactions) and put FreshBooks' deposit slips under
    deposit-slips/, and nothing more of either: never the stripe-writer key, no other prefix."""
    statements = _statements(template, "PushFunction")
    assert statements["ReadStripeKeys"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadStripeKeys"]["Resource"] == {"Fn::Sub": SECRET_ARN + "stripe-api-??????"}
    assert statements["WriteDepositSlips"]["Action"] == "s3:PutObject"
    assert statements["WriteDepositSlips"]["Resource"] == {"Fn::Sub": "${ArchiveBucket.Arn}/deposit-slips/*"}
    secrets = {
        str(resource)
        for statement in statements.values()
        if any(str(a).startswith("secretsmanager:") for a in _as_list(statement["Action"]))
        for resource in _as_list(statement["Resource"])
    }
    assert not any("stripe-writer" in secret for secret in secrets)
