"""A throwaway PostgreSQL cluster, and a new database on it, for tests and benchmarks (the
tests marked ``postgres`` and ``benchmarks/service.py``, ``benchmarks/workers.py``).

``LAKE_TEST_POSTGRES_URL`` names a server to use instead (a superuser's URL, its database one
the tests may create others beside). Otherwise ``initdb`` makes a cluster in a temporary folder
and ``pg_ctl`` starts it on a free loopback port, without fsync (a test's data need not survive
a crash); as root they run as the ``postgres`` user, since PostgreSQL refuses to run as root.
The role ``lake`` may connect without a password; every other role needs its password, so that
a test can see a wrong one refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HBA = """\
local all all trust
host all lake 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def missing() -> str | None:
    """Why no server can be had here, None when one can."""
    if os.environ.get("LAKE_TEST_POSTGRES_URL"):
        return None
    tools = [t for t in ("initdb", "pg_ctl") if shutil.which(t) is None]
    if tools:
        return f"needs PostgreSQL's {' and '.join(tools)} on PATH, or LAKE_TEST_POSTGRES_URL"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
        return "as root, needs runuser and a postgres user to run PostgreSQL as"
    return None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str]) -> None:
    """Run a server tool as the server's user, quietly; CalledProcessError if it fails."""
    subprocess.run(
        _as_server_user(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True
    )


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A running server's superuser URL for the block (stopped and removed after)."""
    given = os.environ.get("LAKE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="barlake-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    folder.chmod(0o700)
    port = _free_port()
    try:
        _run(["initdb", "-D", str(data), "--no-sync", "-A", "trust", "-U", "lake"])
        (data / "pg_hba.conf").write_text(HBA)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        log = folder / "server.log"
        start = ["pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
        _run(start)
        try:
            yield f"postgresql://lake@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_server_user(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


@contextlib.contextmanager
def database(server: str) -> Iterator[str]:
    """A new empty database on ``server`` for the block, dropped after."""
    from barlake.catalog.postgres.engine import POOLS

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin(server, f"CREATE DATABASE {name}")
    url = with_database(server, name)
    try:
        yield url
    finally:
        POOLS.close(url)
        admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
