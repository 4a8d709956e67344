"""Read models fed from the ledger's event log: number status, recycling, SIM swaps, compliance, erasure."""
