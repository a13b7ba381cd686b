"""Rate under answer delay, one process and several: the budget ledger vs token buckets vs a model
of the seed's controller vs PyrateLimiter (SQLite + file lock) vs requests-ratelimiter.

Real time, real HTTP on loopback. Every run gets a fresh sandbox server in its own process
(``start_in_thread`` around a ``SandboxApp``) with the published limits enforced as sliding
windows on arrival time (429 + a 10 s block of the scope on a breach) and an answer delay of
``Faults(latency=L, jitter=J)``: uniform in L ± J ms, half before the app sees the request, half
after. Clients run in their own OS processes, one request at a time each (bmctl's controller is
single-threaded by design; every contender here is used the same way), and saturate one bucket:
competitors (2/1 s, ``GET /ws/backbox/v1/competitors/{id}``) or global (200/10 s,
``GET /ws/listings/{id}``).

Contenders (``--only``):

- ``ledger``: bmctl today: ``TrafficController`` over a ``SqliteLedger`` in a fresh database
  (migrated with ``open_database``), ``RouteMap.default()``, ``RequestsTransport``,
  ``SystemClock``, built as ``bmctl.runtime`` builds it (default ``Settings``: timeout 30 s,
  ``in_flight_bound`` 60 s, poll 50 ms). Processes of one run share that database.
- ``tb1`` / ``tb1000``: the pre-ledger design, frozen in ``bench/legacy/`` (token buckets with
  jitter allowance 0.05 s and the old controller, from commit 8e18beb), with ``burst`` 1 and with
  ``burst`` 1000. The old ``LimitSpec`` refuses a burst above the limit, so 1000 is clamped to
  each bucket's limit (competitors 2, global 200, listing_writes 1000). Nothing is shared.
- ``seed``: the *model* of the seed's controller in ``bench/peers/seed_controller.py``, written
  from its description (fixed windows refilled whole, 150/200 global and 15/20 catalog,
  polling every 100 ms, 429 retried after 2/4/8 s). Nothing is shared.
- ``pyrate``: PyrateLimiter ``SQLiteBucket.init_from_file(..., use_file_lock=True)`` with one
  ``Rate(limit, window)`` (the workload's published limit), ``Limiter(bucket)`` (default
  ``buffer_ms``), ``try_acquire`` blocking, then a plain ``requests.Session().get``. Processes of
  one run share the SQLite file and its file lock (``use_file_lock`` needs the ``filelock``
  package: ``pip install 'pyrate-limiter[filelock]'``).
- ``rrl``: requests-ratelimiter ``LimiterSession`` at the documented rate
  (``per_second=2`` for 2/1 s; ``per_second=20, burst=10`` = ``Rate(200, 10 s)`` for 200/10 s).
  Nothing is shared.

Counting is at the server: a wrapper records, for every request that reached the app, the
instant the sandbox's limiter judged it (its own clock reading) and the status. Definitions:

- t0 = the first arrival of the run (any status, any process); D = ``--seconds``;
- % of limit = 2xx arrivals in [t0, t0 + D) / (limit × D / window) — at most 100 %, since D is a
  whole number of windows and the server admits at most the limit in each; the first arrival
  counts, so a client that sends a full window at t0 scores 100 % though its long-run rate may be
  a little lower (the "ledger rule bound" column gives the steady state);
- 429s = every 429 the server answered during the run (inside or after the D window); breaches =
  those that started a 10 s block (the request over the limit), the rest fell into a block;
- max/W = the most arrivals (any status, so refused ones too) in any closed interval of one
  window length [t, t + W], over the whole run: the load the client offered, against the limit.

Cross-process (``×P`` rows): P processes of the same contender start at the same instant
against one server, sharing what the contender shares (above). Runs at a nonzero delay are run
``--jobs`` contenders at a time (each with its own server), since the machine is then idle;
at 0 ms, where the CPU is the only latency, one at a time (``--jobs-at-zero``).

    python bench/rate.py                 # full run, ~12 min on 2 cores
    python bench/rate.py --quick         # smoke run (not for figures), ~2 min
    python bench/rate.py --seconds 20 --delays 0,150:100,300:150 --only ledger,tb1 \\
        --buckets competitors,global --procs competitors=2,global=4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

# Imported here, before any fork, so that every child starts with them loaded.
import requests  # noqa: E402,F401
from _common import header, percentile, table  # noqa: E402

try:  # the bench extra; a missing one fails its own rows only
    import pyrate_limiter  # noqa: F401
    import requests_ratelimiter  # noqa: F401
except ImportError:
    pass

from legacy import token_buckets as legacy_buckets  # noqa: E402
from legacy.token_controller import TrafficController as LegacyTrafficController  # noqa: E402
from peers.seed_controller import SeedTrafficController  # noqa: E402

from bmctl.api.http import RequestsTransport  # noqa: E402
from bmctl.config import Settings  # noqa: E402
from bmctl.sandbox.app import SandboxApp  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.faults import Faults  # noqa: E402
from bmctl.sandbox.limits import DEFAULT_BLOCK as SERVER_BLOCK  # noqa: E402
from bmctl.sandbox.limits import DEFAULT_LIMITS as SERVER_LIMITS  # noqa: E402
from bmctl.sandbox.model import Marketplace  # noqa: E402
from bmctl.sandbox.server import start_in_thread  # noqa: E402
from bmctl.store.db import open_database  # noqa: E402
from bmctl.store.ledger import POLL_INTERVAL, SqliteLedger  # noqa: E402
from bmctl.traffic.admission import guard  # noqa: E402
from bmctl.traffic.clock import SystemClock  # noqa: E402
from bmctl.traffic.controller import TrafficController  # noqa: E402
from bmctl.traffic.routes import RouteMap  # noqa: E402
from bmctl.traffic.transport import HttpRequest  # noqa: E402

TOKEN = "sandbox"
UA = "BM-bench-bmctl;bench@example.invalid"
CLIENT_HEADER = "x-bench-client"
SPECS = generate_catalogue(60, seed=3)


@dataclass(frozen=True)
class Workload:
    limit: int
    window: float
    path: Callable[[Any], str]


WORKLOADS = {
    "competitors": Workload(2, 1.0, lambda spec: f"/ws/backbox/v1/competitors/{spec.id}"),
    "global": Workload(200, 10.0, lambda spec: f"/ws/listings/{spec.id}"),
}


def headers_for(spec, client: int) -> dict[str, str]:
    return {"Authorization": f"Basic {TOKEN}", "Accept-Language": spec.offers[0].market,
            "User-Agent": UA, "Accept": "application/json", CLIENT_HEADER: str(client)}


def requests_for(workload: Workload, client: int):
    """An endless cycle of (spec, path, headers), each process starting at its own listing."""
    specs = SPECS[client % len(SPECS):] + SPECS[: client % len(SPECS)]
    for spec in itertools.cycle(specs):
        yield spec, workload.path(spec), headers_for(spec, client)


# --- the server ---------------------------------------------------------------------------------

class CountingApp:
    """Delegates to a SandboxApp; records (limiter's clock reading, status, client) per request."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self.log: list[tuple[float, int, int]] = []
        self._judged: float | None = None
        limiter = app.limiter
        assert limiter is not None
        clock = limiter.clock

        def recording_clock() -> float:
            self._judged = now = clock()
            return now

        limiter.clock = recording_clock

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    def respond(self, request, decision):  # called under the server's lock
        self._judged = None
        arrived = time.monotonic()
        response = self.app.respond(request, decision)
        at = self._judged if self._judged is not None else arrived
        client = int(request.headers.get(CLIENT_HEADER, "-1"))
        self.log.append((at, response.status, client))
        return response


def server_main(conn, latency: float, jitter: float, seed: int) -> None:
    marketplace = Marketplace(time.monotonic, settle=2.0, rng=random.Random(seed))
    marketplace.load(SPECS)
    app = CountingApp(SandboxApp(marketplace, token=TOKEN, faults=Faults(latency=latency, jitter=jitter),
                                 limits=SERVER_LIMITS, rng=random.Random(seed)))
    server, url = start_in_thread(app)  # type: ignore[arg-type]
    conn.send(url)
    conn.recv()  # stop
    server.stop()
    conn.send(list(app.log))
    conn.close()


# --- the contenders (each runs in its own client process) ---------------------------------------

@dataclass
class Job:
    key: str
    workload: str
    url: str
    client: int
    start_at: float
    end_at: float
    shared: str  # a folder the processes of one run share
    requests: int  # how many requests to queue (more than the run can send)


@dataclass
class ClientStats:
    latencies: list[float] = field(default_factory=list)  # seconds, per attempt with an answer
    statuses: Counter = field(default_factory=Counter)
    errors: int = 0
    late_start: float = 0.0
    failure: str | None = None
    how: str = ""


class StopClock:
    """The system clock, whose sleeps never run past the end of the run."""

    def __init__(self, end: float) -> None:
        self.end = end

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        seconds = min(seconds, self.end - time.monotonic())
        if seconds > 0:
            time.sleep(seconds)


def _wait_for_start(job: Job, stats: ClientStats) -> None:
    now = time.monotonic()
    if now < job.start_at:
        time.sleep(job.start_at - now)
    else:
        stats.late_start = now - job.start_at


def _submit_all(controller, job: Job) -> None:
    gen = requests_for(WORKLOADS[job.workload], job.client)
    for spec, path, hdrs in itertools.islice(gen, job.requests):
        controller.submit(HttpRequest("GET", path, headers=hdrs, base_url=job.url,
                                      listing_id=spec.id, market=spec.offers[0].market))


def _record_attempt(stats: ClientStats):
    def on_attempt(attempt) -> None:
        if attempt.status is None:
            stats.errors += 1
        else:
            stats.latencies.append(attempt.latency_ms / 1000.0)
            stats.statuses[attempt.status] += 1
    return on_attempt


def run_ledger(job: Job, stats: ClientStats) -> None:
    settings = Settings()
    clock = SystemClock()
    in_flight_bound = 2 * settings.timeout  # as bmctl.runtime: requests applies it twice
    ledger = SqliteLedger(os.path.join(job.shared, "bmctl.db"), settings.limits, clock,
                          run_id=f"bench-{job.client}", poll_interval=POLL_INTERVAL,
                          in_flight_bound=in_flight_bound,
                          claim_ttl=settings.probe.max_dip + in_flight_bound)
    transport = RequestsTransport()
    controller = TrafficController(ledger, RouteMap.default(), transport, clock=StopClock(job.end_at),
                                   on_attempt=_record_attempt(stats), max_attempts=settings.max_attempts,
                                   timeout=settings.timeout)
    _submit_all(controller, job)
    stats.how = (f"TrafficController + SqliteLedger (poll {POLL_INTERVAL * 1000:g} ms, in_flight_bound "
                 f"{in_flight_bound:g} s), RouteMap.default(), RequestsTransport")
    _wait_for_start(job, stats)
    try:
        controller.run(until=lambda: time.monotonic() >= job.end_at)
    finally:
        controller.cancel_all()
        ledger.close()
        transport.close()


def _run_legacy(job: Job, stats: ClientStats, burst: int) -> None:
    settings = Settings()
    specs = {name: legacy_buckets.LimitSpec(s.limit, s.window, burst=min(burst, s.limit), penalty=s.penalty)
             for name, s in settings.limits.items()}
    clock = StopClock(job.end_at)
    buckets = legacy_buckets.make_buckets(specs, clock=clock, jitter=legacy_buckets.DEFAULT_JITTER)
    transport = RequestsTransport()
    controller = LegacyTrafficController(buckets, RouteMap.default(), transport, clock=clock,
                                         on_attempt=_record_attempt(stats),
                                         max_attempts=settings.max_attempts, timeout=settings.timeout)
    _submit_all(controller, job)
    b = buckets[job.workload]
    stats.how = (f"bench/legacy (8e18beb) TrafficController + TokenBucket, jitter "
                 f"{legacy_buckets.DEFAULT_JITTER:g} s; {job.workload}: burst {b.capacity}, "
                 f"one token per {b.interval * 1000:.2f} ms")
    _wait_for_start(job, stats)
    try:
        controller.run(until=lambda: time.monotonic() >= job.end_at)
    finally:
        controller.cancel_all()
        transport.close()


def run_tb1(job: Job, stats: ClientStats) -> None:
    _run_legacy(job, stats, 1)


def run_tb1000(job: Job, stats: ClientStats) -> None:
    _run_legacy(job, stats, 1000)


def run_seed(job: Job, stats: ClientStats) -> None:
    transport = RequestsTransport()

    def on_attempt(request, latency: float, status: int | None) -> None:
        if status is None:
            stats.errors += 1
        else:
            stats.latencies.append(latency)
            stats.statuses[status] += 1

    gen = requests_for(WORKLOADS[job.workload], job.client)
    _wait_for_start(job, stats)
    # Built at the start instant: its fixed windows begin with the first send (the model's best
    # case; a controller built earlier would meet the end of a window with a full bucket).
    controller = SeedTrafficController(RouteMap.default(), transport, clock=StopClock(job.end_at),
                                       on_attempt=on_attempt)
    b = controller.buckets[job.workload]
    stats.how = (f"bench/peers/seed_controller.py (a model): {job.workload} {b.capacity} per "
                 f"{b.window:g} s fixed window (windows start at the first send), poll 100 ms, "
                 "429 retried after 2/4/8 s")
    stop = lambda: time.monotonic() >= job.end_at  # noqa: E731
    try:
        for _spec, path, hdrs in gen:
            if stop():
                break
            controller.execute(HttpRequest("GET", path, headers=hdrs, base_url=job.url), stop)
    finally:
        transport.close()


def _plain_loop(job: Job, stats: ClientStats, session, before: Callable[[float], bool]) -> None:
    """GET until the end: ``before(remaining)`` waits for the limiter (False: stop)."""
    gen = requests_for(WORKLOADS[job.workload], job.client)
    _wait_for_start(job, stats)
    for _spec, path, hdrs in gen:
        remaining = job.end_at - time.monotonic()
        if remaining <= 0 or not before(remaining):
            break
        try:
            answer = session.get(job.url + path, headers=hdrs, timeout=30)
        except requests.exceptions.Timeout as exc:
            if "max_delay" in str(exc):  # requests-ratelimiter's own wait ran past the end
                break
            stats.errors += 1
            continue
        except requests.exceptions.RequestException:
            stats.errors += 1
            continue
        # requests' own timing of the exchange: a LimiterSession's wait (before it) is not in it
        stats.latencies.append(answer.elapsed.total_seconds())
        stats.statuses[answer.status_code] += 1


def run_pyrate(job: Job, stats: ClientStats) -> None:
    import pyrate_limiter
    from pyrate_limiter import Limiter, Rate, SQLiteBucket

    w = WORKLOADS[job.workload]
    rate = Rate(w.limit, int(w.window * 1000))
    bucket = SQLiteBucket.init_from_file([rate], table="bench_rate", db_path=os.path.join(job.shared, "pyrate.sqlite"),
                                         create_new_table=True, use_file_lock=True)
    limiter = Limiter(bucket)
    stats.how = (f"pyrate-limiter {pyrate_limiter.__version__}: Limiter(SQLiteBucket.init_from_file([Rate({w.limit}, "
                 f"{int(w.window * 1000)} ms)], use_file_lock=True)), buffer_ms {limiter.buffer_ms}, "
                 "try_acquire(blocking=True) then requests.Session().get")
    session = requests.Session()
    try:
        _plain_loop(job, stats, session,
                    lambda remaining: bool(limiter.try_acquire("bench", blocking=True, timeout=remaining)))
    finally:
        session.close()
        limiter.bucket_factory.close()


def run_rrl(job: Job, stats: ClientStats) -> None:
    from importlib.metadata import version

    from requests_ratelimiter import LimiterSession

    w = WORKLOADS[job.workload]
    per_second, burst = w.limit / w.window, w.window  # Rate(per_second * burst, burst seconds)
    session = LimiterSession(per_second=per_second, burst=burst)
    stats.how = (f"requests-ratelimiter {version('requests-ratelimiter')}: LimiterSession(per_second={per_second:g}, "
                 f"burst={burst:g}) = {w.limit}/{w.window:g} s")

    def before(remaining: float) -> bool:
        session.max_delay = remaining  # give up the wait at the end of the run
        return True

    try:
        _plain_loop(job, stats, session, before)
    finally:
        session.close()


@dataclass(frozen=True)
class Contender:
    label: str
    shares: str
    run: Callable[[Job, ClientStats], None]


CONTENDERS: dict[str, Contender] = {
    "ledger": Contender("bmctl budget ledger", "one SQLite database", run_ledger),
    "tb1": Contender("token buckets, burst 1 (pre-ledger)", "nothing", run_tb1),
    "tb1000": Contender("token buckets, burst 1000 (pre-ledger)", "nothing", run_tb1000),
    "seed": Contender("model of the seed's controller", "nothing", run_seed),
    "pyrate": Contender("PyrateLimiter SQLiteBucket + file lock", "one SQLite file + file lock", run_pyrate),
    "rrl": Contender("requests-ratelimiter", "nothing", run_rrl),
}


def client_main(conn, job: Job) -> None:
    stats = ClientStats()
    try:
        CONTENDERS[job.key].run(job, stats)
    except BaseException:  # noqa: BLE001 - reported in the table, not swallowed
        stats.failure = traceback.format_exc(limit=6)
    conn.send(stats)
    conn.close()


# --- one run: a server and P clients ------------------------------------------------------------

@dataclass(frozen=True)
class Delay:
    latency: float
    jitter: float

    @property
    def label(self) -> str:
        return f"{self.latency:g} ms" if not self.jitter else f"{self.latency:g} ± {self.jitter:g} ms"


@dataclass
class Result:
    key: str
    workload: str
    delay: Delay
    procs: int
    seconds: float
    log: list[tuple[float, int, int]]
    clients: list[ClientStats]
    took: float

    @property
    def spec(self) -> Workload:
        return WORKLOADS[self.workload]

    def window_2xx(self) -> list[tuple[float, int, int]]:
        if not self.log:
            return []
        t0 = self.log[0][0]
        return [e for e in self.log if t0 <= e[0] < t0 + self.seconds and 200 <= e[1] < 300]

    @property
    def ok(self) -> int:
        return len(self.window_2xx())

    @property
    def pct(self) -> float:
        w = self.spec
        return 100.0 * self.ok / (w.limit * self.seconds / w.window)

    @property
    def n429(self) -> int:
        return sum(1 for e in self.log if e[1] == 429)

    @property
    def breaches(self) -> int:
        """429s that started a block: the limit itself was exceeded (the others fell in a block)."""
        count, blocked_until = 0, -math.inf
        for t, status, _ in self.log:
            if status == 429 and t >= blocked_until:
                count += 1
                blocked_until = t + SERVER_BLOCK
        return count

    @property
    def other(self) -> int:
        return sum(1 for e in self.log if not (200 <= e[1] < 300 or e[1] == 429))

    def max_in_window(self, statuses: Callable[[int], bool] = lambda s: True) -> int:
        times = [e[0] for e in self.log if statuses(e[1])]
        w = self.spec.window
        return max((bisect_right(times, t + w) - i for i, t in enumerate(times)), default=0)

    def rtt(self) -> list[float]:
        return [x for c in self.clients for x in c.latencies]

    def split(self) -> str:
        per = Counter(e[2] for e in self.window_2xx())
        return "/".join(str(per.get(i, 0)) for i in range(self.procs))

    def failures(self) -> list[str]:
        return [c.failure for c in self.clients if c.failure]


class Run:
    """One contender × workload × delay × process count: its server and its clients."""

    def __init__(self, ctx, key: str, workload: str, delay: Delay, procs: int, seconds: float, seed: int) -> None:
        self.ctx, self.key, self.workload, self.delay, self.procs = ctx, key, workload, delay, procs
        self.seconds, self.seed = seconds, seed
        self.shared = tempfile.mkdtemp(prefix=f"bench-rate-{key}-")
        self.server = None
        self.clients: list[tuple[Any, Any]] = []

    def start_server(self) -> None:
        if self.key == "ledger":  # the database exists and is migrated before any process opens it
            db = open_database(os.path.join(self.shared, "bmctl.db"))
            db.conn.close()
        parent, child = self.ctx.Pipe()
        self.server = (self.ctx.Process(target=server_main, args=(child, self.delay.latency, self.delay.jitter,
                                                                    self.seed), daemon=True), parent)
        self.server[0].start()
        if not parent.poll(30):
            raise RuntimeError("sandbox server did not start")
        self.url = parent.recv()

    def start_clients(self, start_at: float) -> None:
        self.started = time.monotonic()
        w = WORKLOADS[self.workload]
        n = int(w.limit / w.window * (self.seconds + 5) * 1.5) + 50
        for i in range(self.procs):
            job = Job(self.key, self.workload, self.url, i, start_at, start_at + self.seconds + TAIL_S,
                      self.shared, n)
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=client_main, args=(child, job), daemon=True)
            proc.start()
            self.clients.append((proc, parent))

    def finish(self) -> Result:
        stats: list[ClientStats] = []
        deadline = time.monotonic() + self.seconds + TAIL_S + 60
        for proc, conn in self.clients:
            if conn.poll(max(0.0, deadline - time.monotonic())):
                stats.append(conn.recv())
                proc.join(10)
            else:
                s = ClientStats()
                s.failure = "client did not finish in time (killed)"
                stats.append(s)
            if proc.is_alive():
                proc.kill()
                proc.join()
        proc, conn = self.server  # type: ignore[misc]
        conn.send("stop")
        log = conn.recv() if conn.poll(30) else []
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        shutil.rmtree(self.shared, ignore_errors=True)
        log.sort()
        return Result(self.key, self.workload, self.delay, self.procs, self.seconds, log, stats,
                      time.monotonic() - self.started)


