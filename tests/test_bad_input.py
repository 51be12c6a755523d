"""Bad input, broken lakes and failing disks: one ``error:`` line on stderr naming what was wrong,
the documented exit code, nothing on stdout, no traceback, and every file of the lake unchanged.

Each case runs through ``main``, as the console script does, on a fresh lake holding two symbols
and a year file of daily bars. ``setup`` breaks the lake (or the input) first; the lake's files
are compared byte for byte after the setup and after the command.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from barlake.calendars.calendar import get_calendar
from barlake.cli import main
from barlake.domain.ranges import DateRange
from barlake.errors import LockError, UsageError
from barlake.lake import Lake
from barlake.storage import filesystem
from barlake.storage.lock import FillLock

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """``lake --lake ROOT *args`` after ``setup(ROOT)``: exits ``code`` with one line matching
    ``pattern`` (a regular expression, case-insensitive). ``{root}`` and ``{tmp}`` in an
    argument become the lake and a scratch folder beside it."""

    args: tuple[str, ...]
    code: int
    pattern: str
    setup: Setup | None = None
    #: Fault injected into the file-system seam while the command runs.
    disk_full: bool = False
    #: Whether the catalog may record the attempt (a job that failed).
    catalog_changes: bool = False


# -- ways to break a lake ----------------------------------------------------------------------


def write_bytes(name: str, data: bytes) -> Setup:
    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return setup


def make_dir(name: str) -> Setup:
    def setup(root: Path) -> None:
        (root / name).mkdir(parents=True)

    return setup


def catalog_sql(sql: str) -> Setup:
    def setup(root: Path) -> None:
        con = duckdb.connect(str(root / "catalog.duckdb"))
        try:
            con.execute(sql)
        finally:
            con.close()

    return setup


def foreign_parquet(frame: pl.DataFrame) -> Setup:
    def setup(root: Path) -> None:
        path = root / "bars" / "interval=1day" / "year=2024" / "data.parquet"
        frame.write_parquet(path)

    return setup


def lake_is_a_file(root: Path) -> None:
    shutil.rmtree(root)
    root.write_text("not a lake\n")


BINARY = bytes(range(256)) * 4
FOREIGN = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
STRING_PRICES = pl.DataFrame(
    {
        "symbol": ["AAPL"],
        "ts": [datetime(2024, 6, 3, tzinfo=UTC)],
        "open": ["1.0"],
        "high": ["1.0"],
        "low": ["1.0"],
        "close": ["1.0"],
        "volume": ["1.0"],
    }
)
HUGE = str(10**12)
#: Calendar days from 2024-06-17 to today: a retention that keeps the second half of June 2024.
SINCE_JUNE_17 = (date.today() - date(2024, 6, 17)).days + 1
JUNE = ("--start", "2024-06-03", "--end", "2024-06-28")


def policy_file(text: str) -> Setup:
    return write_bytes("policies/mine.yaml", text.encode())


def layer0(retention: str) -> str:
    """A policy whose layer 0 keeps ``retention`` (``"1day: 30"``)."""
    return f"layers:\n  0:\n    intervals:\n      {retention}\n"


def mine(command: str, pattern: str, policy: str) -> Case:
    """``command --policy mine`` with ``policy`` as the lake's policies/mine.yaml."""
    return Case((command, "--policy", "mine"), 2, rf"mine\.yaml.*{pattern}", policy_file(policy))


