"""Deterministic fault-injection soak: a day of cron ``probe --all`` runs in simulated time.

From one seed, :func:`run_soak` builds a :class:`~bmctl.sandbox.world.SimWorld` (200 listings in
three markets, drifting competitors) and plays cron: every 15 minutes, one ``bmctl probe --all
--market M`` run per market, one after the other (three cron lines chained with ``;``, each its own
process: new :class:`~bmctl.runtime.Runtime`, same database, same world so time continues; a
``process_gap`` of simulated start-up time between them). A run that overruns its slot makes cron's
next line wait (the lock would exit 5 anyway): the next run starts at the next free slot.
Each run goes through :func:`bmctl.commands.run.execute` and the probe command's core exactly
as the CLI does (recover, enumerate, plan, batch), with a ``deadline`` so the three runs fit the slot.

**Faults** (all drawn from the seed, replayed exactly): a low background rate of the sandbox's own
faults (5xx, timeouts, dropped connections, malformed JSON, the WAF's HTML 403, the JSON
challenge 403); episodes of heavy faults; 429 storms answered by the soak's transport wrapper
(no ``Retry-After``, ``Retry-After`` in seconds, or as an HTTP date) without reaching the app;
periods of 401 (the app's token is rotated); and **process death**.

**Process death** is a private ``BaseException`` (:class:`SoakKilled`) raised at a random send
index of a run, at one of three points: at the transport before the request leaves
(``before_send``), after the marketplace served it but before the answer is back
(``after_send``: a write may have landed unseen), or in the controller's ``on_attempt`` callback
after the log row was buffered (``on_attempt``). It unwinds through bmctl (no bmctl code catches a
bare ``BaseException``; the only ``finally`` blocks on that path restore signal handlers, which a
real death would not need) up to the run loop, which then does what the OS does to a SIGKILLed
process and nothing more: the runtime is never ``__exit__``-ed (no run record finished, no log
``close()``), :class:`~bmctl.store.log_writer.LogWriter`'s unflushed buffer is dropped, the run lock is
released (the kernel drops the ``flock``), and the SQLite connection is closed without commit
(what was committed stays, an open transaction would be rolled back).

**Determinism**: the soak pins what ``Runtime`` leaves to the host: the controller's backoff rng
(unseeded by default) is seeded per run, and ``LogWriter``'s flush clock (``time.monotonic`` by
default) is the simulated clock, which is what real time is to a real process. Run ids carry
random hex; nothing depends on them.

**Invariants** (checked after every run and at the end; the first violation stops the soak with
the seed and context, see :class:`Violation`):

``limits``
    For every bucket of bmctl's configured limits, no closed interval ``[t, t + window]`` holds
    more than ``limit`` arrivals at the marketplace (the simulated time at which the sandbox app
    served each request: half the latency after it left), and no half-open ``[t, t + window)``
    more than ``limit`` sends at the transport (every attempt: retries, 429s and requests that
    timed out or were dropped included), across all runs, killed ones included: the budget
    ledger in the shared database is what keeps runs that follow a killed one inside the
    limits. Buckets from ``RouteMap.default().lookup``. Tolerance: ``FLOAT_TOL`` (1e-9 s, float
    noise only).
``price``
    Every price write (``POST /ws/listings/{id}``) carries ``price`` as a JSON string (parsed with
    ``parse_float``/``parse_int`` hooks: any JSON number is a violation), with no more decimals
    than the currency allows, inside ``[min_price, max_price]`` of the catalogue (the listing's
    floor and effective ceiling at the time of the probe: the soak never changes them).
    Restores are held to the same bounds: bmctl restores the original price clamped into the
    probe's bounds, and every catalogue start price is inside its bounds (asserted at start), so no
    exemption is needed. A write to a listing without ``min_price`` is a violation (no floor).
``recovery``
    After every run that was not killed: a probe left open by an *earlier* run is allowed only if
    this run's recovery said it could not restore it ("could not restore"), or the run ended on an
    authentication failure (exit 3: recovery stops at once); a probe of *this* run is allowed
    open only if its result says the restore failed (kept for recovery). Every listing without
    an open probe is at the price bmctl last confirmed: the latest of (``price_changes`` rows
    with status ``updated``: ``new_price``; closed ``probes``: ``final_price``), an ``error``
    write after it making it unconfirmed; a listing bmctl never touched is at its catalogue
    price. At the end, one quiet run per market (no faults, no death) must leave **no** open
    probe and every listing confirmed.
``logs``
    Every attempt (each ``on_attempt`` call) of a run that was not killed is in
    ``rate_limit_logs``, in order, with the run's id, and every send at the transport had an
    attempt. For a killed run the rows in the table are exactly a prefix of its attempts; the
    missing tail is what ``LogWriter`` still buffered: fewer than ``flush_rows`` (500) rows, all
    recorded less than ``flush_seconds`` (1 s, simulated) after the first of them, plus at most the
    one send in flight at the death (no attempt recorded). Every price the marketplace applied
    (a 2xx to a price POST, malformed answers included) has a ``price_changes`` row of that run
    with that listing and price (a killed run may miss the one in flight). Every ``run_id`` in
    ``rate_limit_logs``, ``price_changes`` and ``probes`` exists in ``runs``.
``token``
    The API token (and its base64) appears nowhere in a dump of every table.
``crash``
    A run raises nothing but bmctl's own errors (mapped to exit codes by the CLI).
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any

from bmctl.api.money import tick
from bmctl.commands.probe import ProbeRequest, probe, probe_params
from bmctl.commands.run import CommandContext, execute
from bmctl.errors import BmctlError, exit_code_for
from bmctl.pricing.runner import ProbeRunOptions
from bmctl.sandbox.catalogue import generate_catalogue
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.model import Drift
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.routes import RouteMap
from bmctl.traffic.transport import HttpRequest, HttpResponse

FLOAT_TOL = 1e-9
SLOT = 900.0  # cron: every 15 minutes
MARKETS = ("fr-fr", "en-gb", "ja-jp")  # EUR, GBP and JPY (no decimals: a harder price grid)

PROFILES: dict[str, dict[str, LimitSpec]] = {
    "default": dict(DEFAULT_LIMITS),
    # Tighter than Back Market's: the hourly write budget binds, so carry-over across runs and
    # deaths decides whether it holds.
    "tight": {"global": LimitSpec(60, 10.0), "catalog": LimitSpec(10, 10.0),
              "competitors": LimitSpec(1, 1.0), "listing_writes": LimitSpec(300, 3600.0)},
}

BACKGROUND = Faults(error=0.004, timeout=0.0005, drop=0.001, malformed=0.001, waf=0.0003,
                    challenge=0.0003)


class SoakKilled(BaseException):
    """Process death (SIGKILL) at a chosen point; never caught by bmctl."""


class Violation(AssertionError):
    """A broken invariant: which, when, and enough context to replay (the seed and hours)."""

    def __init__(self, invariant: str, message: str, **context: Any) -> None:
        self.invariant = invariant
        self.message = message
        self.context = context
        super().__init__(self.describe())

    def __reduce__(self) -> Any:  # picklable across bench/soak.py's worker processes
        return (_violation, (self.invariant, self.message, self.context))

    def describe(self) -> str:
        ctx = "".join(f"\n    {k}: {v}" for k, v in self.context.items())
        return f"invariant {self.invariant!r} violated: {self.message}{ctx}"


def _violation(invariant: str, message: str, context: dict[str, Any]) -> Violation:
    return Violation(invariant, message, **context)


@dataclass(frozen=True)
class SoakConfig:
    seed: int = 0
    hours: float = 24.0
    listings: int = 200
    markets: tuple[str, ...] = MARKETS
    profile: str = "default"
    deadline: float = 240.0  # per market run: three runs fit a 15-minute slot
    process_gap: float = 0.2  # simulated start-up time of the next cron process
    kill_rate: float = 0.2  # share of runs that die
    kill_max_index: int = 700  # death at a send index drawn in [1, kill_max_index]
    storms_per_hour: float = 2.0
    bursts_per_hour: float = 2.0
    auth_per_hour: float = 0.5
    waf: bool = True  # inject the WAF's 403s (HTML and challenge)
    final_quiet_run: bool = True
    check_token_every: int = 0  # dump the database every N runs (0: only at the end)
    db_dir: str | None = None  # keep the database here (default: a temporary folder, removed)


@dataclass
class Episode:
    start: float
    end: float
    kind: str  # storm | burst | auth
    params: dict[str, Any]


@dataclass
class RunRecord:
    index: int
    slot: int
    market: str
    run_id: str = ""
    start: float = 0.0
    end: float = 0.0
    kill: tuple[int, str] | None = None  # planned (send index, point)
    killed: bool = False
    exit_code: int | None = None
    error: str = ""
    sends: int = 0
    attempts: list[tuple[Any, ...]] = field(default_factory=list)  # (method, path, attempt, status, outcome)
    attempt_times: list[float] = field(default_factory=list)
    attempt_meta: list[tuple[int, str]] = field(default_factory=list)  # (priority, listing id)
    applied: Counter = field(default_factory=Counter)  # (listing, market, price) applied by the app
    warnings: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


@dataclass
class SoakResult:
    seed: int
    hours: float
    profile: str
    runs: int = 0
    killed: int = 0
    sends: int = 0
    writes: int = 0
    injected_429: int = 0
    app_429: int = 0
    auth_refused: int = 0
    recovered: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    kill_points: Counter = field(default_factory=Counter)
    violation: Violation | None = None
    wall_seconds: float = 0.0
    simulated_hours: float = 0.0  # up to the end, or to the first violation
    replay: str = ""

    def summary(self) -> str:
        status = "OK" if self.violation is None else "VIOLATION"
        text = (f"seed {self.seed}: {status} - {self.hours:g} h ({self.profile}), {self.runs} runs "
                f"({self.killed} killed: {dict(self.kill_points)}), {self.sends} sends, "
                f"{self.writes} writes, {self.injected_429} injected 429s, {self.app_429} sandbox "
                f"429s, {self.auth_refused} 401s, {self.recovered} recovered, exit codes "
                f"{dict(sorted(self.exit_codes.items()))}, {self.simulated_hours:.2f} h simulated in "
                f"{self.wall_seconds:.1f} s wall")
        if self.violation is not None:
            text += f"\n  {self.violation.describe()}\n  replay: {self.replay}"
        return text


class SoakTransport:
    """The transport bmctl sends through: ground truth of every send, fault episodes, death."""

    def __init__(self, soak: "Soak") -> None:
        self.soak = soak
        self.world = soak.world
        self.inner = soak.world.transport
        self.clock = soak.world.clock
        self.rng = random.Random(soak.config.seed * 7919 + 17)
        self.routes = RouteMap.default()
        self.times: dict[str, list[float]] = {name: [] for name in soak.limits}
        self.arrivals: dict[str, list[float]] = {name: [] for name in soak.limits}
        self.run: RunRecord | None = None
        self.quiet = False
        app = self.world.app
        respond = app.respond

        def respond_and_count(request: HttpRequest, decision: Any) -> HttpResponse:
            now = self.clock.monotonic()
            for name in self.routes.lookup(request.method, request.path):
                if name in self.arrivals:
                    self.arrivals[name].append(now)
            return respond(request, decision)

        app.respond = respond_and_count  # type: ignore[method-assign]

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        soak, run = self.soak, self.run
        assert run is not None
        now = self.clock.monotonic()
        run.sends += 1
        if run.kill is not None and run.sends == run.kill[0] and run.kill[1] == "before_send":
            raise SoakKilled("before_send")  # dies before the request leaves: not a send
        soak.result.sends += 1
        for name in self.routes.lookup(request.method, request.path):
            if name in self.times:
                self.times[name].append(now)
        is_write = request.method == "POST" and request.path.startswith("/ws/listings/")
        if is_write:
            soak.result.writes += 1
            soak.check_write(request, run, now)
        storm, burst, auth = self._episodes(now)
        app = self.world.app
        app.faults = burst if burst is not None else (None if self.quiet else soak.background)
        app.token = "rotated-elsewhere" if auth else self.world.token
        if storm is not None and self.rng.random() < storm["share"]:
            soak.result.injected_429 += 1
            headers = {"content-type": "application/json"}
            kind = storm["retry_after"]
            wait = self.rng.choice((1, 2, 5, 10, 15))
            if kind == "seconds":
                headers["retry-after"] = str(wait)
            elif kind == "date":
                headers["retry-after"] = formatdate(self.clock.wall() + wait, usegmt=True)
            body = b'{"error":{"code":"too_many_requests","message":"storm"}}'
            return HttpResponse(429, headers, body)
        try:
            response = self.inner.send(request, timeout)
        finally:
            app.faults, app.token = None, self.world.token
        if response.status == 429:
            soak.result.app_429 += 1
        if response.status == 401:
            soak.result.auth_refused += 1
        if is_write and 200 <= response.status < 300 and request.listing_id:
            body = json.loads(request.body or b"{}")
            run.applied[(request.listing_id.lower(), request.market, body.get("price"))] += 1
        if run.kill is not None and run.sends == run.kill[0] and run.kill[1] == "after_send":
            raise SoakKilled("after_send")
        return response

    def _episodes(self, now: float) -> tuple[dict | None, Faults | None, bool]:
        if self.quiet:
            return None, None, False
        storm = burst = None
        auth = False
        for ep in self.soak.active(now):
            if ep.kind == "storm":
                storm = ep.params
            elif ep.kind == "burst":
                burst = ep.params["faults"]
            elif ep.kind == "auth":
                auth = True
        return storm, burst, auth


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        if config.profile not in PROFILES:
            raise ValueError(f"unknown profile {config.profile!r} (known: {', '.join(PROFILES)})")
        self.limits = PROFILES[config.profile]
        self.background = BACKGROUND if config.waf else replace(BACKGROUND, waf=0.0, challenge=0.0)
        self.token = f"soak-{config.seed}-{self.rng.getrandbits(64):016x}-tok"
        specs = generate_catalogue(config.listings, config.markets, seed=config.seed)
        self.world = SimWorld(specs, drift=Drift(interval=60.0, step=Decimal("0.01"),
                                                 band=Decimal("0.10")),
                              seed=config.seed, token=self.token)
        self.bounds: dict[tuple[str, str], tuple[Decimal | None, Decimal, str]] = {}
        self.start_price: dict[tuple[str, str], Decimal] = {}
        for spec in specs:
            for o in spec.offers:
                key = (spec.id.lower(), o.market)
                self.bounds[key] = (o.min_price.amount if o.min_price else None, o.max_price.amount,
                                    o.price.currency)
                self.start_price[key] = o.price.amount
                if o.min_price is not None:
                    assert o.min_price.amount <= o.price.amount <= o.max_price.amount, key
        self.episodes = self._plan_episodes()
        self._starts = [ep.start for ep in self.episodes]
        self._longest = max((ep.end - ep.start for ep in self.episodes), default=0.0)
        self.result = SoakResult(config.seed, config.hours, config.profile)
        self.result.replay = (f"python bench/soak.py --seed {config.seed} --hours {config.hours:g}"
                              + (f" --profile {config.profile}" if config.profile != "default" else ""))
        self.transport = SoakTransport(self)
        self.write_errors: list[Violation] = []
        self.runs: list[RunRecord] = []
        self.checked_buckets = {(name, kind): 0 for name in self.limits for kind in ("send", "arrival")}
        self.belief: dict[tuple[str, str], tuple[str, int, Decimal | None]] = {}  # key -> (ts, order, price)
        self.last_change_id = 0
        self.last_probe_ts = ""

    # --- the plan ---------------------------------------------------------------------------

    def _plan_episodes(self) -> list[Episode]:
        """Fault episodes: one rng stream per kind, drawn minute by minute (a Poisson process),
        so the first H hours of a longer soak are those of a soak of H hours."""
        cfg = self.config
        minutes = int(cfg.hours * 60)
        episodes: list[Episode] = []
        waf = 0.5 if cfg.waf else 0.0

        def storm(rng: random.Random, t: float) -> Episode:
            return Episode(t, t + rng.uniform(10, 120), "storm", {
                "share": rng.choice((0.3, 0.7, 1.0)),
                "retry_after": rng.choice(("none", "seconds", "date"))})

        def burst(rng: random.Random, t: float) -> Episode:
            weights = [rng.random() for _ in range(6)]
            scale = rng.uniform(0.05, 0.4) / sum(weights)
            w = [x * scale for x in weights]
            return Episode(t, t + rng.uniform(30, 300), "burst", {"faults": Faults(
                error=w[0], timeout=w[1] * 0.3, drop=w[2], malformed=w[3], waf=w[4] * waf,
                challenge=w[5] * waf, latency=rng.choice((0.0, 50.0)), jitter=25.0)})

        def auth(rng: random.Random, t: float) -> Episode:
            return Episode(t, t + rng.uniform(60, 900), "auth", {})

        for k, (per_hour, make) in enumerate(((cfg.storms_per_hour, storm),
                                              (cfg.bursts_per_hour, burst),
                                              (cfg.auth_per_hour, auth))):
            rng = random.Random(cfg.seed * 1_000_033 + k + 1)
            for m in range(minutes):
                if rng.random() < per_hour / 60.0:
                    episodes.append(make(rng, rng.uniform(m * 60.0, m * 60.0 + 60.0)))
        episodes.sort(key=lambda ep: ep.start)
        return episodes

    def active(self, now: float) -> list[Episode]:
        i = bisect.bisect_right(self._starts, now)
        out = []
        j = i - 1
        while j >= 0 and self.episodes[j].start >= now - self._longest:
            if self.episodes[j].start <= now < self.episodes[j].end:
                out.append(self.episodes[j])
            j -= 1
        return out

    # --- driving ----------------------------------------------------------------------------

    def run(self) -> SoakResult:
        t0 = time.perf_counter()
        tmp = Path(self.config.db_dir) if self.config.db_dir else Path(tempfile.mkdtemp(prefix="bmctl-soak-"))
        tmp.mkdir(parents=True, exist_ok=True)
        self.db_path = tmp / f"soak-{self.config.seed}.db"
        try:
            self._loop()
        except Violation as violation:
            self.result.violation = violation
        finally:
            self.result.wall_seconds = time.perf_counter() - t0
            self.result.simulated_hours = self.world.clock.monotonic() / 3600.0
            if not self.config.db_dir:
                shutil.rmtree(tmp, ignore_errors=True)
        return self.result

    def _loop(self) -> None:
        cfg, clock = self.config, self.world.clock
        end = cfg.hours * 3600.0
        slot = 0
        while slot * SLOT < end:
            if clock.monotonic() < slot * SLOT:
                clock.advance(slot * SLOT - clock.monotonic())
            for i, market in enumerate(cfg.markets):
                if i:
                    clock.advance(cfg.process_gap)
                kill = None
                if self.rng.random() < cfg.kill_rate:
                    kill = (self.rng.randint(1, cfg.kill_max_index),
                            self.rng.choice(("before_send", "after_send", "on_attempt")))
                self._one_run(slot, market, kill, quiet=False)
            slot = int(clock.monotonic() // SLOT) + 1
        if cfg.final_quiet_run:
            clock.advance(SLOT - clock.monotonic() % SLOT)
            for i, market in enumerate(cfg.markets):
                if i:
                    clock.advance(cfg.process_gap)
                self._one_run(slot, market, None, quiet=True)
            self.check_final()
        self.check_token()

    def _one_run(self, slot: int, market: str, kill: tuple[int, str] | None, *, quiet: bool) -> RunRecord:
        cfg, world = self.config, self.world
        run = RunRecord(index=len(self.runs), slot=slot, market=market, kill=kill,
                        start=world.clock.monotonic())
        self.runs.append(run)
        self.result.runs += 1
        self.transport.run = run
        self.transport.quiet = quiet
        runtime = world.runtime(self.db_path, limits=dict(self.limits))
        runtime.transport = self.transport
        runtime.__enter__()
        run.run_id = runtime.run_id
        try:
            controller = runtime.controller
            # What Runtime leaves to the host, pinned for replay (see the module docstring).
            runtime._log.clock = world.clock.monotonic
            controller.rng = random.Random(cfg.seed * 1_000_003 + run.index)
            record = controller.on_attempt

            def on_attempt(attempt: Any) -> None:
                run.attempts.append((attempt.request.method, attempt.request.path, attempt.attempt,
                                     attempt.status, attempt.outcome))
                run.attempt_times.append(world.clock.monotonic())
                run.attempt_meta.append((int(attempt.priority), (attempt.request.listing_id or "").lower()))
                record(attempt)
                if run.kill is not None and run.sends == run.kill[0] and run.kill[1] == "on_attempt":
                    raise SoakKilled("on_attempt")

            controller.on_attempt = on_attempt
            options = ProbeRunOptions(params=probe_params(runtime.settings), deadline=cfg.deadline,
                                      breaker_floor_hits=runtime.settings.probe.breaker_floor_hits)
            context = CommandContext(runtime, emit=run.results.append, warn=run.warnings.append)
            execute(context, partial(probe, request=ProbeRequest(all_listings=True, market=market),
                                     targets=[], options=options), recover=True)
            runtime.__exit__(None, None, None)
        except SoakKilled as death:
            self._die(runtime)
            run.killed = True
            self.result.killed += 1
            self.result.kill_points[str(death)] += 1
        except BmctlError as error:
            run.error = f"{type(error).__name__}: {error}"
            runtime.__exit__(type(error), error, error.__traceback__)
            runtime.exit_code = int(exit_code_for(error))
        except Exception as error:  # noqa: BLE001 - a crash is a finding
            tb = traceback.format_exc(limit=8)
            try:
                runtime.__exit__(type(error), error, error.__traceback__)
            except Exception:  # noqa: BLE001
                pass
            raise Violation("crash", f"run raised {type(error).__name__}: {error}",
                            **self._where(run), traceback=tb) from None
        run.exit_code = None if run.killed else (runtime.exit_code if runtime.exit_code is not None else 0)
        if not run.killed:
            self.result.exit_codes[int(run.exit_code)] += 1
        run.end = world.clock.monotonic()
        self.result.recovered += sum(1 for w in run.warnings if w.startswith("recovered "))
        self.check_after_run(run)
        if cfg.check_token_every and (run.index + 1) % cfg.check_token_every == 0:
            self.check_token()
        return run

    @staticmethod
    def _die(runtime: Any) -> None:
        """What the OS does to a SIGKILLed bmctl, and nothing more."""
        log = runtime._log
        if log is not None:
            log._rows = []  # the unflushed buffer dies with the process
            log._closed = True
        runtime._release_lock()  # the kernel drops the flock of a dead process
        if runtime.db is not None:
            runtime.db.conn.close()  # no commit: an open transaction would be rolled back
        ledger = runtime._ledger
        if ledger is not None:
            ledger._pending = []  # settles not yet written die with the process
            ledger._conn.close()

    # --- invariants ---------------------------------------------------------------------------

    def _where(self, run: RunRecord) -> dict[str, Any]:
        return {"seed": self.config.seed, "run": f"#{run.index} {run.run_id} market {run.market} "
                f"slot {run.slot} (t={run.start:.3f}s..{self.world.clock.monotonic():.3f}s sim)",
                "kill": f"{run.kill} killed={run.killed}", "replay": self.result.replay}

    def check_write(self, request: HttpRequest, run: RunRecord, now: float) -> None:
        def bad(message: str) -> None:
            self.write_errors.append(Violation("price", message, **self._where(run), at=f"t={now:.3f}s",
                                               body=(request.body or b"").decode("utf-8", "replace")))

        numbers: list[str] = []

        def number(text: str) -> Decimal:
            numbers.append(text)
            return Decimal(text)

        try:
            body = json.loads(request.body or b"", parse_float=number, parse_int=number)
        except ValueError:
            bad("the body of a price write is not JSON")
            return
        if numbers:
            bad(f"a JSON number in the body of a price write: {numbers}")
        key = ((request.listing_id or "").lower(), request.market or "")
        if key not in self.bounds:
            bad(f"write to an unknown listing/market {key}")
            return
        floor, ceiling, currency = self.bounds[key]
        price = body.get("price") if isinstance(body, dict) else None
        if price is None:
            if isinstance(body, dict) and "min_price" in body:
                bad("the probe changed min_price")
            return
        if not isinstance(price, str):
            bad(f"price is not a decimal string: {price!r}")
            return
        amount = Decimal(price)
        exponent = tick(currency).as_tuple().exponent
        if amount.as_tuple().exponent < exponent:
            bad(f"price {price} has more decimals than {currency} allows")
        if floor is None:
            bad(f"price {price} written to a listing without a floor (min_price)")
        elif not floor <= amount <= ceiling:
            bad(f"price {price} outside [{floor}, {ceiling}] for {key}")

    def check_after_run(self, run: RunRecord) -> None:
        if self.write_errors:
            raise self.write_errors[0]
        self.check_limits(run)
        db = self._open()
        try:
            self.check_logs(run, db)
            self.check_recovery(run, db)
        finally:
            db.close()

    def _open(self) -> Any:
        import sqlite3

        return sqlite3.connect(str(self.db_path))

    def check_limits(self, run: RunRecord) -> None:
        for name, spec in self.limits.items():
            self._check_window(run, name, spec, "send", self.transport.times[name], closed=False)
            self._check_window(run, name, spec, "arrival", self.transport.arrivals[name], closed=True)

    def _check_window(self, run: RunRecord, name: str, spec: LimitSpec, kind: str,
                      times: list[float], *, closed: bool) -> None:
        span = spec.window
        n = spec.limit
        start = max(n, self.checked_buckets[(name, kind)])
        for i in range(start, len(times)):
            gap = times[i] - times[i - n]
            if gap < span - FLOAT_TOL or (closed and gap <= span + FLOAT_TOL):
                first = times[i - n]
                who = [r for r in self.runs if r.start <= first + 1e-12]
                raise Violation(
                    "limits",
                    f"bucket {name!r}: {n + 1} {kind}s within {gap:.9f} s, window {span:g} s "
                    f"(limit {n})",
                    **self._where(run), window=f"[{first:.6f}, {first + span:.6f}] sim s",
                    times=[f"{t:.6f}" for t in times[i - n: i + 1]][-6:],
                    runs_in_window=[f"#{r.index} {r.market} start {r.start:.3f} killed={r.killed} "
                                    f"kill={r.kill}" for r in self.runs
                                    if r.end >= first - 1e-9 and r.start <= times[i]] or who[-1:])
        self.checked_buckets[(name, kind)] = max(start, len(times))

    def check_logs(self, run: RunRecord, db: Any) -> None:
        rows = db.execute(
            "select method, path, attempt, status, outcome from rate_limit_logs where run_id = ?"
            " order by id", (run.run_id,)).fetchall()
        logged = [tuple(r) for r in rows]
        expected = run.attempts
        where = self._where(run)
        if logged != expected[: len(logged)]:
            first = next(i for i, (a, b) in enumerate(zip(logged, expected)) if a != b) \
                if any(a != b for a, b in zip(logged, expected)) else min(len(logged), len(expected))
            raise Violation("logs", f"rate_limit_logs of the run differ from its attempts at row {first}",
                            **where, logged=logged[first:first + 3], attempts=expected[first:first + 3])
        missing = len(expected) - len(logged)
        if not run.killed:
            if missing:
                raise Violation("logs", f"{missing} attempt(s) of a finished run are not in "
                                        "rate_limit_logs", **where, first_missing=expected[len(logged)])
            if run.sends != len(expected):
                raise Violation("logs", f"{run.sends} sends at the transport but {len(expected)} "
                                        "attempts recorded", **where)
        else:
            if missing >= 500:
                raise Violation("logs", f"a killed run lost {missing} log rows (LogWriter buffers < 500)",
                                **where)
            if missing:
                span = run.attempt_times[-1] - run.attempt_times[len(logged)]
                if span >= 1.0:
                    raise Violation("logs", f"a killed run lost rows spanning {span:.3f} s (flush is due "
                                            "after 1 s)", **where)
            if not 0 <= run.sends - len(expected) <= 1:
                raise Violation("logs", f"{run.sends} sends but {len(expected)} attempts in a killed run",
                                **where)
        changes = Counter(
            (lid.lower(), market, price) for lid, market, price in db.execute(
                "select listing_id, market, new_price from price_changes where run_id = ?",
                (run.run_id,)))
        lacking = run.applied - changes
        allowed = 1 if run.killed else 0
        if sum(lacking.values()) > allowed:
            raise Violation("logs", "a price the marketplace applied has no price_changes row",
                            **where, lacking=dict(lacking))
        for table in ("rate_limit_logs", "price_changes", "probes"):
            orphan = db.execute(f"select count(*), min(run_id) from {table} where run_id is null or "
                                "run_id not in (select id from runs)").fetchone()
            if orphan[0]:
                raise Violation("logs", f"{orphan[0]} row(s) of {table} with a run id not in runs "
                                        f"(e.g. {orphan[1]})", **where)

    def _update_belief(self, db: Any) -> None:
        for cid, ts, lid, market, price, status in db.execute(
                "select id, ts, listing_id, market, new_price, status from price_changes where id > ?"
                " order by id", (self.last_change_id,)):
            self.last_change_id = cid
            key = (lid.lower(), market)
            value = Decimal(price) if status == "updated" else None
            old = self.belief.get(key)
            if old is None or (ts, 0) >= old[:2]:
                self.belief[key] = (ts, 0, value)
        for ts, lid, market, final in db.execute(
                "select finished_at, listing_id, market, final_price from probes where state = 'closed'"
                " and finished_at >= ? and final_price is not null order by finished_at, id",
                (self.last_probe_ts,)):
            key = (lid.lower(), market)
            old = self.belief.get(key)
            if old is None or (ts, 1) >= old[:2]:
                self.belief[key] = (ts, 1, Decimal(final))
            self.last_probe_ts = max(self.last_probe_ts, ts)

    def check_recovery(self, run: RunRecord, db: Any, *, final: bool = False) -> None:
        if run.killed:
            return
        where = self._where(run)
        self._update_belief(db)
        open_rows = db.execute("select id, run_id, listing_id, market, state, original_price,"
                               " current_price from probes where state != 'closed'").fetchall()
        failed_restore = {(r["listing_id"].lower(), r["market"]) for r in run.results
                          if "restore failed" in (r["reason"] or "")}
        could_not = " ".join(w for w in run.warnings if "could not restore" in w)
        open_keys = set()
        for pid, rid, lid, market, state, original, current in open_rows:
            key = (lid.lower(), market)
            open_keys.add(key)
            if final:
                ok = False
            elif rid == run.run_id:
                if key not in failed_restore and not self._tried_restore(run, key[0]):
                    raise Violation(
                        "abandoned-dip", f"run ended (exit {run.exit_code}) leaving its own probe {pid} "
                        f"on {lid} ({market}) open without trying to restore it (state {state}, original "
                        f"{original}, current {current}): the dip outlives max_dip until the next run",
                        **where, error=run.error)
                ok = True
            else:
                ok = run.exit_code == 3 or (lid in could_not)
            if not ok:
                raise Violation("recovery", f"probe {pid} of run {rid} on {lid} ({market}) is still "
                                            f"open (state {state}, original {original}, current {current})"
                                            + (" after the final quiet run" if final else ""),
                                **where, exit_code=run.exit_code, error=run.error,
                                warnings=run.warnings[:5])
        mp = self.world.marketplace
        for key, start in self.start_price.items():
            if key in open_keys:
                continue
            actual = mp.offer(key[0], key[1]).price
            belief = self.belief.get(key)
            expected = start if belief is None else belief[2]
            if expected is None or actual != expected:
                raise Violation("recovery", f"listing {key[0]} ({key[1]}) is at {actual}, not at a price "
                                            f"bmctl confirmed ({expected}; belief {belief}, start {start})",
                                **where, exit_code=run.exit_code, error=run.error)

    @staticmethod
    def _tried_restore(run: RunRecord, listing: str) -> bool:
        """After the 401/403 that ended the run (its first one: a refused request ends it), did
        it send a CRITICAL request for the listing (a restore attempt, which the refused
        authentication may have failed in turn)?"""
        first = min((i for i, a in enumerate(run.attempts) if a[3] in (401, 403)), default=None)
        if first is None:
            return False
        return any(p == 0 and lid == listing for p, lid in run.attempt_meta[first + 1:])

    def check_final(self) -> None:
        db = self._open()
        try:
            self.check_recovery(self.runs[-1], db, final=True)
        finally:
            db.close()

    def check_token(self) -> None:
        db = self._open()
        try:
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        for secret in (self.token, base64.b64encode(self.token.encode()).decode()):
            at = dump.find(secret)
            if at >= 0:
                raise Violation("token", "the API token appears in the database",
                                seed=self.config.seed, context=dump[max(0, at - 200): at + 60],
                                replay=self.result.replay)


def run_soak(seed: int, hours: float, **options: Any) -> SoakResult:
    """One soak from a seed; ``result.violation`` is the first broken invariant, or None."""
    return Soak(SoakConfig(seed=seed, hours=hours, **options)).run()
