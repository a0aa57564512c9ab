"""invoice-sync: keeps a ledger in step with an invoicing platform. The code that runs in Lambda."""
