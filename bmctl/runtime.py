"""The wiring of one run: database, run record, run lock, request log, controller and client."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Sequence

from bmctl.errors import UsageError, exit_code_for

if TYPE_CHECKING:
    from bmctl.api.client import BackMarketClient
    from bmctl.config import Settings
    from bmctl.traffic.clock import Clock
    from bmctl.traffic.controller import TrafficController
    from bmctl.traffic.transport import Transport


USER_AGENT_HINT = ("set company and email in the config file (bmctl config init), or user_agent "
                   "/ BMCTL_USER_AGENT as BM-<Company>-<Integration>;<email>")


def effective_user_agent(settings: "Settings") -> str:
    """The User-Agent bmctl sends: ``user_agent`` as set, else built from company and email."""
    from bmctl.api.client import default_user_agent

    if settings.user_agent:
        return settings.user_agent
    return default_user_agent(settings.company or "unknown", settings.email or "unknown")


def user_agent_problem_for(settings: "Settings") -> str | None:
    """What is wrong with the User-Agent ``settings`` would send, or None."""
    from bmctl.api.client import user_agent_problem

    problem = user_agent_problem(effective_user_agent(settings))
    if not settings.user_agent:
        if not (settings.company and settings.email):
            problem = "no user_agent, and company and email are not both set"
        elif problem is not None:
            problem = f"{problem} (built from company and email)"
    return problem


def user_agent_refusal(settings: "Settings") -> str | None:
    """Why the User-Agent is refused against ``settings``' host, or None: only Back Market's
    own hosts refuse (prod and preprod); a host on this machine (the sandbox) takes anything,
    and any other host (a proxy, a stand-in) gets a warning from :func:`resolve_user_agent`."""
    from bmctl.api.client import resolve_base_url

    problem = user_agent_problem_for(settings)
    if problem is None or not _is_back_market(resolve_base_url(settings.market, settings.env,
                                                                 settings.base_url)):
        return None
    return f"invalid User-Agent for Back Market: {problem}; {USER_AGENT_HINT}"


def resolve_user_agent(settings: "Settings", warn: Callable[[str], None] | None = None) -> str:
    """The User-Agent to send; a UsageError (nothing sent) if a Back Market host would get an
    invalid one; a warning when another remote host (a proxy) would pass it on as it is."""
    from bmctl.api.client import resolve_base_url

    refusal = user_agent_refusal(settings)
    if refusal is not None:
        raise UsageError(refusal)
    base_url = resolve_base_url(settings.market, settings.env, settings.base_url)
    problem = user_agent_problem_for(settings)
    if problem is not None and warn is not None and not _is_loopback(base_url):
        warn(f"bmctl: warning: invalid User-Agent ({problem}): Back Market refuses it if "
             f"{base_url} passes it on; {USER_AGENT_HINT}")
    return effective_user_agent(settings)


def _host(base_url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(base_url).hostname or "").lower()


def _is_loopback(base_url: str) -> bool:
    """A base URL on this machine (the sandbox, a local stand-in): no one there reads the UA."""
    host = _host(base_url)
    return host in ("localhost", "::1") or host.startswith("127.")


def _is_back_market(base_url: str) -> bool:
    """One of Back Market's own hosts (``www.backmarket.fr``, ``preprod.backmarket.com``, ...)."""
    host = _host(base_url)
    labels = host.split(".")
    return "backmarket" in labels[-3:-1] or host.startswith("backmarket.")


NO_TOKEN = "no API token: set BMCTL_TOKEN or `token` in the config file (bmctl config init)"
LOG_FLUSH_SECONDS = 1.0  # the log writer's time-based flush; bounds what a killed run loses


class FlushingClock:
    """The run's clock, flushing buffered log rows before the controller idles: a run killed
    while it waits (for a slot, the Backbox to settle) then loses no log rows."""

    def __init__(self, clock: "Clock", log: Any) -> None:
        self.clock = clock
        self.log = log

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def wall(self) -> float:
        return self.clock.wall()

    def sleep(self, seconds: float) -> None:
        # Short waits come at high rates: there, batches of about a second.
        self.log.flush_if_due(force=seconds >= 0.2)
        self.clock.sleep(seconds)


def ledger_holders(settings: "Settings", clock: "Clock") -> tuple[list[dict[str, Any]], str]:
    """Who holds which slots now, and where the ledger is (``bmctl logs stats``); a budget store
    that does not answer is said in the description, not raised: the stats are local."""
    from bmctl.errors import BudgetUnavailable

    if settings.budget.url:
        from bmctl.config import url_without_password

        try:
            with open_redis_ledger(settings, clock, timeout=3.0) as ledger:
                return ledger.holders(), ledger.describe()
        except BudgetUnavailable as error:
            return [], f"redis {url_without_password(settings.budget.url)} (not answering: {error.message})"
    from bmctl.store.ledger import SqliteLedger

    with SqliteLedger(settings.db_path, settings.limits, clock) as local:
        return local.holders(), local.describe()


