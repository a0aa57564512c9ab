"""Settings read from the environment in one place: aliases, defaults, refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from invoice_sync.settings import Settings

REQUIRED = {
    "SYNC_TABLE": "sync",
    "MAPPINGS_TABLE": "mappings",
    "SYNC_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/sync",
    "ARCHIVE_BUCKET": "archive",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:alerts",
}


def test_from_env_reads_aliases_and_defaults() -> None:
    """Given only the required variables (plus unrelated ones), from_env fills fields from their
    upper-case aliases and leaves the documented defaults."""
    settings = Settings.from_env({**REQUIRED, "PATH": "/usr/bin", "AWS_REGION": "eu-west-1"})
    assert settings.sync_table == "sync"
    assert settings.mappings_table == "mappings"
    assert settings.sync_queue_url == REQUIRED["SYNC_QUEUE_URL"]
    assert settings.archive_bucket == "archive"
    assert settings.alerts_topic_arn == REQUIRED["ALERTS_TOPIC_ARN"]
    assert settings.max_webhook_bytes == 262_144
    assert settings.webhook_tolerance_seconds == 300
    assert settings.secrets_prefix == "invoice-sync"


def test_from_env_converts_overrides() -> None:
    """Given numeric overrides as strings (as the environment holds them), from_env converts them."""
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MAX_WEBHOOK_BYTES": "1024",
            "WEBHOOK_TOLERANCE_SECONDS": "60",
            "LEDGER_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert settings.max_webhook_bytes == 1024
    assert settings.webhook_tolerance_seconds == 60
    assert settings.ledger_timeout_seconds == 2.5


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_required_variable_is_refused(missing: str) -> None:
    """Given the environment without one required variable, from_env raises ValidationError naming it."""
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(("name", "value"), [("MAX_WEBHOOK_BYTES", "0"), ("WEBHOOK_TOLERANCE_SECONDS", "-1")])
def test_non_positive_limits_are_refused(name: str, value: str) -> None:
    """Given a zero or negative limit, from_env refuses it rather than disabling the check."""
    with pytest.raises(ValidationError):
        Settings.from_env({**REQUIRED, name: value})
