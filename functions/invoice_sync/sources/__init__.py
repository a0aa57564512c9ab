"""Invoicing platforms: signature checks and parsing of their webhooks into the domain models."""
