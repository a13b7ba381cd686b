"""The plan printed before a batch: requests per bucket and the time they take at the limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from bmctl.traffic.admission import hold_span, send_times, sends_within
from bmctl.traffic.buckets import LimitSpec


@dataclass(frozen=True)
class ProbeCost:
    """Requests one probe makes per bucket: typically, and at worst."""

    listing_reads: int = 1
    competitor_reads: float = 2.0
    writes: float = 1.0
    worst_competitor_reads: int = 0
    worst_writes: int = 0


def probe_cost(max_raises: int, peek_retries: int, dry_run: bool = False) -> ProbeCost:
    """A dip (or a raise) and its confirming peek is the typical probe; the worst case is a dip,
    every raise of the search, an undo each, and every peek retried. A dry run only reads."""
    if dry_run:
        return ProbeCost(competitor_reads=1.0, writes=0.0, worst_competitor_reads=1, worst_writes=0)
    worst_writes = 1 + max_raises + 2
    return ProbeCost(
        worst_competitor_reads=1 + worst_writes * max(1, peek_retries),
        worst_writes=worst_writes,
    )


@dataclass
class Plan:
    """Estimated requests per bucket for a batch, and what that means in time."""

    count: int  # probes, or price updates (``items`` says which)
    requests: dict[str, tuple[float, float]]  # bucket -> (typical, worst)
    seconds: float
    bottleneck: str
    warnings: list[str] = field(default_factory=list)
    items: str = "probe(s)"

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} ~{typical:.0f}" + (f" (≤{worst:.0f})" if worst != typical else "")
            for name, (typical, worst) in self.requests.items()
        )
        text = (
            f"plan: {self.count} {self.items}; requests per bucket: {parts}; "
            f"~{_duration(self.seconds)} at the limits ({self.bottleneck} is the bottleneck)"
        )
        return "\n".join([text, *self.warnings])


def plan_probes(
    probes: int,
    limits: Mapping[str, LimitSpec],
    *,
    settle: float,
    max_raises: int,
    peek_retries: int,
    deadline: float | None = None,
    listing_pages: int = 0,
    buckets: Mapping[str, Any] | None = None,
    markets: int = 1,
    dry_run: bool = False,
) -> Plan:
    """Estimate a batch of ``probes`` over ``markets`` markets (plus the ``listing_pages`` page
    reads of ``--all``, counted in ``global``); a dry run reads and never writes.

    ``buckets`` (the ledger's, when a run has one) make the estimate start from what every
    process holds now: a batch right after another run spent the hour's writes says so."""
    cost = probe_cost(max_raises, peek_retries, dry_run)
    typical = {
        "competitors": probes * cost.competitor_reads,
        "listing_writes": probes * cost.writes,
    }
    worst = {
        "competitors": float(probes * cost.worst_competitor_reads),
        "listing_writes": float(probes * cost.worst_writes),
    }
    typical["global"] = listing_pages + probes * cost.listing_reads + typical["competitors"] + typical["listing_writes"]
    worst["global"] = listing_pages + probes * cost.listing_reads + worst["competitors"] + worst["listing_writes"]
    requests = {name: (typical[name], worst[name]) for name in ("global", "competitors", "listing_writes")}
    seconds, bottleneck = _time_at_limits(requests, limits, buckets)
    seconds += 2 * settle if probes and not dry_run else 0.0
    items = "probe(s)" + (f" in {markets} markets" if markets > 1 else "")
    if listing_pages:
        items += f", after {listing_pages} listing page(s)"
    if dry_run:
        items += " (dry run: reads only)"
    plan = Plan(count=probes, requests=requests, seconds=seconds, bottleneck=bottleneck, items=items)
    writes = limits.get("listing_writes")
    if deadline is not None and writes is not None:
        budget = _sends_within("listing_writes", writes, deadline, buckets)
        if typical["listing_writes"] > budget:
            plan.warnings.append(
                f"warning: ~{typical['listing_writes']:.0f} writes exceed the {budget} that "
                f"listing_writes allows within the deadline; the rest is left for the next run (exit 4)"
            )
        if seconds > deadline:
            plan.warnings.append(
                f"warning: the batch needs ~{_duration(seconds)} at the limits but the deadline is "
                f"{_duration(deadline)}; probes that cannot finish in time are not started (exit 4)"
            )
    return plan


def plan_updates(orders: int, limits: Mapping[str, LimitSpec], *, dry_run: bool = False,
                 buckets: Mapping[str, Any] | None = None) -> Plan:
    """Estimate ``update-price --file``: each order reads its listing, then writes once."""
    writes = 0 if dry_run else orders
    requests = {"global": (float(orders + writes),) * 2, "listing_writes": (float(writes),) * 2}
    seconds, bottleneck = _time_at_limits(requests, limits, buckets)
    return Plan(count=orders, requests=requests, seconds=seconds, bottleneck=bottleneck,
                items="price update(s)" + (" (dry run: reads only)" if dry_run else ""))


def _time_at_limits(requests: Mapping[str, tuple[float, float]], limits: Mapping[str, LimitSpec],
                    buckets: Mapping[str, Any] | None) -> tuple[float, str]:
    """Seconds the typical requests take at the limits, and the slowest bucket."""
    seconds, bottleneck = 0.0, "global"
    for name, (count, _) in requests.items():
        spec = limits.get(name)
        if spec is None or count <= 0:
            continue
        bucket = buckets.get(name) if buckets is not None else None
        n = math.ceil(count)
        if bucket is not None:
            needed = bucket.time_to_send(n)
        else:
            needed = send_times(spec.limit, hold_span(spec.window), 0, (), n, 0.0)
        if needed > seconds:
            seconds, bottleneck = needed, name
    return seconds, bottleneck


def _sends_within(name: str, spec: LimitSpec, seconds: float, buckets: Mapping[str, Any] | None) -> int:
    bucket = buckets.get(name) if buckets is not None else None
    if bucket is not None:
        return int(bucket.sends_within(seconds))
    return sends_within(spec.limit, hold_span(spec.window), 0, (), seconds, 0.0)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
