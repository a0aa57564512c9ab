"""The dated price table bench/cost.py prices with: it loads, every entry says where it comes
from and when, and the loader refuses an entry that does not."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_prices", BENCH / "cost_prices.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cost_prices", module)
    spec.loader.exec_module(module)
    return module


cost_prices = _load_module()

ENTRY = """
[meta]
region = "us-east-1"
currency = "USD"
taken = 2026-12-01

[sqs.request]
value = 0.0000004
unit = "USD per request"
source = "https://aws.amazon.com/sqs/pricing/"
taken = 2026-12-01
"""


def test_the_table_in_infra_loads_with_a_source_and_a_date_for_every_price() -> None:
    """infra/aws_prices.toml parses; every entry has a unit, a source and the day it was taken."""
    table = cost_prices.load()
    assert table.region == "us-east-1"
    assert table.currency == "USD"
    assert table.taken == date(2026, 12, 1)
    assert len(table.prices) >= 20
    for key, price in table.prices.items():
        assert price.unit.strip(), key
        assert price.source.startswith(("https://", "not found in corpus")), key
        assert isinstance(price.taken, date), key


def test_the_table_holds_what_the_bench_prices_with() -> None:
    """The keys bench/cost.py reads are there, at the list prices the table cites."""
    table = cost_prices.load()
    for key in (
        "lambda.gb_second_arm64",
        "lambda.request",
        "apigateway.http_request",
        "sqs.request",
        "dynamodb.read_request_unit",
        "dynamodb.write_request_unit",
        "s3.put_request",
        "s3.get_request",
        "s3.standard_gb_month",
        "cloudwatch.logs_ingestion_gb",
        "cloudwatch.custom_metric_month",
        "sns.publish",
        "secretsmanager.secret_month",
        "secretsmanager.api_call",
        "scheduler.invocation",
        "kms.key_month",
        "kms.request",
        "data_transfer.internet_out_gb",
    ):
        assert table[key] > 0, key
    # The on-demand prices after DynamoDB's 2024-11-01 cut, not the earlier $1.25 / $0.25.
    assert table["dynamodb.write_request_unit"] == pytest.approx(0.625e-6)
    assert table["dynamodb.read_request_unit"] == pytest.approx(0.125e-6)


def test_prices_resting_on_memory_are_listed_as_such() -> None:
    """An entry whose source says "not found in corpus" is reported by unsourced()."""
    table = cost_prices.parse(
        ENTRY
        + """
[s3.standard_ia_gb_month]
value = 0.0125
unit = "USD per GB-month"
source = "not found in corpus; value from memory"
taken = 2026-12-01
"""
    )
    assert table.unsourced() == ["s3.standard_ia_gb_month"]
    assert table["sqs.request"] == pytest.approx(4e-7)


def _without_last(text: str, line: str, instead: str = "") -> str:
    head, _, tail = text.rpartition(line)
    return head + instead + tail


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(ENTRY.replace('source = "https://aws.amazon.com/sqs/pricing/"\n', ""), id="no source"),
        pytest.param(_without_last(ENTRY, "taken = 2026-12-01\n"), id="no date"),
        pytest.param(
            _without_last(ENTRY, "taken = 2026-12-01\n", 'taken = "last week"\n'), id="date as text"
        ),
        pytest.param(ENTRY.replace("value = 0.0000004", "value = -1"), id="negative value"),
        pytest.param(ENTRY.replace("value = 0.0000004", 'value = "cheap"'), id="value as text"),
        pytest.param(ENTRY.replace('unit = "USD per request"', 'unit = " "'), id="blank unit"),
    ],
)
def test_an_entry_without_a_value_source_or_date_is_refused(text: str) -> None:
    """A price without its source or date, or with a value that is not a price, is an error."""
    with pytest.raises(cost_prices.PriceTableError, match=r"\[sqs\.request\]"):
        cost_prices.parse(text)


def test_a_table_without_meta_is_refused() -> None:
    """[meta] names the region, currency and date; without it nothing is priced."""
    with pytest.raises(cost_prices.PriceTableError, match="meta"):
        cost_prices.parse(ENTRY.replace("[meta]", "[metadata]"))


def test_unknown_keys_name_what_is_missing() -> None:
    table = cost_prices.parse(ENTRY)
    with pytest.raises(KeyError, match=r"lambda\.request"):
        _ = table["lambda.request"]
