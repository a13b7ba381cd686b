"""Shell completion: the scripts, their installation, and the answers a shell gets from bmctl
(commands, options, listing and run ids from the local database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from bmctl.cli.completion import completion_script
from bmctl.cli.main import app
from tests.cli.helpers import invoke

A = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
B = "3fa85f64-0000-4562-b3fc-2c963f66afa6"
C = "c0ffee00-5717-4562-b3fc-2c963f66afa6"  # only in the request log
D = "d00d0000-5717-4562-b3fc-2c963f66afa6"  # only in a probe


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A bmctl database whose price changes, probes and request log name known listings."""
    from bmctl.store.db import open_database

    path = tmp_path / "known.db"
    db = open_database(path)
    db.conn.execute("insert into price_changes (listing_id, ts) values (?, 't'), (?, 't'), (?, 't')", (A, B, A))
    db.conn.execute("insert into probes (listing_id) values (?)", (D,))
    db.conn.execute("insert into rate_limit_logs (ts, listing_id) values ('t', ?), ('t', null)", (C,))
    db.conn.execute("insert into runs (id, started_at) values ('run-old', '2026-01-01'), ('run-new', '2026-02-01')")
    db.conn.commit()
    db.conn.close()
    return path


def ask(words: str, env: dict[str, str] | None = None, instruction: str = "bash_complete") -> tuple[list[str], int]:
    """What bmctl answers bash for the command line ``words`` (the cursor at its end)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = subprocess.run(
        [sys.executable, "-m", "bmctl"], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {}), "_BMCTL_COMPLETE": instruction, "COMP_WORDS": words,
             "COMP_CWORD": str(cword)})
    assert done.stderr == ""
    return done.stdout.split(), done.returncode


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_scripts_ask_bmctl_through_its_variable(shell: str) -> None:
    script = completion_script(typer.main.get_command(app), shell)
    assert f"_BMCTL_COMPLETE=complete_{shell}" in script
    assert "bmctl" in script
    shown = invoke(["--show-completion", shell])
    assert shown.exit_code == 0
    assert shown.stdout.strip() == script


def test_show_completion_defaults_to_the_shell_of_SHELL() -> None:
    shown = invoke(["--show-completion"], env={"SHELL": "/usr/bin/zsh"})
    assert shown.exit_code == 0
    assert "compdef" in shown.stdout
    unknown = invoke(["--show-completion"], env={"SHELL": "/bin/sh"})
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("bmctl: error: cannot tell which shell")
    refused = invoke(["--show-completion", "tcsh"])
    assert refused.exit_code == 2
    assert refused.stderr == "bmctl: error: unsupported shell 'tcsh': use one of bash, zsh, fish\n"


@pytest.mark.parametrize(("shell", "where"), [
    ("bash", ".bash_completions/bmctl.sh"), ("zsh", ".zfunc/_bmctl"),
    ("fish", ".config/fish/completions/bmctl.fish")])
def test_install_completion_writes_the_script(isolated_home: Path, shell: str, where: str) -> None:
    result = invoke(["--install-completion", shell])
    assert result.exit_code == 0, result.stderr
    assert "_BMCTL_COMPLETE" in (isolated_home / where).read_text()
    assert str(isolated_home / where) in result.stderr
    assert result.stdout == ""
    if shell == "bash":
        assert f"source '{isolated_home / where}'" in (isolated_home / ".bashrc").read_text()


def test_an_install_that_cannot_write_is_one_error_line(isolated_home: Path) -> None:
    (isolated_home / ".bashrc").mkdir()  # where the line that loads the script should go
    result = invoke(["--install-completion", "bash"])
    assert result.exit_code == 2
    assert result.stderr.startswith("bmctl: error: cannot install bash completion: ")
    assert result.stderr.count("\n") == 1


def test_listing_ids_are_offered_from_the_local_database(database: Path) -> None:
    offered, code = ask(f"bmctl --db {database} history ")
    assert (sorted(offered), code) == (sorted([A, B, C, D]), 0)  # each once
    assert ask(f"bmctl --db {database} history 3fa85f64-0") == ([B], 0)
    assert sorted(ask(f"bmctl probe --db {database} 3fa")[0]) == sorted([A, B])  # --db after
    assert sorted(ask("bmctl update-price 3fa", env={"BMCTL_DB": str(database)})[0]) == sorted([A, B])
    # an id already on the line is not offered again
    assert sorted(ask(f"bmctl --db {database} competitors {A} 3fa")[0]) == [B]
    assert ask(f"bmctl --db {database} logs list --listing c0f") == ([C], 0)
    assert ask(f"bmctl --db {database} logs stats --run run-n") == (["run-new"], 0)


def test_a_config_file_names_the_database(database: Path, tmp_path: Path) -> None:
    config = tmp_path / "bmctl.toml"
    config.write_text(f'db = "{database}"\n')
    assert ask(f"bmctl --config {config} history d00")[0] == [D]


def test_nothing_is_offered_for_an_unknown_prefix_or_without_a_database(database: Path, tmp_path: Path) -> None:
    assert ask(f"bmctl --db {database} history zz") == ([], 0)
    assert ask(f"bmctl --db {tmp_path / 'missing.db'} history ") == ([], 0)
    assert not (tmp_path / "missing.db").exists()  # never created by asking
    assert ask("bmctl history ") == ([], 0)  # the default database does not exist yet
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database")
    assert ask(f"bmctl --db {garbage} history ") == ([], 0)
    broken = tmp_path / "broken.toml"
    broken.write_text("db = [unclosed")
    assert ask(f"bmctl --config {broken} history ") == ([], 0)


def test_command_and_option_names_complete() -> None:
    assert ask("bmctl hi") == (["history"], 0)
    assert ask("bmctl logs ")[0] == ["list", "stats", "runs", "path", "prune"]
    assert ask("bmctl probe --dr") == (["--dry-run"], 0)
    assert ask("bmctl --for") == (["--format"], 0)
    assert "--since" in ask("bmctl logs --")[0]  # logs alone is logs list


def test_zsh_and_fish_requests_are_answered(database: Path) -> None:
    for instruction, expected in (("complete_zsh", f'"{D}"'), ("complete_fish", D)):
        done = subprocess.run(
            [sys.executable, "-m", "bmctl"], capture_output=True, text=True, timeout=60,
            env={**os.environ, "_BMCTL_COMPLETE": instruction, "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                 "_TYPER_COMPLETE_ARGS": f"bmctl --db {database} history d"})
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout


def test_an_unknown_request_is_refused_on_stderr() -> None:
    done = subprocess.run([sys.executable, "-m", "bmctl"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "_BMCTL_COMPLETE": "complete_tcsh"})
    assert (done.returncode, done.stdout) == (2, "")
    assert "unknown completion request" in done.stderr
