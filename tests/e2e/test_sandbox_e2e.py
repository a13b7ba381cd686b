"""End to end with real processes: ``bmctl sandbox serve`` in a subprocess on 127.0.0.1, the
everyday commands as subprocesses against it, and the sandbox's raw answers checked against
Back Market's openapi.yml."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.openapi_helpers import validate_request_body, validate_response, validate_schema

AUTH = {"Authorization": "Basic sandbox", "Accept-Language": "fr-fr", "Accept": "application/json",
        "User-Agent": "BM-tests-bmctl;tests@example.com"}
UNKNOWN = "99999999-9999-4999-8999-999999999999"
LISTING = "/ws/listings/{listingId}"
COMPETITORS = "/ws/backbox/v1/competitors/{listingId}"
COMPETITOR_FIELDS = ["listing_id", "market", "currency", "price", "min_price", "price_to_win",
                     "winner_price", "is_winning"]


def bmctl_command() -> list[str]:
    """The installed console script (beside this interpreter first), else ``python -m bmctl``."""
    beside = Path(sys.executable).with_name("bmctl")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("bmctl")
    return [found] if found else [sys.executable, "-m", "bmctl"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCTL_") and k != "NO_COLOR"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    banner: str


def start_server(*args: str, port: int = 0, home: Path) -> Served:
    """``bmctl sandbox serve`` in a subprocess; returns once it says it is listening."""
    process = subprocess.Popen(
        [*bmctl_command(), "sandbox", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"),
                      XDG_DATA_HOME=str(home / "data")),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],  # type: ignore[union-attr]
                     daemon=True).start()
    deadline = time.monotonic() + 15
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return Served(process, match.group(1), line)
    stop_server(process)
    raise AssertionError(f"the sandbox did not start: {''.join(seen)!r}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e-home")
    return path


@pytest.fixture(scope="module")
def cli_server(home: Path) -> Iterator[Served]:
    """The server the CLI subprocesses talk to (only they spend its limits)."""
    served = start_server("--settle", "0", home=home)
    try:
        yield served
    finally:
        stop_server(served.process)


@pytest.fixture(scope="module")
def raw_server(home: Path) -> Iterator[Served]:
    """A second server for direct requests, so that they never spend the CLI's limits."""
    served = start_server("--settle", "0", home=home)
    try:
        yield served
    finally:
        stop_server(served.process)


def _command_env(served: Served, home: Path, token: str, env: dict[str, str]) -> dict[str, str]:
    return clean_env(BMCTL_TOKEN=token, BMCTL_BASE_URL=served.url, BMCTL_DB=str(home / "e2e.db"),
                     HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"),
                     XDG_DATA_HOME=str(home / "data"), **env)


