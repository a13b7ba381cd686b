"""Configuration: precedence, validation, the starter file and the example."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from bmctl.config import (
    PricingSettings,
    ProbeSettings,
    Settings,
    default_config_path,
    find_config_file,
    load_settings,
    write_private,
)
from bmctl.config_example import STARTER, starter_config
from bmctl.errors import ConfigError, ExitCode
from bmctl.pricing.costs import CostRow, check_pricing

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.market == "fr-fr"
    assert settings.env == "prod"
    assert settings.limits["competitors"].limit == 2
    assert settings.limits["listing_writes"].window == 3600
    assert settings.probe.settle == 2.0
    assert settings.config_path is None


def test_precedence_file_then_environment_then_options(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'market = "de-de"\nenv = "preprod"\ntimeout = 5\n')
    environ = {"BMCTL_MARKET": "en-gb", "BMCTL_TOKEN": "tok"}
    settings = load_settings(str(config), environ=environ)
    assert (settings.market, settings.env, settings.timeout, settings.token) == ("en-gb", "preprod", 5.0, "tok")
    settings = load_settings(str(config), {"market": "ja-jp", "env": None}, environ=environ)
    assert settings.market == "ja-jp"
    assert settings.env == "preprod"


def test_config_file_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    environ = {"XDG_CONFIG_HOME": str(xdg)}
    assert find_config_file(None, environ) is None
    default_config_path(environ).parent.mkdir(parents=True)
    write(default_config_path(environ), "")
    assert find_config_file(None, environ) == default_config_path(environ)
    write(tmp_path / "bmctl.toml", "")
    assert find_config_file(None, environ) == Path("bmctl.toml")
    environ["BMCTL_CONFIG"] = str(tmp_path / "env.toml")
    assert find_config_file(None, environ) == tmp_path / "env.toml"
    assert find_config_file("explicit.toml", environ) == Path("explicit.toml")


def test_limits_override_any_bucket_and_add_new_ones(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        "[limits.competitors]\nlimit = 1\n[limits.orders]\nlimit = 5\nwindow = 60\n",
    )
    settings = load_settings(str(config), environ={})
    assert settings.limits["competitors"].limit == 1
    assert settings.limits["competitors"].window == 1.0
    assert settings.limits["orders"].limit == 5
    assert settings.limits["global"].limit == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "unknown key 'colour'"),
        ("timeout = 'soon'\n", "'timeout' must be a number"),
        ("max_attempts = 2.5\n", "'max_attempts' must be a whole number"),
        ("[probe]\nsettle = -1\n", "must be greater than zero"),
        ("[probe]\nwobble = 1\n", "[probe]: unknown key 'wobble'"),
        ("[limits.global]\nrate = 3\n", "[limits.global]: unknown key 'rate'"),
        ("[limits.orders]\nlimit = 3\n", "new bucket"),
        ("[limits.global]\nburst = -1\n", "'burst' must be greater than zero"),
        ("jitter = 'x'\n", "'jitter' must be a number"),
        ('market = "xx-yy"\n', "unknown market 'xx-yy'"),
        ('env = "staging"\n', "unknown environment"),
        ("market = \n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert expected in str(caught.value)
    if "market" not in text and "env" not in text:
        assert str(config) in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"), environ={})


def test_world_readable_file_with_token_warns(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'token = "secret-token"\n')
    os.chmod(config, 0o644)
    warnings: list[str] = []
    load_settings(str(config), environ={}, warn=warnings.append)
    assert warnings and "readable by group or others" in warnings[0]
    assert "secret-token" not in warnings[0]
    os.chmod(config, 0o600)
    warnings.clear()
    load_settings(str(config), environ={}, warn=warnings.append)
    assert warnings == []


def test_masked_never_shows_the_token() -> None:
    data = Settings(token="very-secret").masked()
    assert data["token"] == "***"
    assert "very-secret" not in repr(data)


def test_write_private_is_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "bmctl.toml"
    write_private(target, "a = 1\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="already exists"):
        write_private(target, "b = 2\n")
    write_private(target, "b = 2\n", force=True)
    assert target.read_text() == "b = 2\n"


def test_example_file_is_the_starter_and_documents_every_key() -> None:
    example = (REPO / "bmctl.toml.example").read_text(encoding="utf-8")
    assert example == STARTER
    documented = {line.lstrip("# ").split(" =")[0] for line in example.splitlines() if " = " in line}
    top_level = {f.name for f in fields(Settings)} - {"probe", "traffic", "budget", "pricing", "limits",
                                                      "config_path", "sources"}
    assert top_level <= documented
    assert {f.name for f in fields(ProbeSettings)} <= documented
    assert "[pricing]" in example and {f.name for f in fields(PricingSettings)} <= documented
    assert "[traffic]" in example and "max_in_flight" in documented
    assert {"limit", "window", "penalty"} <= documented
    assert "burst" in example and "jitter" in example  # their deprecation is documented
    for name in ("global", "catalog", "competitors", "listing_writes"):
        assert f"[limits.{name}]" in example


def test_example_with_every_key_uncommented_loads_to_the_defaults(tmp_path: Path) -> None:
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in STARTER.splitlines()
    )
    tomllib.loads(uncommented)
    config = write(tmp_path / "full.toml", uncommented)
    loaded = load_settings(str(config), environ={})
    defaults = Settings()
    assert loaded.probe == defaults.probe
    row = CostRow(line=2, cost=Decimal("100"), currency=None)
    rules, default_rules = check_pricing(loaded.pricing), check_pricing(defaults.pricing)
    assert rules.cost_bounds(row, "EUR") == default_rules.cost_bounds(row, "EUR")
    assert (rules.max_step_down, rules.max_step_up, rules.max_margin) == (None, None, None)
    cooldown = ("war_rounds", "war_window", "war_cooldown", "raise_back_after")
    assert [getattr(loaded.pricing, k) for k in cooldown] == [getattr(defaults.pricing, k) for k in cooldown]
    assert dict(loaded.limits) == dict(defaults.limits)
    assert (loaded.market, loaded.timeout) == (defaults.market, defaults.timeout)


def test_starter_with_token_parses() -> None:
    assert tomllib.loads(starter_config('to"k'))["token"] == 'to"k'


def test_burst_and_jitter_are_accepted_with_a_deprecation_warning_and_ignored(tmp_path: Path) -> None:
    config = write(tmp_path / "old.toml", "jitter = 0.2\n[limits.listing_writes]\nburst = 1000\nlimit = 1500\n")
    warnings: list[str] = []
    loaded = load_settings(str(config), environ={}, warn=warnings.append)
    assert loaded.limits["listing_writes"].limit == 1500
    assert not hasattr(loaded, "jitter")
    assert len(warnings) == 2
    assert all("deprecated and ignored" in w for w in warnings)
    assert any("'jitter'" in w for w in warnings) and any("[limits.listing_writes] 'burst'" in w for w in warnings)


@pytest.mark.parametrize("command", [["config", "show"], ["logs", "path"], ["probe", "--dry-run", "--all"]])
def test_a_config_file_that_is_not_utf8_or_not_toml_is_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    from tests.cli.helpers import invoke

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('market = "fr-fr"\ncompany = "Caf\u00e9 Phones"\n'.encode("latin-1"))
    result = invoke(["--config", str(latin1), *command])
    assert result.exit_code == 2
    assert result.stderr == (f"bmctl: error: config file {latin1} is not UTF-8 text: byte 0xe9 at line 2; "
                             "save it as UTF-8\n")
    broken = write(tmp_path / "broken.toml", 'market = "fr-fr"\n[probe\n')
    result = invoke(["--config", str(broken), *command])
    assert result.exit_code == 2
    assert result.stderr == (f"bmctl: error: config file {broken} is not valid TOML: Expected ']' at the end "
                             "of a table declaration (at line 2, column 7)\n")


def test_pricing_durations_and_rounds_are_checked(tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", '[pricing]\nwar_rounds = 0\nwar_cooldown = "1h30m"\n')
    loaded = load_settings(str(good), environ={})
    assert loaded.pricing.war_rounds == 0 and loaded.pricing.seconds("war_cooldown") == 5400.0
    assert loaded.pricing.seconds("raise_back_after") == 86400.0
    for text, expected in (('war_window = "24"', "war_window"), ('raise_back_after = 3', "raise_back_after"),
                           ("war_rounds = -1", "war_rounds"), ('cooldown = "6h"', "unknown key")):
        bad = write(tmp_path / "bad.toml", f"[pricing]\n{text}\n")
        with pytest.raises(ConfigError, match=expected):
            load_settings(str(bad), environ={})