TAIL_S = 1.0  # clients go on this long past t_start + D, so the D window after t0 is full


def start_lead(processes: int) -> float:
    """Time for the client processes to fork and build their contender before the start."""
    return 0.5 + 0.05 * processes


def run_batch(ctx, specs: list[tuple[str, str, Delay, int]], seconds: float, seed: int) -> list[Result]:
    """Start the runs of ``specs`` together (each with its own server), wait, count."""
    runs = [Run(ctx, key, workload, delay, procs, seconds, seed) for key, workload, delay, procs in specs]
    for run in runs:
        run.start_server()
    start_at = time.monotonic() + start_lead(sum(run.procs for run in runs))
    for run in runs:
        run.start_clients(start_at)
    return [run.finish() for run in runs]


# --- report -------------------------------------------------------------------------------------

def cell(r: Result) -> str:
    if r.failures():
        return "failed"
    return f"{r.pct:.1f} % / {r.n429}" + (f" ({r.breaches})" if r.n429 else "")


def ledger_bound(r: Result) -> float | None:
    """Steady-state bound of the anchored rule for P one-at-a-time clients with mean answer time
    ``rtt``: each request holds a slot rtt + window + guard, and each client sends at most one
    per rtt: min(P / rtt, limit / (window + guard + rtt)), as a % of the limit."""
    rtt = r.rtt()
    if not rtt:
        return None
    mean = statistics.fmean(rtt)
    w = r.spec
    rate = min(r.procs / mean if mean > 0 else math.inf, w.limit / (w.window + guard(w.window) + mean))
    return 100.0 * rate / (w.limit / w.window)


