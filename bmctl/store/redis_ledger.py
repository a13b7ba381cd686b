"""The budget ledger in Redis: one budget for every bmctl process on every host that uses it.

``[budget] url = "redis://host:6379/0"`` (or ``BMCTL_BUDGET_URL``) puts slots, claims and 429
pauses here; request logs, runs and probes stay in each host's database.

**Keys** (per bucket, under ``bmctl:{<env>:<market host>:<sha256(token)[:16]>}:<bucket>``, so
two accounts never share a budget and the token is stored nowhere; the braces are a hash tag:
on a Redis Cluster every key of one account is in one slot, as a multi-key script needs):
``:h`` a sorted set of answered slots scored by their final expiry, ``:o`` one of open holds
(requests on the wire, at their provisional expiry, and claims), ``:p`` the end of the running
429 pause. Every key carries a PEXPIRE a little past its last expiry: an idle budget vanishes
from Redis by itself.

**Time is the server's.** Expiries are milliseconds of the Redis server's ``TIME``, read inside
each script; a host only ever sends durations (a request held for ``in_flight_bound + window``,
a slot held ``remaining`` more seconds after its answer, a pause of ``n`` seconds), measured on
its own monotonic clock and added to the server's time when the script runs — which is after
the host measured them, so every conversion errs on the side of holding longer. Hosts whose
wall clocks disagree by minutes still share one window. What the controller reads back is
mapped onto its monotonic clock the same way (a server expiry ``e`` read at server time ``S`` is
``e - S`` seconds after the reply arrived).

**Admission** is one Lua script per decision (:data:`ADMIT`): inside a :meth:`transaction` the
controller reads a snapshot of the buckets (one script that also applies this process's
deferred writes and prunes expired holds), decides, and takes; the takes are sent together at
the end, and the script re-checks the anchored rule on the server's own state and clock —
count of held slots plus the new ones at most the limit, no pause running — for every bucket
at once, and takes all or nothing. When another host took the slot meanwhile, the controller
is told (:class:`~bmctl.traffic.ledger.AdmissionConflict`) and decides again. Each step is
O(log n) in the slots held (ZREMRANGEBYSCORE, ZCARD, ZADD, a few ZRANGE heads), so a 2,000-slot
bucket costs what a 2-slot one does.

**Failure is explicit**: Redis unreachable, timing out or refusing → :class:`BudgetUnavailable`
(exit 4) before anything is sent; never a fall-back to a local ledger, which would break the
shared limit.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from types import TracebackType
from typing import Any, Callable, Mapping, Sequence

from bmctl.config import url_without_password
from bmctl.errors import BudgetUnavailable, ConfigError
from bmctl.traffic.buckets import CLAIM, LimitSpec
from bmctl.traffic.clock import Clock
from bmctl.traffic.ledger import AdmissionConflict, Ledger

#: Connect and answer timeout of one Redis command: past it the run stops (exit 4).
REDIS_TIMEOUT_S = 5.0
#: While waiting for slots, look again this often: another host may settle one early.
POLL_INTERVAL = 0.05
#: How many of each bucket's earliest expiries a snapshot brings back (more are read on demand).
SNAPSHOT_HEAD = 4
#: A key outlives its last expiry by this much (ms) before Redis drops it.
KEY_SLACK_MS = 1000

# Server time in ms; the pcall keeps old servers (< 5) replicating the script's effects, not
# the script (TIME is not deterministic), and newer ones, where it is the default, unharmed.
_PRELUDE = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function touch(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.max(1, math.ceil(tonumber(last[2]) - now)) + %(slack)d)
  end
end
""" % {"slack": KEY_SLACK_MS}

