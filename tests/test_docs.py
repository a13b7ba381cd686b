"""docs/REFERENCE.md and the CLI agree (in the spirit of sqlite-utils' test_docs.py): every
command has its section, every section names a real command, every option of a command is in
its section, every global option is in the global table, and the README names every command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from bmctl.cli.main import app

REPO = Path(__file__).resolve().parents[1]
REFERENCE = (REPO / "docs" / "REFERENCE.md").read_text(encoding="utf-8")


def leaf_commands() -> dict[str, Any]:
    """``"logs stats" -> click command`` for every runnable command (groups' leaves)."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        if isinstance(command, TyperGroup):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


def sections() -> dict[str, str]:
    """``"logs stats" -> its text`` for every ``### bmctl ...`` heading of the reference."""
    parts = re.split(r"^### bmctl (.+)$", REFERENCE, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def long_options(command: Any) -> list[str]:
    names = []
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--") and opt != "--help":
                names.append(opt)
    return names


def test_every_command_has_a_section_and_every_section_a_command() -> None:
    assert set(sections()) == set(leaf_commands())


@pytest.mark.parametrize("name", sorted(leaf_commands()))
def test_every_option_of_a_command_is_in_its_section(name: str) -> None:
    text = sections()[name]
    missing = [opt for opt in long_options(leaf_commands()[name]) if opt not in text]
    assert missing == [], f"bmctl {name}: {missing} not in docs/REFERENCE.md"


def test_every_global_option_is_in_the_global_table() -> None:
    table = REFERENCE.split("## Global options", 1)[1].split("## Commands", 1)[0]
    root = typer.main.get_command(app)
    missing = [opt for opt in long_options(root) if f"`{opt}" not in table]
    assert missing == []


def test_the_readme_names_every_command_group() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    top = {name.split()[0] for name in leaf_commands()}
    missing = [name for name in sorted(top) if f"bmctl {name}" not in readme]
    assert missing == [], f"README.md never mentions: {missing}"


def test_every_exit_code_is_documented() -> None:
    from bmctl.errors import ExitCode

    table = REFERENCE.split("## Exit codes", 1)[1].split("##", 1)[0]
    assert [int(c) for c in re.findall(r"^\| (\d+) \|", table, flags=re.M)] == [int(c) for c in ExitCode]


def every_command_path() -> list[list[str]]:
    """Every command path, groups and the root included (``[]``, ``["logs"]``, ``["logs", "list"]``)."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, TyperGroup):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


# What Typer shows when a value has no word: `<str>`, `<int range>`, `<list[str]>`, `x>=1`.
PYTHON_TYPE = re.compile(r"<(str|int|float|bool|path|list|choice|datetime|uuid)\b|list\[|range>|\bx[<>]=|<=x")


@pytest.mark.parametrize("path", [" ".join(p) for p in every_command_path()])
@pytest.mark.parametrize("columns", ["80", "120"])
def test_help_shows_words_never_python_types(path: str, columns: str) -> None:
    from tests.cli.helpers import invoke

    result = invoke([*path.split(), "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.stderr
    typed = [line for line in result.stdout.splitlines() if PYTHON_TYPE.search(line)]
    assert typed == [], f"bmctl {path} --help: {typed}"
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
