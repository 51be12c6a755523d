"""One vendor emulator in a process of its own, for ``scheduling.py``: it then answers on its own
interpreter and cores instead of competing with barlake's fill for this process's.

    python benchmarks/_emulator_process.py PROVIDER '{"rate_limit": 200, "latency_s": 0.02, ...}'

The JSON object holds ``open_emulator``'s settings (``now`` as an ISO timestamp). Once
listening, it answers a few requests of its own (daily and 1-minute bars of one symbol), so that
the first measured request does not pay for imports and first calls, as a running vendor's would
not; then its log and rate-limit window start afresh, and its URL goes to stdout as one line.

Then a line protocol on stdin: each line ``count`` is answered with one JSON line on stdout,
``{"requests": N, "statuses": {"200": N, "429": M, ...}, "duplicates": D, "cpu_s": S}`` (calls
served so far by status, answers of 200 to a request answered 200 before, and this process's CPU
seconds so far); each line ``arrivals`` with ``[[unix time, status], ...]`` of every call so
far. It serves until stdin closes, or SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

from barlake.providers.emulators import Emulator, RateLimit, open_emulator


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def counts(emulator: Emulator) -> dict[str, Any]:
    statuses = Counter(str(status) for status, _ in list(emulator.log))
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "duplicates": emulator.duplicates,
        "cpu_s": time.process_time(),
    }


def warm_up(emulator: Emulator, provider: str, settings: dict[str, Any]) -> None:
    """Answer daily and 1-minute bars of one symbol, outside the rate limit, then forget them:
    the log empties and the rate-limit window starts afresh."""
    emulator.rate = RateLimit(None)
    symbol = (settings.get("symbols") or ["WARM"])[0]
    last = (settings.get("now") or datetime.now(UTC)).date() - timedelta(days=1)
    first = last - timedelta(days=10)
    key, secret = settings.get("api_key", "test-key"), settings.get("api_secret") or ""
    asks: list[tuple[str, dict[str, str]]] = []
    if provider == "alpaca":
        headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        for frame in ("1Day", "1Min"):
            query = {"symbols": symbol, "timeframe": frame, "feed": "iex"}
            query |= {"start": first.isoformat(), "end": last.isoformat()}
            asks.append((f"/v2/stocks/bars?{urlencode(query)}", headers))
    elif provider in ("polygon", "massive"):
        ticker = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/1"
        for span in ("day", "minute"):
            asks.append((f"{ticker}/{span}/{first}/{last}?apiKey={quote(key)}", {}))
        asks.append((f"/v2/aggs/grouped/locale/us/market/stocks/{last}?apiKey={quote(key)}", {}))
    for path, headers in asks:
        with urlopen(Request(emulator.url + path, headers=headers), timeout=60) as answer:
            answer.read()
    emulator.forget()
    emulator.rate = RateLimit(settings.get("rate_limit"), window_s=settings.get("window_s", 60.0))


def main() -> None:
    provider, settings = sys.argv[1], json.loads(sys.argv[2])
    if settings.get("now"):
        settings["now"] = datetime.fromisoformat(settings["now"])
    signal.signal(signal.SIGTERM, _stop)
    emulator = open_emulator(provider, **settings).start()
    try:
        warm_up(emulator, provider, settings)
        print(emulator.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(json.dumps(counts(emulator)), flush=True)
            elif line.strip() == "arrivals":
                print(json.dumps(list(emulator.arrivals)), flush=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
