"""Shared fixtures: an isolated home for every test so no real config or database is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

# The real Redis server of the Redis ledger's tests (tests/traffic/redis_fixture.py).
pytest_plugins = ["tests.traffic.redis_fixture"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for name in ("BMCTL_TOKEN", "BMCTL_MARKET", "BMCTL_ENV", "BMCTL_BASE_URL", "BMCTL_DB",
                 "BMCTL_CONFIG", "BMCTL_USER_AGENT", "BMCTL_BUDGET_URL", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home
