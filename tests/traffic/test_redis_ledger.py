"""The budget ledger in Redis, against a real redis-server (tests/traffic/redis_fixture.py).

Time there is the server's, so these tests run on the real clock: windows of a fraction of a
second where waiting is the point, a minute where holding is."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bmctl.errors import BudgetUnavailable, ExitCode
from bmctl.store.redis_ledger import RedisLedger, namespace
from bmctl.traffic.buckets import LimitSpec
from bmctl.traffic.clock import SystemClock
from bmctl.traffic.ledger import AdmissionConflict
from tests.traffic.fakes import max_in_window
from tests.traffic.redis_fixture import RedisServer

TOKEN = "s3cr3t-token-value-never-stored"
PREFIX = namespace("prod", "www.backmarket.fr", TOKEN)
HOUR = LimitSpec(2, 60.0)


class OffsetClock(SystemClock):
    """The real clock, read ``offset`` seconds off (a host whose clocks are set wrong)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset


def ledger(server: RedisServer, specs: dict[str, LimitSpec] | None = None, *, prefix: str = PREFIX,
           clock: Any = None, **kw: Any) -> RedisLedger:
    return RedisLedger(server.url, specs or {"global": HOUR}, clock or SystemClock(), prefix=prefix,
                       run_id="run", **kw)


def test_what_one_host_takes_the_other_sees(redis_server: RedisServer) -> None:
    a, b = ledger(redis_server), ledger(redis_server, poll_interval=None)
    with a.transaction():
        a.buckets["global"].spend()
        a.buckets["global"].spend()
    assert b.buckets["global"].held() == 2
    assert not b.buckets["global"].can_spend()
    # Held for in_flight_bound + window from the send, on the server's clock...
    wait = b.buckets["global"].ready_at(1) - b.now()
    assert 60 + 60 - 1 < wait <= 60 + 60.01
    # ... but a request on the wire may be answered any moment: a waiter looks again soon.
    polling = ledger(redis_server)
    assert 0 < polling.buckets["global"].ready_at(1) - polling.now() <= 0.05


def test_a_take_the_snapshot_allowed_is_refused_when_another_host_was_quicker(redis_server: RedisServer) -> None:
    a, b = ledger(redis_server), ledger(redis_server)
    with pytest.raises(AdmissionConflict), a.transaction():
        assert a.buckets["global"].can_spend()  # its snapshot: 0 held
        with b.transaction():
            b.buckets["global"].spend()
            b.buckets["global"].spend()
        a.buckets["global"].spend()
    assert a.buckets["global"].held() == 2  # b's two, nothing of a's


def test_an_admission_takes_every_bucket_or_none(redis_server: RedisServer) -> None:
    specs = {"global": LimitSpec(5, 60.0), "competitors": LimitSpec(1, 60.0)}
    a, b = ledger(redis_server, specs), ledger(redis_server, specs)
    with b.transaction():
        b.buckets["competitors"].spend()
    # a decides on a stale snapshot of competitors
    with pytest.raises(AdmissionConflict), a.transaction():
        a._snapshot().held["competitors"] = 0
        a.buckets["global"].spend()
        a.buckets["competitors"].spend()
    assert a.buckets["global"].held() == 0  # global was free, yet nothing was taken
    assert a.buckets["competitors"].held() == 1


def test_settled_slots_free_one_window_after_the_answer_on_the_server_clock(redis_server: RedisServer) -> None:
    a = ledger(redis_server, {"global": LimitSpec(1, 0.2)})
    bucket = a.buckets["global"]
    with a.transaction():
        key = bucket.spend()
    bucket.settle(key, a.now())
    a.flush()
    wait = bucket.ready_at(1) - a.now()
    assert 0.05 < wait <= 0.21
    time.sleep(wait)
    assert bucket.can_spend()


def test_a_429_pause_holds_every_host(redis_server: RedisServer) -> None:
    a, b = ledger(redis_server), ledger(redis_server)
    a.buckets["global"].pause(a.now() + 30)
    a.flush()
    assert b.buckets["global"].is_paused()
    assert 29 < b.buckets["global"].paused_until - b.now() <= 30.01
    assert not b.buckets["global"].can_spend()
    ttl = redis_server.client().pttl(f"{PREFIX}:global:p")
    assert 29_000 < ttl <= 31_000  # the pause key expires by itself


