"""The operator CLI's Stripe client is the package's (``invoice_sync.sources.stripe_api``): one
client for the CLI and the reconcile Lambda. This module keeps the CLI's imports where they were."""

from __future__ import annotations

from invoice_sync.sources.stripe_api import (
    API_VERSION,
    KEY_ENV,
    PAGE_LIMIT,
    StripeApi,
    StripeApiError,
    StripeAuthError,
    StripeNotFound,
    StripeRateLimited,
    StripeUnavailable,
    StripeUse,
    api_key,
)

__all__ = [
    "API_VERSION",
    "KEY_ENV",
    "PAGE_LIMIT",
    "StripeApi",
    "StripeApiError",
    "StripeAuthError",
    "StripeNotFound",
    "StripeRateLimited",
    "StripeUnavailable",
    "StripeUse",
    "api_key",
]
