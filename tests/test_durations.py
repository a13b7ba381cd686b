"""Durations as operators write them."""

from __future__ import annotations

import pytest

from bmctl.durations import parse_duration
from bmctl.errors import UsageError


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("2h", 7200),
                                               ("7d", 604800), ("1w", 604800), ("1.5h", 5400)])
def test_good(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5m", "0m"])
def test_bad(text: str) -> None:
    with pytest.raises(UsageError, match="--deadline"):
        parse_duration(text, "--deadline")
