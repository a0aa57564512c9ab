"""Settings: read from the environment in this one place, validated once per cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    sync_table: str = Field(alias="SYNC_TABLE")
    mappings_table: str = Field(alias="MAPPINGS_TABLE")
    sync_queue_url: str = Field(alias="SYNC_QUEUE_URL")
    # The ledger webhooks' queue (ledger_events sends, payments_back reads); empty where unused.
    ledger_events_queue_url: str = Field(default="", alias="LEDGER_EVENTS_QUEUE_URL")
    archive_bucket: str = Field(alias="ARCHIVE_BUCKET")
    alerts_topic_arn: str = Field(alias="ALERTS_TOPIC_ARN")
    secrets_prefix: str = Field(default="invoice-sync", alias="SECRETS_PREFIX")
    quickbooks_api_base: str = Field(default="https://quickbooks.api.intuit.com", alias="QUICKBOOKS_API_BASE")
    quickbooks_token_url: str = Field(
        default="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer", alias="QUICKBOOKS_TOKEN_URL"
    )
    xero_api_base: str = Field(default="https://api.xero.com/api.xro/2.0", alias="XERO_API_BASE")
    xero_token_url: str = Field(default="https://identity.xero.com/connect/token", alias="XERO_TOKEN_URL")
    freshbooks_api_base: str = Field(default="https://api.freshbooks.com", alias="FRESHBOOKS_API_BASE")
    freshbooks_token_url: str = Field(
        default="https://api.freshbooks.com/auth/oauth/token", alias="FRESHBOOKS_TOKEN_URL"
    )
    # Stripe's API, which reconciliation reads (the local stack points it at the stand-in).
    stripe_api_base: str = Field(default="https://api.stripe.com", alias="STRIPE_API_BASE")
    # The scheduled reconciliation re-checks the days of this many days back left incomplete.
    reconcile_pickup_days: int = Field(default=7, alias="RECONCILE_PICKUP_DAYS", ge=0, le=31)
    # Stripe caps a webhook payload well below this; anything larger is not a Stripe event.
    max_webhook_bytes: int = Field(default=262_144, alias="MAX_WEBHOOK_BYTES", gt=0)
    # How far a webhook signature's timestamp may be from now, for every source (Stripe's own 300 s).
    webhook_tolerance_seconds: int = Field(default=300, alias="WEBHOOK_TOLERANCE_SECONDS", gt=0)
    # Event de-duplication markers outlive Stripe's retry schedule (3 days) with margin.
    secret_cache_seconds: int = Field(default=300, alias="SECRET_CACHE_SECONDS", ge=0)
    ledger_timeout_seconds: float = Field(default=20.0, alias="LEDGER_TIMEOUT_SECONDS", gt=0)
    # Seconds of an invocation kept back: no new record starts with less than this left.
    push_reserve_seconds: int = Field(default=20, alias="PUSH_RESERVE_SECONDS", ge=0)
    # An intent younger than this may belong to a push still running (longer than its timeout).
    intent_timeout_seconds: int = Field(default=120, alias="INTENT_TIMEOUT_SECONDS", ge=0)
    # Stripe reports a credit note's refund as charge.refunded too, in no fixed order: refunded cash
    # that no credit note covers is booked as a refund document only once the refund is this old.
    refund_settle_seconds: int = Field(default=300, alias="REFUND_SETTLE_SECONDS", ge=0)
    # In-place retries of a throttled or failed ledger call, before the message goes back to SQS.
    ledger_max_attempts: int = Field(default=4, alias="LEDGER_MAX_ATTEMPTS", ge=1)
    ledger_backoff_seconds: float = Field(default=0.5, alias="LEDGER_BACKOFF_SECONDS", ge=0)
    ledger_max_backoff_seconds: float = Field(default=8.0, alias="LEDGER_MAX_BACKOFF_SECONDS", ge=0)
    # The nightly export: the time zone its days are calendar days of (the schedule's), the size
    # of its multipart upload parts (S3's minimum is 5 MiB), how long the report's links are
    # signed for (SigV4's maximum is 7 days; a role's session credentials end sooner), and where
    # the workbook is assembled (Lambda's /tmp).
    export_time_zone: str = Field(default="UTC", alias="EXPORT_TIME_ZONE")
    export_part_mib: int = Field(default=8, alias="EXPORT_PART_MIB", ge=5, le=512)
    export_link_seconds: int = Field(
        default=7 * 24 * 3600, alias="EXPORT_LINK_SECONDS", gt=0, le=7 * 24 * 3600
    )
    export_tmpdir: str | None = Field(default=None, alias="EXPORT_TMPDIR")
    # Rows above which a day's workbook holds a note instead of its sheets (the CSVs hold all).
    export_workbook_max_rows: int = Field(default=200_000, alias="EXPORT_WORKBOOK_MAX_ROWS", ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls.model_validate({k: v for k, v in env.items() if k in _ALIASES})


_ALIASES = {field.alias for field in Settings.model_fields.values() if field.alias}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own with ``Settings.from_env({...})``."""
    return Settings.from_env()
