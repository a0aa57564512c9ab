"""Logger and Metrics, created once; every handler uses the same ones.

Service name and namespace fall back to the template's values, so importing a handler outside
Lambda (tests, the local stack) still gives valid EMF and named log lines.

No Tracer: creating Powertools' Tracer loads the X-Ray SDK (about half a second of cold start).
Lambda's active tracing (template parameter ``Tracing``) still records each invocation.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "invoice-sync"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "InvoiceSync")