#: Deferred writes, then a snapshot. KEYS: h, o, p of each bucket. ARGV: head size, the number
#: of writes, then per write: op (settle|drop|pause), bucket index (1-based), member, ms.
SNAPSHOT = _PRELUDE + """
local head = tonumber(ARGV[1])
local nops = tonumber(ARGV[2])
for i = 0, nops - 1 do
  local op, b, member, ms = ARGV[3 + i * 4], tonumber(ARGV[4 + i * 4]), ARGV[5 + i * 4], tonumber(ARGV[6 + i * 4])
  local h, o, p = KEYS[b * 3 - 2], KEYS[b * 3 - 1], KEYS[b * 3]
  if op == 'settle' then
    redis.call('ZREM', o, member)
    redis.call('ZADD', h, now + ms, member)
    touch(h)
  elseif op == 'drop' then
    redis.call('ZREM', o, member)
  elseif op == 'pause' then
    local current = tonumber(redis.call('GET', p) or '0')
    if now + ms > current and ms > 0 then
      redis.call('SET', p, tostring(now + ms), 'PX', math.ceil(ms) + %(slack)d)
    end
  end
end
local out = {t[1], t[2]}
for b = 1, #KEYS / 3 do
  local h, o, p = KEYS[b * 3 - 2], KEYS[b * 3 - 1], KEYS[b * 3]
  redis.call('ZREMRANGEBYSCORE', h, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', o, '-inf', now)
  table.insert(out, redis.call('ZCARD', h) + redis.call('ZCARD', o))
  table.insert(out, head > 0 and redis.call('ZRANGE', h, 0, head - 1, 'WITHSCORES') or {})
  table.insert(out, head > 0 and redis.call('ZRANGE', o, 0, head - 1, 'WITHSCORES') or {})
  table.insert(out, redis.call('GET', p) or '')
end
return out
""" % {"slack": KEY_SLACK_MS}

#: One admission, all or nothing. KEYS: h, o, p of each bucket it touches. ARGV: per bucket
#: its limit, then the number of ops, then per op: op (take|convert|drop), bucket index,
#: member, ms, old member (convert: the claim it replaces). Returns {1, sec, usec} when taken,
#: {0, sec, usec, bucket index, why, lapsed claims} when not.
ADMIT = _PRELUDE + """
local nb = #KEYS / 3
local nops = tonumber(ARGV[nb + 1])
local held, adds, gone = {}, {}, {}
for b = 1, nb do
  redis.call('ZREMRANGEBYSCORE', KEYS[b * 3 - 2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[b * 3 - 1], '-inf', now)
  held[b] = redis.call('ZCARD', KEYS[b * 3 - 2]) + redis.call('ZCARD', KEYS[b * 3 - 1])
  adds[b] = 0
end
local ops, lapsed = {}, {}
for i = 0, nops - 1 do
  local base = nb + 2 + i * 5
  local op = {ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2], tonumber(ARGV[base + 3]), ARGV[base + 4]}
  local o = KEYS[op[2] * 3 - 1]
  if op[1] == 'convert' then
    if not redis.call('ZSCORE', o, op[5]) then
      op[1] = 'take'  -- the claim lapsed: the request needs a free slot like any other
      op[6] = 'lapsed'
      table.insert(lapsed, op[5])
    end
  end
  if op[1] == 'take' then
    adds[op[2]] = adds[op[2]] + 1
  elseif op[1] == 'drop' and redis.call('ZSCORE', o, op[3]) then
    held[op[2]] = held[op[2]] - 1
  end
  if op[1] ~= 'drop' then
    local paused = tonumber(redis.call('GET', KEYS[op[2] * 3]) or '0')
    if paused > now then
      return {0, t[1], t[2], op[2], 'paused', lapsed}
    end
  end
  table.insert(ops, op)
end
for b = 1, nb do
  if adds[b] > 0 and held[b] + adds[b] > tonumber(ARGV[b]) then
    return {0, t[1], t[2], b, 'full', lapsed}
  end
end
for _, op in ipairs(ops) do
  local o = KEYS[op[2] * 3 - 1]
  if op[1] == 'drop' then
    redis.call('ZREM', o, op[3])
  else
    if op[6] == nil and op[5] ~= '' then redis.call('ZREM', o, op[5]) end
    redis.call('ZADD', o, now + op[4], op[3])
  end
end
for b = 1, nb do touch(KEYS[b * 3 - 1]) end
return {1, t[1], t[2]}
"""

#: The first ``n`` expiries of one bucket. KEYS: h, o. ARGV: n.
HEAD = _PRELUDE + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local n = tonumber(ARGV[1])
return {t[1], t[2], redis.call('ZRANGE', KEYS[1], 0, n - 1, 'WITHSCORES'),
        redis.call('ZRANGE', KEYS[2], 0, n - 1, 'WITHSCORES')}
"""

#: Every live hold of the given buckets with its member (``bmctl logs stats``). KEYS: h, o, ...
HOLDERS = _PRELUDE + """
local out = {t[1], t[2]}
for i = 1, #KEYS do
  table.insert(out, redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. now, '+inf', 'WITHSCORES'))
end
return out
"""


def namespace(env: str, market_host: str, token: str) -> str:
    """The key prefix of one account's budget: environment, market host, a hash of the token."""
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return f"bmctl:{{{env}:{market_host}:{digest}}}"


