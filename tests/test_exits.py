"""The exit-code table: every error class has its row, rows never shadow each other, and the
CLI exits with the row's code, with or without ``--verbose``."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from barlake import errors
from barlake.cli import cli
from barlake.cli.exits import EXIT_CODES, exit_code, handles_errors
from barlake.cli.state import State

LAKE = str(Path(sys.executable).with_name("lake"))

#: README.md's table: 1 finished but failures remain; 2 usage, config or policy; 3 provider or
#: authentication; 4 storage or lock; 130 interrupted.
EXPECTED = {
    errors.LakeError: 1,
    errors.UsageError: 2,
    errors.ConfigError: 2,
    errors.UnknownSymbolError: 2,
    errors.ProviderError: 3,
    errors.AuthError: 3,
    errors.RateLimitError: 3,
    errors.TransientError: 3,
    errors.PermanentError: 3,
    errors.UnknownAtProviderError: 3,
    errors.ValidationError: 1,
    errors.StorageError: 4,
    errors.LockError: 4,
    errors.FileSystemError: 4,
    errors.Interrupted: 130,
}


def error_classes() -> list[type[errors.LakeError]]:
    return [
        kind
        for _, kind in inspect.getmembers(errors, inspect.isclass)
        if issubclass(kind, errors.LakeError) and kind.__module__ == errors.__name__
    ]


def test_every_error_class_has_its_own_row():
    rows = [kind for kind, _ in EXIT_CODES]
    assert sorted(rows, key=str) == sorted(error_classes(), key=str)
    assert len(rows) == len(set(rows))


def test_rows_go_from_most_to_least_specific():
    rows = [kind for kind, _ in EXIT_CODES]
    for i, later in enumerate(rows):
        for earlier in rows[:i]:
            assert not issubclass(later, earlier), f"{earlier.__name__} shadows {later.__name__}"


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.__name__)
def test_each_error_maps_to_the_documented_code(kind):
    assert exit_code(kind("boom")) == EXPECTED[kind]


def test_errors_carry_no_exit_codes_of_their_own():
    for kind in error_classes():
        assert not hasattr(kind, "exit_code"), kind.__name__


def raising(error: errors.LakeError) -> click.Group:
    """A root like ``lake``'s (global ``--verbose``) with one command that raises ``error``."""

    @click.group()
    @click.option("--verbose", is_flag=True)
    @click.pass_context
    def root(ctx: click.Context, verbose: bool) -> None:
        ctx.obj = State(Path("lake"), quiet=False, verbose=verbose)

    @root.command()
    @handles_errors
    def boom() -> None:
        raise error

    return root


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.__name__)
def test_the_cli_exits_with_the_table_code(kind, verbose):
    args = ["--verbose", "boom"] if verbose else ["boom"]
    result = CliRunner().invoke(raising(kind("it broke")), args)
    assert result.exit_code == EXPECTED[kind]
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1] == "error: it broke"
    if verbose:
        assert lines[0] == "Traceback (most recent call last):"
        assert f"barlake.errors.{kind.__name__}: it broke" in lines
    else:
        assert len(lines) == 1


def test_verbose_prints_the_traceback_and_keeps_the_exit_code(tmp_path):
    nowhere = str(tmp_path / "nowhere")
    quiet = CliRunner().invoke(cli, ["--lake", nowhere, "symbols", "list"])
    loud = CliRunner().invoke(cli, ["--lake", nowhere, "--verbose", "symbols", "list"])
    assert quiet.exit_code == loud.exit_code == 2
    assert loud.stderr.startswith("Traceback (most recent call last):\n")
    assert "barlake.errors.UsageError: no lake at" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.strip()


def test_the_executable_keeps_the_exit_code_with_verbose(tmp_path):
    proc = subprocess.run(
        [LAKE, "--lake", str(tmp_path / "nowhere"), "-v", "symbols", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback (most recent call last):" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: no lake at")
