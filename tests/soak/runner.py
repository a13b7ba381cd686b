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

**Interruption** (SIGHUP, a closed output pipe), drawn from its own seed stream for a share
``interrupt_rate`` of the runs that do not die: the soak makes happen what the CLI would meet,
where it would meet it, and lets bmctl's own code handle it. Each run writes its rows as
``--format ndjson`` through the CLI's :class:`~bmctl.cli.output.Output` into a pipe (a
``TextIOWrapper`` over a ``BufferedWriter``, as ``sys.stdout`` is when piped) whose reader goes
away (``| head -1``) at a random send: from then on every write to the pipe fails with
``BrokenPipeError`` (EPIPE: Python ignores SIGPIPE), met at the next row bmctl emits, or never if
it emits none. SIGHUP is delivered at a random send, at one of these points: while the
controller sleeps (``sleep``), after an answer's log row was buffered (``answer``), or while the
main thread waits for the network (``wait``: with ``max_in_flight`` > 1 in the wire's ``wait``;
with one request at a time inside the blocking send, after the server served it). Delivery calls
the handler installed for SIGHUP at that moment, which during the batch is bmctl's own (it raises
``KeyboardInterrupt``); outside it, SIGHUP's default action ends the process, which the soak then
treats as a death (kill point ``sighup``). The soak pins SIGHUP to its default disposition while
it runs (what cron gives its children). The run then ends as the CLI's ``BmctlGroup.main``
ends it: the process's exit code is computed from what escaped exactly as there (130 for
``KeyboardInterrupt``, ``BrokenPipeError`` and bmctl's ``Interrupted``). An interrupted run is not
dead: every invariant is checked as for any run. ``wait`` with one request at a time is off by
default: it finds a known bug (``tests/soak/test_soak.py``, ``SyncWire``); so does
``output_format="json"`` (rows written at the end: the run record keeps the batch's code).

**Several requests in flight** (``max_in_flight`` > 1): the runtime's wire is a view, tagged with
its run, of one network shared by every run of the soak: an event heap in simulated time, like
the sandbox's ``SimWire``. Each request leaves at once and reaches the marketplace after half its
latency (``latency_ms`` ± ``jitter_ms``, uniform, drawn at the send); the app's faults and the
401 periods are decided at that arrival (a burst's extra latency then delays the answer), and
the answer comes back after the other half, or a timeout. A 429 storm answers at once at the
send. A killed run's requests still arrive at the marketplace (the server got them); answers
addressed to a dead run are discarded. Every move of the clock (the controller's sleeps, the
soak's own advances between runs) first plays the wire's due events in time order. Deaths on
this wire: ``before_send`` in ``start``, ``after_send`` when the answer is handed back to the
controller, ``on_attempt`` as before.

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
    open only if its result says the restore failed (kept for recovery), or, in a run that was
    interrupted (or refused), if a CRITICAL request for it went out after that (its restore was
    tried, and failed). Every listing without
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
    recorded less than ``flush_seconds`` (1 s, simulated) after the first of them; and its sends
    without an attempt are exactly the sends on the wire at the death (counted at the transport:
    sent, and their answer not yet handed back to the controller). Every price the marketplace
    applied (a 2xx to a price POST, malformed answers included) has a ``price_changes`` row of
    that run with that listing and price, except the writes whose answers bmctl had not taken in
    (on the wire, or the one whose answer was being handled) when the run died: a dead run
    cannot record them. A run that stops (its interruption, its first refusal) cancels the
    writes still on the wire but records each in history once the wire is drained (the soak
    found them missing: ``Probe.abandoned_write``). Every
    ``run_id`` in ``rate_limit_logs``, ``price_changes`` and ``probes`` exists in ``runs``.
``exit``
    After every run that was not killed: the run record's ``exit_code`` is the code the process
    exits with (computed as ``BmctlGroup.main`` does). A run whose interruption bmctl met exits
    130, or 3 when an authentication refusal (401/403) came after the interruption (the
    restores were refused: the run says what is left open).
``fairness`` (only with ``fair_share``: a per-market ``--deadline`` that allows about that share
    of the market's catalogue per run)
    No listing with stock goes unprobed (no result row other than ``not_started``) for more than
    two consecutive counted runs of its market. A run counts when it went through its batch to
    the end: not killed, not interrupted, and its output accounts for the whole catalogue, each
    listing probed or ``not_started`` for the deadline. Every other run is excused, neither
    counting nor breaking a streak (a listing it did probe to the end still breaks its own):
    killed runs (they stop wherever they die), interrupted ones (SIGHUP, a closed pipe: they stop
    starting probes by design), runs ended by an authentication refusal (exit 3: the first
    refused request ends the run) or by an error before their batch (the listing pages failed),
    and runs stopped by the circuit breaker (``not_started`` for the breaker). Each of those
    stops short for a reason the order cannot help; the order can only promise that a run which
    spends its deadline begins with the listings that waited longest. Excused too, because the
    deadline did not allow its share there: runs the network slowed (a 429 storm or a fault
    burst overlapped the run, or during it or in the ``IN_FLIGHT_HOLD`` before it a request got
    no answer or a run died with requests on the wire: an unanswered request holds one of the
    two ``competitors`` slots for a minute, halving the probes a run can start). Least recently
    probed first, half the catalogue per run makes a listing wait one run; the second run of
    slack absorbs the runs that came out a little under half, and the listings an excused run
    left behind (a probe cut short is closed, and counts as a turn in bmctl's order).
``cooldown`` (the price-war cooldown, ``[pricing]`` war_rounds/war_window/war_cooldown)
    From the journal after every run: whenever ``war_rounds`` price-war rounds of a (listing,
    market) fall within ``war_window``, no probe of it starts until ``war_cooldown`` after the
    last of them (a held listing gets a ``held`` row and no request). Hence its rounds in any
    ``war_window`` (at most a day) stay at most ``war_rounds + floor(window / war_cooldown)``:
    the dips a price war costs are bounded, whatever the rival does. The catalogue's
    ``price_war`` listings (share ``reacting / 2``) have a rival who undercuts whoever wins.
``raise_back``
    The catalogue's ``rival_leaves`` listings (share ``reacting / 2``) are alone with a rival who
    leaves for hours and comes back. After it leaves, the listing's price must reach its
    ``max_price`` (the highest winning price when alone) less one tick within
    ``raise_back_after`` + two cron slots (counted from the end of a price-war hold that was
    running when it left), checked while the rival is still away. Recovery times and writes
    per listing per day are figures of the result.
``hang``
    The simulated clock's ``monotonic`` is read ``HANG_READS`` times without time moving: bmctl
    spins without sending, sleeping or waiting (with simulated time it would never end).
``token``
    The API token (and its base64) appears nowhere in a dump of every table.
``crash``
    A run raises nothing but bmctl's own errors (mapped to exit codes by the CLI), and
    ``KeyboardInterrupt`` or ``BrokenPipeError`` only when the soak interrupted it.
"""

from __future__ import annotations

import base64
import bisect
import errno
import heapq
import io
import json
import math
import random
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from decimal import Decimal
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from bmctl.api.money import tick
from bmctl.cli.env import CliEnv
from bmctl.cli.output import Output
from bmctl.commands.probe import ProbeRequest, probe, probe_params
from bmctl.commands.run import CommandContext, execute
from bmctl.config import PricingSettings
from bmctl.errors import BmctlError, exit_code_for
from bmctl.pricing.cooldown import CooldownRules, PricingMemory
from bmctl.pricing.plan import plan_probes
from bmctl.pricing.runner import ProbeRunOptions
from bmctl.sandbox.catalogue import BENCH_WEIGHTS, generate_catalogue
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.model import Drift
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.routes import RouteMap
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError

FLOAT_TOL = 1e-9
HANG_READS = 2_000_000  # monotonic() reads without time moving: a spin (see ``hang``)
SIGHUP_POINTS = ("sleep", "answer", "wait")
# How long an unanswered request holds its slots in the ledger (bmctl's in_flight_bound, 60 s
# at the default timeout, plus the longest window that matters here): see ``fairness``.
IN_FLIGHT_HOLD = 61.0
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


class SoakHang(BaseException):
    """bmctl spins in simulated time (see the ``hang`` invariant); never caught by bmctl."""


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
    interrupt_rate: float = 0.1  # share of the runs not killed that are interrupted
    interrupt_max_index: int = 300  # at a send index drawn in [1, interrupt_max_index]
    # SIGHUP points (SIGHUP_POINTS); None: sleep and answer, and wait with max_in_flight > 1
    # (wait with one request at a time finds a known bug, see the module docstring).
    interrupt_points: tuple[str, ...] | None = None
    pipe_share: float = 0.5  # of the interruptions: a closed output pipe (the rest: SIGHUP)
    output_format: str = "ndjson"  # --format of the runs (json: written at the end; a known bug)
    max_in_flight: int = 1  # [traffic] max_in_flight; above 1, the soak's shared wire
    latency_ms: float = 20.0  # per answer, half out and half back
    jitter_ms: float = 0.0  # latency ± jitter, uniform
    fair_share: float | None = None  # deadline for this share of a market's catalogue (fairness)
    reacting: float = 0.0  # share of the catalogue with a reacting rival (half price_war, half rival_leaves)
    reveal: bool = True  # price_to_win reveals the headroom while winning (else: the search, raise back)
    raise_back_after: str = "2h"  # [pricing] raise_back_after: short, so a day sees rivals leave and prices recover

    def sighup_points(self) -> tuple[str, ...]:
        """Where SIGHUP may arrive (see the module docstring)."""
        if self.interrupt_points is not None:
            return self.interrupt_points
        return ("sleep", "answer", "wait") if self.max_in_flight > 1 else ("sleep", "answer")


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
    interrupt: tuple[int, str] | None = None  # planned (send index, "pipe" | "sighup-POINT")
    fired: bool = False  # the pipe's reader went away / SIGHUP was delivered
    interrupted: bool = False  # bmctl met the interruption (a handler raised, a write failed)
    at_attempt: int = -1  # attempts recorded when the run died or was interrupted
    on_wire: int = 0  # sends whose answer bmctl had not taken in at the death
    unseen_writes: Counter = field(default_factory=Counter)  # writes on the wire when it stopped
    open_writes: Counter = field(default_factory=Counter)  # (listing, market, price) not taken in
    exit_code: int | None = None  # the code the process exits with
    error: str = ""
    starts: int = 0  # requests bmctl tried to send (the kill/interrupt index counts these)
    sends: int = 0  # requests that left
    handed: int = 0  # answers (or their absence) handed back to bmctl
    attempts: list[tuple[Any, ...]] = field(default_factory=list)  # (method, path, attempt, status, outcome)
    attempt_times: list[float] = field(default_factory=list)
    attempt_meta: list[tuple[int, str]] = field(default_factory=list)  # (priority, listing id)
    applied: Counter = field(default_factory=Counter)  # (listing, market, price) applied by the app
    warnings: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    pipe: Any = None  # its stdout's ReaderSide


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
    interrupted: int = 0  # runs whose interruption bmctl met
    interrupts: Counter = field(default_factory=Counter)  # kind -> runs interrupted so
    unnoticed: int = 0  # pipes closed with no row written after: the run ended normally
    max_on_wire: int = 0  # most requests of one run on the wire at once
    out_of_order: int = 0  # answers handed back before the answer of an earlier send
    fairness_streak: int = 0  # most consecutive counted runs a listing went unprobed
    fair_runs: int = 0  # runs counted by the fairness invariant
    fair_probed: int = 0  # listings they probed ...
    fair_catalogue: int = 0  # ... out of this many
    war_listings: int = 0  # (listing, market) with a rival who undercuts
    holds: int = 0  # price-war holds engaged (every listing)
    held_rows: int = 0  # probe rows `held` (no request)
    max_rounds_in_window: int = 0  # most price-war rounds of one listing within war_window
    leaves_checked: int = 0  # times a rival left and the recovery was checked
    recovery_seconds: list[float] = field(default_factory=list)  # leave -> price within a tick of max
    writes_per_day: dict[str, list[int]] = field(default_factory=dict)  # scenario -> per listing-day
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
                f"429s, {self.auth_refused} 401s, {self.recovered} recovered, {self.interrupted} "
                f"interrupted {dict(sorted(self.interrupts.items()))} (+{self.unnoticed} closed pipes "
                f"unnoticed), exit codes {dict(sorted(self.exit_codes.items()))}")
        if self.max_on_wire > 1:
            text += f", up to {self.max_on_wire} on the wire, {self.out_of_order} answers out of order"
        if self.war_listings or self.recovery_seconds:
            text += (f", price wars: {self.holds} holds, {self.held_rows} held rows, at most "
                     f"{self.max_rounds_in_window} rounds in a window; {self.leaves_checked} leaves, "
                     f"recovered within {max(self.recovery_seconds, default=0) / 60:.0f} min")
        if self.fair_runs:
            text += (f", fairness: {self.fair_probed / max(self.fair_catalogue, 1):.0%} of the "
                     f"catalogue probed per counted run ({self.fair_runs}), longest streak unprobed "
                     f"{self.fairness_streak}")
        text += f", {self.simulated_hours:.2f} h simulated in {self.wall_seconds:.1f} s wall"
        if self.violation is not None:
            text += f"\n  {self.violation.describe()}\n  replay: {self.replay}"
        return text


class ReaderSide(io.RawIOBase):
    """The pipe a run's stdout writes into: once its reader has gone (``| head -1`` is done),
    every write fails with EPIPE as the kernel makes it (Python ignores SIGPIPE)."""

    def __init__(self, on_broken: Callable[[], None]) -> None:
        super().__init__()
        self.gone = False
        self.on_broken = on_broken
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.gone:
            self.on_broken()
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        self.lines += bytes(data).count(b"\n")
        return len(data)


def piped_stdout(raw: ReaderSide) -> io.TextIOWrapper:
    """``sys.stdout`` as Python makes it on a pipe: block-buffered text over a buffered writer."""
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", write_through=False)


class SoakTransport:
    """The transport bmctl sends through: ground truth of every send, fault episodes, death and
    interruption. One request at a time (``send``), or a wire per run over :class:`SoakWire`."""

    def __init__(self, soak: "Soak") -> None:
        self.soak = soak
        self.world = soak.world
        self.inner = soak.world.transport
        self.clock = soak.world.clock
        self.rng = random.Random(soak.config.seed * 7919 + 17)
        self.latency_rng = random.Random(soak.config.seed * 104_729 + 29)
        self.routes = RouteMap.default()
        self.times: dict[str, list[float]] = {name: [] for name in soak.limits}
        self.arrivals: dict[str, list[float]] = {name: [] for name in soak.limits}
        self.run: RunRecord | None = None
        self.quiet = False
        self.network: SoakWire | None = None
        self.view: SoakWireView | None = None
        app = self.world.app
        respond = app.respond

        def respond_and_count(request: HttpRequest, decision: Any) -> HttpResponse:
            now = self.clock.monotonic()
            for name in self.routes.lookup(request.method, request.path):
                if name in self.arrivals:
                    self.arrivals[name].append(now)
            return respond(request, decision)

        app.respond = respond_and_count  # type: ignore[method-assign]

    def wire(self, workers: int) -> "SoakWireView":
        """The run's view of the shared network (Runtime asks for it when max_in_flight > 1)."""
        assert self.network is not None and self.run is not None
        self.view = SoakWireView(self.network, self.run, workers)
        return self.view

    def latency(self) -> float:
        """One request's round trip in seconds: ``latency_ms`` ± ``jitter_ms``."""
        cfg = self.soak.config
        spread = self.latency_rng.uniform(-cfg.jitter_ms, cfg.jitter_ms) if cfg.jitter_ms else 0.0
        return max(0.0, cfg.latency_ms + spread) / 1000.0

    def leave(self, run: RunRecord, request: HttpRequest) -> HttpResponse | None:
        """A request leaves bmctl: death before it, the pipe's reader going away, the counts;
        returns the 429 of a storm (answered at once, the app never sees it) or None."""
        soak = self.soak
        now = self.clock.monotonic()
        run.starts += 1
        if run.kill is not None and run.starts == run.kill[0] and run.kill[1] == "before_send":
            raise SoakKilled("before_send")  # dies before the request leaves: not a send
        if run.interrupt is not None and run.interrupt[1] == "pipe" and run.starts == run.interrupt[0]:
            run.fired = True
            run.pipe.gone = True  # type: ignore[attr-defined]
        run.sends += 1
        soak.result.sends += 1
        for name in self.routes.lookup(request.method, request.path):
            if name in self.times:
                self.times[name].append(now)
        if request.method == "POST" and request.path.startswith("/ws/listings/"):
            soak.result.writes += 1
            soak.check_write(request, run, now)
            key = write_key(request)
            if key is not None:
                run.open_writes[key] += 1
        storm = self._episodes(now)[0]
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
        return None

    def set_app(self, now: float) -> None:
        """The app's faults and token as the episodes make them at ``now``."""
        _, burst, auth = self._episodes(now)
        app = self.world.app
        app.faults = burst if burst is not None else (None if self.quiet else self.soak.background)
        app.token = "rotated-elsewhere" if auth else self.world.token

    def reset_app(self) -> None:
        self.world.app.faults, self.world.app.token = None, self.world.token

    def served(self, run: RunRecord, request: HttpRequest, response: HttpResponse) -> None:
        """What the marketplace answered: counts, and the prices it applied."""
        if response.status == 429:
            self.soak.result.app_429 += 1
        if response.status == 401:
            self.soak.result.auth_refused += 1
        if 200 <= response.status < 300:
            key = write_key(request)
            if key is not None:
                run.applied[key] += 1

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        soak, run = self.soak, self.run
        assert run is not None
        storm = self.leave(run, request)
        if storm is not None:
            run.handed += 1
            return storm
        self.set_app(self.clock.monotonic())
        if soak.config.jitter_ms:
            self.inner.latency = self.latency()
        try:
            response = self.inner.send(request, timeout)
        except TransportError:
            run.handed += 1
            raise
        finally:
            self.reset_app()
        self.served(run, request, response)
        if run.kill is not None and run.starts == run.kill[0] and run.kill[1] == "after_send":
            raise SoakKilled("after_send")
        if soak.due(run, "sighup-wait"):
            soak.hangup(run)  # blocked in the request, the server has served it
        run.handed += 1
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


def write_key(request: HttpRequest) -> tuple[str, str | None, Any] | None:
    """(listing, market, price) of a price write, else None."""
    if request.method != "POST" or not request.path.startswith("/ws/listings/") or not request.listing_id:
        return None
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    price = body.get("price") if isinstance(body, dict) else None
    return (request.listing_id.lower(), request.market, price)


@dataclass(eq=False)
class _Flight:
    """One request on the soak's network."""

    view: "SoakWireView"
    token: Any
    request: HttpRequest
    number: int  # its send number in its run
    sent: float
    latency: float
    timeout: float


class SoakWire:
    """The network of a soak with ``max_in_flight`` > 1: one event heap in simulated time shared
    by every run (see the module docstring); each run sends through its :class:`SoakWireView`."""

    def __init__(self, transport: SoakTransport) -> None:
        self.transport = transport
        clock = self.clock = transport.clock
        self.app = transport.world.app
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        # Every move of the clock plays the due events first, in time order.
        self._advance = clock.advance
        self._sleep = clock.sleep
        clock.advance = self._advance_hook  # type: ignore[method-assign]
        clock.sleep = self._sleep_hook  # type: ignore[method-assign]

    def _advance_hook(self, seconds: float) -> None:
        target = self.clock.monotonic() + seconds
        self.play_until(target)
        self._advance(target - self.clock.monotonic())

    def _sleep_hook(self, seconds: float) -> None:
        target = self.clock.monotonic() + seconds
        self.play_until(target)
        self._sleep(target - self.clock.monotonic())

    def at(self, when: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, payload))

    def play_until(self, until: float, view: "SoakWireView | None" = None) -> bool:
        """Play the events due by ``until`` in time order; True once one of ``view``'s requests
        finished (it stops there)."""
        events = self._events
        while events and events[0][0] <= until:
            when, _, kind, payload = heapq.heappop(events)
            self._advance(when - self.clock.monotonic())
            if kind == "arrive":
                self._arrive(payload)
            else:
                flight, result = payload
                owner = flight.view
                owner.in_network -= 1
                if owner.dead:
                    continue  # the process it answers is gone
                owner.ready.append((flight, result, when))
                if owner is view:
                    return True
        return False

    def _arrive(self, flight: _Flight) -> None:
        """The request reaches the marketplace: faults and the token as they are now."""
        transport, app = self.transport, self.app
        now = self.clock.monotonic()
        request, sent, timeout = flight.request, flight.sent, flight.timeout
        transport.set_app(now)
        try:
            decision = app.decide(request)
            if decision.fault == "timeout":
                self.at(sent + timeout, "done", (flight, TransportError(
                    "timeout", f"soak: no answer within {timeout:g} s (injected fault)")))
                return
            if decision.fault == "drop":
                self.at(now, "done", (flight, TransportError(
                    "connection", "soak: connection closed without an answer (injected fault)")))
                return
            response = app.respond(request, decision)
        finally:
            transport.reset_app()
        transport.served(flight.view.run, request, response)
        total = flight.latency + decision.latency
        if total > timeout:  # served, but the answer is lost (a write may have landed)
            self.at(sent + timeout, "done", (flight, TransportError(
                "timeout", f"soak: no answer within {timeout:g} s")))
        else:
            self.at(sent + total, "done", (flight, response))


class SoakWireView:
    """One run's wire (``bmctl.traffic.wire.Wire``) over the soak's network, its requests tagged
    with the run: deaths and SIGHUP where the module docstring says."""

    def __init__(self, network: SoakWire, run: RunRecord, capacity: int) -> None:
        self.network = network
        self.run = run
        self.capacity = capacity
        self.clock = network.clock
        self.soak = network.transport.soak
        self.ready: deque[tuple[_Flight, HttpResponse | TransportError, float]] = deque()
        self.dead = False
        self.in_network = 0
        self._latest = 0  # highest send number handed back so far

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        now = self.clock.monotonic()
        run = self.run
        storm = self.network.transport.leave(run, request)
        flight = _Flight(self, token, request, run.sends, now, self.network.transport.latency(), timeout)
        self.in_network += 1
        result = self.soak.result
        result.max_on_wire = max(result.max_on_wire, self.in_network)
        if storm is not None:
            self.network.at(now, "done", (flight, storm))
        else:
            self.network.at(now + min(flight.latency / 2, timeout), "arrive", flight)
        return now

    def poll(self) -> Any:
        self.network.play_until(self.clock.monotonic())
        if not self.ready:
            return ()
        done = list(self.ready)  # handed over: what the controller does not take in is lost
        self.ready.clear()
        return self._hand_over(done)

    def _hand_over(self, done: list[tuple[_Flight, HttpResponse | TransportError, float]]
                   ) -> Iterator[tuple[Any, HttpResponse | TransportError, float]]:
        run = self.run
        for flight, result, when in done:
            if run.kill is not None and flight.number == run.kill[0] and run.kill[1] == "after_send":
                raise SoakKilled("after_send")  # dies as the answer comes in
            run.handed += 1
            if flight.number < self._latest:
                self.soak.result.out_of_order += 1
            self._latest = max(self._latest, flight.number)
            yield flight.token, result, when

    def wait(self, until: float) -> None:
        if self.soak.due(self.run, "sighup-wait"):
            self.soak.hangup(self.run)
        if self.ready or self.network.play_until(until, self):
            return
        if until != math.inf and until > self.clock.monotonic():
            self.network._sleep(until - self.clock.monotonic())

    def close(self) -> None:
        return None


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        if config.profile not in PROFILES:
            raise ValueError(f"unknown profile {config.profile!r} (known: {', '.join(PROFILES)})")
        self.limits = PROFILES[config.profile]
        self.background = BACKGROUND if config.waf else replace(BACKGROUND, waf=0.0, challenge=0.0)
        self.token = f"soak-{config.seed}-{self.rng.getrandbits(64):016x}-tok"
        weights = dict(BENCH_WEIGHTS)
        if config.reacting > 0:
            weights = {k: v * (1 - config.reacting) for k, v in weights.items()}
            weights.update(price_war=config.reacting / 2, rival_leaves=config.reacting / 2)
        specs = generate_catalogue(config.listings, config.markets, seed=config.seed, weights=weights)
        self.world = SimWorld(specs, drift=Drift(interval=60.0, step=Decimal("0.01"),
                                                 band=Decimal("0.10")),
                              seed=config.seed, token=self.token, latency=config.latency_ms / 1000.0,
                              reveal=config.reveal)
        self.pricing = PricingSettings(raise_back_after=config.raise_back_after)
        self.rules = CooldownRules.from_settings(self.pricing)
        # (listing, market) -> scenario: price_war, rival_leaves or other; leavers' schedules.
        self.scenario: dict[tuple[str, str], str] = {}
        self.leavers: dict[tuple[str, str], Any] = {}
        self.recovered: set[tuple[tuple[str, str], int]] = set()  # (key, absence number)
        self.write_times: dict[tuple[str, str], list[float]] = {}
        self.bounds: dict[tuple[str, str], tuple[Decimal | None, Decimal, str]] = {}
        self.start_price: dict[tuple[str, str], Decimal] = {}
        for spec in specs:
            for o in spec.offers:
                key = (spec.id.lower(), o.market)
                self.bounds[key] = (o.min_price.amount if o.min_price else None, o.max_price.amount,
                                    o.price.currency)
                self.start_price[key] = o.price.amount
                kinds = {r.kind for r in o.reacting}
                self.scenario[key] = "price_war" if "undercut" in kinds else \
                    "rival_leaves" if "leave" in kinds else "other"
                if "leave" in kinds:
                    self.leavers[key] = next(r for r in o.reacting if r.kind == "leave")
                if o.min_price is not None:
                    assert o.min_price.amount <= o.price.amount <= o.max_price.amount, key
        self.episodes = self._plan_episodes()
        self._starts = [ep.start for ep in self.episodes]
        self._longest = max((ep.end - ep.start for ep in self.episodes), default=0.0)
        self.result = SoakResult(config.seed, config.hours, config.profile)
        self.result.war_listings = sum(1 for v in self.scenario.values() if v == "price_war")
        self.result.replay = (f"python bench/soak.py --seed {config.seed} --hours {config.hours:g}"
                              + (f" --profile {config.profile}" if config.profile != "default" else "")
                              + (f" --reacting {config.reacting:g}" if config.reacting != 0.1 else "")
                              + (" --hidden" if not config.reveal else "")
                              + (f" --raise-back-after {config.raise_back_after}"
                                 if config.raise_back_after != "2h" else ""))
        self.transport = SoakTransport(self)
        self.write_errors: list[Violation] = []
        self.runs: list[RunRecord] = []
        self.checked_buckets = {(name, kind): 0 for name in self.limits for kind in ("send", "arrival")}
        self.belief: dict[tuple[str, str], tuple[str, int, Decimal | None]] = {}  # key -> (ts, order, price)
        self.last_change_id = 0
        self.last_probe_ts = ""
        unknown = set(config.sighup_points()) - set(SIGHUP_POINTS)
        if unknown:
            raise ValueError(f"unknown SIGHUP point(s) {sorted(unknown)} (known: {', '.join(SIGHUP_POINTS)})")
        self.irng = random.Random(config.seed * 1_000_037 + 5)  # interruptions: their own stream
        if config.max_in_flight > 1:
            self.transport.network = SoakWire(self.transport)
        self._watch_clock()
        # Fairness: what `--all` enumerates in each market (stock never changes in the soak).
        self.catalogue = {m: {listing.id.lower() for listing in self.world.marketplace.listings()
                              if m in listing.offers and listing.quantity >= 1} for m in config.markets}
        self.unprobed: dict[str, Counter] = {m: Counter() for m in config.markets}
        self.fair_deadline = {m: self._deadline_for_share(m) for m in config.markets} \
            if config.fair_share is not None else {}

    def _deadline_for_share(self, market: str) -> float:
        """``--deadline`` for ``fair_share`` of the market's catalogue: the time bmctl's own plan
        gives that many probes at the limits (typical cost per probe, settles included)."""
        assert self.config.fair_share is not None
        params = probe_params(self.world.settings(":memory:"))
        share = max(1, round(self.config.fair_share * len(self.catalogue[market])))
        return plan_probes(share, self.limits, settle=params.settle, max_raises=params.max_raises,
                           peek_retries=params.peek_retries).seconds

    def _watch_clock(self) -> None:
        """The clock's hooks: SIGHUP while the controller sleeps, and the ``hang`` detector."""
        clock = self.world.clock
        read, sleep = clock.monotonic, clock.sleep
        last = [read(), 0]

        def monotonic() -> float:
            now = read()
            if now != last[0]:
                last[0], last[1] = now, 0
            else:
                last[1] += 1
                if last[1] > HANG_READS:
                    last[1] = 0
                    raise SoakHang(f"{HANG_READS} reads of the clock at t={now:.6f} s without time moving")
            return now

        def sleep_and_hangup(seconds: float) -> None:
            run = self.transport.run
            if run is not None and self.due(run, "sighup-sleep"):
                self.hangup(run)
            sleep(seconds)

        clock.monotonic = monotonic  # type: ignore[method-assign]
        clock.sleep = sleep_and_hangup  # type: ignore[method-assign]

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
        # SIGHUP as cron leaves it to its children (not ignored, as under nohup): bmctl installs
        # its handler for the batch only, and the soak delivers SIGHUP by calling what is installed.
        hup = signal.signal(signal.SIGHUP, signal.SIG_DFL) \
            if threading.current_thread() is threading.main_thread() else None
        try:
            self._loop()
        except Violation as violation:
            self.result.violation = violation
        finally:
            if hup is not None:
                signal.signal(signal.SIGHUP, hup)
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
                interrupt = self._plan_interrupt()
                self._one_run(slot, market, kill, quiet=False, interrupt=None if kill else interrupt)
            slot = int(clock.monotonic() // SLOT) + 1
        if cfg.final_quiet_run:
            clock.advance(SLOT - clock.monotonic() % SLOT)
            for i, market in enumerate(cfg.markets):
                if i:
                    clock.advance(cfg.process_gap)
                self._one_run(slot, market, None, quiet=True)
            self.check_final()
        self.check_token()
        self.result.writes_per_day = self.writes_per_day()

    def _plan_interrupt(self) -> tuple[int, str] | None:
        """A run's interruption, if any: (send index, ``pipe`` | ``sighup-POINT``); the same
        number of draws every run, so the plan of one run does not shift the next ones."""
        cfg = self.config
        rng = self.irng
        u, index, v, w = rng.random(), rng.randint(1, cfg.interrupt_max_index), rng.random(), rng.random()
        points = cfg.sighup_points()
        if u >= cfg.interrupt_rate:
            return None
        if v < cfg.pipe_share or not points:
            return index, "pipe"
        return index, "sighup-" + points[int(w * len(points))]

    def due(self, run: RunRecord, kind: str) -> bool:
        """Whether the run's planned interruption of this kind is to happen now."""
        plan = run.interrupt
        return plan is not None and not run.fired and plan[1] == kind and run.starts >= plan[0]

    def hangup(self, run: RunRecord) -> None:
        """Deliver SIGHUP: what is installed for it runs (bmctl's handler raises
        KeyboardInterrupt); the default action ends the process."""
        run.fired = True
        handler = signal.getsignal(signal.SIGHUP)
        if callable(handler):
            self.met_interruption(run)
            handler(signal.SIGHUP, None)
        elif handler != signal.SIG_IGN:
            raise SoakKilled("sighup")

    def met_interruption(self, run: RunRecord) -> None:
        """bmctl meets the interruption now: what it has taken in so far."""
        if not run.interrupted:
            run.interrupted = True
            run.at_attempt = len(run.attempts)

    def _one_run(self, slot: int, market: str, kill: tuple[int, str] | None, *, quiet: bool,
                 interrupt: tuple[int, str] | None = None) -> RunRecord:
        cfg, world = self.config, self.world
        run = RunRecord(index=len(self.runs), slot=slot, market=market, kill=kill, interrupt=interrupt,
                        start=world.clock.monotonic())
        self.runs.append(run)
        self.result.runs += 1
        self.transport.run = run
        self.transport.quiet = quiet
        runtime = world.runtime(self.db_path, limits=dict(self.limits),
                                traffic_max_in_flight=cfg.max_in_flight, pricing=self.pricing)
        runtime.transport = self.transport
        # The run's stdout: a pipe whose reader may go away (the module docstring).
        pipe = run.pipe = ReaderSide(lambda: self.met_interruption(run))
        env = CliEnv(stdout=piped_stdout(pipe), stderr=io.StringIO())
        runtime.__enter__()
        run.run_id = runtime.run_id
        try:
            try:
                controller = runtime.controller
                # What Runtime leaves to the host, pinned for replay (see the module docstring).
                runtime._log.clock = world.clock.monotonic
                controller.rng = random.Random(cfg.seed * 1_000_003 + run.index)
                controller.on_attempt = self._on_attempt(run, controller.on_attempt)
                options = ProbeRunOptions(params=probe_params(runtime.settings),
                                          deadline=self.fair_deadline.get(market, cfg.deadline),
                                          breaker_floor_hits=runtime.settings.probe.breaker_floor_hits)
                core = partial(probe, request=ProbeRequest(all_listings=True, market=market), targets=[],
                               options=options)
                # What the CLI's run_command does around the core: rows out through Output.
                with Output(env, None, format=cfg.output_format) as out:
                    def emit(row: Any) -> None:
                        run.results.append(row)
                        out.emit(row)

                    context = CommandContext(runtime, emit=emit, warn=run.warnings.append)
                    code = execute(context, core, recover=True)
            except (SoakKilled, SoakHang):
                raise
            except BaseException as error:
                runtime.__exit__(type(error), error, error.__traceback__)
                raise
            runtime.__exit__(None, None, None)
            run.exit_code = int(code)  # run_command's finish(code): typer.Exit(code)
        except SoakKilled as death:
            self._die(runtime)
            run.killed = True
            run.at_attempt = len(run.attempts)
            run.on_wire = run.sends - run.handed
            run.unseen_writes |= run.open_writes
            self.result.killed += 1
            self.result.kill_points[str(death)] += 1
        except SoakHang as hang:
            tb = traceback.format_exc(limit=12)
            self._die(runtime)
            run.killed = True
            raise Violation("hang", f"bmctl spins: {hang}", **self._where(run), traceback=tb) from None
        except (KeyboardInterrupt, BrokenPipeError) as stop:
            if not run.interrupted:
                raise Violation("crash", f"{type(stop).__name__} escaped a run the soak did not interrupt",
                                **self._where(run), traceback=traceback.format_exc(limit=8)) from None
            run.error = f"{type(stop).__name__}: {stop}"
            run.exit_code = int(exit_code_for(stop))  # as BmctlGroup.main maps it
        except BmctlError as error:
            run.error = f"{type(error).__name__}: {error}"
            run.exit_code = int(exit_code_for(error))
        except Exception as error:  # noqa: BLE001 - a crash is a finding
            raise Violation("crash", f"run raised {type(error).__name__}: {error}",
                            **self._where(run), traceback=traceback.format_exc(limit=8)) from None
        finally:
            view = self.transport.view
            if view is not None:
                view.dead = True  # answers still coming are addressed to a process that is gone
                self.transport.view = None
            pipe.gone = False  # let the interpreter's last flush through (nothing reads it)
            env.stdout.close()
        if not run.killed:
            self.result.exit_codes[int(run.exit_code)] += 1  # type: ignore[arg-type]
            if run.interrupted:
                self.result.interrupted += 1
                self.result.interrupts[run.interrupt[1]] += 1  # type: ignore[index]
            elif run.fired and run.interrupt is not None and run.interrupt[1] == "pipe":
                self.result.unnoticed += 1
        run.end = world.clock.monotonic()
        self.result.recovered += sum(1 for w in run.warnings if w.startswith("recovered "))
        self.check_after_run(run)
        if cfg.check_token_every and (run.index + 1) % cfg.check_token_every == 0:
            self.check_token()
        return run

    def _on_attempt(self, run: RunRecord, record: Callable[[Any], None]) -> Callable[[Any], None]:
        """The controller's ``on_attempt``: ground truth of the attempts, then the log, then a
        death or SIGHUP planned for this point."""
        clock = self.world.clock

        def on_attempt(attempt: Any) -> None:
            run.attempts.append((attempt.request.method, attempt.request.path, attempt.attempt,
                                 attempt.status, attempt.outcome))
            run.attempt_times.append(clock.monotonic())
            run.attempt_meta.append((int(attempt.priority), (attempt.request.listing_id or "").lower()))
            record(attempt)
            if run.kill is not None and run.starts >= run.kill[0] and run.kill[1] == "on_attempt":
                raise SoakKilled("on_attempt")
            if self.due(run, "sighup-answer"):
                self.hangup(run)
            key = write_key(attempt.request)
            if key is not None:
                run.open_writes[key] -= 1  # bmctl takes this answer in

        return on_attempt


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
        if price is not None:
            self.write_times.setdefault(key, []).append(now)
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
            self.check_exit(run, db)
            self.check_recovery(run, db)
            self.check_cooldown(run, db)
            self.check_raise_back(run, db)
        finally:
            db.close()
        self.check_fairness(run)
        self.result.held_rows += sum(1 for row in run.results if row.get("outcome") == "held")

    def check_cooldown(self, run: RunRecord, db: Any) -> None:
        """The ``cooldown`` invariant (module docstring), from the journal."""
        from bmctl.store.db import parse_utc

        rules = self.rules
        rounds: dict[tuple[str, str], list[float]] = {}
        starts: dict[tuple[str, str], list[float]] = {}
        rows = db.execute("select listing_id, market, outcome, dip_price, started_at,"
                          " coalesce(finished_at, updated_at) from probes")
        for listing, market, outcome, dip, started, finished in rows:
            key = (listing.lower(), market)
            starts.setdefault(key, []).append(parse_utc(started))
            if finished and (outcome in ("unwinnable", "lost")
                             or (dip is not None and outcome not in (None, "error", "capped"))):
                rounds.setdefault(key, []).append(parse_utc(finished))
        holds = 0
        span = min(rules.war_window, 86400.0)
        bound = rules.war_rounds + int(span // rules.war_cooldown)
        for key, times in rounds.items():
            times.sort()
            k = rules.war_rounds
            for i in range(k - 1, len(times)):
                last = times[i]
                if last - times[i - k + 1] > rules.war_window:
                    continue
                holds += 1
                early = [t for t in starts.get(key, ()) if last < t < last + rules.war_cooldown]
                if early:
                    raise Violation("cooldown", f"{key} probed {early[0] - last:.0f} s after the price-war "
                                    f"round that held it for {rules.war_cooldown:.0f} s", **self._where(run))
            j = 0
            for i, t in enumerate(times):
                while times[j] < t - span:
                    j += 1
                self.result.max_rounds_in_window = max(self.result.max_rounds_in_window, i - j + 1)
                if i - j + 1 > bound:
                    raise Violation("cooldown", f"{key}: {i - j + 1} price-war rounds within {span:.0f} s "
                                    f"(at most {bound})", **self._where(run))
        self.result.holds = holds

    def check_raise_back(self, run: RunRecord, db: Any) -> None:
        """The ``raise_back`` invariant (module docstring): prices recover after a rival leaves."""
        from bmctl.pricing.cooldown import RAISE_BACK_MARGIN
        from bmctl.store.db import parse_utc, utc_iso

        now = self.world.clock.monotonic()
        offset = self.world.clock.wall() - now  # monotonic -> wall
        memory: PricingMemory | None = None
        rules = self.rules
        for key, rival in self.leavers.items():
            cycle = rival.present + rival.away
            first = rival.offset + rival.present
            if now < first:
                continue
            number = int((now - first) // cycle)
            left = first + number * cycle
            if now >= left + rival.away or (key, number) in self.recovered:
                continue  # the rival is back, or this absence is settled
            _, ceiling, currency = self.bounds[key]
            if self.world.price(key[0], key[1]).amount >= ceiling - tick(currency):
                self.recovered.add((key, number))
                self.result.leaves_checked += 1
                self.result.recovery_seconds.append(now - left)
                continue
            probed = [r for r in run.results if (r["listing_id"].lower(), r["market"]) == key
                      and r["outcome"] in ("won", "kept", "lost", "unwinnable")]
            if run.killed or not probed or run.start < left or self._degraded(run):
                continue
            # Was this run's probe due to raise it back: the rival gone, no hold, and the price
            # unchanged for raise_back_after before the run?
            started = offset + run.start
            if memory is None:
                memory = PricingMemory.load(_Conn(db), rules, started)
            if memory.hold(key[0], key[1], started) is not None:
                continue
            (last,) = db.execute(
                "select max(ts) from price_changes where lower(listing_id) = ? and market = ?"
                " and status in ('updated', 'sent') and ts < ?", (key[0], key[1], utc_iso(started))).fetchone()
            margin = min(RAISE_BACK_MARGIN, rules.raise_back_after / 10)
            if last is not None and started - parse_utc(last) < rules.raise_back_after - margin:
                continue
            raise Violation("raise_back", f"{key}: the rival left at t={left:.0f} s; the probe at "
                            f"t={run.start:.0f} s was due to raise it back and left it at "
                            f"{probed[0]['final_price']} (max_price {ceiling}): {probed[0]['reason']}",
                            **self._where(run))

    def writes_per_day(self) -> dict[str, list[int]]:
        """Price writes per (listing, market) per simulated day, by scenario."""
        days = max(1, math.ceil(self.config.hours / 24))
        out: dict[str, list[int]] = {}
        for key, scenario in self.scenario.items():
            per_day = Counter(int(t // 86400) for t in self.write_times.get(key, ()))
            out.setdefault(scenario, []).extend(per_day.get(d, 0) for d in range(days))
        return out

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
            if run.sends - len(expected) != run.on_wire:
                raise Violation("logs", f"{run.sends} sends but {len(expected)} attempts in a killed run "
                                        f"with {run.on_wire} send(s) on the wire at its death", **where)
        changes = Counter(
            (lid.lower(), market, price) for lid, market, price in db.execute(
                "select listing_id, market, new_price from price_changes where run_id = ?",
                (run.run_id,)))
        lacking = run.applied - changes - run.unseen_writes
        if lacking:
            raise Violation("logs", "a price the marketplace applied has no price_changes row",
                            **where, lacking=dict(lacking), unseen=dict(run.unseen_writes),
                            interrupted=run.interrupted)
        for table in ("rate_limit_logs", "price_changes", "probes"):
            orphan = db.execute(f"select count(*), min(run_id) from {table} where run_id is null or "
                                "run_id not in (select id from runs)").fetchone()
            if orphan[0]:
                raise Violation("logs", f"{orphan[0]} row(s) of {table} with a run id not in runs "
                                        f"(e.g. {orphan[1]})", **where)

    def check_exit(self, run: RunRecord, db: Any) -> None:
        if run.killed:
            return
        where = self._where(run)
        row = db.execute("select exit_code from runs where id = ?", (run.run_id,)).fetchone()
        recorded = None if row is None else row[0]
        if recorded != run.exit_code:
            raise Violation("exit", f"the run record says exit {recorded}, the process exits {run.exit_code}",
                            **where, error=run.error)
        if run.interrupted:
            refused = any(a[3] in (401, 403) for a in run.attempts[run.at_attempt:])
            if run.exit_code != 130 and not (refused and run.exit_code == 3):
                raise Violation("exit", f"an interrupted run exits {run.exit_code}, not 130",
                                **where, error=run.error)

    def check_fairness(self, run: RunRecord) -> None:
        """The ``fairness`` invariant (module docstring), after every run of the scenario."""
        if self.config.fair_share is None:
            return
        catalogue = self.catalogue[run.market]
        probed = {str(r["listing_id"]).lower() for r in run.results if r.get("outcome") != "not_started"}
        streaks = self.unprobed[run.market]
        for lid in probed:
            streaks.pop(lid, None)
        listed = {str(r["listing_id"]).lower() for r in run.results}
        deadline_only = all(r.get("outcome") != "not_started" or "deadline" in (r.get("reason") or "")
                            for r in run.results)
        if run.killed or run.interrupted or not catalogue <= listed or not deadline_only:
            return  # excused: it stopped before its batch's end (see the module docstring)
        if self._degraded(run):
            return  # excused: the network did not let the deadline buy its share
        result = self.result
        result.fair_runs += 1
        result.fair_probed += len(probed & catalogue)
        result.fair_catalogue += len(catalogue)
        for lid in catalogue - probed:
            streaks[lid] += 1
        worst = max(streaks.values(), default=0)
        result.fairness_streak = max(result.fairness_streak, worst)
        if worst > 2:
            late = sorted(lid for lid, n in streaks.items() if n == worst)
            raise Violation("fairness", f"{len(late)} listing(s) of {run.market} unprobed for {worst} "
                                        f"consecutive runs (e.g. {late[0]})", **self._where(run),
                            probed=f"{len(probed & catalogue)} of {len(catalogue)} this run",
                            deadline=f"{self.fair_deadline[run.market]:.1f} s")

    def _degraded(self, run: RunRecord) -> bool:
        """Whether the network slowed the run: a 429 storm or a fault burst overlapped it, or
        during it or the hold before it (``IN_FLIGHT_HOLD``) a request of any run got no answer,
        or a run died with requests on the wire (their slots stay held that long)."""
        if any(ep.start < run.end and ep.end > run.start and ep.kind in ("storm", "burst")
               for ep in self.episodes):
            return True
        since = run.start - IN_FLIGHT_HOLD
        for other in reversed(self.runs):
            if other.end < since:
                break
            if other.killed and other.on_wire and other.end >= since:
                return True
            first = bisect.bisect_left(other.attempt_times, since)
            if any(a[4] in ("timeout", "connection_error") for a in other.attempts[first:]):
                return True
        return False

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
                if key not in failed_restore and not self._tried_restore(run, key[0]) and not (
                        run.interrupted and self._tried_restore(run, key[0], since=run.at_attempt)):
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
    def _tried_restore(run: RunRecord, listing: str, since: int | None = None) -> bool:
        """After the 401/403 that ended the run (its first one: a refused request ends it), or
        after attempt ``since`` (an interruption), did it send a CRITICAL request for the
        listing (a restore attempt, which the refused authentication may have failed in turn)?"""
        if since is None:
            first = min((i for i, a in enumerate(run.attempts) if a[3] in (401, 403)), default=None)
            if first is None:
                return False
            since = first + 1
        return any(p == 0 and lid == listing for p, lid in run.attempt_meta[since:])

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


class _Conn:
    """A plain sqlite3 connection where ``PricingMemory.load`` expects sqlite-utils' ``db.conn``."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn


def run_soak(seed: int, hours: float, **options: Any) -> SoakResult:
    """One soak from a seed; ``result.violation`` is the first broken invariant, or None."""
    return Soak(SoakConfig(seed=seed, hours=hours, **options)).run()
