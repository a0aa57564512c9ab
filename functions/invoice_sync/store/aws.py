"""AWS clients, created lazily once per process and shared by the stores.

All of them come from one botocore session: a session loads the endpoint rules, partitions and
defaults once, where a new session per client (``boto3.session.Session().client(...)``) parses them
again for every service, about 0.1 s each at cold start. The stores call the services' own APIs
only, never boto3's resources or S3 transfer helpers, so botocore is all they need, and the
function does not import boto3 at all.

botocore reads ``AWS_ENDPOINT_URL`` itself, which is how the local stack points every client at
moto's server without code of ours knowing about it.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

# Short connect/read timeouts and standard retries: a webhook must be answered quickly, and a
# slow AWS call is better retried than waited on.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

# A botocore session is not safe to create clients from on two threads at once (the local stack
# runs the intake and push side by side); the clients themselves are.
_LOCK = threading.Lock()


@cache
def session() -> botocore.session.Session:
    """The process's botocore session (credentials and region from the environment)."""
    return botocore.session.get_session()


@cache
def client(service: str) -> Any:
    with _LOCK:
        return session().create_client(service, config=_CONFIG)


class OnFirstUse:
    """Stands for ``client(service)`` and creates it only when a method is first looked up: for a
    store that a use case calls rarely (the intake archives a body on its own only when it cannot
    travel in its queue message), so cold start does not build a client it seldom needs."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service), name)


def reset() -> None:
    """Forget the session and its clients (tests change the environment between cases)."""
    client.cache_clear()
    session.cache_clear()
