"""Real processes, real signals: ``bmctl probe`` killed (SIGKILL) or interrupted (SIGINT) while a
listing sits at its dip price on ``bmctl sandbox serve``; ``bmctl recover`` and the next writing
run put it back. Also ``bmctl demo`` with no token and no network."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

from bmctl.api.money import Money
from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.catalogue import save_catalogue
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.model import ListingSpec, Marketplace, OfferSpec
from bmctl.sandbox.server import start_in_thread

HEADERS = {"Authorization": "Basic sandbox", "Accept-Language": "fr-fr", "Accept": "application/json",
           "User-Agent": "BM-tests-bmctl;tests@example.com"}
SETTLE = 2.0  # a long settle: the dip stays open (and visible) for seconds


def bmctl() -> list[str]:
    beside = Path(sys.executable).with_name("bmctl")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("bmctl")
    return [found] if found else [sys.executable, "-m", "bmctl"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


def winnable(n: int) -> list[ListingSpec]:
    """Listings at 100.00 losing to a rival at 95.00, floor 50.00: a probe dips to 94.99."""
    return [
        ListingSpec(id=str(uuid.uuid4()), sku=f"KILL-{i}", listing_id=900 + i, offers=(OfferSpec(
            market="fr-fr", price=eur("100.00"), max_price=eur("200.00"), min_price=eur("50.00"),
            rivals=(eur("95.00"),)),))
        for i in range(n)
    ]


class Sandbox:
    def __init__(self, tmp: Path, specs: list[ListingSpec]) -> None:
        seed = tmp / "catalogue.json"
        save_catalogue(seed, specs)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.specs = specs
        self.process = subprocess.Popen(
            [*bmctl(), "sandbox", "serve", "--port", str(self.port), "--seed", str(seed),
             "--settle", str(SETTLE)],
            env=base_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/ws/listings/{specs[0].id}", headers=HEADERS, timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"sandbox died: {self.process.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.05)
        raise RuntimeError("sandbox did not start")

    def price(self, listing_id: str) -> str:
        answer = requests.get(f"{self.url}/ws/listings/{listing_id}", headers=HEADERS, timeout=5)
        answer.raise_for_status()
        return str(answer.json()["price"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCTL_") and k != "NO_COLOR"}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"))
    return env


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    served = Sandbox(tmp_path, winnable(3))
    try:
        yield served
    finally:
        served.stop()


def client_env(tmp: Path, sandbox: Sandbox) -> dict[str, str]:
    env = base_env(tmp)
    env.update(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=sandbox.url, BMCTL_DB=str(tmp / "bmctl.db"),
               BMCTL_USER_AGENT="BM-tests-bmctl;tests@example.com")
    return env


def start_probe(tmp: Path, sandbox: Sandbox, listing_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*bmctl(), "--format", "json", "probe", listing_id, "--settle", str(SETTLE)],
        env=client_env(tmp, sandbox), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for_dip(sandbox: Sandbox, listing_id: str, process: subprocess.Popen, db: Path) -> None:
    """Until the sandbox shows the dip price and the journal holds the probe open."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bmctl ended before the dip: {process.communicate()}")
        if sandbox.price(listing_id) == "94.99" and journal_states(db) == ["dip"]:
            return
        time.sleep(0.05)
    raise AssertionError("the dip never showed")


def journal_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [row[0] for row in conn.execute("select state from probes order by id")]
    except sqlite3.OperationalError:  # not migrated yet
        return []


def run(tmp: Path, sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bmctl(), *args], env=client_env(tmp, sandbox), capture_output=True,
                          text=True, timeout=60)


def kill_during_dip(tmp: Path, sandbox: Sandbox, listing_id: str) -> None:
    process = start_probe(tmp, sandbox, listing_id)
    try:
        wait_for_dip(sandbox, listing_id, process, tmp / "bmctl.db")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert sandbox.price(listing_id) == "94.99"  # left at the dip by the killed run
    assert journal_states(tmp / "bmctl.db") == ["dip"]


