"""``lake migrate``: move a lake's bar files into an S3 bucket, verified file by file."""

from __future__ import annotations

import click

from barlake.cli.exits import handles_errors
from barlake.cli.output import emit_json
from barlake.cli.state import State


@click.command()
@click.option(
    "--storage",
    "url",
    required=True,
    metavar="s3://BUCKET/PREFIX",
    help="Where the bars go: an empty prefix of a bucket.",
)
@click.option("--endpoint-url", help="An S3-compatible server instead of AWS (MinIO, Ceph, ...).")
@click.option("--region", help="The bucket's region (default: AWS_REGION, else us-east-1).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def migrate(
    state: State, /, url: str, endpoint_url: str | None, region: str | None, as_json: bool
) -> None:
    """Move the lake's bar files into an S3 bucket, verified file by file.

    Each Parquet file is copied, read back and compared (rows and SHA-256); only then does
    lake.yaml get its storage section. Credentials come from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY. The local files stay where they were (delete bars/ once satisfied);
    on a failure nothing the lake reads has changed.
    """
    moved = state.lake().move_storage(url, endpoint_url=endpoint_url, region=region)
    if as_json:
        emit_json({**moved.to_dict(), "storage": url})
        return
    state.say(
        f"{len(moved.files)} files ({moved.rows} rows, {moved.bytes} bytes) copied to {url} and "
        f"verified; the lake now keeps its bars there (the local bars/ can go)"
    )
