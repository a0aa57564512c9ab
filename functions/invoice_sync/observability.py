"""Logger and Metrics, created once; every handler uses the same ones.

No Tracer: creating Powertools' Tracer loads the X-Ray SDK (about half a second of cold start).
Lambda's active tracing (template parameter ``Tracing``) still records each invocation.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
