"""``doctor``: what a run needs, checked one thing at a time, each a :class:`Check` (one line and
a hint). No check raises: whatever is broken (the config file, the database, the URL) becomes
a failed check naming it, so that the operator sees every problem at once."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from bmctl.config import mask_token
from bmctl.errors import BmctlError
from bmctl.store.db import connect_read_only, database_problem

if TYPE_CHECKING:
    from bmctl.config import Settings

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
FIELDS = ("check", "status", "detail", "hint")
# The cheap authenticated read is a health check, not work: it gives up sooner than a run.
DOCTOR_TIMEOUT = 10.0
DOCTOR_ATTEMPTS = 2
#: The budget store must answer a PING within this long.
DOCTOR_REDIS_TIMEOUT = 3.0
TOKEN_HINT = "set BMCTL_TOKEN, or token in the config file (bmctl config init --with-token)"


@dataclass(frozen=True)
class Check:
    """The result of one check: ``status`` is ok, warn, fail or skipped; ``detail`` one line
    saying what was found; ``hint`` what to do about it (empty when there is nothing to do)."""

    name: str
    status: str
    detail: str
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_json(self) -> dict[str, str]:
        """The row of the machine formats: ``check, status, detail, hint``."""
        return {"check": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


def exit_code(checks: Sequence[Check]) -> int:
    """0 when nothing failed (warnings and skipped checks do not fail), else 1."""
    return 1 if any(check.failed for check in checks) else 0


# --- configuration -------------------------------------------------------------------------


@dataclass
class Loaded:
    """The settings doctor checks with, and what reading them said."""

    settings: "Settings | None"
    path: Path | None
    error: str | None = None  # why the configuration as given could not be used
    file_data: Mapping[str, Any] | None = None


def load(config: str | None, overrides: Mapping[str, Any], environ: Mapping[str, str]) -> Loaded:
    """The merged settings; when they cannot be read, the same without the config file (so the
    database and the rest can still be checked), and the reason."""
    from bmctl.config import find_config_file, load_settings, read_config_file

    path = find_config_file(config, environ)
    quiet: Callable[[str], None] = lambda message: None  # noqa: E731 - doctor reports it itself
    try:
        settings = load_settings(config, overrides, environ, warn=quiet)
        data = read_config_file(path) if path is not None else None
        return Loaded(settings, path, file_data=data)
    except Exception as error:  # noqa: BLE001 - a bad file must be a failed check, not a crash
        reason = _message(error)
    if path is None:
        return Loaded(None, None, error=reason)
    try:
        # An empty file in place of the config file: what the environment and options give.
        fallback = load_settings(os.devnull, overrides, environ, warn=quiet)
        return Loaded(replace(fallback, config_path=None), path, error=reason)
    except Exception:  # noqa: BLE001 - the environment or an option is wrong too
        return Loaded(None, path, error=reason)


def check_config(loaded: Loaded) -> Check:
    """Which config file is in use, and that one holding a token is readable by its owner only."""
    path = loaded.path
    if loaded.error is not None:
        if loaded.settings is None:  # not (only) the file: a variable or an option
            return Check("config", FAIL, loaded.error, "check BMCTL_* variables, options and the "
                         "config file (bmctl config show reads them the same way)")
        where = "" if str(path) in loaded.error else f"{path}: "
        return Check("config", FAIL, f"{where}{loaded.error}",
                     "fix it (bmctl config show reads it the same way)")
    if path is None:
        return Check("config", OK, "no file: defaults and environment")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as error:
        return Check("config", FAIL, f"{path}: cannot stat: {error.strerror}", "check the path")
    holds_token = bool((loaded.file_data or {}).get("token"))
    if holds_token and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check("config", FAIL, f"{path} holds a token and is open to group or others "
                     f"(mode {mode:04o})", f"chmod 600 {path}")
    return Check("config", OK, f"{path} (mode {mode:04o})")


def check_token(settings: "Settings") -> Check:
    """A token is set (shown masked, with where it came from)."""
    if not settings.token:
        return Check("token", FAIL, "none", TOKEN_HINT)
    source = settings.source("token")
    where = "config file" if source.startswith("file ") else source.removeprefix("env ")
    # None of it shown, not even its end (config.mask_token's rule): only that it is there.
    return Check("token", OK, f"present ({mask_token(settings.token)}, {len(settings.token)} characters, "
                 f"from {where})")


def check_user_agent(settings: "Settings") -> Check:
    """The User-Agent bmctl would send, judged as the runtime judges it: refused against Back
    Market's own hosts, a warning elsewhere."""
    from bmctl.runtime import (
        USER_AGENT_HINT,
        effective_user_agent,
        user_agent_problem_for,
        user_agent_refusal,
    )

    agent = effective_user_agent(settings)
    problem = user_agent_problem_for(settings)
    if problem is None:
        return Check("user_agent", OK, agent)
    try:
        refused = user_agent_refusal(settings) is not None
    except BmctlError:  # a bad base_url: the host check says so; Back Market or not is unknown
        refused = True
    if refused:
        return Check("user_agent", FAIL, f"invalid: {problem}", USER_AGENT_HINT)
    return Check("user_agent", WARN, f"invalid, but sent only to {_base_url(settings)} (not Back "
                 f"Market): {problem}", USER_AGENT_HINT)


