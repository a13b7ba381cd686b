"""Per-command help: words for values, ranges in words, the global options line; typos in
groups answered with the closest command."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import typer

from bmctl.cli.help import global_options_line, metavar_for, range_in_words
from bmctl.cli.main import app, global_option_names
from tests.cli.helpers import invoke
from tests.test_docs import every_command_path


def help_of(*path: str, columns: str = "80") -> str:
    result = invoke([*path, "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def test_values_are_named_by_what_they_are() -> None:
    probe = help_of("probe")
    assert "Usage: bmctl probe [OPTIONS] [ID]..." in probe
    assert re.search(r"^  ID\.\.\.\s+Listing ids", probe, flags=re.M)
    for option, word in [("--floor", "PRICE"), ("--file", "FILE"), ("--max-raises", "N"),
                         ("--settle", "SECONDS"), ("--step", "PRICE"), ("--deadline", "DURATION")]:
        assert re.search(rf"^  {option} {word}\s", probe, flags=re.M), (option, word)
    logs = help_of("logs", "list")
    for option, word in [("--since", "WHEN"), ("--bucket", "BUCKET"), ("--status", "STATUS"),
                         ("--listing", "ID"), ("--run", "RUN_ID")]:
        assert re.search(rf"^  {option} {word}\s", logs, flags=re.M), (option, word)
    assert re.search(r"-n, --limit N\s+Rows to show\.\s+\[default: 50; at least 1\]", logs)
    assert "Usage: bmctl update-price [OPTIONS] [ID] [PRICE]" in help_of("update-price")
    assert "--port PORT" in help_of("sandbox", "serve")
    root = help_of()
    for option, word in [("--config", "FILE"), ("--market", "MARKET"), ("--db", "PATH"),
                         ("--base-url", "URL"), ("--format", "FORMAT"), ("--env", "ENV"),
                         ("--lock-timeout", "SECONDS")]:
        assert f"{option} {word} " in root, option


def test_global_options_are_named_by_the_same_words_as_everywhere() -> None:
    for param in typer.main.get_command(app).params:
        if param.metavar and not param.is_eager:
            assert param.metavar == metavar_for(param), param.name


def test_ranges_read_as_words() -> None:
    assert range_in_words(1, None) == "at least 1"
    assert range_in_words(0, None) is None  # a count is never negative: no need to say so
    assert range_in_words(0.0, None) is None
    assert range_in_words(0, 65535) == "0 to 65535"
    assert range_in_words(None, 4) == "at most 4"
    assert "0 to 4" in help_of("listings")  # --publication-state


class _Param:
    def __init__(self, name: str, annotation: Any) -> None:
        self.name = name
        self.type_descriptor = type("D", (), {"is_choice": False, "is_path": False,
                                              "annotation": annotation, "choices": None})()


def test_an_undeclared_name_falls_back_on_its_type() -> None:
    assert metavar_for(_Param("retries", int)) == "N"
    assert metavar_for(_Param("ratio", float)) == "NUMBER"
    assert metavar_for(_Param("wait_seconds", float)) == "SECONDS"
    assert metavar_for(_Param("label", str)) == "LABEL"


def global_line(text: str) -> str:
    paragraph = text.rstrip().split("\n\n")[-1]
    return " ".join(line.strip() for line in paragraph.splitlines())


@pytest.mark.parametrize("path", [" ".join(p) for p in every_command_path() if p])
def test_every_command_help_ends_with_the_global_options_it_takes(path: str) -> None:
    with_value, flags = global_option_names(typer.main.get_command(app).params)
    for columns in ("80", "120"):
        text = help_of(*path.split(), columns=columns)
        line = global_line(text)
        assert line.startswith("Global options (before or after the command): "), (path, line)
        assert line.endswith("; see bmctl --help.")
        named = re.findall(r"(?<![\w-])-{1,2}[\w-]+", line.removesuffix("; see bmctl --help."))
        assert sorted(named) == sorted(with_value | flags), line  # each once, all of them
        assert text.count("Global options (") == 1
        assert max(len(row) for row in text.splitlines()) <= 80


def test_the_global_options_line_comes_from_the_declaration() -> None:
    line = global_options_line(typer.main.get_command(app).params)
    assert "--lock-timeout" in line and "-v/--verbose" in line and "-q/--quiet" in line
    listed = line.removesuffix("; see bmctl --help.")
    assert "--version" not in listed and "--help" not in listed and "completion" not in listed


@pytest.mark.parametrize(("args", "suggestion"), [
    (["logs", "lst"], "no such command 'lst' for bmctl logs. Did you mean 'list'?"),
    (["logs", "stat"], "no such command 'stat' for bmctl logs. Did you mean 'stats'?"),
    (["config", "shw"], "no such command 'shw' for bmctl config. Did you mean 'show'?"),
    (["sandbox", "srve"], "no such command 'srve' for bmctl sandbox. Did you mean 'serve'?"),
    (["compettors"], "no such command 'compettors'. Did you mean 'competitors'?"),
    (["--format", "json", "logs", "lst", "-n", "2"], "Did you mean 'list'?"),
])
def test_a_typo_gets_the_closest_command(args: list[str], suggestion: str) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert result.stderr == f"bmctl: error: {suggestion}\n" or suggestion in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_word_far_from_any_command_is_an_error_too() -> None:
    result = invoke(["logs", "3fa85f64-5717-4562-b3fc-2c963f66afa6"])
    assert result.exit_code == 2
    assert result.stderr == ("bmctl: error: no such command '3fa85f64-5717-4562-b3fc-2c963f66afa6' "
                             "for bmctl logs; see bmctl logs --help\n")


def test_logs_alone_or_with_options_still_lists() -> None:
    for args in (["logs", "--format", "json"], ["logs", "--since", "1h", "--format", "json"],
                 ["--format", "json", "logs", "-n", "3"]):
        result = invoke(args)
        assert result.exit_code == 0, (args, result.stderr)
        assert json.loads(result.stdout) == []
    assert "Commands:" in help_of("logs")
