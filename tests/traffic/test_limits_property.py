"""The contract's core promise, checked on simulated traffic: never over the limit, near it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bmctl.traffic.buckets import DEFAULT_JITTER, DEFAULT_LIMITS, LimitSpec, TokenBucket
from bmctl.traffic.controller import TrafficController
from bmctl.traffic.queue import Priority
from bmctl.traffic.routes import DEFAULT_ROUTES, RouteMap

from .fakes import FakeTransport, RecordingClock, get, max_in_window, post

# Two buckets: /a spends global only, /b spends global and x.
ROUTES = RouteMap.from_config([("GET", r"/b", ["x"], "b"), ("GET", r"/a", [], "a")])


@st.composite
def limit_specs(draw: st.DrawFn) -> tuple[LimitSpec, float]:
    limit = draw(st.integers(1, 12))
    window = draw(st.floats(0.05, 20.0, allow_nan=False))
    burst = draw(st.integers(1, limit))
    jitter = draw(st.sampled_from([0.0, 0.001, 0.05, 0.2]))
    return LimitSpec(limit, window, burst), jitter


arrivals = st.lists(
    st.tuples(st.floats(0.0, 30.0, allow_nan=False), st.sampled_from(["/a", "/b"]),
              st.sampled_from(list(Priority))),
    min_size=1, max_size=60)


def run_traffic(specs: dict[str, tuple[LimitSpec, float]], pattern, clock: RecordingClock,
                latency: float, charge_from: dict[str, list[float]] | None = None):
    transport = FakeTransport(clock, latency=latency)
    buckets = {name: TokenBucket(name, spec, jitter, clock) for name, (spec, jitter) in specs.items()}
    if charge_from is not None:
        for name, bucket in buckets.items():
            bucket.charge(charge_from[name], clock.wall())
    ctl = TrafficController(buckets, ROUTES, transport, clock=clock)
    start = clock.monotonic()
    for t, path, prio in pattern:
        ctl.call_at(start + t, lambda path=path, prio=prio: ctl.submit(get(path), prio))
    ctl.run()
    assert ctl.queued() == 0
    return transport


def sends_by_bucket(transport: FakeTransport, index: int) -> dict[str, list[float]]:
    """Send times (monotonic: index 0, wall: index 1) per bucket."""
    out: dict[str, list[float]] = {"global": [], "x": []}
    for sent in transport.sent:
        out["global"].append(sent[index])
        if sent[2].path == "/b":
            out["x"].append(sent[index])
    return out


def assert_within_limits(times: dict[str, list[float]], specs) -> None:
    for name, (spec, jitter) in specs.items():
        span = spec.window + jitter
        assert max_in_window(times[name], span) <= spec.limit, (name, spec, jitter)


@settings(max_examples=80, deadline=None)
@given(g=limit_specs(), x=limit_specs(), pattern=arrivals,
       latency=st.sampled_from([0.0, 0.003, 0.05]))
def test_no_window_ever_holds_more_than_limit(g, x, pattern, latency) -> None:
    specs = {"global": g, "x": x}
    transport = run_traffic(specs, pattern, RecordingClock(), latency)
    assert len(transport.sent) == len(pattern)
    assert_within_limits(sends_by_bucket(transport, 0), specs)


@settings(max_examples=60, deadline=None)
@given(g=limit_specs(), x=limit_specs(), first=arrivals, second=arrivals,
       gap=st.floats(0.0, 1.0), mono_start=st.floats(0.0, 1e5))
def test_limits_hold_across_a_carry_over(g, x, first, second, gap, mono_start) -> None:
    specs = {"global": g, "x": x}
    clock1 = RecordingClock()
    t1 = run_traffic(specs, first, clock1, 0.0)
    # A second run (new process: another monotonic origin) starts right after the first.
    clock2 = RecordingClock(start=mono_start, wall_start=clock1.wall() + gap)
    previous = sends_by_bucket(t1, 1)
    t2 = run_traffic(specs, second, clock2, 0.0, charge_from=previous)
    current = sends_by_bucket(t2, 1)
    combined = {name: previous[name] + current[name] for name in previous}
    assert_within_limits(combined, specs)


def test_steady_state_rate_is_at_least_95_percent_of_every_default_limit() -> None:
    requests = {
        "global": get("/ws/listings/abc"),
        "catalog": get("/ws/catalog/abc"),
        "competitors": get("/ws/backbox/v1/competitors/abc"),
        "listing_writes": post("/ws/listings/abc"),
    }
    for name, request in requests.items():
        spec = DEFAULT_LIMITS[name]
        clock = RecordingClock()
        transport = FakeTransport(clock)
        buckets = {n: TokenBucket(n, s, DEFAULT_JITTER, clock) for n, s in DEFAULT_LIMITS.items()}
        ctl = TrafficController(buckets, DEFAULT_ROUTES, transport, clock=clock)
        n = 10 * spec.limit + 1  # ten windows of traffic
        for _ in range(n):
            ctl.submit(request, Priority.LOW)
        ctl.run()
        times = transport.times()
        rate = (n - 1) / (times[-1] - times[0])
        assert rate >= 0.95 * spec.limit / spec.window, name
        assert max_in_window(times, spec.window + DEFAULT_JITTER) <= spec.limit
