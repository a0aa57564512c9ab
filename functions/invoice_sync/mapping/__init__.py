"""Mapping rules and the resolver: source product / tax rate / customer -> ledger references."""
