"""Published limits as sliding windows, the 10 s block, recovery, all in simulated time."""

from __future__ import annotations

from bmctl.sandbox.limits import SlidingWindowLimiter, scopes_for
from tests.openapi_helpers import validate_response, validate_schema
from tests.sandbox.helpers import LID, app_for, body, req, spec

COMP = f"/ws/backbox/v1/competitors/{LID}"


def test_competitors_burst_block_and_recovery() -> None:
    app, clock = app_for(spec())
    statuses = [app.handle(req("GET", COMP)).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = app.handle(req("GET", COMP))
    validate_schema("ErrorResponseV1", body(r))
    assert r.status == 429 and body(r)["error"]["code"] == "too_many_requests"
    # Blocked for 10 s even for well-spaced requests...
    for _ in range(9):
        clock.advance(1.0)
        assert app.handle(req("GET", COMP)).status == 429
    clock.advance(1.0)  # ...then served again (429s did not fill the window)
    assert [app.handle(req("GET", COMP)).status for _ in range(2)] == [200, 200]
    # Other routes were never blocked by the competitors scope.
    assert app.handle(req("GET", f"/ws/listings/{LID}")).status == 200


def test_spaced_requests_never_limited() -> None:
    app, clock = app_for(spec())
    for _ in range(50):
        assert app.handle(req("GET", COMP)).status == 200
        clock.advance(0.5)


def test_global_limit_and_update_429_validates() -> None:
    app, clock = app_for(spec(), limits={"global": (5, 10.0)})
    for _ in range(5):
        assert app.handle(req("GET", f"/ws/listings/{LID}")).status == 200
    r = app.handle(req("POST", f"/ws/listings/{LID}", {"price": "99.00"}))
    assert r.status == 429
    validate_response("/ws/listings/{listingId}", "post", 429, body(r))
    clock.advance(10.0)
    assert app.handle(req("POST", f"/ws/listings/{LID}", {"price": "99.00"})).status == 200


def test_listing_writes_window() -> None:
    app, clock = app_for(spec(), limits={"listing_writes": (3, 3600.0)})
    for price in ("99.00", "98.00", "97.00"):
        assert app.handle(req("POST", f"/ws/listings/{LID}", {"price": price})).status == 200
    assert app.handle(req("POST", f"/ws/listings/{LID}", {"price": "96.00"})).status == 429
    clock.advance(10.0)  # the block is over but the hour's window is still full
    assert app.handle(req("POST", f"/ws/listings/{LID}", {"price": "96.00"})).status == 429
    clock.advance(3600.0)
    assert app.handle(req("POST", f"/ws/listings/{LID}", {"price": "96.00"})).status == 200
    assert body(app.handle(req("GET", f"/ws/listings/{LID}")))["price"] == "96.00"


def test_limits_off() -> None:
    app, _ = app_for(spec(), limits=None)
    assert all(app.handle(req("GET", COMP)).status == 200 for _ in range(100))


def test_competitors_limit_is_per_token() -> None:
    limiter = SlidingWindowLimiter(lambda: 0.0, {"competitors": (2, 1.0)})
    a = scopes_for("GET", COMP, "Basic a")
    b = scopes_for("GET", COMP, "Basic b")
    assert limiter.admit(a) is None and limiter.admit(a) is None and limiter.admit(a) == "competitors"
    assert limiter.admit(b) is None


def test_scopes() -> None:
    assert [s for s, _ in scopes_for("GET", COMP, "t")] == ["global", "competitors"]
    assert [s for s, _ in scopes_for("POST", f"/ws/listings/{LID}", "t")] == ["global", "listing_writes"]
    assert [s for s, _ in scopes_for("GET", f"/ws/listings/{LID}", "t")] == ["global"]
    assert [s for s, _ in scopes_for("GET", "/ws/catalog/x", "t")] == ["global", "catalog"]


def test_window_is_half_open() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(lambda: now[0], {"x": (2, 1.0)})
    scope = [("x", "k")]
    assert limiter.admit(scope) is None and limiter.admit(scope) is None
    now[0] = 1.0  # exactly one window later the first two have left it
    assert limiter.admit(scope) is None and limiter.admit(scope) is None
    now[0] = 1.5
    assert limiter.admit(scope) == "x" and limiter.blocked_until("x", "k") == 11.5
