"""Running a plan: the scheduler, rate limits and windows shared across processes."""
