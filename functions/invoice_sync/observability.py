"""Logger and Metrics, created once; every handler uses the same ones.

Service name and namespace fall back to the template's values, so importing a handler outside
Lambda (tests, the local stack) still gives valid EMF and named log lines.

No Tracer: creating Powertools' Tracer loads the X-Ray SDK (about half a second of cold start).
Lambda's active tracing (template parameter ``Tracing``) still records each invocation.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "invoice-sync"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "InvoiceSync")

Handler = TypeVar("Handler", bound=Callable[..., Any])

# What every line would repeat that its log group (/aws/lambda/<function>) already says: about
# 170 bytes a line, a third of an intake invocation's log bytes (bench/cost.py counts them).
# The request id, cold start and correlation id stay.
REDUNDANT_KEYS = ("function_name", "function_memory_size", "function_arn")


def logged(correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    """Powertools' ``inject_lambda_context`` without the keys the log group already names."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def without_redundant_keys(event: Any, context: Any) -> Any:
            logger.remove_keys(list(REDUNDANT_KEYS))
            return handler(event, context)

        injected = logger.inject_lambda_context(
            without_redundant_keys, correlation_id_path=correlation_id_path
        )
        return functools.wraps(handler)(injected)  # type: ignore[return-value]

    return wrap
