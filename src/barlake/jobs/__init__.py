"""Use cases over the catalog and the fetcher: backfill jobs and events."""
