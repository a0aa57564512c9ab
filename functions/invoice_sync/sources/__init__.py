"""Invoicing platforms: signature checks and parsing of their webhooks into the domain models.

Each source module offers the same three things; ``SOURCES`` names them by the path segment of
``/webhooks/{source}/{connection}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from invoice_sync.models.documents import SourceEvent
from invoice_sync.sources import generic, stripe


class Source(Protocol):
    SIGNATURE_HEADER: str

    def verify_signature(
        self, payload: bytes, header: str | None, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None: ...

    def parse_event(self, payload: bytes) -> SourceEvent | None: ...


SOURCES: Mapping[str, Source] = {"stripe": stripe, "generic": generic}
