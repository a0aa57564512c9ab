"""What bench/cost.py reads from template.yaml for its fixed monthly costs and its event-source
model: each SQS event source apart (push's settings drive the model, not the last one found),
schedules' invocations a month, alarms by the metrics they are billed for, the functions'
LoggingConfig merged with Globals' as SAM merges it, and the metric names payments back's
handlers can emit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import cost  # noqa: E402 - the bench's modules import each other by their bare names
from invoice_sync.sync.payments_back import Outcome  # noqa: E402
from invoice_sync_ops.template import load_template  # noqa: E402


def _function(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def _sqs_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    events = _function(template, logical_id)["Events"].values()
    return next(event["Properties"] for event in events if event["Type"] == "SQS")


def test_push_event_source_drives_the_model_even_with_another_sqs_source_after_it() -> None:
    # Given template.yaml, where PaymentsBackFunction's SQS event source follows push's
    template = load_template()
    push = _sqs_properties(template, "PushFunction")
    # When the bench reads it
    facts = cost.template_facts(template)
    # Then the batch size and window it models are push's, and both sources are kept apart
    assert facts.batch_size == push["BatchSize"]
    assert facts.batching_window_s == push["MaximumBatchingWindowInSeconds"]
    by_function = {source.function: source for source in facts.event_sources}
    assert set(by_function) == {"push", "payments_back"}
    back = _sqs_properties(template, "PaymentsBackFunction")
    assert by_function["payments_back"].queue == "LedgerEventsQueue"
    assert by_function["payments_back"].batch_size == back["BatchSize"]
    assert by_function["payments_back"].window_s == back["MaximumBatchingWindowInSeconds"]


def test_schedules_are_counted_from_their_expressions_and_targets() -> None:
    # Given template.yaml's schedules (expressions from parameters' defaults)
    template = load_template()
    # When the bench reads them
    schedules = {s.logical_id: s for s in cost.template_facts(template).schedule_list}
    # Then the Xero poll targets payments_back at its rate, the nightly runs once a day each
    poll = schedules["XeroPollSchedule"]
    assert poll.target == "payments_back"
    assert poll.expression == template["Parameters"]["XeroPollScheduleTime"]["Default"]
    assert poll.runs_per_month == cost.runs_per_month(poll.expression)
    assert schedules["NightlyExportSchedule"].target == "nightly_export"
    assert schedules["ReconcileSchedule"].target == "reconcile"


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("rate(15 minutes)", 30 * 24 * 4),
        ("rate(1 hour)", 30 * 24),
        ("cron(30 4 * * ? *)", 30),
        ("cron(0/15 * * * ? *)", 30 * 24 * 4),
        ("cron(0 9,17 ? * MON-FRI *)", 2 * 5 * 30 / 7),
    ],
)
def test_runs_per_month_of_rate_and_cron_expressions(expression: str, runs: float) -> None:
    # Given an EventBridge Scheduler expression, when counted over a 30-day month,
    # then it is the number of invocations the schedule makes
    assert cost.runs_per_month(expression) == pytest.approx(runs)


def test_runs_per_month_refuses_what_it_cannot_read() -> None:
    # Given an expression that is neither rate(...) nor cron(...), or a rate unit Scheduler has not
    # When counted, then the bench stops with the expression named instead of guessing
    for expression in ("at(2026-12-02T18:00:00)", "rate(2 fortnights)", "cron(0 4 * *)"):
        with pytest.raises(SystemExit, match="schedule expression"):
            cost.runs_per_month(expression)


def test_a_metric_math_alarm_is_billed_for_each_metric_it_reads() -> None:
    # Given a single-metric alarm and one whose expression reads three metrics
    single = {"MetricName": "Errors", "Namespace": "AWS/Lambda"}
    math = {
        "Metrics": [
            {"Id": "sum", "Expression": "a + b + c"},
            *({"Id": name, "MetricStat": {"Metric": {"MetricName": "Throttles"}}} for name in "abc"),
        ]
    }
    # When counted, then the first is one alarm metric and the second three (the expression none)
    assert cost._alarm_metrics(single) == 1
    assert cost._alarm_metrics(math) == 3


def test_a_function_logging_config_is_merged_with_globals() -> None:
    # Given functions that set only their LoggingConfig's LogGroup (Globals set the levels)
    template = load_template()
    assert "SystemLogLevel" not in _function(template, "PushFunction")["LoggingConfig"]
    # When the bench reads them
    facts = cost.template_facts(template)
    # Then each keeps Globals' platform log level (SAM merges the maps), so no START/END/REPORT lines
    # are counted at the template's default WARN
    level = template["Parameters"]["PlatformLogLevel"]["Default"]
    for function in facts.functions.values():
        assert function.logging_config.get("SystemLogLevel") == level
        assert "LogGroup" not in function.logging_config


def test_payments_back_metric_names_cover_every_outcome() -> None:
    # Given the payments_back handler, whose per-message metric is named after its outcome
    # When its metric names are read from its source
    names = cost.declared_metrics("payments_back", cost.UNDRIVEN_HANDLERS["payments_back"])
    # Then every outcome's name is there, with the Xero poll's and the retry count
    assert {f"PaymentsBack{outcome.value.title()}" for outcome in Outcome} <= names
    assert {"XeroPollSent", "XeroPollFailed", "PaymentsBackRetried", "Parked"} <= names
