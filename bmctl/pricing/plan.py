"""The plan printed before a batch: requests per bucket and the time they take at the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from bmctl.traffic.buckets import LimitSpec


@dataclass(frozen=True)
class ProbeCost:
    """Requests one probe makes per bucket: typically, and at worst."""

    listing_reads: int = 1
    competitor_reads: float = 2.0
    writes: float = 1.0
    worst_competitor_reads: int = 0
    worst_writes: int = 0


def probe_cost(max_raises: int, peek_retries: int) -> ProbeCost:
    """A dip (or a raise) and its confirming peek is the typical probe; the worst case is a dip,
    every raise of the search, an undo each, and every peek retried."""
    worst_writes = 1 + max_raises + 2
    return ProbeCost(
        worst_competitor_reads=1 + worst_writes * max(1, peek_retries),
        worst_writes=worst_writes,
    )


def rate_of(spec: LimitSpec, jitter: float) -> float:
    """Sustained sends per second a bucket allows."""
    return (spec.limit - spec.burst + 1) / (spec.window + jitter)


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
    jitter: float,
    settle: float,
    max_raises: int,
    peek_retries: int,
    deadline: float | None = None,
    listing_pages: int = 0,
) -> Plan:
    """Estimate a batch of ``probes`` (plus ``listing_pages`` page reads for ``--all``)."""
    cost = probe_cost(max_raises, peek_retries)
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
    seconds, bottleneck = _time_at_limits(requests, limits, jitter)
    seconds += 2 * settle if probes else 0.0
    plan = Plan(count=probes, requests=requests, seconds=seconds, bottleneck=bottleneck)
    writes = limits.get("listing_writes")
    if deadline is not None and writes is not None:
        budget = writes.burst + rate_of(writes, jitter) * deadline
        if typical["listing_writes"] > budget:
            plan.warnings.append(
                f"warning: ~{typical['listing_writes']:.0f} writes exceed the ~{budget:.0f} that "
                f"listing_writes allows within the deadline; the rest is left for the next run (exit 4)"
            )
        if seconds > deadline:
            plan.warnings.append(
                f"warning: the batch needs ~{_duration(seconds)} at the limits but the deadline is "
                f"{_duration(deadline)}; probes that cannot finish in time are not started (exit 4)"
            )
    return plan


def plan_updates(orders: int, limits: Mapping[str, LimitSpec], *, jitter: float,
                 dry_run: bool = False) -> Plan:
    """Estimate ``update-price --file``: each order reads its listing, then writes once."""
    writes = 0 if dry_run else orders
    requests = {"global": (float(orders + writes),) * 2, "listing_writes": (float(writes),) * 2}
    seconds, bottleneck = _time_at_limits(requests, limits, jitter)
    return Plan(count=orders, requests=requests, seconds=seconds, bottleneck=bottleneck,
                items="price update(s)" + (" (dry run: reads only)" if dry_run else ""))


def _time_at_limits(requests: Mapping[str, tuple[float, float]], limits: Mapping[str, LimitSpec],
                    jitter: float) -> tuple[float, str]:
    """Seconds the typical requests take at the buckets' rates, and the slowest bucket."""
    seconds, bottleneck = 0.0, "global"
    for name, (count, _) in requests.items():
        spec = limits.get(name)
        if spec is None or count <= 0:
            continue
        needed = max(0.0, count - spec.burst) / rate_of(spec, jitter)
        if needed > seconds:
            seconds, bottleneck = needed, name
    return seconds, bottleneck


def per_probe_seconds(limits: Mapping[str, LimitSpec], jitter: float, cost: ProbeCost) -> float:
    """The bottleneck time one typical probe costs when probes run back to back."""
    shares = [
        cost.competitor_reads / rate_of(limits["competitors"], jitter) if "competitors" in limits else 0.0,
        cost.writes / rate_of(limits["listing_writes"], jitter) if "listing_writes" in limits else 0.0,
    ]
    return max(shares)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
