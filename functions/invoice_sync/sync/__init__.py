"""Use cases: webhook intake and push (later: payments back, export, reconcile)."""
