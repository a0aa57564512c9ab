"""End-to-end: the local stack as ``make demo`` runs it: moto's server and the QuickBooks sandbox
over HTTP, webhooks posted over HTTP to the local HTTP API, push fed by the SQS event source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from invoice_sync_ops.local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as running:
        yield running
