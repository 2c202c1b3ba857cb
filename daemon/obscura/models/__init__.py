"""Model adapters, one per output family."""
