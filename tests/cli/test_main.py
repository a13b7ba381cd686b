"""The CLI skeleton: version, help everywhere, global options, error mapping, config, logs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer

from bmctl import __version__
from bmctl.cli.main import COMMANDS, app, hoist_global_options
from tests.cli.helpers import invoke


def all_commands() -> list[list[str]]:
    """Every command path of the app (the root ``[]`` and groups included)."""
    from tests.test_docs import every_command_path

    return every_command_path()


def test_the_command_table_matches_every_command_s_own_help() -> None:
    root = typer.main.get_command(app)
    assert len(all_commands()) == 23
    for name, (_, _, short) in COMMANDS.items():
        command = root.get_command(None, name)
        assert command is not None, name
        own = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
        assert own.startswith(short.rstrip(".")), (name, own, short)


def test_version_and_help_import_no_command_module() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['bmctl', '--help']\n"
            "from bmctl.cli.entry import run\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "loaded = [m for m in sys.modules if m.startswith('bmctl.cli.') and m not in "
            "('bmctl.cli.entry', 'bmctl.cli.main', 'bmctl.cli.env', 'bmctl.cli.clicklib')]\n"
            "heavy = [m for m in ('requests', 'rich', 'sqlite_utils', 'sqlite3') if m in sys.modules]\n"
            "print(loaded, heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().endswith("[] []"), done.stderr
    version = subprocess.run([sys.executable, "-m", "bmctl", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"bmctl {__version__}"


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bmctl {__version__}"


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "bmctl")
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    result = invoke([*path, "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "Example" in result.stdout or "example" in result.stdout


def test_hoisting_moves_global_options_in_front() -> None:
    assert hoist_global_options(["logs", "stats", "--format", "json", "-v"]) == [
        "--format", "json", "-v", "logs", "stats",
    ]
    assert hoist_global_options(["--db", "x.db", "logs", "--format=csv", "-n", "3"]) == [
        "--db", "x.db", "--format=csv", "logs", "-n", "3",
    ]
    assert hoist_global_options(["probe", "-", "--", "--format"]) == ["probe", "-", "--", "--format"]


def test_unknown_format_is_one_line_and_exit_2() -> None:
    result = invoke(["logs", "stats", "--format", "xml"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown format 'xml'" in result.stderr


def test_malformed_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("market = [\n")
    result = invoke(["--config", str(bad), "config", "show"])
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


def test_unknown_option_is_exit_2_without_traceback() -> None:
    result = invoke(["logs", "stats", "--bogus"])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_config_init_show_path(isolated_home: Path) -> None:
    result = invoke(["config", "path"])
    assert result.exit_code == 0
    target = Path(result.stdout.strip())
    assert target == isolated_home / ".config" / "bmctl" / "bmctl.toml"
    assert not target.exists()
    result = invoke(["config", "init", "--with-token"], env={"BMCTL_TOKEN": "tok-123"})
    assert result.exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "tok-123" not in result.stdout + result.stderr
    again = invoke(["config", "init"])
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert invoke(["config", "path"]).stdout.strip() == str(target)
    shown = invoke(["config", "show", "--format", "json"])
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert data["token"] == "***"
    assert "tok-123" not in shown.stdout
    assert data["limits"]["competitors"] == {"limit": 2, "window": 1.0, "penalty": 10.0}


def test_logs_commands_work_on_a_fresh_machine(isolated_home: Path) -> None:
    stats = invoke(["logs", "stats", "--format", "json"])
    assert stats.exit_code == 0, stats.stderr
    assert isinstance(json.loads(stats.stdout), list)
    listed = invoke(["logs", "--format", "json"])
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    path = invoke(["logs", "path"])
    assert path.stdout.strip() == str(isolated_home / ".local" / "share" / "bmctl" / "bmctl.db")
    runs = invoke(["logs", "runs", "--format", "csv"])
    assert runs.exit_code == 0


def test_bad_since_is_exit_2() -> None:
    result = invoke(["logs", "list", "--since", "yesterday-ish"])
    assert result.exit_code == 2
    assert "yesterday-ish" in result.stderr


def test_negative_prices_reach_the_price_check_not_the_option_parser() -> None:
    assert hoist_global_options(["update-price", "ID", "-5", "--dry-run"]) == [
        "update-price", "ID", "--dry-run", "--", "-5",
    ]
    assert hoist_global_options(["logs", "--limit", "-1"]) == ["logs", "--limit", "-1"]
    result = invoke(["update-price", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "-5"])
    assert result.exit_code == 2
    assert "greater than zero" in result.stderr


@pytest.mark.parametrize(("args", "shown"), [
    (["--listing", "not-a-uuid"], "not-a-uuid"),
    (["--bucket", "nonesuch"], "nonesuch"),
    (["--run", "yesterday"], "yesterday"),
])
def test_logs_list_filters_are_validated(isolated_home: Path, args: list[str], shown: str) -> None:
    result = invoke(["logs", "list", *args])
    assert result.exit_code == 2
    assert shown in result.stderr
    good = invoke(["logs", "list", "--bucket", "global", "--listing",
                   "3FA85F64-5717-4562-B3FC-2C963F66AFA6", "--format", "json"])
    assert good.exit_code == 0, good.stderr



def test_deadline_without_a_unit_is_exit_2_naming_it(isolated_home: Path) -> None:
    result = invoke(["probe", "--all", "--deadline", "10", "--dry-run"])
    assert result.exit_code == 2
    assert "'10'" in result.stderr and "--deadline" in result.stderr


def _leave_an_open_probe(home: Path) -> None:
    """A killed run's open probe in the journal of the default database under ``home``."""
    from bmctl.api.money import Money
    from bmctl.pricing.journal import Journal
    from bmctl.store.db import open_database

    db = open_database(home / ".local" / "share" / "bmctl" / "bmctl.db")
    journal = Journal(db, "killed-run", lambda: 1_800_000_000.0)
    probe = journal.open_probe(listing_id="3fa85f64-5717-4562-b3fc-2c963f66afa6", market="fr-fr",
                               original_price=Money.parse("100.00", "EUR"), floor=None, ceiling=None)
    journal.update(probe, current_price="98.00", state="dip")


