"""``bmctl sandbox serve`` refusals that happen before it serves (exit 2, one line)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli.helpers import invoke


@pytest.mark.parametrize("faults", ["waf=2", "bogus=1", "error", "error=0.6,drop=0.6", "latency=-1"])
def test_bad_faults(faults: str) -> None:
    result = invoke(["sandbox", "serve", "--port", "0", "--faults", faults])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--faults" in lines[0]


def test_bad_seed_files(tmp_path: Path) -> None:
    missing = invoke(["sandbox", "serve", "--port", "0", "--seed", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "bmctl-sandbox-catalogue", "version": 1, "listings": [{"id": 1}]}')
    result = invoke(["sandbox", "serve", "--port", "0", "--seed", str(bad)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = invoke(["sandbox", "serve", "--port", "0", "--seed", str(broken)])
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = invoke(["sandbox", "serve", "--port", str(port)])
    assert result.exit_code == 2
    assert "cannot listen" in result.stderr and str(port) in result.stderr


def test_bad_port_and_settle() -> None:
    assert invoke(["sandbox", "serve", "--port", "70000"]).exit_code == 2
    assert invoke(["sandbox", "serve", "--settle", "-1"]).exit_code == 2


@pytest.mark.parametrize("drift", ["interval=0", "band=1.5", "speed=3", "step=abc", "step=nan", "interval"])
def test_bad_drift(drift: str) -> None:
    result = invoke(["sandbox", "serve", "--port", "0", "--drift", drift])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--drift" in lines[0]


def test_catalogue_prints_the_seed_file_format(tmp_path: Path) -> None:
    from bmctl.sandbox.catalogue import demo_catalogue, generate_catalogue, load_catalogue

    demo = invoke(["sandbox", "catalogue"])
    assert demo.exit_code == 0
    (tmp_path / "demo.json").write_text(demo.stdout)
    assert load_catalogue(tmp_path / "demo.json") == demo_catalogue(7)
    mixed = invoke(["sandbox", "catalogue", "--listings", "5", "--number", "3"])
    (tmp_path / "mixed.json").write_text(mixed.stdout)
    assert load_catalogue(tmp_path / "mixed.json") == generate_catalogue(5, seed=3)
