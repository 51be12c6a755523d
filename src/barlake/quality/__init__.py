"""Data-quality rules, the check service and its alerts."""
