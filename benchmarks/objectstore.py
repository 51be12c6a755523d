"""Bars in a bucket against bars on local disk: the same fill, gap query and read, on each.

    python benchmarks/objectstore.py [--symbols 100] [--runs 3] --json

The bucket is a moto server on a loopback port (``pip install 'moto[server]'``), so the figures
show barlake's own cost per request (a HEAD, a GET and a conditional PUT per file written) with
next to no network time: a real bucket adds its round trips. The fill is the demo provider's, of
daily bars for ``--symbols`` symbols and hourly bars for a tenth of them over half a year; gaps
and ``Lake.bars`` are timed afterwards, median of ``--runs``. Prints one JSON object:
{"local": {"fill_s", "gaps_s", "bars_s", "files"}, "s3": {...}, "s3_over_local": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from barlake import Lake

CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)
SPAN = {"start": date(2024, 1, 2), "end": date(2024, 6, 28)}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark-secret",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def clock() -> datetime:
    return CLOCK


def median_s(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def measure(root: Path, storage: str, symbols: list[str], runs: int) -> dict[str, Any]:
    root.mkdir(parents=True)
    if storage:
        (root / "lake.yaml").write_text(storage)
    lake = Lake.init(root, clock=clock)
    lake.add_symbols(symbols)
    hourly = symbols[: max(1, len(symbols) // 10)]
    t0 = time.perf_counter()
    assert lake.fill(symbols, interval="1day", **SPAN).ok
    assert lake.fill(hourly, interval="1hour", **SPAN).ok
    fill_s = time.perf_counter() - t0
    lake = Lake.open(root, clock=clock)
    return {
        "fill_s": round(fill_s, 3),
        "gaps_s": median_s(lambda: lake.gaps(symbols, interval="1day", **SPAN), runs),
        "bars_s": median_s(lambda: lake.bars(symbols, interval="1day", **SPAN).collect(), runs),
        "files": len(lake.store.files("1day", None, None) + lake.store.files("1hour", None, None)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="benchmark")
        storage = f"storage:\n  url: s3://benchmark/lake\n  endpoint_url: {endpoint}\n"
        symbols = [f"B{i:04d}" for i in range(args.symbols)]
        with tempfile.TemporaryDirectory() as tmp:
            local = measure(Path(tmp) / "local", "", symbols, args.runs)
            s3 = measure(Path(tmp) / "s3", storage, symbols, args.runs)
    finally:
        server.stop()
    ratio = {k: round(s3[k] / local[k], 2) for k in ("fill_s", "gaps_s", "bars_s") if local[k]}
    out = {"symbols": args.symbols, "runs": args.runs, "local": local, "s3": s3}
    print(json.dumps({**out, "s3_over_local": ratio}, indent=None if args.json else 2))


if __name__ == "__main__":
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sys.exit(main())
