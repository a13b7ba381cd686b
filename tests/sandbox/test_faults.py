"""Fault spec parsing and every fault kind, replayable from a seed."""

from __future__ import annotations

import json
import random

import pytest

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults, parse_faults
from bmctl.sandbox.inprocess import InProcessTransport
from bmctl.traffic.transport import TransportError
from tests.openapi_helpers import validate_schema
from tests.sandbox.helpers import LID, body, market, req, spec

ONE = f"/ws/listings/{LID}"


def test_parse_full_spec() -> None:
    f = parse_faults("latency=50, jitter=25,error=0.05,timeout=0.01,drop=0.01,malformed=1%,waf=0.01,challenge=0,hang=2")
    assert f == Faults(latency=50, jitter=25, error=0.05, timeout=0.01, drop=0.01, malformed=0.01,
                       waf=0.01, challenge=0, hang=2)
    assert parse_faults("") == Faults()


@pytest.mark.parametrize("text,needle", [
    ("latency", "key=value"), ("boom=1", "unknown fault"), ("error=x", "not a number"),
    ("error=1.5", "between 0 and 1"), ("latency=-1", "non-negative"), ("error=0.6,drop=0.6", "more than 1"),
    ("error=0.1,error=0.2", "twice"), ("latency=50%", "not a number"), ("error=nan", "between 0 and 1"),
])
def test_parse_errors_say_why(text, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_faults(text)


def _app(faults: Faults, seed: int = 5):
    mp, clock = market(spec(), settle=0)
    return SandboxApp(mp, faults=faults, limits=None, rng=random.Random(seed)), clock


def test_error_fault_gives_5xx_envelope() -> None:
    app, _ = _app(Faults(error=1.0))
    r = app.handle(req("GET", ONE))
    assert r.status in (500, 502, 503)
    validate_schema("ErrorResponseV1", body(r))


def test_waf_html_403_with_cf_ray() -> None:
    app, _ = _app(Faults(waf=1.0))
    r = app.handle(req("GET", ONE))
    assert r.status == 403 and r.header("content-type").startswith("text/html")
    assert r.header("cf-ray") and r.header("cf-ray").encode() in r.body


def test_challenge_json_403() -> None:
    app, _ = _app(Faults(challenge=1.0))
    r = app.handle(req("GET", ONE))
    assert r.status == 403 and r.header("cf-ray")
    assert body(r)["errors"][0]["code"] == "bot-need-challenge"
    validate_schema("ErrorResponseV2", body(r))


def test_malformed_json_but_write_applied() -> None:
    app, _ = _app(Faults(malformed=1.0))
    r = app.handle(req("POST", ONE, {"price": "90.00"}))
    assert r.status == 200
    with pytest.raises(ValueError):
        json.loads(r.body)
    assert app.marketplace.offer(LID, "fr-fr").price == 90


def test_timeout_and_drop_in_process_never_reach_the_marketplace() -> None:
    for kind, faults in (("timeout", Faults(timeout=1.0)), ("connection", Faults(drop=1.0))):
        app, clock = _app(faults)
        transport = InProcessTransport(app, clock)
        with pytest.raises(TransportError) as info:
            transport.send(req("POST", ONE, {"price": "90.00"}), timeout=5.0)
        assert info.value.kind == kind
        assert app.marketplace.offer(LID, "fr-fr").price == 100
        assert clock.monotonic() == (5.0 if kind == "timeout" else 0.0)


def test_handle_raises_for_timeout_and_drop() -> None:
    app, _ = _app(Faults(drop=1.0))
    with pytest.raises(TransportError):
        app.handle(req("GET", ONE))


def _run(seed: int) -> list[tuple[float, str | None]]:
    app, _ = _app(Faults(latency=50, jitter=25, error=0.2, drop=0.1, timeout=0.1, malformed=0.1, waf=0.1),
                  seed)
    return [(d.latency, d.fault) for d in (app.decide(req("GET", ONE)) for _ in range(200))]


def test_fault_decisions_replay_from_the_seed() -> None:
    a, b, c = _run(1), _run(1), _run(2)
    assert a == b and a != c
    kinds = {k for _, k in a}
    assert {"error", "drop", "timeout", "malformed", "waf", None} <= kinds
    assert all(0.025 <= lat <= 0.075 for lat, _ in a)


def test_rates_roughly_match() -> None:
    app, _ = _app(Faults(error=0.25), seed=3)
    statuses = [app.handle(req("GET", ONE)).status for _ in range(2000)]
    share = sum(s >= 500 for s in statuses) / len(statuses)
    assert 0.21 < share < 0.29


def test_no_faults_draw_nothing() -> None:
    rng = random.Random(1)
    mp, _ = market(spec())
    app = SandboxApp(mp, rng=rng)
    app.handle(req("GET", ONE))
    assert rng.random() == random.Random(1).random()
