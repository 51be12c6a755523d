"""The catalog: symbols, jobs, progress, ledger, events, findings."""
