"""Accounting systems: one adapter per ledger behind one port (``port.LedgerPort``)."""
