"""template.yaml's least privilege and safe defaults, read from the template itself.

Each function's role may name only the stack's own resources, and a wildcard only where it
narrows a named resource (a key prefix of the archive bucket, the connection segment of a secret
name under the stack's prefix). Every table, queue, topic and bucket is encrypted at rest, every
bucket refuses plain HTTP, secrets live only in Secrets Manager, the HTTP API is throttled, and
every checkov suppression says why.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from invoice_sync_ops.template import load_template
from tests.integration.test_template import function_role, role_statements

# The only ARN the roles build by hand: secrets named invoice-sync/<stack>/<connection>/<name>.
SECRETS = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
    ":secret:invoice-sync/${AWS::StackName}/"
)
# <connection>/<name>-?????? : any connection (created at run time), one kind of secret, and
# the 6-character suffix Secrets Manager appends.
SECRET_TAIL = re.compile(r"^\*/[a-z][a-z-]*-\?{6}$")
# ${Bucket.Arn}/prefix/* or ${Table.Arn}/index/name: a path under a resource of the stack.
UNDER_RESOURCE = re.compile(r"^\$\{(\w+)\.Arn\}/([A-Za-z0-9_/-]+)(/\*)?$")
# Actions that carry no resource ARN (AWS's service authorization reference): only these may
# name "*", and only in a statement of theirs alone.
NO_RESOURCE_LEVEL = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_findings(template: dict[str, Any]) -> list[str]:
    """What in each function's role names more than the stack's own resources; empty when none.

    A resource must be a Ref or GetAtt Arn of a resource in the template, a path under one
    (``${ArchiveBucket.Arn}/raw/*``, ``${SyncStateTable.Arn}/index/by_day``, never
    ``${ArchiveBucket.Arn}/*``), or a secret of the stack by connection and name.
    """
    resources = template["Resources"]
    findings = []
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"]
    for function_id in functions:
        role_id, role = function_role(template, function_id)
        for statement in role_statements(role):
            where = f"{role_id} {statement.get('Sid', '?')}"
            actions = _as_list(statement["Action"])
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                findings.append(f"{where}: only plain Allow statements")
            for action in actions:
                if not isinstance(action, str) or "*" in action or "?" in action:
                    findings.append(f"{where}: wildcard action {action!r}")
            for resource in _as_list(statement["Resource"]):
                problem = _resource_problem(resource, set(actions), resources)
                if problem:
                    findings.append(f"{where}: {problem}")
    return findings


def _resource_problem(resource: Any, actions: set[str], resources: dict[str, Any]) -> str | None:
    if resource == "*":
        return None if actions <= NO_RESOURCE_LEVEL else f"'*' resource for {sorted(actions)}"
    if isinstance(resource, dict) and set(resource) == {"Ref"}:
        return None if resource["Ref"] in resources else f"Ref of {resource['Ref']}, not a resource"
    if isinstance(resource, dict) and set(resource) == {"Fn::GetAtt"}:
        target, attribute = resource["Fn::GetAtt"]
        return None if target in resources and attribute == "Arn" else f"GetAtt {target}.{attribute}"
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"} and isinstance(resource["Fn::Sub"], str):
        text = resource["Fn::Sub"]
        if text.startswith(SECRETS):
            return None if SECRET_TAIL.match(text.removeprefix(SECRETS)) else f"secret pattern {text}"
        match = UNDER_RESOURCE.match(text)
        if match and match.group(1) in resources and "*" not in match.group(2):
            return None
        return f"resource pattern {text}"
    return f"unrecognised resource {resource!r}"


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template()


def test_function_roles_name_only_the_stacks_own_resources(template: dict[str, Any]) -> None:
    """Proves no function's role has a wildcard in a data-plane action or resource: every
    resource is one of the stack's (or a path, index or secret under it)."""
    assert wildcard_findings(template) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda st: st.update(Action="dynamodb:*"), "wildcard action 'dynamodb:*'"),
        (lambda st: st.update(Action=["dynamodb:Get*"]), "wildcard action 'dynamodb:Get*'"),
        (lambda st: st.update(Resource="*"), "'*' resource"),
        (lambda st: st.update(Resource={"Fn::Sub": "${ArchiveBucket.Arn}/*"}), "resource pattern"),
        (lambda st: st.update(Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}), "resource pattern"),
        (
            lambda st: st.update(Resource={"Fn::Sub": SECRETS + "*"}),
            "secret pattern",
        ),
        (lambda st: st.update(Resource={"Fn::GetAtt": ["Elsewhere", "Arn"]}), "GetAtt Elsewhere.Arn"),
        (lambda st: st.update(Effect="Deny", NotAction="s3:GetObject"), "only plain Allow"),
    ],
)
def test_the_wildcard_check_catches_a_widened_role(
    template: dict[str, Any], change: Any, expected: str
) -> None:
    """Proves the check above fails on each way a statement could be widened (so its passing
    means something): a wildcard action, a bare or bucket-wide `*`, any secret, a foreign ARN."""
    widened = copy.deepcopy(template)
    _role_id, role = function_role(widened, "PushFunction")
    statement = role["Policies"][0]["PolicyDocument"]["Statement"][0]
    change(statement)
    findings = wildcard_findings(widened)
    assert findings
    assert any(expected in finding for finding in findings), findings


def test_data_at_rest_is_encrypted(template: dict[str, Any]) -> None:
    """Proves every table, queue, topic and bucket of the stack is encrypted at rest, the buckets
    block public access, and the topic's key is a key of the stack that rotates."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in template["Resources"].items():
        kinds.setdefault(resource["Type"], []).append({"id": logical_id, **resource.get("Properties", {})})
    assert len(kinds["AWS::DynamoDB::Table"]) == 2
    for table in kinds["AWS::DynamoDB::Table"]:
        assert table["SSESpecification"]["SSEEnabled"] is True, table["id"]
    # sync, ledger events, their DLQs, the export, reconcile and payments-back (Xero poll) DLQs
    assert len(kinds["AWS::SQS::Queue"]) == 7
    for queue in kinds["AWS::SQS::Queue"]:
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue, queue["id"]
    for topic in kinds["AWS::SNS::Topic"]:
        key = topic["KmsMasterKeyId"]
        assert key == {"Ref": "AlertsKey"}, topic["id"]
        assert template["Resources"]["AlertsKey"]["Properties"]["EnableKeyRotation"] is True
    for bucket in kinds["AWS::S3::Bucket"]:
        (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}, bucket["id"]
        assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}, bucket["id"]
        assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_every_bucket_refuses_plain_http(template: dict[str, Any]) -> None:
    """Proves each bucket has a policy that denies every S3 action, on the bucket and on every
    object, to anyone whose request is not over TLS (aws:SecureTransport false)."""
    resources = template["Resources"]
    buckets = [k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"]
    assert buckets
    for bucket in buckets:
        policies = [
            v["Properties"]["PolicyDocument"]
            for v in resources.values()
            if v["Type"] == "AWS::S3::BucketPolicy" and v["Properties"]["Bucket"] == {"Ref": bucket}
        ]
        assert len(policies) == 1, bucket
        denies = [
            st
            for st in policies[0]["Statement"]
            if st["Effect"] == "Deny"
            and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            and st["Principal"] == "*"
            and st["Action"] == "s3:*"
        ]
        assert len(denies) == 1, bucket
        assert denies[0]["Resource"] == [
            {"Fn::GetAtt": [bucket, "Arn"]},
            {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
        ]


SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)


def test_secrets_live_only_in_secrets_manager(template: dict[str, Any]) -> None:
    """Proves no secret can reach the stack except through Secrets Manager: no parameter asks for
    one, no environment variable of any function holds one (a secret-sounding name may only be a
    prefix or a URL), no resource carries one (no SecretString, no literal key or password), and
    the roles read secrets by the stack's prefix only (checked above)."""
    for name in template["Parameters"]:
        assert not SECRETISH.search(name), f"parameter {name} would put a secret in the stack"
    environments = [template["Globals"]["Function"]["Environment"]["Variables"]]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            environments.append(resource["Properties"].get("Environment", {}).get("Variables", {}))
    for variables in environments:
        for name, value in variables.items():
            if SECRETISH.search(name):
                assert name.endswith(("_PREFIX", "_URL", "_NAME", "_ARN")), name
                assert not isinstance(value, str) or value.startswith("https://"), name
    text = str(template["Resources"])
    for forbidden in ("SecretString", "GenerateSecretString", "Password", "AccessKey"):
        assert forbidden not in text, forbidden
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]


def test_http_api_is_throttled_by_parameters(template: dict[str, Any]) -> None:
    """Proves every route of the webhook API is throttled (rate and burst) at values the operator
    sets as parameters, with defaults inside the parameters' bounds and a burst of at least one
    second of the rate."""
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingBurstLimit": {"Ref": "WebhookBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "WebhookRateLimit"},
    }
    rate = template["Parameters"]["WebhookRateLimit"]
    burst = template["Parameters"]["WebhookBurstLimit"]
    for parameter in (rate, burst):
        assert parameter["Type"] == "Number"
        assert parameter["MinValue"] <= parameter["Default"] <= parameter["MaxValue"]
        assert parameter["Description"]
    assert burst["Default"] >= rate["Default"]


def test_every_checkov_suppression_says_why(template: dict[str, Any]) -> None:
    """Proves each check skipped for a resource (checkov reads Metadata.checkov.skip) names its
    check and gives a reason of at least a sentence, and that no skip repeats within a resource."""
    skipped = 0
    for logical_id, resource in template["Resources"].items():
        skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        ids = [skip["id"] for skip in skips]
        assert len(ids) == len(set(ids)), logical_id
        for skip in skips:
            assert set(skip) == {"id", "comment"}, (logical_id, skip)
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip["comment"].split()) >= 12, (logical_id, skip["id"])
            skipped += 1
    assert skipped > 0


def test_alert_windows_are_the_only_items_roles_update(template: dict[str, Any]) -> None:
    """Proves the roles that count alert storms (push, payments back) and flush their summaries
    (the nightly export) may UpdateItem and, for the export, Query the SyncState table for ALERT#
    items only, push its ledger-use counter (USE#, which store/sync_state.add_ledger_use
    updates in place), and payments back, in a statement of its own, the FreshBooks callbacks it
    marks verified (FBHOOK#, store/sync_state.mark_callback_verified): no role updates a sync
    record in place (records are written whole under a condition)."""
    # Each updating role's UpdateItem statements, as their lists of leading keys, in order.
    expected = {
        "PushFunction": [["ALERT#*", "USE#*"]],
        "NightlyExportFunction": [["ALERT#*"]],
        "PaymentsBackFunction": [["ALERT#*"], ["FBHOOK#*"]],
    }
    updaters: dict[str, list[list[str]]] = {}
    for function_id in (
        "WebhookIntakeFunction",
        "PushFunction",
        "NightlyExportFunction",
        "ReconcileFunction",
        "LedgerEventsFunction",
        "PaymentsBackFunction",
    ):
        role_id, role = function_role(template, function_id)
        for statement in role_statements(role):
            if "dynamodb:UpdateItem" in _as_list(statement["Action"]):
                assert statement["Effect"] == "Allow", role_id
                assert statement["Resource"] == {"Fn::GetAtt": ["SyncStateTable", "Arn"]}, role_id
                assert set(statement["Condition"]) == {"ForAllValues:StringLike"}, role_id
                keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                if keys == ["FBHOOK#*"]:
                    # The callback statement grants UpdateItem and nothing else.
                    assert _as_list(statement["Action"]) == ["dynamodb:UpdateItem"], role_id
                updaters.setdefault(function_id, []).append(keys)
    assert updaters == expected
