"""Xero Accounting API 2.0: payloads, errors and the port adapter."""
