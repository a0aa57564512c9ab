"""Wiring: each use case built on its stores and clients, once per process (cold start).

One small module per use case (``intake``, ``push``, ``export``, ``reconcile``), on the stores they
share (``stores``). A handler imports its own use case's module and nothing else, so the webhook
intake never loads the export's workbook writer or the ledger adapters: cold start pays for what
the function runs. ``invoice_sync.bootstrap`` gathers them for the operator CLI and the tests.

Every factory here is decorated with ``once``: built on first call, kept while warm, forgotten by
``reset()`` (tests change the environment between cases).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Protocol, TypeVar

from invoice_sync.settings import get_settings
from invoice_sync.store import aws


class _Clearable(Protocol):
    def cache_clear(self) -> None: ...


_F = TypeVar("_F", bound=Callable[..., Any])
_WIRED: list[_Clearable] = []


def once(factory: _F) -> _F:
    """``functools.cache``, and ``reset()`` forgets what it built."""
    cached = cache(factory)
    _WIRED.append(cached)
    return cached  # type: ignore[return-value]


def reset() -> None:
    """Forget every wired object, the settings and the boto3 clients of the process."""
    for cached in _WIRED:
        cached.cache_clear()
    get_settings.cache_clear()
    aws.reset()
