"""template.yaml's alarms and dashboard: what they watch exists, is emitted, and reaches the topic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from invoice_sync.errors import TokenExpired, TokenRevoked
from invoice_sync.sync.intake import IntakeOutcome
from invoice_sync.sync.outcomes import park_reason
from invoice_sync.sync.push import Outcome
from invoice_sync_ops.template import DEFAULT_TEMPLATE, load_template

PACKAGE = DEFAULT_TEMPLATE.parent / "functions" / "invoice_sync"
NAMESPACE = "InvoiceSync"


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template()


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads (its own, or those of its metric math), each with its stat."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
                "Stat": alarm["Statistic"],
            }
        ]
    return [
        {**query["MetricStat"]["Metric"], "Stat": query["MetricStat"]["Stat"]}
        for query in alarm["Metrics"]
        if "MetricStat" in query
    ]


def _dimension(metric: dict[str, Any], name: str) -> Any:
    return next((d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == name), None)


def emitted_metric_names() -> set[str]:
    """Every metric name the package emits: the literal names given to add_metric/single_metric,
    and the families named after an outcome (Push<Outcome>, Webhook<IntakeOutcome>)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(re.findall(r'name="([A-Z]\w+)",\s*\n?\s*unit=', path.read_text(encoding="utf-8")))
        names.update(re.findall(r'name="([A-Z]\w+)"\s*,', path.read_text(encoding="utf-8")))
    names.update(f"Push{outcome.value.title()}" for outcome in Outcome)
    names.update(f"Webhook{outcome.value.title()}" for outcome in IntakeOutcome)
    return names


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = _of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    for reference in re.findall(r"\$\{([^}]+)\}", body):
        target = reference.split(".")[0]
        assert target.startswith("AWS::") or target in template["Resources"], reference
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "X", body)))


