"""The HTTP server on 127.0.0.1 with real requests."""

from __future__ import annotations

import random
import threading

import pytest
import requests

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.server import serve, start_in_thread
from tests.openapi_helpers import validate_response, validate_schema
from tests.sandbox.helpers import AUTH, JP, LID, market, spec

ONE = f"/ws/listings/{LID}"


@pytest.fixture
def server():
    mp, _ = market(spec(), spec(ident="22222222-2222-4333-8444-555555555555"),
                   spec("15000", ("14000",), min_price="12000", max_price="20000",
                        market="ja-jp", ident=JP), settle=0)
    servers = []

    def start(faults: Faults | None = None):
        srv, url = start_in_thread(SandboxApp(mp, faults=faults, rng=random.Random(1)))
        servers.append(srv)
        return url

    yield start
    for srv in servers:
        srv.stop()


def test_real_requests(server) -> None:
    url = server()
    assert url.startswith("http://127.0.0.1:")
    with requests.Session() as s:
        s.headers.update(AUTH)
        r = s.get(f"{url}/ws/listings", params={"page-size": 1})
        assert r.status_code == 200 and r.headers["x-request-id"]
        assert validate_response("/ws/listings", "get", 200, r.json())
        assert r.json()["next"].startswith(url)
        r = s.get(f"{url}{ONE}")
        assert validate_response("/ws/listings/{listingId}", "get", 200, r.json())
        r = s.get(f"{url}/ws/backbox/v1/competitors/{LID}")
        assert validate_response("/ws/backbox/v1/competitors/{listingId}", "get", 200, r.json())
        r = s.post(f"{url}{ONE}", json={"price": "94.99", "currency": "EUR"})
        assert r.status_code == 200 and r.json()["price"] == "94.99"
        assert validate_response("/ws/listings/{listingId}", "post", 200, r.json())


def test_401_without_auth(server) -> None:
    url = server()
    r = requests.get(f"{url}{ONE}", headers={"Accept-Language": "fr-fr"}, timeout=5)
    assert r.status_code == 401
    validate_schema("ErrorResponseV1", r.json())


def test_three_decimals_and_jpy_decimals_refused(server) -> None:
    url = server()
    r = requests.post(f"{url}{ONE}", json={"price": "94.999"}, headers=AUTH, timeout=5)
    assert r.status_code == 400 and "too many decimals" in r.json()
    assert validate_response("/ws/listings/{listingId}", "post", 400, r.json())
    r = requests.post(f"{url}/ws/listings/{JP}", json={"price": "13999.5", "currency": "JPY"},
                      headers={**AUTH, "Accept-Language": "ja-jp"}, timeout=5)
    assert r.status_code == 400 and "JPY" in r.json()


def test_dropped_connection(server) -> None:
    url = server(Faults(drop=1.0))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}{ONE}", headers=AUTH, timeout=5)


def test_timeout(server) -> None:
    url = server(Faults(timeout=1.0, hang=2.0))
    with pytest.raises(requests.Timeout):
        requests.get(f"{url}{ONE}", headers=AUTH, timeout=0.2)


def test_waf_403_with_cf_ray(server) -> None:
    url = server(Faults(waf=1.0))
    r = requests.get(f"{url}{ONE}", headers=AUTH, timeout=5)
    assert r.status_code == 403 and r.headers["cf-ray"].endswith("-CDG")
    assert r.headers["content-type"].startswith("text/html") and r.headers["server"] == "cloudflare"


def test_latency_is_real(server) -> None:
    url = server(Faults(latency=80))
    r = requests.get(f"{url}{ONE}", headers=AUTH, timeout=5)
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.07


def test_serve_foreground_announces_and_stops(tmp_path) -> None:
    from bmctl.sandbox import server as server_mod

    lines: list[str] = []
    started = threading.Event()
    holder = {}
    original = server_mod.make_server

    def capture(app, port=0, host="127.0.0.1"):
        holder["server"] = original(app, port, host)
        return holder["server"]

    def announce(message: str) -> None:
        lines.append(message)
        started.set()

    server_mod.make_server = capture
    try:
        thread = threading.Thread(target=serve, kwargs=dict(port=0, seed_path=None, settle=0.5, reveal=False,
                                                            token="t0k", faults=None, announce=announce))
        thread.start()
        assert started.wait(5)
        base = holder["server"].base_url
        assert base in lines[0] and "26 listings" in lines[0] and "t0k" not in lines[0]
        r = requests.get(f"{base}/ws/listings", headers={"Authorization": "Basic t0k"}, timeout=5)
        assert r.status_code == 200 and r.json()["count"] > 0
        holder["server"].shutdown()
        thread.join(5)
        assert not thread.is_alive()
    finally:
        server_mod.make_server = original


def test_serve_bad_seed_is_usage_error(tmp_path) -> None:
    from bmctl.errors import UsageError
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UsageError, match="listings"):
        serve(port=0, seed_path=str(tmp_path / "bad.json"), settle=1, reveal=True, token="x", faults=None)


def test_stop_without_serving_does_not_hang() -> None:
    import time

    from bmctl.sandbox.server import make_server
    mp, _ = market(spec())
    srv = make_server(SandboxApp(mp))
    started = time.monotonic()
    srv.stop()  # serve_forever never ran: its shutdown() would wait forever
    assert time.monotonic() - started < 5.0
    assert srv.socket.fileno() == -1  # the listening socket is closed


def test_page_past_the_end_is_empty(server) -> None:
    url = server()
    r = requests.get(f"{url}/ws/listings", params={"page": 9}, headers=AUTH, timeout=5)
    assert r.status_code == 200 and r.json()["results"] == [] and r.json()["next"] is None
    assert validate_response("/ws/listings", "get", 200, r.json())
