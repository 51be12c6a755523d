"""``lake providers``: the providers, what each serves, its rate limit and its credentials."""

from __future__ import annotations

import click

from barlake.cli.exits import handles_errors
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def providers(state: State, /, as_json: bool) -> None:
    """List the providers: intervals, request sizes, rate limit, whether credentials are set.

    Rate limits are lake.yaml's (or LAKE_<NAME>_RATE_LIMIT's) where given, else the vendor's
    default; credentials show where they come from, or what to set, never their values.
    """
    from barlake.providers.listing import of_lake

    found = [p.to_dict() for p in of_lake(state.root)]
    if as_json:
        emit_json(found)
        return
    rows = [
        {
            **p,
            "name": f"{p['name']}{' (default)' if p['default'] else ''}",
            "intervals": ",".join(p["intervals"]),
            "rate_limit": f"{p['rate_limit_per_min']:g}/{p['rate_limit_window_s']:g}s "
            f"({p['rate_limit_source']})",
            "credentials": f"{p['credentials']}"
            + (f" ({p['credentials_from']})" if p["credentials_from"] else ""),
            "grouped_daily": "yes" if p["grouped_daily"] else "",
        }
        for p in found
    ]
    columns = ["name", "intervals", "symbols_per_request", "bars_per_page", "grouped_daily"]
    emit_table(state, rows, [*columns, "rate_limit", "credentials"], empty="no providers")