def test_every_alarm_tells_the_alerts_topic_what_to_do(template: dict[str, Any]) -> None:
    """Proves each alarm notifies the alerts topic, says in its description what it means and
    what to do, and that CloudWatch may use the topic's key (an encrypted topic refuses a
    publisher that cannot)."""
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 12
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlertsTopic"}], logical_id
        assert len(props["AlarmDescription"].split()) >= 12, logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id
    statements = template["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(cloudwatch[0]["Action"])


def test_every_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    """Proves every queue that keeps failed work (the sync queue's redrive target, a function's
    OnFailure destination, a schedule's dead-letter queue) alarms on its first message."""
    resources = template["Resources"]
    dead_letter: set[str] = set()
    for resource in resources.values():
        props = resource.get("Properties", {})
        target = props.get("RedrivePolicy", {}).get("deadLetterTargetArn")
        destination = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})
        schedule = props.get("Target", {}).get("DeadLetterConfig", {}).get("Arn")
        for arn in (target, destination.get("Destination"), schedule):
            if arn:
                dead_letter.add(arn["Fn::GetAtt"][0])
    assert dead_letter == {
        "SyncDeadLetterQueue",
        "ExportDeadLetterQueue",
        "ReconcileDeadLetterQueue",
        "LedgerEventsDeadLetterQueue",
        "PaymentsBackDeadLetterQueue",
    }
    watched = set()
    for alarm in _of_type(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
            watched.add(_dimension(props, "QueueName")["Fn::GetAtt"][0])
    assert watched == dead_letter


def test_every_function_alarms_on_errors_and_throttles(template: dict[str, Any]) -> None:
    """Proves each function has an alarm on its Errors (any in 5 minutes) and that the throttles
    alarm adds up the Throttles of every function."""
    functions = set(_of_type(template, "AWS::Serverless::Function"))
    errors, throttles = set(), set()
    for alarm in _of_type(template, "AWS::CloudWatch::Alarm").values():
        for metric in _alarm_metrics(alarm["Properties"]):
            if metric["Namespace"] != "AWS/Lambda":
                continue
            function = _dimension(metric, "FunctionName")["Ref"]
            {"Errors": errors, "Throttles": throttles}[metric["MetricName"]].add(function)
    assert errors == functions
    assert throttles == functions
    expression = template["Resources"]["FunctionThrottlesAlarm"]["Properties"]["Metrics"][0]["Expression"]
    for query in template["Resources"]["FunctionThrottlesAlarm"]["Properties"]["Metrics"][1:]:
        assert f"FILL({query['Id']}, 0)" in expression


@pytest.mark.parametrize(
    ("alarm", "metric", "stat", "operator", "threshold"),
    [
        ("TokenExpiringAlarm", "TokenExpiresInDays", "Minimum", "LessThanThreshold", 14),
        ("TokenRefreshFailedAlarm", "Parked", "Sum", "GreaterThanThreshold", 0),
        ("LedgerQuotaAlarm", "LedgerDayQuotaUsed", "Maximum", "GreaterThanThreshold", 80),
        ("QuietDayAlarm", "QuietDays", "Maximum", "GreaterThanThreshold", 0),
    ],
)
def test_the_application_alarms_watch_what_the_code_emits(
    template: dict[str, Any], alarm: str, metric: str, stat: str, operator: str, threshold: int
) -> None:
    """Proves the token, refresh, quota and quiet-day alarms read the InvoiceSync metric the
    handlers emit, under the dimensions they emit it with (service, and reason for Parked), at
    the issue's thresholds: expiring within 14 days, any refresh refused, quota above 80%, any
    day far below its usual traffic."""
    props = template["Resources"][alarm]["Properties"]
    assert (props["ComparisonOperator"], props["Threshold"]) == (operator, threshold)
    read = _alarm_metrics(props)
    assert read
    for each in read:
        assert (each["Namespace"], each["MetricName"], each["Stat"]) == (NAMESPACE, metric, stat)
        assert _dimension(each, "service") == "invoice-sync"
        names = {d["Name"] for d in each["Dimensions"]}
        assert names == ({"service", "reason"} if metric == "Parked" else {"service"})
    assert metric in emitted_metric_names()
    service = template["Globals"]["Function"]["Environment"]["Variables"]
    assert (service["POWERTOOLS_SERVICE_NAME"], service["POWERTOOLS_METRICS_NAMESPACE"]) == (
        "invoice-sync",
        NAMESPACE,
    )


def test_refresh_alarm_reasons_are_the_ones_push_parks_with() -> None:
    """Proves the reasons the refresh alarm watches are the ones park_reason gives a refused or
    revoked token (a reworded reason would leave the alarm watching nothing)."""
    template = load_template()
    watched = {
        _dimension(metric, "reason")
        for metric in _alarm_metrics(template["Resources"]["TokenRefreshFailedAlarm"]["Properties"])
    }
    parks = {park_reason(error("refused")) for error in (TokenExpired, TokenRevoked)}
    assert watched == {park.reason for park in parks if park is not None}


def test_the_dashboard_shows_synced_parked_latency_and_quota(template: dict[str, Any]) -> None:
    """Proves the dashboard is valid JSON once substituted, names only the stack's resources, and
    has the four graphs the issue asks for, each on a metric the code emits: synced per hour,
    parked by reason, webhook-to-ledger latency (p50 and p99) and ledger quota use."""
    widgets = {w["properties"]["title"]: w["properties"] for w in _dashboard(template)["widgets"]}
    emitted = emitted_metric_names()
    for widget in widgets.values():
        for line in widget["metrics"]:
            if isinstance(line[0], str) and line[0] == NAMESPACE:
                assert line[1] in emitted, line
    synced = widgets["Synced per hour"]
    assert (synced["stat"], synced["period"]) == ("Sum", 3600)
    assert synced["metrics"][0][:2] == [NAMESPACE, "PushSynced"]
    (parked,) = widgets["Parked by reason (per hour)"]["metrics"]
    assert 'MetricName="Parked"' in parked[0]["expression"]
    assert "{InvoiceSync,reason,service}" in parked[0]["expression"]
    latency = widgets["Webhook to ledger (ms)"]["metrics"]
    assert {line[1] for line in latency} == {"WebhookToLedger"}
    assert {"p50", "p99"} <= {line[-1]["stat"] for line in latency}
    quota = widgets["Ledger daily quota used (%)"]
    assert quota["metrics"][0][:2] == [NAMESPACE, "LedgerDayQuotaUsed"]
    assert quota["annotations"]["horizontal"][0]["value"] == 80


def test_operations_doc_explains_every_alarm(template: dict[str, Any]) -> None:
    """Proves docs/operations.md has a section for every alarm of the template (by logical id)."""
    doc = (Path(DEFAULT_TEMPLATE.parent) / "docs" / "operations.md").read_text(encoding="utf-8")
    for logical_id in _of_type(template, "AWS::CloudWatch::Alarm"):
        assert f"`{logical_id}`" in doc, logical_id
