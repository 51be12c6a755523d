"""barlake beside the stores researchers compare it with: ArcticDB (LMDB), NautilusTrader's
ParquetDataCatalog and per-symbol pandas Parquet files.

    pip install -e '.[peers]'            # arcticdb, nautilus_trader, pandas (each optional)
    python benchmarks/peers.py [--quick] [--rounds 7] --json

The same synthetic bars go into every system: 483 symbols x 242 daily sessions of 2024 (117k
bars) and 40 symbols x 20 sessions x 390 one-minute bars of June 2024 (312k bars); ``--quick``
takes 50 daily and 5 minute symbols. Each round writes them into fresh folders, appends one
daily session for every symbol, then times the reads (warm cache):

- R1: one daily symbol, a year          R2: every daily symbol, one month
- R3: one minute symbol, a month        R4: every minute symbol, one day

and measures the bytes on disk. Systems are alternated (their order rotates every round) and
each figure is the median over rounds (reads: of the round's median over several symbols). A
peer that does not import is reported under ``skipped``. Prints
``{"figures": [{"name", "barlake_s", "best_peer", "best_peer_s", "ratio"}, ...]}`` with ratio =
barlake / best peer (for ``disk_bytes`` the figures are bytes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from gaps import bars as synthetic

from barlake import Lake

YEAR = 2024
MINUTE_MONTH = (date(2024, 6, 1), date(2024, 6, 30))
READS = 5  # symbols (or repetitions) per read figure and round


def sessions() -> list[date]:
    """The weekdays of 2024 less one in thirteen (as many as holidays and a few more): 241
    sessions."""
    days = [date(YEAR, 1, 1) + timedelta(d) for d in range(366)]
    weekdays = [d for d in days if d.weekday() < 5]
    return [d for i, d in enumerate(weekdays) if i % 13 != 5]


def daily_bars(names: list[str], days: list[date], seed: int = 1) -> pl.DataFrame:
    ts = np.tile(np.array(days, dtype="datetime64[us]"), len(names))
    return synthetic(np.repeat(np.array(names), len(days)), ts, np.random.default_rng(seed))


def minute_bars(names: list[str], days: list[date]) -> pl.DataFrame:
    opens = np.array(days, dtype="datetime64[us]") + np.timedelta64(13 * 60 + 30, "m")
    minutes = (opens[:, None] + np.arange(390).astype("timedelta64[m]")).ravel()
    symbol = np.repeat(np.array(names), len(minutes))
    return synthetic(symbol, np.tile(minutes, len(names)), np.random.default_rng(2))


class System(Protocol):
    name: str

    def write(self, daily: pl.DataFrame, minute: pl.DataFrame) -> None: ...
    def append(self, daily: pl.DataFrame) -> None: ...
    def r1(self, symbol: str) -> int: ...
    def r2(self, start: date, end: date) -> int: ...
    def r3(self, symbol: str) -> int: ...
    def r4(self, day: date) -> int: ...


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Barlake:
    name = "barlake"

    def __init__(self, root: Path) -> None:
        self.lake = Lake.init(root)

    def write(self, daily: pl.DataFrame, minute: pl.DataFrame) -> None:
        self.lake.store.write("1day", daily)
        self.lake.store.write("1min", minute)

    def append(self, daily: pl.DataFrame) -> None:
        self.lake.store.write("1day", daily)

    def r1(self, symbol: str) -> int:
        return (
            self.lake.bars(symbol, start=date(YEAR, 1, 1), end=date(YEAR, 12, 31)).collect().height
        )

    def r2(self, start: date, end: date) -> int:
        return self.lake.bars(start=start, end=end).collect().height

    def r3(self, symbol: str) -> int:
        lo, hi = MINUTE_MONTH
        return self.lake.bars(symbol, interval="1min", start=lo, end=hi).collect().height

    def r4(self, day: date) -> int:
        return self.lake.bars(interval="1min", start=day, end=day).collect().height


class PandasFiles:
    """One Parquet file per symbol and interval, written and read by pandas (pyarrow)."""

    name = "pandas"

    def __init__(self, root: Path) -> None:
        import pandas as pd

        self.pd = pd
        self.root = root

    def _path(self, interval: str, symbol: str) -> Path:
        return self.root / interval / f"{symbol}.parquet"

    def _write(self, interval: str, bars: pl.DataFrame) -> None:
        (self.root / interval).mkdir(parents=True, exist_ok=True)
        frame = bars.to_pandas().set_index("ts")
        for symbol, part in frame.groupby("symbol", sort=False):
            part.to_parquet(self._path(interval, str(symbol)))

    def write(self, daily: pl.DataFrame, minute: pl.DataFrame) -> None:
        self._write("1day", daily)
        self._write("1min", minute)

    def append(self, daily: pl.DataFrame) -> None:
        frame = daily.to_pandas().set_index("ts")
        for symbol, part in frame.groupby("symbol", sort=False):
            path = self._path("1day", str(symbol))
            self.pd.concat([self.pd.read_parquet(path), part]).to_parquet(path)

    def _read(self, interval: str, symbol: str, lo: datetime, hi: datetime) -> Any:
        filters = [("ts", ">=", lo), ("ts", "<", hi)]
        return self.pd.read_parquet(self._path(interval, symbol), filters=filters)

    def r1(self, symbol: str) -> int:
        return len(self._read("1day", symbol, utc(date(YEAR, 1, 1)), utc(date(YEAR + 1, 1, 1))))

    def r2(self, start: date, end: date) -> int:
        hi = utc(end) + timedelta(days=1)
        parts = [self._read("1day", p.stem, utc(start), hi) for p in (self.root / "1day").iterdir()]
        return len(self.pd.concat(parts))

    def r3(self, symbol: str) -> int:
        lo, hi = MINUTE_MONTH
        return len(self._read("1min", symbol, utc(lo), utc(hi) + timedelta(days=1)))

    def r4(self, day: date) -> int:
        lo, hi = utc(day), utc(day) + timedelta(days=1)
        parts = [self._read("1min", p.stem, lo, hi) for p in (self.root / "1min").iterdir()]
        return len(self.pd.concat(parts))


class Arctic:
    """ArcticDB on LMDB: one symbol per (interval, symbol), batch writes and reads."""

    name = "arcticdb"

    def __init__(self, root: Path) -> None:
        import arcticdb

        self.adb = arcticdb
        self.ac = arcticdb.Arctic(f"lmdb://{root}")
        self.lib = self.ac.get_library("bars", create_if_missing=True)
        self.daily: list[str] = []
        self.minute: list[str] = []

    def _payloads(self, interval: str, bars: pl.DataFrame) -> list[Any]:
        frame = bars.drop("symbol").to_pandas().set_index("ts")
        groups = bars["symbol"].to_numpy()
        cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), len(groups)]
        return [
            self.adb.WritePayload(f"{interval}/{groups[a]}", frame.iloc[a:b])
            for a, b in zip(starts, ends, strict=True)
        ]

    def write(self, daily: pl.DataFrame, minute: pl.DataFrame) -> None:
        self.lib.write_batch(self._payloads("1day", daily))
        self.lib.write_batch(self._payloads("1min", minute))
        self.daily = sorted(f"1day/{s}" for s in daily["symbol"].unique())
        self.minute = sorted(f"1min/{s}" for s in minute["symbol"].unique())

    def append(self, daily: pl.DataFrame) -> None:
        self.lib.append_batch(self._payloads("1day", daily))

    def _batch(self, names: list[str], lo: datetime, hi: datetime) -> int:
        window = (lo, hi - timedelta(microseconds=1))
        requests = [self.adb.ReadRequest(n, date_range=window) for n in names]
        return sum(len(r.data) for r in self.lib.read_batch(requests))

    def r1(self, symbol: str) -> int:
        window = (utc(date(YEAR, 1, 1)), utc(date(YEAR, 12, 31)))
        return len(self.lib.read(f"1day/{symbol}", date_range=window).data)

    def r2(self, start: date, end: date) -> int:
        return self._batch(self.daily, utc(start), utc(end) + timedelta(days=1))

    def r3(self, symbol: str) -> int:
        lo, hi = MINUTE_MONTH
        window = (utc(lo), utc(hi) + timedelta(days=1) - timedelta(microseconds=1))
        return len(self.lib.read(f"1min/{symbol}", date_range=window).data)

    def r4(self, day: date) -> int:
        return self._batch(self.minute, utc(day), utc(day) + timedelta(days=1))


class Nautilus:
    """NautilusTrader's ParquetDataCatalog of ``Bar`` objects (its own schema and layout)."""

    name = "nautilus"

    def __init__(self, root: Path) -> None:
        from nautilus_trader.model.data import Bar, BarType
        from nautilus_trader.persistence.catalog import ParquetDataCatalog
        from nautilus_trader.persistence.wranglers import BarDataWrangler
        from nautilus_trader.test_kit.providers import TestInstrumentProvider

        self.Bar, self.BarType, self.Wrangler = Bar, BarType, BarDataWrangler
        self.instruments = TestInstrumentProvider
        self.catalog = ParquetDataCatalog(str(root))
        self.types: dict[tuple[str, str], str] = {}

    def _bars(self, interval: str, bars: pl.DataFrame) -> list[Any]:
        step = "1-DAY" if interval == "1day" else "1-MINUTE"
        out: list[Any] = []
        for (symbol,), part in bars.partition_by(
            "symbol", as_dict=True, maintain_order=True
        ).items():
            instrument = self.instruments.equity(symbol=str(symbol), venue="XNAS")
            bar_type = self.BarType.from_str(f"{instrument.id}-{step}-LAST-EXTERNAL")
            self.types[(interval, str(symbol))] = str(bar_type)
            frame = part.drop("symbol").to_pandas().set_index("ts")
            out += self.Wrangler(bar_type, instrument).process(frame)
        return out

    def write(self, daily: pl.DataFrame, minute: pl.DataFrame) -> None:
        self.catalog.write_data(self._bars("1day", daily))
        self.catalog.write_data(self._bars("1min", minute))

    def append(self, daily: pl.DataFrame) -> None:
        self.catalog.write_data(self._bars("1day", daily))

    def _query(self, names: list[str], lo: datetime, hi: datetime) -> int:
        found = self.catalog.bars(bar_types=names, start=lo, end=hi - timedelta(microseconds=1))
        return len(found)

    def _all(self, interval: str) -> list[str]:
        return [t for (i, _), t in self.types.items() if i == interval]

    def r1(self, symbol: str) -> int:
        lo, hi = utc(date(YEAR, 1, 1)), utc(date(YEAR + 1, 1, 1))
        return self._query([self.types[("1day", symbol)]], lo, hi)

    def r2(self, start: date, end: date) -> int:
        return self._query(self._all("1day"), utc(start), utc(end) + timedelta(days=1))

    def r3(self, symbol: str) -> int:
        lo, hi = MINUTE_MONTH
        return self._query([self.types[("1min", symbol)]], utc(lo), utc(hi) + timedelta(days=1))

    def r4(self, day: date) -> int:
        return self._query(self._all("1min"), utc(day), utc(day) + timedelta(days=1))


