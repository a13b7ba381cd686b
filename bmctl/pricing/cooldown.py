"""What earlier runs say about a listing: price-war holds and when its price may be raised back.

Both are derived from the journal (``probes``) and the history (``price_changes``) at the start
of a run, so cron runs respect them without any state of their own:

- **Price-war round**: a closed probe of a (listing, market) that found the listing losing the
  Backbox and either could not win it back within the floor (``unwinnable``), dipped to win it
  back (a ``dip_price``, whatever came after, except a dip ``capped`` by ``max_step_down``: our
  own pace, not the market answering), or lost it (``lost``). ``war_rounds`` rounds
  within ``war_window`` hold the listing for ``war_cooldown`` after the last of them: its
  probes are ``held`` and send nothing. The window slides: after a cooldown, one more round
  while the earlier ones are still in the window holds it again.
- **Raise back**: a listing already winning is searched upwards (the Peak without a dip) only
  when its price has not changed for ``raise_back_after`` (no change recorded: at once); in
  between its probes keep the price without a write.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Mapping

from bmctl.pricing.journal import APPLIED

#: Outcomes that are a price-war round by themselves (a dip makes any other outcome one).
WAR_OUTCOMES = ("unwinnable", "lost")
#: Outcomes of a probe with a dip that are no round: a failure, a plan, and a dip capped by
#: max_step_down (our own pace towards the price to win, not the market answering).
NOT_ROUNDS = ("error", "planned", "capped")
#: How much earlier than ``raise_back_after`` a raise back may go (seconds; at most a tenth of it).
RAISE_BACK_MARGIN = 300.0


@dataclass(frozen=True)
class CooldownRules:
    """The ``[pricing]`` rules in seconds; ``war_rounds == 0`` holds nothing."""

    war_rounds: int = 3
    war_window: float = 86400.0
    war_cooldown: float = 6 * 3600.0
    raise_back_after: float = 86400.0
    window_text: str = "24h"
    cooldown_text: str = "6h"
    raise_back_text: str = "24h"

    @classmethod
    def from_settings(cls, pricing: Any) -> "CooldownRules":
        """From the configuration's ``[pricing]`` section (``Settings.pricing``)."""
        return cls(war_rounds=pricing.war_rounds, war_window=pricing.seconds("war_window"),
                   war_cooldown=pricing.seconds("war_cooldown"),
                   raise_back_after=pricing.seconds("raise_back_after"),
                   window_text=pricing.war_window, cooldown_text=pricing.war_cooldown,
                   raise_back_text=pricing.raise_back_after)


@dataclass(frozen=True)
class Hold:
    """A listing held by the price-war cooldown: until when (UTC epoch seconds) and why."""

    until: float
    rounds: int
    window_text: str

    def text(self) -> str:
        rounds = f"{self.rounds} price-war round{'' if self.rounds == 1 else 's'}"
        return f"held until {utc_minute(self.until)}: {rounds} in {self.window_text}"


def utc_minute(wall: float) -> str:
    """``2026-11-30T10:00:05Z``: a moment as the reasons show it."""
    from bmctl.store.db import utc_iso

    return utc_iso(wall)[:19] + "Z"


def is_war_round(result: Mapping[str, Any]) -> bool:
    """Whether a probe's result (its JSON fields) is a price-war round."""
    outcome = result.get("outcome")
    if outcome in WAR_OUTCOMES:
        return True
    return result.get("dip_price") is not None and outcome not in NOT_ROUNDS


@dataclass
class PricingMemory:
    """Price-war rounds and last price changes per (listing, market), read once per run and
    kept up to date by the run's own results."""

    rules: CooldownRules
    rounds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    changed: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def load(cls, db: Any, rules: CooldownRules, now: float) -> "PricingMemory":
        """Read what the rules need from the database (two queries)."""
        from bmctl.store.db import parse_utc, utc_iso

        memory = cls(rules)
        if rules.war_rounds > 0:
            since = utc_iso(now - rules.war_window - rules.war_cooldown)
            rows = db.conn.execute(
                "select listing_id, market, coalesce(finished_at, updated_at) as at from probes"
                " where state = 'closed' and coalesce(finished_at, updated_at) >= ?"
                " and (outcome in (?, ?) or (dip_price is not null and outcome not in (?, ?, ?)))"
                " order by at", (since, *WAR_OUTCOMES, *NOT_ROUNDS))
            for listing_id, market, at in rows:
                if listing_id and market and at:
                    memory.rounds.setdefault((listing_id.lower(), market), []).append(parse_utc(at))
        rows = db.conn.execute(
            f"select listing_id, market, max(ts) from price_changes where status in"
            f" ({', '.join('?' * len(APPLIED))}) group by listing_id, market", APPLIED)
        for listing_id, market, at in rows:
            if listing_id and market and at:
                memory.changed[(listing_id.lower(), market)] = parse_utc(at)
        return memory

    def hold(self, listing_id: str, market: str, now: float) -> Hold | None:
        """The hold on a listing at ``now``, if the cooldown of a price war still runs."""
        rules = self.rules
        if rules.war_rounds <= 0:
            return None
        times = self.rounds.get((listing_id.lower(), market), [])
        times = times[: bisect.bisect_right(times, now)]  # what was known at ``now``
        # The latest round that completed war_rounds rounds within war_window ends the latest hold.
        for index in range(len(times) - 1, rules.war_rounds - 2, -1):
            last = times[index]
            if last + rules.war_cooldown <= now:
                return None
            first = times[index - rules.war_rounds + 1]
            if last - first <= rules.war_window:
                count = sum(1 for t in times[: index + 1] if t >= last - rules.war_window)
                return Hold(until=last + rules.war_cooldown, rounds=count, window_text=rules.window_text)
        return None

    def record(self, result: Mapping[str, Any], now: float) -> Hold | None:
        """Take a finished probe's result into account; the hold it starts, if it is the round
        that completes a price war."""
        key = (str(result.get("listing_id") or "").lower(), str(result.get("market") or ""))
        if result.get("writes"):
            self.changed[key] = now
        if not is_war_round(result):
            return None
        bisect.insort(self.rounds.setdefault(key, []), now)
        return self.hold(key[0], key[1], now)

    def raise_back_wait(self, listing_id: str, market: str, now: float) -> str | None:
        """None when a listing winning now may be searched upwards; else why not yet. A run up
        to ``RAISE_BACK_MARGIN`` early counts: cron's runs reach a listing a few seconds apart,
        and one a second short of the age would wait a whole slot more."""
        changed = self.changed.get((listing_id.lower(), market))
        margin = min(RAISE_BACK_MARGIN, self.rules.raise_back_after / 10)
        if changed is None or now - changed >= self.rules.raise_back_after - margin:
            return None
        due = changed + self.rules.raise_back_after - margin
        return (f"no upward search before {utc_minute(due)} (raise_back_after "
                f"{self.rules.raise_back_text} since the price last changed)")
