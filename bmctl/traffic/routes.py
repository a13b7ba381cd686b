"""The route map: which buckets a request spends, decided by method and path regex."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

GLOBAL = "global"
_CACHE_MAX = 65_536  # paths carry listing ids: bound the cache, it refills at once


@dataclass(frozen=True)
class Route:
    """``method`` (``*`` for any) and a path regex (matched from the start) -> bucket names."""

    method: str
    pattern: str
    buckets: tuple[str, ...]
    name: str = "other"
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        # Every request spends the global bucket, whatever a configuration forgot to say.
        buckets = tuple(dict.fromkeys((GLOBAL, *self.buckets)))
        object.__setattr__(self, "buckets", buckets)
        object.__setattr__(self, "regex", re.compile(self.pattern))

    def matches(self, method: str, path: str) -> bool:
        """True when this route applies to ``method path``."""
        return (self.method == "*" or self.method == method) and self.regex.match(path) is not None


RouteSpec = Route | Sequence[Any] | Mapping[str, Any]

_FALLBACK: tuple[tuple[str, ...], str] = ((GLOBAL,), "other")


class RouteMap:
    """Ordered routes; the first match wins; unmatched requests spend ``global`` only."""

    __slots__ = ("routes", "_cache")

    def __init__(self, routes: Iterable[RouteSpec]) -> None:
        self.routes: tuple[Route, ...] = tuple(_to_route(r) for r in routes)
        self._cache: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}

    @classmethod
    def from_config(cls, entries: Iterable[RouteSpec]) -> RouteMap:
        """Build from configuration: ``(method, regex, buckets[, name])`` or
        ``{method, path, buckets, name}`` items, in order."""
        return cls(entries)

    @classmethod
    def default(cls) -> RouteMap:
        """A fresh map of :data:`DEFAULT_ROUTE_SPECS` (its own lookup cache)."""
        return cls(DEFAULT_ROUTE_SPECS)

    def resolve(self, method: str, path: str) -> tuple[tuple[str, ...], str]:
        """``(buckets, route name)`` for a request, cached per (method, path)."""
        key = (method, path)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        m = method.upper()
        result = _FALLBACK
        for route in self.routes:
            if route.matches(m, path):
                result = (route.buckets, route.name)
                break
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = result
        return result

    def lookup(self, method: str, path: str) -> tuple[str, ...]:
        """Every bucket the request spends (``global`` always first)."""
        return self.resolve(method, path)[0]

    def route_name(self, method: str, path: str) -> str:
        """Short route name for the log (``competitors``, ``listing_write``, ...)."""
        return self.resolve(method, path)[1]

    def bucket_names(self) -> set[str]:
        """Every bucket name any route spends."""
        names = {GLOBAL}
        for route in self.routes:
            names.update(route.buckets)
        return names


def _to_route(spec: RouteSpec) -> Route:
    if isinstance(spec, Route):
        return spec
    if isinstance(spec, Mapping):
        return Route(spec["method"], spec.get("path") or spec["pattern"],
                     tuple(spec["buckets"]), spec.get("name", "other"))
    if isinstance(spec, (str, bytes)) or len(spec) not in (3, 4):
        raise ValueError(f"a route is (method, regex, buckets[, name]), got {spec!r}")
    method, pattern, buckets, *name = spec
    if isinstance(buckets, str):
        buckets = (buckets,)
    return Route(method, pattern, tuple(buckets), *name)


_ID = r"[^/?#]+"

#: bmctl's default route map (see docs/ARCHITECTURE.md and the README's limits table).
DEFAULT_ROUTE_SPECS: tuple[Route, ...] = (
    Route("GET", r"/ws/backbox/v1/competitors/", ("global", "competitors"), "competitors"),
    Route("POST", r"/ws/listings/?$", ("global", "listing_writes"), "listing_write"),
    Route("POST", rf"/ws/listings/{_ID}/?$", ("global", "listing_writes"), "listing_write"),
    Route("GET", r"/ws/listings/?$", ("global",), "listings_page"),
    Route("GET", rf"/ws/listings/{_ID}/?$", ("global",), "listing_read"),
    Route("*", r"/ws/(category|catalog|products)", ("global", "catalog"), "catalog"),
)

DEFAULT_ROUTES = RouteMap(DEFAULT_ROUTE_SPECS)