@pytest.mark.parametrize("offset", [30.0, -30.0])
def test_a_host_whose_clock_is_30s_off_shares_the_window_exactly(redis_server: RedisServer, offset: float) -> None:
    """Expiries are the server's: a host only sends durations and reads durations back."""
    spec = {"global": LimitSpec(1, 60.0)}
    skewed, right = ledger(redis_server, spec, clock=OffsetClock(offset)), ledger(redis_server, spec)
    bucket = skewed.buckets["global"]
    with skewed.transaction():
        key = bucket.spend()
    bucket.settle(key, skewed.now())
    skewed.flush()
    for other in (right, skewed):
        wait = other.buckets["global"].ready_at(1) - other.now()
        assert 59 < wait <= 60.01, (other, wait)  # neither 30 nor 90
    expiry = redis_server.client().zrange(f"{PREFIX}:global:h", 0, -1, withscores=True)[0][1]
    seconds, micros = redis_server.client().time()
    assert abs(expiry / 1000 - (seconds + micros / 1e6) - 60) < 1  # stored on the server's clock


def test_claims_are_held_until_used_or_released(redis_server: RedisServer) -> None:
    a, b = ledger(redis_server), ledger(redis_server)
    bucket = a.buckets["global"]
    with a.transaction():
        claim = bucket.reserve()
    assert b.buckets["global"].held() == 1
    with a.transaction():
        key = bucket.spend_reserved(claim)  # the claim becomes the request's slot
    assert key == claim.key and b.buckets["global"].held() == 1
    with a.transaction():
        other = bucket.reserve()
    assert b.buckets["global"].held() == 2
    bucket.release_reservation(other)
    a.flush()
    assert b.buckets["global"].held() == 1
    holders = b.holders()
    assert holders == [{"bucket": "global", "run_id": "run", "pid": a.pid, "slots": 1, "claims": 0,
                        "until_s": holders[0]["until_s"]}]


def test_two_tokens_are_two_budgets_and_no_token_is_stored(redis_server: RedisServer) -> None:
    other = namespace("prod", "www.backmarket.fr", "another-token")
    a, b = ledger(redis_server), ledger(redis_server, prefix=other)
    with a.transaction():
        a.buckets["global"].spend()
        a.buckets["global"].spend()
    a.buckets["global"].pause(a.now() + 5)
    a.flush()
    assert b.buckets["global"].can_spend() and b.buckets["global"].held() == 0
    client = redis_server.client()
    keys = client.keys("*")
    assert keys and all(k.startswith(PREFIX.encode()) for k in keys)
    dump = b"".join(keys)
    for k in keys:
        kind = client.type(k)
        if kind == b"zset":
            dump += b"".join(m for m, _ in client.zrange(k, 0, -1, withscores=True))
        elif kind == b"string":
            dump += client.get(k) or b""
    assert TOKEN.encode() not in dump and b"s3cr3t" not in dump
    assert all(client.pttl(k) > 0 for k in keys)  # every key vanishes when idle


def test_many_hosts_hammering_one_bucket_never_hold_more_than_the_limit(redis_server: RedisServer) -> None:
    """Eight ledgers on eight connections, each sending as fast as its bucket allows for a
    second; what a server logging arrivals would count stays within the limit per window."""
    limit, window = 5, 0.1
    arrivals: list[float] = []
    lock = threading.Lock()
    conflicts = [0]
    stop = time.monotonic() + 1.0

    def host() -> None:
        own = ledger(redis_server, {"global": LimitSpec(limit, window)})
        bucket = own.buckets["global"]
        while time.monotonic() < stop:
            try:
                with own.transaction():
                    wait = bucket.ready_at(1) - own.now()
                    key = bucket.spend() if wait <= 0 else None
            except AdmissionConflict:
                with lock:
                    conflicts[0] += 1
                continue
            if key is None:
                time.sleep(min(wait, 0.01))
                continue
            at = time.monotonic()  # the server counts it somewhere between send and answer
            with lock:
                arrivals.append(at)
            bucket.settle(key, time.monotonic())
            own.flush()
        own.close()

    threads = [threading.Thread(target=host) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(arrivals) >= limit * 3  # it did run near the limit's pace
    assert max_in_window(arrivals, window, closed=True) <= limit


def test_scripts_the_server_forgot_are_sent_again(redis_server: RedisServer) -> None:
    a = ledger(redis_server)
    with a.transaction():
        a.buckets["global"].spend()
    redis_server.client().script_flush()  # a restart, a failover: EVALSHA answers NOSCRIPT
    with a.transaction():
        a.buckets["global"].spend()
    assert a.buckets["global"].held() == 2


def test_a_store_that_accepts_but_never_answers_times_out_with_exit_4() -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BudgetUnavailable, match=f"budget store redis://127.0.0.1:{port}/0 unreachable: "):
            RedisLedger(f"redis://127.0.0.1:{port}/0", {"global": HOUR}, SystemClock(), prefix=PREFIX,
                        timeout=0.2)
        assert time.monotonic() - started < 5