CASES: dict[str, Case] = {
    # -- dates, ranges and days
    "gaps bad month": Case(("gaps", "--start", "2024-13-01"), 2, "2024-13-01"),
    "plan not a date": Case(("plan", "--end", "yesterday"), 2, "yesterday.*YYYY-MM-DD"),
    "check impossible day": Case(("check", "--start", "2024-02-30"), 2, "2024-02-30"),
    "report bad date": Case(("report", "{tmp}/r.html", "--end", "soon"), 2, "soon"),
    "fill reversed range": Case(
        ("fill", "--start", "2024-06-10", "--end", "2024-06-03"), 2, "before"
    ),
    "plan reversed range": Case(
        ("plan", "--start", "2024-06-10", "--end", "2024-06-03"), 2, "before"
    ),
    "gaps days and dates": Case(("gaps", "--days", "5", "--start", "2024-06-03"), 2, "--days"),
    "plan zero days": Case(("plan", "--days", "0"), 2, "--days"),
    "plan absurd days": Case(("plan", "--days", HUGE), 2, "--days.*at most"),
    "fill absurd days": Case(("fill", "--days", HUGE), 2, "--days.*at most"),
    "gaps absurd days": Case(("gaps", "--days", HUGE), 2, "--days.*at most"),
    "check absurd days": Case(("check", "--days", HUGE), 2, "--days.*at most"),
    "report absurd days": Case(("report", "{tmp}/r.html", "--days", HUGE), 2, "--days.*at most"),
    "plan year 1": Case(("plan", "--start", "0001-01-01", "--end", "0001-01-31"), 2, "0001"),
    "plan future range": Case(
        ("plan", "--start", "2999-01-04", "--end", "2999-01-29"), 2, "future.*nothing"
    ),
    "fill future range": Case(
        ("fill", "--start", "2999-01-04", "--end", "2999-01-29"), 2, "future.*nothing"
    ),
    "gaps future range": Case(
        ("gaps", "--start", "2999-01-04", "--end", "2999-01-29"), 2, "future.*nothing"
    ),
    # -- intervals
    "plan unknown interval": Case(("plan", "--interval", "2min"), 2, "unknown interval '2min'"),
    "fill empty interval": Case(("fill", "--interval", ""), 2, "--interval.*empty"),
    "gaps comma interval": Case(("gaps", "--interval", ","), 2, "--interval.*empty"),
    "check unknown interval": Case(("check", "--interval", "1week"), 2, "unknown interval"),
    "gaps plot two intervals": Case(
        ("gaps", "--plot", "{tmp}/m.png", "--interval", "1day,1hour"), 2, "one interval"
    ),
    "report unknown interval": Case(("report", "{tmp}/r.html", "--interval", "2h"), 2, "2h"),
    # -- symbols and layers in a selection
    "plan unknown symbol": Case(("plan", "--symbols", "AAPL,ZZZZ"), 2, "ZZZZ"),
    "gaps untracked symbol": Case(("gaps", "ZZZZ"), 2, "ZZZZ: the lake does not track"),
    # a fill tracks a new symbol, but only once the rest of its input is known to be good
    "fill new symbol bad interval": Case(("fill", "ZZZZ", "--interval", "2min"), 2, "2min"),
    "fill new symbol absurd days": Case(("fill", "ZZZZ", "--days", HUGE), 2, "--days"),
    "fill new symbol unknown provider": Case(("fill", "ZZZZ", "--provider", "nope"), 2, "nope"),
    "fill new symbol unknown policy": Case(("fill", "ZZZZ", "--policy", "nope"), 2, "nope"),
    "fill dry run repair": Case(("fill", "--dry-run", "--repair"), 2, "--dry-run"),
    "check unknown symbol": Case(("check", "--symbols", "ZZZZ"), 2, "ZZZZ"),
    "gaps escaping symbol": Case(("gaps", "--symbols", ".."), 2, "could escape"),
    "plan layer out of range": Case(("plan", "--layer", "7"), 2, "--layer"),
    "fill parallel zero": Case(("fill", "--parallel", "0"), 2, "--parallel"),
    "fill parallel above limit": Case(
        ("fill", "--parallel", "100000"), 2, "--parallel 100000.*less than or equal to 1000"
    ),
    "fill unknown provider": Case(("fill", "--provider", "nope"), 2, "nope"),
    "plan unknown provider": Case(("plan", "--provider", "nope"), 2, "nope"),
    "fill events and symbols": Case(("fill", "--events", "--symbols", "AAPL"), 2, "--events"),
    # -- policies
    "plan unknown policy": Case(("plan", "--policy", "nope"), 2, "unknown policy 'nope'"),
    "fill unknown policy": Case(("fill", "--policy", "nope"), 2, "unknown policy 'nope'"),
    "prune unknown policy": Case(("prune", "--policy", "nope"), 2, "unknown policy 'nope'"),
    "layers compute unknown policy": Case(
        ("layers", "compute", "--policy", "nope"), 2, "unknown policy"
    ),
    "policy path missing": Case(("plan", "--policy", "{tmp}/none/p.yaml"), 2, "does not exist"),
    "policy binary": Case(
        ("plan", "--policy", "mine"), 2, r"mine\.yaml", write_bytes("policies/mine.yaml", BINARY)
    ),
    "policy directory": Case(
        ("plan", "--policy", "{root}/policies/mine.yaml"),
        2,
        r"mine\.yaml.*directory",
        make_dir("policies/mine.yaml"),
    ),
    "policy absurd days": mine("plan", "1day.*at most", layer0(f"1day: {HUGE}")),
    "prune absurd policy days": mine("prune", "at most", layer0(f"1day: {HUGE}")),
    "policy unknown key": mine("plan", "layerz", "layerz:\n  0:\n    intervals:\n      1day: 30\n"),
    "policy unknown interval": mine("plan", "2day", layer0("2day: 30")),
    "policy negative days": mine("plan", "1day", layer0("1day: -3")),
    # -- lake.yaml
    "lake.yaml binary": Case(("plan",), 2, r"lake\.yaml", write_bytes("lake.yaml", BINARY)),
    "lake.yaml directory": Case(("plan",), 2, r"lake\.yaml.*directory", make_dir("lake.yaml")),
    "lake.yaml not a mapping": Case(
        ("gaps",), 2, r"lake\.yaml.*mapping", write_bytes("lake.yaml", b"- a\n- b\n")
    ),
    "lake.yaml bad yaml": Case(
        ("fill",), 2, r"lake\.yaml.*YAML", write_bytes("lake.yaml", b"a: [1,\n")
    ),
    "lake.yaml unknown key": Case(
        ("plan",),
        2,
        r"lake\.yaml.*default_provder",
        write_bytes("lake.yaml", b"default_provder: x\n"),
    ),
    "lake.yaml bad value": Case(
        ("fill",),
        2,
        r"lake\.yaml.*parallel_symbols",
        write_bytes("lake.yaml", b"backfill:\n  parallel_symbols: many\n"),
    ),
    "lake.yaml parallel above limit": Case(
        ("fill",),
        2,
        r"lake\.yaml.*parallel_symbols",
        write_bytes("lake.yaml", b"backfill:\n  parallel_symbols: 100000\n"),
    ),
    "lake.yaml unknown provider": Case(
        ("plan",), 2, "nope", write_bytes("lake.yaml", b"default_provider: nope\n")
    ),
    "lake.yaml unknown policy": Case(
        ("plan",), 2, "nope", write_bytes("lake.yaml", b"default_policy: nope\n")
    ),
    "config show binary lake.yaml": Case(
        ("config", "show"), 2, r"lake\.yaml", write_bytes("lake.yaml", BINARY)
    ),
    # -- symbols
    "symbols add empty": Case(("symbols", "add", ""), 2, "no symbol|empty"),
    "symbols add blank": Case(("symbols", "add", " , "), 2, "no symbol|empty"),
    "symbols add zero-width": Case(("symbols", "add", "AA\u200bPL"), 2, "invisible"),
    "symbols add no-break space": Case(("symbols", "add", "AA\u00a0PL"), 2, "invisible"),
    "symbols add bom": Case(("symbols", "add", "\ufeffAAPL"), 2, "invisible"),
    "symbols add dot dot": Case(("symbols", "add", "../../etc"), 2, "could escape"),
    "symbols add inner dot dot": Case(("symbols", "add", "A/../B"), 2, "could escape"),
    "symbols add absolute": Case(("symbols", "add", "/etc"), 2, "could escape"),
    "symbols add trailing slash": Case(("symbols", "add", "AAPL/"), 2, "slash"),
    "symbols add control": Case(("symbols", "add", "AA\x07PL"), 2, "control character"),
    "symbols add too long": Case(("symbols", "add", "A" * 65), 2, "longer than 64"),
    "symbols add delisted before listed": Case(
        ("symbols", "add", "NEWCO", "--listed-on", "2024-06-03", "--delisted-on", "2024-01-02"),
        2,
        "delist.*before",
    ),
    "symbols add bad listing": Case(
        ("symbols", "add", "NEWCO", "--listed-on", "2024-02-30"), 2, "2024-02-30"
    ),
    "symbols add bad calendar": Case(("symbols", "add", "NEWCO", "--calendar", "NOPE"), 2, "NOPE"),
    "symbols import missing": Case(("symbols", "import", "{tmp}/none.csv"), 2, r"none\.csv"),
    "symbols import directory": Case(("symbols", "import", "{tmp}"), 2, "no file at"),
    "layers set out of range": Case(("layers", "set", "AAPL", "--layer", "9"), 2, "--layer"),
    "layers set unknown symbol": Case(("layers", "set", "ZZZZ", "--layer", "1"), 2, "ZZZZ"),
    "layers import missing": Case(("layers", "import", "{tmp}/none.csv"), 2, r"none\.csv"),
    # -- jobs
    "status unknown job": Case(("status", "feedbeef"), 2, "feedbeef"),
    "errors unknown job": Case(("errors", "feedbeef"), 2, "feedbeef"),
    # -- output files
    "report into a missing folder": Case(
        ("report", "{tmp}/nowhere/r.html"), 2, r"nowhere.*does not exist"
    ),
    "plot into a missing folder": Case(
        ("gaps", "--plot", "{tmp}/nowhere/m.png"), 2, r"nowhere.*does not exist"
    ),
    "report onto a folder": Case(("report", "{tmp}"), 2, "directory"),
    # -- the lake itself
    "no lake": Case(("--lake", "{tmp}/none", "symbols", "list"), 2, "lake init"),
    "lake is a file: list": Case(("symbols", "list"), 2, "not a directory", lake_is_a_file),
    "lake is a file: init": Case(("init",), 2, "not a directory", lake_is_a_file),
    "zero-byte catalog": Case(
        ("symbols", "list"), 4, r"catalog\.duckdb.*empty", write_bytes("catalog.duckdb", b"")
    ),
    "zero-byte catalog: init": Case(
        ("init",), 4, r"catalog\.duckdb.*empty", write_bytes("catalog.duckdb", b"")
    ),
    "corrupt catalog": Case(
        ("symbols", "list"),
        4,
        r"catalog\.duckdb.*not a DuckDB file",
        write_bytes("catalog.duckdb", BINARY),
    ),
    "corrupt catalog: fill": Case(
        ("fill",), 4, r"catalog\.duckdb", write_bytes("catalog.duckdb", BINARY)
    ),
    "catalog without meta": Case(
        ("symbols", "list"), 4, r"catalog\.duckdb.*meta", catalog_sql("DROP TABLE meta")
    ),
    "catalog without symbols": Case(
        ("symbols", "list"), 4, r"catalog\.duckdb.*symbols", catalog_sql("DROP TABLE symbols")
    ),
    "catalog without symbols: gaps": Case(
        ("gaps",), 4, r"catalog\.duckdb.*symbols", catalog_sql("DROP TABLE symbols")
    ),
    "catalog newer than the code": Case(
        ("symbols", "list"),
        4,
        "schema version 99.*upgrade barlake",
        catalog_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'"),
    ),
    "catalog newer than the code: init": Case(
        ("init",),
        4,
        "schema version 99.*upgrade barlake",
        catalog_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'"),
    ),
    "catalog schema version not a number": Case(
        ("symbols", "list"),
        4,
        "schema version 'x'",
        catalog_sql("UPDATE meta SET value = 'x' WHERE key = 'schema_version'"),
    ),
    "layout version not a number": Case(
        ("symbols", "list"),
        4,
        "layout version 'two'",
        catalog_sql("UPDATE meta SET value = 'two' WHERE key = 'layout_version'"),
    ),
    "layout version not a number: init": Case(
        ("init",),
        4,
        "layout version 'two'",
        catalog_sql("UPDATE meta SET value = 'two' WHERE key = 'layout_version'"),
    ),
    "layout version newer": Case(
        ("gaps",),
        4,
        "layout version 3.*upgrade barlake",
        catalog_sql("UPDATE meta SET value = '3' WHERE key = 'layout_version'"),
    ),
    "foreign parquet: check": Case(
        ("check", *JUNE), 4, r"year=2024.*data\.parquet.*columns", foreign_parquet(FOREIGN)
    ),
    "foreign parquet: gaps": Case(
        ("gaps", *JUNE), 4, r"year=2024.*data\.parquet.*columns", foreign_parquet(FOREIGN)
    ),
    "foreign parquet: fill": Case(
        ("fill", *JUNE), 4, r"year=2024.*data\.parquet.*columns", foreign_parquet(FOREIGN)
    ),
    "string prices: check": Case(
        ("check", *JUNE), 4, r"data\.parquet.*open.*(string|str)", foreign_parquet(STRING_PRICES)
    ),
    "string prices: fill": Case(
        ("fill", *JUNE), 4, r"data\.parquet.*open.*(string|str)", foreign_parquet(STRING_PRICES)
    ),
    "disk full: fill": Case(
        ("fill", "--start", "2024-07-01", "--end", "2024-07-31"),
        4,
        "file system at /.* has no space left",
        disk_full=True,
        # the job is recorded as failed in the catalog; no bar file changes
        catalog_changes=True,
    ),
    "disk full: prune": Case(
        ("prune", "--policy", "mine"),
        4,
        "file system at /.* has no space left",
        # keeps the second half of June 2024, so the year file is rewritten
        policy_file(layer0(f"1day: {SINCE_JUNE_17}")),
        disk_full=True,
    ),
    # -- other commands
    "emulate unknown provider": Case(("emulate", "nope"), 2, "nope"),
    "unknown command": Case(("fil",), 2, "fill"),
    "unknown option": Case(("gaps", "--symbol", "AAPL"), 2, "--symbol"),
    # -- info, show, export
    "info unknown symbol": Case(("info", "--symbols", "AAPL,ZZZZ"), 2, "unknown symbol.*ZZZZ"),
    "info bad interval": Case(("info", "--interval", "2min"), 2, "unknown interval '2min'"),
    "show unknown symbol": Case(("show", "ZZZZ"), 2, "unknown symbol.*ZZZZ"),
    "show bad interval": Case(("show", "AAPL", "--interval", "2min"), 2, "unknown interval"),
    "show two symbols": Case(("show", "AAPL,MSFT"), 2, "one symbol, got 2"),
    "show negative tail": Case(("show", "AAPL", "--tail", "-1"), 2, "--tail"),
    "export unknown format": Case(
        ("export", "--format", "xlsx", "--out", "{tmp}/bars.xlsx"), 2, "xlsx.*csv"
    ),
    "export no folder": Case(
        ("export", "--format", "csv", "--out", "{tmp}/nowhere/bars.csv"), 2, "folder.*nowhere"
    ),
    "export to a folder": Case(("export", "--out", "{tmp}"), 2, "is a directory"),
    "export unknown symbol": Case(
        ("export", "--symbols", "ZZZZ", "--out", "{tmp}/bars.parquet"), 2, "unknown symbol.*ZZZZ"
    ),
    "export two intervals": Case(
        ("export", "--interval", "1day,1min", "--out", "{tmp}/b.csv"), 2, "unknown interval"
    ),
    "export without out": Case(("export", "--format", "csv"), 2, "--out"),
}