# --- the database --------------------------------------------------------------------------


@dataclass
class Database:
    """What doctor found of the database file, and a read-only connection to it if it opened."""

    path: Path
    exists: bool = False
    usable: bool = False  # a command can open it and write to it
    writable: bool = False
    conn: sqlite3.Connection | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def check_database(path: Path) -> tuple[Check, Database]:
    """The database is a SQLite file bmctl can write (or a file it can create)."""
    found = Database(path)
    if not path.exists():
        return _check_creatable(path), replace(found, usable=_creatable(path) is None)
    if path.is_dir():
        return Check("database", FAIL, f"{path} is a directory, not a database file",
                     f"point --db, BMCTL_DB or db at a file, e.g. {path / 'bmctl.db'}"), found
    found.exists = True
    try:
        found.conn = connect_read_only(path, 2000)  # as the read-only commands open it
    except sqlite3.DatabaseError as error:
        found.close()
        return _database_error(path, error), found
    size = _size(path.stat().st_size)
    problem = _write_problem(path)
    if problem is not None:
        return Check("database", FAIL, f"{path} is {problem}; {size}",
                     f"chmod u+w {path} and its folder, or point --db elsewhere; "
                     "read-only commands (logs, history) still work"), found
    found.writable = found.usable = True
    return Check("database", OK, f"{path} (writable, {size})"), found


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _check_creatable(path: Path) -> Check:
    problem = _creatable(path)
    if problem is not None:
        return Check("database", FAIL, f"cannot create {path}: {problem}",
                     "point --db, BMCTL_DB or db at a writable place")
    return Check("database", OK, f"{path} (not created yet: the first command creates it)")