def test_recover_after_sigkill_restores_the_original_price(tmp_path: Path, sandbox: Sandbox) -> None:
    listing_id = sandbox.specs[0].id
    empty = run(tmp_path, sandbox, "--format", "json", "recover")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == []

    kill_during_dip(tmp_path, sandbox, listing_id)
    done = run(tmp_path, sandbox, "--format", "json", "recover")
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(done.stdout)
    assert item["listing_id"] == listing_id and item["market"] == "fr-fr"
    assert (item["original_price"], item["found_price"], item["status"]) == ("100.00", "94.99", "restored")
    assert sandbox.price(listing_id) == "100.00"
    assert journal_states(tmp_path / "bmctl.db") == ["closed"]

    again = run(tmp_path, sandbox, "--format", "json", "recover")
    assert (again.returncode, json.loads(again.stdout)) == (0, [])


@pytest.mark.parametrize("command", ["update-price", "probe"])
def test_the_next_writing_run_recovers_first(tmp_path: Path, sandbox: Sandbox, command: str) -> None:
    killed, other = sandbox.specs[0].id, sandbox.specs[1].id
    kill_during_dip(tmp_path, sandbox, killed)
    if command == "update-price":
        done = run(tmp_path, sandbox, "--format", "json", "update-price", other, "99.00")
    else:
        done = run(tmp_path, sandbox, "--format", "json", "probe", other, "--settle", "0.5")
    assert done.returncode == 0, done.stderr
    assert sandbox.price(killed) == "100.00"
    assert "recovered" in done.stderr and killed in done.stderr
    states = journal_states(tmp_path / "bmctl.db")
    assert "dip" not in states and set(states) == {"closed"}
    (row,) = json.loads(done.stdout)
    assert row["listing_id"] == other


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_during_the_dip_restores_and_exits_130(tmp_path: Path, sandbox: Sandbox,
                                                             signum: int) -> None:
    listing_id = sandbox.specs[2].id
    process = start_probe(tmp_path, sandbox, listing_id)
    try:
        wait_for_dip(sandbox, listing_id, process, tmp_path / "bmctl.db")
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert sandbox.price(listing_id) == "100.00"
    assert journal_states(tmp_path / "bmctl.db") == ["closed"]
    assert b"interrupted" in err.lower()


