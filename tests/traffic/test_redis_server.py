"""The test Redis server itself: it runs, and has what the Redis ledger needs (Lua, TIME)."""

from __future__ import annotations

from tests.traffic.redis_fixture import RedisServer


def test_the_fixture_server_runs_lua_with_server_time(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.ping()
    seconds, micros = client.eval("return redis.call('TIME')", 0)
    assert int(seconds) > 1_600_000_000 and 0 <= int(micros) < 1_000_000
    assert client.dbsize() == 0  # emptied for each test