def open_redis_ledger(settings: "Settings", clock: "Clock", **kw: Any) -> Any:
    """The budget ledger in Redis at ``[budget] url``, namespaced by environment, market host
    and a hash of the token (never the token)."""
    from urllib.parse import urlsplit

    from bmctl.api.client import resolve_base_url
    from bmctl.store.redis_ledger import RedisLedger, namespace

    base_url = resolve_base_url(settings.market, settings.env, settings.base_url)
    host = urlsplit(base_url).netloc.rsplit("@", 1)[-1].lower()
    return RedisLedger(settings.budget.url, settings.limits, clock,
                       prefix=namespace(settings.env, host, settings.token), **kw)


@dataclass
class Runtime:
    """Everything one bmctl command needs to talk to Back Market and record what it did.

    Use as a context manager: it opens the database, takes the run lock for writing commands,
    records the run, admits every request through the budget ledger in that database (shared
    with every other bmctl process using it), and on exit flushes the log and the ledger and
    closes the run record with the exit code."""

    settings: "Settings"
    command: str
    argv: Sequence[str] = ()
    writing: bool = False
    clock: "Clock | None" = None
    transport: "Transport | None" = None
    warn: Callable[[str], None] | None = None
    debug: Callable[[str], None] | None = None  # --verbose: one stderr line per failed attempt
    # Long waits (a 429 pause, a full bucket, the run lock), said once each (--quiet: None).
    notice: Callable[[str], None] | None = None
    exit_code: int | None = None
    # False for commands that may finish on local data alone (recover with nothing open): the
    # token is then asked for only when the client is first used.
    needs_token: bool = True
    # The command only reads the database (recover --dry-run): it works on one this process
    # cannot write, and records no run.
    read_only: bool = False
    db: Any = field(default=None, init=False)
    run_id: str = field(default="", init=False)
    _lock: Any = field(default=None, init=False)
    _log: Any = field(default=None, init=False)
    _ledger: Any = field(default=None, init=False)
    _controller: "TrafficController | None" = field(default=None, init=False)
    _client: "BackMarketClient | None" = field(default=None, init=False)

    def __enter__(self) -> "Runtime":
        from bmctl.store.db import database_errors, open_database
        from bmctl.store.lock import RunLock
        from bmctl.store.runs import start_run
        from bmctl.traffic.clock import SystemClock

        if self.needs_token and not self.settings.token:  # before anything is recorded or sent
            raise UsageError(NO_TOKEN)
        if self.clock is None:
            self.clock = SystemClock()
        db_path = self.settings.db_path
        if self.writing:
            self._lock = RunLock(str(db_path), timeout=self.settings.lock_timeout,
                                 sleep=self.clock.sleep, clock=self.clock.monotonic,
                                 holder=self._lock_holder(), notice=self.notice, debug=self.debug)
            with database_errors(db_path):  # its file beside the database: a read-only folder
                self._lock.__enter__()
        try:
            self.db = open_database(db_path, readonly=self.read_only, wait=self.settings.lock_timeout)
            secrets = [self.settings.token] if self.settings.token else []
            if not self.read_only:
                self.run_id = start_run(self.db, self.command, list(self.argv),
                                        wall=self.clock.wall(), redact=secrets)
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from bmctl.store.runs import finish_run

        try:
            if self._controller is not None:
                # Requests still on the wire (an error ended the run): their log rows and
                # slots, for at most one timeout.
                self._controller.drain(limit=self._controller.now() + self.settings.timeout)
                self._controller.close()
            if self._ledger is not None:
                self._ledger.close()
            if self._log is not None:
                self._log.close()
            # An error after the core decided (the final JSON write to a closed pipe) is what
            # the process exits with, so it is what the run record keeps.
            if exc is not None:
                code = int(exit_code_for(exc))
            else:
                code = self.exit_code if self.exit_code is not None else 0
            if self.db is not None and self.clock is not None and self.run_id:
                finish_run(self.db, self.run_id, code, wall=self.clock.wall())
        finally:
            self._release_lock()

    def _lock_holder(self) -> str:
        """What the lock file says of this run to the next one waiting: command and start."""
        from datetime import datetime, timezone

        assert self.clock is not None
        started = datetime.fromtimestamp(self.clock.wall(), timezone.utc)
        return f"bmctl {self.command}, started {started:%Y-%m-%d %H:%M:%S} UTC"

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    @property
    def controller(self) -> "TrafficController":
        """The traffic controller, admitting through this database's budget ledger."""
        if self._controller is None:
            self._controller = self._build_controller()
        return self._controller

    @property
    def ledger(self) -> Any:
        """The budget ledger (in the run's database), opened on first use."""
        if self._ledger is None:
            self._ledger = self._open_ledger()
        return self._ledger

    def _open_ledger(self) -> Any:
        from bmctl.store.ledger import POLL_INTERVAL, SqliteLedger

        if self.clock is None or self.db is None:
            raise RuntimeError("Runtime must be entered (with ...) before use")
        settings = self.settings
        # requests applies `timeout` to the connection and again to the answer.
        # How late the server may count a request that got no answer: requests applies the
        # timeout to connecting and again to reading, and a server may queue a request before
        # counting it; a minute at least.
        in_flight_bound = max(2 * settings.timeout, 60.0)
        if settings.budget.url:  # one budget for every host: never a local fall-back
            return open_redis_ledger(settings, self.clock, run_id=self.run_id,
                                     in_flight_bound=in_flight_bound,
                                     claim_ttl=settings.probe.max_dip + in_flight_bound)
        return SqliteLedger(
            settings.db_path, settings.limits, self.clock, run_id=self.run_id,
            poll_interval=None if getattr(self.clock, "simulated", False) else POLL_INTERVAL,
            in_flight_bound=in_flight_bound,
            # A dip lasts at most max_dip; its exit must then still find its claim.
            claim_ttl=settings.probe.max_dip + in_flight_bound,
        )

    def _build_controller(self) -> "TrafficController":
        from bmctl.store.log_writer import LogWriter
        from bmctl.store.runs import close_dead_runs, unfinished_runs
        from bmctl.traffic.controller import TrafficController
        from bmctl.traffic.routes import RouteMap

        ledger = self.ledger
        now_wall = self.clock.wall()  # type: ignore[union-attr]
        close_dead_runs(self.db, unfinished_runs(self.db, now_wall - 86400.0, exclude=self.run_id), now_wall)
        self._log = LogWriter(self.db, self.run_id, flush_seconds=LOG_FLUSH_SECONDS,
                              clock=self.clock.monotonic, warn=self.warn)  # type: ignore[union-attr]
        transport, wire = self._transport_and_wire()
        return TrafficController(
            ledger,
            RouteMap.default(),
            transport,
            clock=FlushingClock(self.clock, self._log),  # type: ignore[arg-type]
            on_attempt=self._log.record if self.debug is None else self._record_and_tell,
            max_attempts=self.settings.max_attempts,
            timeout=self.settings.timeout,
            wire=wire,
            notice=self.notice,
            debug=self.debug,
        )

    def _transport_and_wire(self) -> tuple[Any, Any]:
        """Real HTTP: up to ``[traffic] max_in_flight`` worker threads, each with its own
        keep-alive session. A given transport that can carry several requests at once (the
        sandbox's in-process one) gets its own wire; any other, one request at a time."""
        workers = self.settings.traffic.max_in_flight
        transport = self.transport
        if transport is None:
            from bmctl.api.http import RequestsTransport

            if workers > 1:
                from bmctl.traffic.wire import ThreadWire

                return None, ThreadWire(RequestsTransport, workers, self.clock.monotonic)  # type: ignore[union-attr]
            return RequestsTransport(), None
        make_wire = getattr(transport, "wire", None)
        if workers > 1 and callable(make_wire):
            return transport, make_wire(workers)
        return transport, None

    def _record_and_tell(self, attempt: Any) -> None:
        """Log the attempt, and under --verbose say on stderr what went wrong with it."""
        self._log.record(attempt)
        if attempt.outcome != "ok" and self.debug is not None:
            request = attempt.request
            what = attempt.error or (f"HTTP {attempt.status}" if attempt.status else attempt.outcome)
            then = ""
            if attempt.retry_after is not None:
                then += f"; Retry-After {attempt.retry_after:g} s"
            if attempt.retry_in is not None:
                then += f"; next attempt in {attempt.retry_in:.1f} s"
            self.debug(f"bmctl: {request.method} {request.path} attempt {attempt.attempt}: {what} "
                       f"[{attempt.outcome}]{then}")

    @property
    def client(self) -> "BackMarketClient":
        """The Back Market client; a missing token is bad usage (exit 2, nothing sent)."""
        if self._client is None:
            from bmctl.api.client import BackMarketClient, resolve_base_url

            if not self.settings.token:
                raise UsageError(NO_TOKEN)
            base_url = resolve_base_url(self.settings.market, self.settings.env, self.settings.base_url)
            self._client = BackMarketClient(
                self.controller,
                base_url=base_url,
                token=self.settings.token,
                user_agent=resolve_user_agent(self.settings, self.warn),
                market=self.settings.market,
            )
        return self._client

    def flush_logs(self) -> None:
        """Write buffered log rows now (before printing stats of this very run)."""
        if self._log is not None:
            self._log.flush()

