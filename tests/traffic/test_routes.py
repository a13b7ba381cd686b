"""RouteMap: default buckets per route, route names, config form, caching."""

from __future__ import annotations

import pytest

from bmctl.traffic.routes import DEFAULT_ROUTES, Route, RouteMap

LISTING = "9f4f7c2e-1b1e-4a5b-8a43-2d3c2a8f0b11"


@pytest.mark.parametrize(
    ("method", "path", "buckets", "name"),
    [
        ("GET", f"/ws/backbox/v1/competitors/{LISTING}", ("global", "competitors"), "competitors"),
        ("POST", "/ws/listings", ("global", "listing_writes"), "listing_write"),
        ("POST", f"/ws/listings/{LISTING}", ("global", "listing_writes"), "listing_write"),
        ("GET", f"/ws/listings/{LISTING}", ("global",), "listing_read"),
        ("GET", "/ws/listings", ("global",), "listings_page"),
        ("GET", "/ws/category/12", ("global", "catalog"), "catalog"),
        ("GET", "/ws/catalog/tree", ("global", "catalog"), "catalog"),
        ("POST", "/ws/products/search", ("global", "catalog"), "catalog"),
        ("GET", "/ws/orders", ("global",), "other"),
        ("POST", f"/ws/backbox/v1/competitors/{LISTING}", ("global",), "other"),
        ("get", f"/ws/backbox/v1/competitors/{LISTING}", ("global", "competitors"), "competitors"),
    ],
)
def test_default_routes(method: str, path: str, buckets: tuple[str, ...], name: str) -> None:
    assert DEFAULT_ROUTES.lookup(method, path) == buckets
    assert DEFAULT_ROUTES.route_name(method, path) == name


def test_from_config_orders_and_always_adds_global() -> None:
    routes = RouteMap.from_config([
        ("GET", r"/ws/special/", ["catalog"], "special"),
        {"method": "*", "path": r"/ws/", "buckets": ["global", "catalog"]},
        ("POST", r"/x", "competitors"),
    ])
    assert routes.lookup("GET", "/ws/special/1") == ("global", "catalog")
    assert routes.route_name("GET", "/ws/special/1") == "special"
    assert routes.lookup("DELETE", "/ws/anything") == ("global", "catalog")
    assert routes.lookup("POST", "/x") == ("global", "competitors")
    assert routes.lookup("GET", "/nowhere") == ("global",)  # unmatched: global only
    assert routes.bucket_names() == {"global", "catalog", "competitors"}


def test_bad_route_spec() -> None:
    with pytest.raises(ValueError):
        RouteMap.from_config([("GET", r"/x")])


def test_lookups_are_cached() -> None:
    calls = []

    class CountingRoute(Route):
        def matches(self, method: str, path: str) -> bool:
            calls.append(path)
            return super().matches(method, path)

    routes = RouteMap([CountingRoute("GET", r"/a", ("global",), "a")])
    for _ in range(3):
        assert routes.lookup("GET", "/a/1") == ("global",)
    assert calls == ["/a/1"]


def test_default_classmethod_gives_a_fresh_default_map() -> None:
    routes = RouteMap.default()
    assert routes is not DEFAULT_ROUTES and routes.routes == DEFAULT_ROUTES.routes
    assert routes.lookup("POST", "/ws/listings/1") == ("global", "listing_writes")
