"""``lake config show``: the effective settings and retention, and where each value comes from."""

from __future__ import annotations

import json

import click

from barlake.cli.exits import handles_errors
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


@click.group()
def config() -> None:
    """Show the lake's effective configuration and where each value comes from."""


@config.command("show")
@click.option(
    "--policy", help="Show this policy, as --policy would choose it (default: the lake's own)."
)
@click.option("--provider", help="Show the settings a fill with --provider NAME would use.")
@click.option(
    "--parallel", type=click.IntRange(min=1), help="Show them as with a fill's --parallel N."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def config_show(
    state: State, /, policy: str | None, provider: str | None, parallel: int | None, as_json: bool
) -> None:
    """Print every setting and the retention of each layer 0-3 with its source.

    Sources are a flag, an environment variable, lake.yaml (with the key where the roadmap's
    spelling set it), a policy file, or the default. Secrets are printed as ***; whether each
    provider's credentials are set is `lake providers`.
    """
    from barlake.retention.effective import effective

    found = effective(
        state.root,
        policy=policy,
        root_source=state.root_source,
        provider=provider,
        parallel=parallel,
    )
    data = found.to_dict()
    if as_json:
        emit_json(data)
        return
    state.say(f"{found.file}{'' if found.file_exists else ' (absent: defaults)'}")
    settings = [{**s, "value": _shown(s["value"])} for s in data["settings"]]
    emit_table(state, settings, ["key", "value", "source"], empty=None)
    click.echo()
    click.echo(f"policy: {found.policy or 'none'} (from {found.policy_source})")
    if found.rules:
        rows = [
            {**r, "layer": "all" if r["layer"] is None else r["layer"]}
            for r in data["policy"]["rules"]
        ]
        emit_table(state, rows, ["layer", "what", "value", "source"], empty=None)


def _shown(value: object) -> str:
    """A value as lake.yaml would spell it: ``true``, ``null``, ``[]``, numbers and text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
