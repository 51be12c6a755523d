"""Retention policies, the range each symbol wants, and pruning what falls out."""