# -- running a case ----------------------------------------------------------------------------


def write_daily(root: Path, symbol: str, first: date, last: date) -> None:
    days = get_calendar("XNYS").sessions_in(DateRange.inclusive(first, last))
    ts = [datetime.fromisoformat(f"{d}T00:00+00:00") for d in days]
    n = len(ts)
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": ts,
            **{c: [1.0] * n for c in ("open", "high", "low", "close", "volume")},
        }
    )
    Lake.open(root).store.write("1day", frame)


@pytest.fixture(scope="module")
def stocked(tmp_path_factory, lake_template):
    root = tmp_path_factory.mktemp("stocked") / "lake"
    shutil.copytree(lake_template, root)
    lake = Lake.open(root)
    lake.add_symbols(["AAPL", "MSFT"], listed_on=date(1990, 1, 2))
    write_daily(root, "AAPL", date(2024, 6, 3), date(2024, 6, 28))
    write_daily(root, "MSFT", date(2024, 6, 3), date(2024, 6, 28))
    return root


def files(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or the file itself) and a digest of its bytes."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def one_line_error(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def disk_full(monkeypatch):
    """Every write through the file-system seam fails as a full disk does."""

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    full = types.SimpleNamespace(**{**vars(os), "replace": no_space, "fsync": no_space})
    monkeypatch.setattr(filesystem, "os", full)


