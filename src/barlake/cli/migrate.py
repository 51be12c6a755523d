"""``lake migrate``: move a laptop lake into team mode (its catalog into PostgreSQL, its bar
files into an S3 bucket), verified table by table and file by file."""

from __future__ import annotations

import click

from barlake.catalog import without_password
from barlake.cli.exits import handles_errors
from barlake.cli.output import emit_json
from barlake.cli.state import State


@click.command()
@click.option(
    "--catalog",
    metavar="postgresql://USER@HOST:PORT/DB",
    help="Where the catalog goes: an empty PostgreSQL database.",
)
@click.option(
    "--storage",
    "url",
    metavar="s3://BUCKET/PREFIX",
    help="Where the bars go: an empty prefix of a bucket.",
)
@click.option("--endpoint-url", help="An S3-compatible server instead of AWS (MinIO, Ceph, ...).")
@click.option("--region", help="The bucket's region (default: AWS_REGION, else us-east-1).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def migrate(
    state: State,
    /,
    catalog: str | None,
    url: str | None,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Move the lake's catalog into PostgreSQL, its bars into S3, verified.

    Either or both: --catalog, --storage.

    Every catalog table is copied and read back (rows and SHA-256) inside one transaction;
    every Parquet file is copied and read back (rows and SHA-256). Only then does lake.yaml get
    its catalog and storage sections, without the database's password (give it in PGPASSWORD,
    ~/.pgpass or LAKE_CATALOG_URL). S3 credentials come from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY. The source is left as it was (delete catalog.duckdb and bars/ once
    satisfied); on a failure nothing the lake reads has changed.
    """
    moved = state.lake().migrate(
        catalog=catalog, storage=url, endpoint_url=endpoint_url, region=region
    )
    shown = without_password(catalog)[0] if catalog else None
    if as_json:
        emit_json({**moved.to_dict(), "catalog_url": shown, "storage_url": url})
        return
    if moved.catalog is not None:
        state.say(
            f"{len(moved.catalog.tables)} catalog tables ({moved.catalog.rows} rows) copied to "
            f"{shown} and verified; the lake now keeps its catalog there"
            + (" (its password is not in lake.yaml)" if without_password(catalog or "")[1] else "")
        )
    if moved.storage is not None:
        state.say(
            f"{len(moved.storage.files)} files ({moved.storage.rows} rows, {moved.storage.bytes} "
            f"bytes) copied to {url} and verified; the lake now keeps its bars there (the local "
            "bars/ can go)"
        )
