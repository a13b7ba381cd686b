"""update-price's orders: several under way at once over a wire that carries several
requests, results in the orders' order, the guard and history unchanged."""

from __future__ import annotations

from pathlib import Path

from bmctl.pricing.journal import Journal
from bmctl.pricing.targets import price_order
from bmctl.pricing.updates import apply_price_orders
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import listing, money


def test_orders_overlap_on_the_wire_and_come_out_in_order(tmp_path: Path) -> None:
    specs = [listing("100.00", ["95.00"]) for _ in range(8)]
    world = SimWorld(specs, latency=0.2)
    orders = [price_order(s.id, "99.00" if i != 3 else "10.00", "fr-fr") for i, s in enumerate(specs)]
    seen: list[str] = []
    with world.runtime(tmp_path / "u.db", command="update-price", traffic_max_in_flight=8) as runtime:
        controller = runtime.controller
        journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
        start = world.clock.monotonic()
        results = apply_price_orders(runtime.client, journal, orders, max_change_pct=30.0,
                                     on_result=lambda r: seen.append(r.listing_id),
                                     controller=controller, window=16)
        elapsed = world.clock.monotonic() - start
    assert seen == [s.id for s in specs]  # the orders' order, whatever finished first
    assert [r.status for r in results] == ["updated"] * 3 + ["refused"] + ["updated"] * 4
    assert elapsed < 2 * 0.2 + 0.1  # a read and a write each, all at once (one by one: 3.0 s)
    for i, spec in enumerate(specs):
        assert world.price(spec.id, "fr-fr") == money("100.00" if i == 3 else "99.00")
    rows = runtime.db.execute("select count(*) from price_changes where status = 'updated'").fetchone()
    assert rows[0] == 7


def test_switches_lift_one_guard_each_and_force_is_both(tmp_path: Path) -> None:
    specs = [listing("100.00", ["95.00"], max_price="150") for _ in range(4)]
    world = SimWorld(specs)
    orders = [price_order(s.id, "160.00", "fr-fr") for s in specs[:3]]
    orders.append(price_order(specs[3].id, "10000.01", "fr-fr"))
    with world.runtime(tmp_path / "u.db", command="update-price") as runtime:
        client = runtime.client
        only_big = apply_price_orders(client, None, orders, max_change_pct=30.0, allow_big_change=True)
        only_max = apply_price_orders(client, None, orders, max_change_pct=30.0, allow_above_max=True)
        forced = apply_price_orders(client, None, orders, max_change_pct=30.0, force=True)
    assert "max_price" in only_big[0].reason and "max_change_pct" in only_max[0].reason
    assert [r.status for r in forced] == ["updated"] * 3 + ["refused"]
    assert "100x" in forced[3].reason
    assert world.price(specs[3].id, "fr-fr") == money("100.00")
