"""FreshBooks Accounting API: payloads, errors and the port adapter."""