def test_an_unreachable_store_stops_the_run_with_exit_4_naming_it_without_password(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    with pytest.raises(BudgetUnavailable) as caught:
        RedisLedger(f"redis://:hunter2@127.0.0.1:{port}/0", {"global": HOUR}, SystemClock(),
                    prefix=PREFIX, timeout=1.0)
    message = str(caught.value)
    assert message.startswith(f"budget store redis://127.0.0.1:{port}/0 unreachable: ")
    assert "hunter2" not in message
    assert caught.value.exit_code == ExitCode.LIMITED


def test_a_store_lost_mid_run_stops_the_next_admission_and_keeps_deferred_writes(redis_server: RedisServer) -> None:
    a = ledger(redis_server, timeout=1.0)
    with a.transaction():
        key = a.buckets["global"].spend()
    a.buckets["global"].settle(key, a.now())
    redis_server.stop()
    with pytest.raises(BudgetUnavailable, match="unreachable"), a.transaction():
        a.buckets["global"].can_spend()
    assert a._pending  # the settle waits for the store to come back...
    a.flush()  # ... and neither the controller's flush before it idles nor the end of the run
    a.close()  # stops on it: the admission did, and the slot stays held meanwhile
    assert a._pending


def test_the_budget_url_comes_from_the_file_or_the_environment(tmp_path: Any) -> None:
    from bmctl.config import load_settings
    from bmctl.errors import ConfigError

    config = tmp_path / "bmctl.toml"
    config.write_text('[budget]\nurl = "redis://:pw@cache:6379/1"\n')
    settings = load_settings(str(config), environ={})
    assert settings.budget.url == "redis://:pw@cache:6379/1"
    assert settings.masked()["budget"] == {"url": "redis://cache:6379/1"}  # no password shown
    settings = load_settings(str(config), environ={"BMCTL_BUDGET_URL": "unix:///run/redis.sock"})
    assert settings.budget.url == "unix:///run/redis.sock"
    assert settings.source("budget.url") == "env BMCTL_BUDGET_URL"
    with pytest.raises(ConfigError, match="redis://"):
        load_settings(None, environ={"BMCTL_BUDGET_URL": "http://cache:6379"})


def test_the_runtime_puts_the_ledger_in_redis_namespaced_by_account(redis_server: RedisServer,
                                                                     tmp_path: Any) -> None:
    from bmctl.config import BudgetSettings, Settings
    from bmctl.runtime import Runtime

    settings = Settings(token=TOKEN, db=str(tmp_path / "r.db"), base_url="http://127.0.0.1:9/",
                        budget=BudgetSettings(url=redis_server.url))
    with Runtime(settings, "competitors") as runtime:
        ledger = runtime.ledger
        assert isinstance(ledger, RedisLedger)
        assert ledger.describe().startswith(f"redis {redis_server.url} ")
        assert ledger.prefix == namespace("prod", "127.0.0.1:9", TOKEN)


def test_plans_read_more_than_the_snapshot_head_of_expiries(redis_server: RedisServer) -> None:
    a = ledger(redis_server, {"global": LimitSpec(10, 60.0)}, poll_interval=None)
    bucket = a.buckets["global"]
    with a.transaction():
        keys = [bucket.spend() for _ in range(8)]
    for key in keys:
        bucket.settle(key, a.now())
    # 2 free now, 8 free in 60 s: the 12th request goes when a slot used now frees again.
    assert 59 < bucket.time_to_send(12) < 60.1
    assert bucket.sends_within(30.0) == 2


def test_keys_name_environment_host_and_a_hash_of_the_token_in_one_cluster_slot() -> None:
    prefix = namespace("preprod", "preprod.backmarket.fr", TOKEN)
    assert prefix.startswith("bmctl:{preprod:preprod.backmarket.fr:") and prefix.endswith("}")
    assert TOKEN not in prefix and len(prefix.split(":")[-1]) == 16 + 1
    assert namespace("prod", "preprod.backmarket.fr", TOKEN) != prefix  # environments apart
