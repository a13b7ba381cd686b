"""The commented starter configuration: ``bmctl config init`` writes it, ``bmctl.toml.example`` is it."""

from __future__ import annotations

STARTER = """\
# bmctl configuration. Every key is shown with its default; uncomment to change it.
# Sources, later wins: defaults -> this file -> BMCTL_* environment variables -> options.
# This file may hold your API token: keep it private (bmctl writes it with mode 0600).

# The API token as Back Market issued it (sent as "Authorization: Basic <token>").
# Prefer the BMCTL_TOKEN environment variable on shared machines.
# token = ""

# Market (Accept-Language code): fr-fr, fr-be, es-es, de-de, de-at, it-it, nl-nl, pt-pt,
# en-ie, el-gr, sk-sk, en-gb, sv-se, en-us, ja-jp, en-au.
# market = "fr-fr"

# Environment: prod or preprod (a token is valid on one platform and environment only).
# env = "prod"

# Overrides the host that market and env select (sandbox, proxies, tests).
# base_url = ""

# The SQLite database of logs, runs, probes and price changes.
# Empty: $XDG_DATA_HOME/bmctl/bmctl.db (~/.local/share/bmctl/bmctl.db).
# db = ""

# User-Agent Back Market asks for: BM-{CompanyName}-{IntegrationName};{contact email}.
# Empty: built from company and email as BM-<company>-bmctl;<email>.
# user_agent = ""
# company = ""
# email = ""

# Seconds to wait for one HTTP answer.
# timeout = 30.0

# Attempts per request (429, 5xx, timeouts and dropped connections are retried).
# max_attempts = 5

# Seconds a writing run waits for another run's lock before exiting with code 5.
# lock_timeout = 0.0

# update-price refuses a change larger than this percentage without --force.
# max_change_pct = 30.0

# (jitter, a guess of the network's delay spread, is no longer needed: the budget ledger
# holds each slot from its send until one window after its answer. It is accepted with a
# warning and ignored.)

[probe]
# Price tick of the upward search; empty means the currency's (0.01, or 1 for JPY).
# step = ""
# Seconds the Backbox needs after a write before it reflects the new price.
# settle = 2.0
# Writes the upward search may make when the headroom is not revealed.
# max_raises = 3
# Longest a dip may last before the original price is restored (seconds).
# max_dip = 120.0
# A run stops starting probes when more than this many listings would go to their floor.
# breaker_floor_hits = 5
# Peeks after a write before giving up on the Backbox reflecting it.
# peek_retries = 5
# Does the market's price_to_win reveal the headroom above a winning price? auto learns it
# from the answers; revealed never searches upwards; hidden always does (at most max_raises).
# headroom = "auto"

[pricing]
# Floors and ceilings from cost. For a listing with a cost in the costs file,
#   floor   (cost + fee_fixed) / (1 - fee_rate - min_margin), rounded up to the currency's tick
#   ceiling (cost + fee_fixed) / (1 - fee_rate - max_margin), rounded down.
# A probe uses the intersection of every bound: the cost rule's, the listing's min_price and
# max_price, --floor/--ceiling and the --file columns (each probe row names the source of each).
# A blank, zero or missing cost gives no floor. Shares are written "0.12" or "12%"; amounts
# name their currency ("0.50 EUR") or come as a table per currency, {EUR="0.50", GBP="0.45"}.
# The costs file (CSV, header: listing_id or sku, cost, optional market and currency), read
# relative to this file's folder; probe --costs FILE overrides it. Empty: no costs.
# costs = ""
# Marketplace commission, a share of the price.
# fee_rate = "0"
# Fixed fee per sale, an amount naming its currency (a currency with none: listings skipped).
# fee_fixed = "0"
# Margin of the floor, a share of the price ("0": break-even).
# min_margin = "0"
# Margin of the ceiling; empty: no ceiling from cost.
# max_margin = ""
# How far one write of a probe may lower / raise a price: a share of the price it moves from
# ("5%") or an amount naming its currency ("10.00 EUR", or a table per currency). A dip that
# needs more is a capped dip (outcome capped, kept for the next run). Empty: no cap.
# Restores and undos are never capped; update-price is guarded by max_change_pct instead.
# max_step_down = ""
# max_step_up = ""
# Price-war cooldown: a listing (per market) that met war_rounds price-war rounds within
# war_window (the price to win below its floor, a dip to win the Backbox back, or a lost
# one) is held for war_cooldown after the last: not probed, no request. 0 rounds: never held.
# war_rounds = 3
# war_window = "24h"
# war_cooldown = "6h"
# Raise back: a listing winning below its ceiling at a price unchanged for this long is
# searched upwards again (no dip), so its price recovers after a rival leaves.
# raise_back_after = "24h"

[traffic]
# Requests on the wire at once (1: strictly one at a time). The limits hold whatever it is;
# more hides network delay (each request still waits for its slots in the budget ledger).
# max_in_flight = 64

[budget]
# Where the budget ledger lives. Empty: in the database, shared by every bmctl process on
# this host. A Redis URL (redis://host:6379/0, rediss://..., unix:///path/redis.sock; or
# BMCTL_BUDGET_URL) shares one budget across every host using it: pip install 'bmctl[redis]'.
# url = ""

# Rate-limit buckets (Back Market's published limits). Each takes limit, window (seconds)
# and penalty (seconds paused after a 429 without Retry-After, default 10). Every bmctl
# process using the same database shares one budget (the ledger in its budget_holds table):
# a request holds a slot from its send until `window` seconds after its answer, and is sent
# only while fewer than `limit` slots are held. `burst` is deprecated and ignored: the
# ledger sends as fast as the limit allows whenever slots are free.
[limits.global]
# limit = 200
# window = 10.0
# penalty = 10.0

[limits.catalog]
# limit = 20
# window = 10.0

[limits.competitors]
# limit = 2
# window = 1.0

[limits.listing_writes]
# limit = 2000
# window = 3600.0
"""


def starter_config(token: str = "") -> str:
    """The starter file; with a token, its line is filled in (the file is then private)."""
    if not token:
        return STARTER
    escaped = token.replace("\\", "\\\\").replace('"', '\\"')
    return STARTER.replace('# token = ""', f'token = "{escaped}"', 1)
