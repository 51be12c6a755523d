"""The README's examples stay true: its lake.yaml is a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from barlake.config import LakeConfig, parse

README = Path(__file__).parent.parent / "README.md"


def test_readme_lake_yaml_example_is_valid() -> None:
    text = README.read_text()
    section = text.split("## Configuration: `lake/lake.yaml`", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    config = parse(LakeConfig, yaml.safe_load(block.group(1)), "README.md")
    assert config.default_policy == "scanner_layers"
    assert config.backfill.tiers["archive"].parallel == 2
    assert config.alerts.webhook_url is None


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [
        line for line in first_block.group(1).splitlines() if line and not line.startswith("#")
    ]
    assert len(commands) == 2
    assert "lake fill" in commands[0] and "--provider demo" in commands[0]
    assert "pytest" in commands[1]


def test_readme_command_table_lists_every_command() -> None:
    """Each top-level command has a row in "The command line", and each row names a command."""
    from barlake.cli import COMMANDS

    section = README.read_text().split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `lake ")]
    named = {m for row in rows for m in re.findall(r"`lake (?:--\S+ \S+ )?([a-z]+)", row)}
    assert set(COMMANDS) - {"serve"} <= named  # `lake serve` has its own section
    assert named <= set(COMMANDS)
