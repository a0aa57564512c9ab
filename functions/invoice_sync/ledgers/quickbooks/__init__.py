"""QuickBooks Online (Accounting API v3): payloads, HTTP client and the port adapter."""
