"""Alerts: a JSON summary POSTed to a webhook after a check with findings.

Delivery retries with backoff inside a short time budget and never fails the check: a webhook
that cannot be reached becomes a message in the check's result.
"""

from __future__ import annotations

import time
from typing import Any


def post(
    url: str, summary: dict[str, Any], *, timeout: float = 5.0, attempts: int = 3
) -> str | None:
    """POST ``summary`` to ``url``; None when delivered, else why not (one line)."""
    import httpx

    problem = "not attempted"
    for attempt in range(attempts):
        try:
            response = httpx.post(url, json=summary, timeout=timeout)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return None
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code != 429:
                break  # the receiver refuses this payload; retrying will not help
        if attempt + 1 < attempts:
            time.sleep(0.2 * 2**attempt)
    return f"webhook {url} not reached after {attempts} attempt(s): {problem}"
