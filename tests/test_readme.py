"""The README's examples stay true: its lake.yaml is a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from barlake.cli import COMMANDS
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


def command_table() -> list[str]:
    """The first cells of the command table of "The command line"."""
    section = README.read_text().split("## The command line", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (`lake [^|]*?)\s*\|", section, re.M)


def test_readme_documents_every_command() -> None:
    text = README.read_text()
    table = " ".join(command_table())
    for name in COMMANDS:
        where = table if name != "serve" else text  # `lake serve` has its own section
        assert f"`lake {name}" in where or f", `lake {name}" in where, name


def test_readme_command_table_shows_the_conventions() -> None:
    table = command_table()
    assert "`lake providers [--json]`" in table
    assert "`lake fill --dry-run`" in table
    assert any(cell.startswith("`lake fill [SYMBOLS]...") for cell in table)
    text = README.read_text()
    assert "`lake --version`" in text
    for shell in ("bash", "zsh", "fish"):
        assert f"_LAKE_COMPLETE={shell}_source lake" in text