def header_text(quick: bool) -> str:
    """The header, read when the run starts (the commit and tree the run imported)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        header("Rate under answer delay: budget ledger vs token buckets vs the seed's controller (model) "
               "vs PyrateLimiter vs requests-ratelimiter" + (" — QUICK SMOKE RUN, not for RESULTS.md" if quick else ""))
    text = out.getvalue()
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bmctl"], capture_output=True, text=True,
                               cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        dirty = ""
    if dirty:
        text = text.rstrip("\n") + "\nworking tree: bmctl/ differs from that commit (uncommitted changes)\n\n"
    return text


def report(results: list[Result], args, procs: dict[str, int], delays: list[Delay], keys: list[str],
           took: float, head: str) -> None:
    print(head, end="")
    if args.quick:
        print("(--quick: short D and 0 ms runs in parallel, whose CPU contention alone can cause 429s.)")
        print()
    print(f"Sandbox over loopback, one fresh server per run, published limits enforced at the server "
          f"(sliding windows on arrival, 429 + 10 s block). D = {args.seconds:g} s from the first arrival; "
          "% of limit = 2xx arrivals in [t0, t0 + D) / (limit × D / window); 429s = all 429s the server "
          "answered in the run; clients send one request at a time per process. "
          "Cross-process runs: " + (", ".join(f"{b} ×{p}" for b, p in procs.items() if p)
                                    + " processes at once on one server." if any(procs.values()) else "none."))
    print()
    by = {(r.key, r.workload, r.delay, r.procs): r for r in results}
    for workload in [w for w in args.buckets.split(",")]:
        w = WORKLOADS[workload]
        p = procs[workload]
        print(f"### {workload} ({w.limit}/{w.window:g} s): % of limit / 429s at the server (breaches)")
        print()
        counts = (1, p) if p > 1 else (1,)
        cols = [f"{'1 proc' if n == 1 else f'×{n}'}, {d.label}" for n in counts for d in delays]
        rows = []
        for key in keys:
            row: list[object] = [CONTENDERS[key].label]
            for n in counts:
                for d in delays:
                    r = by.get((key, workload, d, n))
                    row.append(cell(r) if r else "")
            rows.append(row)
        print(table(["contender", *cols], rows))
        print()
    print("### Every run")
    print()
    rows = []
    for r in results:
        rtt = r.rtt()
        bound = ledger_bound(r) if r.key == "ledger" else None
        rows.append([CONTENDERS[r.key].label, r.workload, r.delay.label, r.procs, r.ok, f"{r.pct:.1f} %",
                     r.n429, r.breaches, r.other, f"{r.max_in_window()} / {r.spec.limit}",
                     f"{percentile(rtt, 50) * 1000:.0f}" if rtt else "",
                     f"{bound:.1f} %" if bound is not None else "", r.split() if r.procs > 1 else "",
                     f"{r.took:.1f}"])
    print(table(["contender", "bucket", "delay", "procs", "2xx in D", "% of limit", "429s", "breaches", "other",
                 "max/W (all arrivals)", "client RTT p50 ms", "ledger rule bound", "2xx per proc",
                 "run s"], rows))
    print()
    print("- breaches: the 429s that started a 10 s block (the request that went over a limit); the "
          "other 429s are requests sent into a running block.")
    print("- max/W: the most arrivals at the server (2xx and refused) in any closed interval of one "
          "window; above the limit means the client offered more than the limit allows.")
    print("- ledger rule bound: min(P / mean RTT, limit / (window + guard + mean RTT)) as a % of the "
          "limit, from the client's measured answer times: what the anchored rule allows P "
          "one-at-a-time clients in steady state.")
    print("- shared across processes: " + "; ".join(f"{CONTENDERS[k].label}: {CONTENDERS[k].shares}"
                                                    for k in keys))
    seen: dict[tuple[str, str], str] = {}
    for r in results:
        for c in r.clients:
            if c.how and (r.key, r.workload) not in seen:
                seen[(r.key, r.workload)] = c.how
    for (key, workload), how in seen.items():
        print(f"- {CONTENDERS[key].label} / {workload}: {how}")
    late = max((c.late_start for r in results for c in r.clients), default=0.0)
    print(f"- latest client start after the common start instant: {late * 1000:.0f} ms")
    problems = [(r, f) for r in results for f in r.failures()]
    for r, f in problems:
        print(f"- FAILED {CONTENDERS[r.key].label} / {r.workload} / {r.delay.label} / ×{r.procs}: "
              + f.strip().splitlines()[-1])
    ledger = [r for r in results if r.key == "ledger"]
    if ledger:
        bad = [r for r in ledger if r.n429 or r.max_in_window() > r.spec.limit]
        print(f"- ledger check: {sum(r.n429 for r in ledger)} × 429 over {len(ledger)} runs; max arrivals in "
              f"any window ≤ limit in {len(ledger) - len(bad)} of {len(ledger)} runs"
              + ("" if not bad else " — VIOLATION: " + ", ".join(
                  f"{r.workload} {r.delay.label} ×{r.procs}" for r in bad)))
    print(f"- total bench time {took / 60:.1f} min; jobs {args.jobs} at a nonzero delay, "
          f"{args.jobs_at_zero} at 0 ms; load average (1/5/15 min) at the start {args.load_start}, "
          f"at the end {loadavg()} (the machine is shared)")


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "/".join(f.read().split()[:3])
    except OSError:
        return "?"


def parse_delays(text: str) -> list[Delay]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        latency, _, jitter = part.partition(":")
        out.append(Delay(float(latency), float(jitter or 0)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="D per run, a whole number of every window (default 20, --quick 10)")
    parser.add_argument("--delays", default="0,150:100,300:150",
                        help="answer delays, latency:jitter in ms, comma-separated")
    parser.add_argument("--only", default=",".join(CONTENDERS), help=f"contenders ({','.join(CONTENDERS)})")
    parser.add_argument("--buckets", default="competitors,global")
    parser.add_argument("--procs", default="competitors=2,global=4",
                        help="processes in the cross-process runs, per bucket (0: no cross-process run)")
    parser.add_argument("--jobs", type=int, default=len(CONTENDERS),
                        help="contenders run at once (each on its own server) at a nonzero delay")
    parser.add_argument("--jobs-at-zero", type=int, default=None,
                        help="the same at 0 ms delay (default 1; --quick: --jobs)")
    parser.add_argument("--quick", action="store_true", help="smoke run: D = 10 s, everything in parallel")
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 10.0 if args.quick else 20.0
    if args.jobs_at_zero is None:
        args.jobs_at_zero = args.jobs if args.quick else 1
    keys = [k for k in args.only.split(",") if k]
    unknown = [k for k in keys if k not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders: {', '.join(unknown)}")
    workloads = [b for b in args.buckets.split(",") if b]
    for b in workloads:
        w = WORKLOADS[b]
        if abs(args.seconds / w.window - round(args.seconds / w.window)) > 1e-9:
            parser.error(f"--seconds must be a whole number of {b}'s {w.window:g} s window")
    procs = {b: 2 for b in workloads}
    for part in filter(None, args.procs.split(",")):
        name, _, n = part.partition("=")
        if name in procs:
            procs[name] = int(n)
    delays = parse_delays(args.delays)
    head = header_text(args.quick)
    args.load_start = loadavg()
    ctx = mp.get_context("fork")
    groups = []
    for workload in workloads:
        for delay in delays:
            for n in sorted({1, procs[workload]} - {0}):
                groups.append((workload, delay, n))
    results: list[Result] = []
    started = time.monotonic()
    for gi, (workload, delay, n) in enumerate(groups):
        jobs = max(1, args.jobs if delay.latency or delay.jitter else args.jobs_at_zero)
        for i in range(0, len(keys), jobs):
            batch = [(key, workload, delay, n) for key in keys[i:i + jobs]]
            results.extend(run_batch(ctx, batch, args.seconds, args.seed + gi))
            done = results[-len(batch):]
            print(f"  [{time.monotonic() - started:6.0f} s] {workload} {delay.label} ×{n}: "
                  + ", ".join(f"{r.key} {cell(r)}" for r in done), file=sys.stderr, flush=True)
    order = {k: i for i, k in enumerate(keys)}
    results.sort(key=lambda r: (workloads.index(r.workload), r.procs, delays.index(r.delay), order[r.key]))
    report(results, args, procs, delays, keys, time.monotonic() - started, head)


if __name__ == "__main__":
    main()
