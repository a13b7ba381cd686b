"""The long deterministic fault-injection soak: simulated days of cron ``probe --all`` runs.

    python bench/soak.py --seeds 20 --hours 24          # the long soak (seeds 0..19)
    python bench/soak.py --seed 7 --hours 24            # replay one seed exactly
    python bench/soak.py --seeds 4 --hours 8 --gap 11 --no-waf --no-auth   # explore past known bugs
    python bench/soak.py --seeds 20 --hours 24 --max-in-flight 8 --latency 150 --jitter 100
    python bench/soak.py --seeds 20 --hours 24 --fair-share 0.5     # fairness: half a market per run
    python bench/soak.py --seeds 6 --hours 24 --reacting 0.2 --hidden   # price wars, rivals leaving

Each seed builds its own simulated world (200 listings in fr-fr, en-gb, ja-jp, drifting
competitors), plays cron every 15 minutes with faults, 429 storms, 401 periods, process deaths
and interruptions (SIGHUP, a closed output pipe), and checks the invariants after every run
(``tests/soak/runner.py`` documents them).
A seed stops at its first violated invariant, printed with the context to replay it.
Exit status: 0 when every seed held every invariant, 1 otherwise.

Scenario options (they choose what happens, never what is checked): ``--gap`` seconds between
the three chained cron processes of a slot (default 0.2 s), ``--no-waf`` (no WAF/challenge 403s),
``--no-auth`` (no 401 periods), ``--kill-rate``, ``--interrupt-rate``, ``--sighup-points``
(where SIGHUP may arrive: sleep, answer, wait), ``--output-format json`` (rows written at the
end: a known bug), ``--profile tight`` (tighter limits),
``--max-in-flight`` (requests on the wire at once: above 1, the soak's wire with answers out of
order), ``--latency``/``--jitter`` (milliseconds per answer), ``--fair-share`` (a deadline that
allows this share of a market's catalogue per run, and the fairness invariant), ``--reacting``
(share of the catalogue with a rival who reacts: half undercut whoever wins, half leave for
hours and come back; default 0.1), ``--hidden`` (price_to_win hides the headroom: prices come
back by the raise back, ``--raise-back-after``, default 2h), ``--jobs`` worker processes
(default: the CPU count). With reacting rivals the summary adds the price-war and raise-back
figures: holds, most rounds of a listing in a window, recovery times after a rival left, and
price writes per listing per simulated day by kind of listing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _one(args: tuple[int, float, dict[str, Any]]) -> Any:
    from tests.soak.runner import run_soak

    seed, hours, options = args
    return run_soak(seed, hours, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="run this one seed (replay)")
    which.add_argument("--seeds", type=int, default=1, help="run seeds FIRST..FIRST+N-1 (default 1)")
    parser.add_argument("--first", type=int, default=0, help="first seed with --seeds (default 0)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--profile", default="default", help="limits: default | tight")
    parser.add_argument("--gap", type=float, default=0.2,
                        help="simulated seconds between the chained cron processes of a slot")
    parser.add_argument("--kill-rate", type=float, default=0.2, help="share of runs that die")
    parser.add_argument("--interrupt-rate", type=float, default=0.1,
                        help="share of the other runs interrupted (SIGHUP or a closed output pipe)")
    parser.add_argument("--sighup-points", help="where SIGHUP may arrive, comma-separated: sleep, answer, "
                                                "wait (default: sleep,answer; and wait with --max-in-flight > 1)")
    parser.add_argument("--max-in-flight", type=int, default=1,
                        help="[traffic] max_in_flight: requests on the wire at once (default 1)")
    parser.add_argument("--latency", type=float, default=20.0, help="milliseconds per answer (default 20)")
    parser.add_argument("--jitter", type=float, default=0.0, help="± milliseconds, uniform (default 0)")
    parser.add_argument("--output-format", default="ndjson", choices=("ndjson", "json"),
                        help="--format of the runs (json is written at the end; default ndjson)")
    parser.add_argument("--fair-share", type=float,
                        help="deadline for this share of each market's catalogue per run; checks fairness")
    parser.add_argument("--reacting", type=float, default=0.1,
                        help="share of the catalogue with a reacting rival (default 0.1)")
    parser.add_argument("--hidden", action="store_true", help="price_to_win hides the headroom")
    parser.add_argument("--raise-back-after", default="2h", help="[pricing] raise_back_after (default 2h)")
    parser.add_argument("--no-waf", action="store_true", help="no WAF / challenge 403s")
    parser.add_argument("--no-auth", action="store_true", help="no 401 periods")
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep-db", metavar="DIR", help="keep each seed's database in DIR")
    args = parser.parse_args(argv)

    seeds = [args.seed] if args.seed is not None else list(range(args.first, args.first + args.seeds))
    options: dict[str, Any] = {"profile": args.profile, "process_gap": args.gap,
                               "kill_rate": args.kill_rate, "waf": not args.no_waf,
                               "listings": args.listings, "reacting": args.reacting,
                               "reveal": not args.hidden, "raise_back_after": args.raise_back_after}
    if args.no_auth:
        options["auth_per_hour"] = 0.0
    tuned = (("--interrupt-rate", "interrupt_rate", args.interrupt_rate, 0.1),
             ("--max-in-flight", "max_in_flight", args.max_in_flight, 1),
             ("--latency", "latency_ms", args.latency, 20.0),
             ("--jitter", "jitter_ms", args.jitter, 0.0),
             ("--fair-share", "fair_share", args.fair_share, None))
    for _, name, value, _ in tuned:
        options[name] = value
    options["output_format"] = args.output_format
    if args.sighup_points is not None:
        options["interrupt_points"] = tuple(p for p in args.sighup_points.split(",") if p)
    if args.keep_db:
        options["db_dir"] = args.keep_db
    # (--reacting, --hidden and --raise-back-after are in each seed's replay already.)
    extra = "".join(f" {flag}" for flag, on in (("--no-waf", args.no_waf), ("--no-auth", args.no_auth)) if on)
    if args.gap != 0.2:
        extra += f" --gap {args.gap:g}"
    if args.kill_rate != 0.2:
        extra += f" --kill-rate {args.kill_rate:g}"
    extra += "".join(f" {flag} {value:g}" for flag, _, value, default in tuned if value != default)
    if args.sighup_points is not None:
        extra += f" --sighup-points {args.sighup_points}"
    if args.output_format != "ndjson":
        extra += f" --output-format {args.output_format}"
    started = time.perf_counter()
    print(f"soak: seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), {args.hours:g} simulated hours each, "
          f"profile {args.profile}, {args.jobs} job(s){extra}", file=sys.stderr, flush=True)
    results = []
    work = [(seed, args.hours, options) for seed in seeds]
    if args.jobs > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for result in pool.map(_one, work):
                if extra and result.violation is not None:
                    result.replay += extra
                print(result.summary(), flush=True)
                results.append(result)
    else:
        for item in work:
            result = _one(item)
            if extra:
                result.replay += extra
            print(result.summary(), flush=True)
            results.append(result)
    wall = time.perf_counter() - started
    bad = [r for r in results if r.violation is not None]
    by_invariant: dict[str, int] = {}
    for r in bad:
        by_invariant[r.violation.invariant] = by_invariant.get(r.violation.invariant, 0) + 1
    cpu = sum(r.wall_seconds for r in results)
    hours = sum(r.simulated_hours for r in results)
    print(f"\nsoak: {len(results)} seed(s) x {args.hours:g} h, {len(bad)} with a violation "
          f"{by_invariant or ''}; wall {wall:.1f} s ({cpu / max(hours, 1e-9):.2f} s of one core per "
          f"simulated hour); {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")

    def span(name: str) -> str:
        return f"{min(getattr(r, name) for r in results)}–{max(getattr(r, name) for r in results)}"

    print(f"per seed: {span('runs')} runs, {span('sends')} sends, {span('writes')} writes, {span('killed')} "
          f"killed, {span('interrupted')} interrupted, {span('injected_429')} injected 429s, "
          f"{span('app_429')} sandbox 429s, {span('max_on_wire')} most on the wire, {span('out_of_order')} "
          f"answers out of order" + (f", longest unprobed streak {span('fairness_streak')}"
                                     if args.fair_share is not None else ""))
    if any(r.war_listings or r.recovery_seconds for r in results):
        recoveries = sorted(t for r in results for t in r.recovery_seconds)
        print(f"price wars: {sum(r.war_listings for r in results)} listings with an undercutter, "
              f"{sum(r.holds for r in results)} holds, {sum(r.held_rows for r in results)} held rows (no "
              f"request), at most {max(r.max_rounds_in_window for r in results)} rounds of a listing "
              f"within war_window")
        if recoveries:
            print(f"raise back: {len(recoveries)} rival departures, price back within a tick of max_price "
                  f"after median {recoveries[len(recoveries) // 2] / 60:.0f} min, max "
                  f"{recoveries[-1] / 60:.0f} min")
        kinds: dict[str, list[int]] = {}
        for r in results:
            for kind, values in r.writes_per_day.items():
                kinds.setdefault(kind, []).extend(values)
        print("price writes per listing per simulated day: " + ", ".join(
            f"{kind} mean {sum(v) / len(v):.1f} max {max(v)}" for kind, v in sorted(kinds.items()) if v))
    for r in bad:
        print(f"  seed {r.seed}: {r.violation.invariant}: replay with `{r.replay}`")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