def test_a_closed_output_pipe_stops_like_sigterm_and_leaves_nothing_dipped(tmp_path: Path) -> None:
    """`bmctl probe ... --format ndjson | head -1`: the reader takes the first line and goes.
    The next write fails; the run restores what is still open, says so, exits 130, and its
    run record says 130 too."""
    no_floor = ListingSpec(id=str(uuid.uuid4()), sku="KILL-NOFLOOR", listing_id=899, offers=(OfferSpec(
        market="fr-fr", price=eur("100.00"), max_price=eur("200.00"), min_price=None,
        rivals=(eur("95.00"),)),))
    specs = [no_floor, *winnable(2)]
    served = Sandbox(tmp_path, specs)
    try:
        process = subprocess.Popen(
            [*bmctl(), "--format", "ndjson", "probe", *(s.id for s in specs), "--settle", str(SETTLE)],
            env=client_env(tmp_path, served), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # the listing without a floor, at once
        assert first["outcome"] == "skipped"
        process.stdout.close()  # `head -1` is done
        _, err = process.communicate(timeout=60)
        prices = [served.price(s.id) for s in specs[1:]]
    finally:
        served.stop()
    assert process.returncode == 130, err
    assert b"broken pipe" in err.lower() and b"restored" in err.lower()
    db = tmp_path / "bmctl.db"
    assert set(journal_states(db)) == {"closed"}  # nothing left open ...
    assert set(prices) <= {"100.00", "94.99"}  # ... each listing back, or won at its final price
    with sqlite3.connect(db) as conn:
        (code,) = conn.execute("select exit_code from runs where command = 'probe'").fetchone()
    assert code == 130


def test_demo_runs_without_token_or_network(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.pop("http_proxy", None)
    env.pop("https_proxy", None)
    done = subprocess.run([*bmctl(), "--format", "json", "demo", "--limit", "3", "--settle", "0.2"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 3
    assert {"listing_id", "outcome", "final_price", "writes", "dip_seconds"} <= set(rows[0])
    assert any(row["outcome"] == "won" for row in rows), rows
    # No token, no config: the demo writes nothing but its own database.
    assert not (Path(env["XDG_CONFIG_HOME"]) / "bmctl").exists()
    assert (Path(env["XDG_DATA_HOME"]) / "bmctl" / "demo.db").exists()


class SlowSandbox:
    """The sandbox in a thread of the test, answers taking 200 ± 100 ms, counting what arrives,
    what it answered and what is on the wire (arrived, not yet answered) at any moment."""

    def __init__(self, specs: list[ListingSpec]) -> None:
        marketplace = Marketplace(time.monotonic, settle=SETTLE, rng=random.Random(1))
        marketplace.load(specs)
        app = SandboxApp(marketplace, token="sandbox", faults=Faults(latency=200, jitter=100),
                         rng=random.Random(1))
        self.arrived = self.answered = 0
        decide, respond = app.decide, app.respond

        def counting_decide(request):  # type: ignore[no-untyped-def]  # under the server's lock
            self.arrived += 1
            return decide(request)

        def counting_respond(request, decision):  # type: ignore[no-untyped-def]
            self.answered += 1
            return respond(request, decision)

        app.decide, app.respond = counting_decide, counting_respond  # type: ignore[method-assign]
        self.specs = specs
        self.server, self.url = start_in_thread(app)

    def on_wire(self) -> int:
        return self.arrived - self.answered

    def price(self, listing_id: str) -> str:
        return Sandbox.price(self, listing_id)  # type: ignore[arg-type]


def probe_all_until_busy(tmp: Path, served: SlowSandbox) -> subprocess.Popen:
    """``probe --all`` (the default max_in_flight), returned once two probes sit at their dip
    while requests are on the wire."""
    env = client_env(tmp, served)  # type: ignore[arg-type]
    process = subprocess.Popen([*bmctl(), "--format", "ndjson", "probe", "--all", "--settle", str(SETTLE)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bmctl ended too soon: {process.communicate()}")
        if served.on_wire() >= 2 and journal_states(tmp / "bmctl.db").count("dip") >= 2:
            return process
        time.sleep(0.005)
    process.kill()
    raise AssertionError("never two dips with requests on the wire")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_with_requests_on_the_wire_restores_every_probe_and_logs_every_request(
        tmp_path: Path, signum: int) -> None:
    served = SlowSandbox(winnable(12))
    try:
        process = probe_all_until_busy(tmp_path, served)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        answered = served.answered
        prices = {s.id: served.price(s.id) for s in served.specs}
    finally:
        served.server.stop()
    assert process.returncode == 130, err
    with sqlite3.connect(tmp_path / "bmctl.db") as conn:
        probes = conn.execute("select listing_id, state, final_price from probes").fetchall()
        (logged,) = conn.execute("select count(*) from rate_limit_logs where status is not null").fetchone()
    assert {state for _, state, _ in probes} == {"closed"}
    for listing_id, _, final_price in probes:  # each back at its original, or won where it ended
        assert prices[listing_id] == final_price
    assert set(prices.values()) <= {"100.00", "94.99"}
    assert logged == answered  # every answer the server gave has its row


def test_a_kill_with_requests_on_the_wire_leaves_each_one_held_in_the_ledger(tmp_path: Path) -> None:
    """SIGKILL mid-flight: every request the server counted is still held in the ledger (the
    slot is taken before the request leaves), so the next run cannot overspend the window."""
    served = SlowSandbox(winnable(12))
    try:
        process = probe_all_until_busy(tmp_path, served)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        time.sleep(0.5)  # what was on the wire arrives and is answered to no one
        arrived = served.arrived
    finally:
        served.server.stop()
    with sqlite3.connect(tmp_path / "bmctl.db") as conn:
        (held,) = conn.execute("select count(*) from budget_holds where bucket = 'global' "
                               "and kind in ('sent', 'slot')").fetchone()
        (open_dips,) = conn.execute("select count(*) from probes where state = 'dip'").fetchone()
    assert held >= arrived  # within the run's few seconds, nothing has expired yet
    assert open_dips >= 2  # left for `bmctl recover`