@pytest.fixture(scope="module")
def run(cli_server: Served, home: Path):  # type: ignore[no-untyped-def]
    """Run one bmctl command as a subprocess against the CLI server (one shared database, so
    each run starts from what the previous ones spent)."""

    def invoke(*args: str, token: str = "sandbox", **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([*bmctl_command(), *args], capture_output=True, text=True,
                                timeout=60, env=_command_env(cli_server, home, token, env))
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return invoke


@pytest.fixture(scope="module")
def run_many(cli_server: Served, home: Path):  # type: ignore[no-untyped-def]
    """Run several independent commands at once: [(args, token), ...] -> results in order."""

    def invoke(*commands: tuple[list[str], str]) -> list[subprocess.CompletedProcess]:
        processes = [subprocess.Popen([*bmctl_command(), *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env=_command_env(cli_server, home, token, {}))
                     for args, token in commands]
        results = []
        for (args, _), process in zip(commands, processes):
            out, err = process.communicate(timeout=60)
            assert "Traceback" not in err, err
            results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
        return results

    return invoke


def direct(served: Served) -> requests.Session:
    session = requests.Session()
    session.headers.update(AUTH)
    return session


def first_listing(served: Served, *, winning: bool | None = None) -> dict:
    with direct(served) as s:
        page = s.get(f"{served.url}/ws/listings", params={"page-size": 50}, timeout=5).json()
    for item in page["results"]:
        if item["quantity"] > 0 and item["min_price"] is not None:
            return item
    raise AssertionError("no listing with stock and a floor in the demo catalogue")


# --- the server process ------------------------------------------------------------------------


def test_serve_announces_on_stderr_and_listens_on_loopback(cli_server: Served) -> None:
    assert cli_server.url.startswith("http://127.0.0.1:")
    assert "listings" in cli_server.banner and "Basic sandbox" in cli_server.banner


def test_serve_on_a_chosen_port(home: Path) -> None:
    port = free_port()
    served = start_server("--token", "other", port=port, home=home)
    try:
        assert served.url == f"http://127.0.0.1:{port}"
        r = requests.get(f"{served.url}/ws/listings", headers={**AUTH, "Authorization": "Basic other"},
                         timeout=5)
        assert r.status_code == 200
        r = requests.get(f"{served.url}/ws/listings", headers=AUTH, timeout=5)
        assert r.status_code == 401
    finally:
        stop_server(served.process)


def test_serve_refuses_a_port_in_use(cli_server: Served, home: Path) -> None:
    port = cli_server.url.rsplit(":", 1)[1]
    result = subprocess.run([*bmctl_command(), "sandbox", "serve", "--port", port],
                            capture_output=True, text=True, timeout=30, env=clean_env(HOME=str(home)))
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


# --- commands as subprocesses ------------------------------------------------------------------


def test_competitors(run, cli_server: Served) -> None:  # type: ignore[no-untyped-def]
    listing = first_listing(cli_server)
    result = run("competitors", listing["id"])  # a pipe: json by default
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(list(r) == COMPETITOR_FIELDS for r in rows)
    assert all(re.fullmatch(r"[a-z]{2}-[a-z]{2}", r["market"]) for r in rows)
    assert all(isinstance(r["price"], str) for r in rows)
    assert result.stderr == ""


def test_listings(run, cli_server: Served) -> None:  # type: ignore[no-untyped-def]
    with direct(cli_server) as s:
        count = s.get(f"{cli_server.url}/ws/listings", timeout=5).json()["count"]
    result = run("listings", "--format", "ndjson")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == count > 0
    assert len({r["id"] for r in rows}) == count
    ja = run("--market", "ja-jp", "listings", "--format", "json")
    assert ja.returncode == 0
    assert {r["currency"] for r in json.loads(ja.stdout)} == {"JPY"}


def test_update_price_dry_run_then_for_real(run, run_many, cli_server: Served) -> None:  # type: ignore[no-untyped-def]
    listing = first_listing(cli_server)
    lid, old = listing["id"], listing["price"]
    from decimal import Decimal

    new = str((Decimal(old) * Decimal("0.98")).quantize(Decimal("0.01")))

    dry = run("update-price", lid, new, "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    (row,) = json.loads(dry.stdout)
    assert row["status"] == "dry-run" and row["old_price"] == old and row["new_price"] == new
    with direct(cli_server) as s:
        assert s.get(f"{cli_server.url}/ws/listings/{lid}", timeout=5).json()["price"] == old

    done = run("update-price", lid, new, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["status"] == "updated"
    with direct(cli_server) as s:
        assert s.get(f"{cli_server.url}/ws/listings/{lid}", timeout=5).json()["price"] == new

    history, refused = run_many((["history", lid, "--format", "json"], "sandbox"),
                                (["update-price", lid, str(Decimal(new) * 2), "--format", "json"],
                                 "sandbox"))
    assert history.returncode == 0
    (change,) = json.loads(history.stdout)
    assert (change["old_price"], change["new_price"], change["reason"]) == (old, new, "update")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)[0]["status"] == "refused"


def test_exit_codes_of_failures(run_many, cli_server: Served) -> None:  # type: ignore[no-untyped-def]
    lid = first_listing(cli_server)["id"]
    bad, denied, missing, no_token = run_many(
        (["update-price", lid, "abc"], "sandbox"),
        (["competitors", lid], "wrong"),
        (["competitors", UNKNOWN], "sandbox"),
        (["listings"], ""),
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1
    assert denied.returncode == 3 and "401" in denied.stderr and denied.stdout == ""
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert json.loads(missing.stdout)[0]["listing_id"] == UNKNOWN
    assert no_token.returncode == 2 and "token" in no_token.stderr and no_token.stdout == ""


def test_table_on_a_terminal_and_no_color(cli_server: Served, home: Path) -> None:
    pty = pytest.importorskip("pty")
    listing = first_listing(cli_server)

    def on_terminal(**env: str) -> str:
        primary, secondary = pty.openpty()
        try:
            process = subprocess.Popen(
                [*bmctl_command(), "competitors", listing["id"]], stdout=secondary,
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=_command_env(cli_server, home, "sandbox",
                                 {"TERM": "xterm-256color", "COLUMNS": "200", **env}))
            os.close(secondary)
            chunks = []
            while True:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert process.wait(timeout=30) == 0
            return b"".join(chunks).decode()
        finally:
            os.close(primary)

    plain = on_terminal(NO_COLOR="1")
    assert "\x1b[" not in plain
    assert "price_to_win" in plain and listing["id"][:8] in plain  # a table, not JSON
    assert not plain.lstrip().startswith("[")
    coloured = on_terminal()
    assert "\x1b[" in coloured


# --- the sandbox's raw answers against openapi.yml -------------------------------------------------


def test_raw_answers_follow_the_openapi(raw_server: Served) -> None:
    url = raw_server.url
    with direct(raw_server) as s:
        page = s.get(f"{url}/ws/listings", params={"page-size": 5}, timeout=5)
        assert page.status_code == 200
        assert validate_response("/ws/listings", "get", 200, page.json())
        assert page.json()["next"].startswith(url)
        second = s.get(page.json()["next"], timeout=5)
        assert validate_response("/ws/listings", "get", 200, second.json())

        lid = page.json()["results"][0]["id"]
        one = s.get(f"{url}/ws/listings/{lid}", timeout=5)
        assert one.status_code == 200
        assert validate_response(LISTING, "get", 200, one.json())

        comp = s.get(f"{url}/ws/backbox/v1/competitors/{lid}", timeout=5)
        assert comp.status_code == 200
        assert validate_response(COMPETITORS, "get", 200, comp.json())

        price = one.json()["price"]
        body = {"price": price, "currency": one.json()["currency"]}
        validate_request_body(LISTING, "post", body)
        update = s.post(f"{url}/ws/listings/{lid}", json=body, timeout=5)
        assert update.status_code == 200
        assert validate_response(LISTING, "post", 200, update.json())

        bad = s.post(f"{url}/ws/listings/{lid}", json={"price": "12.345", "currency": "EUR"},
                     timeout=5)
        assert bad.status_code == 400
        assert validate_response(LISTING, "post", 400, bad.json())

        bad_market = s.get(f"{url}/ws/listings/{lid}", headers={"Accept-Language": "xx"}, timeout=5)
        assert bad_market.status_code == 400
        validate_schema("ErrorResponseV1", bad_market.json())

        missing = s.get(f"{url}/ws/listings/{UNKNOWN}", timeout=5)
        assert missing.status_code == 404
        assert validate_response(LISTING, "get", 404, missing.json())
        missing_comp = s.get(f"{url}/ws/backbox/v1/competitors/{UNKNOWN}", timeout=5)
        assert missing_comp.status_code == 404
        if not validate_response(COMPETITORS, "get", 404, missing_comp.json()):
            validate_schema("ErrorResponseV1", missing_comp.json())  # documented without a schema

    for path, template in ((f"/ws/listings/{lid}", LISTING), ("/ws/listings", "/ws/listings")):
        denied = requests.get(f"{url}{path}", headers={"Accept-Language": "fr-fr"}, timeout=5)
        assert denied.status_code == 401
        assert validate_response(template, "get", 401, denied.json())
        wrong = requests.get(f"{url}{path}", headers={**AUTH, "Authorization": "Basic nope"}, timeout=5)
        assert wrong.status_code == 401
        validate_schema("ErrorResponseV1", wrong.json())


def test_competitors_burst_meets_429_and_the_block(home: Path) -> None:
    served = start_server(home=home)  # its own limits, untouched by other tests
    try:
        lid = first_listing(served)["id"]
        with direct(served) as s:
            target = f"{served.url}/ws/backbox/v1/competitors/{lid}"
            statuses = [s.get(target, timeout=5).status_code for _ in range(4)]
            assert statuses[:2] == [200, 200] and 429 in statuses[2:]
            refused = s.get(target, timeout=5)
            assert refused.status_code == 429
            validate_schema("ErrorResponseV1", refused.json())  # the spec documents no 429 here
            # The block outlasting the window is tested in simulated time (tests/sandbox/test_limits.py).
            # Other routes are not blocked by the competitors limit.
            assert s.get(f"{served.url}/ws/listings/{lid}", timeout=5).status_code == 200
    finally:
        stop_server(served.process)


def test_serve_a_seed_file_with_the_waf_on_and_quiet(home: Path, tmp_path: Path) -> None:
    from bmctl.sandbox.catalogue import generate_catalogue, save_catalogue

    specs = generate_catalogue(3, markets=("en-gb",), seed=9)
    seed = tmp_path / "catalogue.json"
    save_catalogue(seed, specs)
    served = start_server("--quiet", "--seed", str(seed), "--faults", "waf=1", home=home)
    try:
        assert "3 listings" in served.banner and str(seed) in served.banner
        lid = specs[0].id
        result = subprocess.run(
            [*bmctl_command(), "--market", "en-gb", "competitors", lid], capture_output=True,
            text=True, timeout=60,
            env=_command_env(served, tmp_path, "sandbox", {}))
        assert result.returncode == 3
        assert "Cloudflare" in result.stderr and re.search(r"cf-ray[^\n]*[0-9a-f]{16}-CDG", result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
        raw = requests.get(f"{served.url}/ws/listings/{lid}", headers=AUTH, timeout=5)
        assert raw.status_code == 403 and raw.headers["cf-ray"].endswith("-CDG")
        assert "Cloudflare" in raw.text
    finally:
        stop_server(served.process)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_sigint_and_sigterm(home: Path, signum: int) -> None:
    served = start_server("--drift", "interval=5,step=0.5,band=0.1", home=home)
    assert "drift every 5 s" in served.banner
    served.process.send_signal(signum)
    assert served.process.wait(timeout=10) == 0
    rest = served.process.stderr.read() if served.process.stderr else ""  # type: ignore[union-attr]
    assert "Traceback" not in rest


def test_catalogue_command_writes_a_file_serve_reads(home: Path, tmp_path: Path) -> None:
    seed = tmp_path / "demo.json"
    printed = subprocess.run([*bmctl_command(), "sandbox", "catalogue"], capture_output=True, text=True,
                             timeout=60, env=clean_env(HOME=str(home)))
    assert printed.returncode == 0 and printed.stderr == ""
    seed.write_text(printed.stdout)
    assert len(json.loads(printed.stdout)["listings"]) >= 20
    served = start_server("--seed", str(seed), home=home)
    try:
        first = requests.get(f"{served.url}/ws/listings", headers=AUTH, timeout=5).json()["results"][0]
        assert first["id"] == json.loads(printed.stdout)["listings"][0]["id"]
    finally:
        stop_server(served.process)
