"""boto3 clients, created lazily once per process and shared by the stores.

boto3 reads ``AWS_ENDPOINT_URL`` itself, which is how the local stack points every client at
moto's server without code of ours knowing about it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Short connect/read timeouts and standard retries: a webhook must be answered quickly, and a
# slow AWS call is better retried than waited on.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)
