"""Durations as operators write them."""

from __future__ import annotations

import pytest

from bmctl.durations import parse_duration, parse_since
from bmctl.errors import ExitCode, UsageError

WALL0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30s", 30), ("15m", 900), ("2h", 7200),
                                               ("7d", 604800), ("1w", 604800), ("1.5h", 5400),
                                               ("1h30m", 5400), ("1d12h", 129600), ("2h0m5s", 7205),
                                               (" 1H30M ", 5400)])
def test_good(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5m", "0m", "10", "1.5", "h", "1h30", "30m1h",
                                  "1h1h", "1h 30m", "1h30mx", "m30"])
def test_bad(text: str) -> None:
    with pytest.raises(UsageError, match="--deadline") as info:
        parse_duration(text, "--deadline")
    assert repr(text) in str(info.value) and info.value.exit_code == ExitCode.BAD_INPUT


# --- parse_since (--since, --older-than) ---------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("30s", WALL0 - 30), ("15m", WALL0 - 900), ("2h", WALL0 - 7200), ("7d", WALL0 - 7 * 86400),
    ("1w", WALL0 - 604800), (" 2H ", WALL0 - 7200), ("1.5h", WALL0 - 5400),
    ("1h30m", WALL0 - 5400), ("1d12h", WALL0 - 129600),
    ("2027-01-15", 1_799_971_200.0), ("2027-01-15T08:00", WALL0),
    ("2027-01-15T08:00:00Z", WALL0), ("2027-01-15 09:00:00+01:00", WALL0),
])
def test_parse_since_good(text: str, expected: float) -> None:
    assert parse_since(text, WALL0) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "15", "15x", "-5m", "m", "yesterday", "2027-13-01", "2027-01",
                                  "30m1h", "1h30"])
def test_parse_since_bad(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_since(text, WALL0)
    message = str(info.value)
    assert repr(text) in message and "\n" not in message
    assert info.value.exit_code == ExitCode.BAD_INPUT