def test_recover_with_nothing_open_needs_no_token(isolated_home: Path) -> None:
    result = invoke(["recover", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [] and "nothing to recover" in result.stderr


def test_recover_dry_run_lists_open_probes_without_a_token(isolated_home: Path) -> None:
    _leave_an_open_probe(isolated_home)
    result = invoke(["recover", "--dry-run", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert {k: row[k] for k in ("listing_id", "market", "original_price", "current_price", "state",
                                "run_id")} == {
        "listing_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "market": "fr-fr",
        "original_price": "100.00", "current_price": "98.00", "state": "dip", "run_id": "killed-run"}
    still = invoke(["recover"])  # something to put back: now the token is needed
    assert still.exit_code == 2 and "no API token" in still.stderr


def test_config_show_says_where_each_value_came_from(isolated_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('market = "de-de"\ncompany = "Acme Corp"\nemail = "ops@acme.test"\n'
                      '[probe]\nsettle = 3.0\n[limits.global]\nlimit = 5\n')
    config.chmod(0o600)
    shown = invoke(["--config", str(config), "--lock-timeout", "2", "config", "show", "--format", "json"],
                   env={"BMCTL_TOKEN": "tok-123", "BMCTL_ENV": "preprod"})
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    sources = data["sources"]
    assert sources["market"] == f"file {config}" and sources["probe.settle"] == f"file {config}"
    assert sources["limits.global.limit"] == f"file {config}"
    assert sources["limits.global.window"] == "default" and sources["timeout"] == "default"
    assert sources["token"] == "env BMCTL_TOKEN" and sources["env"] == "env BMCTL_ENV"
    assert sources["lock_timeout"] == "option --lock-timeout"
    assert data["user_agent"] == "BM-Acme_Corp-bmctl;ops@acme.test"
    assert "tok-123" not in shown.stdout and data["token"] == "***"
    assert "warning" not in shown.stderr
    rows = invoke(["--config", str(config), "config", "show", "--format", "csv"],
                  env={"BMCTL_TOKEN": "tok-123"})
    assert rows.exit_code == 0, rows.stderr
    lines = rows.stdout.splitlines()
    assert lines[0] == "key,value,source" and "token,***,env BMCTL_TOKEN" in lines
    assert f"market,de-de,file {config}" in lines and "tok-123" not in rows.stdout


def test_config_show_warns_of_a_user_agent_back_market_would_refuse(isolated_home: Path) -> None:
    shown = invoke(["config", "show", "--format", "json"])
    assert shown.exit_code == 0
    assert "User-Agent" in shown.stderr and "company and email" in shown.stderr
    assert json.loads(shown.stdout)["sources"]["user_agent"] == "built from company and email"
