"""The catalog's lease of a name: held against every other process of the catalog while its
block runs, let go when the block ends or its process dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from barlake.catalog.embedded import Catalog
from barlake.catalog.postgres import PostgresCatalog


def test_a_database_catalogs_lease_is_held_by_one_holder_at_a_time(postgres_url: str) -> None:
    mine, theirs = PostgresCatalog(postgres_url), PostgresCatalog(postgres_url)
    with mine.lease("follow:alpaca") as held:
        assert held
        with theirs.lease("follow:alpaca") as second:
            assert not second  # another holds it
        with theirs.lease("follow:polygon") as other:
            assert other  # another name is another lease
    with theirs.lease("follow:alpaca") as after:
        assert after  # let go with its block


def test_a_lease_goes_with_its_dead_process(postgres_url: str) -> None:
    holder = textwrap.dedent(
        f"""
        import sys, time
        from barlake.catalog.postgres import PostgresCatalog
        with PostgresCatalog({postgres_url!r}).lease("follow:alpaca") as held:
            print("held" if held else "refused", flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        mine = PostgresCatalog(postgres_url)
        with mine.lease("follow:alpaca") as held:
            assert not held
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30  # the server notices the closed socket at once
        while True:
            with mine.lease("follow:alpaca") as held:
                if held:
                    break
            assert time.monotonic() < deadline, "the dead holder's lease was never let go"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_catalog_file_grants_its_lease(tmp_path: Path) -> None:
    """A catalog file serves one machine: its workers' file locks decide, the lease does not."""
    from barlake.lake import Lake

    lake = Lake.init(tmp_path / "lake")
    assert isinstance(lake.catalog, Catalog)
    with lake.catalog.lease("follow:demo") as held, lake.catalog.lease("follow:demo") as again:
        assert held and again