class _Snapshot:
    """What one snapshot script read: per bucket held count, heads of h and o, pause end."""

    __slots__ = ("local", "server_ms", "held", "settled", "open", "paused")

    def __init__(self, local: float, server_ms: float) -> None:
        self.local = local
        self.server_ms = server_ms
        self.held: dict[str, int] = {}
        self.settled: dict[str, list[float]] = {}
        self.open: dict[str, list[float]] = {}
        self.paused: dict[str, float] = {}

    def to_local(self, ms: float) -> float:
        """A server instant in ms, on the controller's monotonic clock."""
        return self.local + (ms - self.server_ms) / 1000.0


class RedisBucketStore:
    """One bucket's keys in Redis (see :class:`~bmctl.traffic.buckets.BucketStore`); keys of
    holds are this process's sequence numbers."""

    __slots__ = ("ledger", "name")

    def __init__(self, ledger: "RedisLedger", name: str) -> None:
        self.ledger = ledger
        self.name = name

    def held(self, now: float) -> int:
        ledger = self.ledger
        return ledger._snapshot().held[self.name] + ledger._taking(self.name)

    def earliest(self, k: int, now: float) -> list[float]:
        if k <= 0:
            return []
        ledger = self.ledger
        snap = ledger._snapshot()
        settled, opened = snap.settled[self.name], snap.open[self.name]
        if k > SNAPSHOT_HEAD and snap.held[self.name] > SNAPSHOT_HEAD:  # the head merged is exact up to 4
            snap, settled, opened = ledger._head(self.name, k)
        free_at = [snap.to_local(ms) for ms in settled]
        # Another holder's request on the wire, or a claim, may free its slot any moment: look
        # again within the poll interval rather than sleeping to its provisional expiry.
        soon = math.inf if ledger.poll_interval is None else snap.local + ledger.poll_interval
        free_at.extend(min(snap.to_local(ms), soon) for ms in opened)
        # What the open transaction takes is held too (not in the snapshot yet).
        free_at.extend(snap.local + seconds for op, name, _, seconds in ledger._ops or ()
                       if name == self.name and op in ("take", "claim"))
        free_at.sort()
        return free_at[:k]

    def paused_until(self) -> float:
        return self.ledger._snapshot().paused[self.name]

    def take(self, kind: str, expires: float, now: float) -> int:
        return self.ledger._take(self.name, kind, expires - now)

    def convert(self, key: int, expires: float, now: float) -> bool:
        return self.ledger._convert(self.name, key, expires - now, now)

    def is_live(self, key: int, now: float) -> bool:
        claim = self.ledger._claims.get(key)
        return claim is not None and claim[1] > now

    def settle(self, key: int, expires: float) -> None:
        self.ledger._defer("settle", self.name, key, expires)

    def drop(self, key: int) -> None:
        self.ledger._drop(self.name, key)

    def pause(self, until: float) -> None:
        self.ledger._defer("pause", self.name, 0, until)