PEERS: dict[str, Callable[[Path], System]] = {
    "pandas": PandasFiles,
    "arcticdb": Arctic,
    "nautilus": Nautilus,
}


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(call: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def one_round(
    make: Callable[[Path], System], root: Path, data: dict[str, Any]
) -> tuple[dict[str, float], dict[str, object]]:
    """Every figure of one system in one round, and the rows its reads returned."""
    system = make(root)
    out: dict[str, float] = {}
    out["write"], _ = timed(lambda: system.write(data["daily"], data["minute"]))
    out["append"], _ = timed(lambda: system.append(data["next"]))
    rows: dict[str, object] = {}
    picks = data["picks"]
    cases: dict[str, list[Callable[[], object]]] = {
        "R1_daily_symbol_year": [lambda s=s: system.r1(s) for s in picks["daily"]],
        "R2_daily_all_month": [lambda: system.r2(date(YEAR, 6, 1), date(YEAR, 6, 30))] * READS,
        "R3_minute_symbol_month": [lambda s=s: system.r3(s) for s in picks["minute"]],
        "R4_minute_all_day": [lambda: system.r4(date(YEAR, 6, 12))] * READS,
    }
    for name, calls in cases.items():
        calls[0]()  # warm-up: imports, caches
        times = []
        for call in calls:
            t, rows[name] = timed(call)
            times.append(t)
        out[name] = statistics.median(times)
    out["disk_bytes"] = float(disk_bytes(root))
    return out, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer symbols, for CI")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 3)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    n_daily, n_minute = (50, 5) if args.quick else (483, 40)
    days = sessions()
    daily_names = [f"S{i:04d}" for i in range(n_daily)]
    minute_names = [f"M{i:03d}" for i in range(n_minute)]
    june = [d for d in days if d.month == 6][:20]
    data = {
        "daily": daily_bars(daily_names, days),
        "minute": minute_bars(minute_names, june),
        "next": daily_bars(daily_names, [date(YEAR + 1, 1, 2)], seed=3),
        "picks": {
            "daily": [daily_names[i * n_daily // READS] for i in range(READS)],
            "minute": [minute_names[i * n_minute // READS] for i in range(READS)],
        },
    }
    systems: dict[str, Callable[[Path], System]] = {"barlake": Barlake}
    skipped: dict[str, str] = {}
    base = Path(tempfile.mkdtemp(prefix="barlake-peers-"))
    for name, make in PEERS.items():
        try:
            make(base / f"probe-{name}")
            systems[name] = make
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name}); pip install -e '.[peers]'"
    results: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    counts: dict[str, dict[str, object]] = {}
    try:
        names = list(systems)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                root = base / f"{name}-{r}"
                figures, counts[name] = one_round(systems[name], root, data)
                results[name].append(figures)
                shutil.rmtree(root, ignore_errors=True)
            if not args.json:
                print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    medians = {
        name: {k: statistics.median(f[k] for f in rs) for k in rs[0]}
        for name, rs in results.items()
    }
    out = []
    for figure in medians["barlake"]:
        peers = {n: m[figure] for n, m in medians.items() if n != "barlake"}
        best = min(peers, key=lambda n: peers[n]) if peers else None
        ours = medians["barlake"][figure]
        out.append(
            {
                "name": figure,
                "barlake_s": round(ours, 6),
                "best_peer": best,
                "best_peer_s": round(peers[best], 6) if best else None,
                "ratio": round(ours / peers[best], 3) if best and peers[best] else None,
                "all": {n: round(m[figure], 6) for n, m in medians.items()},
            }
        )
    report = {
        "figures": out,
        "skipped": skipped,
        "rounds": rounds,
        "bars": {"daily": data["daily"].height, "minute": data["minute"].height},
        "rows_read": counts,
    }
    print(json.dumps(report, indent=None if args.json else 2, default=str))


if __name__ == "__main__":
    main()
