"""`lake emulate PROVIDER`: a real emulator on loopback, its URL on stdout, Ctrl-C ends it."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx


def test_lake_emulate_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "barlake",
            "emulate",
            "alpaca",
            "--api-key",
            "K1",
            "--api-secret",
            "S1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        params = {
            "symbols": "AAPL",
            "timeframe": "1Day",
            "start": "2024-06-03",
            "end": "2024-06-08",
        }
        ok = httpx.get(
            f"{url}/v2/stocks/bars",
            params=params,
            headers={"APCA-API-KEY-ID": "K1", "APCA-API-SECRET-KEY": "S1"},
            timeout=10,
        )
        assert ok.status_code == 200
        assert len(ok.json()["bars"]["AAPL"]) == 5
        refused = httpx.get(f"{url}/v2/stocks/bars", params=params, timeout=10)
        assert refused.status_code in (401, 403)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_lake_emulate_unknown_provider_is_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "barlake", "emulate", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "alpaca" in proc.stderr
