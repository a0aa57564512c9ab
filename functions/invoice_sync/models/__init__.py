"""Domain models: exact money, source documents, sync state and mappings."""
