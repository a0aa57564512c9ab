"""What runs outside Lambda: the operator CLI, the local stack and the ledger sandboxes."""