def _creatable(path: Path) -> str | None:
    """Why ``path`` (which does not exist) could not be created, or None."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def _write_problem(path: Path) -> str | None:
    """Why a command could not write to the database at ``path``, or None."""
    mode = path.stat().st_mode
    # A file without a write bit is read-only by intent, even to root (whom access() lets write).
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        return f"read-only (mode {stat.S_IMODE(mode):04o})"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"in a read-only folder ({path.parent})"
    from urllib.parse import quote

    try:  # the write lock, taken and given back: nothing is written
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=2.0)
        try:
            conn.execute("begin immediate")
            conn.rollback()
        finally:
            conn.close()
    except sqlite3.OperationalError as error:
        problem = database_problem(path, error)
        if problem is not None and problem.kind == "locked":
            return None  # another run is writing: writable, just busy now
        return problem.problem if problem is not None else f"not writable ({error})"
    return None


def _database_error(path: Path, error: sqlite3.DatabaseError) -> Check:
    """The problem and hint a command would print for this database (store.db's wording)."""
    problem = database_problem(path, error)
    if problem is None:
        return Check("database", FAIL, f"{path} cannot be opened ({error})",
                     "check its permissions and that its folder is on a local disk")
    return Check("database", FAIL, f"{path} {problem.problem}", problem.hint)


def check_migrations(db: Database) -> Check:
    """Every migration of this bmctl is applied, and none it does not know (a newer bmctl's)."""
    if db.conn is None:
        return Check("migrations", SKIPPED, "no database" + ("" if db.exists else " yet"))
    import sqlite_utils

    from bmctl.store.db import MIGRATIONS, build_migrations

    try:
        migrations = build_migrations()
        store = sqlite_utils.Database(db.conn)
        pending = [m.name for m in migrations.pending(store)]
        known = {name for name, _ in MIGRATIONS}
        unknown = [m.name for m in migrations.applied(store) if m.name not in known]
    except sqlite3.DatabaseError as error:
        return Check("migrations", FAIL, f"cannot read them: {error}", "see the database check")
    if unknown:
        return Check("migrations", FAIL, f"the database has migrations this bmctl does not know "
                     f"({', '.join(unknown)}): a newer bmctl wrote it", "upgrade bmctl")
    if pending and not db.writable:
        return Check("migrations", FAIL, f"{len(pending)} pending ({', '.join(pending)}) and the "
                     "database is not writable", "see the database check")
    if pending:
        return Check("migrations", WARN, f"{len(pending)} pending ({', '.join(pending)}): applied "
                     "when bmctl next opens the database", "any bmctl command applies them")
    return Check("migrations", OK, f"current ({MIGRATIONS[-1][0]})")


@dataclass(frozen=True)
class LockState:
    """The run lock: ``holder`` is the pid of the run holding it (``"unknown"`` if it did not
    say), None when free; ``error`` when it could not be checked."""

    holder: str | None = None
    about: str = ""  # what the holder said of itself: ``bmctl probe, started ...``
    error: str | None = None

    def describe(self) -> str:
        from bmctl.store.lock import describe_holder

        return describe_holder(self.holder or "unknown", self.about)


def read_lock(db_path: Path) -> LockState:
    """Who holds the run lock of the database at ``db_path``, without taking it for more than
    an instant (a shared lock, which only a writing run's exclusive one conflicts with)."""
    import fcntl

    from bmctl.store.lock import RunLock, read_holder

    path = RunLock(str(db_path)).path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return LockState()
    except OSError as error:
        return LockState(error=f"cannot open {path}: {error.strerror}")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, about = read_holder(db_path) or ("unknown", "")
            return LockState(holder=pid, about=about)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockState()
    except OSError as error:
        return LockState(error=f"cannot check {path}: {error.strerror}")
    finally:
        os.close(fd)


def check_lock(lock: LockState) -> Check:
    """The run lock is free (a writing run holding it is not a fault, so a warning)."""
    if lock.error is not None:
        return Check("lock", WARN, lock.error, "check the permissions of the lock file")
    if lock.holder is not None:
        return Check("lock", WARN, f"held by {lock.describe()}: a writing run is in progress",
                     "writing commands meanwhile exit 5, or wait with --lock-timeout SECONDS")
    return Check("lock", OK, "free")


def check_open_probes(db: Database, lock: LockState) -> Check:
    """No probe left open by a killed run: such a listing may still be at its dip price."""
    if db.conn is None:
        return Check("open_probes", SKIPPED if db.exists else OK,
                     "no database" if db.exists else "none (no database yet)")
    import sqlite_utils

    from bmctl.pricing.journal import Journal

    try:
        count = len(Journal(sqlite_utils.Database(db.conn), "", lambda: 0.0).open_probes())
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return Check("open_probes", OK, "none")
        return Check("open_probes", FAIL, f"cannot read the journal: {error}", "see the database check")
    except Exception as error:  # noqa: BLE001 - a damaged row must not stop the report
        return Check("open_probes", FAIL, f"cannot read the journal: {_message(error)}",
                     "bmctl recover --dry-run lists them")
    if not count:
        return Check("open_probes", OK, "none")
    what = f"{count} open probe{'s' if count > 1 else ''}"
    if lock.holder is not None:
        return Check("open_probes", WARN, f"{what}, maybe those of the running pid {lock.holder}",
                     "if that run ends and they stay open: bmctl recover")
    return Check("open_probes", FAIL, f"{what} left by a killed run (listings maybe still at "
                 "their dip price)", "bmctl recover puts them back (--dry-run lists them)")


def check_ledger(db: Database, wall: float, settings: "Settings | None" = None) -> Check:
    """Where the rate-limit budget lives, and how much of it is held now; a budget in Redis
    must answer (runs stop with exit 4 while it does not)."""
    if settings is not None and settings.budget.url:
        return _check_redis_ledger(settings)
    where = "local database (shared by every bmctl using it)"
    if db.conn is None:
        return Check("ledger", OK, where)
    try:
        held = db.conn.execute("select count(*) from budget_holds where expires_wall > ?",
                               (wall,)).fetchone()[0]
    except sqlite3.DatabaseError:  # no such table yet: nothing held
        held = 0
    return Check("ledger", OK, f"{where}; {held} slot{'' if held == 1 else 's'} held now")


def _check_redis_ledger(settings: "Settings") -> Check:
    from bmctl.config import url_without_password
    from bmctl.runtime import open_redis_ledger
    from bmctl.traffic.clock import SystemClock

    url = url_without_password(settings.budget.url)
    try:
        with open_redis_ledger(settings, SystemClock(), timeout=DOCTOR_REDIS_TIMEOUT) as ledger:
            held = sum(row["slots"] + row["claims"] for row in ledger.holders())
    except BmctlError as error:
        return Check("ledger", FAIL, f"redis {url}: {error.message}",
                     "start Redis or fix [budget] url / BMCTL_BUDGET_URL: runs stop (exit 4) until it answers")
    return Check("ledger", OK, f"redis {url} (shared by every host using it), answers PING; "
                 f"{held} slot{'' if held == 1 else 's'} held now")


# --- the host ------------------------------------------------------------------------------


def check_host(settings: "Settings", *, usable_db: bool, clock: Any = None, transport: Any = None,
               argv: Sequence[str] = (), debug: Callable[[str], None] | None = None) -> Check:
    """One cheap authenticated read (the first listings page, one listing) through the normal
    runtime: logged and budgeted like any request. Unreachable, refused token and other
    failures are told apart."""
    from bmctl.errors import AuthError, HostUnreachable, UsageError
    from bmctl.runtime import Runtime, user_agent_refusal

    try:
        base_url = _base_url(settings)
    except BmctlError as error:
        return Check("host", FAIL, error.message, "fix base_url (--base-url, BMCTL_BASE_URL)")
    if not settings.token:
        return Check("host", SKIPPED, f"{base_url}: not tried without a token", "see the token check")
    if user_agent_refusal(settings) is not None:
        return Check("host", SKIPPED, f"{base_url}: not tried: Back Market would refuse the "
                     "User-Agent", "see the user_agent check")
    if not usable_db:
        return Check("host", SKIPPED, f"{base_url}: not tried: the request log and rate budget "
                     "live in the database", "see the database check")
    quick = replace(settings, timeout=min(settings.timeout, DOCTOR_TIMEOUT),
                    max_attempts=min(settings.max_attempts, DOCTOR_ATTEMPTS))
    try:
        with Runtime(settings=quick, command="doctor", argv=argv, clock=clock,
                     transport=transport, debug=debug) as runtime:
            client = runtime.client
            request = client.build_listings_page(1, 1)
            page = client.parse_listings_page(
                request, client.send(request, accept=client.parse_listings_page))
    except HostUnreachable as error:
        return Check("host", FAIL, error.message,
                     "check base_url (--base-url, BMCTL_BASE_URL), the network or a proxy")
    except AuthError as error:
        status = getattr(error, "status", None)
        if status == 401:
            return Check("host", FAIL, f"{base_url} answered: token refused (HTTP 401)",
                         "check the token, and that it is for this market's platform and env")
        return Check("host", FAIL, f"{base_url} answered: refused: {error.message}",
                     "check the token's rights; a WAF block: send the cf-ray to Back Market")
    except UsageError as error:
        return Check("host", FAIL, f"not tried: {error.message}", "see the checks above")
    except BmctlError as error:
        return Check("host", FAIL, f"{base_url}: {error.message}",
                     "retry later; bmctl logs -n 5 shows the attempts")
    except Exception as error:  # noqa: BLE001 - doctor reports, it never crashes
        return Check("host", FAIL, f"{base_url}: {_message(error)}", "bmctl logs -n 5 shows the attempts")
    listings = f"{page.count} listing{'' if page.count == 1 else 's'}"
    return Check("host", OK, f"{base_url} reachable, token accepted ({listings})")


# --- all of them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DoctorRequest:
    """What doctor checks: the global options as given, the environment, and the clock and
    transport requests go through (None: the system clock and real HTTP)."""

    config: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None
    argv: Sequence[str] = ()
    clock: Any = None
    transport: Any = None
    debug: Callable[[str], None] | None = None  # --verbose: a line per failed attempt


def doctor(request: DoctorRequest) -> list[Check]:
    """Every check, in the order an operator reads them; the token never in any of them."""
    import time

    environ = os.environ if request.environ is None else request.environ
    loaded = load(request.config, request.overrides, environ)
    checks = [check_config(loaded)]
    settings = loaded.settings
    if settings is None:
        why = "no usable settings (see the config check)"
        checks += [Check(name, SKIPPED, why) for name in
                   ("token", "user_agent", "host", "database", "migrations", "open_probes", "lock",
                    "ledger")]
        return _redacted(checks, [environ.get("BMCTL_TOKEN", "")])
    secrets = [settings.token, environ.get("BMCTL_TOKEN", "")]
    debug = request.debug
    if debug is not None:  # doctor's settings are its own: CliEnv cannot know this token
        tell = debug

        def debug(line: str) -> None:
            tell(_scrub(line, secrets))

    path = settings.db_path
    db_check, db = _inspect(path)
    host = check_host(settings, usable_db=db.usable, clock=request.clock,
                      transport=request.transport, argv=request.argv, debug=debug)
    if host.status != SKIPPED:
        # The host check opened the database as a command does (creating or migrating it):
        # looked at again, it shows what the next command finds.
        db.close()
        db_check, db = _inspect(path)
    try:
        lock = read_lock(path)
        wall = request.clock.wall() if request.clock is not None else time.time()
        local = [db_check, _guarded("migrations", check_migrations, db),
                 _guarded("open_probes", check_open_probes, db, lock), check_lock(lock),
                 _guarded("ledger", check_ledger, db, wall, settings)]
    finally:
        db.close()
    checks += [_guarded("token", check_token, settings),
               _guarded("user_agent", check_user_agent, settings), host, *local]
    return _redacted(checks, secrets)


def _inspect(path: Path) -> tuple[Check, Database]:
    try:
        return check_database(path)
    except Exception as error:  # noqa: BLE001 - e.g. a folder on the way that cannot be read
        return Check("database", FAIL, f"{path}: {_message(error)}", "check the path"), Database(path)


def _guarded(name: str, check: Callable[..., Check], *args: Any) -> Check:
    """``check(*args)``, or a failed check saying what went wrong: doctor never crashes."""
    try:
        return check(*args)
    except Exception as error:  # noqa: BLE001
        return Check(name, FAIL, f"cannot check: {_message(error)}", "a bug in bmctl doctor: please report it")


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _redacted(checks: list[Check], secrets: list[str]) -> list[Check]:
    """The checks with any secret that slipped into a message (a path, an error) masked."""
    return [replace(c, detail=_scrub(c.detail, secrets), hint=_scrub(c.hint, secrets)) for c in checks]


def _base_url(settings: "Settings") -> str:
    from bmctl.api.client import resolve_base_url

    return resolve_base_url(settings.market, settings.env, settings.base_url)


def _message(error: BaseException) -> str:
    if isinstance(error, BmctlError):
        return error.message
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"{type(error).__name__}: {error}"
