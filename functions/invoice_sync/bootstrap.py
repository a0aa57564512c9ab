"""Every use case's wiring under one name, for the operator CLI, the local stack and the tests.

The wiring itself lives in ``invoice_sync.wiring``, one module per use case. This module imports
none of them: each name is loaded from its module on first use, so a handler that asks here for
its service loads that use case only (the handler imports its own wiring module, so that loading
happens at cold start, not on the first request). A bench or test may still replace a name here
(``bootstrap.intake = ...``): the handlers look their service up through this module.

``build_push`` is the one recipe for the push use case (``build_payments_back`` for payments
back): the Lambda calls it with the stores built here, the operator CLI with the stores of its
target. ``reset()`` forgets every wired object (tests change the environment between cases).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from invoice_sync.wiring import reset

if TYPE_CHECKING:
    from invoice_sync.wiring.export import build_export, nightly_export
    from invoice_sync.wiring.intake import intake
    from invoice_sync.wiring.ledger_intake import ledger_intake
    from invoice_sync.wiring.ledgers import ledgers
    from invoice_sync.wiring.payments_back import build_payments_back, payments_back
    from invoice_sync.wiring.push import build_push, push
    from invoice_sync.wiring.reconcile import reconcile, reconcile_sides
    from invoice_sync.wiring.state import state
    from invoice_sync.wiring.stores import mappings

__all__ = [
    "build_export",
    "build_payments_back",
    "build_push",
    "intake",
    "ledger_intake",
    "ledgers",
    "mappings",
    "nightly_export",
    "payments_back",
    "push",
    "reconcile",
    "reconcile_sides",
    "reset",
    "state",
]

# Where each name is defined, under invoice_sync.wiring.
_HOMES = {
    "build_export": "export",
    "nightly_export": "export",
    "intake": "intake",
    "ledger_intake": "ledger_intake",
    "ledgers": "ledgers",
    "build_payments_back": "payments_back",
    "payments_back": "payments_back",
    "build_push": "push",
    "push": "push",
    "reconcile": "reconcile",
    "reconcile_sides": "reconcile",
    "mappings": "stores",
    "state": "state",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"invoice_sync.wiring.{home}"), name)
    globals()[name] = value  # looked up once; a name set here later (a stand-in) wins
    return value