class RedisLedger(Ledger):
    """The ledger in Redis at ``url``, under the key prefix ``prefix`` (:func:`namespace`)."""

    refuses_at_commit = True  # the admit script re-checks on the server

    def __init__(self, url: str, specs: Mapping[str, LimitSpec], clock: Clock, *, prefix: str,
                 run_id: str = "", pid: int | None = None,
                 poll_interval: float | None = POLL_INTERVAL, timeout: float = REDIS_TIMEOUT_S,
                 **kw: Any) -> None:
        self.url = url  # checked with the settings (config.BUDGET_SCHEMES)
        self.prefix = prefix
        self.clock = clock
        self.run_id = run_id
        self.pid = os.getpid() if pid is None else pid
        self.poll_interval = poll_interval
        self._tag = f"{run_id}|{self.pid}|{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._claims: dict[int, tuple[str, float]] = {}  # key -> (bucket, local expiry)
        self._sent: set[int] = set()  # keys of requests on the wire (not settled yet)
        self._pending: list[tuple[str, str, int, float]] = []  # (op, bucket, key, local instant)
        self._ops: list[tuple[str, str, int, float]] | None = None  # the open transaction's
        self._snap: _Snapshot | None = None
        self._shas: dict[str, str] = {}
        self._client = _connect(url, timeout)
        super().__init__(specs, clock.monotonic, **kw)
        self._names = list(self.specs)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._call(lambda: self._client.ping())

    def _store_for(self, name: str) -> RedisBucketStore:
        return RedisBucketStore(self, name)

    def describe(self) -> str:
        return f"redis {url_without_password(self.url)} (shared by every bmctl process using it, on any host)"

    def key(self, bucket: str, part: str) -> str:
        """The Redis key of one part (h, o, p) of a bucket."""
        return f"{self.prefix}:{bucket}:{part}"

    def _keys(self, names: Sequence[str]) -> list[str]:
        return [self.key(name, part) for name in names for part in ("h", "o", "p")]

    def _member(self, kind: str, key: int) -> str:
        return f"{'c' if kind == CLAIM else 's'}|{self._tag}|{key}"

    # -- transactions -------------------------------------------------------------------------
    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def _begin(self) -> None:
        self._ops = []
        self._snap = None

    def _end(self, commit: bool) -> None:
        ops, self._ops = self._ops, None
        self._snap = None
        if commit and ops:
            self._admit(ops)

    def flush(self) -> None:
        """Send the deferred writes. A store that does not answer is not raised here (the
        controller flushes before it idles, and when the run ends): the writes are kept, every
        slot they would shorten stays held meanwhile, and the next admission fails explicitly."""
        if self._pending and self._ops is None:
            try:
                self._read_snapshot(0)
            except BudgetUnavailable:
                pass

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._client.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- store primitives ---------------------------------------------------------------------
    def _snapshot(self) -> _Snapshot:
        """Inside a transaction, the one snapshot it decides on; outside, a fresh one."""
        if self._ops is not None and self._snap is not None:
            return self._snap
        snap = self._read_snapshot(SNAPSHOT_HEAD)
        if self._ops is not None:
            self._snap = snap
        return snap

    def _read_snapshot(self, head: int) -> _Snapshot:
        pending, self._pending = self._pending, []
        args: list[Any] = [head, len(pending)]
        sent_at = self.clock.monotonic()
        for op, bucket, key, local in pending:
            ms = max(0.0, (local - sent_at) * 1000.0)
            member = "" if op == "pause" else self._member(CLAIM if op == "drop" else "sent", key)
            args += [op, self._index[bucket] + 1, member, ms]
        try:
            reply = self._run("snapshot", SNAPSHOT, self._keys(self._names), args)
        except BaseException:
            self._pending = pending + self._pending  # kept for the next try (or the journal's run)
            raise
        snap = _Snapshot(self.clock.monotonic(), _ms(reply[0], reply[1]))
        for i, name in enumerate(self._names):
            held, settled, opened, paused = reply[2 + i * 4: 6 + i * 4]
            snap.held[name] = int(held)
            snap.settled[name] = _scores(settled)
            snap.open[name] = _scores(opened)
            snap.paused[name] = snap.to_local(float(paused)) if paused else -math.inf
        return snap

    def _head(self, name: str, k: int) -> tuple[_Snapshot, list[float], list[float]]:
        reply = self._run("head", HEAD, [self.key(name, "h"), self.key(name, "o")], [k])
        snap = _Snapshot(self.clock.monotonic(), _ms(reply[0], reply[1]))
        return snap, _scores(reply[2]), _scores(reply[3])

    def _defer(self, op: str, bucket: str, key: int, local: float) -> None:
        """A write that changes nothing for this process's decisions: sent with the next read."""
        if op == "settle":
            if key not in self._sent:
                return
            self._sent.discard(key)
        self._pending.append((op, bucket, key, local))

    def _take(self, bucket: str, kind: str, seconds: float) -> int:
        self._seq += 1
        self._op(("take" if kind != CLAIM else "claim", bucket, self._seq, seconds))
        return self._seq

    def _convert(self, bucket: str, key: int, seconds: float, now: float) -> bool:
        claim = self._claims.get(key)
        if claim is None or claim[1] <= now:
            return False
        self._op(("convert", bucket, key, seconds))
        return True

    def _drop(self, bucket: str, key: int) -> None:
        if key not in self._claims:
            return
        if self._ops is not None:
            self._ops.append(("drop", bucket, key, 0.0))
        else:
            del self._claims[key]
            self._pending.append(("drop", bucket, key, 0.0))

    def _op(self, op: tuple[str, str, int, float]) -> None:
        if self._ops is not None:
            self._ops.append(op)
            return
        self._admit([op])  # outside a transaction: its own admission

    def _taking(self, bucket: str) -> int:
        """Slots the open transaction takes from ``bucket`` (not in its snapshot yet)."""
        count = 0
        for op, name, _key, _ in self._ops or ():
            if name == bucket:
                if op in ("take", "claim"):  # a convert queued only for a claim of ours
                    count += 1
                elif op == "drop":
                    count -= 1
        return count

    def _admit(self, ops: list[tuple[str, str, int, float]]) -> None:
        """Send one admission; apply its effects here only once the server took it."""
        if self._pending:
            self._read_snapshot(0)
        names = list(dict.fromkeys(bucket for _, bucket, _, _ in ops))
        index = {name: i + 1 for i, name in enumerate(names)}
        args: list[Any] = [self.specs[name].limit for name in names] + [len(ops)]
        for op, bucket, key, seconds in ops:
            if op == "claim":
                args += ["take", index[bucket], self._member(CLAIM, key), seconds * 1000.0, ""]
            elif op == "drop":
                args += ["drop", index[bucket], self._member(CLAIM, key), 0, ""]
            else:
                old = self._member(CLAIM, key) if op == "convert" else ""
                args += [op, index[bucket], self._member("sent", key), seconds * 1000.0, old]
        sent_at = self.clock.monotonic()
        reply = self._run("admit", ADMIT, self._keys(names), args)
        if int(reply[0]) != 1:
            for member in reply[5] if len(reply) > 5 else ():  # claims the server saw lapse
                self._claims.pop(int(_text(member).rsplit("|", 1)[1]), None)
            bucket = names[int(reply[3]) - 1]
            raise AdmissionConflict(f"bucket {bucket!r} {_text(reply[4])} on the budget store")
        for op, bucket, key, seconds in ops:
            if op == "claim":
                self._claims[key] = (bucket, sent_at + seconds)
            elif op == "drop":
                self._claims.pop(key, None)
            else:
                self._claims.pop(key, None)
                self._sent.add(key)

    # -- Redis calls --------------------------------------------------------------------------
    def _run(self, name: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA the script, EVAL when the server does not know it (a restart, a flush)."""
        from redis.exceptions import NoScriptError

        client = self._client
        sha = self._shas.get(name)
        if sha is None:
            sha = self._shas[name] = hashlib.sha1(script.encode("utf-8")).hexdigest()

        def call() -> Any:
            try:
                return client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                return client.eval(script, len(keys), *keys, *args)

        return self._call(call)

    def _call(self, fn: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError, ResponseError

        try:
            return fn()
        except ResponseError as error:  # the server answered: refused (auth, a read-only replica)
            raise BudgetUnavailable(f"budget store {url_without_password(self.url)} refused: {error}") from None
        except (RedisError, OSError) as error:
            raise BudgetUnavailable(f"budget store {url_without_password(self.url)} unreachable: {error}") from None

    # -- inspection ---------------------------------------------------------------------------
    def holders(self) -> list[dict[str, Any]]:
        self.flush()
        keys = [self.key(name, part) for name in self._names for part in ("h", "o")]
        reply = self._run("holders", HOLDERS, keys, [])
        server_ms = _ms(reply[0], reply[1])
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for i, name in enumerate(self._names):
            for part, listing in (("h", reply[2 + 2 * i]), ("o", reply[3 + 2 * i])):
                for member, score in zip(listing[::2], listing[1::2]):
                    kind, run_id, pid, _, _ = _text(member).split("|", 4)
                    row = groups.setdefault((name, run_id, pid), {
                        "bucket": name, "run_id": run_id or None, "pid": int(pid) if pid.isdigit() else None,
                        "slots": 0, "claims": 0, "until_s": 0.0})
                    row["claims" if kind == "c" and part == "o" else "slots"] += 1
                    row["until_s"] = max(row["until_s"], round((float(score) - server_ms) / 1000.0, 3))
        return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1]))]


class _Transaction:
    """``with ledger.transaction():`` — decide on one snapshot, then admit in one script."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: RedisLedger) -> None:
        self.ledger = ledger

    def __enter__(self) -> RedisLedger:
        self.ledger._begin()
        return self.ledger

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.ledger._end(commit=exc_type is None)


def _connect(url: str, timeout: float) -> Any:
    """A redis-py client that fails fast (no retries: the run stops and a rerun resumes)."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ConfigError("[budget] url needs the Redis client: pip install 'bmctl[redis]'") from None
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0), client_name="bmctl")
    except ValueError as error:
        raise ConfigError(f"[budget] url {url_without_password(url)!r}: {error}") from None


def _ms(seconds: Any, micros: Any) -> float:
    return int(seconds) * 1000.0 + int(micros) / 1000.0


def _scores(listing: Sequence[Any]) -> list[float]:
    return [float(score) for score in listing[1::2]]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
