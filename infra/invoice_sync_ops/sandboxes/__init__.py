"""Ledger API stand-ins speaking their real HTTP dialect so adapters are tested over the wire."""