def run(case: Case, root: Path, tmp: Path, capsys, *, verbose: bool = False):
    args = [a.format(root=root, tmp=tmp) for a in case.args]
    head = ["--lake", str(root), *(["--verbose"] if verbose else [])]
    with pytest.raises(SystemExit) as exit_:
        main([*head, *args])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_with_its_exit_code_and_changes_nothing(
    name, stocked, tmp_path, capsys, request
):
    case = CASES[name]
    root = tmp_path / "lake"
    shutil.copytree(stocked, root)
    if case.setup:
        case.setup(root)
    before = files(root)
    if case.disk_full:
        request.getfixturevalue("disk_full")
    code, out, err = run(case, root, tmp_path, capsys)
    assert (code, out) == (case.code, ""), err
    line = one_line_error(err)
    assert re.search(case.pattern, line, re.IGNORECASE), line
    after = files(root)
    if case.catalog_changes:
        before.pop("catalog.duckdb"), after.pop("catalog.duckdb")
    assert after == before


def test_the_table_covers_enough_cases_across_commands():
    commands = {c.args[0] if c.args[0] != "--lake" else c.args[3] for c in CASES.values()}
    assert len(CASES) >= 60
    assert {"init", "symbols", "gaps", "plan", "fill", "check", "prune", "report"} <= commands


