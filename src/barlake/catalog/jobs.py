"""The jobs and backfill_progress tables of the DuckDB catalog: a job's row, its progress rows,
and telling a live job from one whose owner is gone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from barlake.catalog.repositories import Claim, Ending, Measured
from barlake.errors import NotFoundError
from barlake.liveness import LEASE, abandoned, owner_gone

if TYPE_CHECKING:
    import polars as pl


class Cursor(Protocol):
    """A statement's result, as DuckDB's connection and psycopg's cursor both give it."""

    @property
    def description(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """What the table methods run SQL on: ``?`` placeholders, and frames (or Arrow tables)
    registered by name for the statements after."""

    def execute(self, query: str, parameters: Any = None) -> Cursor: ...
    def register(self, view_name: str, python_object: Any) -> Any: ...


#: The condition that a claim is still ``worker``'s, at ``attempt`` when one is given: a
#: worker whose lease ran out, and whose request was claimed again, can no longer act on it.
HELD = (
    "request_id = ? AND worker = ? AND state = 'claimed' "
    "AND (CAST(? AS INTEGER) IS NULL OR attempts = ?)"
)


def end_claim(
    con: Connection,
    request_id: str,
    worker: str,
    attempt: int | None,
    end: Ending,
    *,
    ring: str = "",
) -> bool:
    """End ``worker``'s claim on a request (claim number ``attempt``, when given) as ``end``
    says, on ``con`` (in its transaction); False when the claim was no longer its own.
    ``ring`` tells idle workers elsewhere when the request went back to the queue."""
    assert end.state in ("done", "failed", "queued")
    released = end.state == "queued"
    retry = datetime.now(UTC) + end.retry_in if end.retry_in is not None else None
    summary = json.dumps(end.summary, default=str) if end.summary is not None else None
    sets = [end.state, end.error, summary, released, released, retry]
    ended = con.execute(
        "UPDATE backfill_requests SET state = ?, error = ?, summary = ?, "
        "finished_at = CASE WHEN ? THEN NULL ELSE now() END, "
        "worker = CASE WHEN ? THEN NULL ELSE worker END, not_before = ? "
        f"WHERE {HELD} RETURNING request_id",
        [*sets, request_id, worker, attempt, attempt],
    ).fetchall()
    if ended and released and ring:
        con.execute(ring)
    return bool(ended)


class Connected(Protocol):
    """What the table methods use of ``Catalog``: its connections and its two reads."""

    def connect(self, *, read_only: bool = False) -> AbstractContextManager[Connection]: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame: ...
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Fenced(Connected, Protocol):
    """A catalog that records a job only while its claim holds: how it locks the claim, and
    how it tells other workers that a request went back to the queue."""

    lock_row: str
    ring: str


class JobsTable:
    """Jobs and their progress rows, over the catalog's connections (mixed into ``Catalog``)."""

    #: How ``record`` locks the claim it checks (PostgreSQL; DuckDB writes one transaction
    #: at a time).
    lock_row = ""

    # -- jobs and progress -------------------------------------------------------------------

    def create_job(self: Connected, job_id: str, progress: pl.DataFrame, **fields: Any) -> None:
        """Insert a running job and its pending progress rows in one transaction."""
        import polars as pl

        cols = ["job_id", "status", *fields]
        marks = ", ".join("?" for _ in cols)
        with self.connect() as con:
            con.execute(
                f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({marks})",
                [job_id, "running", *fields.values()],
            )
            if not progress.is_empty():
                con.register("rows", progress.with_columns(job_id=pl.lit(job_id)).to_arrow())
                names = ", ".join(["job_id", *progress.columns])
                con.execute(f"INSERT INTO backfill_progress ({names}) SELECT {names} FROM rows")

    def record(
        self: Fenced,
        job_id: str,
        *,
        job: dict[str, Any] | None = None,
        progress: pl.DataFrame | None = None,
        ledger: pl.DataFrame | None = None,
        set_aside: pl.DataFrame | None = None,
        claim: Claim | None = None,
        end: Ending | None = None,
    ) -> bool:
        """Update the job row, progress rows (keyed by symbol, interval) and add ledger rows
        and set-aside symbols, all in one transaction, so progress never runs ahead of the
        ledger. Given the ``claim`` the job serves, the ledger and set-aside rows (what
        other jobs plan from) are written only while the request is still this delivery's
        (the row stays locked until the transaction ends): once its lease ran out and the
        request went back to the queue, or to another worker, the worker that serves it now
        records that work instead. A cancelled request keeps what its job fetched.

        Given its ``end`` too, the claim ends in the same transaction (``end_claim``), so a
        request is done exactly when its job's last rows are in; returns False when the
        claim was no longer held (True otherwise)."""
        assert end is None or claim is not None, "an end needs the claim it ends"
        with self.connect() as con:
            shared = True
            if claim is not None:
                held = con.execute(
                    "SELECT request_id FROM backfill_requests "
                    f"WHERE request_id = ? AND worker = ? AND attempts = ?{self.lock_row}",
                    [claim.request_id, claim.worker, claim.attempt],
                ).fetchall()
                shared = bool(held)
            if shared and set_aside is not None and not set_aside.is_empty():
                from barlake.catalog.aside import RECORD

                con.register("aside_rows", set_aside.to_arrow())
                con.execute(RECORD)
            if shared and ledger is not None and not ledger.is_empty():
                con.register("ledger_rows", ledger.to_arrow())
                cols = ", ".join(ledger.columns)
                con.execute(f"INSERT INTO ledger ({cols}) SELECT {cols} FROM ledger_rows")
            if progress is not None and not progress.is_empty():
                con.register("progress_rows", progress.to_arrow())
                sets = ", ".join(
                    f"{c} = u.{c}" for c in progress.columns if c not in {"symbol", "interval"}
                )
                con.execute(
                    f"UPDATE backfill_progress p SET {sets} FROM progress_rows u "
                    "WHERE p.job_id = ? AND p.symbol = u.symbol AND p.interval = u.interval",
                    [job_id],
                )
            if job:
                sets = ", ".join(f"{k} = ?" for k in job)
                con.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", [*job.values(), job_id])
            if claim is not None and end is not None:
                return shared and end_claim(
                    con, claim.request_id, claim.worker, claim.attempt, end, ring=self.ring
                )
        return True

    def find_job(self: Connected, prefix: str | None = None) -> str:
        """The id of the job starting with ``prefix`` (the latest job when None)."""
        if prefix is None:
            found = self.rows("SELECT job_id FROM jobs ORDER BY created_at DESC LIMIT 1")
        else:
            found = self.rows(
                "SELECT job_id FROM jobs WHERE CAST(job_id AS VARCHAR) LIKE ? LIMIT 2",
                [prefix.lower() + "%"],
            )
        if len(found) != 1:
            what = "no jobs yet" if prefix is None else f"no single job matches {prefix!r}"
            msg = f"{what}; list them with `lake jobs`"
            raise NotFoundError(msg)
        return str(found[0]["job_id"])

    # Reads show a running job whose owner is gone as interrupted at once, without writing:
    # the next fill (``interrupt_stale``, under the fill lock) makes it so in the table.

    def job(self: Connected, job_id: str) -> dict[str, Any]:
        """The job's row, ``status`` as it is now (see ``presented_status``)."""
        row = self.rows("SELECT * FROM jobs WHERE job_id = ?", [job_id])[0]
        row["status"] = presented_status(row, datetime.now(UTC))
        return row

    def progress_counts(self: Connected, job_id: str) -> tuple[dict[str, int], int]:
        """How many of a job's progress rows are in each status, and the bars they loaded."""
        found = self.rows(
            "SELECT status, count(*) AS n, CAST(sum(records_loaded) AS BIGINT) AS bars "
            "FROM backfill_progress "
            "WHERE job_id = ? GROUP BY status ORDER BY status",
            [job_id],
        )
        counts: dict[str, int] = {}
        open_as = _open_rows_as(self, job_id)
        for r in found:
            status = open_as.get(r["status"], r["status"])
            counts[status] = counts.get(status, 0) + int(r["n"])
        return dict(sorted(counts.items())), sum(int(r["bars"]) for r in found)

    def jobs(self: Connected, limit: int = 20) -> pl.DataFrame:
        """The latest ``limit`` jobs, newest first, each ``status`` as it is now."""
        import polars as pl

        frame = self.query("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", [limit])
        now = datetime.now(UTC)
        shown = [presented_status(row, now) for row in frame.iter_rows(named=True)]
        return frame.with_columns(pl.Series("status", shown, dtype=pl.String))

    def progress(self: Connected, job_id: str) -> pl.DataFrame:
        """The job's progress rows; those left open by a job whose owner is gone show as
        interrupted."""
        import polars as pl

        frame = self.query(
            "SELECT * FROM backfill_progress WHERE job_id = ? ORDER BY symbol, interval", [job_id]
        )
        open_as = _open_rows_as(self, job_id) if frame.height else {}
        if not open_as:
            return frame
        return frame.with_columns(status=pl.col("status").replace(open_as))

    def totals(self: Connected) -> dict[str, list[dict[str, Any]]]:
        """Sums over every job: requests and bars by provider, failed progress rows by stage."""
        return {
            "providers": self.rows(
                "SELECT coalesce(provider, 'none') AS provider, "
                "CAST(sum(requests_made) AS BIGINT) AS requests, "
                "CAST(sum(bars_written) AS BIGINT) AS bars FROM jobs GROUP BY 1 ORDER BY 1"
            ),
            "errors": self.rows(
                "SELECT coalesce(stage, 'unknown') AS stage, count(*) AS errors "
                "FROM backfill_progress WHERE status = 'failed' GROUP BY 1 ORDER BY 1"
            ),
        }

    def latency(self: Connected, provider: str, jobs: int = 10) -> Measured | None:
        """What the latest ``jobs`` jobs from ``provider`` that measured it say: the mean
        seconds a request took to be answered (weighted by their requests) and a bar to be
        written (by their bars); None when none did."""
        found = self.rows(
            "SELECT sum(latency_ms * requests_made) / sum(requests_made) AS ms, count(*) AS n, "
            "sum(write_us_per_bar * bars_written) / nullif(sum(CASE WHEN write_us_per_bar "
            "IS NULL THEN 0 ELSE bars_written END), 0) AS us "
            "FROM (SELECT latency_ms, requests_made, write_us_per_bar, bars_written FROM jobs "
            "WHERE provider = ? AND latency_ms IS NOT NULL AND requests_made > 0 "
            "ORDER BY created_at DESC LIMIT ?) AS recent",
            [provider, jobs],
        )
        if not found or not found[0]["n"]:
            return None
        row = found[0]
        write = None if row["us"] is None else float(row["us"]) / 1e6
        return Measured(float(row["ms"]) / 1000, write, int(row["n"]))

    def warnings(
        self: Connected, intervals: Sequence[str], names: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The progress rows of ``names`` at ``intervals`` whose latest finished fetch ended
        with a warning (every session came back empty): symbol, interval, start_date,
        end_date, error_message."""
        return self.rows(
            """
            SELECT symbol, interval, start_date, end_date, error_message FROM (
                SELECT p.*, row_number() OVER (
                    PARTITION BY p.symbol, p.interval
                    ORDER BY p.completed_at DESC NULLS LAST, p.id DESC
                ) AS latest
                FROM backfill_progress p
                WHERE p.status IN ('done', 'failed', 'warning')
                  AND p.interval IN (SELECT unnest(?::VARCHAR[]))
                  AND p.symbol IN (SELECT unnest(?::VARCHAR[]))
            ) AS latest_rows WHERE latest = 1 AND status = 'warning' ORDER BY symbol, interval
            """,
            [list(intervals), list(names)],
        )

    def interrupt_stale(self: Connected, *, lease: timedelta = LEASE) -> int:
        """Mark running jobs whose owner is gone (its pid is not alive on its host, or its
        heartbeat is older than ``lease``) and their open progress rows as interrupted; a live
        process's job, on this host or another, is never touched. Returns how many."""
        with self.connect() as con:
            running = con.execute(
                "SELECT job_id, host, pid, coalesce(heartbeat_at, created_at) FROM jobs "
                "WHERE status = 'running'"
            ).fetchall()
            dead = abandoned(running, lease)
            if not dead:
                return 0
            con.execute(
                "UPDATE backfill_progress SET status = 'interrupted' "
                "WHERE status IN ('running', 'pending') AND job_id IN (SELECT unnest(?::UUID[]))",
                [dead],
            )
            con.execute(
                "UPDATE jobs SET status = 'interrupted', finished_at = now() "
                "WHERE job_id IN (SELECT unnest(?::UUID[]))",
                [dead],
            )
        return len(dead)


def presented_status(row: dict[str, Any], now: datetime, lease: timedelta = LEASE) -> str:
    """A job row's status as readers should see it: ``interrupted`` for a running job whose
    owner is gone (``liveness.owner_gone``), even before the table says so."""
    if row["status"] != "running":
        return str(row["status"])
    beat = row.get("heartbeat_at") or row["created_at"]
    gone = owner_gone(row.get("host"), row.get("pid"), beat, now, lease)
    return "interrupted" if gone else "running"


def _open_rows_as(catalog: Connected, job_id: str) -> dict[str, str]:
    """How the open progress rows of a job read: interrupted when the job still runs in the
    table but its owner is gone, as ``interrupt_stale`` will record them."""
    found = catalog.rows("SELECT * FROM jobs WHERE job_id = ?", [job_id])
    if not found or found[0]["status"] != "running":
        return {}
    if presented_status(found[0], datetime.now(UTC)) == "running":
        return {}
    return {"running": "interrupted", "pending": "interrupted"}
