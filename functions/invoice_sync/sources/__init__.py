"""Invoicing platforms: signature checks and parsing of their webhooks into the domain models.

Each source module offers the same three things; ``SOURCES`` names them by the path segment of
``/webhooks/{source}/{connection}``.

A source module is imported the first time ``SOURCES`` hands it out, not with this package: each
defines a dozen or more pydantic models (on the bench machine about 35 ms to import Stripe's, 70 ms
the generic schema's), and a process needs only the sources whose webhooks it receives. Push,
which re-parses a body only when a message arrives without its snapshot, usually needs none.
Asking whether a name is a source (``in``, iterating, ``sorted``) imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from importlib import import_module
from typing import Protocol, cast

from invoice_sync.models.documents import SourceEvent


class Source(Protocol):
    SIGNATURE_HEADER: str

    def verify_signature(
        self, payload: bytes, header: str | None, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None: ...

    def parse_event(self, payload: bytes) -> SourceEvent | None: ...


class _Sources(Mapping[str, Source]):
    """The source modules by name, each imported on first use."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)

    def __getitem__(self, name: str) -> Source:
        return cast(Source, import_module(self._modules[name]))

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


SOURCES: Mapping[str, Source] = _Sources(
    {"stripe": "invoice_sync.sources.stripe", "generic": "invoice_sync.sources.generic"}
)