VERBOSE = ["no lake", "plan absurd days", "catalog newer than the code", "lake.yaml binary"]


@pytest.mark.parametrize("name", VERBOSE)
def test_verbose_adds_the_traceback_and_keeps_the_line_and_the_code(
    name, stocked, tmp_path, capsys
):
    case = CASES[name]
    root = tmp_path / "lake"
    shutil.copytree(stocked, root)
    if case.setup:
        case.setup(root)
    quiet = run(case, root, tmp_path, capsys)
    loud = run(case, root, tmp_path, capsys, verbose=True)
    assert loud[0] == quiet[0] == case.code
    assert loud[2].startswith("Traceback (most recent call last):\n"), loud[2]
    assert loud[2].splitlines()[-1] == quiet[2].strip()


# -- a read-only lake --------------------------------------------------------------------------
# The tests run as root, and root writes through ``chmod a-w``; so the lake is made read-only
# the way a read-only mount is: bound onto itself and remounted read-only, in a private mount
# namespace of the command's process only (``unshare -m``), which vanishes when it exits.

READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def can_mount_read_only(tmp: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", READ_ONLY, "sh", str(tmp), "true"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


@pytest.mark.parametrize(
    "args",
    [("fill", "--days", "5"), ("prune", "--policy", "default"), ("init",)],
    ids=lambda a: a[0],
)
def test_a_read_only_lake_is_one_line_exit_4_naming_the_file_system(stocked, tmp_path, args):
    root = tmp_path / "lake"
    shutil.copytree(stocked, root)
    if not can_mount_read_only(tmp_path):
        pytest.skip("needs unshare -m and mount (root in a mount namespace)")
    before = files(root)
    command = [sys.executable, "-m", "barlake", "--lake", str(root), *args]
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", READ_ONLY, "sh", str(root), *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (4, ""), proc.stderr
    line = one_line_error(proc.stderr)
    assert f"the file system at {root} is read-only" in line
    assert files(root) == before


# -- inputs the library takes too --------------------------------------------------------------


def test_parallel_above_its_limit_is_refused_by_the_library_as_by_lake_yaml(lake):
    lake.add_symbols("AAPL")
    with pytest.raises(UsageError, match="--parallel 5000: input should be less than or equal"):
        lake.fill("AAPL", days=5, parallel=5000)
    assert lake.catalog.jobs(5).height == 0


def test_a_dry_run_prune_reads_while_a_fill_holds_the_lock(stocked, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(stocked, root)
    lake = Lake.open(root)
    held, release = threading.Event(), threading.Event()

    def another_fill() -> None:  # another thread holds it as another process would
        with FillLock(root):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=another_fill)
    holder.start()
    try:
        assert held.wait(30)
        report = lake.prune("default", dry_run=True)
        with pytest.raises(LockError, match="another `lake fill`"):
            lake.prune("default")
    finally:
        release.set()
        holder.join(30)
    assert report.dry_run
    # the default keeps 365 days of daily bars: June 2024 is older than that
    assert report.to_dict()["removed"] == [
        {"symbol": "AAPL", "interval": "1day", "bars": 19},
        {"symbol": "MSFT", "interval": "1day", "bars": 19},
    ]
